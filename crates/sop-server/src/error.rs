//! The one error type of the API: every failure becomes `{"error": {"code", "message"}}`
//! with the status `docs/API.md` gives it. Internal details are logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sop_core::run::Refusal;
use sop_runtime::ops::OpError;

use crate::shapes::{ErrorBody, ErrorDetail};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `bad_request`: malformed JSON, a bad field or query parameter.
    #[error("{0}")]
    BadRequest(String),
    /// 401 `unauthorized`: no token, or one that matches no configured token.
    #[error("{0}")]
    Unauthorized(String),
    /// 403 `forbidden`: role too low, host not allowed, decision refused by the SOP's rules.
    #[error("{0}")]
    Forbidden(String),
    /// 404 `not_found`: unknown SOP, run or route.
    #[error("{0}")]
    NotFound(String),
    /// 405 `method_not_allowed`.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409 `not_waiting`: the gate is not waiting, or was already decided.
    #[error("{0}")]
    NotWaiting(String),
    /// 409 `cooldown`.
    #[error("{0}")]
    Cooldown(String),
    /// 409 `dropped`.
    #[error("{0}")]
    Dropped(String),
    /// 409 `conflict`: several runs match; the message lists them.
    #[error("{0}")]
    Conflict(String),
    /// 422 `invalid_vars`: the message names the variable.
    #[error("{0}")]
    InvalidVars(String),
    /// 422 `invalid_sop`: the SOP's files have errors.
    #[error("{0}")]
    InvalidSop(String),
    /// 500 `internal`: the detail is logged, the client gets a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotWaiting(_)
            | ApiError::Cooldown(_)
            | ApiError::Dropped(_)
            | ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::InvalidVars(_) | ApiError::InvalidSop(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::NotWaiting(_) => "not_waiting",
            ApiError::Cooldown(_) => "cooldown",
            ApiError::Dropped(_) => "dropped",
            ApiError::Conflict(_) => "conflict",
            ApiError::InvalidVars(_) => "invalid_vars",
            ApiError::InvalidSop(_) => "invalid_sop",
            ApiError::Internal(_) => "internal",
        }
    }

    /// `{"code", "message"}` as sent: an internal error's details are logged, not sent.
    pub fn detail(&self) -> ErrorDetail {
        let message = match self {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "request failed");
                "internal error; the details are in the server log".to_string()
            }
            other => other.to_string(),
        };
        ErrorDetail {
            code: self.code().to_string(),
            message,
        }
    }

    /// An internal failure: `detail` goes to the log only.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(detail.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: self.detail(),
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> ApiError {
        let message = e.to_string();
        match e {
            OpError::UnknownSop { .. } | OpError::NoSuchTarget(_) => ApiError::NotFound(message),
            OpError::InvalidSop { .. } => ApiError::InvalidSop(message),
            OpError::BadVars { .. } => ApiError::InvalidVars(message),
            OpError::BadInput(_) | OpError::AmbiguousPrefix { .. } => ApiError::BadRequest(message),
            // The CLI's message names `--force`; over HTTP the override is a body field.
            OpError::Cooldown { sop, remaining_secs, run_id } => ApiError::Cooldown(format!(
                "`{sop}` is in cooldown: {} remain (run `{run_id}` started it); send `\"force\": true` (admin role) to override",
                sop_runtime::clock::human_secs(remaining_secs)
            )),
            OpError::Dropped { .. } => ApiError::Dropped(message),
            OpError::NothingWaiting { .. } => ApiError::NotWaiting(message),
            OpError::Ambiguous { .. } => ApiError::Conflict(message),
            OpError::Refused(refusal) => refusal.into(),
            OpError::Store(_) | OpError::Audit(_) | OpError::Home { .. } => {
                ApiError::Internal(message)
            }
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        let message = r.to_string();
        match r {
            Refusal::NotAnApprover { .. } | Refusal::SelfApproval { .. } => {
                ApiError::Forbidden(message)
            }
            Refusal::BadVar(_) => ApiError::InvalidVars(message),
            Refusal::NotWaiting { .. }
            | Refusal::AlreadyApproved { .. }
            | Refusal::Finished { .. }
            | Refusal::WrongGate { .. }
            | Refusal::NotInterrupted { .. } => ApiError::NotWaiting(message),
        }
    }
}

impl From<sop_store::StoreError> for ApiError {
    fn from(e: sop_store::StoreError) -> ApiError {
        ApiError::internal(e)
    }
}
