//! Webhook and schedule triggers against a real `sop serve`: a signed body runs the SOP
//! with its fields as variables, a missing or wrong signature runs nothing; a schedule
//! runs its SOP at its times.

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

#[test]
fn with_tokens_a_signature_or_an_operator_token_fires_and_secrets_stay_hidden() {
    use sha2::Digest as _;
    let home = Home::new();
    let token = |name: &str| format!("sop_test_token_of_{name}");
    let entry = |name: &str, role: &str| {
        format!(
            "[[tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n",
            hex::encode(sha2::Sha256::digest(token(name).as_bytes()))
        )
    };
    std::fs::write(
        home.file("sop.toml"),
        format!("{}{}", entry("otto", "operator"), entry("vera", "viewer")),
    )
    .unwrap();
    home.simple(
        "deploy",
        "max_concurrent = 5\n[vars]\napi_token = { secret = true }\n\
         [[triggers]]\ntype = \"webhook\"\npath = \"push\"\nsecret_env = \"PUSH_SECRET\"\n",
        ECHO,
    );
    let d = Daemon::start_with_env(&home, &[("PUSH_SECRET", "k3y")]);
    let body = r#"{"ref": "main", "api_token": "abc123xyz", "meta": {"api_token": "abc123xyz"}}"#;
    let send = |headers: &[(&str, String)]| {
        let mut req = ureq::post(&format!("{}/api/hooks/push", d.url));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        match req.send_string(body) {
            Ok(r) => (r.status(), r.into_json::<Value>().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
            Err(e) => panic!("POST: {e}"),
        }
    };
    // Signed (GitHub's header name), no token: fired, by the hook.
    let (code, reply) = send(&[("X-Hub-Signature-256", sign("k3y", body.as_bytes()))]);
    assert_eq!(code, 200, "{reply}");
    let m = &reply["matched"][0];
    assert_eq!(m["outcome"], "queued", "{reply}");
    assert_eq!(
        m["vars"],
        json!({"api_token": "***", "ref": "main"}),
        "{reply}"
    );
    assert_eq!(
        reply["skipped_fields"],
        json!(["meta"]),
        "a copy of the secret is left out"
    );
    let run = d.wait_run_as(&token("otto"), m["run_id"].as_str().unwrap(), |v| {
        v["status"] == "success"
    });
    assert_eq!(run["trigger"]["by"], "webhook:push");
    assert_eq!(run["vars"]["api_token"], "***");
    assert!(run["vars"].get("meta").is_none(), "{run}");

    // An operator token stands in for the signature; a viewer's does not.
    let bearer = |name: &str| ("Authorization", format!("Bearer {}", token(name)));
    let (code, reply) = send(&[bearer("otto")]);
    assert_eq!(code, 200, "{reply}");
    let (code, reply) = send(&[bearer("vera")]);
    assert_eq!(
        (code, reply["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{reply}"
    );
    // Neither: 401.
    let (code, _) = send(&[]);
    assert_eq!(code, 401);
}

#[test]
fn a_secret_that_is_not_set_accepts_no_signature() {
    let home = Home::new();
    home.simple(
        "deploy",
        "[[triggers]]\ntype = \"webhook\"\npath = \"push\"\nsecret_env = \"UNSET_HOOK_SECRET_FOR_TEST\"\n",
        ECHO,
    );
    let d = Daemon::start(&home);
    // Signed with the empty key an unset variable would be: refused all the same.
    let (code, reply) = post(&d, "/api/hooks/push", "{}", Some(&sign("", b"{}")));
    assert_eq!(code, 401, "{reply}");
}

#[test]
fn a_schedule_runs_its_sop_at_its_times() {
    let home = Home::new();
    home.simple(
        "tick",
        "max_concurrent = 5\n[[triggers]]\ntype = \"schedule\"\ncron = \"* * * * * *\"\n",
        "## Steps\n\n1. **Tick**\n   ```bash\n   echo \"at $scheduled_at\"\n   ```\n",
    );
    let d = Daemon::start(&home);
    let runs = crate::support::wait_for(std::time::Duration::from_secs(20), || {
        let runs = d.get("/api/runs?sop=tick");
        (runs.as_array().map_or(0, Vec::len) >= 2).then_some(runs)
    })
    .expect("two seconds, two runs");
    let first = d.wait_run(runs[0]["id"].as_str().unwrap(), |v| {
        v["status"] == "success"
    });
    let id = runs[1]["id"].as_str().unwrap();
    let run = d.wait_run(id, |v| v["status"] == "success");
    assert_ne!(
        first["vars"]["scheduled_at"], run["vars"]["scheduled_at"],
        "each its own second"
    );
    assert_eq!(
        run["trigger"],
        json!({"type": "schedule", "by": "schedule"})
    );
    let at = run["vars"]["scheduled_at"].as_str().unwrap();
    assert_eq!(at.get(19..), Some(".000Z"), "whole seconds: {at}");
    assert_eq!(run["steps"][0]["output"], format!("at {at}\n"));
}

#[test]
fn a_file_dropped_in_a_watched_directory_runs_its_sop_once() {
    let home = Home::new();
    std::fs::create_dir_all(home.file("inbox")).unwrap();
    home.simple(
        "ingest",
        "max_concurrent = 5\n[[triggers]]\ntype = \"file_watch\"\npath = \"inbox/*.csv\"\nevent = \"create\"\ndebounce_ms = 400\n",
        "## Steps\n\n1. **Read**\n   ```bash\n   echo \"$file_event $file_name $(cat \"$file_path\")\"\n   ```\n",
    );
    let d = Daemon::start(&home);
    // The watcher looks at the SOPs once a second: a file created before it watches is
    // not seen, so create new ones until one is.
    let mut n = 0;
    let first = crate::support::wait_for(std::time::Duration::from_secs(20), || {
        n += 1;
        std::fs::write(home.file(&format!("inbox/a{n}.csv")), "1,2,3").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let runs = d.get("/api/runs?sop=ingest");
        runs.as_array()?.first()?["id"].as_str().map(str::to_string)
    })
    .expect("a run");
    let run = d.wait_run(&first, |v| v["status"] == "success");
    assert_eq!(
        run["trigger"],
        json!({"type": "file_watch", "by": "file_watch"})
    );
    let name = run["vars"]["file_name"].as_str().unwrap().to_string();
    assert!(
        name.starts_with('a') && std::path::Path::new(&name).extension() == Some("csv".as_ref()),
        "{name}"
    );
    let path = home.file(&format!("inbox/{name}"));
    assert_eq!(run["vars"]["file_path"], path.to_str().unwrap());
    assert_eq!(run["steps"][0]["output"], format!("create {name} 1,2,3\n"));
    // Written in several steps, quiet after: one run, once it is whole.
    let mut f = std::fs::File::create(home.file("inbox/b.csv")).unwrap();
    for chunk in ["x,", "y,", "z"] {
        std::io::Write::write_all(&mut f, chunk.as_bytes()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(f);
    let b = crate::support::wait_for(std::time::Duration::from_secs(20), || {
        let runs = d.get("/api/runs?sop=ingest");
        runs.as_array()?
            .iter()
            .filter_map(|r| r["id"].as_str())
            .find(|id| d.run(id)["vars"]["file_name"] == "b.csv")
            .map(str::to_string)
    })
    .expect("a run for b.csv");
    let run = d.wait_run(&b, |v| v["status"] == "success");
    assert_eq!(run["steps"][0]["output"], "create b.csv x,y,z\n");
    // Not for other names.
    std::fs::write(home.file("inbox/c.txt"), "no").unwrap();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let names: Vec<Value> = d
        .get("/api/runs?sop=ingest")
        .as_array()
        .unwrap()
        .iter()
        .map(|r| d.run(r["id"].as_str().unwrap())["vars"]["file_name"].clone())
        .collect();
    assert!(!names.contains(&json!("c.txt")), "{names:?}");
    let b_runs = names.iter().filter(|n| **n == json!("b.csv")).count();
    assert_eq!(b_runs, 1, "one run for a file written in steps: {names:?}");
}
