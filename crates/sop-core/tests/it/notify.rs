//! Which ledger events make a notice, what it says, and which channels want it (tables).

use sop_core::config::{NotifyEntry, NotifyEvent, NotifyFormat, RunnerConfig};
use sop_core::notify::{notice_of, text, wants};
use sop_core::run::{DecisionKind, Happened, RunStatus, StepStatus, WaitKind};

#[test]
fn events_that_call_for_a_person_make_notices() {
    let waiting = Happened::Waiting {
        gate: "step 2".into(),
        kind: WaitKind::Approval,
        deadline: Some(99),
    };
    let confirm = Happened::Waiting {
        gate: "step 3".into(),
        kind: WaitKind::Confirmation,
        deadline: None,
    };
    let escalated = Happened::Decided {
        gate: "start".into(),
        decision: DecisionKind::Escalated,
        by: "clock".into(),
        channel: "deadline".into(),
    };
    let finished = |status| Happened::Finished { status };
    let cases: &[(Happened, Option<(NotifyEvent, &str)>)] = &[
        (
            waiting,
            Some((
                NotifyEvent::ApprovalNeeded,
                "approval needed: run r1 of `deploy` waits at step 2; decide with `sop approve r1`",
            )),
        ),
        (
            confirm,
            Some((
                NotifyEvent::ApprovalNeeded,
                "confirmation needed: run r1 of `deploy` waits at step 3; decide with `sop confirm r1`",
            )),
        ),
        (
            escalated,
            Some((
                NotifyEvent::ApprovalNeeded,
                "approval needed: run r1 of `deploy` waits at start (escalated: still waiting); decide with `sop approve r1`",
            )),
        ),
        (
            finished(RunStatus::Failure),
            Some((NotifyEvent::RunFailed, "run failed: run r1 of `deploy` ended failure; see `sop status r1`")),
        ),
        (
            finished(RunStatus::TimedOut),
            Some((NotifyEvent::RunFailed, "run failed: run r1 of `deploy` ended timed_out; see `sop status r1`")),
        ),
        (finished(RunStatus::Success), Some((NotifyEvent::RunSucceeded, "run succeeded: run r1 of `deploy`"))),
        // A person's own decision or a cancel needs no notice.
        (finished(RunStatus::Rejected), None),
        (finished(RunStatus::Cancelled), None),
        (Happened::Started, None),
        (
            Happened::StepFinished {
                gate: "step 1".into(),
                status: StepStatus::Failure,
                exit_code: Some(1),
            },
            None,
        ),
    ];
    for (event, want) in cases {
        let got = notice_of("r1", "deploy", 7, event).map(|n| (n.event, text(&n)));
        assert_eq!(got, want.map(|(e, t)| (e, t.to_string())), "{event:?}");
    }
    let n = notice_of(
        "r1",
        "deploy",
        7,
        &Happened::Waiting {
            gate: "step 2".into(),
            kind: WaitKind::Approval,
            deadline: Some(99),
        },
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&n).unwrap(),
        serde_json::json!({"event": "approval_needed", "run_id": "r1", "sop": "deploy", "at": 7,
                           "gate": "step 2", "wait": "approval", "deadline": 99})
    );
}

#[test]
fn channels_get_the_events_they_list_and_by_default_no_successes() {
    let config = RunnerConfig::parse(
        "sop.toml",
        "[[notify]]\ntype = \"log\"\n\
         [[notify]]\ntype = \"webhook\"\nurl = \"https://hooks.example/x\"\nformat = \"slack\"\nevents = [\"run_succeeded\"]\n\
         [[notify]]\ntype = \"command\"\ncommand = \"true\"\n",
    )
    .expect("valid");
    let [log, hook, command] = &config.notify[..] else {
        panic!("{:?}", config.notify)
    };
    assert!(matches!(
        hook,
        NotifyEntry::Webhook {
            format: NotifyFormat::Slack,
            ..
        }
    ));
    let table = [
        (log, [true, true, false]),
        (hook, [false, false, true]),
        (command, [true, true, false]),
    ];
    for (channel, want) in table {
        let got = [
            NotifyEvent::ApprovalNeeded,
            NotifyEvent::RunFailed,
            NotifyEvent::RunSucceeded,
        ]
        .map(|e| wants(channel, e));
        assert_eq!(got, want, "{channel:?}");
    }
    let err = RunnerConfig::parse(
        "sop.toml",
        "[[notify]]\ntype = \"log\"\nevents = [\"run_done\"]\n",
    )
    .unwrap_err();
    assert!(
        err.render().contains("unknown variant `run_done`"),
        "{}",
        err.render()
    );
}
