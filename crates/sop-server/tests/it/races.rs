//! Concurrent decisions on one gate: exactly one transition, quorum by distinct
//! identities, approve racing cancel ends the same in the store, the audit file and the API.

use axum::body::Body;
use axum::http::Request;
use serde_json::json;
use sop_core::run::RunStatus;

use crate::support::{send, token, Resp, Server, TWO_STEPS};

fn approve_request(id: &str, who: &str) -> Request<Body> {
    Request::post(format!("/api/runs/{id}/approve"))
        .header("host", "localhost")
        .header("authorization", format!("Bearer {}", token(who)))
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .expect("request")
}

/// Sends all requests at once, each from its own task.
async fn all_at_once(s: &Server, requests: Vec<Request<Body>>) -> Vec<Resp> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|req| {
            let router = s.router.clone();
            let barrier = std::sync::Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                send(router, req).await
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

fn count(resps: &[Resp], status: u16) -> usize {
    resps.iter().filter(|r| r.status.as_u16() == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn fifty_approvals_of_one_gate_make_one_transition() {
    let s = Server::with_tokens(&[]);
    s.sop("gated", "execution_mode = \"supervised\"", TWO_STEPS);
    let id = s.execute("gated").await;
    s.wait_at_gate(&id);
    let resps = all_at_once(&s, (0..50).map(|_| approve_request(&id, "ann")).collect()).await;
    assert_eq!(
        count(&resps, 200),
        1,
        "{:?}",
        resps.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    assert_eq!(count(&resps, 409), 49);
    assert!(resps
        .iter()
        .filter(|r| r.status == 409)
        .all(|r| r.code() == "not_waiting"));
    let run = s.ops().load_run(&id).expect("run");
    assert_eq!(run.approvals.len(), 1);
    assert_eq!(run.approvals[0].by, "ann");
    assert_eq!(
        run.status,
        RunStatus::Queued,
        "released to claim a slot again"
    );
    assert_eq!(
        s.audit_file(&id)["approvals"].as_array().map(Vec::len),
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn a_quorum_of_two_needs_two_distinct_identities() {
    let s = Server::with_tokens(&["bea"]);
    s.sop(
        "gated",
        "execution_mode = \"supervised\"\nrequired_approvals = 2",
        TWO_STEPS,
    );

    let id = s.execute("gated").await;
    s.wait_at_gate(&id);
    let r = send(s.router.clone(), approve_request(&id, "ann")).await;
    assert_eq!(r.expect(200).body["status"], "waiting_approval");
    let r = send(s.router.clone(), approve_request(&id, "ann")).await;
    r.error(409, "not_waiting");
    assert!(r.message().contains("already approved"), "{}", r.text);
    assert_eq!(
        s.get("/api/approvals").await.body[0]["approved_by"],
        json!(["ann"])
    );
    let r = send(s.router.clone(), approve_request(&id, "bea")).await;
    assert_eq!(r.expect(200).body["status"], "queued");

    // The same, all at once: 25 requests from each of two approvers.
    let id = s.execute("gated").await;
    s.wait_at_gate(&id);
    let requests = (0..50)
        .map(|i| approve_request(&id, if i % 2 == 0 { "ann" } else { "bea" }))
        .collect();
    let resps = all_at_once(&s, requests).await;
    assert_eq!(count(&resps, 200), 2);
    assert_eq!(count(&resps, 409), 48);
    let run = s.ops().load_run(&id).expect("run");
    let mut by: Vec<&str> = run.approvals.iter().map(|a| a.by.as_str()).collect();
    by.sort_unstable();
    assert_eq!(by, ["ann", "bea"]);
    assert_eq!(run.status, RunStatus::Queued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn approve_racing_cancel_has_one_outcome_everywhere() {
    let s = Server::with_tokens(&[]);
    s.sop("gated", "execution_mode = \"supervised\"", TWO_STEPS);
    for _ in 0..20 {
        let id = s.execute("gated").await;
        s.wait_at_gate(&id);
        let cancel = Request::post(format!("/api/runs/{id}/cancel"))
            .header("host", "localhost")
            .header("authorization", format!("Bearer {}", token("otto")))
            .body(Body::empty())
            .expect("request");
        let resps = all_at_once(&s, vec![approve_request(&id, "ann"), cancel]).await;
        let (approve, cancel) = (&resps[0], &resps[1]);
        assert_eq!(
            cancel.expect(200).body["status"],
            "cancelled",
            "a waiting or released run can be cancelled"
        );
        let approved = match approve.status.as_u16() {
            200 => true,
            409 => false,
            _ => panic!("unexpected answer to approve: {}", approve.text),
        };

        let stored = s.ops().load_run(&id).expect("run");
        let api = s.get(&format!("/api/runs/{id}")).await;
        let file = s.audit_file(&id);
        assert_eq!(stored.status, RunStatus::Cancelled);
        assert_eq!(stored.approvals.len(), usize::from(approved));
        assert_eq!(
            api.expect(200).body,
            file,
            "the API and the audit file agree"
        );
        assert_eq!(file["status"], "cancelled");
        assert_eq!(
            file["approvals"].as_array().map(Vec::len),
            Some(usize::from(approved))
        );
    }
}
