//! Server-sent events of a run: names, ids, `Last-Event-ID` resumption, live delivery.

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use sop_store::Store;

use crate::support::{Server, ONE_STEP};

#[derive(Debug, Clone)]
struct Frame {
    id: String,
    event: String,
    data: serde_json::Value,
}

fn frames(text: &str) -> Vec<Frame> {
    text.split("\n\n")
        .filter_map(|block| {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim_start().to_string()))
            };
            let event = field("event:")?;
            Some(Frame {
                id: field("id:").unwrap_or_default(),
                event,
                data: serde_json::from_str(&field("data:").unwrap_or_default()).unwrap_or_default(),
            })
        })
        .collect()
}

fn names(fs: &[Frame]) -> Vec<&str> {
    fs.iter().map(|f| f.event.as_str()).collect()
}

fn events_request(id: &str, last: Option<&str>) -> Request<Body> {
    let mut req = Request::get(format!("/api/runs/{id}/events")).header("host", "localhost");
    if let Some(l) = last {
        req = req.header("last-event-id", l);
    }
    req.body(Body::empty()).expect("request")
}

/// Runs one step with two chunks of output to success, as a driver would.
fn run_to_success(s: &Server, id: &str) {
    s.advance(id);
    s.store
        .append_output(id, "step 1", 1, "hello\n")
        .expect("output");
    s.store
        .append_output(id, "step 1", 1, "world\n")
        .expect("output");
    s.exit_step(id, 0);
    s.advance(id);
}

#[tokio::test]
async fn a_finished_run_streams_its_history_and_ends() {
    let s = Server::open();
    s.sop("hello", "", ONE_STEP);
    let id = s.execute("hello").await;
    run_to_success(&s, &id);
    let r = s.send(events_request(&id, None)).await;
    r.expect(200);
    let fs = frames(&r.text);
    assert_eq!(
        names(&fs),
        [
            "requeued",
            "started",
            "step_started",
            "output",
            "output",
            "step_finished",
            "finished"
        ],
        "{}",
        r.text
    );
    assert_eq!(
        fs[1].data["event"], "started",
        "other ledger events keep their `event` field"
    );
    assert_eq!(
        fs[2].data,
        serde_json::json!({"gate": "step 1", "attempt": 1})
    );
    assert_eq!(
        fs[3].data,
        serde_json::json!({"gate": "step 1", "attempt": 1, "text": "hello\n"})
    );
    assert_eq!(fs[5].data["status"], "success");
    assert_eq!(fs[5].data["exit_code"], 0);
    assert_eq!(fs[6].data, serde_json::json!({"status": "success"}));
    let cursors: Vec<(i64, i64)> = fs
        .iter()
        .map(|f| {
            let (e, o) = f.id.split_once(':').expect("id is <ev>:<out>");
            (e.parse().expect("ev"), o.parse().expect("out"))
        })
        .collect();
    assert!(
        cursors
            .windows(2)
            .all(|w| w[0] < w[1] || (w[0].0 <= w[1].0 && w[0].1 <= w[1].1)),
        "{cursors:?}"
    );
    assert!(
        cursors.windows(2).all(|w| w[0] != w[1]),
        "every event moves the cursor: {cursors:?}"
    );

    // Resuming after the first output: only what came later.
    let r = s.send(events_request(&id, Some(&fs[3].id))).await;
    let later = frames(&r.expect(200).text);
    assert_eq!(names(&later), ["output", "step_finished", "finished"]);
    assert_eq!(later[0].data["text"], "world\n");
    // Resuming after the end: nothing is sent again.
    let r = s.send(events_request(&id, Some(&fs[6].id))).await;
    assert!(frames(&r.text).is_empty(), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_client_gets_events_as_they_happen() {
    let s = Server::open();
    s.sop("hello", "", ONE_STEP);
    let id = s.execute("hello").await;
    let resp = tower::ServiceExt::oneshot(s.router.clone(), events_request(&id, None))
        .await
        .expect("answer");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let reader = tokio::spawn(async move {
        let mut body = resp.into_body();
        let mut text = String::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.expect("frame").into_data() {
                text.push_str(&String::from_utf8_lossy(&data));
            }
        }
        text
    });
    // Nothing has happened yet; the stream waits.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(!reader.is_finished());
    run_to_success(&s, &id);
    let text = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the stream ends")
        .expect("reader");
    assert_eq!(
        names(&frames(&text)),
        [
            "requeued",
            "started",
            "step_started",
            "output",
            "output",
            "step_finished",
            "finished"
        ],
        "{text}"
    );
}
