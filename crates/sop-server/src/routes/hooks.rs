//! `POST /api/hooks/{path}`: webhook triggers (SPEC §6). The SOPs whose `webhook` trigger is
//! served at the path run with the body's top-level fields as variables.
//!
//! Who may fire a SOP: when its trigger names a `secret_env`, a request signed with that
//! secret (`X-Signature-256: sha256=<hex HMAC-SHA256 of the body>`; GitHub's
//! `X-Hub-Signature-256` is the same), or an `operator` token; without a `secret_env`, an
//! `operator` token (or anyone, when no tokens are configured: the server then listens on
//! loopback only). A SOP the request may not fire is left out of the answer; when it may
//! fire none, the answer is 401.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sop_core::config::Role;
use sop_core::run::TriggerInfo;
use sop_core::webhook::{body_vars, fit_to};
use sop_runtime::command::{shown_vars, Fired};

use crate::auth::{authenticate, Caller};
use crate::error::ApiError;
use crate::extract::Path;
use crate::shapes::{ErrorBody, HookReply, Matched};
use crate::{blocking, ServerState};

/// Runs every SOP whose webhook trigger is served at `path` and that this request may fire.
#[utoipa::path(post, path = "/api/hooks/{path}", tag = "hooks",
    params(("path" = String, Path, description = "the trigger's `path` (may contain `/`)")),
    request_body(content = Object, description = "a JSON object (or nothing): its top-level fields become variables"),
    responses(
        (status = 200, description = "what became of each SOP fired", body = HookReply),
        (status = 400, description = "the body is not a JSON object", body = ErrorBody),
        (status = 401, description = "no valid signature or `operator` token for any SOP served there", body = ErrorBody),
        (status = 403, description = "a valid token whose role is below `operator`, and no valid signature", body = ErrorBody),
        (status = 404, description = "no webhook trigger is served at this path", body = ErrorBody),
    ))]
pub async fn hook(
    State(state): State<Arc<ServerState>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<HookReply>, ApiError> {
    let given = body_vars(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let authorization = header(AUTHORIZATION.as_str());
    let authenticated = authenticate(&state.config, &state.local_user, authorization).ok();
    // An `operator` token (without tokens configured: the local user).
    let operator = authenticated.clone().filter(|c| c.role >= Role::Operator);
    // Only a configured token stands in for a signature.
    let token_operator = operator.clone().filter(|_| !state.config.tokens.is_empty());
    let signature = header("x-signature-256")
        .or_else(|| header("x-hub-signature-256"))
        .map(str::to_string);
    let reply = blocking(&state, move |ops| {
        let (hooked, _invalid) = ops.hooked(&path)?;
        if hooked.is_empty() {
            return Err(ApiError::NotFound(format!(
                "no webhook trigger is served at `/api/hooks/{path}`"
            )));
        }
        let mut matched = Vec::new();
        let mut skipped = given.skipped.clone();
        for (sop, secret_env) in hooked {
            let by = match secret_env {
                Some(env) => match (&token_operator, signed(&env, &body, signature.as_deref())) {
                    (Some(caller), _) => caller.name.clone(),
                    (None, Ok(())) => format!("webhook:{path}"),
                    (None, Err(why)) => {
                        tracing::warn!(sop = %sop.name, %path, "webhook refused: {why}");
                        continue;
                    }
                },
                None => match &operator {
                    Some(Caller { name, .. }) => name.clone(),
                    None => continue,
                },
            };
            let trigger = TriggerInfo {
                kind: "webhook".to_string(),
                by,
            };
            let fitted = fit_to(&sop, &given);
            skipped.extend(fitted.skipped);
            let shown = shown_vars(&sop, &fitted.vars);
            let outcome = ops.fire(&sop, fitted.vars, trigger, None);
            matched.push(Matched::new(Fired {
                sop: sop.name.clone(),
                vars: shown,
                outcome,
            }));
        }
        if matched.is_empty() {
            if let Some(caller) = &authenticated {
                // A valid token with too low a role: say so.
                caller.require(Role::Operator, &format!("`POST /api/hooks/{path}`"))?;
            }
            return Err(ApiError::Unauthorized(format!(
                "nothing served at `/api/hooks/{path}` accepts this request: send `X-Signature-256: sha256=<HMAC-SHA256 of the body>` with the trigger's secret, or `Authorization: Bearer <operator token>`"
            )));
        }
        skipped.sort();
        skipped.dedup();
        Ok(HookReply {
            path,
            matched,
            skipped_fields: skipped,
        })
    })
    .await?;
    (state.wake)();
    Ok(axum::Json(reply))
}

/// Whether `signature` (`sha256=<hex>`, or the bare hex) is the HMAC-SHA256 of `body` with
/// the secret in the environment variable `env` of this process. Compared in constant
/// time (`Mac::verify_slice`).
fn signed(env: &str, body: &[u8], signature: Option<&str>) -> Result<(), String> {
    let secret = std::env::var_os(env)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("`{env}` is not set in the environment of `sop serve`"))?;
    let signature = signature.ok_or("no `X-Signature-256` header")?;
    let hex_digest = signature.strip_prefix("sha256=").unwrap_or(signature);
    let given = hex::decode(hex_digest.trim()).map_err(|_| "the signature is not hex")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_encoded_bytes())
        .map_err(|e| format!("unusable secret: {e}"))?;
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| "the signature does not match the body".to_string())
}
