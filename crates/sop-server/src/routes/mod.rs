//! The API's handlers, one module per resource, and what they share.

pub mod approvals;
pub mod command;
pub mod health;
pub mod hooks;
pub mod metrics;
pub mod runs;
pub mod sops;
pub mod ui;

use axum::http::{Method, Uri};
use sop_core::run::{Run, RunStatus};
use sop_runtime::ops::{load_sop, OpError, Ops};
use sop_store::RunFilter;

use crate::error::ApiError;

/// Answer for unknown routes.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!(
        "no such endpoint `{}` (the API is described at `/api/openapi.json`)",
        uri.path()
    ))
}

/// Answer for a known route called with the wrong method.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "`{}` does not accept `{method}` (the API is described at `/api/openapi.json`)",
        uri.path()
    ))
}

/// The run with this exact id.
pub fn run_by_id(ops: &Ops<'_>, id: &str) -> Result<Run, ApiError> {
    ops.store
        .load_run(id)?
        .ok_or_else(|| ApiError::NotFound(format!("no run `{id}`")))
}

/// The one run of SOP `sop` in one of `statuses` (`what` describes them for messages).
///
/// Unlike `Ops::resolve`, `sop` is only ever a SOP name, never a run id or its prefix: a
/// request naming a SOP must not act on a run of another SOP.
pub fn run_of_sop(
    ops: &Ops<'_>,
    sop: &str,
    statuses: &[RunStatus],
    what: &str,
) -> Result<String, ApiError> {
    let filter = RunFilter {
        sop: Some(sop.to_string()),
        statuses: statuses.to_vec(),
        limit: Some(50),
    };
    let mut runs = ops.store.list_runs(&filter)?;
    match runs.len() {
        1 => Ok(runs.remove(0).id),
        0 => {
            // An unknown SOP is a 404; a known one (or one with runs) has nothing to act on.
            let any = RunFilter {
                sop: Some(sop.to_string()),
                statuses: vec![],
                limit: Some(1),
            };
            if ops.store.list_runs(&any)?.is_empty() {
                if let Err(e @ OpError::UnknownSop { .. }) = load_sop(ops.home, sop) {
                    return Err(e.into());
                }
            }
            Err(OpError::NothingWaiting {
                sop: sop.to_string(),
                what: what.to_string(),
            }
            .into())
        }
        _ => Err(OpError::Ambiguous {
            sop: sop.to_string(),
            what: what.to_string(),
            runs,
        }
        .into()),
    }
}
