//! Where the server may listen and which `Host` headers it answers (SPEC §9): a
//! non-loopback bind needs tokens; a foreign `Host` is refused (DNS-rebinding defence).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::HOST;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sop_core::config::RunnerConfig;

use crate::error::ApiError;
use crate::ServerState;

/// Checks the bind address against the config: a non-loopback address without tokens is
/// refused, with a message saying why and how to fix it.
pub fn check_bind(addr: &SocketAddr, config: &RunnerConfig) -> Result<(), String> {
    if addr.ip().is_loopback() || !config.tokens.is_empty() {
        return Ok(());
    }
    Err(format!(
        "refusing to listen on `{addr}`: it is not a loopback address and `sop.toml` has no `[[tokens]]`, \
         so anyone who can reach it could run and approve SOPs; bind `127.0.0.1:{port}`, or create a \
         token with `sop token create --name <you> --role admin` and add the printed lines to `sop.toml`",
        port = addr.port()
    ))
}

/// The host part of a `Host` header or authority: `example.com:80` → `example.com`,
/// `[::1]:7311` → `[::1]`. Lower-cased.
fn host_part(authority: &str) -> String {
    let a = authority.trim();
    let host = if a.starts_with('[') {
        a.find(']').map_or(a, |end| &a[..=end])
    } else {
        a.rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(a, |(h, _)| h)
    };
    host.to_ascii_lowercase()
}

/// The host of `url` (`https://sop.example.com:8443/x` → `sop.example.com`).
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    (!authority.is_empty()).then(|| host_part(authority))
}

/// Whether a request for `host` may be answered: loopback names, or the host of `bind`/`url`.
pub fn host_allowed(host: &str, config: &RunnerConfig) -> bool {
    let host = host_part(host);
    if ["localhost", "127.0.0.1", "[::1]"].contains(&host.as_str()) {
        return true;
    }
    let bind = host_part(&config.bind);
    let url = config.url.as_deref().and_then(url_host);
    // A wildcard bind names no host a browser would use: only `url` can then allow one.
    let bind_names_a_host = !matches!(bind.as_str(), "0.0.0.0" | "[::]" | "");
    (bind_names_a_host && host == bind) || url.is_some_and(|u| u == host)
}

/// A state-changing request sent by a web page of another site (CSRF): browsers name the
/// page in `Origin` and say `cross-site` in `Sec-Fetch-Site`, and a request from a browser
/// (either header present) must also carry this process's CSRF token (`X-Sop-Csrf`, which
/// only a page of this origin can read, from `GET /ui/session`). Programs (curl, the CLI,
/// the JS client in Node.js) send none of these and are not affected. Returns why the
/// request is refused.
fn cross_site(req: &Request, config: &RunnerConfig, csrf: &str) -> Option<String> {
    if req.method() == axum::http::Method::GET || req.method() == axum::http::Method::HEAD {
        return None;
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return Some(format!(
                "a `{site}` request may not change anything (cross-site request refused)"
            ));
        }
    }
    let from_browser = header("origin").is_some() || header("sec-fetch-site").is_some();
    if let Some(origin) = header("origin") {
        // Same origin: the page's scheme-less `host:port` is the `Host` it sent the request to.
        let authority = origin
            .split_once("://")
            .map(|(_, a)| a.trim_end_matches('/').to_ascii_lowercase());
        let host = header("host").map(str::to_ascii_lowercase);
        let allowed = authority.is_some()
            && authority == host
            && host.as_deref().is_some_and(|h| host_allowed(h, config));
        if !allowed {
            return Some(format!(
                "origin `{origin}` is not allowed to change anything (cross-site request refused)"
            ));
        }
    }
    let token_ok = header("x-sop-csrf")
        .is_some_and(|t| bool::from(subtle::ConstantTimeEq::ct_eq(t.as_bytes(), csrf.as_bytes())));
    (from_browser && !token_ok).then(|| {
        "a browser's request that changes something needs this page's CSRF token in `X-Sop-Csrf` (from `GET /ui/session`; cross-site request refused)".to_string()
    })
}

/// Middleware: 403 unless the request's `Host` (or URI authority) is allowed.
pub async fn guard(State(state): State<Arc<ServerState>>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(ToString::to_string));
    if let Some(refused) = cross_site(&req, &state.config, &state.csrf) {
        return ApiError::Forbidden(refused).into_response();
    }
    match host {
        Some(h) if host_allowed(&h, &state.config) => next.run(req).await,
        Some(h) => ApiError::Forbidden(format!(
            "host `{h}` is not allowed: use `localhost`, `127.0.0.1`, `[::1]`, or the host of `bind` or `url` in `sop.toml`"
        ))
        .into_response(),
        None => ApiError::Forbidden("the request has no `Host` header".to_string()).into_response(),
    }
}
