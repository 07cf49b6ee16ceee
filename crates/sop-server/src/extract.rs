//! Request extractors whose failures answer with the API's JSON errors (axum's own answer
//! with plain text).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body. An empty body counts as `{}`, so calls whose fields are all optional
/// need none; a body must be `application/json` when a `Content-Type` is sent.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or_default().to_ascii_lowercase());
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError::BadRequest(format!("cannot read the request body: {}", e.body_text()))
        })?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        if let Some(ct) = content_type.filter(|_| text != b"{}") {
            let essence = ct.split(';').next().unwrap_or_default().trim();
            if essence != "application/json" && !essence.ends_with("+json") {
                return Err(ApiError::BadRequest(format!(
                    "expected a JSON body (`Content-Type: application/json`), found `{ct}`"
                )));
            }
        }
        serde_json::from_slice(text).map(Json).map_err(|e| {
            let what = if e.is_data() {
                "invalid request body"
            } else {
                "malformed JSON body"
            };
            ApiError::BadRequest(format!("{what}: {e}"))
        })
    }
}

/// A query string.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e| ApiError::BadRequest(format!("invalid query string: {}", source_text(&e))))
    }
}

/// A path parameter.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e| ApiError::BadRequest(format!("invalid path: {}", source_text(&e))))
    }
}

/// The innermost cause of a rejection: axum's outer text is capitalised boilerplate.
fn source_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

/// The channel a decision is recorded with (SPEC §5): `ui` for the web UI's buttons (its
/// requests say `X-Sop-Client: ui`), else `api`.
pub struct Channel(pub &'static str);

impl<S: Send + Sync> FromRequestParts<S> for Channel {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ui = parts
            .headers
            .get("x-sop-client")
            .is_some_and(|v| v.as_bytes() == b"ui");
        Ok(Channel(if ui { "ui" } else { "api" }))
    }
}
