//! The condition language: precedence, quoting, truthiness, comparisons, errors, variables.

use std::collections::HashMap;

use sop_core::condition::{Condition, ConditionError};

/// Evaluates `cond` with `vars` as `name=value` pairs.
fn eval(cond: &str, vars: &[(&str, &str)]) -> bool {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    let parsed = Condition::parse(cond).unwrap_or_else(|e| panic!("`{cond}` should parse: {e:?}"));
    parsed.eval(&|name| map.get(name).cloned())
}

/// (condition, `name=value` pairs, expected result)
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);

fn check_table(cases: &[Case]) {
    for (cond, vars, expected) in cases {
        assert_eq!(eval(cond, vars), *expected, "`{cond}` with {vars:?}");
    }
}

const T: &str = "yes";
const F: &str = "";

#[test]
fn precedence() {
    check_table(&[
        // `&&` binds tighter than `||`.
        ("a || b && c", &[("a", T), ("b", F), ("c", F)], true),
        ("a || b && c", &[("a", F), ("b", T), ("c", F)], false),
        ("a || b && c", &[("a", F), ("b", T), ("c", T)], true),
        ("a && b || c", &[("a", F), ("b", T), ("c", T)], true),
        ("a && b || c", &[("a", T), ("b", F), ("c", F)], false),
        // `!` binds tighter than `&&`.
        ("!a && b", &[("a", F), ("b", T)], true),
        ("!a && b", &[("a", T), ("b", T)], false),
        ("!(a && b)", &[("a", T), ("b", F)], true),
        ("!!a", &[("a", T)], true),
        ("! ! ! a", &[("a", T)], false),
        // Parentheses override.
        ("(a || b) && c", &[("a", T), ("b", F), ("c", F)], false),
        ("(a || b) && c", &[("a", T), ("b", F), ("c", T)], true),
        ("((a))", &[("a", T)], true),
        (
            "a || (b && (c || d))",
            &[("a", F), ("b", T), ("c", F), ("d", T)],
            true,
        ),
        // `!` applies to a comparison, not to its left operand.
        ("!a == \"x\"", &[("a", "x")], false),
        ("!a == \"x\"", &[("a", "y")], true),
        // Comparisons bind tighter than `&&`/`||`.
        ("a == \"1\" && b == \"2\"", &[("a", "1"), ("b", "2")], true),
        ("a == \"1\" || b == \"2\"", &[("a", "0"), ("b", "2")], true),
        // Long chains.
        ("a && a && a && a && a && a && a && a", &[("a", T)], true),
        (
            "a || a || a || a || a || a || a || b",
            &[("a", F), ("b", T)],
            true,
        ),
        // A parenthesised condition used as a value is `true` or `false`.
        ("(a == b) == \"true\"", &[("a", "1"), ("b", "1")], true),
        ("(a && b) != \"false\"", &[("a", T), ("b", F)], false),
        ("(a) == \"x\"", &[("a", "x")], true),
    ]);
}

#[test]
fn quoting() {
    check_table(&[
        ("env == \"prod\"", &[("env", "prod")], true),
        ("env == 'prod'", &[("env", "prod")], true),
        ("\"prod\" == env", &[("env", "prod")], true),
        ("env == \"a, b\"", &[("env", "a, b")], true),
        ("env == \"a && b\"", &[("env", "a && b")], true),
        ("env == 'a || (b'", &[("env", "a || (b")], true),
        ("env == \"it's\"", &[("env", "it's")], true),
        ("env == 'say \"hi\"'", &[("env", "say \"hi\"")], true),
        ("env == \"say \\\"hi\\\"\"", &[("env", "say \"hi\"")], true),
        ("env == 'it\\'s'", &[("env", "it's")], true),
        ("env == \"back\\\\slash\"", &[("env", "back\\slash")], true),
        ("env == \"\"", &[], true),
        ("env == ''", &[("env", "")], true),
        ("env == \"  padded \"", &[("env", "  padded ")], true),
        ("env == \"padded\"", &[("env", " padded")], false),
        ("env == \"héllo ✓\"", &[("env", "héllo ✓")], true),
        ("env == \"Prod\"", &[("env", "prod")], false),
        // Bare literals follow the truthiness rule.
        ("\"yes\"", &[], true),
        ("'off'", &[], false),
        ("\"\"", &[], false),
        ("1", &[], true),
        ("0", &[], false),
    ]);
}

#[test]
fn truthiness() {
    for falsy in [
        "", "0", "false", "FALSE", "False", "no", "No", "NO", "off", "Off", "OFF", " false ", "  ",
        "\t0\n",
    ] {
        assert!(!eval("x", &[("x", falsy)]), "{falsy:?} should be falsy");
        assert!(
            eval("!x", &[("x", falsy)]),
            "{falsy:?} should be falsy under `!`"
        );
    }
    for truthy in [
        "1",
        "true",
        "yes",
        "on",
        "x",
        "00",
        "0.0",
        "-1",
        "nope",
        "falsey",
        " off-ish ",
    ] {
        assert!(eval("x", &[("x", truthy)]), "{truthy:?} should be truthy");
    }
    assert!(!eval("unset_var", &[]));
    assert!(eval("!unset_var", &[]));
    assert!(eval("SKIP_ENV_CHECK", &[("SKIP_ENV_CHECK", "1")]));
}

#[test]
fn string_equality_treats_unset_as_empty() {
    check_table(&[
        ("x == \"\"", &[], true),
        ("x != \"\"", &[], false),
        ("x == y", &[], true),
        ("x == y", &[("x", "a")], false),
        ("x != y", &[("x", "a"), ("y", "b")], true),
        // `==` compares text, not numbers.
        ("x == 1", &[("x", "1.0")], false),
        ("x == 1", &[("x", "1")], true),
    ]);
}

#[test]
fn numeric_comparison() {
    check_table(&[
        ("10 > 9", &[], true),
        ("\"10\" > \"9\"", &[], true),
        ("9 < 10", &[], true),
        ("n > 9", &[("n", "10")], true),
        ("n >= 10", &[("n", "10")], true),
        ("n <= 9", &[("n", "10")], false),
        ("1.5 <= 1.50", &[], true),
        ("1.5 >= 1.50", &[], true),
        ("1.5 < 1.50", &[], false),
        ("-1 < 0", &[], true),
        ("-2.5 < -2", &[], true),
        ("n > -1", &[("n", "0")], true),
        ("n < 5", &[("n", " 3 ")], true),
        // Not a number on either side: false, whatever the operator.
        ("n > 1", &[("n", "abc")], false),
        ("n < 1", &[("n", "abc")], false),
        ("n <= 1", &[], false),
        ("n >= 1", &[("n", "")], false),
        ("n > 1", &[("n", "1e3")], false),
        ("n > 1", &[("n", "inf")], false),
        ("n < 1", &[("n", "NaN")], false),
        ("1 < n", &[("n", "1.2.3")], false),
        ("!(n > 1)", &[("n", "abc")], true),
    ]);
}

#[test]
fn builtins() {
    check_table(&[
        (
            "previous_step == \"success\"",
            &[("previous_step", "success")],
            true,
        ),
        (
            "previous_step == \"success\"",
            &[("previous_step", "failure")],
            false,
        ),
        ("previous_step == \"success\"", &[], false),
        (
            "previous_step != 'failure' && step_2 == 'skipped'",
            &[("previous_step", "success"), ("step_2", "skipped")],
            true,
        ),
        (
            "trigger == \"webhook\" || !SKIP_ENV_CHECK",
            &[("trigger", "manual")],
            true,
        ),
    ]);
}

#[test]
fn whitespace_is_insignificant_outside_strings() {
    check_table(&[
        ("a==\"1\"&&b", &[("a", "1"), ("b", T)], true),
        ("  a  ==  '1'  ", &[("a", "1")], true),
        ("\ta\n||\tb", &[("b", T)], true),
        ("!(a)||(b)", &[("a", T), ("b", T)], true),
    ]);
}

#[test]
fn variables_in_first_appearance_order() {
    let cases: &[(&str, &[&str])] = &[
        ("a", &["a"]),
        ("\"a\" == 'b'", &[]),
        ("b || a && b", &["b", "a"]),
        ("!(z == y) && (x > 1 || z)", &["z", "y", "x"]),
        (
            "previous_step == \"success\" && version != \"\"",
            &["previous_step", "version"],
        ),
        ("10 > 9", &[]),
    ];
    for (cond, expected) in cases {
        let parsed = Condition::parse(cond).expect("parses");
        assert_eq!(parsed.variables(), *expected, "`{cond}`");
    }
}

#[test]
fn serde_round_trips_as_source_text() {
    let parsed = Condition::parse("a && b == 'x'").expect("parses");
    assert_eq!(parsed.source(), "a && b == 'x'");
    let json = serde_json::to_string(&parsed).expect("serialises");
    assert_eq!(json, "\"a && b == 'x'\"");
    let back: Condition = serde_json::from_str(&json).expect("deserialises");
    assert_eq!(back, parsed);
    let bad = serde_json::from_str::<Condition>("\"a &&\"").expect_err("refused");
    assert!(bad.to_string().contains("expected a variable"), "{bad}");
}

/// (input, message, col, len, help)
type ErrorCase = (&'static str, &'static str, u32, u32, Option<&'static str>);

#[test]
fn errors() {
    let cases: Vec<ErrorCase> = vec![
        ("", "empty condition", 1, 1, Some("write a variable name or a comparison, e.g. `previous_step == \"success\"`")),
        ("   ", "empty condition", 1, 3, Some("write a variable name or a comparison, e.g. `previous_step == \"success\"`")),
        ("a = b", "unexpected character `=`", 3, 1, Some("use `==` to compare")),
        ("a === b", "`===` is not an operator", 3, 3, Some("use `==` to compare")),
        ("a => 1", "`=>` is not an operator", 3, 2, Some("use `>=`")),
        ("a =< 1", "`=<` is not an operator", 3, 2, Some("use `<=`")),
        ("a <> 1", "`<>` is not an operator", 3, 2, Some("use `!=` for \"not equal\"")),
        ("a & b", "unexpected character `&`", 3, 1, Some("use `&&` for \"and\"")),
        ("a | b", "unexpected character `|`", 3, 1, Some("use `||` for \"or\"")),
        ("a and b", "`and` is not an operator", 3, 3, Some("use `&&`")),
        ("a OR b", "`OR` is not an operator", 3, 2, Some("use `||`")),
        ("not a", "`not` is not an operator", 1, 3, Some("use `!`")),
        ("a == true", "`true` is not a literal here (it would name a variable)", 6, 4, Some("quote it to mean the text: `\"true\"`")),
        ("$a", "unexpected character `$`", 1, 1, Some("name variables without `$`: write `name`, not `$name`")),
        ("a.b", "unexpected character `.`", 2, 1, Some("variable names are letters, digits and `_`; quote text that has a `.`")),
        ("a == “x”", "unexpected character `“`", 6, 1, Some("use straight quotes, `\"` or `'`")),
        ("é == a", "unexpected character `é`", 1, 1, None),
        ("a == 'é' && ~", "unexpected character `~`", 13, 1, None),
        ("a == \"x", "unterminated string", 6, 1, Some("close the string with `\"`")),
        ("a == 'x\"", "unterminated string", 6, 1, Some("close the string with `'`")),
        ("a == \"x\\\"", "unterminated string", 6, 1, Some("close the string with `\"`")),
        ("a == \"x\\", "unterminated string", 6, 1, Some("a `\\` at the end escapes nothing; write `\\\\` for a backslash")),
        ("a == \"\\n\"", "unknown escape `\\n` in string", 7, 2, Some("the only escapes are `\\\"`, `\\'` and `\\\\`")),
        ("v == 1.2.3", "invalid number `1.2.3`: expected digits with an optional `-` and `.digits`", 6, 5, Some("quote it to mean the text: `\"1.2.3\"`")),
        ("v > 1.", "invalid number `1.`: expected digits with an optional `-` and `.digits`", 5, 2, Some("quote it to mean the text: `\"1.\"`")),
        ("v > 10abc", "invalid number `10abc`: expected digits with an optional `-` and `.digits`", 5, 5, Some("quote it to mean the text: `\"10abc\"`")),
        ("v > - 1", "unexpected character `-`", 5, 1, Some("`-` is only allowed at the start of a number")),
        ("(a", "unclosed `(`", 1, 1, Some("add a `)` to close it")),
        ("a && (b || (c)", "unclosed `(`", 6, 1, Some("add a `)` to close it")),
        ("a)", "unmatched `)`", 2, 1, Some("remove it or add a matching `(`")),
        ("(a))", "unmatched `)`", 4, 1, Some("remove it or add a matching `(`")),
        ("()", "expected a variable, quoted string, number or `(` after `(`, found `)`", 2, 1, Some("put a condition between the parentheses")),
        ("(a b)", "expected `&&`, `||` or `)`, found `b`", 4, 1, Some("join conditions with `&&` or `||`")),
        ("a b", "expected `&&`, `||` or the end of the condition, found `b`", 3, 1, Some("join conditions with `&&` or `||`")),
        ("a == 'x' 'y'", "expected `&&`, `||` or the end of the condition, found `'y'`", 10, 3, Some("join conditions with `&&` or `||`")),
        ("a == b == c", "comparisons cannot be chained: found `==` after a comparison", 8, 2, Some("compare two values at a time and join the comparisons with `&&`")),
        ("1 < n < 5", "comparisons cannot be chained: found `<` after a comparison", 7, 1, Some("compare two values at a time and join the comparisons with `&&`")),
        ("a &&", "expected a variable, quoted string, number or `(` after `&&`, found the end of the condition", 5, 1, None),
        ("a && ", "expected a variable, quoted string, number or `(` after `&&`, found the end of the condition", 6, 1, None),
        ("a || && b", "expected a variable, quoted string, number or `(` after `||`, found `&&`", 6, 2, None),
        ("&& a", "expected a variable, quoted string, number or `(`, found `&&`", 1, 2, Some("start with a variable, a quoted string or a number")),
        ("== 'x'", "expected a variable, quoted string, number or `(`, found `==`", 1, 2, Some("start with a variable, a quoted string or a number")),
        ("a ==", "expected a variable, quoted string, number or `(` after `==`, found the end of the condition", 5, 1, Some("compare with a variable, a quoted string or a number")),
        ("a == && b", "expected a variable, quoted string, number or `(` after `==`, found `&&`", 6, 2, Some("compare with a variable, a quoted string or a number")),
        ("!", "expected a variable, quoted string, number or `(` after `!`, found the end of the condition", 2, 1, None),
        ("a == !b", "expected a variable, quoted string, number or `(` after `==`, found `!`", 6, 1, Some("compare with a variable, a quoted string or a number")),
        (")", "expected a variable, quoted string, number or `(`, found `)`", 1, 1, None),
    ];
    for (input, message, col, len, help) in cases {
        let err = Condition::parse(input).expect_err(input);
        let expected = ConditionError {
            message: message.to_string(),
            col,
            len,
            help: help.map(str::to_string),
        };
        assert_eq!(err, expected, "`{input}`");
    }
}

#[test]
fn too_deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000));
    let err = Condition::parse(&deep).expect_err("too deep");
    assert!(
        err.message.starts_with("condition nests too deeply"),
        "{}",
        err.message
    );
    assert_eq!(err.col, 65);
    let bangs = format!("{}a", "!".repeat(10_000));
    assert!(Condition::parse(&bangs).is_err());
    // Sixty-four levels are fine.
    let ok = format!("{}a{}", "(".repeat(64), ")".repeat(64));
    assert!(Condition::parse(&ok).is_ok());
    // Long flat chains do not nest.
    let chain = vec!["a"; 50_000].join(" && ");
    assert!(eval(&chain, &[("a", "1")]));
}

#[test]
fn no_input_panics() {
    let pieces = [
        "", " ", "a", "_b9", "é", "“", "\"", "'", "\\", "(", ")", "!", "=", "==", "!=", "<", "<=",
        ">", ">=", "&", "&&", "|", "||", "-", "1", "-1", "1.", ".5", "1.5", "\"x\"", "'y'", "\"\\",
        "and", "true", "\0", "\n", "$", "{{", "🙂",
    ];
    let mut count = 0;
    for a in pieces {
        for b in pieces {
            for c in pieces {
                let input = format!("{a}{b}{c}");
                count += 1;
                match Condition::parse(&input) {
                    Ok(cond) => {
                        let _ = cond.eval(&|_| Some("1".to_string()));
                        let _ = cond.variables();
                    }
                    Err(e) => {
                        let chars = input.chars().count() as u32;
                        assert!(
                            e.col >= 1 && e.col <= chars + 1,
                            "`{input:?}`: col {} of {chars}",
                            e.col
                        );
                        assert!(e.len >= 1, "`{input:?}`");
                        assert!(e.col + e.len <= chars.max(1) + 2, "`{input:?}`: {e:?}");
                        assert!(!e.message.is_empty());
                    }
                }
            }
        }
    }
    assert_eq!(count, pieces.len().pow(3));
}
