//! Delivering notifications (SPEC §5) from `sop serve`: the notifier follows the store's
//! event ledger (every process's runs), makes notices of the events that call for one
//! (`sop_core::notify`), and sends each to the `[[notify]]` channels that want it.
//!
//! Delivery never blocks or fails a run: it runs on its own thread, after the events were
//! committed, with timeouts. Every attempt is recorded (`notifications` table) and a
//! failure is also logged. The notifier's place in the ledger is kept in the store after
//! each batch, so a notice is sent at least once: a daemon stopped mid-batch sends that
//! batch's notices again when it starts. A daemon's first start on a home begins at the
//! ledger's end (no notices for history).

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sop_core::config::{NotifyEntry, NotifyFormat};
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
                if let Some(notice) = notice_of(&row.run_id, sop, row.at, &row.event) {
                    self.send(&notice)?;
                }
            }
            cursor = last;
            self.store.set_notify_cursor(cursor)?;
        }
        Ok(())
    }

    /// Sends `notice` to every channel that wants it, and records each attempt.
    fn send(&self, notice: &Notice) -> Result<(), StoreError> {
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
            self.store.record_delivery(&Delivery {
                at: now(),
                run_id: notice.run_id.clone(),
                event: notice.event.as_str().to_string(),
                channel: channel.kind().to_string(),
                ok: result.is_ok(),
                detail: result.unwrap_or_else(|why| why),
            })?;
        }
        Ok(())
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
            let answer = ureq::post(url)
                .timeout(TIMEOUT)
                .send_json(body)
                .map_err(|e| format!("POST {url}: {e}"))?;
            Ok(format!("POST {url}: {}", answer.status()))
        }
        NotifyEntry::Command { command, .. } => run_command(command, notice, home),
        NotifyEntry::Log { .. } => {
            tracing::info!(target: "sop::notify", "{}", text(notice));
            Ok("logged".to_string())
        }
    }
}

/// Runs `command` with `sh -c` in the home, the notice as JSON on its standard input and
/// `SOP_EVENT`, `SOP_RUN_ID`, `SOP_NAME`, `SOP_GATE`, `SOP_STATUS` in its environment (on
/// top of the environment steps start from, never the daemon's own). Killed after
/// [`TIMEOUT`].
fn run_command(command: &str, notice: &Notice, home: &Home) -> Result<String, String> {
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
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot start `sh`: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is fine.
        let _ = stdin.write_all(json.as_bytes());
    }
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok("command exited 0".to_string()),
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
                }
                let err: String = err.trim().chars().take(500).collect();
                return Err(format!("command {status}: {err}"));
            }
            Ok(None) if started.elapsed() > TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "command still running after {}s: killed",
                    TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("cannot wait for the command: {e}")),
        }
    }
}
