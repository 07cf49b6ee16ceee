//! From what an operator typed to what the operations layer takes, and from its errors to
//! exit codes.

use std::collections::BTreeMap;

use sop_runtime::ops::OpError;

use crate::{Exit, Fail};

impl From<OpError> for Fail {
    fn from(e: OpError) -> Fail {
        let exit = match &e {
            OpError::UnknownSop { .. }
            | OpError::InvalidSop { .. }
            | OpError::BadVars { .. }
            | OpError::BadInput(_)
            | OpError::NoSuchTarget(_)
            | OpError::Ambiguous { .. }
            | OpError::AmbiguousPrefix { .. } => Exit::BadInput,
            OpError::Cooldown { .. }
            | OpError::Dropped { .. }
            | OpError::NothingWaiting { .. }
            | OpError::Refused(_)
            | OpError::Store(_)
            | OpError::Audit(_)
            | OpError::Home { .. } => Exit::Failed,
        };
        if let OpError::InvalidSop { diagnostics, .. } = &e {
            crate::cmd::print_diagnostics(diagnostics);
        }
        let message = match &e {
            OpError::UnknownSop { hint: None, .. } => {
                format!("{e}\n  = help: run `sop list` to see the SOPs")
            }
            OpError::BadVars { sop, errors } => {
                let lines: Vec<String> = errors
                    .iter()
                    .map(|err| match err.help() {
                        Some(h) => format!("{err}\n    = help: {h}"),
                        None => err.to_string(),
                    })
                    .collect();
                format!("invalid variables for `{sop}`:\n  {}", lines.join("\n  "))
            }
            _ => e.to_string(),
        };
        Fail { exit, message }
    }
}

/// Parses `k=v` pairs from `--var`/`--set`.
pub fn parse_pairs(pairs: &[String], flag: &str) -> Result<BTreeMap<String, String>, Fail> {
    let mut out = BTreeMap::new();
    for p in pairs {
        let Some((k, v)) = p.split_once('=') else {
            return Err(Fail::bad(format!("`{flag} {p}`: expected `name=value`")));
        };
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}
