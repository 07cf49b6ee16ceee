//! Decisions at gates: the runs that wait, approve (by SOP or run), reject, confirm.
//! The identity of a decision is the caller's token, never a field of the body.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use sop_core::run::{Decision, Verb, WaitKind};
use sop_runtime::clock::rfc3339;
use sop_runtime::ops::decidable;

use crate::auth::{Approver, Auth, Viewer};
use crate::error::ApiError;
use crate::extract::{Channel, Json, Path};
use crate::shapes::{
    Approval, ApproveBody, ApproveBySopBody, ConfirmBody, ErrorBody, RejectBody, RunRef,
};
use crate::{blocking, ServerState};

/// Runs waiting at a gate (approval or confirmation), oldest wait first.
#[utoipa::path(get, path = "/api/approvals", tag = "approvals", security(("bearer" = [])),
    responses(
        (status = 200, description = "waiting runs", body = [Approval]),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "role too low or host not allowed", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<Arc<ServerState>>,
    _auth: Auth<Viewer>,
) -> Result<axum::Json<Vec<Approval>>, ApiError> {
    blocking(&state, |ops| {
        let mut out = Vec::new();
        for row in ops
            .store
            .active_runs()?
            .into_iter()
            .filter(|r| r.status.is_waiting())
        {
            // A run can move on between the listing and the load: then it no longer waits.
            let Some(run) = ops.store.load_run(&row.id)? else {
                continue;
            };
            let Some(wait) = run.wait else { continue };
            out.push((
                wait.since,
                Approval {
                    run_id: run.id,
                    sop: run.sop.name.clone(),
                    gate: wait.gate,
                    kind: match wait.kind {
                        WaitKind::Approval => "approval",
                        WaitKind::Confirmation => "confirmation",
                    },
                    since: rfc3339(wait.since),
                    deadline: wait.deadline.map(rfc3339),
                    approved_by: wait.approved_by,
                    required: wait.required,
                    approvers: run.sop.approvers.clone(),
                },
            ));
        }
        out.sort_by_key(|(since, _)| *since);
        Ok(axum::Json(out.into_iter().map(|(_, a)| a).collect()))
    })
    .await
}

/// Approves the run of `sop` that waits for a decision (`run_id` when several wait).
#[utoipa::path(post, path = "/api/sop/approve", tag = "approvals", security(("bearer" = [])),
    request_body = ApproveBySopBody,
    responses(
        (status = 200, description = "approved (the run goes on once the quorum is reached)", body = RunRef),
        (status = 400, description = "malformed body, or `run_id` is a run of another SOP", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "role too low, not an approver of the SOP, or self-approval", body = ErrorBody),
        (status = 404, description = "no such SOP or run", body = ErrorBody),
        (status = 409, description = "`not_waiting`, or `conflict` when several runs wait", body = ErrorBody),
        (status = 422, description = "`invalid_vars` in `set`", body = ErrorBody),
    ))]
pub async fn approve_by_sop(
    State(state): State<Arc<ServerState>>,
    auth: Auth<Approver>,
    Channel(channel): Channel,
    Json(body): Json<ApproveBySopBody>,
) -> Result<axum::Json<RunRef>, ApiError> {
    let decision = decision(
        Verb::Approve,
        (auth.caller.name, channel),
        body.comment,
        body.set,
        body.gate,
    );
    let answer = blocking(&state, move |ops| {
        let id = if let Some(id) = body.run_id {
            let run = super::run_by_id(&ops, &id)?;
            if run.sop.name != body.sop {
                return Err(ApiError::BadRequest(format!(
                    "run `{id}` is a run of `{}`, not of `{}`",
                    run.sop.name, body.sop
                )));
            }
            id
        } else {
            let (statuses, what) = decidable(Verb::Approve);
            super::run_of_sop(&ops, &body.sop, statuses, what)?
        };
        let run = ops.decide(&id, &decision)?;
        Ok(RunRef::new(run.id, run.status))
    })
    .await?;
    (state.wake)();
    Ok(axum::Json(answer))
}

/// Approves the gate the run waits at.
#[utoipa::path(post, path = "/api/runs/{id}/approve", tag = "approvals", security(("bearer" = [])),
    params(("id" = String, Path, description = "run id")),
    request_body(content = ApproveBody, description = "all fields optional; an empty body is `{}`"),
    responses(
        (status = 200, description = "approved (the run goes on once the quorum is reached)", body = RunRef),
        (status = 400, description = "malformed body", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "role too low, not an approver of the SOP, or self-approval", body = ErrorBody),
        (status = 404, description = "no such run", body = ErrorBody),
        (status = 409, description = "`not_waiting`: not waiting, or already approved by this identity", body = ErrorBody),
        (status = 422, description = "`invalid_vars` in `set`", body = ErrorBody),
    ))]
pub async fn approve(
    State(state): State<Arc<ServerState>>,
    auth: Auth<Approver>,
    Channel(channel): Channel,
    Path(id): Path<String>,
    Json(body): Json<ApproveBody>,
) -> Result<axum::Json<RunRef>, ApiError> {
    let d = decision(
        Verb::Approve,
        (auth.caller.name, channel),
        body.comment,
        body.set,
        body.gate,
    );
    decide(&state, id, d).await
}

/// Rejects the gate the run waits at: the run ends `rejected` (rollback runs if a step ran).
#[utoipa::path(post, path = "/api/runs/{id}/reject", tag = "approvals", security(("bearer" = [])),
    params(("id" = String, Path, description = "run id")),
    request_body = RejectBody,
    responses(
        (status = 200, description = "rejected", body = RunRef),
        (status = 400, description = "malformed body or empty reason", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "role too low, or not an approver of the SOP", body = ErrorBody),
        (status = 404, description = "no such run", body = ErrorBody),
        (status = 409, description = "`not_waiting`", body = ErrorBody),
    ))]
pub async fn reject(
    State(state): State<Arc<ServerState>>,
    auth: Auth<Approver>,
    Channel(channel): Channel,
    Path(id): Path<String>,
    Json(body): Json<RejectBody>,
) -> Result<axum::Json<RunRef>, ApiError> {
    let reason = body.reason.trim();
    if reason.is_empty() {
        return Err(ApiError::BadRequest(
            "a rejection needs a non-empty `reason`".to_string(),
        ));
    }
    let d = decision(
        Verb::Reject,
        (auth.caller.name, channel),
        Some(reason.to_string()),
        BTreeMap::new(),
        body.gate.clone(),
    );
    decide(&state, id, d).await
}

/// Confirms the manual step the run waits at (`failed: true`: the step failed).
#[utoipa::path(post, path = "/api/runs/{id}/confirm", tag = "approvals", security(("bearer" = [])),
    params(("id" = String, Path, description = "run id")),
    request_body(content = ConfirmBody, description = "all fields optional; an empty body is `{}`"),
    responses(
        (status = 200, description = "confirmed", body = RunRef),
        (status = 400, description = "malformed body", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "role too low, or not an approver of the SOP", body = ErrorBody),
        (status = 404, description = "no such run", body = ErrorBody),
        (status = 409, description = "`not_waiting`: not waiting for a confirmation", body = ErrorBody),
        (status = 422, description = "`invalid_vars` in `set`", body = ErrorBody),
    ))]
pub async fn confirm(
    State(state): State<Arc<ServerState>>,
    auth: Auth<Approver>,
    Channel(channel): Channel,
    Path(id): Path<String>,
    Json(body): Json<ConfirmBody>,
) -> Result<axum::Json<RunRef>, ApiError> {
    let verb = if body.failed {
        Verb::ConfirmFailed
    } else {
        Verb::Confirm
    };
    let d = decision(
        verb,
        (auth.caller.name, channel),
        body.comment,
        body.set,
        body.gate,
    );
    decide(&state, id, d).await
}

fn decision(
    verb: Verb,
    (by, channel): (String, &str),
    comment: Option<String>,
    set: BTreeMap<String, String>,
    gate: Option<String>,
) -> Decision {
    Decision {
        verb,
        by,
        groups: vec![],
        channel: channel.to_string(),
        comment,
        set,
        gate,
    }
}

async fn decide(
    state: &Arc<ServerState>,
    id: String,
    d: Decision,
) -> Result<axum::Json<RunRef>, ApiError> {
    let answer = blocking(state, move |ops| {
        super::run_by_id(&ops, &id)?;
        let run = ops.decide(&id, &d)?;
        Ok(RunRef::new(run.id, run.status))
    })
    .await?;
    (state.wake)();
    Ok(axum::Json(answer))
}
