//! Who is calling and what they may do (SPEC §9): a bearer token is hashed and compared in
//! constant time with every configured token; its entry gives the identity and the role.
//! Handlers state the role they need in their signature: `Auth<Operator>`.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use sop_core::config::{Role, RunnerConfig};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::ServerState;

/// The authenticated identity of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `name` (or the local user when no tokens are configured).
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// Refuses unless the caller has at least `needed`; `what` names the action.
    pub fn require(&self, needed: Role, what: &str) -> Result<(), ApiError> {
        if self.role >= needed {
            return Ok(());
        }
        Err(ApiError::Forbidden(format!(
            "`{}` has role `{}`; {what} needs `{}` or higher",
            self.name,
            role_name(self.role),
            role_name(needed)
        )))
    }
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Operator => "operator",
        Role::Approver => "approver",
        Role::Admin => "admin",
    }
}

/// A role an endpoint needs, as a type: `Auth<Approver>`.
pub trait MinRole {
    const ROLE: Role;
}

macro_rules! roles {
    ($($name:ident),*) => {$(
        #[doc = concat!("Needs the `", stringify!($name), "` role or higher.")]
        pub struct $name;
        impl MinRole for $name {
            const ROLE: Role = Role::$name;
        }
    )*};
}
roles!(Viewer, Operator, Approver);

/// An authenticated caller with at least the role `R`: 401 without a valid token, 403
/// when the token's role is lower.
pub struct Auth<R: MinRole> {
    pub caller: Caller,
    role: PhantomData<R>,
}

impl<R: MinRole> FromRequestParts<Arc<ServerState>> for Auth<R> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ServerState>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or_default());
        let caller = authenticate(&state.config, &state.local_user, header)?;
        let what = format!("`{} {}`", parts.method, parts.uri.path());
        caller.require(R::ROLE, &what)?;
        Ok(Auth {
            caller,
            role: PhantomData,
        })
    }
}

/// The caller named by an `Authorization` header value.
///
/// No tokens configured: everyone is the local user with role `admin` (the server then
/// only binds loopback addresses, see [`crate::check_bind`]).
pub fn authenticate(
    config: &RunnerConfig,
    local_user: &str,
    header: Option<&str>,
) -> Result<Caller, ApiError> {
    if config.tokens.is_empty() {
        return Ok(Caller {
            name: local_user.to_string(),
            role: Role::Admin,
        });
    }
    let Some(header) = header else {
        return Err(ApiError::Unauthorized(
            "this server needs an API token: send `Authorization: Bearer <token>` (`sop token create` makes one)"
                .to_string(),
        ));
    };
    let token = header
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "expected `Authorization: Bearer <token>`, found another scheme".to_string(),
            )
        })?;
    let digest = Sha256::digest(token.as_bytes());
    let mut found = None;
    for entry in &config.tokens {
        // A malformed hash in `sop.toml` never matches (it compares against zeros).
        let mut expected = [0u8; 32];
        let valid = hex::decode_to_slice(entry.sha256.trim(), &mut expected).is_ok();
        let equal: bool = digest.as_slice().ct_eq(&expected).into();
        if equal && valid && found.is_none() {
            found = Some(entry);
        }
    }
    found
        .map(|e| Caller {
            name: e.name.clone(),
            role: e.role,
        })
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "the API token matches no `[[tokens]]` entry of `sop.toml`".to_string(),
            )
        })
}
