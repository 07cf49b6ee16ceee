//! Hand-built SOPs and runs, and small drivers that move a run through the store the way
//! the engine does (a pure `sop-core` change inside `update_run`).

use std::collections::BTreeMap;

use sop_core::run::{self, Action, ExitReport, Millis, NewRun, Run, TriggerInfo};
use sop_core::{AdmissionPolicy, ExecutionMode, Priority, Script, Sop, Step, TimeoutAction};
use sop_store::{Created, Store};

/// A SOP named `name` with one shell step, automatic mode, no limits beyond the defaults.
pub fn sop(name: &str) -> Sop {
    Sop {
        name: name.into(),
        description: "story".into(),
        version: "1".into(),
        priority: Priority::Medium,
        execution_mode: ExecutionMode::Automatic,
        cooldown_secs: 0,
        max_concurrent: 1,
        timeout_secs: 60,
        approval_timeout_secs: 100,
        approval_timeout_action: TimeoutAction::Reject,
        approvers: vec![],
        required_approvals: 1,
        allow_self_approval: true,
        workdir: ".".into(),
        shell: "bash".into(),
        admission_policy: AdmissionPolicy::Parallel,
        max_pending_approvals: 0,
        vars: BTreeMap::new(),
        triggers: vec![],
        gates: vec![],
        steps: vec![Step {
            number: 1,
            title: "go".into(),
            scripts: vec![Script {
                interpreter: "bash".into(),
                code: "true".into(),
                line: 1,
            }],
            ..Step::default()
        }],
        rollback: vec![],
    }
}

/// A queued run of `sop` created at `now`.
pub fn new_run(id: &str, sop: Sop, priority: Option<Priority>, now: Millis) -> Run {
    run::new_run(
        NewRun {
            id: id.into(),
            sop: sop.into(),
            priority,
            skip_approval: false,
            forced: false,
            trigger: TriggerInfo {
                kind: "manual".into(),
                by: "alice".into(),
            },
            vars: BTreeMap::new(),
        },
        now,
    )
}

/// Creates a run that must be accepted.
pub fn create(store: &dyn Store, run: Run, now: Millis) -> Run {
    let id = run.id.clone();
    match store
        .create_run(run, &format!("logs/{id}.json"), None, now)
        .expect("create_run")
    {
        Created::New(run) => *run,
        other => panic!("run {id} was not created: {other:?}"),
    }
}

/// Shorthand: creates a queued run of `sop` with the SOP's priority.
pub fn queued(store: &dyn Store, id: &str, sop: &Sop, now: Millis) -> Run {
    create(store, new_run(id, sop.clone(), None, now), now)
}

/// Claims a run that must be allowed to start.
pub fn claim(store: &dyn Store, id: &str, workers: u32, now: Millis) {
    store
        .claim(id, workers, now)
        .expect("claim")
        .unwrap_or_else(|b| panic!("claim of {id} blocked: {b:?}"));
}

/// `advance` inside a store transaction (what the engine does first in its loop).
pub fn advance(store: &dyn Store, id: &str, now: Millis) -> Action {
    let mut action = Action::Claim;
    store
        .update_run(id, now, &mut |r, ev| {
            action = run::advance(r, now, ev);
            Ok(())
        })
        .expect("update_run")
        .expect("advance is never refused");
    action
}

/// Claims and advances to the first step's spawn: the run has now executed a step.
pub fn start_step(store: &dyn Store, id: &str, now: Millis) {
    claim(store, id, 4, now);
    match advance(store, id, now) {
        Action::Spawn(_) => {}
        other => panic!("expected a spawn, got {other:?}"),
    }
}

/// Records the current step's exit with `code` and advances.
pub fn finish_step(store: &dyn Store, id: &str, code: i32, now: Millis) -> Action {
    store
        .update_run(id, now, &mut |r, ev| {
            let target = run::current_target(r).expect("a step is current");
            run::spawned(r, &target, 4242, 1, ev);
            let report = ExitReport {
                exit_code: Some(code),
                signal: None,
                timed_out: false,
                cancelled: false,
                duration_ms: 3,
                output: String::new(),
                outputs: BTreeMap::new(),
            };
            run::exited(r, &target, report, now, ev);
            Ok(())
        })
        .expect("update_run")
        .expect("exit is never refused");
    advance(store, id, now)
}

/// Cancels a run that is not executing a step (it ends at once).
pub fn cancel(store: &dyn Store, id: &str, now: Millis) {
    store
        .update_run(id, now, &mut |r, ev| {
            run::cancel(r, "bob", now, ev)?;
            Ok(())
        })
        .expect("update_run")
        .expect("cancel accepted");
}

/// Number of ledger events of a run.
pub fn event_count(store: &dyn Store, id: &str) -> usize {
    store.events_since(id, 0).expect("events").len()
}

/// Builder conveniences for the stories.
pub trait SopExt {
    fn with_max(self, max: u32) -> Self;
    fn with(self, change: impl FnOnce(&mut Sop)) -> Self;
}

impl SopExt for Sop {
    fn with_max(mut self, max: u32) -> Self {
        self.max_concurrent = max;
        self
    }

    fn with(mut self, change: impl FnOnce(&mut Sop)) -> Self {
        change(&mut self);
        self
    }
}

/// Approves the gate a run waits at, as `bob` from the CLI.
pub fn approve(store: &dyn Store, id: &str, now: Millis) {
    decide(store, id, run::Verb::Approve, now);
}

/// Confirms the manual step a run waits at, as `bob` from the CLI.
pub fn confirm(store: &dyn Store, id: &str, now: Millis) {
    decide(store, id, run::Verb::Confirm, now);
}

fn decide(store: &dyn Store, id: &str, verb: run::Verb, now: Millis) {
    let d = run::Decision {
        verb,
        by: "bob".into(),
        groups: vec![],
        channel: "cli".into(),
        comment: None,
        set: BTreeMap::new(),
        gate: None,
    };
    store
        .update_run(id, now, &mut |r, ev| run::decide(r, &d, now, ev))
        .expect("update_run")
        .expect("decided");
}
