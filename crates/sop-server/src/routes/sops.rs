//! `/api/sops…`: list and show SOPs, execute one, its latest run, cancel its active run.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use sop_core::config::Role;
use sop_core::run::{RunStatus, TriggerInfo};
use sop_core::Priority;
use sop_runtime::loader;
use sop_runtime::ops::{load_sop, ExecuteRequest, Executed, CANCELLABLE};
use sop_store::RunFilter;

use crate::auth::{Auth, Operator, Viewer};
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::openapi::{RunDocument, SopDocument};
use crate::shapes::{ErrorBody, ExecuteBody, RunRef, SopSummary};
use crate::{blocking, ServerState};

type Answer<T> = Result<axum::Json<T>, ApiError>;

/// The SOPs of the home (those without errors), with the status of their newest run.
#[utoipa::path(get, path = "/api/sops", tag = "sops", security(("bearer" = [])),
    responses(
        (status = 200, description = "the SOPs", body = [SopSummary]),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "role too low or host not allowed", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<Arc<ServerState>>,
    _auth: Auth<Viewer>,
) -> Answer<Vec<SopSummary>> {
    blocking(&state, |ops| {
        let loaded = loader::load_all(ops.home).map_err(|e| {
            ApiError::internal(format!(
                "cannot read `{}`: {e}",
                ops.home.sops_dir().display()
            ))
        })?;
        let mut out = Vec::new();
        for sop in loaded.into_iter().filter_map(|l| l.sop) {
            let newest = RunFilter {
                sop: Some(sop.name.clone()),
                statuses: vec![],
                limit: Some(1),
            };
            let last_status = ops
                .store
                .list_runs(&newest)?
                .first()
                .map(|r| r.status.as_str());
            out.push(SopSummary {
                description: sop.description.clone(),
                version: sop.version.clone(),
                priority: sop.priority.as_str(),
                execution_mode: sop.execution_mode.as_str(),
                steps: sop.steps.len(),
                triggers: sop.triggers.iter().map(|t| t.kind().to_string()).collect(),
                last_status,
                name: sop.name,
            });
        }
        Ok(axum::Json(out))
    })
    .await
}

/// The checked SOP (like `sop show --json`); defaults of secret variables are `***`.
#[utoipa::path(get, path = "/api/sops/{name}", tag = "sops", security(("bearer" = [])),
    params(("name" = String, Path, description = "SOP name")),
    responses(
        (status = 200, description = "the SOP", body = SopDocument),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "role too low or host not allowed", body = ErrorBody),
        (status = 404, description = "no such SOP", body = ErrorBody),
        (status = 422, description = "the SOP has errors", body = ErrorBody),
    ))]
pub async fn show(
    State(state): State<Arc<ServerState>>,
    _auth: Auth<Viewer>,
    Path(name): Path<String>,
) -> Answer<Value> {
    blocking(&state, move |ops| {
        let (sop, _warnings) = load_sop(ops.home, &name)?;
        serde_json::to_value(sop.redacted())
            .map(axum::Json)
            .map_err(ApiError::internal)
    })
    .await
}

/// Queues a run. `skip_approval` and `force` need the `admin` role.
#[utoipa::path(post, path = "/api/sops/{name}/execute", tag = "sops", security(("bearer" = [])),
    params(("name" = String, Path, description = "SOP name")),
    request_body(content = ExecuteBody, description = "all fields optional; an empty body is `{}`"),
    responses(
        (status = 202, description = "queued (or coalesced into an existing run)", body = RunRef),
        (status = 400, description = "malformed body or unknown priority", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "role too low, or `skip_approval`/`force` without admin", body = ErrorBody),
        (status = 404, description = "no such SOP", body = ErrorBody),
        (status = 409, description = "`cooldown` or `dropped`", body = ErrorBody),
        (status = 422, description = "`invalid_vars` or `invalid_sop`", body = ErrorBody),
    ))]
pub async fn execute(
    State(state): State<Arc<ServerState>>,
    auth: Auth<Operator>,
    Path(name): Path<String>,
    Json(body): Json<ExecuteBody>,
) -> Result<(StatusCode, axum::Json<RunRef>), ApiError> {
    let caller = auth.caller;
    if body.skip_approval {
        caller.require(Role::Admin, "`skip_approval`")?;
    }
    if body.force {
        caller.require(Role::Admin, "`force`")?;
    }
    let priority = match body.priority.as_deref() {
        None => None,
        Some(p) => Some(Priority::parse(p).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown priority `{p}`: expected `low`, `medium`, `high` or `critical`"
            ))
        })?),
    };
    let vars = scalar_vars(&name, body.vars)?;
    let request = ExecuteRequest {
        sop: name,
        vars,
        trigger_vars: BTreeMap::new(),
        skip_approval: body.skip_approval,
        priority,
        force: body.force,
        trigger: TriggerInfo {
            kind: "manual".to_string(),
            by: caller.name,
        },
        owner: None,
        fire: None,
    };
    let (created, answer) = blocking(&state, move |ops| match ops.execute(request)? {
        Executed::Created(run) => Ok((true, RunRef::new(run.id.clone(), run.status))),
        Executed::Coalesced(id) => {
            let status = ops
                .store
                .run_row(&id)?
                .map_or(RunStatus::Queued, |r| r.status);
            Ok((false, RunRef::new(id, status)))
        }
        // Only a schedule's request carries a scheduled time.
        Executed::AlreadyFired => Err(ApiError::internal(
            "an execute request was taken for a schedule's",
        )),
    })
    .await?;
    if created {
        (state.wake)();
    }
    Ok((StatusCode::ACCEPTED, axum::Json(answer)))
}

/// Variable values as strings: JSON strings as they are, numbers and booleans as their
/// text; anything else is refused, naming the variable.
fn scalar_vars(
    sop: &str,
    vars: BTreeMap<String, Value>,
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    let mut bad = Vec::new();
    for (k, v) in vars {
        match v {
            Value::String(s) => {
                out.insert(k, s);
            }
            Value::Number(n) => {
                out.insert(k, n.to_string());
            }
            Value::Bool(b) => {
                out.insert(k, b.to_string());
            }
            Value::Null => bad.push(format!(
                "`{k}`: expected a string, number or boolean, found null"
            )),
            Value::Array(_) => bad.push(format!(
                "`{k}`: expected a string, number or boolean, found an array"
            )),
            Value::Object(_) => bad.push(format!(
                "`{k}`: expected a string, number or boolean, found an object"
            )),
        }
    }
    if bad.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::InvalidVars(format!(
            "invalid variables for `{sop}`: {}",
            bad.join("; ")
        )))
    }
}

/// The newest run of the SOP, as its audit document.
#[utoipa::path(get, path = "/api/sops/{name}/status", tag = "sops", security(("bearer" = [])),
    params(("name" = String, Path, description = "SOP name")),
    responses(
        (status = 200, description = "the newest run", body = RunDocument),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "role too low or host not allowed", body = ErrorBody),
        (status = 404, description = "no such SOP, or it has no runs", body = ErrorBody),
        (status = 422, description = "the SOP has errors (and no runs)", body = ErrorBody),
    ))]
pub async fn status(
    State(state): State<Arc<ServerState>>,
    _auth: Auth<Viewer>,
    Path(name): Path<String>,
) -> Answer<Value> {
    blocking(&state, move |ops| {
        let newest = RunFilter {
            sop: Some(name.clone()),
            statuses: vec![],
            limit: Some(1),
        };
        let Some(row) = ops.store.list_runs(&newest)?.into_iter().next() else {
            load_sop(ops.home, &name)?;
            return Err(ApiError::NotFound(format!("`{name}` has no runs yet")));
        };
        let run = super::run_by_id(&ops, &row.id)?;
        Ok(axum::Json(ops.view(&run)?))
    })
    .await
}

/// Cancels the active run of the SOP (409 `conflict` listing them when several are).
#[utoipa::path(post, path = "/api/sops/{name}/cancel", tag = "sops", security(("bearer" = [])),
    params(("name" = String, Path, description = "SOP name")),
    responses(
        (status = 200, description = "cancelled (a running step is being stopped)", body = RunRef),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "role too low or host not allowed", body = ErrorBody),
        (status = 404, description = "no such SOP", body = ErrorBody),
        (status = 409, description = "`not_waiting`: no active run; `conflict`: several", body = ErrorBody),
    ))]
pub async fn cancel(
    State(state): State<Arc<ServerState>>,
    auth: Auth<Operator>,
    Path(name): Path<String>,
) -> Answer<RunRef> {
    let by = auth.caller.name;
    let answer = blocking(&state, move |ops| {
        let id = super::run_of_sop(&ops, &name, CANCELLABLE, "active")?;
        let (run, _kill) = ops.cancel(&id, &by)?;
        Ok(RunRef::new(run.id, run.status))
    })
    .await?;
    (state.wake)();
    Ok(axum::Json(answer))
}
