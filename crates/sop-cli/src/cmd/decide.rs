//! `sop approve`, `reject`, `confirm`, `cancel`: decisions committed to the store from any
//! terminal (the process driving the run notices within its poll interval), or sent to a
//! reachable daemon, which records them with the identity of `SOP_TOKEN`.

use std::collections::BTreeMap;

use serde_json::json;
use sop_core::run::{Decision, RunStatus, Verb};
use sop_runtime::ops::{decidable, CANCELLABLE};
use sop_runtime::{identity, recovery, Home};

use crate::app::App;
use crate::backend::Backend;
use crate::remote::{segment, ApiFail, Client};
use crate::target::parse_pairs;
use crate::{CmdResult, Exit, Fail};

/// A decision's outcome, however it was made: enough for the one line printed.
struct Decided {
    id: String,
    status: String,
    /// The gate still waits for more approvals: `(gate, approvals so far, required)`.
    quorum: Option<(String, usize, u64)>,
}

/// What a person says with a decision.
pub struct Say {
    pub comment: Option<String>,
    pub set: BTreeMap<String, String>,
    /// `--gate`: refuse if the run now waits at another gate.
    pub gate: Option<String>,
}

fn decide(home: Home, target: &str, verb: Verb, say: Say) -> CmdResult {
    let decided = match Backend::open(home)? {
        Backend::Local(app) => decide_local(&app, target, verb, say)?,
        Backend::Remote(client) => decide_remote(&client, target, verb, say)?,
    };
    let done = match verb {
        Verb::Approve => "approved",
        Verb::Reject => "rejected",
        Verb::Confirm => "confirmed",
        Verb::ConfirmFailed => "marked failed",
    };
    let id = &decided.id;
    match decided.quorum {
        Some((gate, have, required)) if verb == Verb::Approve => {
            eprintln!("{done} run {id} at {gate} ({have} of {required} approvals)");
        }
        _ => eprintln!("{done} run {id}; it is now {}", decided.status),
    }
    Ok(Exit::Ok)
}

fn decide_local(app: &App, target: &str, verb: Verb, say: Say) -> Result<Decided, Fail> {
    let ops = app.ops();
    let (statuses, what) = decidable(verb);
    let id = ops.resolve(target, statuses, what)?;
    let d = Decision {
        verb,
        by: identity::current_user(),
        groups: identity::current_groups(),
        channel: "cli".to_string(),
        comment: say.comment,
        set: say.set,
        gate: say.gate,
    };
    let run = ops.decide(&id, &d)?;
    recovery::ensure_driven(&app.store, &app.home, &app.exe, &id)?;
    Ok(Decided {
        id,
        status: run.status.as_str().to_string(),
        quorum: run
            .wait
            .map(|w| (w.gate, w.approved_by.len(), u64::from(w.required))),
    })
}

fn decide_remote(client: &Client, target: &str, verb: Verb, say: Say) -> Result<Decided, Fail> {
    let Say { comment, set, gate } = say;
    let (statuses, what) = decidable(verb);
    let id = client.resolve(target, statuses, what)?;
    let by_sop = !id.starts_with(target);
    let (path, body) = match verb {
        Verb::Approve if by_sop => (
            "/api/sop/approve".to_string(),
            json!({"sop": target, "run_id": id, "comment": comment, "set": set, "gate": gate}),
        ),
        Verb::Approve => (
            format!("/api/runs/{}/approve", segment(&id)),
            json!({"comment": comment, "set": set, "gate": gate}),
        ),
        Verb::Reject => (
            format!("/api/runs/{}/reject", segment(&id)),
            json!({"reason": comment.unwrap_or_default(), "gate": gate}),
        ),
        Verb::Confirm | Verb::ConfirmFailed => (
            format!("/api/runs/{}/confirm", segment(&id)),
            json!({"set": set, "failed": verb == Verb::ConfirmFailed, "comment": comment, "gate": gate}),
        ),
    };
    let answer = client.post(&path, &body).map_err(refusal)?;
    let status = answer["status"].as_str().unwrap_or_default().to_string();
    // Still waiting after an approval: the quorum is not reached yet.
    let quorum = if status == RunStatus::WaitingApproval.as_str() {
        let doc = client.document(&id)?;
        let w = &doc["waiting"];
        w.is_object().then(|| {
            (
                w["gate"].as_str().unwrap_or_default().to_string(),
                w["approved_by"].as_array().map_or(0, Vec::len),
                w["required"].as_u64().unwrap_or(1),
            )
        })
    } else {
        None
    };
    Ok(Decided { id, status, quorum })
}

/// A decision the daemon refused for a bad `--set` variable is a refused decision (exit 1),
/// as in the local path; other errors map as usual.
fn refusal(e: ApiFail) -> Fail {
    if e.status == 422 {
        return Fail::failed(e.message);
    }
    e.into()
}

pub fn approve(
    home: Home,
    target: &str,
    comment: Option<String>,
    set: &[String],
    gate: Option<String>,
) -> CmdResult {
    decide(
        home,
        target,
        Verb::Approve,
        Say {
            comment,
            set: parse_pairs(set, "--set")?,
            gate,
        },
    )
}

pub fn reject(home: Home, target: &str, reason: String, gate: Option<String>) -> CmdResult {
    decide(
        home,
        target,
        Verb::Reject,
        Say {
            comment: Some(reason),
            set: BTreeMap::new(),
            gate,
        },
    )
}

pub fn confirm(
    home: Home,
    target: &str,
    set: &[String],
    failed: bool,
    comment: Option<String>,
    gate: Option<String>,
) -> CmdResult {
    let verb = if failed {
        Verb::ConfirmFailed
    } else {
        Verb::Confirm
    };
    decide(
        home,
        target,
        verb,
        Say {
            comment,
            set: parse_pairs(set, "--set")?,
            gate,
        },
    )
}

pub fn cancel(home: Home, target: &str) -> CmdResult {
    let (id, status, stopping) = match Backend::open(home)? {
        Backend::Local(app) => {
            let ops = app.ops();
            let id = ops.resolve(target, CANCELLABLE, "active")?;
            let (run, kill) = ops.cancel(&id, &identity::current_user())?;
            recovery::ensure_driven(&app.store, &app.home, &app.exe, &id)?;
            (id, run.status, kill)
        }
        Backend::Remote(client) => {
            let id = client.resolve(target, CANCELLABLE, "active")?;
            let answer = client.post(&format!("/api/runs/{}/cancel", segment(&id)), &json!({}))?;
            let status = answer["status"]
                .as_str()
                .and_then(RunStatus::parse)
                .unwrap_or(RunStatus::Cancelled);
            // Not ended yet: the driver is stopping the running step.
            (id, status, !status.is_terminal())
        }
    };
    if stopping {
        eprintln!("cancel requested for run {id}: its running step is being stopped");
    } else {
        eprintln!("cancelled run {id}; it is now {}", status.as_str());
    }
    Ok(Exit::Ok)
}
