//! Command lines: the built-in decisions and matching `command` triggers (tables).

use std::collections::BTreeMap;

use sop_core::command::{match_triggers, parse_command, CommandError, CommandLine};
use sop_core::Sop;

#[test]
fn command_lines_are_read_as_built_ins_or_text() {
    let cases: &[(&str, Result<CommandLine<'_>, CommandError>)] = &[
        ("deploy: 1.2.3", Ok(CommandLine::Text("deploy: 1.2.3"))),
        ("  deploy: 1.2.3 \n", Ok(CommandLine::Text("deploy: 1.2.3"))),
        (
            "/approve deploy",
            Ok(CommandLine::Approve {
                target: "deploy",
                comment: None,
            }),
        ),
        (
            "/approve  deploy   looks good to me ",
            Ok(CommandLine::Approve {
                target: "deploy",
                comment: Some("looks good to me"),
            }),
        ),
        (
            "/reject deploy not today",
            Ok(CommandLine::Reject {
                target: "deploy",
                reason: "not today",
            }),
        ),
        // Only the exact words are built-ins; other slash words go to the triggers.
        (
            "/approved deploy",
            Ok(CommandLine::Text("/approved deploy")),
        ),
        ("/deploy now", Ok(CommandLine::Text("/deploy now"))),
        ("approve deploy", Ok(CommandLine::Text("approve deploy"))),
        ("", Err(CommandError::Empty)),
        (" \t\n", Err(CommandError::Empty)),
        (
            "/approve",
            Err(CommandError::NoTarget {
                verb: "approve",
                usage: "/approve <sop|run> [comment]",
            }),
        ),
        (
            "/reject  ",
            Err(CommandError::NoTarget {
                verb: "reject",
                usage: "/reject <sop|run> <reason>",
            }),
        ),
        (
            "/reject deploy",
            Err(CommandError::NoReason {
                target: "deploy".to_string(),
            }),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(&parse_command(text), want, "{text:?}");
    }
}

#[test]
fn an_incomplete_built_in_says_what_was_expected() {
    assert_eq!(
        parse_command("/reject deploy").unwrap_err().to_string(),
        "`/reject deploy` needs a reason: expected `/reject <sop|run> <reason>`"
    );
    assert_eq!(
        parse_command("/approve").unwrap_err().to_string(),
        "`/approve` needs a SOP name or run id: expected `/approve <sop|run> [comment]`"
    );
}

fn sop(triggers: &str) -> Sop {
    crate::one_step_sop(triggers)
}

type Vars = BTreeMap<String, String>;

fn vars(pairs: &[(&str, &str)]) -> Vars {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

#[test]
fn triggers_match_with_the_vars_their_groups_caught() {
    let deploy = sop(
        "[[triggers]]\ntype = \"command\"\npattern = '^deploy: (?P<version>\\S+)(?: to (\\w+))?$'\n",
    );
    let plain = sop(
        "[[triggers]]\ntype = \"command\"\npattern = '^restart (\\w+)'\ncapture_groups = false\n",
    );
    let two = sop("[[triggers]]\ntype = \"command\"\npattern = '^a (\\w+)'\n\
         [[triggers]]\ntype = \"command\"\npattern = '^(\\w+) b'\n\
         [[triggers]]\ntype = \"schedule\"\ncron = \"0 2 * * *\"\n");
    // A named group whose name cannot be a variable is still `match_N`.
    let reserved = sop("[[triggers]]\ntype = \"command\"\npattern = '^set (?P<PATH>\\S+)'\n");
    let secret = sop("[vars]\ntoken = { secret = true }\n\
         [[triggers]]\ntype = \"command\"\npattern = '^login (\\w+) (?P<token>\\S+)'\n");
    // Groups around (or overlapping) a secret one would show it: they give nothing.
    let around = sop(
        "[vars]\ntoken = { secret = true }\n\
         [[triggers]]\ntype = \"command\"\npattern = '^login (?P<creds>(?P<user>\\w+):(?P<token>\\S+)) (\\w+)$'\n",
    );
    let twice = sop("[vars]\ntoken = { secret = true }\n\
         [[triggers]]\ntype = \"command\"\npattern = '^login (?P<token>\\S+) (\\S+) (\\S+)$'\n");
    let none = sop("[[triggers]]\ntype = \"schedule\"\ncron = \"0 2 * * *\"\n");
    let cases: &[(&Sop, &str, Option<Vars>)] = &[
        (
            &deploy,
            "deploy: 1.2.3",
            Some(vars(&[("match_1", "1.2.3"), ("version", "1.2.3")])),
        ),
        (
            &deploy,
            "deploy: 1.2.3 to prod",
            Some(vars(&[
                ("match_1", "1.2.3"),
                ("match_2", "prod"),
                ("version", "1.2.3"),
            ])),
        ),
        (&deploy, "please deploy: 1.2.3", None),
        (&deploy, "deploy:", None),
        (&plain, "restart web", Some(vars(&[]))),
        (&plain, "please restart web", None),
        // The first trigger that matches gives the vars, in file order.
        (&two, "a x b", Some(vars(&[("match_1", "x")]))),
        (&two, "y b", Some(vars(&[("match_1", "y")]))),
        (&two, "c", None),
        (&reserved, "set /tmp", Some(vars(&[("match_1", "/tmp")]))),
        // A secret is caught only under its own name, which is redacted wherever shown.
        (
            &secret,
            "login bob s3cr3t",
            Some(vars(&[("match_1", "bob"), ("token", "s3cr3t")])),
        ),
        (
            &around,
            "login bob:s3cr3t now",
            Some(vars(&[
                ("match_2", "bob"),
                ("user", "bob"),
                ("token", "s3cr3t"),
                ("match_4", "now"),
            ])),
        ),
        // The same text elsewhere in the line (or a long part of it) would show it too; a
        // short piece shows nothing and stays.
        (
            &twice,
            "login hunter2-secret hunter2-secret hunter2-s",
            Some(vars(&[("token", "hunter2-secret")])),
        ),
        (
            &twice,
            "login hunter2-secret hunt 2",
            Some(vars(&[
                ("token", "hunter2-secret"),
                ("match_2", "hunt"),
                ("match_3", "2"),
            ])),
        ),
        (
            &twice,
            "login hunter2 x y",
            Some(vars(&[
                ("token", "hunter2"),
                ("match_2", "x"),
                ("match_3", "y"),
            ])),
        ),
        (&none, "anything", None),
    ];
    for (sop, text, want) in cases {
        assert_eq!(&match_triggers(sop, text), want, "{text:?}");
    }
}
