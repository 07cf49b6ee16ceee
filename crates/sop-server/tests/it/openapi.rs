//! The `OpenAPI` document: every route documented with its methods, and real answers valid
//! against the schemas it gives for them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::auth::ROUTES;
use crate::endpoints::exercise_all;
use crate::schema::check;
use crate::support::{Resp, Server};

async fn document(s: &Server) -> Value {
    let r = s.get("/api/openapi.json").await;
    r.expect(200);
    r.body
}

#[tokio::test]
async fn every_route_is_documented_with_its_methods_and_nothing_else() {
    let s = Server::open();
    let doc = document(&s).await;
    let mut routed: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (method, template, _) in ROUTES {
        routed
            .entry(template)
            .or_default()
            .insert(method.to_ascii_lowercase());
    }
    let paths = doc["paths"].as_object().expect("paths");
    let documented: BTreeMap<&str, BTreeSet<String>> = paths
        .iter()
        .map(|(p, item)| {
            let methods = item
                .as_object()
                .map(|m| {
                    m.keys()
                        .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            (p.as_str(), methods)
        })
        .collect();
    assert_eq!(documented, routed);
    // The routes table is the router's: each answers (no 404/405 from the router itself).
    for (method, template, _) in ROUTES {
        let path = template.replace("{name}", "x").replace("{id}", "x");
        let r = s.call(method, &path, None, Some(&json!({}))).await;
        assert!(
            r.code() != "method_not_allowed" && !r.message().contains("no such endpoint"),
            "{method} {template} is not routed: {}",
            r.text
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer");
}

/// The schema documented for `method template` answering `status` with JSON.
fn documented<'a>(doc: &'a Value, method: &str, template: &str, status: u16) -> &'a Value {
    let response =
        &doc["paths"][template][method.to_ascii_lowercase()]["responses"][status.to_string()];
    assert!(
        !response.is_null(),
        "{method} {template} does not document status {status}"
    );
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "{method} {template} {status} documents no JSON schema: {response}"
    );
    schema
}

fn conforms(doc: &Value, method: &str, template: &str, resp: &Resp) {
    let schema = documented(doc, method, template, resp.status.as_u16());
    let errors = check(doc, schema, &resp.body);
    assert!(
        errors.is_empty(),
        "{method} {template} answered {}:\n{}\nnot matching its schema:\n{}",
        resp.status,
        resp.text,
        errors.join("\n")
    );
}

#[tokio::test]
async fn real_answers_match_their_documented_schemas() {
    let s = Server::open();
    let doc = document(&s).await;
    // The schemas say something the checker can hold answers to.
    let run_doc = &doc["components"]["schemas"]["RunDocument"];
    assert!(
        run_doc["required"]
            .as_array()
            .is_some_and(|r| r.len() >= 16),
        "{run_doc}"
    );
    assert_eq!(
        doc["components"]["schemas"]["ExecuteBody"]["additionalProperties"],
        false
    );
    let samples = exercise_all(&s).await;
    for sample in &samples {
        if sample.template.ends_with("/events") {
            let content = &doc["paths"][sample.template]["get"]["responses"]["200"]["content"];
            assert!(content.get("text/event-stream").is_some(), "{content}");
            continue;
        }
        if sample.template == "/metrics" {
            let content = &doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"];
            assert!(content.get("text/plain").is_some(), "{content}");
            continue;
        }
        conforms(&doc, sample.method, sample.template, &sample.resp);
    }
    // A run with steps, output, a verification gate record and approvals: the richest document.
    let id = samples
        .iter()
        .find(|x| x.template == "/api/sop/approve")
        .and_then(|x| x.resp.body["run_id"].as_str())
        .expect("approved run")
        .to_string();
    s.advance(&id);
    s.exit_step(&id, 0);
    conforms(
        &doc,
        "GET",
        "/api/runs/{id}",
        &s.get(&format!("/api/runs/{id}")).await,
    );

    // Error answers, too.
    let errors = [
        (
            "POST",
            "/api/sops/{name}/execute",
            s.post("/api/sops/nope/execute", &json!({})).await,
        ),
        (
            "POST",
            "/api/sops/{name}/execute",
            s.post("/api/sops/hello/execute", &json!({"x": 1})).await,
        ),
        ("GET", "/api/runs/{id}", s.get("/api/runs/nope").await),
        (
            "POST",
            "/api/runs/{id}/approve",
            s.post(&format!("/api/runs/{id}/approve"), &json!({})).await,
        ),
        ("GET", "/api/runs", s.get("/api/runs?status=nope").await),
    ];
    for (method, template, resp) in &errors {
        assert!(resp.status.as_u16() >= 400, "{}", resp.text);
        conforms(&doc, method, template, resp);
    }
}
