//! The CLI as a client of `sop serve` (`docs/API.md`): finding a reachable daemon, calls
//! with the bearer token, target resolution like `Ops::resolve`, and API errors mapped to
//! the exit codes and messages of the local path.

pub mod sse;

use std::error::Error as _;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use sop_core::config::RunnerConfig;
use sop_core::run::RunStatus;
use sop_core::Priority;
use sop_runtime::ops::{choose_run, Candidates};
use sop_store::{Owner, RunRow};

use crate::{Exit, Fail};

/// How long `GET /healthz` may take before the daemon counts as unreachable.
const PROBE: Duration = Duration::from_secs(1);
/// How long any other call may take.
const CALL: Duration = Duration::from_secs(30);

/// Where the CLI looks for a daemon, and with which token (`SOP_URL`, `SOP_TOKEN`).
#[derive(Debug, Clone, Default)]
pub struct ClientEnv {
    pub url: Option<String>,
    pub token: Option<String>,
}

impl ClientEnv {
    /// `SOP_URL` (else `url` in `sop.toml`) and `SOP_TOKEN`; empty values count as unset.
    pub fn from_process(config: &RunnerConfig) -> ClientEnv {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        ClientEnv {
            url: var("SOP_URL").or_else(|| config.url.clone()),
            token: var("SOP_TOKEN"),
        }
    }
}

/// A connection to a daemon that answered `GET /healthz`.
pub struct Client {
    pub base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// A failed API call: the answer's status and `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct ApiFail {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl From<ApiFail> for Fail {
    /// 400/404/422 and `conflict` (several runs match: name one) are bad input, as in
    /// the local path; everything else means the command failed.
    fn from(e: ApiFail) -> Fail {
        let exit = match (e.status, e.code.as_str()) {
            (400 | 404 | 422, _) | (409, "conflict") => Exit::BadInput,
            _ => Exit::Failed,
        };
        Fail {
            exit,
            message: e.message,
        }
    }
}

impl Client {
    /// The daemon named by `env`, if one is configured and answers within [`PROBE`].
    /// A configured but unreachable daemon gets one warning; the caller then acts on the
    /// store directly.
    pub fn connect(env: &ClientEnv) -> Option<Client> {
        let url = env.url.as_deref()?;
        let base = url.trim().trim_end_matches('/').to_string();
        let client = Client {
            base,
            token: env.token.clone(),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(PROBE)
                .timeout(CALL)
                .build(),
        };
        match client.probe() {
            Ok(()) => Some(client),
            Err(reason) => {
                eprintln!(
                    "warning: daemon at {url} unreachable ({reason}); acting on the store directly"
                );
                None
            }
        }
    }

    /// `GET /healthz`: `ok`, or `degraded` (a daemon is there; it reports its own errors).
    fn probe(&self) -> Result<(), String> {
        let answer = self
            .agent
            .get(&format!("{}/healthz", self.base))
            .timeout(PROBE)
            .call();
        let body = match answer {
            // 503: a degraded daemon is still the daemon; it reports its own errors.
            Ok(r) | Err(ureq::Error::Status(503, r)) => r.into_json::<Value>(),
            Err(ureq::Error::Status(code, _)) => return Err(format!("`/healthz` answered {code}")),
            Err(ureq::Error::Transport(t)) => return Err(transport_reason(&t)),
        };
        match body {
            Ok(v) if v.get("status").is_some_and(Value::is_string) => Ok(()),
            _ => Err("`/healthz` did not answer like `sop serve`".to_string()),
        }
    }

    pub fn request(&self, method: &str, path: &str) -> ureq::Request {
        self.authorize(self.agent.request(method, &format!("{}{path}", self.base)))
    }

    /// Adds `Authorization: Bearer <SOP_TOKEN>` when a token is set.
    pub fn authorize(&self, req: ureq::Request) -> ureq::Request {
        match &self.token {
            Some(t) => req.set("Authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    /// Sends a request (with a JSON body for POST) and reads the JSON answer.
    pub fn send(&self, req: ureq::Request, body: Option<&Value>) -> Result<Value, ApiFail> {
        let answer = match body {
            Some(b) => req.send_json(b.clone()),
            None => req.call(),
        };
        match answer {
            Ok(r) => r.into_json().map_err(|e| ApiFail {
                status: 0,
                code: "bad_answer".to_string(),
                message: format!("the daemon at {} sent an unreadable answer: {e}", self.base),
            }),
            Err(ureq::Error::Status(status, r)) => Err(api_fail(status, r)),
            Err(ureq::Error::Transport(t)) => Err(ApiFail {
                status: 0,
                code: "transport".to_string(),
                message: format!(
                    "the daemon at {} stopped answering: {}",
                    self.base,
                    transport_reason(&t)
                ),
            }),
        }
    }

    pub fn get(&self, path: &str) -> Result<Value, ApiFail> {
        self.send(self.request("GET", path), None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ApiFail> {
        self.send(self.request("POST", path), Some(body))
    }

    /// `GET /api/runs/{id}`: the run's document (as `audit::document` builds it).
    pub fn document(&self, id: &str) -> Result<Value, Fail> {
        Ok(self.get(&format!("/api/runs/{}", segment(id)))?)
    }

    /// `GET /api/runs?sop=&status=&limit=`, newest first.
    pub fn list_runs(
        &self,
        sop: Option<&str>,
        statuses: &[RunStatus],
        limit: u32,
    ) -> Result<Vec<RunRow>, Fail> {
        let mut req = self
            .request("GET", "/api/runs")
            .query("limit", &limit.to_string());
        if let Some(s) = sop {
            req = req.query("sop", s);
        }
        if !statuses.is_empty() {
            let list: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
            req = req.query("status", &list.join(","));
        }
        let v = self.send(req, None)?;
        serde_json::from_value::<Vec<RowJson>>(v)
            .map(|rows| rows.into_iter().map(RunRow::from).collect())
            .map_err(|e| {
                Fail::failed(format!(
                    "the daemon at {} sent runs this `sop` cannot read: {e}",
                    self.base
                ))
            })
    }

    /// Active runs in the order of `Store::active_runs`: priority, then age.
    pub fn active_runs(&self) -> Result<Vec<RunRow>, Fail> {
        let mut rows = self.list_runs(None, &ACTIVE, 1000)?;
        rows.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.created_at.cmp(&b.created_at))
                .then(a.id.cmp(&b.id))
        });
        Ok(rows)
    }

    /// A `<sop|run>` target as `Ops::resolve` finds it, with the same errors: a run id, a
    /// unique prefix of one, or the one run of a SOP in `statuses` (the newest when
    /// `statuses` is empty).
    pub fn resolve(
        &self,
        target: &str,
        statuses: &[RunStatus],
        what: &str,
    ) -> Result<String, Fail> {
        let ids = self.find_run_ids(target)?;
        if ids.iter().any(|i| i == target) {
            return Ok(target.to_string());
        }
        let runs = self.list_runs(Some(target), statuses, 50)?;
        let sop_known = !self.list_runs(Some(target), &[], 1)?.is_empty()
            || self.get(&format!("/api/sops/{}", segment(target))).is_ok();
        Ok(choose_run(&Candidates {
            target,
            what,
            any_status: statuses.is_empty(),
            ids,
            runs,
            sop_known,
        })?)
    }

    /// Run ids equal to `prefix` or starting with it, oldest first (at most 20).
    fn find_run_ids(&self, prefix: &str) -> Result<Vec<String>, Fail> {
        match self.get(&format!("/api/runs/{}", segment(prefix))) {
            Ok(_) => return Ok(vec![prefix.to_string()]),
            Err(e) if e.status == 404 => {}
            Err(e) => return Err(e.into()),
        }
        let could_be_prefix = !prefix.is_empty()
            && prefix.len() < 12
            && prefix.chars().all(|c| c.is_ascii_hexdigit());
        if !could_be_prefix {
            return Ok(vec![]);
        }
        let mut rows: Vec<RunRow> = self
            .list_runs(None, &[], 1000)?
            .into_iter()
            .filter(|r| r.id.starts_with(prefix))
            .collect();
        rows.sort_by_key(|r| r.created_at);
        Ok(rows.into_iter().take(20).map(|r| r.id).collect())
    }
}

/// The statuses `Store::active_runs` lists.
const ACTIVE: [RunStatus; 5] = [
    RunStatus::Queued,
    RunStatus::Running,
    RunStatus::WaitingApproval,
    RunStatus::WaitingConfirmation,
    RunStatus::Interrupted,
];

fn api_fail(status: u16, answer: ureq::Response) -> ApiFail {
    let body: Value = answer.into_json().unwrap_or(Value::Null);
    let field = |k: &str| body["error"][k].as_str().map(str::to_string);
    ApiFail {
        status,
        code: field("code").unwrap_or_default(),
        message: field("message").unwrap_or_else(|| format!("the daemon answered {status}")),
    }
}

fn transport_reason(t: &ureq::Transport) -> String {
    match t.source() {
        Some(e) => e.to_string(),
        None => t.to_string(),
    }
}

/// A path segment, percent-encoded except for unreserved characters.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A `RunRow` as `GET /api/runs` sends it.
#[derive(Deserialize)]
struct RowJson {
    id: String,
    sop: String,
    status: RunStatus,
    priority: Priority,
    created_at: i64,
    started_at: Option<i64>,
    completed_at: Option<i64>,
    owner: Option<OwnerJson>,
    audit_path: Option<String>,
}

#[derive(Deserialize)]
struct OwnerJson {
    pid: u32,
    start_time: u64,
}

impl From<RowJson> for RunRow {
    fn from(r: RowJson) -> RunRow {
        RunRow {
            id: r.id,
            sop: r.sop,
            status: r.status,
            priority: r.priority,
            created_at: r.created_at,
            started_at: r.started_at,
            completed_at: r.completed_at,
            owner: r.owner.map(|o| Owner {
                pid: o.pid,
                start_time: o.start_time,
            }),
            audit_path: r.audit_path,
        }
    }
}
