//! The web UI (SPEC §10): one page and its script and style, built into the binary. The page
//! only calls the API, from the same origin: the `Origin` check of `host.rs` refuses a
//! state-changing request from another site, and with tokens configured the page sends
//! the token as a bearer header (kept in the tab's `sessionStorage`, never in a cookie),
//! so no other site's page can act with it (no ambient credential, hence no CSRF token).

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderName;
use axum::response::IntoResponse;

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
