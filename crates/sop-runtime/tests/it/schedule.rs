//! Schedule triggers fired against a real `SQLite` store, with the time passed in: once
//! per scheduled time, across two daemons' watches and after a restart, with catch-up.

use sop_core::config::RunnerConfig;
use sop_runtime::command::FireOutcome;
use sop_runtime::ops::Ops;
use sop_runtime::schedule::Watch;
use sop_runtime::Home;
use sop_store::{RunFilter, SqliteStore, Store, Synchronous};

const S: i64 = 1000;
const D: i64 = 24 * 3600 * S;
/// 2026-11-26T02:00:00Z.
const T: i64 = 1_795_658_400_000;

fn home_with(catch_up: &str) -> (tempfile::TempDir, Home, SqliteStore) {
    home_with_triggers(&format!(
        "[[triggers]]\ntype = \"schedule\"\ncron = \"0 2 * * *\"\ncatch_up = \"{catch_up}\"\n"
    ))
}

fn home_with_triggers(triggers: &str) -> (tempfile::TempDir, Home, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let sop = dir.path().join("sops/backup");
    std::fs::create_dir_all(&sop).expect("dirs");
    std::fs::write(
        sop.join("SOP.toml"),
        format!(
            "[sop]\nname = \"backup\"\ndescription = \"nightly\"\nexecution_mode = \"automatic\"\n\
             max_concurrent = 5\n{triggers}"
        ),
    )
    .expect("toml");
    std::fs::write(
        sop.join("SOP.md"),
        "## Steps\n\n1. **Dump**\n   ```bash\n   echo \"$scheduled_at\"\n   ```\n",
    )
    .expect("md");
    std::fs::create_dir_all(dir.path().join("state")).expect("state");
    let store =
        SqliteStore::open(&dir.path().join("state/sop.db"), Synchronous::Normal).expect("store");
    let home = Home::new(dir.path());
    (dir, home, store)
}

fn ops<'a>(home: &'a Home, store: &'a SqliteStore, config: &'a RunnerConfig) -> Ops<'a> {
    Ops {
        store,
        home,
        config,
        served: true,
        settle: None,
    }
}

#[test]
fn a_scheduled_time_fires_once_across_daemons_and_restarts() {
    let (_dir, home, store) = home_with("latest");
    let config = RunnerConfig::default();
    let ops = ops(&home, &store, &config);
    // Two daemons watching from before 02:00.
    let (mut a, mut b) = (Watch::default(), Watch::default());
    assert!(ops
        .fire_schedules(&mut a, T - 10 * S)
        .expect("a")
        .is_empty());
    assert!(ops.fire_schedules(&mut b, T - 5 * S).expect("b").is_empty());
    let fired = ops.fire_schedules(&mut a, T + S).expect("a");
    let [f] = &fired[..] else { panic!("{fired:?}") };
    assert_eq!((f.sop.as_str(), f.scheduled_at), ("backup", T));
    let FireOutcome::Queued(run) = &f.outcome else {
        panic!("{:?}", f.outcome)
    };
    assert_eq!(run.trigger.kind, "schedule");
    assert_eq!(run.vars["scheduled_at"], "2026-11-26T02:00:00.000Z");
    // The other daemon comes to the same time: recorded already, nothing is created.
    let fired = ops.fire_schedules(&mut b, T + 2 * S).expect("b");
    assert!(
        matches!(&fired[..], [f] if matches!(f.outcome, FireOutcome::AlreadyFired)),
        "{fired:?}"
    );
    assert_eq!(
        store.list_runs(&RunFilter::default()).expect("runs").len(),
        1
    );
    // Looked at again: nothing more.
    assert!(ops.fire_schedules(&mut a, T + 3 * S).expect("a").is_empty());

    // Down for three days, back at 04:00: `latest` fires the latest missed time only.
    let mut restarted = Watch::default();
    let fired = ops
        .fire_schedules(&mut restarted, T + 3 * D + 2 * 3600 * S)
        .expect("c");
    let times: Vec<i64> = fired.iter().map(|f| f.scheduled_at).collect();
    assert_eq!(times, [T + 3 * D]);
    assert_eq!(
        store.list_runs(&RunFilter::default()).expect("runs").len(),
        2
    );
}

#[test]
fn a_schedule_first_seen_does_not_catch_up_on_times_before() {
    let (_dir, home, store) = home_with("all");
    let config = RunnerConfig::default();
    let ops = ops(&home, &store, &config);
    // First sight long after many 02:00s: nothing recorded, so nothing missed.
    let mut w = Watch::default();
    assert!(ops
        .fire_schedules(&mut w, T + 2 * 3600 * S)
        .expect("w")
        .is_empty());
    // The next one fires on time.
    let fired = ops.fire_schedules(&mut w, T + D + 30 * S).expect("w");
    assert_eq!(
        fired.iter().map(|f| f.scheduled_at).collect::<Vec<_>>(),
        [T + D]
    );
}

#[test]
fn a_schedule_seen_before_a_downtime_catches_up_before_its_first_fire() {
    let (_dir, home, store) = home_with("latest");
    let config = RunnerConfig::default();
    let ops = ops(&home, &store, &config);
    // First seen at 16:00 the day before; the daemon stops before 02:00 ...
    let mut w = Watch::default();
    assert!(ops
        .fire_schedules(&mut w, T - 10 * 3600 * S)
        .expect("w")
        .is_empty());
    // ... and is back at 04:00: the missed 02:00 is caught up.
    let mut back = Watch::default();
    let fired = ops
        .fire_schedules(&mut back, T + 2 * 3600 * S)
        .expect("back");
    assert_eq!(
        fired.iter().map(|f| f.scheduled_at).collect::<Vec<_>>(),
        [T]
    );
}

#[test]
fn two_schedules_of_a_sop_at_one_time_fire_once() {
    let (_dir, home, store) = home_with_triggers(
        "[[triggers]]\ntype = \"schedule\"\ncron = \"0 2 * * *\"\n\
         [[triggers]]\ntype = \"schedule\"\ncron = \"0 */2 * * *\"\n",
    );
    let config = RunnerConfig::default();
    let ops = ops(&home, &store, &config);
    let mut w = Watch::default();
    assert!(ops
        .fire_schedules(&mut w, T - 10 * S)
        .expect("w")
        .is_empty());
    let fired = ops.fire_schedules(&mut w, T + S).expect("w");
    let outcomes: Vec<bool> = fired
        .iter()
        .map(|f| matches!(f.outcome, FireOutcome::Queued(_)))
        .collect();
    assert_eq!(outcomes, [true, false], "{fired:?}");
    assert!(matches!(fired[1].outcome, FireOutcome::AlreadyFired));
    assert_eq!(
        store.list_runs(&RunFilter::default()).expect("runs").len(),
        1
    );
}
