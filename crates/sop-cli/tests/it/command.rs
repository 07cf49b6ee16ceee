//! Command lines (`sop cmd`, `sop trigger test`, `POST /api/command`): matching SOPs run
//! with what their patterns caught, built-in `/approve` and `/reject` decide, nothing runs
//! in a dry run; on the store directly and through a real daemon.

use serde_json::{json, Value};

use crate::daemon::Daemon;
use crate::support::{Home, Out};

const ECHO: &str =
    "## Steps\n\n1. **Echo**\n   ```bash\n   echo \"got version=$version match_1=$match_1 SOP_VAR_VERSION=$SOP_VAR_VERSION\"\n   ```\n";

const GATED: &str =
    "## Steps\n\n1. **Ship** [requires_approval: true]\n   ```bash\n   echo shipped\n   ```\n";

/// `deploy` and `announce` match `deploy: <version>`; `other` matches something else.
fn trigger_home() -> Home {
    let home = Home::new();
    home.simple(
        "deploy",
        "cooldown_secs = 3600\n[vars]\nversion = { required = true, pattern = '^\\d+\\.\\d+\\.\\d+$' }\n\
         [[triggers]]\ntype = \"command\"\npattern = '^deploy: (?P<version>\\S+)$'\n",
        ECHO,
    );
    home.simple(
        "announce",
        "max_concurrent = 5\n[[triggers]]\ntype = \"command\"\npattern = '^deploy: (\\S+)'\ncapture_groups = true\n",
        ECHO,
    );
    home.simple(
        "other",
        "[[triggers]]\ntype = \"command\"\npattern = '^restart'\n",
        ECHO,
    );
    home.simple(
        "gate",
        "max_concurrent = 5\n[[triggers]]\ntype = \"command\"\npattern = '^ship$'\n",
        GATED,
    );
    home
}

fn runs(home: &Home) -> Vec<Value> {
    let out = home.run(&["runs", "--json"]);
    serde_json::from_str::<Value>(&out.ok().stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn run_ids(out: &Out) -> Vec<String> {
    out.stdout
        .lines()
        .filter_map(|l| l.split("queued run ").nth(1))
        .map(str::to_string)
        .collect()
}

#[test]
fn cmd_runs_every_matching_sop_with_its_captures_and_a_test_runs_nothing() {
    let home = trigger_home();
    let test = home.run(&["trigger", "test", "deploy: 1.2.3"]);
    test.ok()
        .stdout_has("announce: would run\n  match_1 = 1.2.3\n")
        .stdout_has("deploy: would run\n  match_1 = 1.2.3\n  version = 1.2.3\n");
    assert!(!test.stdout.contains("other"), "{}", test.stdout);
    assert!(runs(&home).is_empty(), "a test runs nothing");

    let out = home.run(&["cmd", "deploy: 1.2.3"]);
    out.ok();
    let ids = run_ids(&out);
    assert_eq!(ids.len(), 2, "{out:?}");
    for id in &ids {
        home.wait_status(id, |v| v["status"] == "success");
    }
    let deploy = home.status_json("deploy");
    assert_eq!(deploy["trigger"]["type"], "command", "{deploy}");
    assert_eq!(
        deploy["vars"],
        json!({"match_1": "1.2.3", "version": "1.2.3"})
    );
    let logs = home.run(&["logs", deploy["run_id"].as_str().unwrap()]);
    logs.ok()
        .stdout_has("got version=1.2.3 match_1=1.2.3 SOP_VAR_VERSION=1.2.3");

    // Nothing matches: exit 1, and it says so.
    home.run(&["cmd", "deploy 1.2.3 please"])
        .code(1)
        .stderr_has("no SOP's `command` trigger matches `deploy 1.2.3 please`");
    home.run(&["trigger", "test", "nothing at all"]).code(1);
    home.run(&["cmd", "  "])
        .code(2)
        .stderr_has("error: the command is empty");
    assert_eq!(runs(&home).len(), 2);
}

#[test]
fn a_match_in_cooldown_is_suppressed_and_the_others_still_run() {
    let home = trigger_home();
    let first = home.run(&["cmd", "deploy: 1.0.0"]);
    for id in run_ids(first.ok()) {
        home.wait_status(&id, |v| v["status"] == "success");
    }
    // `deploy` ran a step: in cooldown now; `announce` has none and is queued.
    let out = home.run(&["cmd", "deploy: 1.0.1"]);
    out.code(1)
        .stdout_has("deploy: suppressed: `deploy` is in cooldown")
        .stdout_has("the trigger was suppressed");
    assert_eq!(run_ids(&out).len(), 1, "{out:?}");
    assert!(out.stdout.contains("announce: queued run"), "{out:?}");

    // Suppressed, not queued: `deploy` has its one run still, and the suppression is
    // recorded (the metrics count it).
    let deploys = runs(&home).iter().filter(|r| r["sop"] == "deploy").count();
    assert_eq!(deploys, 1);
    let m = home.run(&["metrics", "deploy", "--json"]);
    let m: Value = serde_json::from_str(&m.ok().stdout).unwrap();
    assert_eq!(m["overall"]["all"]["suppressed_triggers"], 1, "{m}");
    assert_eq!(m["overall"]["7d"]["runs"], 1, "{m}");
    home.run(&["metrics"])
        .ok()
        .stdout_has("suppressed triggers")
        .stdout_has("announce");
}

#[test]
fn a_capture_that_does_not_fit_its_declaration_is_refused() {
    let home = Home::new();
    home.simple(
        "deploy",
        "[vars]\nversion = { required = true, pattern = '^\\d+$' }\n\
         [[triggers]]\ntype = \"command\"\npattern = '^deploy (?P<version>\\S+)$'\n",
        ECHO,
    );
    // A test tells it too, without committing anything.
    home.run(&["trigger", "test", "deploy latest"])
        .code(1)
        .stdout_has("deploy: refused: invalid variables for `deploy`");
    let out = home.run(&["cmd", "deploy latest", "--json"]);
    out.code(1);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["matched"][0]["outcome"], "refused", "{v}");
    assert_eq!(v["matched"][0]["error"]["code"], "invalid_vars", "{v}");
    let message = v["matched"][0]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("does not match its `pattern`"),
        "{message}"
    );
    assert!(runs(&home).is_empty());
    home.run(&["cmd", "deploy 42"])
        .ok()
        .stdout_has("deploy: queued run");
}

#[test]
fn approve_and_reject_built_ins_decide_on_the_channel_command() {
    let home = trigger_home();
    let a = run_ids(home.run(&["cmd", "ship"]).ok())[0].clone();
    home.wait_status(&a, |v| v["status"] == "waiting_approval");
    home.run(&["trigger", "test", "/approve gate"])
        .ok()
        .stdout_has(&format!("would approve run {a} (it is waiting_approval)"));
    assert_eq!(home.status_json(&a)["status"], "waiting_approval");
    home.run(&["cmd", "/approve gate looks good"])
        .ok()
        .stderr_has(&format!("approved run {a}"));
    let v = home.wait_status(&a, |v| v["status"] == "success");
    assert_eq!(v["approvals"][0]["channel"], "command", "{v}");
    assert_eq!(v["approvals"][0]["comment"], "looks good", "{v}");

    let b = run_ids(home.run(&["cmd", "ship"]).ok())[0].clone();
    home.wait_status(&b, |v| v["status"] == "waiting_approval");
    home.run(&["cmd", "/reject gate"])
        .code(2)
        .stderr_has("needs a reason");
    home.run(&["cmd", &format!("/reject {b} not during the freeze")])
        .ok()
        .stderr_has(&format!("rejected run {b}; it is now rejected"));
    let v = home.status_json(&b);
    assert_eq!(v["approvals"][0]["decision"], "rejected", "{v}");
    assert_eq!(v["approvals"][0]["comment"], "not during the freeze", "{v}");
    home.run(&["cmd", "/approve gate"])
        .code(1)
        .stderr_has("no run of `gate` is waiting for a decision");
}

#[test]
fn the_daemon_takes_command_lines_over_http_and_from_the_cli() {
    let home = trigger_home();
    let d = Daemon::start(&home);
    let dry = d
        .post(
            "/api/command",
            &json!({"text": "deploy: 2.0.0", "dry_run": true}),
        )
        .expect("dry run");
    assert_eq!(dry["kind"], "triggers", "{dry}");
    let outcomes: Vec<(&str, &str)> = dry["matched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["sop"].as_str().unwrap(), m["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [("announce", "would_run"), ("deploy", "would_run")]
    );
    assert_eq!(dry["matched"][1]["vars"]["version"], "2.0.0");
    assert!(d.get("/api/runs").as_array().unwrap().is_empty());

    let done = d
        .post("/api/command", &json!({"text": "deploy: 2.0.0"}))
        .expect("fired");
    for m in done["matched"].as_array().unwrap() {
        assert_eq!(m["outcome"], "queued", "{done}");
        d.wait_run(m["run_id"].as_str().unwrap(), |v| v["status"] == "success");
    }
    let none = d
        .post("/api/command", &json!({"text": "no such thing"}))
        .expect("answered");
    assert_eq!(none["matched"], json!([]), "{none}");
    let (code, body) = d
        .post("/api/command", &json!({"text": ""}))
        .expect_err("refused");
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (code, _) = d
        .post("/api/command", &json!({"text": "x", "dryrun": true}))
        .expect_err("unknown field");
    assert_eq!(code, 400);

    // The CLI through the daemon: the same lines; the decision is made by the daemon.
    let via = |args: &[&str]| {
        let mut c = home.cmd();
        c.env("SOP_URL", &d.url).args(args);
        Out::from(c.output().expect("run sop"))
    };
    let out = via(&["cmd", "ship"]);
    out.ok();
    let id = run_ids(&out)[0].clone();
    d.wait_run(&id, |v| v["status"] == "waiting_approval");
    via(&["cmd", "/approve gate via the daemon"])
        .ok()
        .stderr_has(&format!("approved run {id}"));
    let v = d.wait_run(&id, |v| v["status"] == "success");
    assert_eq!(v["approvals"][0]["channel"], "command", "{v}");
    via(&["trigger", "test", "restart now"])
        .ok()
        .stdout_has("other: would run");
    // `deploy` ran a step a moment ago: in cooldown.
    via(&["cmd", "deploy: 2.0.1"])
        .code(1)
        .stdout_has("deploy: suppressed");
    let m = d.get("/api/metrics?sop=deploy");
    assert_eq!(m["overall"]["all"]["suppressed_triggers"], 1, "{m}");
    assert_eq!(m["overall"]["all"]["by_status"]["success"], 1, "{m}");
    via(&["metrics", "deploy"])
        .ok()
        .stdout_has("`deploy`:")
        .stdout_has("success rate                 100.0 %");
    let text = ureq::get(&format!("{}/metrics", d.url))
        .call()
        .expect("GET /metrics")
        .into_string()
        .unwrap();
    assert!(
        text.contains("sop_triggers_suppressed_total{sop=\"deploy\"} 1\n"),
        "{text}"
    );
}

#[test]
fn the_daemon_takes_command_lines_on_its_socket() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixStream;

    let home = trigger_home();
    let d = Daemon::start(&home);
    let path = home.file("state/command.sock");
    let mode = std::fs::metadata(&path)
        .expect("the socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "only its owner may use it");
    let stream = UnixStream::connect(&path).expect("connect");
    let mut lines = BufReader::new(stream.try_clone().expect("clone"));
    let mut send = |text: &str| -> Value {
        writeln!(&stream, "{text}").expect("write");
        let mut answer = String::new();
        lines.read_line(&mut answer).expect("an answer line");
        serde_json::from_str(&answer).expect("json")
    };
    let fired = send("ship");
    assert_eq!(fired["matched"][0]["outcome"], "queued", "{fired}");
    let id = fired["matched"][0]["run_id"].as_str().unwrap().to_string();
    d.wait_run(&id, |v| v["status"] == "waiting_approval");
    let decided = send("/approve gate from the socket");
    assert_eq!(decided["kind"], "approve", "{decided}");
    let run = d.wait_run(&id, |v| v["status"] == "success");
    assert_eq!(run["approvals"][0]["channel"], "command");
    assert_eq!(run["approvals"][0]["comment"], "from the socket");
    assert_eq!(
        run["trigger"]["by"], run["approvals"][0]["by"],
        "the peer's user"
    );
    let refused = send("/reject");
    assert_eq!(refused["error"]["code"], "bad_request", "{refused}");
    assert_eq!(send("nothing matches")["matched"], json!([]));
}

#[test]
fn the_daemon_takes_command_lines_on_its_standard_input() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;

    let home = trigger_home();
    let mut child = home
        .cmd()
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sop serve");
    let mut errors = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = errors.next().expect("a line").expect("text");
        if line.contains("listening on") {
            break;
        }
    }
    std::thread::spawn(move || for _ in errors {});
    let mut input = child.stdin.take().unwrap();
    let mut output = BufReader::new(child.stdout.take().unwrap());
    writeln!(input, "restart now").unwrap();
    let mut answer = String::new();
    output.read_line(&mut answer).unwrap();
    let v: Value = serde_json::from_str(&answer).expect("a JSON line");
    assert_eq!(v["matched"][0]["sop"], "other", "{v}");
    assert_eq!(v["matched"][0]["outcome"], "queued", "{v}");
    drop(input);
    let _ = child.kill();
    let _ = child.wait();
}
