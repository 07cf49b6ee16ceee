//! A router over a real `SqliteStore` in a temporary home, and helpers to call it and to
//! move runs along the way the daemon would (there is no scheduler in these tests).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use sop_core::config::{Role, RunnerConfig, TokenEntry};
use sop_core::run::{self, Action, ExitReport, Target};
use sop_runtime::ops::Ops;
use sop_runtime::{audit, Home};
use sop_server::ServerState;
use sop_store::{SqliteStore, Store, Synchronous};
use tower::ServiceExt;

pub const ROLES: [(&str, Role); 4] = [
    ("vera", Role::Viewer),
    ("otto", Role::Operator),
    ("ann", Role::Approver),
    ("adam", Role::Admin),
];

/// The token of a test identity.
pub fn token(name: &str) -> String {
    format!("test-token-of-{name}")
}

pub struct Server {
    /// Kept for its lifetime: the home is deleted when the server is dropped.
    _dir: tempfile::TempDir,
    pub store: Arc<SqliteStore>,
    pub home: Home,
    pub config: RunnerConfig,
    pub router: Router,
    pub wakes: Arc<AtomicUsize>,
}

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: StatusCode,
    pub body: Value,
    pub text: String,
}

impl Resp {
    /// The error code of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected answer: {}",
            self.text
        );
        self
    }

    #[track_caller]
    pub fn error(&self, status: u16, code: &str) -> &Self {
        self.expect(status);
        assert_eq!(self.code(), code, "{}", self.text);
        assert!(
            !self.message().is_empty(),
            "an error needs a message: {}",
            self.text
        );
        self
    }
}

impl Server {
    /// No tokens: everyone is the local user `local` with role admin.
    pub fn open() -> Server {
        Server::with_config(RunnerConfig::default())
    }

    /// One token per entry of [`ROLES`], plus `extra` approvers.
    pub fn with_tokens(extra_approvers: &[&str]) -> Server {
        let mut config = RunnerConfig::default();
        let approvers = extra_approvers.iter().map(|n| (*n, Role::Approver));
        for (name, role) in ROLES.iter().copied().chain(approvers) {
            config.tokens.push(TokenEntry {
                name: name.to_string(),
                role,
                sha256: sop_server::token_sha256(&token(name)),
            });
        }
        Server::with_config(config)
    }

    pub fn with_config(config: RunnerConfig) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = Home::new(dir.path());
        std::fs::create_dir_all(home.state_dir()).expect("state dir");
        let store =
            Arc::new(SqliteStore::open(&home.db_path(), Synchronous::Normal).expect("store"));
        let wakes = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&wakes);
        let state = ServerState::new(
            Arc::clone(&store) as Arc<dyn Store>,
            home.clone(),
            config.clone(),
            "local".to_string(),
            Arc::new(move || {
                counter.fetch_add(1, Ordering::SeqCst);
            }),
        );
        let router = sop_server::router(Arc::new(state));
        Server {
            _dir: dir,
            store,
            home,
            config,
            router,
            wakes,
        }
    }

    pub fn wakes(&self) -> usize {
        self.wakes.load(Ordering::SeqCst)
    }

    /// Writes `sops/<name>/SOP.toml` (with `extra` manifest lines) and `SOP.md`.
    pub fn sop(&self, name: &str, extra: &str, md: &str) -> &Self {
        let dir = self.home.sop_dir(name);
        std::fs::create_dir_all(&dir).expect("sop dir");
        let extra = if extra.contains("execution_mode") {
            extra.to_string()
        } else {
            format!("execution_mode = \"automatic\"\n{extra}")
        };
        let toml = format!("[sop]\nname = \"{name}\"\ndescription = \"test {name}\"\n{extra}\n");
        std::fs::write(dir.join("SOP.toml"), toml).expect("SOP.toml");
        std::fs::write(dir.join("SOP.md"), md).expect("SOP.md");
        self
    }

    pub fn ops(&self) -> Ops<'_> {
        Ops {
            store: &*self.store,
            home: &self.home,
            config: &self.config,
            served: true,
            settle: None,
        }
    }

    /// Sends a request with `Host: localhost`.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        };
        self.send(req.expect("request")).await
    }

    pub async fn send(&self, req: Request<Body>) -> Resp {
        send(self.router.clone(), req).await
    }

    /// GET as the admin token (or nobody when no tokens are configured).
    pub async fn get(&self, path: &str) -> Resp {
        let t = self.admin_token();
        self.call("GET", path, t.as_deref(), None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        let t = self.admin_token();
        self.call("POST", path, t.as_deref(), Some(body)).await
    }

    fn admin_token(&self) -> Option<String> {
        (!self.config.tokens.is_empty()).then(|| token("adam"))
    }

    /// Executes `sop` through the API; returns the run id.
    pub async fn execute(&self, sop: &str) -> String {
        let r = self
            .post(&format!("/api/sops/{sop}/execute"), &serde_json::json!({}))
            .await;
        r.expect(202);
        r.body["run_id"].as_str().expect("run id").to_string()
    }

    /// Takes a queued run out of the queue and advances it, as its driver would (without
    /// the scheduling policy: runs released earlier may still be queued in these tests).
    pub fn advance(&self, id: &str) -> Action {
        let now = sop_runtime::clock::now();
        let mut action = None;
        self.store
            .update_run(id, now, &mut |r, ev| {
                if r.status == sop_core::run::RunStatus::Queued {
                    run::claimed(r, now, ev);
                }
                action = Some(run::advance(r, now, ev));
                Ok(())
            })
            .expect("store")
            .expect("advance");
        audit::write(&*self.store, &self.home, id).expect("audit");
        action.expect("advanced")
    }

    /// Makes a queued run of a supervised SOP wait at its start approval.
    pub fn wait_at_gate(&self, id: &str) {
        let action = self.advance(id);
        assert!(
            matches!(action, Action::Wait { .. }),
            "expected a wait, got {action:?}"
        );
    }

    /// Records the exit of the step the run is at, as its driver would.
    pub fn exit_step(&self, id: &str, code: i32) {
        let now = sop_runtime::clock::now();
        self.store
            .update_run(id, now, &mut |r, ev| {
                let target: Target = run::current_target(r).expect("a current step");
                let report = ExitReport {
                    exit_code: Some(code),
                    signal: None,
                    timed_out: false,
                    cancelled: false,
                    duration_ms: 3,
                    output: "done".to_string(),
                    outputs: BTreeMap::new(),
                };
                run::exited(r, &target, report, now, ev);
                Ok(())
            })
            .expect("store")
            .expect("exited");
        audit::write(&*self.store, &self.home, id).expect("audit");
    }

    /// The audit file of a run, read from disk.
    pub fn audit_file(&self, id: &str) -> Value {
        let row = self.store.run_row(id).expect("store").expect("run");
        let path = self.home.root().join(row.audit_path.expect("audit path"));
        let text = std::fs::read_to_string(&path).expect("audit file");
        serde_json::from_str(&text).expect("audit json")
    }
}

pub async fn send(router: Router, req: Request<Body>) -> Resp {
    let resp = router.oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp { status, body, text }
}

pub const ONE_STEP: &str = "## Steps\n\n1. **Say hello**\n   ```bash\n   echo hello\n   ```\n";

pub const TWO_STEPS: &str = "## Steps\n\n1. **Prepare**\n   ```bash\n   echo prepared\n   ```\n\n2. **Ship**\n   ```bash\n   echo shipped\n   ```\n";
