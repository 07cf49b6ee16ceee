//! Delivering notifications (SPEC §5) from `sop serve`: the notifier follows the store's
//! event ledger (every process's runs), makes notices of the events that call for one
//! (`sop_core::notify`), and sends each to the `[[notify]]` channels that want it.
//!
//! Delivery never blocks or fails a run: it runs on its own thread, after the events were
//! committed, with timeouts. Every attempt is recorded (`notifications` table) and a
//! failure is also logged. The notifier's place in the ledger is kept in the store after
//! each notice sent, so a notice is sent at least once (a crash between sending and
//! keeping the place sends it again). A daemon's first start on a home begins at the
//! ledger's end (no notices for history); an `approval_needed` whose run no longer waits
//! when its turn comes (after a daemon was down) is not sent.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sop_core::config::{NotifyEntry, NotifyEvent, NotifyFormat};
use sop_core::notify::{notice_of, text, wants, Notice};
use sop_store::{Delivery, Store, StoreError};

use crate::clock::now;
use crate::home::Home;
use crate::process::base_env;

/// How long a webhook or a command may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How often the ledger is read for new events.
const POLL: Duration = Duration::from_millis(200);
/// Events read at a time.
const BATCH: u32 = 256;

/// The notifier of one home.
pub struct Notifier {
    store: Arc<dyn Store>,
    home: Home,
    channels: Vec<NotifyEntry>,
    stopped: Mutex<bool>,
    bell: Condvar,
}

impl Notifier {
    pub fn new(store: Arc<dyn Store>, home: Home, channels: Vec<NotifyEntry>) -> Notifier {
        Notifier {
            store,
            home,
            channels,
            stopped: Mutex::new(false),
            bell: Condvar::new(),
        }
    }

    /// Follows the ledger until [`Notifier::stop`]. A store error is logged and retried.
    pub fn run(&self) {
        while !self.is_stopped() {
            if let Err(e) = self.follow() {
                tracing::error!("notifications: {e}; retrying");
                self.pause(Duration::from_secs(1));
            }
        }
    }

    /// Stops [`Notifier::run`] after the delivery in progress, if any.
    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.bell.notify_all();
    }

    fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pause(&self, d: Duration) {
        let stopped = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        if !*stopped {
            let _ = self.bell.wait_timeout(stopped, d);
        }
    }

    fn follow(&self) -> Result<(), StoreError> {
        let mut cursor = if let Some(seq) = self.store.notify_cursor()? {
            seq
        } else {
            let seq = self.store.last_event_seq()?;
            self.store.set_notify_cursor(seq)?;
            seq
        };
        while !self.is_stopped() {
            let batch = self.store.events_after(cursor, BATCH)?;
            let Some(last) = batch.last().map(|(row, _)| row.seq) else {
                self.pause(POLL);
                continue;
            };
            for (row, sop) in &batch {
                if self.is_stopped() {
                    return Ok(());
                }
                let Some(notice) = notice_of(&row.run_id, sop, row.at, &row.event) else {
                    continue;
                };
                if notice.event == NotifyEvent::ApprovalNeeded && !self.still_waiting(&notice)? {
                    // Decided meanwhile (the daemon was down, or channels came late).
                    continue;
                }
                self.send(&notice);
                // Kept after each notice sent, so a stop or a crash resends at most one.
                cursor = row.seq;
                self.store.set_notify_cursor(cursor)?;
            }
            if cursor != last {
                cursor = last;
                self.store.set_notify_cursor(cursor)?;
            }
        }
        Ok(())
    }

    /// Whether the run of an `approval_needed` notice still waits.
    fn still_waiting(&self, notice: &Notice) -> Result<bool, StoreError> {
        Ok(self
            .store
            .run_row(&notice.run_id)?
            .is_some_and(|r| r.status.is_waiting()))
    }

    /// Sends `notice` to every channel that wants it, and records each attempt (a record
    /// that cannot be written is logged: the notice was sent or not all the same).
    fn send(&self, notice: &Notice) {
        for channel in self.channels.iter().filter(|c| wants(c, notice.event)) {
            let result = deliver(channel, notice, &self.home);
            if let Err(why) = &result {
                tracing::warn!(
                    run = %notice.run_id,
                    event = notice.event.as_str(),
                    channel = channel.kind(),
                    "notification not delivered: {why}"
                );
            }
            let recorded = self.store.record_delivery(&Delivery {
                at: now(),
                run_id: notice.run_id.clone(),
                event: notice.event.as_str().to_string(),
                channel: channel.kind().to_string(),
                ok: result.is_ok(),
                detail: result.unwrap_or_else(|why| why),
            });
            if let Err(e) = recorded {
                tracing::error!(run = %notice.run_id, "cannot record a notification: {e}");
            }
        }
    }
}

/// Sends one notice to one channel: what was done, or why it failed.
fn deliver(channel: &NotifyEntry, notice: &Notice, home: &Home) -> Result<String, String> {
    match channel {
        NotifyEntry::Webhook { url, format, .. } => {
            let body = match format {
                NotifyFormat::Json => serde_json::to_value(notice).map_err(|e| e.to_string())?,
                NotifyFormat::Slack => serde_json::json!({ "text": text(notice) }),
            };
            // A webhook URL is often a credential (Slack's are): only its origin is shown.
            let shown = origin(url);
            match ureq::post(url).timeout(TIMEOUT).send_json(body) {
                Ok(answer) => Ok(format!("POST {shown}: {}", answer.status())),
                Err(ureq::Error::Status(code, _)) => Err(format!("POST {shown}: HTTP {code}")),
                Err(ureq::Error::Transport(t)) => Err(format!("POST {shown}: {}", t.kind())),
            }
        }
        NotifyEntry::Command { command, .. } => run_command(command, notice, home),
        NotifyEntry::Log { .. } => {
            tracing::info!(target: "sop::notify", "{}", text(notice));
            Ok("logged".to_string())
        }
    }
}

/// `scheme://host[:port]` of `url` (what may be shown of it).
fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    // Credentials in the authority are not shown either.
    let host = host.rsplit('@').next().unwrap_or(host);
    format!("{scheme}://{host}")
}

/// Runs `command` with `sh -c` in the home, in a process group of its own, the notice as
/// JSON on its standard input and `SOP_EVENT`, `SOP_RUN_ID`, `SOP_NAME`, `SOP_GATE`,
/// `SOP_STATUS` in its environment (on top of the environment steps start from, never the
/// daemon's own). Its group is killed after [`TIMEOUT`]. Its standard error (the first
/// 4 KiB) explains a failure; a background process that keeps it open does not hold the
/// notifier up.
fn run_command(command: &str, notice: &Notice, home: &Home) -> Result<String, String> {
    use std::os::unix::process::CommandExt as _;
    let json = serde_json::to_string(notice).map_err(|e| e.to_string())?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(home.root())
        .env_clear()
        .envs(base_env().iter().map(|(k, v)| (k, v)))
        .env("SOP_EVENT", notice.event.as_str())
        .env("SOP_RUN_ID", &notice.run_id)
        .env("SOP_NAME", &notice.sop)
        .env("SOP_GATE", notice.gate.as_deref().unwrap_or(""))
        .env("SOP_STATUS", notice.status.map_or("", |s| s.as_str()))
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot start `sh`: {e}"))?;
    let group = child.id();
    let (tx, errors) = std::sync::mpsc::channel();
    if let Some(stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut head = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::Read::take(stderr, 4096), &mut head);
            let _ = tx.send(String::from_utf8_lossy(&head).trim().to_string());
        });
    }
    if let Some(mut stdin) = child.stdin.take() {
        // Far smaller than a pipe's buffer; a command that does not read it is fine.
        let _ = stdin.write_all(json.as_bytes());
    }
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > TIMEOUT => {
                kill_group(group);
                let _ = child.wait();
                return Err(format!(
                    "command still running after {}s: killed",
                    TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("cannot wait for the command: {e}")),
        }
    };
    if status.success() {
        return Ok("command exited 0".to_string());
    }
    let said = errors
        .recv_timeout(Duration::from_millis(200))
        .unwrap_or_default();
    Err(format!("command {status}: {said}"))
}

/// SIGKILL to process group `group` (a command and what it started).
fn kill_group(group: u32) {
    if let Ok(pid) = i32::try_from(group) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_webhooks_origin_is_shown() {
        let cases = [
            (
                "https://hooks.slack.com/services/T0/B0/secret",
                "https://hooks.slack.com",
            ),
            (
                "http://127.0.0.1:8080/hook?token=x",
                "http://127.0.0.1:8080",
            ),
            ("https://user:pass@example.com/x", "https://example.com"),
            ("https://example.com", "https://example.com"),
        ];
        for (url, shown) in cases {
            assert_eq!(origin(url), shown, "{url}");
        }
    }

    #[test]
    fn an_https_webhook_is_attempted_over_tls_and_its_failure_hides_the_path() {
        let notice = sop_core::notify::notice_of(
            "r1",
            "deploy",
            1,
            &sop_core::run::Happened::Finished {
                status: sop_core::run::RunStatus::Failure,
            },
        )
        .expect("a notice");
        let channel = NotifyEntry::Webhook {
            // Nothing listens on port 1: the connection is refused (no TLS error first).
            url: "https://127.0.0.1:1/services/secret-path".to_string(),
            format: NotifyFormat::Json,
            events: vec![NotifyEvent::RunFailed],
        };
        let home = Home::new(std::env::temp_dir());
        let err = deliver(&channel, &notice, &home).expect_err("nothing listens");
        assert_eq!(err, "POST https://127.0.0.1:1: Connection Failed");
    }
}
