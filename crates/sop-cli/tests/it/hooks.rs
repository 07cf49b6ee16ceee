//! Webhook triggers against a real `sop serve`: a signed body runs the SOP with its fields
//! as variables; a missing or wrong signature runs nothing.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::daemon::Daemon;
use crate::support::Home;

const ECHO: &str =
    "## Steps\n\n1. **Echo**\n   ```bash\n   echo \"ref=$ref after=$after\"\n   ```\n";

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs `body` as it is (the signature covers these exact bytes).
fn post(d: &Daemon, path: &str, body: &str, signature: Option<&str>) -> (u16, Value) {
    let mut req = ureq::post(&format!("{}{path}", d.url)).set("content-type", "application/json");
    if let Some(sig) = signature {
        req = req.set("X-Signature-256", sig);
    }
    match req.send_string(body) {
        Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("POST {path}: {e}"),
    }
}

#[test]
fn a_signed_webhook_runs_its_sop_with_the_body_as_vars_and_a_bad_signature_nothing() {
    let home = Home::new();
    home.simple(
        "deploy",
        "max_concurrent = 5\n[[triggers]]\ntype = \"webhook\"\npath = \"git/push\"\nsecret_env = \"PUSH_SECRET\"\n",
        ECHO,
    );
    home.simple(
        "open",
        "[[triggers]]\ntype = \"webhook\"\npath = \"ping\"\n",
        ECHO,
    );
    let d = Daemon::start_with_env(&home, &[("PUSH_SECRET", "s3cr3t-hook")]);
    let body = r#"{"ref": "refs/heads/main", "after": "abc123", "repository": {"name": "app"}}"#;

    let (code, reply) = post(
        &d,
        "/api/hooks/git/push",
        body,
        Some(&sign("s3cr3t-hook", body.as_bytes())),
    );
    assert_eq!(code, 200, "{reply}");
    assert_eq!(reply["matched"][0]["outcome"], "queued", "{reply}");
    let id = reply["matched"][0]["run_id"].as_str().unwrap().to_string();
    let run = d.wait_run(&id, |v| v["status"] == "success");
    assert_eq!(
        run["trigger"],
        json!({"type": "webhook", "by": "webhook:git/push"})
    );
    assert_eq!(run["vars"]["repository"], r#"{"name":"app"}"#);
    assert_eq!(
        run["steps"][0]["output"], "ref=refs/heads/main after=abc123\n",
        "{run}"
    );

    // Signed with another secret, over other bytes, or not at all: 401, nothing runs.
    let before = d.get("/api/runs").as_array().unwrap().len();
    for sig in [
        Some(sign("wrong", body.as_bytes())),
        Some(sign("s3cr3t-hook", b"{}")),
        Some("sha256=zz".to_string()),
        None,
    ] {
        let (code, reply) = post(&d, "/api/hooks/git/push", body, sig.as_deref());
        assert_eq!(code, 401, "{sig:?}: {reply}");
        assert_eq!(reply["error"]["code"], "unauthorized");
    }
    assert_eq!(d.get("/api/runs").as_array().unwrap().len(), before);

    // Without a secret and without tokens configured, a local caller fires it.
    let (code, reply) = post(&d, "/api/hooks/ping", "", None);
    assert_eq!(code, 200, "{reply}");
    assert_eq!(reply["matched"][0]["sop"], "open");
    let (code, _) = post(&d, "/api/hooks/nothing-here", "{}", None);
    assert_eq!(code, 404);
    let (code, reply) = post(&d, "/api/hooks/ping", "[1, 2]", None);
    assert_eq!(code, 400, "{reply}");
}
