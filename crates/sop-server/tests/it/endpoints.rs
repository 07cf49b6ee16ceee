//! Every endpoint's success shape and every error code of `docs/API.md`.

use serde_json::{json, Value};

use crate::support::{token, Resp, Server, ONE_STEP, TWO_STEPS};

/// A successful answer and the route template it came from (for the `OpenAPI` check).
pub struct Sample {
    pub method: &'static str,
    pub template: &'static str,
    pub resp: Resp,
}

const MANUAL: &str = "## Steps\n\n1. **Check the dashboard**\n   Look at the graphs.\n";

/// Calls every endpoint successfully (no tokens: the local user is admin), checking each
/// answer's shape; returns the answers.
pub async fn exercise_all(s: &Server) -> Vec<Sample> {
    s.sop(
        "hello",
        "version = \"1.2.0\"\n[[triggers]]\ntype = \"command\"\npattern = '^hello (?P<who>\\w+)$'\n\
         [[triggers]]\ntype = \"webhook\"\npath = \"hello/push\"",
        ONE_STEP,
    );
    s.sop("gated", "execution_mode = \"supervised\"", TWO_STEPS);
    s.sop("manual", "", MANUAL);
    let mut out = Vec::new();
    let mut keep = |method, template, resp: &Resp| {
        out.push(Sample {
            method,
            template,
            resp: resp.clone(),
        });
    };

    let r = s.get("/healthz").await;
    assert_eq!(r.expect(200).body, json!({"status": "ok"}));
    keep("GET", "/healthz", &r);

    let r = s.get("/api/openapi.json").await;
    assert!(r.expect(200).body["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.1")));
    keep("GET", "/api/openapi.json", &r);

    let wakes = s.wakes();
    let r = s
        .post(
            "/api/sops/hello/execute",
            &json!({"vars": {}, "priority": "high", "skip_approval": false}),
        )
        .await;
    r.expect(202);
    assert_eq!(r.body["status"], "queued");
    assert_eq!(s.wakes(), wakes + 1, "a new run wakes the scheduler");
    keep("POST", "/api/sops/{name}/execute", &r);
    let hello = r.body["run_id"].as_str().expect("run id").to_string();
    let stored = s.ops().load_run(&hello).expect("stored run");
    assert_eq!(stored.trigger.kind, "manual");
    assert_eq!(stored.trigger.by, "local");
    assert_eq!(stored.priority.as_str(), "high");

    let r = s.get("/api/sops").await;
    r.expect(200);
    let list = r.body.as_array().expect("array");
    let by_name = |n: &str| {
        list.iter()
            .find(|v| v["name"] == n)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(by_name("hello")["last_status"], "queued");
    assert_eq!(by_name("hello")["version"], "1.2.0");
    assert_eq!(by_name("hello")["steps"], 1);
    assert_eq!(by_name("gated")["last_status"], Value::Null);
    assert_eq!(by_name("gated")["execution_mode"], "supervised");
    keep("GET", "/api/sops", &r);

    let r = s.get("/api/sops/gated").await;
    assert_eq!(r.expect(200).body["name"], "gated");
    assert_eq!(r.body["steps"][1]["title"], "Ship");
    keep("GET", "/api/sops/{name}", &r);

    let r = s.get("/api/sops/hello/status").await;
    assert_eq!(r.expect(200).body["run_id"], hello.as_str());
    keep("GET", "/api/sops/{name}/status", &r);

    let r = s
        .get("/api/runs?sop=hello&status=queued,running&limit=5")
        .await;
    r.expect(200);
    assert_eq!(r.body.as_array().map(Vec::len), Some(1));
    assert_eq!(r.body[0]["id"], hello.as_str());
    assert!(r.body[0]["created_at"].is_i64());
    keep("GET", "/api/runs", &r);

    let r = s.get(&format!("/api/runs/{hello}")).await;
    r.expect(200);
    let mut answer = r.body.clone();
    let queue = answer.as_object_mut().and_then(|o| o.remove("queue"));
    assert_eq!(
        queue.as_ref().and_then(|q| q.as_str()),
        Some("can start now; position 1 in the queue"),
        "a queued run says why it waits"
    );
    assert_eq!(
        answer,
        s.audit_file(&hello),
        "the API answers the audit file, plus `queue` while queued"
    );
    keep("GET", "/api/runs/{id}", &r);

    let r = s
        .post(&format!("/api/runs/{hello}/cancel"), &json!({}))
        .await;
    assert_eq!(
        r.expect(200).body,
        json!({"run_id": hello, "status": "cancelled"})
    );
    keep("POST", "/api/runs/{id}/cancel", &r);

    let r = s.get(&format!("/api/runs/{hello}/events")).await;
    r.expect(200);
    assert!(r.text.contains("event: finished"), "{}", r.text);
    keep("GET", "/api/runs/{id}/events", &r);

    let second = s.execute("hello").await;
    let r = s.post("/api/sops/hello/cancel", &json!({})).await;
    assert_eq!(
        r.expect(200).body,
        json!({"run_id": second, "status": "cancelled"})
    );
    keep("POST", "/api/sops/{name}/cancel", &r);

    let gated = s.execute("gated").await;
    s.wait_at_gate(&gated);
    let r = s.get("/api/approvals").await;
    r.expect(200);
    assert_eq!(r.body.as_array().map(Vec::len), Some(1), "{}", r.text);
    assert_eq!(r.body[0]["run_id"], gated.as_str());
    assert_eq!(r.body[0]["gate"], "start");
    assert_eq!(r.body[0]["kind"], "approval");
    assert_eq!(r.body[0]["required"], 1);
    keep("GET", "/api/approvals", &r);

    let r = s
        .post(
            "/api/sop/approve",
            &json!({"sop": "gated", "comment": "lgtm"}),
        )
        .await;
    assert_eq!(
        r.expect(200).body,
        json!({"run_id": gated, "status": "queued"})
    );
    keep("POST", "/api/sop/approve", &r);
    let doc = s.audit_file(&gated);
    assert_eq!(doc["approvals"][0]["by"], "local");
    assert_eq!(doc["approvals"][0]["channel"], "api");
    assert_eq!(doc["approvals"][0]["comment"], "lgtm");

    let gated = s.execute("gated").await;
    s.wait_at_gate(&gated);
    let r = s
        .post(&format!("/api/runs/{gated}/approve"), &json!({}))
        .await;
    assert_eq!(r.expect(200).body["status"], "queued");
    keep("POST", "/api/runs/{id}/approve", &r);

    let gated = s.execute("gated").await;
    s.wait_at_gate(&gated);
    let r = s
        .post(
            &format!("/api/runs/{gated}/reject"),
            &json!({"reason": "not today"}),
        )
        .await;
    assert_eq!(r.expect(200).body["status"], "rejected");
    assert_eq!(s.audit_file(&gated)["approvals"][0]["comment"], "not today");
    keep("POST", "/api/runs/{id}/reject", &r);

    let manual = s.execute("manual").await;
    s.wait_at_gate(&manual);
    let r = s
        .post(
            &format!("/api/runs/{manual}/confirm"),
            &json!({"comment": "looked fine"}),
        )
        .await;
    r.expect(200);
    assert_eq!(r.body["run_id"], manual.as_str());
    keep("POST", "/api/runs/{id}/confirm", &r);
    assert_eq!(
        s.audit_file(&manual)["approvals"][0]["decision"],
        "confirmed"
    );

    let wakes = s.wakes();
    let r = s
        .post("/api/command", &json!({"text": "hello world"}))
        .await;
    r.expect(200);
    assert_eq!(r.body["kind"], "triggers", "{}", r.text);
    assert_eq!(r.body["matched"][0]["sop"], "hello", "{}", r.text);
    assert_eq!(r.body["matched"][0]["outcome"], "queued", "{}", r.text);
    assert_eq!(
        r.body["matched"][0]["vars"],
        json!({"match_1": "world", "who": "world"})
    );
    assert_eq!(s.wakes(), wakes + 1, "a fired trigger wakes the scheduler");
    let fired = r.body["matched"][0]["run_id"].as_str().expect("run id");
    let stored = s.ops().load_run(fired).expect("stored run");
    assert_eq!(stored.trigger.kind, "command");
    assert_eq!(stored.vars["who"], "world");
    keep("POST", "/api/command", &r);

    let r = s
        .post(
            "/api/hooks/hello/push",
            &json!({"who": "web", "hook-id": 5, "n": 2}),
        )
        .await;
    r.expect(200);
    assert_eq!(r.body["matched"][0]["outcome"], "queued", "{}", r.text);
    assert_eq!(
        r.body["matched"][0]["vars"],
        json!({"n": "2", "who": "web"})
    );
    assert_eq!(r.body["skipped_fields"], json!(["hook-id"]));
    let hooked = r.body["matched"][0]["run_id"].as_str().expect("run id");
    let stored = s.ops().load_run(hooked).expect("stored run");
    assert_eq!(stored.trigger.kind, "webhook");
    assert_eq!(stored.trigger.by, "local", "without tokens, the local user");
    keep("POST", "/api/hooks/{path}", &r);
    s.post("/api/hooks/nope", &json!({}))
        .await
        .error(404, "not_found");
    s.post("/api/hooks/hello/push", &json!([1]))
        .await
        .error(400, "bad_request");

    let r = s.get("/api/metrics").await;
    r.expect(200);
    let all = &r.body["overall"]["all"];
    let runs = s
        .ops()
        .store
        .list_runs(&sop_store::RunFilter::default())
        .expect("runs");
    assert_eq!(all["runs"], runs.len(), "{}", r.text);
    assert_eq!(r.body["sops"]["hello"]["7d"]["runs"], 4, "{}", r.text);
    assert!(
        r.body["sops"]["gated"]["all"]["approvals"].as_u64() >= Some(1),
        "{}",
        r.text
    );
    keep("GET", "/api/metrics", &r);
    let r = s.get("/api/metrics?sop=gated").await;
    assert_eq!(
        r.expect(200).body["overall"],
        r.body["sops"]["gated"],
        "{}",
        r.text
    );
    s.get("/api/metrics?sop=nope").await.error(404, "not_found");
    s.get("/api/metrics?sops=x").await.error(400, "bad_request");

    let r = s.get("/metrics").await;
    assert_eq!(r.status.as_u16(), 200);
    assert!(
        r.text.contains("# TYPE sop_run_duration_seconds summary\n"),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains("sop_runs{sop=\"hello\",status=\"queued\"} "),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("sop_approvals_total{sop=\"gated\"} "),
        "{}",
        r.text
    );
    keep("GET", "/metrics", &r);
    out
}

#[tokio::test]
async fn every_endpoint_answers_its_documented_shape() {
    let s = Server::open();
    let samples = exercise_all(&s).await;
    assert_eq!(samples.len(), 20);
}

#[tokio::test]
async fn malformed_or_unknown_input_is_400_bad_request() {
    let s = Server::open();
    s.sop("hello", "", ONE_STEP);
    let req = axum::http::Request::post("/api/sops/hello/execute")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{\"vars\": "))
        .expect("request");
    let r = s.send(req).await;
    r.error(400, "bad_request");
    assert!(r.message().contains("malformed JSON"), "{}", r.text);

    let req = axum::http::Request::post("/api/sops/hello/execute")
        .header("host", "localhost")
        .header("content-type", "text/plain")
        .body(axum::body::Body::from("vars=1"))
        .expect("request");
    s.send(req).await.error(400, "bad_request");

    let r = s
        .post("/api/sops/hello/execute", &json!({"varz": {}}))
        .await;
    r.error(400, "bad_request");
    assert!(r.message().contains("unknown field `varz`"), "{}", r.text);
    let r = s
        .post("/api/sops/hello/execute", &json!({"priority": "urgent"}))
        .await;
    r.error(400, "bad_request");
    assert!(r.message().contains("`urgent`"), "{}", r.text);
    let r = s.get("/api/runs?status=done").await;
    r.error(400, "bad_request");
    assert!(r.message().contains("`done`"), "{}", r.text);
    s.get("/api/runs?limit=0").await.error(400, "bad_request");
    s.get("/api/runs?limit=many")
        .await
        .error(400, "bad_request");
    let id = s.execute("hello").await;
    let r = s
        .post(&format!("/api/runs/{id}/reject"), &json!({"reason": "  "}))
        .await;
    r.error(400, "bad_request");
    let r = s.post(&format!("/api/runs/{id}/reject"), &json!({})).await;
    r.error(400, "bad_request");
    assert!(r.message().contains("reason"), "{}", r.text);
    let req = axum::http::Request::get(format!("/api/runs/{id}/events"))
        .header("host", "localhost")
        .header("last-event-id", "yesterday")
        .body(axum::body::Body::empty())
        .expect("request");
    s.send(req).await.error(400, "bad_request");
}

#[tokio::test]
async fn unknown_things_are_404_and_wrong_methods_405() {
    let s = Server::open();
    s.sop("hello", "", ONE_STEP);
    let r = s.post("/api/sops/helo/execute", &json!({})).await;
    r.error(404, "not_found");
    assert!(r.message().contains("did you mean"), "{}", r.text);
    s.get("/api/sops/nope").await.error(404, "not_found");
    s.get("/api/sops/nope/status").await.error(404, "not_found");
    let r = s.get("/api/sops/hello/status").await;
    r.error(404, "not_found");
    assert!(r.message().contains("no runs"), "{}", r.text);
    s.get("/api/runs/0123456789ab")
        .await
        .error(404, "not_found");
    s.get("/api/runs/0123456789ab/events")
        .await
        .error(404, "not_found");
    s.post("/api/runs/0123456789ab/approve", &json!({}))
        .await
        .error(404, "not_found");
    s.post("/api/runs/0123456789ab/cancel", &json!({}))
        .await
        .error(404, "not_found");
    s.post("/api/sop/approve", &json!({"sop": "nope"}))
        .await
        .error(404, "not_found");
    s.post("/api/sops/../../etc/execute", &json!({}))
        .await
        .error(404, "not_found");
    s.get("/api/nothing/here").await.error(404, "not_found");
    s.call("DELETE", "/api/sops", None, None)
        .await
        .error(405, "method_not_allowed");
    s.call("GET", "/api/sops/hello/execute", None, None)
        .await
        .error(405, "method_not_allowed");
}

#[tokio::test]
async fn refusals_are_409_with_their_codes() {
    let s = Server::open();
    s.sop("cool", "cooldown_secs = 3600", ONE_STEP);
    s.sop("busy", "admission_policy = \"drop\"", ONE_STEP);
    s.sop("gated", "execution_mode = \"supervised\"", TWO_STEPS);

    let first = s.execute("cool").await;
    s.advance(&first);
    let r = s.post("/api/sops/cool/execute", &json!({})).await;
    r.error(409, "cooldown");
    assert!(
        r.message().contains(&first),
        "the refusal names the run: {}",
        r.text
    );
    assert!(r.message().contains("remain"), "{}", r.text);
    let r = s
        .post("/api/sops/cool/execute", &json!({"force": true}))
        .await;
    r.expect(202);

    let running = s.execute("busy").await;
    s.advance(&running);
    let r = s.post("/api/sops/busy/execute", &json!({})).await;
    r.error(409, "dropped");
    assert!(r.message().contains(&running), "{}", r.text);

    let queued = s.execute("gated").await;
    s.post(&format!("/api/runs/{queued}/approve"), &json!({}))
        .await
        .error(409, "not_waiting");
    s.post("/api/sop/approve", &json!({"sop": "gated"}))
        .await
        .error(409, "not_waiting");
    s.post(&format!("/api/runs/{queued}/confirm"), &json!({}))
        .await
        .error(409, "not_waiting");
    s.wait_at_gate(&queued);
    let other = s.execute("gated").await;
    s.wait_at_gate(&other);
    let r = s.post("/api/sop/approve", &json!({"sop": "gated"})).await;
    r.error(409, "conflict");
    assert!(
        r.message().contains(&queued) && r.message().contains(&other),
        "{}",
        r.text
    );
    let r = s
        .post(
            "/api/sop/approve",
            &json!({"sop": "gated", "run_id": other}),
        )
        .await;
    r.expect(200);
    let r = s
        .post(
            "/api/sop/approve",
            &json!({"sop": "cool", "run_id": queued}),
        )
        .await;
    r.error(400, "bad_request");
    s.post(&format!("/api/runs/{other}/approve"), &json!({}))
        .await
        .error(409, "not_waiting");
    s.post(&format!("/api/runs/{queued}/cancel"), &json!({}))
        .await
        .expect(200);
    s.post(&format!("/api/runs/{queued}/cancel"), &json!({}))
        .await
        .error(409, "not_waiting");
    let r = s.post("/api/sops/gated/cancel", &json!({})).await;
    assert_eq!(r.expect(200).body["run_id"], other.as_str());
    s.post("/api/sops/gated/cancel", &json!({}))
        .await
        .error(409, "not_waiting");
}

#[tokio::test]
async fn bad_variables_and_broken_sops_are_422() {
    let s = Server::open();
    s.sop(
        "release",
        "[vars]\nversion = { required = true, pattern = '^\\d+\\.\\d+\\.\\d+$' }",
        ONE_STEP,
    );
    let r = s
        .post(
            "/api/sops/release/execute",
            &json!({"vars": {"version": "one"}}),
        )
        .await;
    r.error(422, "invalid_vars");
    assert!(r.message().contains("version"), "{}", r.text);
    let r = s.post("/api/sops/release/execute", &json!({})).await;
    r.error(422, "invalid_vars");
    assert!(r.message().contains("version"), "{}", r.text);
    let r = s
        .post(
            "/api/sops/release/execute",
            &json!({"vars": {"version": {"major": 1}}}),
        )
        .await;
    r.error(422, "invalid_vars");
    assert!(r.message().contains("`version`"), "{}", r.text);
    let r = s
        .post(
            "/api/sops/release/execute",
            &json!({"vars": {"version": "1.2.3", "PATH": "/tmp"}}),
        )
        .await;
    r.error(422, "invalid_vars");
    assert!(r.message().contains("PATH"), "{}", r.text);
    s.post(
        "/api/sops/release/execute",
        &json!({"vars": {"version": "1.2.3"}}),
    )
    .await
    .expect(202);

    let dir = s.home.sop_dir("broken");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("SOP.toml"),
        "[sop]\nname = \"broken\"\nexecution_mod = 1\n",
    )
    .expect("toml");
    std::fs::write(dir.join("SOP.md"), ONE_STEP).expect("md");
    s.post("/api/sops/broken/execute", &json!({}))
        .await
        .error(422, "invalid_sop");
    s.get("/api/sops/broken").await.error(422, "invalid_sop");
}

#[tokio::test]
async fn secret_defaults_are_not_shown() {
    let s = Server::open();
    s.sop(
        "secretive",
        "[vars]\napi_token = { secret = true, default = \"hunter2\" }",
        ONE_STEP,
    );
    let r = s.get("/api/sops/secretive").await;
    r.expect(200);
    assert!(!r.text.contains("hunter2"), "{}", r.text);
    assert_eq!(r.body["vars"]["api_token"]["default"], "***");
}

#[tokio::test]
async fn health_needs_no_token_and_foreign_hosts_are_refused() {
    let s = Server::with_tokens(&[]);
    assert_eq!(
        s.call("GET", "/healthz", None, None).await.expect(200).body["status"],
        "ok"
    );
    s.call("GET", "/api/openapi.json", None, None)
        .await
        .expect(200);
    let t = token("adam");
    for host in ["evil.example", "localhost.evil.example", "127.0.0.2"] {
        let req = axum::http::Request::get("/api/sops")
            .header("host", host)
            .header("authorization", format!("Bearer {t}"))
            .body(axum::body::Body::empty())
            .expect("request");
        let r = s.send(req).await;
        r.error(403, "forbidden");
        assert!(r.message().contains("not allowed"), "{}", r.text);
    }
    for host in ["localhost:7311", "127.0.0.1", "[::1]:80", "LOCALHOST"] {
        let req = axum::http::Request::get("/api/sops")
            .header("host", host)
            .header("authorization", format!("Bearer {t}"))
            .body(axum::body::Body::empty())
            .expect("request");
        s.send(req).await.expect(200);
    }
}

#[tokio::test]
async fn hosts_of_bind_and_url_are_allowed() {
    let config = sop_core::config::RunnerConfig {
        bind: "10.1.2.3:7311".to_string(),
        url: Some("https://sop.example.com:8443/".to_string()),
        ..Default::default()
    };
    let s = Server::with_config(config);
    for (host, status) in [
        ("10.1.2.3:7311", 200),
        ("sop.example.com", 200),
        ("other.example.com", 403),
    ] {
        let req = axum::http::Request::get("/api/sops")
            .header("host", host)
            .body(axum::body::Body::empty())
            .expect("request");
        s.send(req).await.expect(status);
    }
}

#[test]
fn non_loopback_binds_need_tokens() {
    let open = sop_core::config::RunnerConfig::default();
    let addr: std::net::SocketAddr = "0.0.0.0:7311".parse().expect("addr");
    let err = sop_server::check_bind(&addr, &open).expect_err("refused");
    assert!(
        err.contains("sop token create") && err.contains("127.0.0.1:7311"),
        "{err}"
    );
    assert!(sop_server::check_bind(&"127.0.0.1:7311".parse().expect("addr"), &open).is_ok());
    assert!(sop_server::check_bind(&"[::1]:7311".parse().expect("addr"), &open).is_ok());
    let s = Server::with_tokens(&[]);
    assert!(sop_server::check_bind(&addr, &s.config).is_ok());
}

#[test]
fn new_tokens_are_random_and_hashed() {
    let (a, hash_a) = sop_server::new_token();
    let (b, _) = sop_server::new_token();
    assert_ne!(a, b);
    assert!(a.len() >= 64, "{a}");
    assert_eq!(hash_a, sop_server::token_sha256(&a));
    assert_eq!(hash_a.len(), 64);
}

#[tokio::test]
async fn health_is_degraded_when_audit_files_cannot_be_written() {
    let s = Server::with_tokens(&[]);
    let logs = s.home.root().join("logs");
    let _ = std::fs::remove_dir_all(&logs);
    // A file where the audit directory belongs: nothing can be created under it.
    std::fs::write(&logs, b"not a directory").expect("write");
    let r = s.call("GET", "/healthz", None, None).await;
    r.expect(503);
    assert_eq!(r.body["status"], "degraded");
    assert!(
        r.body["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("audit directory"),
        "{}",
        r.text
    );
    std::fs::remove_file(&logs).expect("remove");
    s.call("GET", "/healthz", None, None).await.expect(200);
}

#[tokio::test]
async fn cross_site_requests_cannot_change_anything() {
    // No tokens: every local request is admin, so only the origin checks stand in the way.
    let s = Server::open();
    s.sop(
        "hello",
        "max_concurrent = 10",
        "## Steps\n\n1. **Go**\n   ```bash\n   true\n   ```\n",
    );
    let post = |headers: &[(&str, &str)]| {
        let mut req = axum::http::Request::post("/api/sops/hello/execute")
            .header("host", "127.0.0.1:7311")
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(axum::body::Body::from("{}")).expect("request")
    };
    for headers in [
        vec![("origin", "https://evil.example")],
        vec![("origin", "http://127.0.0.1:9999")],
        vec![("origin", "null")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
    ] {
        let r = s.send(post(&headers)).await;
        r.error(403, "forbidden");
        assert!(
            r.message().contains("cross-site"),
            "{headers:?}: {}",
            r.text
        );
    }
    // The same page origin with the page's CSRF token, and programs that send no Origin,
    // are fine; a browser's request without the token (or with another) is not.
    let csrf = s.get("/ui/session").await.body["csrf"]
        .as_str()
        .expect("a token")
        .to_string();
    let same = [
        ("origin", "http://127.0.0.1:7311"),
        ("sec-fetch-site", "same-origin"),
    ];
    for headers in [&same[..], &same[..1], &same[1..]] {
        let r = s.send(post(headers)).await;
        r.error(403, "forbidden");
        assert!(r.message().contains("X-Sop-Csrf"), "{}", r.text);
    }
    let mut wrong = same.to_vec();
    wrong.push(("x-sop-csrf", "sop_not-the-token"));
    s.send(post(&wrong)).await.error(403, "forbidden");
    let mut with_token = same.to_vec();
    with_token.push(("x-sop-csrf", csrf.as_str()));
    s.send(post(&with_token)).await.expect(202);
    s.send(post(&[])).await.expect(202);
    // Reading is never refused for its origin.
    let req = axum::http::Request::get("/api/sops")
        .header("host", "127.0.0.1:7311")
        .header("origin", "https://evil.example")
        .body(axum::body::Body::empty())
        .expect("request");
    s.send(req).await.expect(200);
}
