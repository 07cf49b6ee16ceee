//! Following `GET /api/runs/{id}/events` (server-sent events): parsing the stream, and
//! reconnecting with `Last-Event-ID` when it goes quiet, until the run ends.

use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::time::{Duration, Instant};

use serde_json::Value;
use sop_core::run::RunStatus;

use super::{segment, Client};
use crate::Fail;

/// One event: its name, `id:` and JSON `data:`.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub name: String,
    pub id: Option<String>,
    pub data: Value,
}

impl SseEvent {
    /// The output sequence number from the event id `<event-seq>:<output-seq>`.
    pub fn output_seq(&self) -> i64 {
        self.id
            .as_deref()
            .and_then(|id| id.split_once(':'))
            .and_then(|(_, o)| o.parse().ok())
            .unwrap_or(0)
    }
}

/// Reads events from a `text/event-stream` body.
struct Reader<R> {
    lines: BufReader<R>,
}

impl<R: Read> Reader<R> {
    /// The next event; `Ok(None)` when the stream ended.
    fn next(&mut self) -> std::io::Result<Option<SseEvent>> {
        let (mut name, mut id, mut data) = (String::new(), None, String::new());
        let mut line = String::new();
        loop {
            line.clear();
            if self.lines.read_line(&mut line)? == 0 {
                return Ok(None);
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                if name.is_empty() && data.is_empty() {
                    continue;
                }
                let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                let name = if name.is_empty() {
                    "message".to_string()
                } else {
                    name
                };
                return Ok(Some(SseEvent { name, id, data }));
            }
            if l.starts_with(':') {
                continue;
            }
            let (field, value) = l.split_once(':').unwrap_or((l, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => name = value.to_string(),
                "id" => id = Some(value.to_string()),
                "data" => {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(value);
                }
                _ => {}
            }
        }
    }
}

/// How to follow a run's events.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// Until the run ends (`finished`), or is interrupted.
    End,
    /// What is there now: stop at the first quiet moment (or after about a second).
    Now,
}

/// Quiet this long: look at the run's status (and reconnect if it still moves).
const IDLE_FOLLOW: Duration = Duration::from_secs(2);
const IDLE_NOW: Duration = Duration::from_millis(400);

/// Calls `each` with every event of run `id` in order (the `finished` event included),
/// reconnecting with `Last-Event-ID` so nothing is missed or repeated.
pub fn follow(
    client: &Client,
    id: &str,
    until: Until,
    each: &mut dyn FnMut(&SseEvent) -> Result<(), Fail>,
) -> Result<(), Fail> {
    let (idle, mut last_pass) = match until {
        Until::End => (IDLE_FOLLOW, false),
        Until::Now => (IDLE_NOW, true),
    };
    let start = Instant::now();
    let mut last_id: Option<String> = None;
    loop {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(1))
            .timeout_read(idle)
            .build();
        let mut req = client.authorize(agent.get(&format!(
            "{}/api/runs/{}/events",
            client.base,
            segment(id)
        )));
        if let Some(l) = &last_id {
            req = req.set("Last-Event-ID", l);
        }
        let answer = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(status, r)) => return Err(super::api_fail(status, r).into()),
            Err(ureq::Error::Transport(t)) => {
                return Err(Fail::failed(format!(
                    "cannot follow run {id} at {}: {}",
                    client.base,
                    super::transport_reason(&t)
                )))
            }
        };
        let mut reader = Reader {
            lines: BufReader::new(answer.into_reader()),
        };
        loop {
            match reader.next() {
                Ok(Some(event)) => {
                    if event.id.is_some() {
                        last_id.clone_from(&event.id);
                    }
                    each(&event)?;
                    if event.name == "finished" {
                        return Ok(());
                    }
                    if matches!(until, Until::Now) && start.elapsed() > Duration::from_secs(1) {
                        return Ok(());
                    }
                }
                Ok(None) => break,
                Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => break,
                Err(e) => {
                    return Err(Fail::failed(format!(
                        "cannot follow run {id} at {}: {e}",
                        client.base
                    )))
                }
            }
        }
        if last_pass {
            return Ok(());
        }
        // Quiet: an interrupted run sends nothing more; an ended one sends `finished`.
        let status = client.document(id)?["status"]
            .as_str()
            .and_then(RunStatus::parse)
            .unwrap_or(RunStatus::Cancelled);
        if status.is_terminal() || status == RunStatus::Interrupted {
            last_pass = true;
        }
    }
}
