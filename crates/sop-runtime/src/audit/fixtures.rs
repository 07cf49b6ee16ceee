//! Runs of several shapes for the audit tests, built from a parsed SOP and set by hand.

use std::fmt::Write as _;
use std::sync::Arc;

use sop_core::run::{
    new_run, ApprovalRecord, DecisionKind, NewRun, Phase, Run, RunStatus, StepRecord, StepStatus,
    TriggerInfo, Wait, WaitKind,
};
use sop_core::{parse_sop, Sop, SopFiles, TimeoutAction};

pub(super) const T0: i64 = 1_771_000_000_000;

fn sop(steps: usize) -> Arc<Sop> {
    let toml = "[sop]\nname = \"deploy\"\ndescription = \"d\"\nversion = \"1.2.3\"\n\n\
                [vars]\ntoken = { secret = true }\nwho = { default = \"x\" }\n";
    let mut md = String::from("# deploy\n\n## Steps\n\n");
    for i in 1..=steps {
        let _ = write!(md, "{i}. **Step {i}**\n   ```bash\n   true\n   ```\n\n");
    }
    let files = SopFiles {
        dir_name: "deploy",
        toml_path: "SOP.toml",
        toml: Some(toml.as_bytes()),
        md_path: "SOP.md",
        md: Some(md.as_bytes()),
    };
    let (sop, diags) = parse_sop(&files);
    Arc::new(sop.unwrap_or_else(|| panic!("{diags:?}")))
}

/// A queued run of `steps` steps, with a secret and a plain variable.
pub(super) fn queued(id: &str, steps: usize) -> Run {
    new_run(
        NewRun {
            id: id.to_string(),
            sop: sop(steps),
            priority: None,
            skip_approval: false,
            forced: false,
            trigger: TriggerInfo {
                kind: "manual".into(),
                by: "alice".into(),
            },
            vars: [
                ("token".to_string(), "hunter2".to_string()),
                ("who".to_string(), "w\"orld\u{1}".to_string()),
            ]
            .into(),
        },
        T0,
    )
}

/// The step record in a slot, to change.
pub(super) fn step(run: &mut Run, i: usize) -> &mut StepRecord {
    Arc::make_mut(&mut run.steps[i])
}

/// Step `i` ended with `status` after `attempts` attempts.
pub(super) fn finish(run: &mut Run, i: usize, status: StepStatus, output: &str) {
    let at = T0 + 1_000 * i as i64;
    let s = step(run, i);
    s.status = status;
    s.started_at = Some(at);
    s.completed_at = Some(at + 250);
    s.duration_ms = Some(250);
    s.exit_code = Some(i32::from(status != StepStatus::Success));
    s.output = output.to_string();
    s.attempts += 1;
}

/// A running run of `steps` steps, all of them succeeded.
pub(super) fn moving(id: &str, steps: usize) -> Run {
    let mut run = queued(id, steps);
    run.status = RunStatus::Running;
    run.started_at = Some(T0 + 10);
    run.queue_wait_ms = Some(10);
    for i in 0..steps {
        finish(&mut run, i, StepStatus::Success, "ok\n");
    }
    run
}

fn approval(gate: &str, decision: DecisionKind, by: &str, comment: Option<&str>) -> ApprovalRecord {
    ApprovalRecord {
        gate: gate.to_string(),
        decision,
        by: by.to_string(),
        channel: "cli".to_string(),
        at: T0 + 5_000,
        comment: comment.map(str::to_string),
        waited_ms: 1_500,
    }
}

fn record(number: u32, title: &str, status: StepStatus) -> Arc<StepRecord> {
    Arc::new(StepRecord {
        number,
        title: title.to_string(),
        status,
        started_at: Some(T0 + 7_000),
        output: "checked".to_string(),
        attempts: 1,
        ..StepRecord::default()
    })
}

/// Runs of every shape the document has, by name.
pub(super) fn shapes() -> Vec<(&'static str, Run)> {
    let queued_run = queued("r-queued", 3);

    let mut quorum = queued("r-quorum", 3);
    quorum.status = RunStatus::WaitingApproval;
    quorum.started_at = Some(T0 + 10);
    finish(
        &mut quorum,
        0,
        StepStatus::Success,
        "line 1\nline \"2\"\t\u{7}é ✓\r\n\\done",
    );
    {
        let sop = Arc::make_mut(&mut quorum.sop);
        sop.approvers = vec!["alice".into(), "bob".into(), "carol".into()];
        sop.allow_self_approval = false;
    }
    quorum.wait = Some(Wait {
        gate: "step 2".into(),
        kind: WaitKind::Approval,
        since: T0 + 3_000,
        deadline: Some(T0 + 3_603_000),
        approved_by: vec!["alice".into()],
        required: 2,
    });
    quorum.approvals = vec![approval(
        "step 2",
        DecisionKind::Approved,
        "alice",
        Some("lgtm \"really\"\nship it"),
    )];

    let mut confirm = queued("r-confirm", 2);
    confirm.status = RunStatus::WaitingConfirmation;
    confirm.started_at = Some(T0 + 10);
    Arc::make_mut(&mut confirm.sop).approval_timeout_action = TimeoutAction::Escalate;
    confirm.wait = Some(Wait {
        gate: "step 1".into(),
        kind: WaitKind::Confirmation,
        since: T0 + 3_000,
        deadline: None,
        approved_by: Vec::new(),
        required: 1,
    });
    confirm.approvals = vec![
        approval("start", DecisionKind::Escalated, "clock", None),
        approval("start", DecisionKind::Approved, "bob", None),
    ];

    let mut rollback = queued("r-rollback", 4);
    rollback.status = RunStatus::Running;
    rollback.started_at = Some(T0 + 10);
    rollback.phase = Phase::Rollback;
    rollback.outcome = Some(RunStatus::Failure);
    rollback.error = Some("step 2 `Step 2` failed (exit code 1)".into());
    finish(&mut rollback, 0, StepStatus::Success, "");
    finish(&mut rollback, 1, StepStatus::Failure, "boom");
    step(&mut rollback, 1).reason = Some("exit code 1".into());
    finish(&mut rollback, 2, StepStatus::TimedOut, "");
    rollback.rollback = vec![
        record(1, "Undo", StepStatus::Success),
        record(2, "Undo more", StepStatus::Running),
    ];
    Arc::make_mut(&mut rollback.rollback[1]).pid = Some(4242);

    let mut gates = moving("r-gates", 2);
    gates.gates.insert(
        "post_patch".into(),
        record(0, "post_patch", StepStatus::Success),
    );
    gates.gates.insert(
        "pre \"patch\"\\".into(),
        record(0, "pre", StepStatus::Running),
    );

    let mut done = moving("r-done", 6);
    done.status = RunStatus::Success;
    done.completed_at = Some(T0 + 60_000);
    done.skip_approval = true;
    done.forced = true;
    finish(&mut done, 1, StepStatus::Skipped, "");
    step(&mut done, 1).reason = Some("condition `x` is false".into());
    finish(&mut done, 2, StepStatus::Interrupted, "");
    finish(&mut done, 3, StepStatus::Cancelled, "");
    done.approvals = vec![
        approval("start", DecisionKind::Approved, "bob", Some("")),
        approval("step 3", DecisionKind::Rejected, "carol", None),
        approval("step 4", DecisionKind::ConfirmedFailed, "dave", Some("no")),
        approval("step 5", DecisionKind::TimedOut, "clock", None),
        approval("step 6", DecisionKind::Escalated, "clock", None),
    ];

    let mut odd = queued("r-odd", 1);
    odd.status = RunStatus::Interrupted;
    odd.started_at = Some(i64::MAX);
    odd.vars.clear();
    odd.trigger.kind = "webhook".into();

    vec![
        ("queued", queued_run),
        ("waiting with quorum and deadline", quorum),
        ("waiting for confirmation", confirm),
        ("rollback", rollback),
        ("gates", gates),
        ("completed", done),
        ("odd", odd),
    ]
}
