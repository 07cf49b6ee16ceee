//! Schedule triggers (SPEC §6): which scheduled times are due at a moment, given the last
//! one already considered, and what `catch_up` does with times missed while no daemon
//! ran. Pure: times come in as milliseconds since the epoch.

use std::collections::VecDeque;

use chrono::{DateTime, TimeZone, Utc};

use crate::model::CatchUp;
use crate::run::Millis;

/// How late a scheduled time may be seen and still count as on time (not missed): the
/// daemon looks once a second, and may be busy or paused for a moment.
pub const GRACE_MS: Millis = 60_000;

/// How far back missed times are looked for, at most (`catch_up` = `latest` or `all`).
pub const LOOK_BACK_MS: Millis = 31 * 24 * HOUR_MS;

/// Most scheduled times looked at in one window (a per-second schedule's month is 2.7
/// million): the windows below start small, so this bounds only the unusual.
const MAX_SCAN: usize = 100_000;

/// A checked schedule: the cron expression and its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
    tz: chrono_tz::Tz,
}

impl Schedule {
    /// `None` when either does not parse (the SOP's validation reported it).
    pub fn new(cron: &str, timezone: &str) -> Option<Schedule> {
        let cron = croner::Cron::new(cron)
            .with_seconds_optional()
            .parse()
            .ok()?;
        let tz = timezone.parse().ok()?;
        Some(Schedule { cron, tz })
    }

    /// The first scheduled time after `after` (whole seconds), if any.
    ///
    /// The search runs in local wall-clock time. Where clocks go back, a local time occurs
    /// twice and the search answers the first: from inside the repeated hour that answer
    /// lies before `after`, and the search goes on from an hour later (times in the
    /// repeated hour's second pass do not fire). A time in an hour that does not exist
    /// (clocks go forward) comes when the clock jumps past it.
    pub fn next_after(&self, after: Millis) -> Option<Millis> {
        let mut from = after;
        for _ in 0..3 {
            let start = self.tz.from_utc_datetime(&utc(from)?.naive_utc());
            let next = self.cron.find_next_occurrence(&start, false).ok()?;
            let next = next.with_timezone(&Utc).timestamp_millis();
            if next > after {
                return Some(next);
            }
            from += HOUR_MS;
        }
        None
    }
}

const HOUR_MS: Millis = 3_600_000;

/// `ms`, down to the whole second, as a UTC time.
fn utc(ms: Millis) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(ms.div_euclid(1000), 0)
}

/// What is due now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Scheduled times to fire now, oldest first.
    pub fire: Vec<Millis>,
    /// Scheduled times passed over (missed, and not caught up).
    pub skipped: u64,
    /// The last scheduled time considered: the next call starts after it.
    pub through: Millis,
}

/// The scheduled times in `(after, now]` and what to do with them. The latest, if on time
/// (at most [`GRACE_MS`] late), fires; missed ones follow `catch_up`: `none` passes over them,
/// `latest` fires the latest one, `all` the latest `max_catch_up`. Missed times are looked
/// for in the last minute, hour, day, week, then [`LOOK_BACK_MS`], until enough are
/// found: older ones are passed over uncounted.
pub fn due(
    schedule: &Schedule,
    catch_up: CatchUp,
    max_catch_up: u32,
    after: Millis,
    now: Millis,
) -> Due {
    let wanted = match catch_up {
        CatchUp::None => 0,
        CatchUp::Latest => 1,
        CatchUp::All => usize::try_from(max_catch_up).unwrap_or(usize::MAX),
    };
    let spans = [
        GRACE_MS,
        HOUR_MS,
        24 * HOUR_MS,
        7 * 24 * HOUR_MS,
        LOOK_BACK_MS,
    ];
    let mut scan = Scan::default();
    for (i, span) in spans.iter().enumerate() {
        let from = after.max(now - span);
        scan = Scan::over(schedule, from, now, wanted);
        let last = i + 1 == spans.len();
        if from == after || scan.missed.len() >= wanted || last {
            break;
        }
    }
    let Scan {
        on_time,
        mut missed,
        mut skipped,
        through,
    } = scan;
    let mut fire: Vec<Millis> = match catch_up {
        CatchUp::Latest if on_time.is_some() => {
            // An on-time fire supersedes a missed one.
            skipped += missed.len() as u64;
            Vec::new()
        }
        _ => {
            while missed.len() > wanted {
                missed.pop_front();
                skipped += 1;
            }
            missed.into_iter().collect()
        }
    };
    fire.extend(on_time);
    Due {
        fire,
        skipped,
        // Whatever was not looked at lies before `now`: passed over too.
        through: through.max(after),
    }
}

/// The scheduled times in `(from, now]`: on time, and the latest `keep` missed ones.
#[derive(Default)]
struct Scan {
    on_time: Option<Millis>,
    missed: VecDeque<Millis>,
    skipped: u64,
    through: Millis,
}

impl Scan {
    fn over(schedule: &Schedule, from: Millis, now: Millis, keep: usize) -> Scan {
        let mut scan = Scan {
            through: from,
            ..Scan::default()
        };
        let mut at = from;
        for _ in 0..MAX_SCAN {
            let Some(next) = schedule.next_after(at).filter(|&t| t <= now) else {
                break;
            };
            at = next;
            scan.through = next;
            // Only the latest time can be on time: an earlier one, even within the grace,
            // was missed (the daemon was stopped or stuck) and follows `catch_up`.
            if let Some(earlier) = scan.on_time.take() {
                scan.missed.push_back(earlier);
            }
            if now - next <= GRACE_MS {
                scan.on_time = Some(next);
            } else {
                scan.missed.push_back(next);
            }
            if scan.missed.len() > keep.max(1) {
                scan.missed.pop_front();
                scan.skipped += 1;
            }
        }
        scan
    }
}
