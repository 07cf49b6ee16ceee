//! The auth matrix: every role × every endpoint; identities come from tokens only.

use serde_json::{json, Value};
use sop_core::config::Role;

use crate::support::{token, Server, ROLES, TWO_STEPS};

/// Every route of the router: method, path template, role needed (`None`: open).
pub const ROUTES: &[(&str, &str, Option<Role>)] = &[
    ("GET", "/healthz", None),
    ("GET", "/api/openapi.json", None),
    ("GET", "/api/sops", Some(Role::Viewer)),
    ("GET", "/api/sops/{name}", Some(Role::Viewer)),
    ("POST", "/api/sops/{name}/execute", Some(Role::Operator)),
    ("GET", "/api/sops/{name}/status", Some(Role::Viewer)),
    ("POST", "/api/sops/{name}/cancel", Some(Role::Operator)),
    ("GET", "/api/runs", Some(Role::Viewer)),
    ("GET", "/api/runs/{id}", Some(Role::Viewer)),
    ("GET", "/api/runs/{id}/events", Some(Role::Viewer)),
    ("POST", "/api/runs/{id}/approve", Some(Role::Approver)),
    ("POST", "/api/runs/{id}/reject", Some(Role::Approver)),
    ("POST", "/api/runs/{id}/confirm", Some(Role::Approver)),
    ("POST", "/api/runs/{id}/cancel", Some(Role::Operator)),
    ("POST", "/api/sop/approve", Some(Role::Approver)),
    ("GET", "/api/approvals", Some(Role::Viewer)),
    // With the built-in `/approve` (text that fires triggers needs `operator`).
    ("POST", "/api/command", Some(Role::Approver)),
    ("GET", "/api/metrics", Some(Role::Viewer)),
    // Or a signature with the trigger's secret (`hooks.rs`).
    ("POST", "/api/hooks/{path}", Some(Role::Operator)),
    ("GET", "/metrics", Some(Role::Viewer)),
];

fn body_for(template: &str) -> Option<Value> {
    match template {
        "/api/runs/{id}/reject" => Some(json!({"reason": "matrix"})),
        "/api/sop/approve" => Some(json!({"sop": "gated"})),
        "/api/command" => Some(json!({"text": "/approve gated"})),
        t if t.starts_with("/api/") && !t.contains("events") => Some(json!({})),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_role_on_every_endpoint() {
    let s = Server::with_tokens(&[]);
    s.sop(
        "gated",
        "execution_mode = \"supervised\"\n[[triggers]]\ntype = \"webhook\"\npath = \"gated\"",
        TWO_STEPS,
    );
    // Events of a finished run, so the stream ends; everything else on a waiting run.
    // Runs are started by `otto`, who cannot approve: no self-approval refusal below.
    let execute = || async {
        let r = s
            .call(
                "POST",
                "/api/sops/gated/execute",
                Some(&token("otto")),
                Some(&json!({})),
            )
            .await;
        r.expect(202).body["run_id"]
            .as_str()
            .expect("id")
            .to_string()
    };
    let finished = execute().await;
    s.post(&format!("/api/runs/{finished}/cancel"), &json!({}))
        .await
        .expect(200);
    for (method, template, needed) in ROUTES {
        let Some(needed) = needed else {
            let r = s.call(method, template, None, None).await;
            r.expect(200);
            continue;
        };
        let waiting = execute().await;
        s.wait_at_gate(&waiting);
        let id = if template.ends_with("/events") {
            &finished
        } else {
            &waiting
        };
        let path = template
            .replace("{name}", "gated")
            .replace("{id}", id)
            .replace("{path}", "gated");
        let body = body_for(template);
        let what = format!("{method} {template}");

        let r = s.call(method, &path, None, body.as_ref()).await;
        r.error(401, "unauthorized");
        assert!(r.message().contains("Bearer"), "{what}: {}", r.text);
        s.call(method, &path, Some("not-a-token"), body.as_ref())
            .await
            .error(401, "unauthorized");
        let scheme = axum::http::Request::builder()
            .method(*method)
            .uri(&path)
            .header("host", "localhost")
            .header("authorization", format!("Basic {}", token("adam")))
            .body(axum::body::Body::empty())
            .expect("request");
        s.send(scheme).await.error(401, "unauthorized");

        for (name, role) in ROLES {
            let r = s
                .call(method, &path, Some(&token(name)), body.as_ref())
                .await;
            if role < *needed {
                r.error(403, "forbidden");
                assert!(r.message().contains(name), "{what} as {name}: {}", r.text);
            } else {
                assert!(
                    ![401, 403, 404, 405].contains(&r.status.as_u16()),
                    "{what} as {name} ({role:?}) must be allowed: {}",
                    r.text
                );
            }
        }
    }
}

#[tokio::test]
async fn the_identity_of_a_decision_is_the_token_name() {
    let s = Server::with_tokens(&[]);
    s.sop("gated", "execution_mode = \"supervised\"", TWO_STEPS);
    let r = s
        .call(
            "POST",
            "/api/sops/gated/execute",
            Some(&token("otto")),
            Some(&json!({})),
        )
        .await;
    let id = r.expect(202).body["run_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(
        s.audit_file(&id)["trigger"],
        json!({"type": "manual", "by": "otto"})
    );
    s.wait_at_gate(&id);

    let forged = json!({"comment": "ok", "by": "mallory"});
    let r = s
        .call(
            "POST",
            &format!("/api/runs/{id}/approve"),
            Some(&token("ann")),
            Some(&forged),
        )
        .await;
    r.error(400, "bad_request");
    assert!(r.message().contains("`by`"), "{}", r.text);
    let forged = json!({"sop": "gated", "by": "mallory"});
    s.call(
        "POST",
        "/api/sop/approve",
        Some(&token("ann")),
        Some(&forged),
    )
    .await
    .error(400, "bad_request");
    assert_eq!(
        s.audit_file(&id)["approvals"],
        json!([]),
        "a refused request changes nothing"
    );

    let r = s
        .call(
            "POST",
            "/api/sop/approve",
            Some(&token("ann")),
            Some(&json!({"sop": "gated"})),
        )
        .await;
    r.expect(200);
    let doc = s.get(&format!("/api/runs/{id}")).await.body;
    assert_eq!(doc["approvals"][0]["by"], "ann");
    assert_eq!(doc["approvals"][0]["channel"], "api");
    assert_eq!(s.audit_file(&id)["approvals"][0]["by"], "ann");
}

#[tokio::test]
async fn skip_approval_and_force_need_admin() {
    let s = Server::with_tokens(&[]);
    s.sop("gated", "execution_mode = \"supervised\"", TWO_STEPS);
    for field in ["skip_approval", "force"] {
        let body = json!({ field: true });
        let r = s
            .call(
                "POST",
                "/api/sops/gated/execute",
                Some(&token("otto")),
                Some(&body),
            )
            .await;
        r.error(403, "forbidden");
        assert!(
            r.message().contains(field) && r.message().contains("admin"),
            "{}",
            r.text
        );
        s.call(
            "POST",
            "/api/sops/gated/execute",
            Some(&token("ann")),
            Some(&body),
        )
        .await
        .error(403, "forbidden");
    }
    assert!(
        s.get("/api/runs")
            .await
            .body
            .as_array()
            .is_some_and(Vec::is_empty),
        "nothing was queued"
    );
    let r = s
        .call(
            "POST",
            "/api/sops/gated/execute",
            Some(&token("adam")),
            Some(&json!({"skip_approval": true})),
        )
        .await;
    let id = r.expect(202).body["run_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(s.audit_file(&id)["skip_approval"], true);
}

#[tokio::test]
async fn without_tokens_everyone_is_the_local_admin() {
    let s = Server::open();
    s.sop("gated", "execution_mode = \"supervised\"", TWO_STEPS);
    let r = s
        .call(
            "POST",
            "/api/sops/gated/execute",
            None,
            Some(&json!({"skip_approval": true})),
        )
        .await;
    let id = r.expect(202).body["run_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(s.audit_file(&id)["trigger"]["by"], "local");
    // A token sent anyway is not needed and not checked.
    s.call("GET", "/api/sops", Some("whatever"), None)
        .await
        .expect(200);
}

#[tokio::test]
async fn a_command_line_needs_operator_to_fire_and_approver_to_decide() {
    let s = Server::with_tokens(&[]);
    s.sop(
        "gated",
        "execution_mode = \"supervised\"\n[[triggers]]\ntype = \"command\"\npattern = '^ship$'",
        TWO_STEPS,
    );
    let line = |text: &str, dry_run: bool| json!({"text": text, "dry_run": dry_run});
    // A viewer may only ask what would happen.
    let r = s
        .call(
            "POST",
            "/api/command",
            Some(&token("vera")),
            Some(&line("ship", true)),
        )
        .await;
    assert_eq!(
        r.expect(200).body["matched"][0]["outcome"],
        "would_run",
        "{}",
        r.text
    );
    s.call(
        "POST",
        "/api/command",
        Some(&token("vera")),
        Some(&line("ship", false)),
    )
    .await
    .error(403, "forbidden");
    // An operator fires triggers, and may not decide.
    let r = s
        .call(
            "POST",
            "/api/command",
            Some(&token("otto")),
            Some(&line("ship", false)),
        )
        .await;
    let id = r.expect(200).body["matched"][0]["run_id"]
        .as_str()
        .expect("queued")
        .to_string();
    s.wait_at_gate(&id);
    let r = s
        .call(
            "POST",
            "/api/command",
            Some(&token("otto")),
            Some(&line("/reject gated no", false)),
        )
        .await;
    r.error(403, "forbidden");
    assert!(
        r.message().contains("`/reject` needs `approver`"),
        "{}",
        r.text
    );
    // An approver rejects, as the command line's sender.
    let r = s
        .call(
            "POST",
            "/api/command",
            Some(&token("ann")),
            Some(&line("/reject gated not now", false)),
        )
        .await;
    assert_eq!(
        r.expect(200).body,
        json!({"kind": "reject", "dry_run": false, "run": {"run_id": id, "status": "rejected"}, "matched": [], "invalid": []})
    );
    let doc = s.audit_file(&id);
    assert_eq!(doc["trigger"], json!({"type": "command", "by": "otto"}));
    assert_eq!(doc["approvals"][0]["by"], "ann");
    assert_eq!(doc["approvals"][0]["channel"], "command");
    assert_eq!(doc["approvals"][0]["comment"], "not now");
}
