//! Commands that read SOP files: `list`, `show`, `validate`.

use serde_json::json;
use sop_core::{Diagnostic, Sop};
use sop_runtime::loader::{self, Loaded};
use sop_runtime::Home;

use crate::{CmdResult, Exit, Fail};

/// Loads one SOP by name; its warnings are printed, its errors end the command (exit 2).
pub fn load_checked(home: &Home, name: &str) -> Result<std::sync::Arc<Sop>, Fail> {
    let (sop, warnings) = sop_runtime::ops::load_sop(home, name)?;
    print_diagnostics(&warnings);
    Ok(sop)
}

pub fn print_diagnostics(diags: &[Diagnostic]) {
    for d in diags {
        eprintln!("{}", d.render());
    }
}

fn load_all(home: &Home) -> Result<Vec<Loaded>, Fail> {
    loader::load_all(home)
        .map_err(|e| Fail::failed(format!("cannot read `{}`: {e}", home.sops_dir().display())))
}

pub fn list(home: &Home, json: bool) -> CmdResult {
    let loaded = load_all(home)?;
    let sops: Vec<&Sop> = loaded.iter().filter_map(|l| l.sop.as_ref()).collect();
    if json {
        let rows: Vec<_> = sops
            .iter()
            .map(|s| {
                json!({"name": s.name, "description": s.description, "version": s.version, "priority": s.priority.as_str(),
                       "execution_mode": s.execution_mode.as_str(), "steps": s.steps.len(),
                       "triggers": s.triggers.iter().map(sop_core::Trigger::kind).collect::<Vec<_>>()})
            })
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
    } else {
        if sops.is_empty() {
            eprintln!(
                "no SOPs in `{}` (create one with `sop init`)",
                home.sops_dir().display()
            );
        }
        for s in &sops {
            outln!(
                "{:<24} {:<9} {:<15} {}",
                s.name,
                s.priority.as_str(),
                s.execution_mode.as_str(),
                s.description
            );
        }
    }
    let broken: Vec<&str> = loaded
        .iter()
        .filter(|l| l.has_errors())
        .map(|l| l.dir_name.as_str())
        .collect();
    if !broken.is_empty() {
        eprintln!(
            "warning: {} SOP(s) with errors not listed: {} (see `sop validate`)",
            broken.len(),
            broken.join(", ")
        );
    }
    Ok(Exit::Ok)
}

pub fn show(home: &Home, name: &str, json: bool) -> CmdResult {
    let sop = load_checked(home, name)?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&sop.redacted()).unwrap_or_default()
        );
        return Ok(Exit::Ok);
    }
    outln!("{} {} — {}", sop.name, sop.version, sop.description);
    outln!(
        "priority {}, mode {}, cooldown {}s, max_concurrent {}, step timeout {}s",
        sop.priority.as_str(),
        sop.execution_mode.as_str(),
        sop.cooldown_secs,
        sop.max_concurrent,
        sop.timeout_secs
    );
    let approvers = if sop.approvers.is_empty() {
        "anyone".to_string()
    } else {
        sop.approvers.join(", ")
    };
    outln!(
        "approvals: {} by {approvers}, self-approval {}, timeout {}s then {:?}",
        sop.required_approvals,
        if sop.allow_self_approval {
            "allowed"
        } else {
            "refused"
        },
        sop.approval_timeout_secs,
        sop.approval_timeout_action
    );
    if !sop.vars.is_empty() {
        outln!("\nvars:");
        for (n, d) in &sop.vars {
            let mut bits = Vec::new();
            if d.required {
                bits.push("required".to_string());
            }
            if let Some(p) = &d.pattern {
                bits.push(format!("pattern {p}"));
            }
            if let Some(def) = &d.default {
                bits.push(format!("default {}", if d.secret { "***" } else { def }));
            }
            if d.secret {
                bits.push("secret".to_string());
            }
            outln!(
                "  {n:<20} {}{}",
                bits.join(", "),
                d.description
                    .as_deref()
                    .map_or_else(String::new, |t| format!(" — {t}"))
            );
        }
    }
    if !sop.triggers.is_empty() {
        outln!("\ntriggers:");
        for t in &sop.triggers {
            outln!("  {}", serde_json::to_string(t).unwrap_or_default());
        }
    }
    if !sop.gates.is_empty() {
        outln!("\ngates:");
        for g in &sop.gates {
            outln!("  {:<16} {:?} {:?}", g.name, g.at, g.kind);
        }
    }
    for (heading, steps) in [("steps", &sop.steps), ("rollback", &sop.rollback)] {
        if steps.is_empty() {
            continue;
        }
        outln!("\n{heading}:");
        for s in steps {
            let mut notes = Vec::new();
            if let Some(c) = &s.condition {
                notes.push(format!("if {}", c.source()));
            }
            if s.requires_approval {
                notes.push("requires approval".to_string());
            }
            if s.is_manual() {
                notes.push("manual".to_string());
            }
            if s.retry > 0 {
                notes.push(format!("retry {}", s.retry));
            }
            if s.continue_on_error {
                notes.push("continue on error".to_string());
            }
            if s.idempotent {
                notes.push("idempotent".to_string());
            }
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!("  [{}]", notes.join(", "))
            };
            outln!("  {:>2}. {}{notes}", s.number, s.title);
        }
    }
    Ok(Exit::Ok)
}

pub fn validate(home: &Home, names: &[String], json: bool) -> CmdResult {
    // Names, not paths: every file read stays under the home's `sops/` (SPEC §9).
    if let Some(path) = names
        .iter()
        .find(|n| n.is_empty() || n.contains('/') || n.starts_with('.'))
    {
        return Err(Fail::bad(format!(
            "`{path}` is not a SOP name: `sop validate` takes names of directories under `sops/`\n  = help: for SOPs in another home, `sop --home DIR validate`"
        )));
    }
    let loaded: Vec<Loaded> = if names.is_empty() {
        load_all(home)?
    } else {
        names.iter().map(|n| loader::load_one(home, n)).collect()
    };
    let errors: usize = loaded
        .iter()
        .map(|l| l.diagnostics.iter().filter(|d| d.is_error()).count())
        .sum();
    let warnings: usize = loaded
        .iter()
        .map(|l| l.diagnostics.iter().filter(|d| !d.is_error()).count())
        .sum();
    if json {
        let rows: Vec<_> = loaded
            .iter()
            .map(
                |l| json!({"sop": l.dir_name, "ok": !l.has_errors(), "diagnostics": l.diagnostics}),
            )
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
    } else {
        for l in &loaded {
            print_diagnostics(&l.diagnostics);
        }
        let ok = loaded.iter().filter(|l| !l.has_errors()).count();
        eprintln!(
            "{ok} of {} SOP(s) valid: {errors} error(s), {warnings} warning(s)",
            loaded.len()
        );
    }
    Ok(if errors > 0 { Exit::BadInput } else { Exit::Ok })
}

/// `sop audit verify`: the ledger's hash chain and the audit files against the store (this
/// home's store, read directly, whether or not a daemon runs; opened without recovery, so
/// the check writes nothing).
pub fn verify(home: &Home, json: bool) -> CmdResult {
    let config = crate::app::load_config(home)?;
    let store = crate::app::open_store(&home.db_path(), &config)?;
    let ops = sop_runtime::ops::Ops {
        store: &store,
        home,
        config: &config,
        served: false,
        settle: None,
    };
    let check = ops.verify_audit()?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&check).unwrap_or_default()
        );
    } else {
        match (&check.ledger_broken_at, &check.head) {
            (Some(seq), _) => outln!(
                "ledger: {} events; the hash chain breaks at event {seq}: it or one before it was altered, removed or moved",
                check.events
            ),
            (None, Some((seq, hash))) => outln!(
                "ledger: {} events, hash chain intact; head: event {seq} {hash} (note it: a later head must follow from it)",
                check.events
            ),
            (None, None) => outln!("ledger: no events yet"),
        }
        outln!(
            "audit files: {} read; {} missing, {} altered, {} unknown",
            check.files,
            check.missing.len(),
            check.altered.len(),
            check.unknown.len()
        );
        for p in &check.missing {
            outln!("  missing: {} (run {}): {}", p.path, p.run_id, p.why);
        }
        for p in &check.altered {
            outln!("  altered: {} (run {}): {}", p.path, p.run_id, p.why);
        }
        for path in &check.unknown {
            outln!("  unknown: {path} (no run names it)");
        }
        for p in &check.stale {
            outln!(
                "  stale (not a failure): {} (run {}): {}",
                p.path,
                p.run_id,
                p.why
            );
        }
    }
    Ok(if check.ok() { Exit::Ok } else { Exit::Failed })
}
