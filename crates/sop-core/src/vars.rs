//! Variable names and values: which are refused, checking execute-time vars against
//! `[vars]`, and redacting secrets from text (SPEC §4, §9).

mod names;
mod redact;

use std::collections::BTreeMap;

use crate::diagnostic::did_you_mean;
use crate::model::VarDecl;

pub(crate) use names::check_name_shape;
pub use names::check_var_name;
pub use redact::{Redactor, MASK, MIN_FRAGMENT_CHARS, MIN_SECRET_CHARS};

/// Largest accepted value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// A refused variable name or value, or an execute-time var that does not fit `[vars]`.
///
/// Messages never include a value: it may be a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VarError {
    #[error("variable name is empty: expected a letter or `_`, then letters, digits or `_`")]
    EmptyName,
    #[error("variable name `{name}` is {len} characters long: expected at most 64")]
    NameTooLong { name: String, len: usize },
    #[error("variable name `{name}` has `{found}` at character {col}: expected {expected}")]
    BadNameChar {
        name: String,
        found: char,
        col: usize,
        expected: &'static str,
    },
    #[error("variable name `{name}` is reserved: {reason}{}", family_note(.name, .rule))]
    ReservedName {
        name: String,
        rule: String,
        reason: &'static str,
    },
    #[error("value of variable `{name}` contains a NUL byte")]
    NulInValue { name: String },
    #[error(
        "value of variable `{name}` is {len} bytes: expected at most {MAX_VALUE_BYTES} (64 KiB)"
    )]
    ValueTooLong { name: String, len: usize },
    #[error("variable `{name}` is not declared in `[vars]`")]
    Undeclared {
        name: String,
        suggestion: Option<String>,
    },
    #[error("required variable `{name}` is not set")]
    Missing { name: String },
    #[error("value of variable `{name}` does not match its `pattern` `{pattern}`")]
    PatternMismatch { name: String, pattern: String },
    #[error("`pattern` of variable `{name}` is not a valid regex: {reason}")]
    BadPattern {
        name: String,
        pattern: String,
        reason: String,
    },
    #[error("variables `{first}` and `{second}` would both set `{env}`")]
    EnvCollision {
        first: String,
        second: String,
        env: String,
    },
}

impl VarError {
    /// A hint on what to do, where there is a useful one.
    pub fn help(&self) -> Option<String> {
        match self {
            VarError::ReservedName { .. } => Some(
                "choose a name no program reads, e.g. one starting with your project's name"
                    .to_string(),
            ),
            VarError::BadNameChar { .. } | VarError::NameTooLong { .. } | VarError::EmptyName => {
                Some("variable names match `^[A-Za-z_][A-Za-z0-9_]{0,63}$`".to_string())
            }
            VarError::Undeclared { suggestion, .. } => Some(
                suggestion
                    .clone()
                    .unwrap_or_else(|| "declare it under `[vars]` in `SOP.toml`".to_string()),
            ),
            VarError::Missing { name } => Some(format!("set it with `--var {name}=...`")),
            VarError::ValueTooLong { .. } => {
                Some("pass large data in a file and the file's path as the value".to_string())
            }
            VarError::EnvCollision { .. } => Some(
                "steps see each variable as `SOP_VAR_<NAME>` in upper case; rename one".to_string(),
            ),
            VarError::NulInValue { .. }
            | VarError::PatternMismatch { .. }
            | VarError::BadPattern { .. } => None,
        }
    }
}

/// " (every `LD_*` name is)" when the rule is a family rather than the name itself.
fn family_note(name: &str, rule: &str) -> String {
    if name == rule {
        String::new()
    } else {
        format!(" (every `{rule}` name is)")
    }
}

/// Refuses values with a NUL byte (they cannot reach a process environment) or over 64 KiB.
pub fn check_var_value(name: &str, value: &str) -> Result<(), VarError> {
    if value.contains('\0') {
        return Err(VarError::NulInValue {
            name: name.to_string(),
        });
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(VarError::ValueTooLong {
            name: name.to_string(),
            len: value.len(),
        });
    }
    Ok(())
}

/// The environment name a step sees besides `name` itself: `SOP_VAR_<NAME>`.
pub fn env_name(name: &str) -> String {
    format!("SOP_VAR_{}", name.to_ascii_uppercase())
}

/// Checks execute-time vars `given` against the declarations `decls` and fills in defaults.
///
/// Every name and value is checked; when `decls` is non-empty, undeclared names are refused;
/// a `required` var with no default must be given (an empty value counts as given); a
/// `pattern` must match the final value, given or default. Returns every problem at once.
/// Checks variables set later in a run (`approve --set`, `confirm --set`) like execute-time
/// ones: names, values, and — when the SOP declares `[vars]` — declared names and patterns.
pub fn check_set(
    decls: &BTreeMap<String, VarDecl>,
    set: &BTreeMap<String, String>,
) -> Result<(), Vec<VarError>> {
    let optional: BTreeMap<String, VarDecl> = decls
        .iter()
        .map(|(n, d)| {
            (
                n.clone(),
                VarDecl {
                    required: false,
                    default: None,
                    ..d.clone()
                },
            )
        })
        .collect();
    resolve_vars(&optional, set).map(|_| ())
}

pub fn resolve_vars(
    decls: &BTreeMap<String, VarDecl>,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Vec<VarError>> {
    let mut errors = Vec::new();
    for (name, value) in given {
        if let Err(e) = check_var_name(name) {
            errors.push(e);
            continue;
        }
        if let Err(e) = check_var_value(name, value) {
            errors.push(e);
        }
        if !decls.is_empty() && !decls.contains_key(name) {
            let suggestion = did_you_mean(name, decls.keys().map(String::as_str));
            errors.push(VarError::Undeclared {
                name: name.clone(),
                suggestion,
            });
        }
    }

    let mut resolved = given.clone();
    for (name, decl) in decls {
        let value = match (given.get(name), &decl.default) {
            (Some(v), _) => v,
            (None, Some(default)) => {
                if let Err(e) = check_var_name(name).and_then(|()| check_var_value(name, default)) {
                    errors.push(e);
                }
                resolved.insert(name.clone(), default.clone());
                default
            }
            (None, None) => {
                if decl.required {
                    errors.push(VarError::Missing { name: name.clone() });
                }
                continue;
            }
        };
        if let Some(pattern) = &decl.pattern {
            match regex::Regex::new(pattern) {
                Ok(re) if re.is_match(value) => {}
                Ok(_) => errors.push(VarError::PatternMismatch {
                    name: name.clone(),
                    pattern: pattern.clone(),
                }),
                Err(e) => errors.push(VarError::BadPattern {
                    name: name.clone(),
                    pattern: pattern.clone(),
                    reason: regex_error(&e),
                }),
            }
        }
    }

    check_collisions(&resolved, &mut errors);
    if errors.is_empty() {
        Ok(resolved)
    } else {
        Err(errors)
    }
}

/// [`resolve_vars`] for a run a trigger starts: execute-time vars `given`, then the
/// trigger's vars `caught` (later wins, SPEC §4). The trigger's names need no declaration
/// in `[vars]` (the SOP's own pattern names them, `match_1`, ...); a declared one is
/// checked against its declaration like any other value.
pub fn resolve_with_trigger(
    decls: &BTreeMap<String, VarDecl>,
    given: &BTreeMap<String, String>,
    caught: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Vec<VarError>> {
    if caught.is_empty() {
        return resolve_vars(decls, given);
    }
    let mut decls = decls.clone();
    if !decls.is_empty() {
        for name in caught.keys() {
            decls.entry(name.clone()).or_default();
        }
    }
    let mut vars = given.clone();
    vars.extend(caught.iter().map(|(k, v)| (k.clone(), v.clone())));
    resolve_vars(&decls, &vars)
}

/// Two names differing only in case (`version`, `VERSION`) would both set `SOP_VAR_VERSION`.
fn check_collisions(vars: &BTreeMap<String, String>, errors: &mut Vec<VarError>) {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for name in vars.keys() {
        let env = env_name(name);
        match seen.get(&env) {
            Some(first) => {
                errors.push(VarError::EnvCollision {
                    first: (*first).to_string(),
                    second: name.clone(),
                    env,
                });
            }
            None => {
                seen.insert(env, name);
            }
        }
    }
}

/// A regex error on one line (the crate's message spans several lines with a caret).
pub(crate) fn regex_error(err: &regex::Error) -> String {
    match err {
        regex::Error::Syntax(text) => text
            .lines()
            .filter(|l| l.starts_with("error:"))
            .map(|l| l.trim_start_matches("error:").trim().to_string())
            .next()
            .unwrap_or_else(|| text.clone()),
        regex::Error::CompiledTooBig(limit) => {
            format!("the compiled pattern exceeds {limit} bytes")
        }
        other => other.to_string(),
    }
}
