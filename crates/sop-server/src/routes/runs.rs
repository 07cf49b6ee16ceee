//! `/api/runs…`: list runs, one run's document, cancel a run.

use std::sync::Arc;

use axum::extract::State;
use serde_json::Value;
use sop_core::run::RunStatus;
use sop_store::RunFilter;

use crate::auth::{Auth, Operator, Viewer};
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::openapi::RunDocument;
use crate::shapes::{ErrorBody, RunRef, RunRowBody, RunsQuery};
use crate::{blocking, ServerState};

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;

/// Runs, newest first.
#[utoipa::path(get, path = "/api/runs", tag = "runs", security(("bearer" = [])),
    params(RunsQuery),
    responses(
        (status = 200, description = "runs, newest first", body = [RunRowBody]),
        (status = 400, description = "unknown status or bad limit", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "role too low or host not allowed", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<Arc<ServerState>>,
    _auth: Auth<Viewer>,
    Query(q): Query<RunsQuery>,
) -> Result<axum::Json<Vec<RunRowBody>>, ApiError> {
    let statuses = q
        .status
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            RunStatus::parse(s).ok_or_else(|| {
                let known: Vec<&str> = RunStatus::ALL.iter().map(|st| st.as_str()).collect();
                ApiError::BadRequest(format!(
                    "unknown status `{s}`: expected one of {}",
                    known.join(", ")
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "`limit` must be between 1 and {MAX_LIMIT}, found {limit}"
        )));
    }
    let filter = RunFilter {
        sop: q.sop.filter(|s| !s.is_empty()),
        statuses,
        limit: Some(limit),
    };
    blocking(&state, move |ops| {
        let rows = ops.store.list_runs(&filter)?;
        Ok(axum::Json(rows.into_iter().map(RunRowBody::from).collect()))
    })
    .await
}

/// One run's document: the same as its audit file and `sop status --json`.
#[utoipa::path(get, path = "/api/runs/{id}", tag = "runs", security(("bearer" = [])),
    params(("id" = String, Path, description = "run id")),
    responses(
        (status = 200, description = "the run", body = RunDocument),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "role too low or host not allowed", body = ErrorBody),
        (status = 404, description = "no such run", body = ErrorBody),
    ))]
pub async fn show(
    State(state): State<Arc<ServerState>>,
    _auth: Auth<Viewer>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    blocking(&state, move |ops| {
        let run = super::run_by_id(&ops, &id)?;
        Ok(axum::Json(ops.view(&run)?))
    })
    .await
}

/// Cancels a run (a running step is stopped by the process driving it).
#[utoipa::path(post, path = "/api/runs/{id}/cancel", tag = "runs", security(("bearer" = [])),
    params(("id" = String, Path, description = "run id")),
    responses(
        (status = 200, description = "cancelled (a running step is being stopped)", body = RunRef),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "role too low or host not allowed", body = ErrorBody),
        (status = 404, description = "no such run", body = ErrorBody),
        (status = 409, description = "`not_waiting`: the run already ended", body = ErrorBody),
    ))]
pub async fn cancel(
    State(state): State<Arc<ServerState>>,
    auth: Auth<Operator>,
    Path(id): Path<String>,
) -> Result<axum::Json<RunRef>, ApiError> {
    let by = auth.caller.name;
    let answer = blocking(&state, move |ops| {
        super::run_by_id(&ops, &id)?;
        let (run, _kill) = ops.cancel(&id, &by)?;
        Ok(RunRef::new(run.id, run.status))
    })
    .await?;
    (state.wake)();
    Ok(axum::Json(answer))
}
