//! The rest of the CLI contract: approval deadlines, priorities, `--skip-approval`, quorum
//! and approvers, `logs -f`, audit files read mid-run, `confirm --failed`, cancel of a queued
//! run, read commands, exit codes, and approving in place at a terminal.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{wait_child, wait_for, wait_run, Home};

const ONE_STEP: &str = "## Steps\n\n1. **Go**\n   ```bash\n   echo going\n   ```\n";

/// `sop run <sop> --detach`, returning the run id.
fn detach(home: &Home, args: &[&str]) -> String {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.push("--detach");
    home.run(&all).ok().stdout.trim().to_string()
}

fn approvals(v: &serde_json::Value) -> Vec<String> {
    v["approvals"]
        .as_array()
        .expect("approvals")
        .iter()
        .map(|a| a["decision"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Everything a child writes to a pipe, collected by a thread as it arrives.
struct Collector {
    text: Arc<Mutex<String>>,
}

impl Collector {
    fn new(mut pipe: impl Read + Send + 'static) -> Collector {
        let text = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&text);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Collector { text }
    }

    fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    fn wait_for(&self, needle: &str, limit: Duration) {
        wait_for(limit, || self.text().contains(needle).then_some(()))
            .unwrap_or_else(|| panic!("{needle:?} never appeared; got:\n{}", self.text()));
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> i32 {
    let status = wait_for(limit, || child.try_wait().expect("try_wait")).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("process did not exit in {limit:?}")
    });
    status.code().unwrap_or(-1)
}

/// Whether `pid` is gone (or a zombie nobody reaped yet).
fn gone(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X")
    })
}

/// The three deadline stories each wait out real deadlines (1-2 s), so they run side by
/// side in one test rather than holding three of the test harness's threads.
#[test]
fn approval_deadlines_reject_escalate_and_apply_when_nobody_waits() {
    std::thread::scope(|s| {
        let stories = [
            s.spawn(deadline_rejects_in_the_waiting_process),
            s.spawn(deadline_with_escalate_keeps_waiting),
            s.spawn(deadline_of_a_run_nobody_waits_on_is_applied_by_the_next_command),
            s.spawn(deadline_after_a_step_ran_runs_the_rollback_in_the_waiting_process),
        ];
        for story in stories {
            if let Err(panic) = story.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
}

/// `approval_timeout_secs = 1`: `sop run` itself rejects at the deadline.
fn deadline_rejects_in_the_waiting_process() {
    let home = Home::new();
    home.simple(
        "slowpoke",
        "execution_mode = \"supervised\"\napproval_timeout_secs = 1",
        ONE_STEP,
    );
    let child = home.spawn(&["run", "slowpoke"]);
    let out = wait_child(child, Duration::from_secs(15));
    out.code(1);
    assert!(
        !out.stdout.contains("going"),
        "no step ran:\n{}",
        out.stdout
    );
    let id = crate::support::only_run(&home, "slowpoke");
    let v = home.status_json(&id);
    assert_eq!(v["status"], "timed_out");
    assert_eq!(v["approvals"][0]["decision"], "timed_out");
    assert_eq!(v["approvals"][0]["gate"], "start");
    assert_eq!(v["steps"][0]["status"], "pending");
}

/// `approval_timeout_action = "escalate"`: deadlines pass, the run keeps waiting.
fn deadline_with_escalate_keeps_waiting() {
    let home = Home::new();
    home.simple(
        "patient",
        "execution_mode = \"supervised\"\napproval_timeout_secs = 1\napproval_timeout_action = \"escalate\"",
        ONE_STEP,
    );
    let child = home.spawn(&["run", "patient"]);
    let id = wait_run(&home, "patient");
    // Two deadlines pass (about 2 s): each is escalated and the run keeps waiting.
    let v = home.wait_status(&id, |v| {
        approvals(v).iter().filter(|d| *d == "escalated").count() >= 2
    });
    assert_eq!(v["status"], "waiting_approval");
    assert!(
        approvals(&v).iter().all(|d| d == "escalated"),
        "{:?}",
        approvals(&v)
    );
    assert!(
        v["waiting"]["deadline"].is_string(),
        "a new deadline is set"
    );
    home.run(&["cancel", &id]).ok();
    wait_child(child, Duration::from_secs(15)).code(1);
    assert_eq!(home.status_json(&id)["status"], "cancelled");
}

/// The driver of a detached run dies; the deadline is applied by the next `sop` command.
fn deadline_of_a_run_nobody_waits_on_is_applied_by_the_next_command() {
    let home = Home::new();
    // 2 s rather than 1 leaves room to kill the driver before its own deadline passes.
    home.simple(
        "orphan",
        "execution_mode = \"supervised\"\napproval_timeout_secs = 2",
        ONE_STEP,
    );
    let id = detach(&home, &["orphan"]);
    home.wait_status(&id, |v| v["status"] == "waiting_approval");
    let pid = owner_pid(&home, &id);
    kill_and_wait_gone(pid);
    assert_eq!(
        home.status_json(&id)["status"],
        "waiting_approval",
        "the driver was killed before its deadline"
    );
    wait_past_deadline(&home, &id);
    let out = home.run(&["runs", "--json"]);
    out.ok();
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).expect("runs json");
    assert_eq!(rows[0]["id"], id.as_str());
    assert_eq!(rows[0]["status"], "timed_out", "{rows}");
    let v = home.status_json(&id);
    assert_eq!(v["status"], "timed_out");
    assert_eq!(v["approvals"][0]["decision"], "timed_out");
    assert_eq!(v["steps"][0]["status"], "pending", "no step ran");
}

/// The pid of the process driving `id` (from `sop runs --json`).
fn owner_pid(home: &Home, id: &str) -> i32 {
    wait_for(Duration::from_secs(10), || {
        let out = home.run(&["runs", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
        v.as_array()?.iter().find(|r| r["id"] == id)?["owner"]["pid"].as_i64()
    })
    .expect("a process drives the run") as i32
}

fn kill_and_wait_gone(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the driver");
    wait_for(Duration::from_secs(10), || gone(pid).then_some(())).expect("driver gone");
}

/// Waits, running no `sop` command, until the approval deadline of `id` has passed.
fn wait_past_deadline(home: &Home, id: &str) {
    let v = home.status_json(id);
    let deadline = chrono::DateTime::parse_from_rfc3339(
        v["waiting"]["deadline"].as_str().expect("a deadline"),
    )
    .expect("rfc3339 deadline");
    let limit = Instant::now() + Duration::from_secs(10);
    while chrono::Utc::now() <= deadline + chrono::Duration::milliseconds(50) {
        assert!(Instant::now() < limit, "the deadline {deadline} never came");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn priority_critical_makes_a_priority_based_sop_supervised() {
    let home = Home::new();
    home.simple("prio", "execution_mode = \"priority_based\"", ONE_STEP);
    let id = detach(&home, &["prio", "--priority", "critical"]);
    let v = home.wait_status(&id, |v| v["status"] == "waiting_approval");
    assert_eq!(v["waiting"]["gate"], "start");
    assert_eq!(v["priority"], "critical");
    assert_eq!(v["execution_mode"], "supervised");
    home.run(&["cancel", &id]).ok();

    // The SOP's own priority (medium) runs it automatically.
    home.run(&["run", "prio", "--priority", "low"])
        .ok()
        .stdout_has("going");

    let out = home.run(&["run", "prio", "--priority", "bogus"]);
    out.code(2).stderr_has("--priority bogus");
    let runs: serde_json::Value =
        serde_json::from_str(&home.run(&["runs", "--json"]).stdout).expect("runs json");
    assert_eq!(runs.as_array().map(Vec::len), Some(2), "no run for bogus");
}

#[test]
fn skip_approval_skips_approvals_but_not_manual_steps_and_is_audited() {
    let home = Home::new();
    home.sop(
        "careful",
        "[sop]\nname = \"careful\"\ndescription = \"d\"\nexecution_mode = \"step_by_step\"\n\n[gates]\npre_check = { type = \"approval\", required = true }\n",
        "## Steps\n\n1. **Risky** [requires_approval: true]\n   ```bash\n   echo risky\n   ```\n\n2. **Look at the dashboard**\n\n3. **After**\n   ```bash\n   echo after\n   ```\n",
    );
    let child = home.spawn(&["run", "careful", "--skip-approval"]);
    let id = wait_run(&home, "careful");
    let v = home.wait_status(&id, |v| v["status"] != "queued" && v["status"] != "running");
    assert_eq!(v["status"], "waiting_confirmation", "{v}");
    assert_eq!(v["waiting"]["gate"], "step 2");
    assert_eq!(v["steps"][0]["status"], "success");
    home.run(&["confirm", &id]).ok();
    let out = wait_child(child, Duration::from_secs(15));
    out.ok().stdout_has("risky").stdout_has("after");
    out.stderr_has("approvals skipped");
    let v = home.status_json(&id);
    assert_eq!(
        approvals(&v),
        ["confirmed"],
        "only the manual step was decided"
    );
    let files = home.audit_files("careful");
    let audit: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(audit["skip_approval"], true);
    assert_eq!(audit["status"], "success");
}

#[test]
fn required_approvals_counts_distinct_approvers() {
    let home = Home::new();
    home.simple(
        "quorum",
        "execution_mode = \"supervised\"\nrequired_approvals = 2",
        ONE_STEP,
    );
    let id = detach(&home, &["quorum"]);
    home.wait_status(&id, |v| v["status"] == "waiting_approval");
    home.run(&["approve", &id]).ok().stderr_has("1 of 2");
    home.run(&["approve", &id])
        .code(1)
        .stderr_has("already approved");
    let v = home.status_json(&id);
    assert_eq!(v["status"], "waiting_approval");
    assert_eq!(
        v["waiting"]["approved_by"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(v["waiting"]["required"], 2);
    assert_eq!(approvals(&v), ["approved"]);
    home.run(&["status", &id])
        .ok()
        .stdout_has("approvals: 1 of 2");
    home.run(&["cancel", &id]).ok();
    assert_eq!(
        home.wait_status(&id, |v| v["status"] != "waiting_approval")["status"],
        "cancelled"
    );
}

#[test]
fn approvers_list_refuses_anyone_else() {
    let home = Home::new();
    home.simple(
        "guarded",
        "execution_mode = \"supervised\"\napprovers = [\"someone-else\"]",
        ONE_STEP,
    );
    let id = detach(&home, &["guarded"]);
    home.wait_status(&id, |v| v["status"] == "waiting_approval");
    home.run(&["approve", &id])
        .code(1)
        .stderr_has("not allowed to approve")
        .stderr_has("someone-else");
    home.run(&["status", &id])
        .ok()
        .stdout_has("who may decide: someone-else");
    let v = home.status_json(&id);
    assert_eq!(v["status"], "waiting_approval");
    assert!(approvals(&v).is_empty());
    home.run(&["cancel", &id]).ok();
}

#[test]
fn logs_follow_prints_output_as_it_arrives_and_exits_when_the_run_ends() {
    let home = Home::new();
    home.simple(
        "chatty",
        "",
        "## Steps\n\n1. **Talk**\n   ```bash\n   echo first-line\n   while [ ! -f go ]; do sleep 0.05; done\n   echo second-line\n   ```\n\n2. **More**\n   ```bash\n   echo third-line\n   ```\n",
    );
    let run = home.spawn(&["run", "chatty"]);
    let id = wait_run(&home, "chatty");
    home.wait_status(&id, |v| v["status"] == "running");
    let mut logs = home
        .cmd()
        .args(["logs", &id, "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn logs");
    let seen = Collector::new(logs.stdout.take().expect("stdout"));
    seen.wait_for("first-line", Duration::from_secs(10));
    assert!(
        !seen.text().contains("second-line"),
        "the step is still blocked"
    );
    assert!(
        logs.try_wait().expect("try_wait").is_none(),
        "-f keeps following"
    );
    std::fs::write(home.file("sops/chatty/go"), "").unwrap();
    assert_eq!(wait_exit(&mut logs, Duration::from_secs(10)), 0);
    wait_child(run, Duration::from_secs(10)).ok();
    let text = seen.text();
    let first = text.find("first-line").expect("first");
    let second = text.find("second-line").expect("second");
    let third = text.find("third-line").expect("third");
    assert!(first < second && second < third, "{text}");
    assert!(text.contains("==> step 2"), "a header per step:\n{text}");
}

#[test]
fn audit_file_is_valid_json_at_every_moment() {
    let home = Home::new();
    let mut md = String::from("## Steps\n\n");
    // Enough steps that the run outlasts the wait for its file (50 ms polls) with rewrites
    // to race: steps take ~1.3 ms each here.
    for i in 1..=200 {
        let _ = write!(md, "{i}. **Step {i}**\n   ```bash\n   true\n   ```\n\n");
    }
    home.simple("many", "", &md);
    let mut child = home.spawn(&["run", "many"]);
    let file = wait_for(Duration::from_secs(10), || {
        home.audit_files("many").into_iter().next()
    })
    .expect("an audit file appears");
    let (mut reads, mut stalled) = (0u32, 0u32);
    let mut statuses = std::collections::BTreeSet::new();
    loop {
        let finished = child.try_wait().expect("try_wait").is_some();
        let since = Instant::now();
        let bytes = std::fs::read(&file).expect("the audit file never disappears");
        let v: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            // A reader stalled between its open and its read until the next rewrite filled
            // the file it opened in place (that takes a step, over 1 ms) may read a mix of
            // two documents (README, "Audit files"); a prompt one never does.
            Err(_) if since.elapsed() > Duration::from_millis(1) && !finished => {
                stalled += 1;
                continue;
            }
            Err(e) => panic!(
                "audit file unparsable after {reads} reads ({e}):\n{}",
                String::from_utf8_lossy(&bytes)
            ),
        };
        statuses.insert(v["status"].as_str().unwrap_or_default().to_string());
        reads += 1;
        if finished {
            break;
        }
    }
    assert_eq!(child.wait().expect("wait").code(), Some(0));
    assert!(reads > 10, "only {reads} reads");
    assert!(
        stalled * 4 <= reads,
        "{stalled} stalled torn reads, {reads} whole"
    );
    assert!(statuses.contains("running"), "read mid-run: {statuses:?}");
    let audit: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(audit["status"], "success");
    assert_eq!(audit["steps"].as_array().map(Vec::len), Some(200));
    let id = audit["run_id"].as_str().expect("run id");
    assert_eq!(home.status_json(id), audit);
    assert_eq!(home.audit_files("many").len(), 1, "one file, rewritten");
}

#[test]
fn confirm_failed_on_a_manual_step_fails_the_run_and_rolls_back() {
    let home = Home::new();
    home.simple(
        "manual",
        "",
        "## Steps\n\n1. **Prepare**\n   ```bash\n   echo prepared\n   ```\n\n2. **Check by hand**\n\n3. **Never**\n   ```bash\n   echo never\n   ```\n\n## Rollback\n\n1. **Undo**\n   ```bash\n   echo undone > rolled-back\n   ```\n",
    );
    let child = home.spawn(&["run", "manual"]);
    let id = wait_run(&home, "manual");
    home.wait_status(&id, |v| v["status"] == "waiting_confirmation");
    home.run(&["confirm", &id, "--failed", "--comment", "dashboard red"])
        .ok()
        .stderr_has("marked failed");
    let out = wait_child(child, Duration::from_secs(15));
    out.code(1);
    assert!(!out.stdout.contains("never"));
    let v = home.status_json(&id);
    assert_eq!(v["status"], "failure");
    assert_eq!(v["steps"][1]["status"], "failure");
    assert_eq!(v["steps"][2]["status"], "pending");
    assert_eq!(v["rollback"][0]["status"], "success");
    assert_eq!(approvals(&v), ["confirmed_failed"]);
    assert_eq!(v["approvals"][0]["comment"], "dashboard red");
    assert!(home.file("sops/manual/rolled-back").exists());
}

#[test]
fn cancel_of_a_queued_run_runs_nothing() {
    let home = Home::new();
    home.simple(
        "slot",
        "max_concurrent = 1",
        "## Steps\n\n1. **Hold**\n   ```bash\n   echo \"$SOP_RUN_ID\" >> ran.txt\n   while [ ! -f go ]; do sleep 0.05; done\n   ```\n",
    );
    let first = home.spawn(&["run", "slot"]);
    let first_id = wait_run(&home, "slot");
    home.wait_status(&first_id, |v| v["steps"][0]["status"] == "running");
    let second = detach(&home, &["slot"]);
    home.wait_status(&second, |v| v["status"] == "queued");
    home.run(&["status", &second])
        .ok()
        .stdout_has(&format!("slot held by run {first_id}"));
    home.run(&["cancel", &second]).ok();
    let v = home.wait_status(&second, |v| v["status"] != "queued");
    assert_eq!(v["status"], "cancelled");
    assert_eq!(v["steps"][0]["status"], "pending");
    assert!(v["started_at"].is_null(), "it never left the queue");
    std::fs::write(home.file("sops/slot/go"), "").unwrap();
    wait_child(first, Duration::from_secs(10)).ok();
    let ran = std::fs::read_to_string(home.file("sops/slot/ran.txt")).unwrap();
    assert_eq!(ran.trim(), first_id, "only the first run executed");
    assert_eq!(home.status_json(&second)["status"], "cancelled");
}

#[test]
fn status_runs_and_validate_read_commands() {
    let home = Home::new();
    home.simple("quick", "", ONE_STEP);
    home.simple("gate", "execution_mode = \"supervised\"", ONE_STEP);
    home.run(&["run", "quick"]).ok();
    home.run(&["run", "quick"]).ok();
    let runs: serde_json::Value =
        serde_json::from_str(&home.run(&["runs", "--json"]).stdout).expect("runs json");
    let ids: Vec<&str> = runs
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    let waiting = detach(&home, &["gate"]);
    home.wait_status(&waiting, |v| v["status"] == "waiting_approval");

    // No argument: the active runs only.
    let out = home.run(&["status"]);
    out.ok().stdout_has(&waiting);
    assert!(!out.stdout.contains(ids[0]) && !out.stdout.contains(ids[1]));
    let active: serde_json::Value =
        serde_json::from_str(&home.run(&["status", "--json"]).stdout).expect("status json");
    assert_eq!(active.as_array().map(Vec::len), Some(1));
    assert_eq!(active[0]["id"], waiting.as_str());

    // A SOP name: its latest run (`runs` lists newest first).
    assert_eq!(home.status_json("quick")["run_id"], ids[0]);
    home.run(&["status", "quick"]).ok().stdout_has(ids[0]);
    home.run(&["cancel", &waiting]).ok();

    // validate --json: diagnostics with positions.
    home.simple(
        "broken",
        "",
        "## Steps\n\n1. **Go** [requires_aproval: true]\n   ```bash\n   true\n   ```\n",
    );
    let out = home.run(&["validate", "--json"]);
    out.code(2);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("validate json");
    let broken = v
        .as_array()
        .expect("array")
        .iter()
        .find(|s| s["sop"] == "broken")
        .expect("broken listed");
    assert_eq!(broken["ok"], false);
    let d = &broken["diagnostics"][0];
    assert_eq!(d["severity"], "error");
    assert_eq!(d["line"], 3);
    assert_eq!(d["col"], 12);
    assert!(d["message"]
        .as_str()
        .is_some_and(|m| m.contains("requires_aproval")));
    assert!(d["help"]
        .as_str()
        .is_some_and(|m| m.contains("requires_approval")));
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["sop"] != "broken")
        .all(|s| s["ok"] == true));
}

#[test]
fn exit_codes_for_bad_input() {
    let home = Home::new();
    home.simple("real", "", ONE_STEP);
    home.run(&["run", "nope"]).code(2).stderr_has("nope");
    home.run(&["run", "real", "--var", "novalue"])
        .code(2)
        .stderr_has("expected `name=value`");
    home.run(&["approve", "ghost"]).code(2).stderr_has("ghost");
    home.run(&["reject", "ghost", "--reason", "x"]).code(2);
    home.run(&["cancel", "ghost"]).code(2);
    home.run(&["status", "ghost"]).code(2);
    let runs: serde_json::Value =
        serde_json::from_str(&home.run(&["runs", "--json"]).stdout).expect("runs json");
    assert_eq!(runs, serde_json::json!([]), "no run was created");
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[test]
fn approving_in_place_at_a_terminal() {
    if Command::new("script")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .map_or(true, |s| !s.success())
    {
        eprintln!("skipped: util-linux `script` is not available to give sop a terminal");
        return;
    }
    let home = Home::new();
    home.simple("here", "execution_mode = \"supervised\"", ONE_STEP);
    let line = format!(
        "{} --home {} run here",
        shell_quote(env!("CARGO_BIN_EXE_sop")),
        shell_quote(&home.path().display().to_string())
    );
    let mut child = Command::new("script")
        .args(["-qfec", &line, "/dev/null"])
        .env_remove("SOP_HOME")
        .env("SHELL", "/bin/sh")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn script");
    let seen = Collector::new(child.stdout.take().expect("stdout"));
    let mut stdin = child.stdin.take().expect("stdin");
    seen.wait_for("approve here?", Duration::from_secs(10));
    stdin.write_all(b"y\n").expect("answer");
    stdin.flush().expect("flush");
    let code = wait_exit(&mut child, Duration::from_secs(10));
    drop(stdin);
    assert_eq!(code, 0, "terminal session:\n{}", seen.text());
    assert!(seen.text().contains("going"), "{}", seen.text());
    let id = crate::support::only_run(&home, "here");
    let v = home.status_json(&id);
    assert_eq!(v["status"], "success");
    assert_eq!(v["approvals"][0]["decision"], "approved");
    assert_eq!(v["approvals"][0]["channel"], "cli");
}

const LATE_GATE: &str = "## Steps\n\n1. **Prepare**\n   ```bash\n   echo prepared\n   ```\n\n2. **Deploy** [requires_approval: true]\n   ```bash\n   echo deployed\n   ```\n\n## Rollback\n\n1. **Undo**\n   ```bash\n   echo undone > rolled-back\n   ```\n";

/// A deadline passing after a step ran rejects the run, and its rollback runs.
fn deadline_after_a_step_ran_runs_the_rollback_in_the_waiting_process() {
    let home = Home::new();
    home.simple("late", "approval_timeout_secs = 1", LATE_GATE);
    let child = home.spawn(&["run", "late"]);
    wait_child(child, Duration::from_secs(15)).code(1);
    let v = home.status_json(&crate::support::only_run(&home, "late"));
    assert_eq!(v["status"], "timed_out", "{v}");
    assert_eq!(v["steps"][1]["status"], "pending");
    assert_eq!(v["rollback"][0]["status"], "success", "{v}");
    assert!(home.file("sops/late/rolled-back").exists());
}

/// The deadline of an orphaned run passes after a step ran: the rejection must run the
/// `## Rollback` steps, not leave a rollback step marked running with no process.
#[test]
fn deadline_applied_by_recovery_after_a_step_ran_runs_the_rollback() {
    let home = Home::new();
    home.simple("late", "approval_timeout_secs = 2", LATE_GATE);
    let id = detach(&home, &["late"]);
    let v = home.wait_status(&id, |v| v["status"] == "waiting_approval");
    assert_eq!(v["waiting"]["gate"], "step 2");
    let pid = owner_pid(&home, &id);
    kill_and_wait_gone(pid);
    wait_past_deadline(&home, &id);
    home.run(&["runs"]).ok();
    let v = home.wait_status(&id, |v| {
        !["waiting_approval", "running", "queued"].contains(&v["status"].as_str().unwrap_or(""))
    });
    assert_eq!(v["status"], "timed_out", "{v}");
    assert_eq!(v["rollback"][0]["status"], "success", "{v}");
    assert!(home.file("sops/late/rolled-back").exists());
}
