//! Schedule triggers (SPEC §6) in `sop serve`: a timer thread that, every second, fires the
//! scheduled times of every SOP's `schedule` triggers that are due (`sop_core::schedule`
//! decides which, `catch_up` included). Each time is recorded with the run it creates, in
//! one transaction (`Store::create_fired_run`), so it fires once even with several
//! daemons or across a restart. When a daemon first sees a schedule, that moment is
//! recorded: times missed after it (no daemon ran) follow `catch_up`, times before it do
//! not exist for the schedule.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use sop_core::run::{Millis, TriggerInfo};
use sop_core::schedule::{due, Schedule};
use sop_core::Trigger;
use sop_store::Fire;

use crate::clock::{now, rfc3339};
use crate::command::{pick_sops, FireOutcome};
use crate::ops::{OpError, Ops, Served};

/// Per (SOP, trigger key): the last scheduled time considered.
#[derive(Debug, Default)]
pub struct Watch {
    through: HashMap<(String, String), Millis>,
}

/// One scheduled time fired (or not), for the log and tests.
#[derive(Debug)]
pub struct Fired {
    pub sop: String,
    pub scheduled_at: Millis,
    pub outcome: FireOutcome,
}

impl Ops<'_> {
    /// Fires what is due at `now` of every SOP's schedules; `watch` carries what was
    /// considered from one call to the next.
    /// A store failure for one schedule is logged and that schedule tried again at the
    /// next look; the others go on.
    pub fn fire_schedules(&self, watch: &mut Watch, now: Millis) -> Result<Vec<Fired>, OpError> {
        let has_schedule = |sop: &sop_core::Sop| {
            sop.triggers
                .iter()
                .any(|t| matches!(t, Trigger::Schedule { .. }))
                .then_some(())
        };
        let (sops, _invalid) = pick_sops(self, has_schedule)?;
        let mut fired = Vec::new();
        for (sop, ()) in sops {
            for (i, trigger) in sop.triggers.iter().enumerate() {
                let Trigger::Schedule {
                    cron,
                    timezone,
                    catch_up,
                    max_catch_up,
                } = trigger
                else {
                    continue;
                };
                let Some(schedule) = Schedule::new(cron, timezone) else {
                    continue;
                };
                let key = format!("{i}:{cron}:{timezone}");
                let place = (sop.name.clone(), key.clone());
                let after = match watch.through.get(&place) {
                    Some(&t) => t,
                    None => match self.first_look(&sop.name, &key, now) {
                        Ok(t) => t,
                        Err(e) => {
                            tracing::warn!(sop = %sop.name, %cron, "schedule: {e}");
                            continue;
                        }
                    },
                };
                let d = due(&schedule, *catch_up, *max_catch_up, after, now);
                if d.skipped > 0 {
                    tracing::warn!(
                        sop = %sop.name,
                        %cron,
                        "{} scheduled times missed (catch_up = {catch_up:?})",
                        d.skipped
                    );
                }
                let mut through = d.through.max(after);
                for at in d.fire {
                    let vars = BTreeMap::from([("scheduled_at".to_string(), rfc3339(at))]);
                    let trigger = TriggerInfo {
                        kind: "schedule".to_string(),
                        by: "schedule".to_string(),
                    };
                    let fire = Fire {
                        sop: sop.name.clone(),
                        trigger_key: key.clone(),
                        scheduled_at: at,
                    };
                    let outcome = self.fire(&sop, vars, trigger, Some(fire));
                    let failed = matches!(
                        outcome,
                        FireOutcome::Refused(OpError::Store(_) | OpError::Audit(_))
                    );
                    fired.push(Fired {
                        sop: sop.name.clone(),
                        scheduled_at: at,
                        outcome,
                    });
                    if failed {
                        // Not recorded: tried again at the next look (late, within the
                        // grace, it is still on time; else `catch_up` decides).
                        through = at - 1;
                        break;
                    }
                }
                watch.through.insert(place, through);
            }
        }
        Ok(fired)
    }
}

impl Ops<'_> {
    /// Where a schedule's first look in this process starts: after its last recorded time,
    /// or when a daemon first saw it; a schedule never seen is seen `now` (recorded).
    fn first_look(&self, sop: &str, key: &str, now: Millis) -> Result<Millis, OpError> {
        if let Some(t) = self.store.last_fire(sop, key)? {
            return Ok(t);
        }
        self.store.note_schedule_seen(sop, key, now)?;
        Ok(now)
    }
}

/// The timer thread of `sop serve`.
pub struct Timer {
    served: Served,
    stopped: Mutex<bool>,
    bell: Condvar,
}

impl Timer {
    pub fn new(served: Served) -> Timer {
        Timer {
            served,
            stopped: Mutex::new(false),
            bell: Condvar::new(),
        }
    }

    /// Looks once a second, just after the second turns, until [`Timer::stop`].
    pub fn run(&self) {
        let mut watch = Watch::default();
        loop {
            match self.served.ops().fire_schedules(&mut watch, now()) {
                Ok(fired) => {
                    for f in &fired {
                        tracing::info!(
                            sop = %f.sop,
                            scheduled_at = %rfc3339(f.scheduled_at),
                            "schedule fired: {}",
                            describe(&f.outcome)
                        );
                    }
                    if fired
                        .iter()
                        .any(|f| matches!(f.outcome, FireOutcome::Queued(_)))
                    {
                        (self.served.wake)();
                    }
                }
                Err(e) => tracing::warn!("schedules: {e}"),
            }
            let into_second = u64::try_from(now().rem_euclid(1000)).unwrap_or(0);
            let stopped = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
            if *stopped {
                return;
            }
            let wait = Duration::from_millis(1000 - into_second + 5);
            let (stopped, _) = self
                .bell
                .wait_timeout(stopped, wait)
                .unwrap_or_else(PoisonError::into_inner);
            if *stopped {
                return;
            }
        }
    }

    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.bell.notify_all();
    }
}

fn describe(outcome: &FireOutcome) -> String {
    match outcome {
        FireOutcome::Queued(run) => format!("queued run {}", run.id),
        FireOutcome::Coalesced(id) => format!("folded into run {id}"),
        FireOutcome::Suppressed { run_id, .. } => {
            format!("suppressed: in cooldown (run {run_id} started it)")
        }
        FireOutcome::AlreadyFired => "fired before".to_string(),
        FireOutcome::WouldRun => "would run".to_string(),
        FireOutcome::Refused(e) => format!("refused: {e}"),
    }
}
