//! `GET /healthz`: whether the store can be written.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;

use crate::shapes::Health;
use crate::ServerState;

/// `200 {"status": "ok"}`, or `503 {"status": "degraded", "reason"}` when the store
/// cannot be written. Needs no token.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses(
        (status = 200, description = "the store can be written", body = Health),
        (status = 503, description = "the store cannot be written", body = Health),
    ))]
pub async fn healthz(State(state): State<Arc<ServerState>>) -> (StatusCode, axum::Json<Health>) {
    let store = Arc::clone(&state.store);
    let checked = tokio::task::spawn_blocking(move || store.check_writable()).await;
    let reason = match checked {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("the store cannot be written: {e}")),
        Err(e) => Some(format!("the store check did not finish: {e}")),
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
