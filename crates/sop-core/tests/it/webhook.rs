//! Webhook bodies as variables, and which trigger a path names (tables).

use std::collections::BTreeMap;

use sop_core::webhook::{body_vars, fit_to, hook_of, BodyError, BodyVars};

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

#[test]
fn body_fields_become_variables() {
    let cases: &[(&str, Result<BodyVars, BodyError>)] = &[
        ("", Ok(BodyVars::default())),
        ("  \n", Ok(BodyVars::default())),
        ("{}", Ok(BodyVars::default())),
        (
            r#"{"version": "1.2.3", "n": 7, "ok": true, "f": 1.5}"#,
            Ok(BodyVars {
                vars: vars(&[
                    ("version", "1.2.3"),
                    ("n", "7"),
                    ("ok", "true"),
                    ("f", "1.5"),
                ]),
                skipped: vec![],
            }),
        ),
        (
            r#"{"repository": {"name": "app", "id": 1}, "commits": [1, 2]}"#,
            Ok(BodyVars {
                vars: vars(&[
                    ("repository", r#"{"id":1,"name":"app"}"#),
                    ("commits", "[1,2]"),
                ]),
                skipped: vec![],
            }),
        ),
        // Names that cannot be variables, and nulls, give none (and are listed).
        (
            r#"{"hook-id": 1, "PATH": "/tmp", "gone": null, "ref": "main"}"#,
            Ok(BodyVars {
                vars: vars(&[("ref", "main")]),
                skipped: vec!["PATH".into(), "gone".into(), "hook-id".into()],
            }),
        ),
        ("[1]", Err(BodyError::NotAnObject { found: "an array" })),
        ("\"x\"", Err(BodyError::NotAnObject { found: "a string" })),
        ("null", Err(BodyError::NotAnObject { found: "null" })),
    ];
    for (body, want) in cases {
        assert_eq!(&body_vars(body.as_bytes()), want, "{body:?}");
    }
    let err = body_vars(b"{\"a\": ").unwrap_err();
    assert!(matches!(&err, BodyError::NotJson(_)), "{err:?}");
    assert!(
        err.to_string().starts_with("the body is not JSON: "),
        "{err}"
    );
}

#[test]
fn a_path_names_the_first_webhook_trigger_served_there() {
    let sop = crate::one_step_sop(
        "[[triggers]]\ntype = \"webhook\"\npath = \"deploy\"\nsecret_env = \"DEPLOY_SECRET\"\n\
                [[triggers]]\ntype = \"webhook\"\npath = \"ci/done\"\n\
                [[triggers]]\ntype = \"webhook\"\npath = \"deploy\"\n",
    );
    assert_eq!(hook_of(&sop, "deploy"), Some(Some("DEPLOY_SECRET")));
    assert_eq!(hook_of(&sop, "ci/done"), Some(None));
    assert_eq!(hook_of(&sop, "ci"), None);
    assert_eq!(hook_of(&sop, "deploy/"), None);
}

#[test]
fn a_sop_takes_the_fields_it_can_hold_and_none_that_would_show_a_secret() {
    let sop = crate::one_step_sop(
        "[vars]\napi_token = { secret = true }\nbig = { description = \"declared\" }\n\
                [[triggers]]\ntype = \"webhook\"\npath = \"p\"\n",
    );
    let huge = "x".repeat(70 * 1024);
    let body = serde_json::json!({
        "api_token": "abc123xyz",
        "meta": {"api_token": "abc123xyz"},
        "note": "abc",
        "huge": huge,
        "big": huge,
        "ref": "main",
    });
    let given = body_vars(body.to_string().as_bytes()).expect("an object");
    let fitted = fit_to(&sop, &given);
    assert_eq!(
        fitted.vars.keys().collect::<Vec<_>>(),
        ["api_token", "big", "note", "ref"],
        "the secret stays (redacted by name), a declared var stays to be refused by name"
    );
    assert_eq!(fitted.skipped, ["huge", "meta"]);
    // Past the total, fields are dropped in name order.
    let many: serde_json::Map<String, serde_json::Value> = (0..10)
        .map(|i| {
            (
                format!("f{i}"),
                serde_json::Value::String("y".repeat(60 * 1024)),
            )
        })
        .collect();
    let given = body_vars(serde_json::Value::Object(many).to_string().as_bytes()).expect("object");
    let fitted = fit_to(&sop, &given);
    assert_eq!(fitted.vars.len(), 8, "512 KiB of 60 KiB values");
    assert_eq!(fitted.skipped, ["f8", "f9"]);
}
