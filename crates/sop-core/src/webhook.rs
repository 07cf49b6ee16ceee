//! Webhook triggers (SPEC §6): which SOPs a `POST /api/hooks/<path>` is for, and the
//! variables its JSON body gives. Checking the request's signature is the server's.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::command::shows_secret;
use crate::model::{Sop, Trigger};
use crate::vars::{check_var_name, check_var_value, MIN_SECRET_CHARS};

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
    /// Top-level fields that gave no variable: names that cannot be variables (`PATH`,
    /// `hook-id`, ...), `null` values, and what [`fit_to`] drops.
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

/// Most bytes of variable values one webhook gives a run: each variable reaches a step
/// twice (`name` and `SOP_VAR_NAME`), and a process's environment is bounded.
pub const MAX_BODY_VAR_BYTES: usize = 512 * 1024;

/// `body`'s variables as `sop` may take them. Dropped (and listed in `skipped`): a field
/// `sop` does not declare whose value a variable cannot hold (over 64 KiB, or NUL: a
/// declared one stays, so the refusal names it); a field whose value would show the value
/// of a variable `sop` declares `secret` (it would be shown as it is, SPEC §9); fields past
/// [`MAX_BODY_VAR_BYTES`], in name order.
pub fn fit_to(sop: &Sop, body: &BodyVars) -> BodyVars {
    let secrets: Vec<&str> = body
        .vars
        .iter()
        .filter(|(name, _)| sop.vars.get(*name).is_some_and(|d| d.secret))
        .map(|(_, value)| value.as_str())
        .filter(|v| v.chars().count() >= MIN_SECRET_CHARS)
        .collect();
    let mut out = BodyVars {
        vars: BTreeMap::new(),
        skipped: body.skipped.clone(),
    };
    let mut total = 0;
    for (name, value) in &body.vars {
        let declared = sop.vars.get(name);
        let unfit = declared.is_none() && check_var_value(name, value).is_err();
        let secret = declared.is_some_and(|d| d.secret);
        let shows = !secret && secrets.iter().any(|s| shows_secret(value, s));
        if unfit || shows || total + value.len() > MAX_BODY_VAR_BYTES {
            out.skipped.push(name.clone());
            continue;
        }
        total += value.len();
        out.vars.insert(name.clone(), value.clone());
    }
    out.skipped.sort();
    out
}
