//! Webhook triggers (SPEC §6): which SOPs a `POST /api/hooks/<path>` is for, and the
//! variables its JSON body gives. Checking the request's signature is the server's.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::{Sop, Trigger};
use crate::vars::check_var_name;

/// The webhook trigger of `sop` served at `path` (the first, in file order), as the name
/// of the environment variable holding its HMAC secret (`None`: the trigger has none).
pub fn hook_of<'a>(sop: &'a Sop, path: &str) -> Option<Option<&'a str>> {
    sop.triggers.iter().find_map(|trigger| match trigger {
        Trigger::Webhook {
            path: own,
            secret_env,
        } if own == path => Some(secret_env.as_deref()),
        _ => None,
    })
}

/// The variables of a webhook body, and the fields that gave none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BodyVars {
    pub vars: BTreeMap<String, String>,
    /// Top-level fields whose name cannot be a variable (`PATH`, `hook-id`, ...), or
    /// whose value is `null`.
    pub skipped: Vec<String>,
}

/// A body that cannot give variables.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body is JSON {found}: expected an object, whose fields become variables")]
    NotAnObject { found: &'static str },
}

/// The top-level fields of a JSON object body as variables: strings as they are, numbers
/// and booleans as their JSON text, arrays and objects as their compact JSON text. An
/// empty body gives none.
pub fn body_vars(body: &[u8]) -> Result<BodyVars, BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(BodyVars::default());
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| BodyError::NotJson(e.to_string()))?;
    let Value::Object(fields) = value else {
        let found = match value {
            Value::Array(_) => "an array",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            Value::Null | Value::Object(_) => "null",
        };
        return Err(BodyError::NotAnObject { found });
    };
    let mut out = BodyVars::default();
    for (name, value) in fields {
        if check_var_name(&name).is_err() || value.is_null() {
            out.skipped.push(name);
            continue;
        }
        let text = match value {
            Value::String(s) => s,
            other => other.to_string(),
        };
        out.vars.insert(name, text);
    }
    Ok(out)
}
