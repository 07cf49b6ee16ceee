//! The `OpenAPI` 3.1 document at `/api/openapi.json`, generated from the handlers'
//! `#[utoipa::path]` annotations and the schemas of `shapes` and `openapi::documents`.

mod documents;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub use documents::{MetricsDocument, RunDocument, SopDocument};

use crate::routes::{approvals, command, health, hooks, metrics, runs, sops};
use crate::sse;

/// The API's `OpenAPI` document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "sop-runner",
        description = "HTTP API of `sop serve`. Errors are `{\"error\": {\"code\", \"message\"}}`. \
                       With tokens configured, every endpoint except `/healthz` and \
                       `/api/openapi.json` needs `Authorization: Bearer <token>`."
    ),
    paths(
        health::healthz,
        document,
        sops::list,
        sops::show,
        sops::execute,
        sops::status,
        sops::cancel,
        runs::list,
        runs::show,
        sse::events,
        approvals::approve,
        approvals::reject,
        approvals::confirm,
        runs::cancel,
        approvals::approve_by_sop,
        approvals::list,
        command::command,
        hooks::hook,
        metrics::json,
        metrics::prometheus,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "sops", description = "procedures and their execution"),
        (name = "runs", description = "runs, their documents and live events"),
        (name = "approvals", description = "decisions at gates"),
        (name = "hooks", description = "webhook triggers"),
        (name = "metrics", description = "execution metrics (JSON and Prometheus text)"),
        (name = "command", description = "command lines: built-in decisions and `command` triggers"),
        (name = "health", description = "liveness of the store"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme the paths refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "health",
    responses((status = 200, description = "the OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
pub async fn document() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
