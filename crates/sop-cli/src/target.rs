//! Resolving what an operator typed (`<sop|run>`) to one run.

use sop_core::run::RunStatus;
use sop_runtime::clock::rfc3339;
use sop_store::{RunFilter, Store};

use crate::Fail;

/// The run named by `target`: a run id (or a unique prefix of one), or a SOP name with
/// exactly one run in one of `statuses`.
pub fn resolve(
    store: &dyn Store,
    target: &str,
    statuses: &[RunStatus],
    what: &str,
) -> Result<String, Fail> {
    let ids = store.find_run_ids(target)?;
    if ids.iter().any(|i| i == target) {
        return Ok(target.to_string());
    }
    let runs = store.list_runs(&RunFilter {
        sop: Some(target.to_string()),
        statuses: statuses.to_vec(),
        limit: Some(50),
    })?;
    match (runs.len(), ids.len()) {
        (1, _) => Ok(runs[0].id.clone()),
        (0, 1) => Ok(ids[0].clone()),
        (0, 0) => {
            let known = !store
                .list_runs(&RunFilter {
                    sop: Some(target.to_string()),
                    statuses: vec![],
                    limit: Some(1),
                })?
                .is_empty();
            if known {
                Err(Fail::failed(format!("no run of `{target}` is {what}")))
            } else {
                Err(Fail::bad(format!(
                    "`{target}` is neither a run id nor a SOP with runs"
                )))
            }
        }
        (0, _) => Err(Fail::bad(format!(
            "run id prefix `{target}` is ambiguous: {}",
            ids.join(", ")
        ))),
        _ => {
            let list: Vec<String> = runs
                .iter()
                .map(|r| {
                    format!(
                        "  {}  {}  created {}",
                        r.id,
                        r.status.as_str(),
                        rfc3339(r.created_at)
                    )
                })
                .collect();
            Err(Fail::bad(format!(
                "{} runs of `{target}` are {what}; name one by its run id:\n{}",
                runs.len(),
                list.join("\n")
            )))
        }
    }
}

/// Parses `k=v` pairs from `--var`/`--set`.
pub fn parse_pairs(
    pairs: &[String],
    flag: &str,
) -> Result<std::collections::BTreeMap<String, String>, Fail> {
    let mut out = std::collections::BTreeMap::new();
    for p in pairs {
        let Some((k, v)) = p.split_once('=') else {
            return Err(Fail::bad(format!("`{flag} {p}`: expected `name=value`")));
        };
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}
