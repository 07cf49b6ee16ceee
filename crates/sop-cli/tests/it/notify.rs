//! Notifications from a real `sop serve`: a command channel, a webhook to a real HTTP
//! listener on loopback, the log, and a failing channel that is recorded, not fatal.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::daemon::Daemon;
use crate::support::{wait_for, Home};

/// A one-thread HTTP listener answering 200 to every POST; each body arrives on the channel.
fn listener() -> (String, mpsc::Receiver<Value>) {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", server.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in server.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let mut stream = reader.into_inner();
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
        }
    });
    (url, rx)
}

/// The `notifications` rows: run, event, channel, ok, detail.
fn delivered(home: &Home) -> Vec<(String, String, String, bool, String)> {
    let db = rusqlite::Connection::open(home.file("state/sop.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT run_id, event, channel, ok, detail FROM notifications ORDER BY seq")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows
}

fn notices(home: &Home) -> Vec<Value> {
    std::fs::read_to_string(home.file("notices.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn wait_notice(home: &Home, event: &str, run: &str) -> Value {
    wait_for(Duration::from_secs(20), || {
        notices(home)
            .into_iter()
            .find(|n| n["event"] == event && n["run_id"] == run)
    })
    .unwrap_or_else(|| panic!("no {event} for {run}: {:?}", notices(home)))
}

#[test]
fn runs_waiting_and_ending_are_notified_on_every_channel_that_wants_it() {
    let home = Home::new();
    let (url, bodies) = listener();
    std::fs::write(
        home.file("sop.toml"),
        format!(
            "[[notify]]\ntype = \"command\"\n\
             command = 'cat >> notices.jsonl; echo >> notices.jsonl; echo \"$SOP_EVENT $SOP_NAME $SOP_GATE\" >> notices.env'\n\
             events = [\"approval_needed\", \"run_failed\", \"run_succeeded\"]\n\
             [[notify]]\ntype = \"webhook\"\nurl = \"{url}\"\nformat = \"slack\"\n\
             [[notify]]\ntype = \"log\"\n\
             [[notify]]\ntype = \"command\"\ncommand = \"echo no way >&2; exit 3\"\nevents = [\"run_failed\"]\n"
        ),
    )
    .unwrap();
    home.simple(
        "gate",
        "",
        "## Steps\n\n1. **Ship** [requires_approval: true]\n   ```bash\n   true\n   ```\n",
    );
    home.simple(
        "boom",
        "",
        "## Steps\n\n1. **Fail**\n   ```bash\n   exit 1\n   ```\n",
    );
    let d = Daemon::start(&home);

    let gate = d.execute("gate", &json!({}));
    let n = wait_notice(&home, "approval_needed", &gate);
    assert_eq!(
        (n["sop"].as_str(), n["gate"].as_str(), n["wait"].as_str()),
        (Some("gate"), Some("step 1"), Some("approval"))
    );
    let slack = bodies
        .recv_timeout(Duration::from_secs(20))
        .expect("a webhook");
    assert_eq!(
        slack["text"],
        format!("approval needed: run {gate} of `gate` waits at step 1; decide with `sop approve {gate}`")
    );

    let boom = d.execute("boom", &json!({}));
    let n = wait_notice(&home, "run_failed", &boom);
    assert_eq!(n["status"], "failure");
    let slack = bodies
        .recv_timeout(Duration::from_secs(20))
        .expect("a webhook");
    assert!(
        slack["text"]
            .as_str()
            .unwrap()
            .starts_with(&format!("run failed: run {boom} of `boom` ended failure")),
        "{slack}"
    );

    d.post(&format!("/api/runs/{gate}/approve"), &json!({}))
        .expect("approved");
    wait_notice(&home, "run_succeeded", &gate);
    let env = std::fs::read_to_string(home.file("notices.env")).unwrap();
    assert!(env.contains("approval_needed gate step 1\n"), "{env}");

    // Every attempt is recorded; the failing channel's too, with why. The webhook was not
    // asked for successes (channels are tried in order: the command, first, has its row).
    let rows = delivered(&home);
    let hooked: Vec<&str> = rows
        .iter()
        .filter(|r| r.2 == "webhook")
        .map(|r| r.1.as_str())
        .collect();
    assert_eq!(hooked, ["approval_needed", "run_failed"], "{rows:?}");
    let failed: Vec<_> = rows.iter().filter(|r| !r.3).collect();
    assert_eq!(failed.len(), 1, "{rows:?}");
    assert_eq!(
        (failed[0].0.as_str(), failed[0].2.as_str()),
        (boom.as_str(), "command")
    );
    assert!(
        failed[0].4.contains("exit status: 3") && failed[0].4.contains("no way"),
        "{rows:?}"
    );
    let logged = rows.iter().filter(|r| r.2 == "log").count();
    assert_eq!(logged, 2, "approval needed and run failed: {rows:?}");

    // Stopped, the daemon misses nothing: a run that fails meanwhile (in a terminal) is
    // notified once it is back; a run that waited and was decided meanwhile is not.
    let mut d = d;
    d.terminate(Duration::from_secs(20));
    drop(d);
    let waited = home.run(&["run", "gate", "--detach"]);
    let waited = waited.ok().stdout.trim().to_string();
    home.wait_status(&waited, |v| v["status"] == "waiting_approval");
    home.run(&["reject", &waited, "--reason", "no"]).ok();
    home.run(&["run", "boom"]).code(1);
    let runs = home.run(&["runs", "--sop", "boom", "--json"]);
    let runs: Value = serde_json::from_str(&runs.stdout).unwrap();
    let boom2 = runs[0]["id"].as_str().unwrap().to_string();
    assert_ne!(boom2, boom);
    let _d = Daemon::start(&home);
    wait_notice(&home, "run_failed", &boom2);
    let sent = notices(&home);
    assert!(
        !sent.iter().any(|n| n["run_id"] == waited.as_str()),
        "a wait decided while the daemon was down is not notified: {sent:?}"
    );
    let once = sent
        .iter()
        .filter(|n| n["run_id"] == boom2.as_str())
        .count();
    assert_eq!(once, 1, "{sent:?}");
}

#[test]
fn a_notify_channel_of_an_unknown_type_is_a_configuration_error() {
    let home = Home::new();
    std::fs::write(home.file("sop.toml"), "[[notify]]\ntype = \"email\"\n").unwrap();
    home.run(&["runs"])
        .code(2)
        .stderr_has("sop.toml:2:8")
        .stderr_has("unknown variant `email`, expected one of `webhook`, `command`, `log`");
    std::fs::write(home.file("sop.toml"), "[[notify]]\ntype = \"webhook\"\n").unwrap();
    home.run(&["runs"])
        .code(2)
        .stderr_has("missing field `url`");
}
