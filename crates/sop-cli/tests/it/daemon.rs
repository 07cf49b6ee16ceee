//! End-to-end tests of `sop serve`: a real daemon on a free loopback port, real runs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::approvals::{group_members, processes_running};
use crate::support::{wait_for, Home};

/// A running `sop serve`; killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub url: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Kills the daemon with SIGKILL (as `kill -9`, a crash or a power loss would) and
    /// reaps it.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM (a clean stop) and waits up to `limit` for the daemon to exit.
    pub fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        wait_for(limit, || self.child.try_wait().ok().flatten()).expect("daemon exited")
    }

    /// Starts `sop serve --bind 127.0.0.1:0` and waits for its address.
    pub fn start(home: &Home) -> Daemon {
        Daemon::start_with_env(home, &[])
    }

    /// [`Daemon::start`] with these variables in the daemon's environment.
    pub fn start_with_env(home: &Home, env: &[(&str, &str)]) -> Daemon {
        let mut child = home
            .cmd()
            .envs(env.iter().copied())
            .args(["serve", "--bind", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sop serve");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let url = loop {
            let Some(Ok(line)) = lines.next() else {
                panic!("sop serve exited before listening")
            };
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep draining stderr so the daemon never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Daemon { child, url }
    }

    pub fn get(&self, path: &str) -> Value {
        ureq::get(&format!("{}{path}", self.url))
            .call()
            .expect("GET")
            .into_json()
            .expect("json")
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, (u16, Value)> {
        match ureq::post(&format!("{}{path}", self.url)).send_json(body.clone()) {
            Ok(r) => Ok(r.into_json().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(code, r)) => Err((code, r.into_json().unwrap_or(Value::Null))),
            Err(e) => panic!("POST {path}: {e}"),
        }
    }

    pub fn execute(&self, sop: &str, body: &Value) -> String {
        let v = self
            .post(&format!("/api/sops/{sop}/execute"), body)
            .expect("execute");
        v["run_id"].as_str().expect("run_id").to_string()
    }

    pub fn run(&self, id: &str) -> Value {
        self.get(&format!("/api/runs/{id}"))
    }

    pub fn wait_run(&self, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
        wait_for(Duration::from_secs(30), || {
            let v = self.run(id);
            pred(&v).then_some(v)
        })
        .unwrap_or_else(|| panic!("run {id} never matched: {}", self.run(id)))
    }
}

const HOLD: &str = "## Steps\n\n1. **Hold**\n   ```bash\n   echo \"start $SOP_RUN_ID\" >> ../../order.log\n   while [ ! -f ../../release ]; do sleep 0.02; done\n   echo \"end $SOP_RUN_ID\" >> ../../order.log\n   ```\n";

#[test]
fn one_worker_starts_queued_runs_by_priority_then_age_and_never_overlaps() {
    let home = Home::new();
    std::fs::write(home.file("sop.toml"), "workers = 1\n").unwrap();
    home.simple("job", "max_concurrent = 20", HOLD);
    let d = Daemon::start(&home);
    let blocker = d.execute("job", &json!({"priority": "critical"}));
    d.wait_run(&blocker, |v| v["status"] == "running");
    let priorities = [
        "low", "high", "medium", "critical", "low", "high", "medium", "critical", "low", "high",
    ];
    let mut ids = Vec::new();
    for i in 0..20 {
        let p = priorities[i % priorities.len()];
        ids.push((d.execute("job", &json!({"priority": p})), p));
    }
    // All twenty wait in the queue behind the blocker, and say why.
    let queued = d.run(&ids[0].0);
    assert_eq!(queued["status"], "queued", "{queued}");
    let why = queued["queue"].as_str().unwrap_or_default();
    assert!(
        why.contains("workers are busy") && why.contains("in the queue"),
        "{why}"
    );
    std::fs::write(home.file("release"), "").unwrap();
    for (id, _) in &ids {
        d.wait_run(id, |v| v["status"] == "success");
    }
    let log = std::fs::read_to_string(home.file("order.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    // Never two running at once: start/end strictly alternate.
    for pair in lines.chunks(2) {
        let (s, e) = (
            pair[0].strip_prefix("start ").unwrap(),
            pair[1].strip_prefix("end ").unwrap(),
        );
        assert_eq!(s, e, "overlap in {log}");
    }
    let started: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("start "))
        .skip(1)
        .collect();
    let rank = |p: &str| {
        ["critical", "high", "medium", "low"]
            .iter()
            .position(|x| *x == p)
            .unwrap()
    };
    let mut expected: Vec<(usize, usize, &str)> = ids
        .iter()
        .enumerate()
        .map(|(i, (id, p))| (rank(p), i, id.as_str()))
        .collect();
    expected.sort();
    let expected: Vec<&str> = expected.into_iter().map(|(_, _, id)| id).collect();
    assert_eq!(started, expected);
}

#[test]
fn an_ended_runs_audit_file_is_final_while_the_run_its_worker_went_to_sleeps() {
    // The commit that ends a run claims the next one; the ended run's final file waits
    // only for that run's step to start. Here that step cannot start (its directory is
    // missing) and waits 30 s to retry: the file must not wait with it.
    let home = Home::new();
    std::fs::write(home.file("sop.toml"), "workers = 1\n").unwrap();
    home.simple("first", "", HOLD);
    home.simple(
        "broken",
        "",
        "## Steps\n\n1. **Elsewhere** [workdir: missing, retry: 1, retry_delay: 30s]\n   ```bash\n   true\n   ```\n",
    );
    let d = Daemon::start(&home);
    let first = d.execute("first", &json!({}));
    d.wait_run(&first, |v| v["status"] == "running");
    let broken = d.execute("broken", &json!({}));
    std::fs::write(home.file("release"), "").unwrap();
    d.wait_run(&first, |v| v["status"] == "success");
    let file = home
        .audit_files("first")
        .into_iter()
        .next()
        .expect("first's file");
    let final_status = wait_for(Duration::from_secs(10), || {
        let doc: Value = serde_json::from_slice(&std::fs::read(&file).ok()?).ok()?;
        (doc["status"] == "success").then_some(doc)
    });
    let broken_run = d.run(&broken);
    assert!(
        final_status.is_some(),
        "first's audit file is not final while broken ({}) waits to retry",
        broken_run["status"]
    );
    assert_ne!(
        broken_run["status"], "queued",
        "broken was claimed: {broken_run}"
    );
}

#[test]
fn approval_over_http_and_from_the_cli_release_runs_the_daemon_drives() {
    let home = Home::new();
    home.simple(
        "gate",
        "execution_mode = \"supervised\"\nmax_concurrent = 5",
        "## Steps\n\n1. **Go**\n   ```bash\n   echo go\n   ```\n",
    );
    let d = Daemon::start(&home);
    let a = d.execute("gate", &json!({}));
    let b = d.execute("gate", &json!({}));
    d.wait_run(&a, |v| v["status"] == "waiting_approval");
    d.wait_run(&b, |v| v["status"] == "waiting_approval");
    d.post(&format!("/api/runs/{a}/approve"), &json!({"comment": "ok"}))
        .expect("approve a");
    home.run(&["approve", &b]).ok();
    d.wait_run(&a, |v| v["status"] == "success");
    d.wait_run(&b, |v| v["status"] == "success");
    let err = d
        .post(&format!("/api/runs/{a}/approve"), &json!({}))
        .unwrap_err();
    assert_eq!(err.0, 409);
    assert_eq!(err.1["error"]["code"], "not_waiting");
}

#[test]
fn a_second_daemon_on_the_same_home_is_refused() {
    let home = Home::new();
    let _d = Daemon::start(&home);
    let out = home.run(&["serve", "--bind", "127.0.0.1:0"]);
    out.code(1).stderr_has("another `sop serve` is running");
}

#[test]
fn a_non_loopback_bind_without_tokens_is_refused() {
    let home = Home::new();
    home.run(&["serve", "--bind", "0.0.0.0:0"])
        .code(2)
        .stderr_has("token");
}

#[test]
fn sigterm_drains_within_grace_and_the_running_step_is_interrupted() {
    let home = Home::new();
    std::fs::write(home.file("sop.toml"), "kill_grace_secs = 1\n").unwrap();
    let next = home.marker("next");
    home.simple("long", "", &format!("## Steps\n\n1. **Long**\n   ```bash\n   echo $$ > group.pid\n   trap '' TERM\n   sleep 100\n   ```\n\n2. **Next**\n   ```bash\n   echo {next} > ran-next\n   ```\n"));
    let mut d = Daemon::start(&home);
    let id = d.execute("long", &json!({}));
    let pid_file = home.file("sops/long/group.pid");
    let pgid: i32 = wait_for(Duration::from_secs(20), || {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    })
    .expect("step started");
    // The next step's shell waits, held, while step 1 runs.
    let held = wait_for(Duration::from_secs(20), || {
        processes_running(&next).first().copied()
    })
    .expect("the next step's shell is held");
    let t = Instant::now();
    let status = d.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "drain took {:?}",
        t.elapsed()
    );
    assert!(
        group_members(pgid).is_empty(),
        "step processes survived the drain"
    );
    assert!(group_members(held).is_empty(), "the held shell survived");
    assert!(
        !home.file("sops/long/ran-next").exists(),
        "the next step ran"
    );
    let v = home.status_json(&id);
    assert_eq!(v["status"], "interrupted", "{v}");
    assert_eq!(v["steps"][0]["status"], "interrupted");
    assert_eq!(v["steps"][1]["status"], "pending", "{v}");
}

#[test]
fn kill_9_of_the_daemon_loses_nothing_and_reruns_nothing() {
    let home = Home::new();
    home.simple("busy", "max_concurrent = 1", "## Steps\n\n1. **Busy**\n   ```bash\n   echo $SOP_RUN_ID >> ../../ran.log\n   echo $$ > ../../busy.pid\n   while [ ! -f ../../release ]; do sleep 0.02; done\n   ```\n");
    home.simple(
        "gate",
        "execution_mode = \"supervised\"\napproval_timeout_secs = 3600",
        "## Steps\n\n1. **Go**\n   ```bash\n   echo gated\n   ```\n",
    );
    let d = Daemon::start(&home);
    let mid = d.execute("busy", &json!({}));
    d.wait_run(&mid, |v| {
        v["status"] == "running" && v["steps"][0]["status"] == "running"
    });
    wait_for(Duration::from_secs(20), || {
        home.file("busy.pid").exists().then_some(())
    })
    .unwrap();
    let queued = d.execute("busy", &json!({}));
    let waiting = d.execute("gate", &json!({}));
    let before = d.wait_run(&waiting, |v| v["status"] == "waiting_approval");
    assert_eq!(d.run(&queued)["status"], "queued");
    d.kill9();
    std::fs::write(home.file("release"), "").unwrap();

    let d = Daemon::start(&home);
    let v = d.wait_run(&mid, |v| v["status"] == "interrupted");
    assert_eq!(v["steps"][0]["status"], "interrupted");
    let after = d.run(&waiting);
    assert_eq!(after["status"], "waiting_approval");
    assert_eq!(
        after["waiting"]["deadline"], before["waiting"]["deadline"],
        "the deadline survived"
    );
    d.wait_run(&queued, |v| v["status"] == "success");
    let ran = std::fs::read_to_string(home.file("ran.log")).unwrap();
    assert_eq!(
        ran.lines().filter(|l| *l == mid).count(),
        1,
        "the interrupted step was not re-run: {ran}"
    );
}

impl Daemon {
    /// `GET /api/runs/{id}` with a bearer token, polled until `pred` holds.
    pub fn wait_run_as(&self, token: &str, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let get = || -> Value {
            ureq::get(&format!("{}/api/runs/{id}", self.url))
                .set("Authorization", &format!("Bearer {token}"))
                .call()
                .expect("GET run")
                .into_json()
                .expect("json")
        };
        wait_for(Duration::from_secs(30), || {
            let v = get();
            pred(&v).then_some(v)
        })
        .unwrap_or_else(|| panic!("run {id} never matched: {}", get()))
    }
}

#[test]
fn a_detached_cli_run_on_a_served_home_is_driven_by_the_daemon() {
    let home = Home::new();
    home.simple(
        "bg",
        "",
        "## Steps\n\n1. **Go**\n   ```bash\n   echo $PPID > parent\n   ```\n",
    );
    let d = Daemon::start(&home);
    // No SOP_URL: the CLI writes to the store; the daemon notices and runs it.
    let id = home
        .run(&["run", "bg", "--detach"])
        .ok()
        .stdout
        .trim()
        .to_string();
    d.wait_run(&id, |v| v["status"] == "success");
    let parent: u32 = std::fs::read_to_string(home.file("sops/bg/parent"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        parent,
        d.child.id(),
        "the daemon spawned the step, not a background `sop __drive`"
    );
}

#[test]
fn runs_of_a_sop_at_its_limit_do_not_hold_up_other_sops_queued_behind_them() {
    let home = Home::new();
    home.simple("busy", "max_concurrent = 1", "## Steps\n\n1. **Busy**\n   ```bash\n   while [ ! -f ../../release ]; do sleep 0.02; done\n   ```\n");
    home.simple(
        "quick",
        "",
        "## Steps\n\n1. **Go**\n   ```bash\n   echo quick\n   ```\n",
    );
    let d = Daemon::start(&home);
    let first = d.execute("busy", &json!({}));
    d.wait_run(&first, |v| v["steps"][0]["status"] == "running");
    let held: Vec<String> = (0..3).map(|_| d.execute("busy", &json!({}))).collect();
    let quick = d.execute("quick", &json!({}));
    // The runs of `busy` ahead of it wait for the one slot; `quick` goes past them.
    d.wait_run(&quick, |v| v["status"] == "success");
    for id in &held {
        assert_eq!(d.run(id)["status"], "queued", "{id} waits for the slot");
    }
    std::fs::write(home.file("release"), "").unwrap();
    for id in held.iter().chain(std::iter::once(&first)) {
        d.wait_run(id, |v| v["status"] == "success");
    }
}

#[test]
fn concurrent_execute_requests_each_get_their_own_audit_file() {
    let home = Home::new();
    home.simple(
        "hold",
        "execution_mode = \"supervised\"\nmax_concurrent = 50",
        "## Steps\n\n1. **Go**\n   ```bash\n   true\n   ```\n",
    );
    let d = Daemon::start(&home);
    let barrier = std::sync::Barrier::new(24);
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..24)
            .map(|_| {
                let (d, barrier) = (&d, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    d.execute("hold", &json!({}))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for id in &ids {
        d.wait_run(id, |v| v["status"] == "waiting_approval");
    }
    // Runs created in the same millisecond used to share a file name.
    let dir = home.file("logs/sop/hold");
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(files.len(), ids.len(), "{files:?}");
    for file in files {
        let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        let id = doc["run_id"].as_str().unwrap();
        assert!(ids.iter().any(|i| i == id));
        assert!(
            file.to_string_lossy().ends_with(&format!("-{id}.json")),
            "{file:?}"
        );
        assert_eq!(doc["status"], "waiting_approval");
    }
}

#[test]
fn queued_runs_audit_files_lost_or_torn_are_rewritten_when_the_daemon_starts() {
    let home = Home::new();
    // The first run waits at its gate; `hold` keeps the next ones queued behind it.
    home.simple(
        "held",
        "execution_mode = \"supervised\"\nadmission_policy = \"hold\"",
        "## Steps\n\n1. **Go**\n   ```bash\n   true\n   ```\n",
    );
    let d = Daemon::start(&home);
    let first = d.execute("held", &json!({}));
    d.wait_run(&first, |v| v["status"] == "waiting_approval");
    let torn = d.execute("held", &json!({}));
    let lost = d.execute("held", &json!({}));
    let stale = d.execute("held", &json!({}));
    let file_of = |id: &str| home.audit_file("held", id);
    let (torn_file, lost_file, stale_file) = (file_of(&torn), file_of(&lost), file_of(&stale));
    assert_eq!(d.run(&torn)["status"], "queued");
    // A power loss: the daemon dies, and the unsynced files of new runs are torn or gone.
    d.kill9();
    std::fs::write(&torn_file, "{\n  \"sop\": \"hel").unwrap();
    std::fs::remove_file(&lost_file).unwrap();
    std::fs::write(&stale_file, "{\"status\": \"running\"}").unwrap();

    let d = Daemon::start(&home);
    for (id, file) in [
        (&torn, &torn_file),
        (&lost, &lost_file),
        (&stale, &stale_file),
    ] {
        let doc = wait_for(Duration::from_secs(20), || {
            let bytes = std::fs::read(file).ok()?;
            serde_json::from_slice::<Value>(&bytes)
                .ok()
                .filter(|doc| doc["status"] == "queued")
        })
        .unwrap_or_else(|| panic!("{file:?} was not rewritten"));
        assert_eq!(doc["run_id"], id.as_str());
        assert_eq!(doc["status"], "queued");
        assert_eq!(d.run(id)["status"], "queued", "still held behind {first}");
    }
}

#[test]
fn served_runs_steps_are_recorded_with_the_pids_of_the_processes_that_ran_them() {
    // One run at a time: each run's end claims the next queued one in the same commit (its
    // first step starts after that commit); each second step is started ahead of the commit
    // of the first's exit, held at its gate.
    let home = Home::new();
    std::fs::create_dir(home.file("pids")).unwrap();
    let step = |n: u32| {
        format!("{n}. **Step {n}**\n   ```bash\n   echo $$ > \"../../pids/$SOP_RUN_ID-{n}\"\n   ```\n\n")
    };
    home.simple("two", "", &format!("## Steps\n\n{}{}", step(1), step(2)));
    let d = Daemon::start(&home);
    let ids: Vec<String> = (0..6).map(|_| d.execute("two", &json!({}))).collect();
    for id in &ids {
        d.wait_run(id, |v| v["status"] == "success");
    }
    let recorded = home.spawned_pids();
    assert_eq!(recorded.len(), 2 * ids.len(), "{recorded:?}");
    for (run, gate, pid) in recorded {
        let n = gate.strip_prefix("step ").expect("a step");
        let ran = std::fs::read_to_string(home.file(&format!("pids/{run}-{n}"))).unwrap();
        assert_eq!(ran.trim(), pid.to_string(), "run {run}, {gate}");
    }
}

/// The settle marks in the store (`sop serve`'s promise that the runs it ended up to then
/// have durable audit files), read straight from the database.
fn settle_marks(home: &Home) -> Vec<(String, i64)> {
    home.store_rows("SELECT key, value FROM meta WHERE key LIKE 'settled:%'")
}

#[test]
fn ended_runs_audit_files_are_settled_by_a_clean_stop_and_repaired_after_a_crash() {
    let home = Home::new();
    home.simple(
        "quick",
        "max_concurrent = 4",
        "## Steps\n\n1. **Go**\n   ```bash\n   true\n   ```\n",
    );
    home.simple(
        "gated",
        "execution_mode = \"supervised\"",
        "## Steps\n\n1. **Go**\n   ```bash\n   true\n   ```\n",
    );
    let file_of = |id: &str| home.audit_file("quick", id);
    let read = |file: &std::path::Path| -> Option<Value> {
        serde_json::from_slice(&std::fs::read(file).ok()?).ok()
    };

    // A clean stop settles every run it ended and removes its mark.
    let mut d = Daemon::start(&home);
    let settled: Vec<String> = (0..4).map(|_| d.execute("quick", &json!({}))).collect();
    for id in &settled {
        d.wait_run(id, |v| v["status"] == "success");
    }
    assert_eq!(
        settle_marks(&home).len(),
        1,
        "a serving daemon keeps its mark"
    );
    // The stop syncs the last group (`syncfs` of a shared file system can be slow).
    let status = d.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    assert!(settle_marks(&home).is_empty(), "{:?}", settle_marks(&home));
    // Synced: every run's spare went back to the pool, none was left beside its file.
    let left: Vec<_> = std::fs::read_dir(home.file("logs/sop/quick"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|path| path.extension().is_some_and(|x| x == "next"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let untouched = file_of(&settled[0]);
    let untouched_at = std::fs::metadata(&untouched).unwrap().modified().unwrap();

    // Groups gather for ten minutes here: nothing the next daemon ends is settled (synced,
    // then passed by its mark) before it dies.
    std::fs::write(home.file("sop.toml"), "audit_group_ms = 600000\n").unwrap();
    let d = Daemon::start(&home);
    let ended: Vec<String> = (0..3).map(|_| d.execute("quick", &json!({}))).collect();
    for id in &ended {
        d.wait_run(id, |v| v["status"] == "success");
        // Its final file is written (the store's commit comes first).
        wait_for(Duration::from_secs(20), || {
            read(&file_of(id)).filter(|doc| doc["status"] == "success")
        })
        .expect("final file");
    }
    // A run the API ends (a rejection) goes through the settler too.
    let rejected = d.execute("gated", &json!({}));
    d.wait_run(&rejected, |v| v["status"] == "waiting_approval");
    d.post(
        &format!("/api/runs/{rejected}/reject"),
        &json!({"reason": "not today"}),
    )
    .expect("rejected");
    let rejected_file = home.audit_file("gated", &rejected);
    assert_eq!(read(&rejected_file).expect("file")["status"], "rejected");
    // Written for the settler, not synced on its own: its spare waits beside it for the
    // group's sync (a durable rewrite would have pooled it at once).
    let name = rejected_file.file_name().unwrap().to_string_lossy();
    assert!(rejected_file
        .with_file_name(format!(".{name}.next"))
        .exists());
    let marks = settle_marks(&home);
    assert_eq!(marks.len(), 1, "{marks:?}");
    d.kill9();
    // What a power loss may leave of files written but not synced: torn, lost, stale.
    let files: Vec<_> = ended.iter().map(|id| file_of(id)).collect();
    std::fs::write(&files[0], "{\n  \"sop\": \"qui").unwrap();
    std::fs::remove_file(&files[1]).unwrap();
    std::fs::write(&files[2], "{\"status\": \"running\"}").unwrap();
    std::fs::write(&rejected_file, "{\"status\": \"waiting_approval\"}").unwrap();

    let _d = Daemon::start(&home);
    for (id, file) in ended.iter().zip(&files) {
        let doc = wait_for(Duration::from_secs(20), || {
            read(file).filter(|doc| doc["status"] == "success")
        })
        .unwrap_or_else(|| panic!("{file:?} was not rewritten"));
        assert_eq!(doc["run_id"], id.as_str());
        assert_eq!(doc["steps"][0]["status"], "success");
    }
    let doc = wait_for(Duration::from_secs(20), || {
        read(&rejected_file).filter(|doc| doc["status"] == "rejected")
    })
    .expect("the rejected run's file was not rewritten");
    assert_eq!(doc["approvals"][0]["comment"], "not today");
    // Only runs ended after the dead daemon's mark are rewritten; its mark is gone, and the
    // new daemon has its own.
    assert_eq!(
        std::fs::metadata(&untouched).unwrap().modified().unwrap(),
        untouched_at
    );
    wait_for(Duration::from_secs(20), || {
        let now = settle_marks(&home);
        (now.len() == 1 && now[0].0 != marks[0].0).then_some(())
    })
    .unwrap_or_else(|| panic!("marks now: {:?}", settle_marks(&home)));
}

#[test]
fn a_followed_run_does_not_hold_up_a_stop() {
    let home = Home::new();
    home.simple(
        "gate",
        "",
        "## Steps\n\n1. **Wait** [requires_approval: true]\n   ```bash\n   true\n   ```\n",
    );
    let mut d = Daemon::start(&home);
    let id = d.execute("gate", &json!({}));
    d.wait_run(&id, |v| v["status"] == "waiting_approval");
    // Someone follows the waiting run's live events (the web UI's run page does).
    let url = format!("{}/api/runs/{id}/events", d.url);
    let follower = std::thread::spawn(move || {
        let answer = ureq::get(&url).call().expect("a stream");
        let mut lines = BufReader::new(answer.into_reader()).lines();
        let mut seen = 0;
        while let Some(Ok(_)) = lines.next() {
            seen += 1;
        }
        seen
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let status = d.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the stop waited {:?}",
        started.elapsed()
    );
    assert!(
        follower.join().expect("follower") > 0,
        "the stream was open and ended"
    );
}
