//! `sop approve`, `reject`, `confirm`, `cancel`: decisions committed to the store from any
//! terminal; the process driving the run notices within its poll interval.

use std::collections::BTreeMap;

use sop_core::run::{self, Decision, RunStatus, Verb};
use sop_runtime::clock::now;
use sop_runtime::{audit, identity, recovery, Home};
use sop_store::Store;

use crate::app::App;
use crate::target::{parse_pairs, resolve};
use crate::{CmdResult, Exit, Fail};

fn decide(
    home: Home,
    target: &str,
    verb: Verb,
    comment: Option<String>,
    set: BTreeMap<String, String>,
) -> CmdResult {
    let app = App::open(home)?;
    let (statuses, what) = match verb {
        Verb::Approve | Verb::Reject => (
            vec![RunStatus::WaitingApproval, RunStatus::WaitingConfirmation],
            "waiting for a decision",
        ),
        Verb::Confirm | Verb::ConfirmFailed => (
            vec![RunStatus::WaitingConfirmation],
            "waiting for confirmation",
        ),
    };
    let id = resolve(app.store(), target, &statuses, what)?;
    let d = Decision {
        verb,
        by: identity::current_user(),
        groups: identity::current_groups(),
        channel: "cli".to_string(),
        comment,
        set,
    };
    let t = now();
    let run = app
        .store
        .update_run(&id, t, &mut |r, ev| run::decide(r, &d, t, ev))?
        .map_err(|refusal| Fail::failed(refusal.to_string()))?;
    audit::write(&app.store, &app.home, &id)
        .map_err(|e| Fail::failed(format!("cannot write the audit file: {e}")))?;
    recovery::ensure_driven(&app.store, &app.home, &app.exe, &id)?;
    let done = match verb {
        Verb::Approve => "approved",
        Verb::Reject => "rejected",
        Verb::Confirm => "confirmed",
        Verb::ConfirmFailed => "marked failed",
    };
    match &run.wait {
        Some(w) if verb == Verb::Approve => {
            eprintln!(
                "{done} run {id} at {} ({} of {} approvals)",
                w.gate,
                w.approved_by.len(),
                w.required
            );
        }
        _ => eprintln!("{done} run {id}; it is now {}", run.status.as_str()),
    }
    Ok(Exit::Ok)
}

pub fn approve(home: Home, target: &str, comment: Option<String>, set: &[String]) -> CmdResult {
    decide(
        home,
        target,
        Verb::Approve,
        comment,
        parse_pairs(set, "--set")?,
    )
}

pub fn reject(home: Home, target: &str, reason: String) -> CmdResult {
    decide(home, target, Verb::Reject, Some(reason), BTreeMap::new())
}

pub fn confirm(
    home: Home,
    target: &str,
    set: &[String],
    failed: bool,
    comment: Option<String>,
) -> CmdResult {
    let verb = if failed {
        Verb::ConfirmFailed
    } else {
        Verb::Confirm
    };
    decide(home, target, verb, comment, parse_pairs(set, "--set")?)
}

pub fn cancel(home: Home, target: &str) -> CmdResult {
    let app = App::open(home)?;
    let active = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::WaitingApproval,
        RunStatus::WaitingConfirmation,
        RunStatus::Interrupted,
    ];
    let id = resolve(app.store(), target, &active, "active")?;
    let by = identity::current_user();
    let t = now();
    let mut kill = false;
    let run = app
        .store
        .update_run(&id, t, &mut |r, ev| {
            kill = run::cancel(r, &by, t, ev)?;
            Ok(())
        })?
        .map_err(|refusal| Fail::failed(refusal.to_string()))?;
    audit::write(&app.store, &app.home, &id)
        .map_err(|e| Fail::failed(format!("cannot write the audit file: {e}")))?;
    recovery::ensure_driven(&app.store, &app.home, &app.exe, &id)?;
    if kill {
        eprintln!("cancel requested for run {id}: its running step is being stopped");
    } else {
        eprintln!("cancelled run {id}; it is now {}", run.status.as_str());
    }
    Ok(Exit::Ok)
}
