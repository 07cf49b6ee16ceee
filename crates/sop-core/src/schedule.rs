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

/// Most scheduled times looked at in one call (a per-second schedule after a long
/// downtime): beyond it, only the latest ones are kept.
const MAX_SCAN: usize = 1_000_000;

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
    pub fn next_after(&self, after: Millis) -> Option<Millis> {
        let start = self.tz.from_utc_datetime(&utc(after)?.naive_utc());
        let next = self.cron.find_next_occurrence(&start, false).ok()?;
        Some(next.with_timezone(&Utc).timestamp_millis())
    }
}

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

/// The scheduled times in `(after, now]` and what to do with them. On time (at most
/// [`GRACE_MS`] late) they fire; missed ones follow `catch_up`: `none` passes over them,
/// `latest` fires the latest one, `all` the latest `max_catch_up`.
pub fn due(
    schedule: &Schedule,
    catch_up: CatchUp,
    max_catch_up: u32,
    after: Millis,
    now: Millis,
) -> Due {
    let keep = usize::try_from(max_catch_up).unwrap_or(usize::MAX).max(1);
    let mut on_time = Vec::new();
    let mut missed: VecDeque<Millis> = VecDeque::new();
    let mut skipped = 0u64;
    let mut through = after;
    let mut at = after;
    for _ in 0..MAX_SCAN {
        let Some(next) = schedule.next_after(at).filter(|&t| t <= now && t > at) else {
            break;
        };
        at = next;
        through = next;
        if now - next <= GRACE_MS {
            on_time.push(next);
        } else {
            missed.push_back(next);
            if missed.len() > keep {
                missed.pop_front();
                skipped += 1;
            }
        }
    }
    let mut fire: Vec<Millis> = match catch_up {
        CatchUp::None => {
            skipped += missed.len() as u64;
            Vec::new()
        }
        CatchUp::Latest => {
            let latest = missed.pop_back();
            skipped += missed.len() as u64;
            // An on-time fire supersedes a missed one.
            if on_time.is_empty() {
                latest.into_iter().collect()
            } else {
                skipped += u64::from(latest.is_some());
                Vec::new()
            }
        }
        CatchUp::All => missed.into_iter().collect(),
    };
    fire.extend(on_time);
    Due {
        fire,
        skipped,
        through,
    }
}
