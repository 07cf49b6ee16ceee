//! The CLI as a client of a real `sop serve` (`SOP_URL`): the same commands, results and
//! output as on the store directly, and `sop token create` round trips.

use std::time::Duration;

use crate::daemon::Daemon;
use crate::support::{wait_child, Home, Out};

/// `sop <args>` with `SOP_URL` pointing at the daemon (and `SOP_TOKEN` when given).
fn via(home: &Home, d: &Daemon, token: Option<&str>, args: &[&str]) -> Out {
    let mut c = home.cmd();
    c.env("SOP_URL", &d.url).args(args);
    if let Some(t) = token {
        c.env("SOP_TOKEN", t);
    }
    Out::from(c.output().expect("run sop"))
}

const GATE: &str = "## Steps\n\n1. **Build**\n   ```bash\n   echo built\n   ```\n\n2. **Deploy** [requires_approval: true]\n   ```bash\n   echo \"deploying $version\"\n   ```\n";

fn gate_home() -> Home {
    let home = Home::new();
    home.simple("gate", "max_concurrent = 10", GATE);
    home.simple(
        "manual",
        "max_concurrent = 10",
        "## Steps\n\n1. **Check the dashboard** — look at it\n\n2. **Use it** [if: ticket]\n   ```bash\n   echo \"ticket $ticket\"\n   ```\n",
    );
    home
}

fn detach(home: &Home, d: &Daemon, token: Option<&str>, args: &[&str]) -> String {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.push("--detach");
    let out = via(home, d, token, &all);
    out.ok();
    let id = out.stdout.trim().to_string();
    assert_eq!(id.len(), 12, "a run id: {out:?}");
    id
}

#[test]
#[allow(clippy::many_single_char_names)] // runs a, b, c, m of one story
fn decisions_go_through_the_daemon_and_are_recorded_as_api() {
    let home = gate_home();
    let d = Daemon::start(&home);
    // approve by SOP name (POST /api/sop/approve)
    let a = detach(&home, &d, None, &["gate", "--var", "version=7"]);
    d.wait_run(&a, |v| v["status"] == "waiting_approval");
    via(
        &home,
        &d,
        None,
        &["approve", "gate", "--comment", "ship it"],
    )
    .ok()
    .stderr_has(&format!("approved run {a}"));
    let v = d.wait_run(&a, |v| v["status"] == "success");
    assert_eq!(v["approvals"][0]["channel"], "api", "{v}");
    assert_eq!(v["approvals"][0]["comment"], "ship it");
    assert!(v["steps"][1]["output"]
        .as_str()
        .unwrap()
        .contains("deploying 7"));

    // two waiting: the SOP name is ambiguous, the same error as the local path
    let b = detach(&home, &d, None, &["gate"]);
    let c = detach(&home, &d, None, &["gate"]);
    d.wait_run(&b, |v| v["status"] == "waiting_approval");
    d.wait_run(&c, |v| v["status"] == "waiting_approval");
    let remote = via(&home, &d, None, &["approve", "gate"]);
    remote.code(2).stderr_has("2 runs of `gate` are waiting");
    let local = home.run(&["approve", "gate"]);
    assert_eq!(remote.stderr, local.stderr);

    // reject and cancel by run id (a unique prefix works too)
    via(
        &home,
        &d,
        None,
        &["reject", &b[..8], "--reason", "not today"],
    )
    .ok();
    let v = d.wait_run(&b, |v| v["status"] == "rejected");
    assert_eq!(v["approvals"][0]["channel"], "api", "{v}");
    assert_eq!(v["approvals"][0]["comment"], "not today");
    via(&home, &d, None, &["cancel", "gate"])
        .ok()
        .stderr_has(&format!("cancelled run {c}; it is now cancelled"));
    assert_eq!(d.run(&c)["status"], "cancelled");

    // confirm a manual step, with a variable
    let m = detach(&home, &d, None, &["manual"]);
    d.wait_run(&m, |v| v["status"] == "waiting_confirmation");
    via(&home, &d, None, &["approve", &m])
        .code(1)
        .stderr_has("not waiting for approval");
    via(
        &home,
        &d,
        None,
        &["confirm", "manual", "--set", "ticket=OPS-7"],
    )
    .ok();
    let v = d.wait_run(&m, |v| v["status"] == "success");
    assert_eq!(v["approvals"][0]["channel"], "api", "{v}");
    assert!(v["steps"][1]["output"]
        .as_str()
        .unwrap()
        .contains("ticket OPS-7"));

    // errors map to the local exit codes
    via(&home, &d, None, &["approve", "nosuch"])
        .code(2)
        .stderr_has("`nosuch` is neither a run id nor a SOP with runs");
    via(&home, &d, None, &["run", "nosuch", "--detach"])
        .code(2)
        .stderr_has("no SOP named `nosuch`");
}

#[test]
fn status_runs_and_logs_print_the_same_through_the_daemon_and_from_the_store() {
    let home = gate_home();
    let d = Daemon::start(&home);
    let a = detach(&home, &d, None, &["gate", "--var", "version=7"]);
    d.wait_run(&a, |v| v["status"] == "waiting_approval");
    via(&home, &d, None, &["approve", &a, "--comment", "ok"]).ok();
    d.wait_run(&a, |v| v["status"] == "success");
    let b = detach(&home, &d, None, &["gate"]);
    d.wait_run(&b, |v| v["status"] == "waiting_approval");
    via(&home, &d, None, &["reject", &b, "--reason", "no"]).ok();
    d.wait_run(&b, |v| v["status"] == "rejected");

    let commands: Vec<Vec<&str>> = vec![
        vec!["status", &a],
        vec!["status", &a, "--json"],
        vec!["status", &b],
        vec!["status", "gate"],
        vec!["status"],
        vec!["status", "--json"],
        vec!["runs"],
        vec!["runs", "--json"],
        vec!["runs", "--sop", "gate", "--status", "rejected", "--json"],
        vec!["logs", &a],
        vec!["logs", &a, "--json"],
        vec!["logs", &b, "-f"],
    ];
    let remote: Vec<Out> = commands
        .iter()
        .map(|args| {
            let out = via(&home, &d, None, args);
            out.ok();
            assert!(!out.stderr.contains("warning"), "{args:?}: {out:?}");
            out
        })
        .collect();
    assert!(
        remote[0].stdout.contains("Approved by"),
        "{}",
        remote[0].stdout
    );
    assert!(
        remote[9].stdout.contains("deploying"),
        "{}",
        remote[9].stdout
    );
    drop(d);
    for (args, remote) in commands.iter().zip(&remote) {
        let local = home.run(args);
        local.ok();
        assert_eq!(
            remote.stdout,
            local.stdout,
            "`sop {}` differs",
            args.join(" ")
        );
    }
}

#[test]
fn foreground_run_through_the_daemon_streams_like_a_local_run() {
    let home = Home::new();
    home.simple(
        "hello",
        "",
        "## Steps\n\n1. **Greet**\n   ```bash\n   echo \"hello $who\"\n   ```\n\n2. **Fail** [if: fail]\n   ```bash\n   exit 3\n   ```\n",
    );
    let d = Daemon::start(&home);
    let out = via(&home, &d, None, &["run", "hello", "--var", "who=api"]);
    out.ok()
        .stdout_has("hello api")
        .stderr_has("==> step 1: Greet")
        .stderr_has("<== step 1 success, exit code 0")
        .stderr_has("--- step 2: Fail skipped")
        .stderr_has("of hello: success");
    let out = via(&home, &d, None, &["run", "hello", "--var", "fail=yes"]);
    out.code(1)
        .stderr_has("<== step 2 failure, exit code 3")
        .stderr_has("of hello: failure");
}

#[test]
fn logs_follow_through_the_daemon_until_the_run_ends() {
    let home = Home::new();
    home.simple(
        "slow",
        "",
        "## Steps\n\n1. **Wait**\n   ```bash\n   echo before\n   while [ ! -f ../../release ]; do sleep 0.02; done\n   echo after\n   ```\n",
    );
    let d = Daemon::start(&home);
    let id = detach(&home, &d, None, &["slow"]);
    d.wait_run(&id, |v| v["steps"][0]["status"] == "running");
    let child = home
        .cmd()
        .env("SOP_URL", &d.url)
        .args(["logs", &id, "-f"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(home.file("release"), "").unwrap();
    let out = wait_child(child, Duration::from_secs(20));
    out.ok()
        .stdout_has("==> step 1 (attempt 1)\nbefore\nafter\n");
}

#[test]
fn an_unreachable_daemon_falls_back_to_the_store_with_one_warning() {
    let home = gate_home();
    let out = Out::from(
        home.cmd()
            .env("SOP_URL", "http://127.0.0.1:1")
            .args(["run", "gate", "--detach"])
            .output()
            .unwrap(),
    );
    out.ok()
        .stderr_has("warning: daemon at http://127.0.0.1:1 unreachable (");
    assert!(
        out.stderr.contains("); acting on the store directly"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.matches("warning:").count(), 1, "{}", out.stderr);
    let id = out.stdout.trim();
    // Acted locally: the decision's channel is the CLI's.
    home.wait_status(id, |v| v["status"] == "waiting_approval");
    home.run(&["approve", id]).ok();
    let v = home.wait_status(id, |v| v["status"] == "success");
    assert_eq!(v["approvals"][0]["channel"], "cli");
}

/// `sha256sum` of a string: checked independently of the code under test.
fn sha256_hex(s: &str) -> String {
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), s.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn token_create_round_trips_through_sop_toml_and_a_real_daemon() {
    let home = gate_home();
    home.run(&["token", "create", "--name", "bob", "--role", "root"])
        .code(2)
        .stderr_has("viewer, operator, approver, admin");
    home.run(&["token", "create", "--name", "bob smith", "--role", "admin"])
        .code(2)
        .stderr_has("`--name bob smith`: expected 1 to 64");
    let out = home.run(&["token", "create", "--name", "bob", "--role", "approver"]);
    out.ok();
    let token = out.stdout.trim().to_string();
    assert!(token.starts_with("sop_") && token.len() > 40, "{token}");
    let lines: Vec<&str> = out.stderr.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            "[[tokens]]",
            "name = \"bob\"",
            "role = \"approver\"",
            &format!("sha256 = \"{}\"", sha256_hex(&token)),
        ]
    );
    // A second token: a different secret.
    let other = home.run(&["token", "create", "--name", "eve", "--role", "viewer"]);
    assert_ne!(other.ok().stdout.trim(), token);
    std::fs::write(
        home.file("sop.toml"),
        format!("{}{}", out.stderr, other.stderr),
    )
    .unwrap();

    home.simple(
        "hook",
        "[[triggers]]\ntype = \"command\"\npattern = '^hook$'\n",
        "## Steps\n\n1. **A**\n   ```bash\n   true\n   ```\n",
    );
    let d = Daemon::start(&home);
    // No token: the daemon's 401, exit 1.
    via(&home, &d, None, &["runs"])
        .code(1)
        .stderr_has("error: this server needs an API token");
    // A viewer may not execute: 403, exit 1.
    via(
        &home,
        &d,
        Some(other.stdout.trim()),
        &["run", "gate", "--detach"],
    )
    .code(1)
    .stderr_has("needs `operator`");
    // A viewer may see what a command line would do, not fire triggers or decide.
    let viewer = Some(other.stdout.trim());
    via(&home, &d, viewer, &["trigger", "test", "hook"])
        .ok()
        .stdout_has("hook: would run");
    via(&home, &d, viewer, &["cmd", "hook"])
        .code(1)
        .stderr_has("firing triggers needs `operator`");
    via(&home, &d, viewer, &["cmd", "/approve gate"])
        .code(1)
        .stderr_has("`/approve` needs `approver`");
    via(&home, &d, Some(&token), &["cmd", "hook"])
        .ok()
        .stdout_has("hook: queued run");
    let id = detach(&home, &d, Some(&token), &["gate"]);
    d.wait_run_as(&token, &id, |v| v["status"] == "waiting_approval");
    via(&home, &d, Some(&token), &["approve", "gate"]).ok();
    let v = d.wait_run_as(&token, &id, |v| v["status"] == "success");
    assert_eq!(v["trigger"]["by"], "bob", "{v}");
    assert_eq!(v["approvals"][0]["by"], "bob", "{v}");
    assert_eq!(v["approvals"][0]["channel"], "api");
}

#[test]
fn waiting_for_the_daemon_never_takes_long_when_it_is_gone() {
    // A daemon that was there and is gone: the next command falls back at once.
    let home = gate_home();
    let d = Daemon::start(&home);
    let url = d.url.clone();
    drop(d);
    let start = std::time::Instant::now();
    let out = Out::from(
        home.cmd()
            .env("SOP_URL", &url)
            .args(["runs"])
            .output()
            .unwrap(),
    );
    out.ok().stderr_has("unreachable");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "fallback took {:?}",
        start.elapsed()
    );
}
