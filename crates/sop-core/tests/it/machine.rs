//! Trace tests of the run state machine: inputs and times in, statuses and actions out.

use std::collections::BTreeMap;

use sop_core::run::{
    self, Action, Decision, ExitReport, Happened, NewRun, Refusal, ResumeHow, Run, RunStatus,
    StepStatus, Target, TriggerInfo, Verb,
};
use sop_core::{
    Condition, ExecutionMode, Gate, GateAt, GateKind, Priority, Script, Sop, Step, TimeoutAction,
};

fn step(title: &str, code: Option<&str>) -> Step {
    Step {
        title: title.to_string(),
        scripts: code
            .map(|c| {
                vec![Script {
                    interpreter: "bash".into(),
                    code: c.into(),
                    line: 1,
                }]
            })
            .unwrap_or_default(),
        ..Step::default()
    }
}

fn sop(mode: ExecutionMode, steps: Vec<Step>) -> Sop {
    let number = |v: Vec<Step>| {
        v.into_iter()
            .enumerate()
            .map(|(i, mut s)| {
                s.number = i as u32 + 1;
                s
            })
            .collect()
    };
    Sop {
        name: "t".into(),
        description: "d".into(),
        version: "1".into(),
        priority: Priority::Medium,
        execution_mode: mode,
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
        admission_policy: sop_core::AdmissionPolicy::Parallel,
        max_pending_approvals: 0,
        vars: BTreeMap::new(),
        triggers: vec![],
        gates: vec![],
        steps: number(steps),
        rollback: vec![],
    }
}

fn new(sop: Sop) -> Run {
    run::new_run(
        NewRun {
            id: "r1".into(),
            sop: sop.into(),
            priority: None,
            skip_approval: false,
            forced: false,
            trigger: TriggerInfo {
                kind: "manual".into(),
                by: "alice".into(),
            },
            vars: BTreeMap::new(),
        },
        0,
    )
}

/// Advances after claiming; returns the action.
fn go(run: &mut Run, now: i64) -> Action {
    let mut ev = Vec::new();
    let mut a = run::advance(run, now, &mut ev);
    if a == Action::Claim {
        run::claimed(run, now, &mut ev);
        a = run::advance(run, now, &mut ev);
    }
    a
}

fn exit(run: &mut Run, code: i32, now: i64) {
    let target = run::current_target(run).expect("a step is current");
    let report = ExitReport {
        exit_code: Some(code),
        signal: None,
        timed_out: false,
        cancelled: false,
        duration_ms: 5,
        output: format!("exit {code}"),
        outputs: BTreeMap::new(),
    };
    run::exited(run, &target, report, now, &mut Vec::new());
}

fn decision(verb: Verb, by: &str) -> Decision {
    Decision {
        verb,
        by: by.into(),
        groups: vec![],
        channel: "cli".into(),
        comment: None,
        set: BTreeMap::new(),
        gate: None,
    }
}

fn spawned_number(a: &Action) -> u32 {
    match a {
        Action::Spawn(e) => e.number,
        other => panic!("expected a spawn, got {other:?}"),
    }
}

fn statuses(run: &Run) -> Vec<StepStatus> {
    run.steps.iter().map(|s| s.status).collect()
}

#[test]
fn automatic_run_executes_steps_in_order_and_succeeds() {
    let mut r = new(sop(
        ExecutionMode::Automatic,
        vec![step("a", Some("true")), step("b", Some("true"))],
    ));
    assert_eq!(spawned_number(&go(&mut r, 1)), 1);
    exit(&mut r, 0, 2);
    assert_eq!(spawned_number(&go(&mut r, 3)), 2);
    exit(&mut r, 0, 4);
    assert_eq!(go(&mut r, 5), Action::Finished(RunStatus::Success));
    assert_eq!(statuses(&r), vec![StepStatus::Success, StepStatus::Success]);
    assert_eq!(r.completed_at, Some(5));
}

#[test]
fn supervised_asks_before_the_first_step_and_quorum_counts_distinct_people() {
    let mut s = sop(ExecutionMode::Supervised, vec![step("a", Some("true"))]);
    s.required_approvals = 2;
    let mut r = new(s);
    assert_eq!(
        go(&mut r, 1),
        Action::Wait {
            deadline: Some(100_001)
        }
    );
    assert_eq!(r.status, RunStatus::WaitingApproval);
    let mut ev = Vec::new();
    run::decide(&mut r, &decision(Verb::Approve, "bob"), 2, &mut ev).unwrap();
    assert_eq!(r.status, RunStatus::WaitingApproval, "one of two approvals");
    let again = run::decide(&mut r, &decision(Verb::Approve, "bob"), 3, &mut ev);
    assert!(
        matches!(again, Err(Refusal::AlreadyApproved { .. })),
        "{again:?}"
    );
    run::decide(&mut r, &decision(Verb::Approve, "carol"), 4, &mut ev).unwrap();
    assert_eq!(
        r.status,
        RunStatus::Queued,
        "released runs claim a slot again"
    );
    assert_eq!(spawned_number(&go(&mut r, 5)), 1);
}

#[test]
fn self_approval_and_approver_lists_are_enforced() {
    let mut s = sop(ExecutionMode::Supervised, vec![step("a", Some("true"))]);
    s.allow_self_approval = false;
    s.approvers = vec!["ops".into(), "bob".into()];
    let mut r = new(s);
    go(&mut r, 1);
    let mut ev = Vec::new();
    assert!(matches!(
        run::decide(&mut r, &decision(Verb::Approve, "mallory"), 2, &mut ev),
        Err(Refusal::NotAnApprover { .. })
    ));
    let mut alice = decision(Verb::Approve, "alice");
    alice.groups = vec!["ops".into()];
    assert!(matches!(
        run::decide(&mut r, &alice, 2, &mut ev),
        Err(Refusal::SelfApproval { .. })
    ));
    let mut dave = decision(Verb::Approve, "dave");
    dave.groups = vec!["ops".into()];
    run::decide(&mut r, &dave, 3, &mut ev).unwrap();
    assert_eq!(r.approvals.len(), 1);
    assert_eq!(r.approvals[0].waited_ms, 2);
}

#[test]
fn false_condition_skips_with_reason_and_previous_step_is_visible() {
    let mut b = step("b", Some("true"));
    b.condition = Some(Condition::parse("tests_pass").unwrap());
    let mut c = step("c", Some("true"));
    c.condition = Some(Condition::parse("previous_step == \"skipped\"").unwrap());
    let mut r = new(sop(
        ExecutionMode::Automatic,
        vec![step("a", Some("true")), b, c],
    ));
    go(&mut r, 1);
    exit(&mut r, 0, 2);
    assert_eq!(
        spawned_number(&go(&mut r, 3)),
        3,
        "step 2 skipped, step 3 sees previous_step == skipped"
    );
    assert_eq!(r.steps[1].status, StepStatus::Skipped);
    assert_eq!(
        r.steps[1].reason.as_deref(),
        Some("condition `tests_pass` is false")
    );
}

#[test]
fn step_outputs_become_variables_for_later_conditions() {
    let mut b = step("b", Some("true"));
    b.condition = Some(Condition::parse("artifact == \"dist/app.tar.gz\"").unwrap());
    let mut r = new(sop(
        ExecutionMode::Automatic,
        vec![step("a", Some("true")), b],
    ));
    go(&mut r, 1);
    let target = run::current_target(&r).unwrap();
    let mut outputs = BTreeMap::new();
    outputs.insert("artifact".to_string(), "dist/app.tar.gz".to_string());
    let report = ExitReport {
        exit_code: Some(0),
        signal: None,
        timed_out: false,
        cancelled: false,
        duration_ms: 1,
        output: String::new(),
        outputs,
    };
    run::exited(&mut r, &target, report, 2, &mut Vec::new());
    assert_eq!(spawned_number(&go(&mut r, 3)), 2);
}

#[test]
fn retry_waits_for_its_delay_then_runs_again_with_the_same_key() {
    let mut a = step("a", Some("false"));
    a.retry = 1;
    a.retry_delay_secs = 10;
    let mut r = new(sop(ExecutionMode::Automatic, vec![a]));
    let first = go(&mut r, 0);
    exit(&mut r, 1, 1_000);
    assert_eq!(go(&mut r, 2_000), Action::Sleep { until: 11_000 });
    let second = go(&mut r, 11_000);
    let (Action::Spawn(e1), Action::Spawn(e2)) = (&first, &second) else {
        panic!("{first:?} {second:?}")
    };
    assert_eq!((e1.attempt, e2.attempt), (1, 2));
    assert_eq!(e1.idempotency_key, e2.idempotency_key);
    exit(&mut r, 1, 12_000);
    assert_eq!(go(&mut r, 13_000), Action::Finished(RunStatus::Failure));
    assert_eq!(r.steps[0].attempts, 2);
}

#[test]
fn failure_stops_later_steps_and_runs_rollback() {
    let mut s = sop(
        ExecutionMode::Automatic,
        vec![
            step("a", Some("true")),
            step("b", Some("false")),
            step("c", Some("true")),
        ],
    );
    s.rollback = vec![Step {
        number: 1,
        ..step("undo", Some("true"))
    }];
    let mut r = new(s);
    go(&mut r, 1);
    exit(&mut r, 0, 2);
    go(&mut r, 3);
    exit(&mut r, 2, 4);
    let a = go(&mut r, 5);
    assert!(
        matches!(&a, Action::Spawn(e) if e.target == Target::Step { phase: run::Phase::Rollback, index: 0 }),
        "{a:?}"
    );
    exit(&mut r, 0, 6);
    assert_eq!(go(&mut r, 7), Action::Finished(RunStatus::Failure));
    assert_eq!(
        statuses(&r),
        vec![
            StepStatus::Success,
            StepStatus::Failure,
            StepStatus::Pending
        ]
    );
    assert_eq!(r.rollback[0].status, StepStatus::Success);
}

#[test]
fn continue_on_error_goes_on() {
    let mut b = step("b", Some("false"));
    b.continue_on_error = true;
    let mut r = new(sop(
        ExecutionMode::Automatic,
        vec![b, step("c", Some("true"))],
    ));
    go(&mut r, 1);
    exit(&mut r, 1, 2);
    assert_eq!(spawned_number(&go(&mut r, 3)), 2);
}

#[test]
fn reject_after_a_step_ran_rolls_back_but_before_any_step_does_not() {
    let mut gated = step("b", Some("true"));
    gated.requires_approval = true;
    let mut s = sop(
        ExecutionMode::Automatic,
        vec![step("a", Some("true")), gated],
    );
    s.rollback = vec![Step {
        number: 1,
        ..step("undo", Some("true"))
    }];
    let mut r = new(s.clone());
    go(&mut r, 1);
    exit(&mut r, 0, 2);
    assert!(matches!(go(&mut r, 3), Action::Wait { .. }));
    let mut reject = decision(Verb::Reject, "bob");
    reject.comment = Some("not today".into());
    run::decide(&mut r, &reject, 4, &mut Vec::new()).unwrap();
    assert!(matches!(go(&mut r, 5), Action::Spawn(_)), "rollback runs");
    exit(&mut r, 0, 6);
    assert_eq!(go(&mut r, 7), Action::Finished(RunStatus::Rejected));

    let mut s2 = s;
    s2.execution_mode = ExecutionMode::Supervised;
    let mut r2 = new(s2);
    go(&mut r2, 1);
    run::decide(&mut r2, &decision(Verb::Reject, "bob"), 2, &mut Vec::new()).unwrap();
    assert_eq!(go(&mut r2, 3), Action::Finished(RunStatus::Rejected));
    assert!(r2.rollback.is_empty());
}

#[test]
fn decisions_on_a_gate_that_is_not_waiting_are_refused() {
    let mut r = new(sop(ExecutionMode::Automatic, vec![step("a", Some("true"))]));
    go(&mut r, 1);
    let got = run::decide(&mut r, &decision(Verb::Approve, "bob"), 2, &mut Vec::new());
    assert!(matches!(got, Err(Refusal::NotWaiting { .. })), "{got:?}");
    let got = run::decide(&mut r, &decision(Verb::Confirm, "bob"), 2, &mut Vec::new());
    assert!(matches!(got, Err(Refusal::NotWaiting { .. })), "{got:?}");
}

#[test]
fn manual_steps_pause_in_every_mode_even_with_skip_approval() {
    let mut r = new(sop(
        ExecutionMode::Automatic,
        vec![step("manual", None), step("b", Some("true"))],
    ));
    r.skip_approval = true;
    assert_eq!(go(&mut r, 1), Action::Wait { deadline: None });
    assert_eq!(r.status, RunStatus::WaitingConfirmation);
    let mut d = decision(Verb::Confirm, "bob");
    d.set.insert("ticket".into(), "OPS-1".into());
    run::decide(&mut r, &d, 5, &mut Vec::new()).unwrap();
    assert_eq!(
        r.vars.get("ticket").map(String::as_str),
        Some("OPS-1"),
        "confirm --set sets variables"
    );
    assert_eq!(r.steps[0].status, StepStatus::Success);
    assert_eq!(spawned_number(&go(&mut r, 6)), 2);
}

#[test]
fn step_by_step_asks_before_every_step_and_skip_approval_skips_that() {
    let mut r = new(sop(
        ExecutionMode::StepByStep,
        vec![step("a", Some("true")), step("b", Some("true"))],
    ));
    assert!(matches!(go(&mut r, 1), Action::Wait { .. }));
    run::decide(&mut r, &decision(Verb::Approve, "bob"), 2, &mut Vec::new()).unwrap();
    go(&mut r, 3);
    exit(&mut r, 0, 4);
    assert!(
        matches!(go(&mut r, 5), Action::Wait { .. }),
        "asks again before step 2"
    );

    let mut r2 = new(sop(
        ExecutionMode::StepByStep,
        vec![step("a", Some("true"))],
    ));
    r2.skip_approval = true;
    assert_eq!(spawned_number(&go(&mut r2, 1)), 1);
}

#[test]
fn priority_based_is_supervised_only_for_high_and_critical() {
    let mut s = sop(ExecutionMode::PriorityBased, vec![step("a", Some("true"))]);
    s.priority = Priority::Critical;
    assert!(matches!(go(&mut new(s.clone()), 1), Action::Wait { .. }));
    s.priority = Priority::Low;
    assert!(matches!(go(&mut new(s), 1), Action::Spawn(_)));
}

#[test]
fn approval_deadline_rejects_or_escalates() {
    let mut s = sop(ExecutionMode::Supervised, vec![step("a", Some("true"))]);
    let mut r = new(s.clone());
    go(&mut r, 0);
    assert!(matches!(go(&mut r, 99_999), Action::Wait { .. }));
    assert_eq!(go(&mut r, 100_000), Action::Finished(RunStatus::TimedOut));

    s.approval_timeout_action = TimeoutAction::Escalate;
    let mut r = new(s);
    go(&mut r, 0);
    assert_eq!(
        go(&mut r, 100_000),
        Action::Wait {
            deadline: Some(200_000)
        }
    );
    assert_eq!(
        r.status,
        RunStatus::WaitingApproval,
        "escalation never approves"
    );
}

#[test]
fn verification_gate_failure_fails_the_run_and_approval_gate_pauses() {
    let mut s = sop(ExecutionMode::Automatic, vec![step("a", Some("true"))]);
    s.gates = vec![
        Gate {
            name: "pre_patch".into(),
            at: GateAt::Start,
            kind: GateKind::Approval { required: true },
        },
        Gate {
            name: "post_patch".into(),
            at: GateAt::End,
            kind: GateKind::Verification {
                command: "npm audit".into(),
            },
        },
    ];
    let mut r = new(s);
    assert!(matches!(go(&mut r, 1), Action::Wait { .. }));
    assert_eq!(r.wait.as_ref().unwrap().gate, "gate pre_patch");
    run::decide(&mut r, &decision(Verb::Approve, "bob"), 2, &mut Vec::new()).unwrap();
    go(&mut r, 3);
    exit(&mut r, 0, 4);
    let a = go(&mut r, 5);
    assert!(
        matches!(&a, Action::Spawn(e) if e.scripts[0].code == "npm audit"),
        "{a:?}"
    );
    exit(&mut r, 1, 6);
    assert_eq!(go(&mut r, 7), Action::Finished(RunStatus::Failure));
}

#[test]
fn cancel_while_waiting_ends_the_run_and_while_running_asks_the_owner_to_kill() {
    let mut r = new(sop(
        ExecutionMode::Supervised,
        vec![step("a", Some("true"))],
    ));
    go(&mut r, 1);
    assert_eq!(run::cancel(&mut r, "bob", 2, &mut Vec::new()), Ok(false));
    assert_eq!(go(&mut r, 3), Action::Finished(RunStatus::Cancelled));
    assert!(
        run::cancel(&mut r, "bob", 4, &mut Vec::new()).is_err(),
        "a finished run cannot be cancelled"
    );

    let mut r = new(sop(
        ExecutionMode::Automatic,
        vec![step("a", Some("sleep 100"))],
    ));
    go(&mut r, 1);
    assert_eq!(run::cancel(&mut r, "bob", 2, &mut Vec::new()), Ok(true));
    let target = run::current_target(&r).unwrap();
    let report = ExitReport {
        exit_code: None,
        signal: Some(15),
        timed_out: false,
        cancelled: true,
        duration_ms: 1,
        output: String::new(),
        outputs: BTreeMap::new(),
    };
    run::exited(&mut r, &target, report, 3, &mut Vec::new());
    assert_eq!(go(&mut r, 4), Action::Finished(RunStatus::Cancelled));
    assert_eq!(r.steps[0].status, StepStatus::Cancelled);
}

#[test]
fn interrupted_step_is_never_rerun_silently_and_resume_decides() {
    let mut r = new(sop(
        ExecutionMode::Automatic,
        vec![step("a", Some("true")), step("b", Some("true"))],
    ));
    go(&mut r, 1);
    let mut ev = Vec::new();
    run::interrupt(&mut r, 2, &mut ev);
    assert_eq!(r.status, RunStatus::Interrupted);
    assert_eq!(r.steps[0].status, StepStatus::Interrupted);
    assert!(ev.iter().any(|e| matches!(e, Happened::Interrupted { .. })));
    assert_eq!(
        go(&mut r, 3),
        Action::Interrupted,
        "nothing runs until someone decides"
    );
    let mut skipped = r.clone();
    run::resume(&mut skipped, ResumeHow::Skip, "bob", 4, &mut ev).unwrap();
    assert_eq!(spawned_number(&go(&mut skipped, 5)), 2);
    let mut retried = r.clone();
    run::resume(&mut retried, ResumeHow::Retry, "bob", 4, &mut ev).unwrap();
    let a = go(&mut retried, 5);
    assert!(
        matches!(&a, Action::Spawn(e) if e.number == 1 && e.attempt == 2),
        "{a:?}"
    );
    let mut aborted = r;
    run::resume(&mut aborted, ResumeHow::Abort, "bob", 4, &mut ev).unwrap();
    assert_eq!(go(&mut aborted, 5), Action::Finished(RunStatus::Cancelled));
    assert!(matches!(
        run::resume(&mut aborted, ResumeHow::Retry, "bob", 6, &mut ev),
        Err(Refusal::NotInterrupted { .. })
    ));
}

#[test]
fn expire_applies_only_a_passed_deadline_and_queues_the_rollback() {
    let mut gated = step("b", Some("true"));
    gated.requires_approval = true;
    let mut s = sop(
        ExecutionMode::Automatic,
        vec![step("a", Some("true")), gated],
    );
    s.rollback = vec![Step {
        number: 1,
        ..step("undo", Some("true"))
    }];
    let mut r = new(s);
    go(&mut r, 0);
    exit(&mut r, 0, 1);
    assert!(matches!(
        go(&mut r, 2),
        Action::Wait {
            deadline: Some(100_002)
        }
    ));
    let mut ev = Vec::new();
    assert!(!run::expire(&mut r, 100_001, &mut ev), "not yet");
    assert!(ev.is_empty());
    assert!(run::expire(&mut r, 100_002, &mut ev));
    assert_eq!(
        r.status,
        RunStatus::Queued,
        "rollback needs a driver and a slot"
    );
    assert_eq!(
        r.rollback[0].status,
        StepStatus::Pending,
        "nothing is spawned by expire"
    );
    assert!(matches!(go(&mut r, 100_003), Action::Spawn(_)));
    exit(&mut r, 0, 100_004);
    assert_eq!(go(&mut r, 100_005), Action::Finished(RunStatus::TimedOut));
}

#[test]
fn a_cancel_does_not_stop_the_rollback_it_causes_but_a_second_one_does() {
    let mut s = sop(ExecutionMode::Automatic, vec![step("a", Some("sleep 30"))]);
    s.rollback = vec![
        Step {
            number: 1,
            ..step("undo 1", Some("true"))
        },
        Step {
            number: 2,
            ..step("undo 2", Some("true"))
        },
    ];
    let mut r = new(s);
    go(&mut r, 1);
    assert_eq!(run::cancel(&mut r, "bob", 2, &mut Vec::new()), Ok(true));
    assert!(
        run::cancel_requested(&r),
        "the running main step is to be stopped"
    );
    let target = run::current_target(&r).unwrap();
    let report = ExitReport {
        exit_code: None,
        signal: Some(15),
        timed_out: false,
        cancelled: true,
        duration_ms: 1,
        output: String::new(),
        outputs: BTreeMap::new(),
    };
    run::exited(&mut r, &target, report, 3, &mut Vec::new());
    assert!(
        matches!(go(&mut r, 4), Action::Spawn(_)),
        "rollback step 1 starts"
    );
    assert!(
        !run::cancel_requested(&r),
        "the first cancel does not apply to the rollback"
    );
    exit(&mut r, 0, 5);
    assert!(
        matches!(go(&mut r, 6), Action::Spawn(_)),
        "rollback step 2 starts"
    );
    assert_eq!(
        run::cancel(&mut r, "bob", 7, &mut Vec::new()),
        Ok(true),
        "a second cancel stops the rollback"
    );
    assert!(run::cancel_requested(&r));
    assert!(
        run::cancel(&mut r, "bob", 8, &mut Vec::new()).is_err(),
        "and a third is refused"
    );
}

#[test]
fn a_decision_for_a_gate_the_run_no_longer_waits_at_is_refused() {
    let mut r = new(sop(
        ExecutionMode::StepByStep,
        vec![step("a", Some("true")), step("b", Some("true"))],
    ));
    go(&mut r, 1);
    let mut d = decision(Verb::Approve, "bob");
    d.gate = Some("step 1".into());
    run::decide(&mut r, &d, 2, &mut Vec::new()).unwrap();
    go(&mut r, 3);
    exit(&mut r, 0, 4);
    assert!(matches!(go(&mut r, 5), Action::Wait { .. }));
    let late = run::decide(&mut r, &d, 6, &mut Vec::new());
    assert!(
        matches!(&late, Err(Refusal::WrongGate { waiting, .. }) if waiting == "step 2"),
        "{late:?}"
    );
    assert_eq!(r.approvals.len(), 1, "nothing recorded");
}

#[test]
fn a_reject_while_waiting_queues_the_rollback_for_a_slot() {
    let mut gated = step("b", Some("true"));
    gated.requires_approval = true;
    let mut s = sop(
        ExecutionMode::Automatic,
        vec![step("a", Some("true")), gated],
    );
    s.rollback = vec![Step {
        number: 1,
        ..step("undo", Some("true"))
    }];
    let mut r = new(s);
    go(&mut r, 1);
    exit(&mut r, 0, 2);
    go(&mut r, 3);
    run::decide(&mut r, &decision(Verb::Reject, "bob"), 4, &mut Vec::new()).unwrap();
    assert_eq!(
        r.status,
        RunStatus::Queued,
        "a waiting run held no slot: its rollback claims one"
    );
    let mut ev = Vec::new();
    assert_eq!(run::advance(&mut r, 5, &mut ev), Action::Claim);
}

#[test]
fn a_rejected_rollback_gate_fails_that_step_and_the_rollback_goes_on() {
    let mut s = sop(ExecutionMode::Automatic, vec![step("a", Some("false"))]);
    let mut gated = Step {
        number: 1,
        ..step("undo with approval", Some("true"))
    };
    gated.requires_approval = true;
    s.rollback = vec![
        gated,
        Step {
            number: 2,
            ..step("undo 2", Some("true"))
        },
    ];
    let mut r = new(s);
    go(&mut r, 1);
    exit(&mut r, 1, 2);
    assert!(matches!(go(&mut r, 3), Action::Wait { .. }));
    run::decide(&mut r, &decision(Verb::Reject, "bob"), 4, &mut Vec::new()).unwrap();
    assert_eq!(r.rollback[0].status, StepStatus::Failure);
    assert!(
        matches!(go(&mut r, 5), Action::Spawn(e) if e.number == 2),
        "rollback step 2 still runs"
    );
    exit(&mut r, 0, 6);
    assert_eq!(go(&mut r, 7), Action::Finished(RunStatus::Failure));
}

#[test]
fn huge_manifest_numbers_saturate_instead_of_overflowing() {
    let mut s = sop(ExecutionMode::Supervised, vec![step("a", Some("true"))]);
    s.approval_timeout_secs = u64::MAX;
    let mut r = new(s);
    assert_eq!(
        go(&mut r, 1),
        Action::Wait {
            deadline: Some(i64::MAX)
        }
    );
}

#[test]
fn variables_set_at_a_gate_are_checked_against_the_declared_vars() {
    let mut s = sop(ExecutionMode::Supervised, vec![step("a", Some("true"))]);
    s.vars.insert(
        "ticket".into(),
        sop_core::VarDecl {
            pattern: Some("^OPS-[0-9]+$".into()),
            ..Default::default()
        },
    );
    let mut r = new(s);
    go(&mut r, 1);
    for (k, v) in [("ticket", "nope"), ("undeclared", "x"), ("PATH", "/tmp")] {
        let mut d = decision(Verb::Approve, "bob");
        d.set.insert(k.into(), v.into());
        assert!(
            matches!(
                run::decide(&mut r, &d, 2, &mut Vec::new()),
                Err(Refusal::BadVar(_))
            ),
            "{k}={v}"
        );
    }
    let mut d = decision(Verb::Approve, "bob");
    d.set.insert("ticket".into(), "OPS-7".into());
    run::decide(&mut r, &d, 3, &mut Vec::new()).unwrap();
    assert_eq!(r.vars["ticket"], "OPS-7");
}

#[test]
fn a_held_process_let_go_leaves_its_step_not_started_when_the_run_halts() {
    let mut r = new(sop(
        ExecutionMode::Automatic,
        vec![step("a", Some("true")), step("b", Some("true"))],
    ));
    assert_eq!(spawned_number(&go(&mut r, 1)), 1);
    exit(&mut r, 0, 2);
    let mut ev = Vec::new();
    let Action::Spawn(next) = run::advance(&mut r, 2, &mut ev) else {
        panic!("step 2 starts")
    };
    // The commit recorded the held process; its audit rewrite then failed.
    run::spawned(&mut r, &next.target, 4242, 99, &mut ev);
    run::unspawned(&mut r, &next.target, 1111);
    assert_eq!(r.steps[1].pid, Some(4242), "another pid is left alone");
    run::unspawned(&mut r, &next.target, 4242);
    assert_eq!((r.steps[1].pid, r.steps[1].pid_start_time), (None, None));
    run::halt(&mut r, "cannot write the audit file", 3, &mut ev);
    assert_eq!(r.status, RunStatus::Failure);
    assert_eq!(statuses(&r), [StepStatus::Success, StepStatus::Failure]);
    assert!(r.steps[1]
        .reason
        .as_deref()
        .is_some_and(|why| why.starts_with("not started")));
}
