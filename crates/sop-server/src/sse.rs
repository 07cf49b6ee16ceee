//! `GET /api/runs/{id}/events`: a run's ledger events and output chunks as server-sent
//! events. Each event's id is `<event-seq>:<output-seq>` (everything up to both was sent),
//! so a client that reconnects with `Last-Event-ID` gets exactly what it missed. The
//! stream polls the store and ends after `finished`.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::{json, Value};
use sop_core::run::Happened;
use sop_store::{EventRow, OutputChunk};

use crate::auth::{Auth, Viewer};
use crate::error::ApiError;
use crate::extract::Path;
use crate::shapes::ErrorBody;
use crate::{blocking, ServerState};

/// How often the store is asked for news when the last look found none.
const POLL: Duration = Duration::from_millis(100);

/// Ledger events sent without their `event` field (the SSE event name says it).
const NAMED: &[&str] = &[
    "step_started",
    "step_finished",
    "step_skipped",
    "waiting",
    "decided",
    "finished",
];

/// Live events of a run: `step_started`, `output`, `step_finished`, `step_skipped`,
/// `waiting`, `decided`, `finished` (then the stream ends), and other ledger events under
/// their own names.
#[utoipa::path(get, path = "/api/runs/{id}/events", tag = "runs", security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "run id"),
        ("Last-Event-ID" = Option<String>, Header, description = "`<event-seq>:<output-seq>` of the last event received"),
    ),
    responses(
        (status = 200, description = "server-sent events (see docs/API.md)", content_type = "text/event-stream", body = String),
        (status = 400, description = "malformed `Last-Event-ID`", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "role too low or host not allowed", body = ErrorBody),
        (status = 404, description = "no such run", body = ErrorBody),
    ))]
pub async fn events(
    State(state): State<Arc<ServerState>>,
    _auth: Auth<Viewer>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let (ev, out) = match headers.get("last-event-id") {
        None => (0, 0),
        Some(v) => parse_cursor(v.to_str().unwrap_or_default())?,
    };
    let run_id = id.clone();
    blocking(&state, move |ops| {
        ops.store
            .run_row(&run_id)?
            .map(|_| ())
            .ok_or_else(|| ApiError::NotFound(format!("no run `{run_id}`")))
    })
    .await?;
    let feed = Feed {
        state,
        run_id: id,
        ev,
        out,
        queue: VecDeque::new(),
        done: false,
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        feed.next().await.map(|event| (Ok(event), feed))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// `<event-seq>:<output-seq>`.
fn parse_cursor(text: &str) -> Result<(i64, i64), ApiError> {
    let parsed = text
        .trim()
        .split_once(':')
        .and_then(|(e, o)| Some((e.parse::<i64>().ok()?, o.parse::<i64>().ok()?)));
    match parsed {
        Some((e, o)) if e >= 0 && o >= 0 => Ok((e, o)),
        _ => Err(ApiError::BadRequest(format!(
            "malformed `Last-Event-ID` `{text}`: expected `<event-seq>:<output-seq>` as sent in the `id:` of an event"
        ))),
    }
}

/// The state of one stream: what was sent, and events ready to send.
struct Feed {
    state: Arc<ServerState>,
    run_id: String,
    /// Highest ledger sequence sent.
    ev: i64,
    /// Highest output sequence sent.
    out: i64,
    queue: VecDeque<Event>,
    /// `finished` was queued: end once the queue is empty.
    done: bool,
}

impl Feed {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            if self.done
                || self
                    .state
                    .stopping
                    .load(std::sync::atomic::Ordering::SeqCst)
            {
                return None;
            }
            // Looked at before fetching: a run seen over has all its events committed, so
            // a fetch that then finds nothing means a client resumed after `finished`.
            let over = self.run_is_over().await;
            match self.fetch().await {
                Ok((events, chunks)) if events.is_empty() && chunks.is_empty() => {
                    if over {
                        return None;
                    }
                    tokio::time::sleep(POLL).await;
                }
                Ok((events, chunks)) => self.enqueue(events, chunks),
                Err(e) => {
                    // The client reconnects with its `Last-Event-ID` and misses nothing.
                    tracing::error!(run = %self.run_id, error = %e, "event stream stopped: cannot read the store");
                    return None;
                }
            }
        }
    }

    /// New output, then new events. In that order: every chunk read then belongs to a
    /// step whose `step_started` is already in the ledger, so it can be placed after it.
    async fn fetch(&self) -> Result<(Vec<EventRow>, Vec<OutputChunk>), String> {
        let (store, id, ev, out) = (
            Arc::clone(&self.state.store),
            self.run_id.clone(),
            self.ev,
            self.out,
        );
        let read = tokio::task::spawn_blocking(move || {
            let chunks = store.output_since(&id, out)?;
            let events = store.events_since(&id, ev)?;
            Ok::<_, sop_store::StoreError>((events, chunks))
        })
        .await;
        match read {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Whether the run has ended: nothing more will be recorded for it.
    async fn run_is_over(&self) -> bool {
        let (store, id) = (Arc::clone(&self.state.store), self.run_id.clone());
        let row = tokio::task::spawn_blocking(move || store.run_row(&id)).await;
        matches!(row, Ok(Ok(Some(r))) if r.status.is_terminal())
    }

    /// Queues events and chunks, each in sequence order, so that a step's output comes
    /// after its `step_started` and before its `step_finished`.
    fn enqueue(&mut self, events: Vec<EventRow>, chunks: Vec<OutputChunk>) {
        let starts_here: HashSet<(String, u32)> = events
            .iter()
            .filter_map(|e| match &e.event {
                Happened::StepStarted { gate, attempt } => Some((gate.clone(), *attempt)),
                _ => None,
            })
            .collect();
        let mut started: HashSet<(String, u32)> = HashSet::new();
        let mut chunks: VecDeque<OutputChunk> = chunks.into();
        for row in events {
            self.flush_ready(&mut chunks, &starts_here, &started);
            if let Happened::StepStarted { gate, attempt } = &row.event {
                started.insert((gate.clone(), *attempt));
            }
            let finished = matches!(row.event, Happened::Finished { .. });
            self.ev = row.seq;
            let (name, data) = ledger_data(&row.event);
            self.push(&name, &data);
            if finished {
                self.done = true;
                return;
            }
        }
        self.flush_ready(&mut chunks, &starts_here, &started);
    }

    /// Queues chunks from the front while their step's start was already sent.
    fn flush_ready(
        &mut self,
        chunks: &mut VecDeque<OutputChunk>,
        starts_here: &HashSet<(String, u32)>,
        started: &HashSet<(String, u32)>,
    ) {
        while let Some(c) = chunks.front() {
            let key = (c.gate.clone(), c.attempt);
            if starts_here.contains(&key) && !started.contains(&key) {
                return;
            }
            let Some(c) = chunks.pop_front() else { return };
            self.out = c.seq;
            self.push(
                "output",
                &json!({"gate": c.gate, "attempt": c.attempt, "text": c.text}),
            );
        }
    }

    fn push(&mut self, name: &str, data: &Value) {
        let event = Event::default()
            .id(format!("{}:{}", self.ev, self.out))
            .event(name)
            .data(data.to_string());
        self.queue.push_back(event);
    }
}

/// The SSE name and data of a ledger event.
fn ledger_data(event: &Happened) -> (String, Value) {
    let mut value = serde_json::to_value(event).unwrap_or_else(|_| json!({}));
    let name = value
        .get("event")
        .and_then(Value::as_str)
        .unwrap_or("event")
        .to_string();
    if NAMED.contains(&name.as_str()) {
        if let Some(obj) = value.as_object_mut() {
            obj.remove("event");
        }
    }
    (name, value)
}
