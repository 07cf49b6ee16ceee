//! Crash safety: `kill -9` of the process running a step, then `sop resume`.

use std::time::Duration;

use crate::approvals::group_members;
use crate::support::{wait_child, wait_for, wait_run, Home};

fn start_and_kill(home: &Home, sop: &str) -> (String, i32) {
    let mut child = home.spawn(&["run", sop]);
    let id = wait_run(home, sop);
    let pid_file = home.file(&format!("sops/{sop}/group.pid"));
    let pgid: i32 = wait_for(Duration::from_secs(20), || {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    })
    .expect("the step wrote its pid");
    nix_kill9(child.id() as i32);
    child.wait().unwrap();
    (id, pgid)
}

fn nix_kill9(pid: i32) {
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
}

#[test]
fn kill_9_mid_step_leaves_the_step_interrupted_and_resume_continues() {
    let home = Home::new();
    home.simple(
        "crashy",
        "",
        "## Steps\n\n1. **Count** \n   ```bash\n   echo run >> runs.log\n   echo $$ > group.pid\n   [ -f go ] || sleep 100\n   ```\n\n2. **After**\n   ```bash\n   echo after > after.txt\n   ```\n",
    );
    let (id, pgid) = start_and_kill(&home, "crashy");
    let status = home.run(&["status", &id]);
    status
        .ok()
        .stdout_has("interrupted")
        .stdout_has(&format!("sop resume {id}"));
    let v = home.status_json(&id);
    assert_eq!(v["status"], "interrupted");
    assert_eq!(v["steps"][0]["status"], "interrupted");
    assert!(
        group_members(pgid).is_empty(),
        "the orphaned step group was killed"
    );
    assert_eq!(
        std::fs::read_to_string(home.file("sops/crashy/runs.log")).unwrap(),
        "run\n",
        "never re-run silently"
    );
    home.run(&["resume", &id]).code(2).stderr_has("--retry");
    std::fs::write(home.file("sops/crashy/go"), "").unwrap();
    let out = wait_child(
        home.spawn(&["resume", &id, "--retry"]),
        Duration::from_secs(20),
    );
    out.ok();
    let v = home.status_json(&id);
    assert_eq!(v["status"], "success");
    assert_eq!(v["steps"][0]["attempts"], 2);
    assert_eq!(
        std::fs::read_to_string(home.file("sops/crashy/runs.log")).unwrap(),
        "run\nrun\n"
    );
    assert!(home.file("sops/crashy/after.txt").exists());
}

#[test]
fn idempotent_step_is_rerun_with_the_same_key() {
    let home = Home::new();
    home.simple(
        "idem",
        "",
        "## Steps\n\n1. **Idem** [idempotent: true]\n   ```bash\n   echo \"$SOP_IDEMPOTENCY_KEY\" >> keys.log\n   echo $$ > group.pid\n   [ -f go ] || sleep 100\n   ```\n",
    );
    let (id, _) = start_and_kill(&home, "idem");
    std::fs::write(home.file("sops/idem/go"), "").unwrap();
    // Any sop command recovers the run; the idempotent step is retried by itself.
    home.run(&["runs"]).ok();
    let v = home.wait_status(&id, |v| v["status"] == "success");
    assert_eq!(v["steps"][0]["attempts"], 2);
    let keys = std::fs::read_to_string(home.file("sops/idem/keys.log")).unwrap();
    let lines: Vec<&str> = keys.lines().collect();
    assert_eq!(lines.len(), 2, "{keys}");
    assert_eq!(lines[0], lines[1], "same SOP_IDEMPOTENCY_KEY");
}

#[test]
fn max_concurrent_holds_across_processes() {
    let home = Home::new();
    home.simple("one", "max_concurrent = 1", "## Steps\n\n1. **Hold**\n   ```bash\n   echo $SOP_RUN_ID >> active.log\n   while [ ! -f release ]; do sleep 0.05; done\n   ```\n");
    let a = home.spawn(&["run", "one"]);
    let first = wait_run(&home, "one");
    home.wait_status(&first, |v| v["status"] == "running");
    let b = home.spawn(&["run", "one"]);
    let second = wait_for(Duration::from_secs(20), || {
        let out = home.run(&["runs", "--sop", "one", "--status", "queued", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
        v.as_array()?.first()?["id"].as_str().map(String::from)
    })
    .expect("second run queued");
    home.run(&["status", &second])
        .ok()
        .stdout_has("slot held by run")
        .stdout_has(&first);
    let log = std::fs::read_to_string(home.file("sops/one/active.log")).unwrap();
    assert_eq!(log.lines().count(), 1, "only one run executing");
    std::fs::write(home.file("sops/one/release"), "").unwrap();
    wait_child(a, Duration::from_secs(20)).ok();
    wait_child(b, Duration::from_secs(20)).ok();
    assert_eq!(home.status_json(&second)["status"], "success");
}
