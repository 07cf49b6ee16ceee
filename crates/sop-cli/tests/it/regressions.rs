//! Regression tests for defects found in review: each names what went wrong before.

use std::time::Duration;

use crate::support::{only_run, wait_child, wait_for, wait_run, Home};

/// Before: the cancel that started the rollback also killed the rollback's steps.
#[test]
fn cancel_lets_the_whole_rollback_run() {
    let home = Home::new();
    home.simple(
        "rb",
        "",
        "## Steps\n\n1. **Long**\n   ```bash\n   echo started > started\n   sleep 30\n   ```\n\n## Rollback\n\n1. **Undo 1**\n   ```bash\n   echo undo-1-start\n   sleep 0.5\n   echo undo-1-done\n   ```\n\n2. **Undo 2**\n   ```bash\n   echo undo-2\n   ```\n",
    );
    let id = home
        .run(&["run", "rb", "--detach"])
        .ok()
        .stdout
        .trim()
        .to_string();
    wait_for(Duration::from_secs(20), || {
        home.file("sops/rb/started").exists().then_some(())
    })
    .expect("step started");
    home.run(&["cancel", &id]).ok();
    let v = home.wait_status(&id, |v| v["status"] == "cancelled");
    assert_eq!(v["rollback"][0]["status"], "success", "{v}");
    assert!(v["rollback"][0]["output"]
        .as_str()
        .unwrap()
        .contains("undo-1-done"));
    assert_eq!(v["rollback"][1]["status"], "success", "{v}");
}

/// Before: a step that could not start stayed `running`, then became `interrupted`.
#[test]
fn a_step_that_cannot_start_fails_and_rolls_back() {
    let home = Home::new();
    home.simple(
        "nowd",
        "",
        "## Steps\n\n1. **Elsewhere** [workdir: does-not-exist]\n   ```bash\n   true\n   ```\n\n## Rollback\n\n1. **Undo**\n   ```bash\n   echo undone\n   ```\n",
    );
    home.run(&["run", "nowd"]).code(1);
    let v = home.status_json(&only_run(&home, "nowd"));
    assert_eq!(v["status"], "failure", "{v}");
    assert_eq!(v["steps"][0]["status"], "failure");
    assert!(
        v["steps"][0]["output"]
            .as_str()
            .unwrap()
            .contains("cannot start"),
        "{v}"
    );
    assert_eq!(v["rollback"][0]["status"], "success");
}

/// Before: a secret set by a step through `$SOP_OUTPUT` appeared in later output.
#[test]
fn secrets_set_during_the_run_are_redacted_too() {
    let home = Home::new();
    home.simple(
        "late-secret",
        "[vars]\napi_token = { secret = true }",
        "## Steps\n\n1. **Fetch**\n   ```bash\n   echo \"api_token=hunter2hunter2\" >> \"$SOP_OUTPUT\"\n   ```\n\n2. **Use**\n   ```bash\n   echo \"token is $api_token\"\n   ```\n",
    );
    let out = home.run(&["run", "late-secret"]);
    out.ok();
    assert!(!out.stdout.contains("hunter2"), "{}", out.stdout);
    let id = only_run(&home, "late-secret");
    let everything = format!(
        "{}{}",
        home.run(&["status", &id, "--json"]).stdout,
        home.run(&["logs", &id]).stdout
    );
    assert!(!everything.contains("hunter2"), "{everything}");
    assert!(everything.contains("token is ***"));
}

/// Before: the live output table grew without bound.
#[test]
fn live_output_stored_per_step_is_bounded() {
    let home = Home::new();
    std::fs::write(home.file("sop.toml"), "step_output_limit = \"4KiB\"\n").unwrap();
    home.simple("loud", "", "## Steps\n\n1. **Loud**\n   ```bash\n   for i in $(seq 1 20000); do echo 0123456789; done\n   ```\n");
    home.run(&["run", "loud"]).ok();
    let id = only_run(&home, "loud");
    let logs = home.run(&["logs", &id]).stdout;
    assert!(logs.len() < 6_000, "{} bytes stored live", logs.len());
    assert!(logs.contains("not stored live"));
    let v = home.status_json(&id);
    assert!(
        v["steps"][0]["output"]
            .as_str()
            .unwrap()
            .contains("bytes cut"),
        "the record keeps head and tail"
    );
}

/// Before: a SOP named like the start of another SOP's run id acted on that run.
#[test]
fn a_sop_name_is_never_taken_as_a_run_id_prefix() {
    let home = Home::new();
    home.simple(
        "other",
        "execution_mode = \"supervised\"",
        "## Steps\n\n1. **Go**\n   ```bash\n   true\n   ```\n",
    );
    let id = home
        .run(&["run", "other", "--detach"])
        .ok()
        .stdout
        .trim()
        .to_string();
    home.wait_status(&id, |v| v["status"] == "waiting_approval");
    let prefix: String = id.chars().take(4).collect();
    home.simple(
        &prefix,
        "",
        "## Steps\n\n1. **Go**\n   ```bash\n   true\n   ```\n",
    );
    home.run(&["cancel", &prefix])
        .code(1)
        .stderr_has(&format!("no run of `{prefix}` is active"));
    assert_eq!(
        home.status_json(&id)["status"],
        "waiting_approval",
        "the other SOP's run is untouched"
    );
    home.run(&["cancel", &id]).ok();
}

/// `--gate` refuses a decision once the run waits at another gate.
#[test]
fn approve_with_gate_refuses_a_gate_the_run_no_longer_waits_at() {
    let home = Home::new();
    home.simple("sbs", "execution_mode = \"step_by_step\"", "## Steps\n\n1. **One**\n   ```bash\n   true\n   ```\n\n2. **Two**\n   ```bash\n   true\n   ```\n");
    let child = home.spawn(&["run", "sbs"]);
    let id = wait_run(&home, "sbs");
    home.wait_status(&id, |v| v["waiting"]["gate"] == "step 1");
    home.run(&["approve", &id, "--gate", "step 1"]).ok();
    home.wait_status(&id, |v| v["waiting"]["gate"] == "step 2");
    home.run(&["approve", &id, "--gate", "step 1"])
        .code(1)
        .stderr_has("now waits at `step 2`");
    home.run(&["approve", &id, "--gate", "step 2"]).ok();
    wait_child(child, Duration::from_secs(20)).ok();
}

/// SPEC §8: when the audit directory cannot be written, no new step starts and the run is
/// marked as errored.
#[test]
fn no_step_starts_without_an_audit_trail() {
    let home = Home::new();
    home.simple(
        "blind",
        "",
        "## Steps\n\n1. **Break the audit directory**\n   ```bash\n   rm -rf ../../logs && touch ../../logs\n   ```\n\n2. **Must not run**\n   ```bash\n   touch ran\n   ```\n",
    );
    let out = home.run(&["run", "blind"]);
    out.code(1).stderr_has("cannot write the audit file");
    assert!(
        !home.file("sops/blind/ran").exists(),
        "step 2 ran without an audit trail"
    );
    let v = home.status_json(&only_run(&home, "blind"));
    assert_eq!(v["status"], "failure", "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("audit file"),
        "{v}"
    );
    // Step 2 was started ahead, held at its gate, and recorded with its pid by the commit
    // whose audit rewrite failed: it never ran, and is recorded so.
    let step2 = &v["steps"][1];
    assert_eq!(step2["status"], "failure", "{v}");
    assert!(
        step2["reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with("not started"),
        "{v}"
    );
}

/// Before: `sop show --json` printed the default of a secret variable.
#[test]
fn show_json_hides_secret_defaults() {
    let home = Home::new();
    home.simple(
        "sec",
        "[vars]\ntoken = { secret = true, default = \"hunter2hunter2\" }",
        "## Steps\n\n1. **Go**\n   ```bash\n   true\n   ```\n",
    );
    let out = home.run(&["show", "sec", "--json"]);
    out.ok();
    assert!(!out.stdout.contains("hunter2"), "{}", out.stdout);
    assert!(
        out.stdout.contains("\"default\": \"***\""),
        "{}",
        out.stdout
    );
}

/// Review of the per-run `$SOP_OUTPUT` file: it exists when each step starts, holds only
/// that step's lines, and is gone when the run ends.
#[test]
fn sop_output_exists_for_each_step_and_is_emptied_between_steps() {
    let home = Home::new();
    home.simple(
        "outputs",
        "",
        "## Steps\n\n1. **Set**\n   ```bash\n   test -f \"$SOP_OUTPUT\"\n   echo \"first=1\" >> \"$SOP_OUTPUT\"\n   ```\n\n2. **Again**\n   ```bash\n   test -f \"$SOP_OUTPUT\"\n   test ! -s \"$SOP_OUTPUT\"\n   echo \"second=$first\" >> \"$SOP_OUTPUT\"\n   ```\n\n3. **Show**\n   ```bash\n   echo \"got $first and $second\"\n   ```\n",
    );
    let out = home.run(&["run", "outputs"]);
    out.ok();
    assert!(out.stdout.contains("got 1 and 1"), "{}", out.stdout);
    let scratch: Vec<_> = std::fs::read_dir(home.file("state/tmp"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(scratch.is_empty(), "left behind: {scratch:?}");
}
