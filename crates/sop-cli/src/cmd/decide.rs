//! `sop approve`, `reject`, `confirm`, `cancel`: decisions committed to the store from any
//! terminal; the process driving the run notices within its poll interval.

use std::collections::BTreeMap;

use sop_core::run::{Decision, Verb};
use sop_runtime::ops::{decidable, CANCELLABLE};
use sop_runtime::{identity, recovery, Home};

use crate::app::App;
use crate::target::parse_pairs;
use crate::{CmdResult, Exit};

fn decide(
    home: Home,
    target: &str,
    verb: Verb,
    comment: Option<String>,
    set: BTreeMap<String, String>,
) -> CmdResult {
    let app = App::open(home)?;
    let ops = app.ops();
    let (statuses, what) = decidable(verb);
    let id = ops.resolve(target, statuses, what)?;
    let d = Decision {
        verb,
        by: identity::current_user(),
        groups: identity::current_groups(),
        channel: "cli".to_string(),
        comment,
        set,
    };
    let run = ops.decide(&id, &d)?;
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
    let ops = app.ops();
    let id = ops.resolve(target, CANCELLABLE, "active")?;
    let (run, kill) = ops.cancel(&id, &identity::current_user())?;
    recovery::ensure_driven(&app.store, &app.home, &app.exe, &id)?;
    if kill {
        eprintln!("cancel requested for run {id}: its running step is being stopped");
    } else {
        eprintln!("cancelled run {id}; it is now {}", run.status.as_str());
    }
    Ok(Exit::Ok)
}
