//! `GET /healthz`: whether the store can be written.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;

use crate::shapes::Health;
use crate::ServerState;

/// Creates and removes a file in `dir`: proves audit files can be written there.
fn probe_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(".healthz");
    std::fs::write(&probe, b"ok")?;
    std::fs::remove_file(&probe)
}

/// `200 {"status": "ok"}`, or `503 {"status": "degraded", "reason"}` when the store or
/// the audit directory cannot be written. Needs no token.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses(
        (status = 200, description = "the store can be written", body = Health),
        (status = 503, description = "the store cannot be written", body = Health),
    ))]
pub async fn healthz(State(state): State<Arc<ServerState>>) -> (StatusCode, axum::Json<Health>) {
    let store = Arc::clone(&state.store);
    let logs = state.home.root().join("logs").join("sop");
    let checked = tokio::task::spawn_blocking(move || {
        store
            .check_writable()
            .map_err(|e| format!("the store cannot be written: {e}"))?;
        probe_dir(&logs).map_err(|e| {
            format!(
                "the audit directory `{}` cannot be written: {e}",
                logs.display()
            )
        })
    })
    .await;
    let reason = match checked {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(e) => Some(format!("the health check did not finish: {e}")),
    };
    match reason {
        None => (
            StatusCode::OK,
            axum::Json(Health {
                status: "ok",
                reason: None,
            }),
        ),
        Some(reason) => {
            tracing::warn!(%reason, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(Health {
                    status: "degraded",
                    reason: Some(reason),
                }),
            )
        }
    }
}
