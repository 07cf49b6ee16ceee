//! Variable names, values, execute-time resolution against `[vars]`, and secret redaction.

use std::collections::BTreeMap;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use sop_core::vars::{
    check_var_name, check_var_value, resolve_vars, resolve_with_trigger, Redactor, VarError,
};
use sop_core::VarDecl;

#[test]
fn accepted_names() {
    for name in [
        "version",
        "SKIP_ENV_CHECK",
        "_x",
        "x",
        "a1",
        "path",
        "home",
        "user",
        "Path",
        "sop_thing",
        "git_ref",
        "proxy",
        "LANG",
        "LC_ALL",
        "TZ",
        "TERM",
        "ENVIRONMENT",
        "PATHS",
        "MY_PATH",
        "SSH",
        "DEPLOY_HOST",
        &"a".repeat(64),
    ] {
        assert_eq!(check_var_name(name), Ok(()), "`{name}` should be accepted");
    }
}

#[test]
fn refused_families() {
    // (name, the rule named in the error)
    let cases = [
        ("PATH", "PATH"),
        ("HOME", "HOME"),
        ("SHELL", "SHELL"),
        ("IFS", "IFS"),
        ("ENV", "ENV"),
        ("BASH_ENV", "BASH_*"),
        ("BASH_FUNC_foo", "BASH_*"),
        ("SHELLOPTS", "SHELLOPTS"),
        ("BASHOPTS", "BASHOPTS"),
        ("PS4", "PS4"),
        ("PROMPT_COMMAND", "PROMPT_COMMAND"),
        ("CDPATH", "CDPATH"),
        ("LD_PRELOAD", "LD_*"),
        ("LD_LIBRARY_PATH", "LD_*"),
        ("DYLD_INSERT_LIBRARIES", "DYLD_*"),
        ("http_proxy", "*_proxy"),
        ("HTTPS_PROXY", "*_proxy"),
        ("no_proxy", "*_proxy"),
        ("All_Proxy", "*_proxy"),
        ("PYTHONPATH", "PYTHON*"),
        ("PYTHONSTARTUP", "PYTHON*"),
        ("NODE_OPTIONS", "NODE_*"),
        ("NODE_PATH", "NODE_*"),
        ("PERL5LIB", "PERL5*"),
        ("PERL5OPT", "PERL5*"),
        ("PERLLIB", "PERLLIB"),
        ("RUBYOPT", "RUBYOPT"),
        ("RUBYLIB", "RUBYLIB"),
        ("GIT_SSH_COMMAND", "GIT_*"),
        ("GIT_DIR", "GIT_*"),
        ("SSH_AUTH_SOCK", "SSH_*"),
        ("TMPDIR", "TMPDIR"),
        ("SOP_VAR_X", "SOP_*"),
        ("SOP_OUTPUT", "SOP_*"),
        ("USER", "USER"),
        ("LOGNAME", "LOGNAME"),
        ("PWD", "PWD"),
        ("OLDPWD", "OLDPWD"),
        ("GCONV_PATH", "GCONV_PATH"),
        ("LOCALDOMAIN", "LOCALDOMAIN"),
        ("HOSTALIASES", "HOSTALIASES"),
        ("RES_OPTIONS", "RES_OPTIONS"),
        ("MALLOC_CHECK_", "MALLOC_*"),
        ("GLIBC_TUNABLES", "GLIBC_TUNABLES"),
        ("JAVA_TOOL_OPTIONS", "JAVA_TOOL_OPTIONS"),
        ("_JAVA_OPTIONS", "_JAVA_OPTIONS"),
        ("CLASSPATH", "CLASSPATH"),
        ("EDITOR", "EDITOR"),
        ("LESSOPEN", "LESSOPEN"),
        ("SSL_CERT_FILE", "SSL_CERT_FILE"),
        ("DOCKER_HOST", "DOCKER_*"),
        ("RUSTC_WRAPPER", "RUSTC*"),
        ("GOFLAGS", "GOFLAGS"),
        ("npm_config_script_shell", "npm_config_*"),
        ("NPM_CONFIG_SCRIPT_SHELL", "npm_config_*"),
    ];
    for (name, rule) in cases {
        match check_var_name(name) {
            Err(VarError::ReservedName {
                name: n, rule: r, ..
            }) => {
                assert_eq!((n.as_str(), r.as_str()), (name, rule), "`{name}`");
            }
            other => panic!("`{name}` should be reserved, got {other:?}"),
        }
    }
}

#[test]
fn name_messages() {
    let cases: &[(&str, &str)] = &[
        ("PATH", "variable name `PATH` is reserved: it changes how shells start or read commands"),
        ("LD_PRELOAD", "variable name `LD_PRELOAD` is reserved: it changes which libraries or code programs load (every `LD_*` name is)"),
        ("SOP_X", "variable name `SOP_X` is reserved: `SOP_*` names are set by sop-runner itself (every `SOP_*` name is)"),
        ("", "variable name is empty: expected a letter or `_`, then letters, digits or `_`"),
        ("9lives", "variable name `9lives` has `9` at character 1: expected a letter or `_` first"),
        ("my-var", "variable name `my-var` has `-` at character 3: expected only letters, digits and `_`"),
        ("a.b", "variable name `a.b` has `.` at character 2: expected only letters, digits and `_`"),
        ("a b", "variable name `a b` has ` ` at character 2: expected only letters, digits and `_`"),
        ("BASH_FUNC_x%%", "variable name `BASH_FUNC_x%%` has `%` at character 12: expected only letters, digits and `_`"),
        ("naïve", "variable name `naïve` has `ï` at character 3: expected only letters, digits and `_`"),
        ("x=1", "variable name `x=1` has `=` at character 2: expected only letters, digits and `_`"),
    ];
    for (name, message) in cases {
        let err = check_var_name(name).expect_err(name);
        assert_eq!(err.to_string(), *message, "`{name}`");
        assert!(err.help().is_some(), "`{name}` has a help");
    }
    let long = "a".repeat(65);
    let err = check_var_name(&long).expect_err("too long");
    assert_eq!(
        err,
        VarError::NameTooLong {
            name: long.clone(),
            len: 65
        }
    );
    assert_eq!(
        err.to_string(),
        format!("variable name `{long}` is 65 characters long: expected at most 64")
    );
}

#[test]
fn values() {
    assert_eq!(check_var_value("x", ""), Ok(()));
    assert_eq!(check_var_value("x", "multi\nline\tvalue ✓"), Ok(()));
    assert_eq!(check_var_value("x", &"a".repeat(64 * 1024)), Ok(()));
    let err = check_var_value("x", &"a".repeat(64 * 1024 + 1)).expect_err("too long");
    assert_eq!(
        err,
        VarError::ValueTooLong {
            name: "x".to_string(),
            len: 64 * 1024 + 1
        }
    );
    assert_eq!(
        err.to_string(),
        "value of variable `x` is 65537 bytes: expected at most 65536 (64 KiB)"
    );
    let err = check_var_value("x", "a\0b").expect_err("NUL");
    assert_eq!(
        err,
        VarError::NulInValue {
            name: "x".to_string()
        }
    );
    assert_eq!(err.to_string(), "value of variable `x` contains a NUL byte");
    assert!(check_var_value("x", "\0").is_err());
}

fn decl(required: bool, pattern: Option<&str>, default: Option<&str>) -> VarDecl {
    VarDecl {
        required,
        pattern: pattern.map(str::to_string),
        default: default.map(str::to_string),
        ..VarDecl::default()
    }
}

fn map<V: Clone>(pairs: &[(&str, V)]) -> BTreeMap<String, V> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

#[test]
fn resolve_without_declarations_accepts_any_valid_name() {
    let given = map(&[("anything", "1".to_string()), ("version", "2".to_string())]);
    assert_eq!(resolve_vars(&BTreeMap::new(), &given), Ok(given.clone()));
    let bad = map(&[("PATH", "/tmp".to_string()), ("ok", "a\0".to_string())]);
    let errors = resolve_vars(&BTreeMap::new(), &bad).expect_err("refused");
    assert_eq!(errors.len(), 2);
    assert!(matches!(&errors[0], VarError::ReservedName { name, .. } if name == "PATH"));
    assert!(matches!(&errors[1], VarError::NulInValue { name } if name == "ok"));
}

#[test]
fn resolve_fills_defaults_and_checks_patterns() {
    let decls = map(&[
        ("version", decl(true, Some(r"^\d+\.\d+\.\d+$"), None)),
        (
            "env",
            decl(false, Some("^(staging|prod)$"), Some("staging")),
        ),
        ("note", decl(false, None, None)),
    ]);
    let given = map(&[("version", "1.2.3".to_string())]);
    let resolved = resolve_vars(&decls, &given).expect("valid");
    assert_eq!(
        resolved,
        map(&[
            ("version", "1.2.3".to_string()),
            ("env", "staging".to_string())
        ])
    );

    let given = map(&[
        ("version", "1.2.3".to_string()),
        ("env", "prod".to_string()),
        ("note", String::new()),
    ]);
    assert_eq!(resolve_vars(&decls, &given), Ok(given.clone()));
}

#[test]
fn resolve_reports_every_problem() {
    let decls = map(&[
        ("version", decl(true, Some(r"^\d+\.\d+\.\d+$"), None)),
        ("region", decl(true, None, None)),
        (
            "env",
            decl(false, Some("^(staging|prod)$"), Some("staging")),
        ),
        ("broken", decl(false, Some("(unclosed"), Some("x"))),
        ("optional", decl(false, Some("^never$"), None)),
    ]);
    let given = map(&[
        ("version", "latest".to_string()),
        ("env", "dev".to_string()),
        ("verison", "1".to_string()),
        ("zzz", "1".to_string()),
    ]);
    let errors = resolve_vars(&decls, &given).expect_err("invalid");
    let rendered: Vec<(String, Option<String>)> =
        errors.iter().map(|e| (e.to_string(), e.help())).collect();
    let expected: Vec<(String, Option<String>)> = vec![
        (
            "variable `verison` is not declared in `[vars]`".into(),
            Some("did you mean `version`?".into()),
        ),
        (
            "variable `zzz` is not declared in `[vars]`".into(),
            Some("declare it under `[vars]` in `SOP.toml`".into()),
        ),
        (
            "`pattern` of variable `broken` is not a valid regex: unclosed group".into(),
            None,
        ),
        (
            "value of variable `env` does not match its `pattern` `^(staging|prod)$`".into(),
            None,
        ),
        (
            "required variable `region` is not set".into(),
            Some("set it with `--var region=...`".into()),
        ),
        (
            r"value of variable `version` does not match its `pattern` `^\d+\.\d+\.\d+$`".into(),
            None,
        ),
    ];
    assert_eq!(rendered, expected);
    // A value is never echoed back: it may be a secret.
    assert!(rendered
        .iter()
        .all(|(m, _)| !m.contains("latest") && !m.contains("dev`")));
}

#[test]
fn a_trigger_s_vars_need_no_declaration_but_declared_ones_are_checked() {
    let decls = map(&[
        ("version", decl(true, Some(r"^\d+\.\d+\.\d+$"), None)),
        ("env", decl(false, None, Some("staging"))),
    ]);
    let given = map(&[("env", "prod".to_string())]);
    // Undeclared `match_1` is fine; the trigger's `env` wins over the execute-time one.
    let caught = map(&[
        ("match_1", "1.2.3".to_string()),
        ("version", "1.2.3".to_string()),
        ("env", "dev".to_string()),
    ]);
    assert_eq!(
        resolve_with_trigger(&decls, &given, &caught),
        Ok(caught.clone())
    );
    // A declared var the trigger caught must still fit its pattern.
    let caught = map(&[
        ("match_1", "latest".to_string()),
        ("version", "latest".to_string()),
    ]);
    let errors = resolve_with_trigger(&decls, &given, &caught).expect_err("refused");
    assert!(
        matches!(&errors[..], [VarError::PatternMismatch { name, .. }] if name == "version"),
        "{errors:?}"
    );
    // Without a trigger, the same execute-time names are still refused when undeclared.
    let errors = resolve_with_trigger(
        &decls,
        &map(&[("match_1", "x".to_string())]),
        &BTreeMap::new(),
    )
    .expect_err("refused");
    assert!(matches!(&errors[0], VarError::Undeclared { name, .. } if name == "match_1"));
}

#[test]
fn resolve_checks_defaults_and_missing_required_with_default() {
    let decls = map(&[("level", decl(true, Some("^[0-9]$"), Some("5")))]);
    assert_eq!(
        resolve_vars(&decls, &BTreeMap::new()),
        Ok(map(&[("level", "5".to_string())]))
    );
    let decls = map(&[("level", decl(false, Some("^[0-9]$"), Some("high")))]);
    let errors = resolve_vars(&decls, &BTreeMap::new()).expect_err("default fails pattern");
    assert!(matches!(&errors[..], [VarError::PatternMismatch { name, .. }] if name == "level"));
}

#[test]
fn resolve_refuses_names_that_collide_in_the_environment() {
    let given = map(&[("version", "1".to_string()), ("VERSION", "2".to_string())]);
    let errors = resolve_vars(&BTreeMap::new(), &given).expect_err("collision");
    assert_eq!(
        errors,
        vec![VarError::EnvCollision {
            first: "VERSION".to_string(),
            second: "version".to_string(),
            env: "SOP_VAR_VERSION".to_string(),
        }]
    );
    assert_eq!(
        errors[0].to_string(),
        "variables `VERSION` and `version` would both set `SOP_VAR_VERSION`"
    );
}

#[test]
fn redacts_every_encoding() {
    let secret = "s3cr3t value/+?&é";
    let redactor = Redactor::new([secret.to_string()]);
    assert!(!redactor.is_empty());
    let forms = [
        secret.to_string(),
        STANDARD.encode(secret),
        STANDARD_NO_PAD.encode(secret),
        URL_SAFE.encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
        "s3cr3t%20value%2F%2B%3F%26%C3%A9".to_string(),
        "s3cr3t+value%2F%2B%3F%26%C3%A9".to_string(),
    ];
    for form in forms {
        let text = format!("before {form} after");
        assert_eq!(redactor.redact(&text), "before *** after", "form `{form}`");
    }
}

#[test]
fn redacts_unreserved_url_encoding() {
    let secret = "my-secret_key.v1~x!";
    let redactor = Redactor::new([secret.to_string()]);
    assert_eq!(
        redactor.redact("token=my-secret_key.v1~x%21&a=1"),
        "token=***&a=1"
    );
    assert_eq!(
        redactor.redact("token=my%2Dsecret%5Fkey%2Ev1%7Ex%21"),
        "token=***"
    );
}

#[test]
fn redacts_base64_inside_a_larger_blob() {
    let secret = "hunter2-correct-horse";
    let redactor = Redactor::new([secret.to_string()]);
    for user in ["u", "us", "usr", "admin"] {
        let header = format!(
            "Authorization: Basic {}",
            STANDARD.encode(format!("{user}:{secret}"))
        );
        let redacted = redactor.redact(&header);
        assert!(redacted.contains("***"), "{header} -> {redacted}");
        // Whatever is left cannot decode back to the secret.
        assert!(
            !redacted.contains(&STANDARD_NO_PAD.encode(&secret[..9])),
            "{redacted}"
        );
    }
}

#[test]
fn redaction_details() {
    let redactor = Redactor::new([
        "abc".to_string(),
        "abcdef".to_string(),
        "xy".to_string(),
        String::new(),
    ]);
    // Longest first; short values (under 3 characters) are ignored.
    assert_eq!(redactor.redact("abcdef abc abcde xy"), "*** *** ***de xy");
    assert_eq!(redactor.redact("abcabc"), "******");
    assert_eq!(
        redactor.redact("no secrets, ✓ ünïcode"),
        "no secrets, ✓ ünïcode"
    );
    assert_eq!(redactor.redact(""), "");

    let empty = Redactor::new(["", "a", "ab"].map(str::to_string));
    assert!(empty.is_empty());
    assert_eq!(empty.redact("a ab abc"), "a ab abc");

    let unicode = Redactor::new(["ünï".to_string()]);
    assert_eq!(unicode.redact("xünïy"), "x***y");

    // Debug output never shows the secrets.
    assert!(!format!("{redactor:?}").contains("abc"));
}
