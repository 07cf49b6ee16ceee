//! `POST /api/command`: a command line (SPEC §6): a built-in `/approve` or `/reject`, or
//! text that executes every SOP whose `command` trigger matches it.

use std::sync::Arc;

use axum::extract::State;
use sop_core::command::{parse_command, CommandLine};
use sop_core::config::Role;
use sop_runtime::command::Caller;

use crate::auth::{Auth, Viewer};
use crate::error::ApiError;
use crate::extract::Json;
use crate::shapes::{CommandBody, CommandReply, ErrorBody};
use crate::{blocking, ServerState};

/// Takes a command line. A built-in needs the `approver` role, text that fires triggers
/// `operator`; a `dry_run` (what would be done) any role.
#[utoipa::path(post, path = "/api/command", tag = "command", security(("bearer" = [])),
    request_body = CommandBody,
    responses(
        (status = 200, description = "done (or, with `dry_run`, what would be done); `matched` is empty when no trigger matched", body = CommandReply),
        (status = 400, description = "malformed body, empty text, or a built-in without its target or reason", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "role too low, not an approver of the SOP, or self-approval", body = ErrorBody),
        (status = 404, description = "a built-in: no such SOP or run", body = ErrorBody),
        (status = 409, description = "a built-in: `not_waiting`, or `conflict` when several runs wait", body = ErrorBody),
    ))]
pub async fn command(
    State(state): State<Arc<ServerState>>,
    auth: Auth<Viewer>,
    Json(body): Json<CommandBody>,
) -> Result<axum::Json<CommandReply>, ApiError> {
    let line = parse_command(&body.text).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if !body.dry_run {
        match line {
            CommandLine::Approve { .. } => auth.caller.require(Role::Approver, "`/approve`")?,
            CommandLine::Reject { .. } => auth.caller.require(Role::Approver, "`/reject`")?,
            CommandLine::Text(_) => auth.caller.require(Role::Operator, "firing triggers")?,
        }
    }
    let caller = Caller {
        by: auth.caller.name,
        groups: vec![],
    };
    let dry_run = body.dry_run;
    let reply = blocking(&state, move |ops| {
        // Read again here: `line` borrows the body, which this thread takes.
        let line = parse_command(&body.text).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(CommandReply::new(
            ops.command(&line, &caller, dry_run)?,
            dry_run,
        ))
    })
    .await?;
    if !dry_run {
        (state.wake)();
    }
    Ok(axum::Json(reply))
}
