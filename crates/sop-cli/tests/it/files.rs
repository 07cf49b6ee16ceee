//! `init`, `validate`, `list`, `show` over real files: the seed examples and the
//! compatibility corpus.

use std::path::Path;
use std::time::Duration;

use crate::support::{wait_child, wait_run, Home};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn seed_home() -> Home {
    let home = Home::new();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed"),
        &home.file("sops"),
    );
    home
}

#[test]
fn seed_examples_validate_and_run() {
    let home = seed_home();
    home.run(&["validate"])
        .ok()
        .stderr_has("3 of 3 SOP(s) valid");
    home.run(&["run", "db-backup"])
        .ok()
        .stdout_has("integrity ok");

    // deploy-production: supervised start approval, then step 3 and 5 approvals.
    let child = home.spawn(&["run", "deploy-production"]);
    let id = wait_run(&home, "deploy-production");
    for gate in ["start", "step 3", "step 5"] {
        home.wait_status(&id, |v| v["waiting"]["gate"] == gate);
        home.run(&["approve", &id]).ok();
    }
    wait_child(child, Duration::from_secs(30))
        .ok()
        .stdout_has("deployed to production");

    // security-patch: the pre_patch gate and the supervised start, then the verification.
    let child = home.spawn(&["run", "security-patch"]);
    let id = wait_run(&home, "security-patch");
    for gate in ["gate pre_patch", "start"] {
        home.wait_status(&id, |v| v["waiting"]["gate"] == gate);
        home.run(&["approve", &id]).ok();
    }
    wait_child(child, Duration::from_secs(30))
        .ok()
        .stdout_has("audit clean");
    assert_eq!(
        home.status_json(&id)["gates"]["post_patch"]["status"],
        "success"
    );
}

#[test]
fn compat_corpus_validates_without_errors_and_runs_code_less_steps_as_manual() {
    let home = Home::new();
    let compat = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/compat");
    for group in ["upgraded-carnival", "zeroclaw-docs"] {
        for entry in std::fs::read_dir(compat.join(group)).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                copy_dir(
                    &entry.path(),
                    &home.file(&format!("sops/{}", entry.file_name().to_string_lossy())),
                );
            }
        }
    }
    let out = home.run(&["validate"]);
    out.ok()
        .stderr_has("4 of 4 SOP(s) valid")
        .stderr_has(" 0 error(s)");

    // daily-digest is automatic with two manual steps.
    let child = home.spawn(&["run", "daily-digest"]);
    let id = wait_run(&home, "daily-digest");
    for _ in 0..2 {
        home.wait_status(&id, |v| v["status"] == "waiting_confirmation");
        home.run(&["confirm", &id]).ok();
        std::thread::sleep(Duration::from_millis(10));
    }
    wait_child(child, Duration::from_secs(30)).ok();
    assert_eq!(home.status_json(&id)["status"], "success");
}

#[test]
fn invalid_sop_reports_every_problem_and_others_still_load() {
    let home = Home::new();
    home.simple(
        "good",
        "",
        "## Steps\n\n1. **Go**\n   ```bash\n   true\n   ```\n",
    );
    home.sop(
        "bad",
        "[sop]\nname = \"bad\"\ndescription = \"x\"\npriorty = \"high\"\n",
        "## Steps\n\n1. **Deploy** [requires_aproval: true]\n   ```bash\n   true\n   ```\n",
    );
    let out = home.run(&["validate"]);
    out.code(2)
        .stderr_has("sops/bad/SOP.toml:4:1")
        .stderr_has("did you mean `priority`")
        .stderr_has("sops/bad/SOP.md:3:")
        .stderr_has("did you mean `requires_approval`")
        .stderr_has("1 of 2 SOP(s) valid");
    home.run(&["list"])
        .ok()
        .stdout_has("good")
        .stderr_has("bad");
    home.run(&["run", "bad"]).code(2);
}

#[test]
fn init_is_idempotent_and_validates() {
    let home = Home::new();
    home.run(&["init"]).ok().stderr_has("sops/hello/SOP.toml");
    home.run(&["init"]).ok().stderr_has("nothing changed");
    home.run(&["validate"]).ok();
    home.run(&["show", "hello"]).ok().stdout_has("Greet");
}

#[test]
fn validate_takes_names_not_paths() {
    let home = Home::new();
    for arg in ["../other/sops/x", "sops/x", ".hidden"] {
        home.run(&["validate", arg])
            .code(2)
            .stderr_has(&format!("`{arg}` is not a SOP name"))
            .stderr_has("sop --home DIR validate");
    }
}

#[test]
fn audit_verify_finds_altered_removed_and_stray_files_and_a_broken_ledger() {
    let home = Home::new();
    home.simple(
        "hello",
        "",
        "## Steps\n\n1. **Hi**\n   ```bash\n   echo \"hi $who\"\n   ```\n",
    );
    home.run(&["run", "hello", "--var", "who=a"]).ok();
    home.run(&["run", "hello", "--var", "who=b"]).ok();
    let out = home.run(&["audit", "verify"]);
    out.ok()
        .stdout_has("hash chain intact; head: event ")
        .stdout_has("audit files: 2 read; 0 missing, 0 altered, 0 unknown");

    let files = home.audit_files("hello");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    std::fs::write(
        &files[0],
        text.replacen("\"who\": \"a\"", "\"who\": \"z\"", 1),
    )
    .unwrap();
    home.run(&["audit", "verify"])
        .code(1)
        .stdout_has("1 altered")
        .stdout_has("`/vars/who` differs from the store");
    std::fs::rename(&files[1], files[1].with_file_name("stray.json")).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&home.run(&["audit", "verify", "--json"]).code(1).stdout).unwrap();
    assert_eq!(v["missing"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(
        v["unknown"],
        serde_json::json!(["logs/sop/hello/stray.json"]),
        "{v}"
    );
    assert_eq!(v["ledger_broken_at"], serde_json::Value::Null);

    let db = rusqlite::Connection::open(home.file("state/sop.db")).unwrap();
    db.execute("UPDATE events SET at = at + 1 WHERE seq = 2", [])
        .unwrap();
    drop(db);
    home.run(&["audit", "verify"])
        .code(1)
        .stdout_has("the hash chain breaks at event 2");
}
