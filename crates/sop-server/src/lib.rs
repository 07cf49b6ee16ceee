//! sop-server: the HTTP API of `sop serve` (`docs/API.md`): routes, server-sent events,
//! auth and the `OpenAPI` document. No business logic: every request becomes a call to
//! `sop_runtime::ops` (one store transaction decided by `sop-core`).

mod auth;
mod error;
mod extract;
mod host;
mod openapi;
mod routes;
mod shapes;
mod sse;
mod token;

use std::sync::{Arc, OnceLock};

use axum::routing::{get, post};
use axum::Router;
use sop_core::config::RunnerConfig;
use sop_runtime::audit::Settler;
use sop_runtime::ops::Ops;
use sop_runtime::Home;

pub use auth::Caller;
pub use error::ApiError;
pub use host::check_bind;
pub use openapi::ApiDoc;
pub use shapes::CommandReply;
pub use token::{new_token, token_sha256};

/// What every request handler shares.
pub struct ServerState {
    pub store: Arc<dyn sop_store::Store>,
    pub home: Home,
    /// The runner configuration. `bind` must be the address the server really listens on
    /// (its host is allowed in `Host` headers).
    pub config: RunnerConfig,
    /// Identity of requests when no tokens are configured (the OS user running `sop serve`).
    pub local_user: String,
    /// Wakes the scheduler after this server committed a change (new run, decision, cancel).
    pub wake: Arc<dyn Fn() + Send + Sync>,
    /// Turns at the store (see [`STORE_TURNS`]).
    turns: Arc<tokio::sync::Semaphore>,
    /// The daemon's audit settler, once it runs ([`ServerState::with_settler`]): runs an
    /// operation ends get their final audit file through it.
    settler: Arc<OnceLock<Arc<Settler>>>,
    /// This process's CSRF token: what a browser's state-changing request must carry
    /// (`X-Sop-Csrf`); the web UI reads it from `GET /ui/session` (see `host.rs`).
    pub csrf: String,
    /// Set when the server stops: open event streams end (their clients resume with
    /// `Last-Event-ID`), so a graceful shutdown does not wait for runs to finish.
    pub stopping: Arc<std::sync::atomic::AtomicBool>,
}

/// How many requests work on the store at once; the others wait their turn in arrival
/// order (tokio's semaphore is fair). With a thread per request, 64 concurrent clients
/// contended for the store's lock on two cores: a holder was often preempted, and unlucky
/// requests waited several times as long as the median (enqueue p99 ~3.5x p50). Enough turns
/// remain for the new runs of concurrent requests to share one commit.
pub const STORE_TURNS: usize = 16;

impl ServerState {
    pub fn new(
        store: Arc<dyn sop_store::Store>,
        home: Home,
        config: RunnerConfig,
        local_user: String,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> ServerState {
        ServerState {
            store,
            home,
            config,
            local_user,
            wake,
            turns: Arc::new(tokio::sync::Semaphore::new(STORE_TURNS)),
            settler: Arc::new(OnceLock::new()),
            csrf: token::new_token().0,
            stopping: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    /// Operations use the daemon's settler from the moment it runs
    /// (`Scheduler::settler_slot`).
    #[must_use]
    pub fn with_settler(mut self, settler: Arc<OnceLock<Arc<Settler>>>) -> ServerState {
        self.settler = settler;
        self
    }
}

/// The API's router (`docs/API.md`).
pub fn router(state: Arc<ServerState>) -> Router {
    use routes::{approvals, command, health, hooks, metrics, runs, sops, ui};
    Router::new()
        .route("/", get(ui::index))
        .route("/ui/app.js", get(ui::script))
        .route("/ui/app.css", get(ui::style))
        .route("/ui/session", get(ui::session))
        .route("/healthz", get(health::healthz))
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/sops", get(sops::list))
        .route("/api/sops/{name}", get(sops::show))
        .route("/api/sops/{name}/execute", post(sops::execute))
        .route("/api/sops/{name}/status", get(sops::status))
        .route("/api/sops/{name}/cancel", post(sops::cancel))
        .route("/api/runs", get(runs::list))
        .route("/api/runs/{id}", get(runs::show))
        .route("/api/runs/{id}/events", get(sse::events))
        .route("/api/runs/{id}/approve", post(approvals::approve))
        .route("/api/runs/{id}/reject", post(approvals::reject))
        .route("/api/runs/{id}/confirm", post(approvals::confirm))
        .route("/api/runs/{id}/cancel", post(runs::cancel))
        .route("/api/sop/approve", post(approvals::approve_by_sop))
        .route("/api/approvals", get(approvals::list))
        .route("/api/command", post(command::command))
        .route("/api/hooks/{*path}", post(hooks::hook))
        .route("/api/metrics", get(metrics::json))
        .route("/metrics", get(metrics::prometheus))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            host::guard,
        ))
        .with_state(state)
}

/// Runs `f` with the operations of the home on a blocking thread (the store is blocking).
async fn blocking<T, F>(state: &Arc<ServerState>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: for<'a> FnOnce(Ops<'a>) -> Result<T, ApiError> + Send + 'static,
{
    let state = Arc::clone(state);
    let turn = Arc::clone(&state.turns)
        .acquire_owned()
        .await
        .map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(move || {
        let _turn = turn; // held until the work is done, even if the request is dropped
        f(Ops {
            store: &*state.store,
            home: &state.home,
            config: &state.config,
            served: true,
            settle: state.settler.get().map(|s| &**s),
        })
    })
    .await
    .map_err(ApiError::internal)?
}
