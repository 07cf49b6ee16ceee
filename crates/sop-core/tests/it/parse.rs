//! `parse_sop` against the fixture corpus (`tests/fixtures/{invalid,valid}/<case>/`), the
//! compatibility corpus in `shared/compat`, and inputs built in code (oversized files).
//!
//! Each case snapshots the exact rendered diagnostics; valid cases also snapshot the `Sop`.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use sop_core::parse::MAX_FILE_BYTES;
use sop_core::{parse_sop, Diagnostic, Sop, SopFiles};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read(path: &Path) -> Option<Vec<u8>> {
    fs::read(path).ok()
}

/// Parses `dir` as the loader would, with display paths `sops/<name>/SOP.*`.
fn parse_dir(dir: &Path) -> (Option<Sop>, Vec<Diagnostic>) {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("utf-8 directory name");
    let toml = read(&dir.join("SOP.toml"));
    let md = read(&dir.join("SOP.md"));
    parse_files(name, toml.as_deref(), md.as_deref())
}

fn parse_files(
    name: &str,
    toml: Option<&[u8]>,
    md: Option<&[u8]>,
) -> (Option<Sop>, Vec<Diagnostic>) {
    let toml_path = format!("sops/{name}/SOP.toml");
    let md_path = format!("sops/{name}/SOP.md");
    parse_sop(&SopFiles {
        dir_name: name,
        toml_path: &toml_path,
        toml,
        md_path: &md_path,
        md,
    })
}

fn render(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(Diagnostic::render)
        .collect::<Vec<_>>()
        .join("\n")
}

/// An invalid case: no `Sop`, at least one error, and exactly the snapshotted text.
fn check_invalid(case: &str) {
    let (sop, diags) = parse_dir(&fixtures().join("invalid").join(case));
    assert!(sop.is_none(), "{case}: a sop came back despite errors");
    assert!(
        diags.iter().any(Diagnostic::is_error),
        "{case}: no error reported:\n{}",
        render(&diags)
    );
    insta::assert_snapshot!(format!("invalid-{case}"), render(&diags));
}

/// A valid case: a `Sop`, no error, and the snapshotted warnings and `Sop`.
fn check_valid(case: &str) {
    let (sop, diags) = parse_dir(&fixtures().join("valid").join(case));
    assert!(
        !diags.iter().any(Diagnostic::is_error),
        "{case}: errors:\n{}",
        render(&diags)
    );
    let sop = sop.expect("a valid case yields a sop");
    let json = serde_json::to_string_pretty(&sop).expect("a sop serialises");
    insta::assert_snapshot!(
        format!("valid-{case}"),
        format!("{}\n--- sop ---\n{json}", render(&diags))
    );
}

macro_rules! cases {
    ($check:ident: $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $check(&stringify!($case).replace('_', "-"));
            }
        )*
        #[test]
        fn every_fixture_directory_has_a_test() {
            let kind = if stringify!($check) == "check_valid" { "valid" } else { "invalid" };
            let mut on_disk: Vec<String> = fs::read_dir(fixtures().join(kind))
                .expect("fixture directory")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            on_disk.sort();
            let mut listed: Vec<String> = [$(stringify!($case)),*].iter().map(|c| c.replace('_', "-")).collect();
            listed.sort();
            assert_eq!(on_disk, listed);
        }
    };
}

mod invalid {
    use super::check_invalid;
    use super::{fixtures, fs};

    cases!(check_invalid:
    agent_key_and_typo,
    annotation_without_colon,
    approvers_not_strings,
    bad_bool_annotation,
    bad_catch_up,
    bad_condition_column,
    bad_condition_quoted,
    bad_cron,
    bad_cron_fields,
    bad_file_event,
    bad_glob,
    bad_outputs_name,
    bad_regex,
    bad_secret_env,
    bad_shell_annotation,
    bad_timeout,
    bad_timezone,
    bad_var_pattern,
    bad_webhook_path,
    file_watch_escapes,
    datetime_value,
    duplicate_annotation,
    duplicate_key,
    duplicate_steps_section,
    empty_md,
    empty_toml,
    gate_bad_at,
    gate_before_missing_step,
    gate_misspelt_key,
    gate_without_at,
    invalid_var_name,
    malformed_toml,
    max_concurrent_zero,
    missing_both,
    missing_description,
    missing_md,
    missing_name,
    missing_sop_table,
    missing_title,
    misspelt_annotation,
    misspelt_manifest_key,
    misspelt_step_bullet,
    misspelt_trigger_type,
    multiple_errors_both,
    multiple_errors_md,
    multiple_errors_toml,
    name_mismatch,
    name_uppercase,
    name_with_dotdot,
    negative_cooldown,
    no_steps,
    no_steps_section,
    non_utf8,
    refused_var_path,
    retry_not_number,
    retry_too_large,
    step_workdir_escape,
    steps_wrong_level,
    trigger_missing_type,
    triggers_not_array,
    unclosed_annotation_group,
    unclosed_fence,
    unclosed_title,
    unknown_execution_mode,
    unknown_gate_type,
    unknown_priority,
    unknown_trigger_key,
    unknown_var_subkey,
    unterminated_quote,
    var_default_not_matching,
    var_default_wrong_type,
    verification_without_command,
    workdir_absolute,
    workdir_escape,
    wrong_type,
    wrong_type_bool,
    zero_timeout,
    );
}

mod valid {
    use super::check_valid;
    use super::{fixtures, fs};

    cases!(check_valid:
    all_manifest_fields,
    cron_never_matches,
    db_backup,
    deploy_production,
    fences_each_language,
    indented_fence,
    quoted_commas,
    reserved_group_name,
    rollback,
    security_patch,
    several_bracket_groups,
    step_number_gap,
    sub_bullets,
    variable_sources,
    zeroclaw_unsupported,
    );
}

#[test]
fn oversized_file_is_refused_unread() {
    let big = vec![b'#'; usize::try_from(MAX_FILE_BYTES).expect("fits") + 1];
    let toml = b"[sop]\nname = \"big\"\ndescription = \"fixture\"\n";
    let (sop, diags) = parse_files("big", Some(toml), Some(&big));
    assert!(sop.is_none());
    insta::assert_snapshot!("oversized-md", render(&diags));
}

#[test]
fn file_at_the_limit_is_read() {
    let mut md = b"## Steps\n\n1. **Only**\n".to_vec();
    md.resize(usize::try_from(MAX_FILE_BYTES).expect("fits"), b' ');
    let toml = b"[sop]\nname = \"edge\"\ndescription = \"fixture\"\n";
    let (sop, diags) = parse_files("edge", Some(toml), Some(&md));
    assert!(diags.is_empty(), "{}", render(&diags));
    assert_eq!(sop.expect("sop").steps.len(), 1);
}

#[test]
fn compat_corpus_has_no_errors() {
    let root = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/compat"
    ));
    let mut dirs = Vec::new();
    for group in fs::read_dir(root).expect("shared/compat exists") {
        let group = group.expect("entry").path();
        if !group.is_dir() {
            continue;
        }
        for sop in fs::read_dir(&group).expect("group") {
            let sop = sop.expect("entry").path();
            if sop.join("SOP.toml").exists() {
                dirs.push(sop);
            }
        }
    }
    dirs.sort();
    assert!(dirs.len() >= 4, "compat corpus not found: {dirs:?}");
    let mut report = String::new();
    for dir in &dirs {
        let (sop, diags) = parse_dir(dir);
        assert!(
            !diags.iter().any(Diagnostic::is_error),
            "{}:\n{}",
            dir.display(),
            render(&diags)
        );
        let sop = sop.expect("no errors, so a sop");
        writeln!(report, "== {} ({} steps)", sop.name, sop.steps.len())
            .expect("writing to a string");
        report.push_str(&render(&diags));
    }
    insta::assert_snapshot!("compat-corpus", report);
}

#[test]
fn every_diagnostic_points_into_its_line() {
    for kind in ["invalid", "valid"] {
        for entry in fs::read_dir(fixtures().join(kind)).expect("fixtures") {
            let (_, diags) = parse_dir(&entry.expect("entry").path());
            for d in diags.iter().filter(|d| d.line > 0) {
                let line = d
                    .source_line
                    .as_deref()
                    .expect("a line diagnostic shows its line");
                let width = line.chars().count() as u32;
                assert!(
                    d.col + d.len - 1 <= width + 1,
                    "{}:{}:{} len {} past the line: {line:?}",
                    d.path,
                    d.line,
                    d.col,
                    d.len
                );
            }
            for d in &diags {
                assert!(!d.message.ends_with('.'), "trailing period: {}", d.message);
                assert!(
                    !d.message.starts_with(char::is_uppercase),
                    "capitalised: {}",
                    d.message
                );
            }
        }
    }
}

#[test]
fn vars_table_refuses_what_check_var_name_refuses() {
    let names = [
        "PATH",
        "LD_PRELOAD",
        "SOP_X",
        "BASH_FUNC_x",
        "http_proxy",
        "HTTPS_PROXY",
        "NODE_PATH",
        "USER",
        "1st",
    ];
    let mut toml = String::from("[sop]\nname = \"refused\"\ndescription = \"fixture\"\n\n[vars]\n");
    for name in names {
        writeln!(toml, "  \"{name}\" = \"x\"").expect("writing to a string");
    }
    let md = b"# Refused\n\n## Steps\n\n1. **Only**\n";
    let (sop, diags) = parse_files("refused", Some(toml.as_bytes()), Some(md));
    assert!(sop.is_none());
    assert_eq!(diags.len(), names.len(), "{}", render(&diags));
    for ((name, diag), line) in names.iter().zip(&diags).zip(6..) {
        let err = sop_core::vars::check_var_name(name).expect_err(name);
        assert_eq!(diag.path, "sops/refused/SOP.toml");
        assert_eq!((diag.line, diag.col), (line, 3), "{name}");
        assert_eq!(diag.message, err.to_string());
        assert_eq!(diag.help, err.help());
    }
}

#[test]
fn vars_table_accepts_what_check_var_name_accepts() {
    let toml = b"[sop]\nname = \"ok\"\ndescription = \"fixture\"\n\n[vars]\nversion = \"1\"\npath = \"x\"\nSKIP_ENV_CHECK = \"no\"\nLANG = \"C\"\n";
    let md = b"# Ok\n\n## Steps\n\n1. **Only**\n";
    let (sop, diags) = parse_files("ok", Some(toml), Some(md));
    assert!(diags.is_empty(), "{}", render(&diags));
    assert_eq!(sop.expect("sop").vars.len(), 4);
}

#[test]
fn non_ascii_before_an_output_assignment_does_not_panic() {
    let toml = b"[sop]\nname = \"x\"\ndescription = \"d\"\n";
    let md = "## Steps\n\n1. **Go**\n   ```bash\n   echo \"a\u{df}=1 \u{e9}t\u{e9}=2 ok=3\" >> \"$SOP_OUTPUT\"\n   ```\n\n2. **Then** [if: ok]\n   ```bash\n   true\n   ```\n";
    let files = sop_core::SopFiles {
        dir_name: "x",
        toml_path: "sops/x/SOP.toml",
        toml: Some(toml),
        md_path: "sops/x/SOP.md",
        md: Some(md.as_bytes()),
    };
    let (sop, diags) = sop_core::parse_sop(&files);
    assert!(sop.is_some(), "{diags:?}");
    assert!(
        diags.iter().all(|d| !d.message.contains("`ok`")),
        "`ok` is set by step 1: {diags:?}"
    );
}
