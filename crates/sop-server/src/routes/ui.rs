//! The web UI (SPEC §10): one page and its script and style, built into the binary. The page
//! only calls the API, from the same origin. A state-changing request from a browser must
//! carry this process's CSRF token (`X-Sop-Csrf`, from `GET /ui/session`, which a page of
//! another site cannot read) and a matching `Origin` (`host.rs`); with tokens configured
//! the page also sends the API token as a bearer header (kept in the tab's
//! `sessionStorage`, never in a cookie).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderName;
use axum::response::IntoResponse;

use crate::ServerState;

const INDEX: &str = include_str!("../ui/index.html");
const SCRIPT: &str = include_str!("../ui/app.js");
const STYLE: &str = include_str!("../ui/app.css");

/// What every UI file is sent with: scripts and styles only from this origin, no framing
/// (the Approve button must not be clickable through another site's page), no sniffing.
fn page(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (
                HeaderName::from_static("content-security-policy"),
                "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
            (HeaderName::from_static("x-frame-options"), "DENY"),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
            (HeaderName::from_static("referrer-policy"), "no-referrer"),
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// `GET /`: the UI.
pub async fn index() -> impl IntoResponse {
    page("text/html; charset=utf-8", INDEX)
}

/// `GET /ui/app.js`.
pub async fn script() -> impl IntoResponse {
    page("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /ui/app.css`.
pub async fn style() -> impl IntoResponse {
    page("text/css; charset=utf-8", STYLE)
}

/// `GET /ui/session`: this process's CSRF token, for the page's state-changing requests.
/// A page of another site cannot read it (no CORS headers are ever sent).
pub async fn session(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    (
        [(CACHE_CONTROL, "no-store")],
        axum::Json(serde_json::json!({ "csrf": state.csrf })),
    )
}
