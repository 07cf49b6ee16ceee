//! Scheduled times due at a moment, and catch-up of missed ones (tables, time passed in).

use sop_core::schedule::{due, Due, Schedule};
use sop_core::CatchUp;

const S: i64 = 1000;
const H: i64 = 3600 * S;
const D: i64 = 24 * H;
/// 2026-11-26T02:00:00Z.
const T: i64 = 1_795_658_400_000;

#[test]
fn next_times_follow_the_cron_in_its_time_zone() {
    let daily = Schedule::new("0 2 * * *", "UTC").expect("valid");
    assert_eq!(daily.next_after(T - H), Some(T));
    assert_eq!(daily.next_after(T), Some(T + D), "strictly after");
    assert_eq!(daily.next_after(T - 500), Some(T), "fractions of a second");
    // 02:00 in Berlin in November (UTC+1) is 01:00 UTC.
    let berlin = Schedule::new("0 2 * * *", "Europe/Berlin").expect("valid");
    assert_eq!(berlin.next_after(T - 2 * H), Some(T - H));
    let seconds = Schedule::new("*/15 * * * * *", "UTC").expect("six fields: seconds");
    assert_eq!(seconds.next_after(T), Some(T + 15 * S));
    assert!(Schedule::new("61 * * * *", "UTC").is_none());
    assert!(Schedule::new("0 2 * * *", "Mars/Olympus").is_none());
}

#[test]
fn on_time_fires_and_missed_times_follow_catch_up() {
    let daily = Schedule::new("0 2 * * *", "UTC").expect("valid");
    let due_ = |catch_up, max, after, now| due(&daily, catch_up, max, after, now);
    let d = |fire: &[i64], skipped, through| Due {
        fire: fire.to_vec(),
        skipped,
        through,
    };
    let cases = [
        // On time (5 s late): fires, whatever catch_up says.
        (CatchUp::None, 10, T - H, T + 5 * S, d(&[T], 0, T)),
        (CatchUp::All, 10, T - H, T + 5 * S, d(&[T], 0, T)),
        // Not yet.
        (CatchUp::None, 10, T - H, T - 10 * S, d(&[], 0, T - H)),
        // Down for three days, back 5 s after today's time: two missed, one on time.
        (CatchUp::None, 10, T - 3 * D, T + 5 * S, d(&[T], 2, T)),
        (CatchUp::Latest, 10, T - 3 * D, T + 5 * S, d(&[T], 2, T)),
        (
            CatchUp::All,
            10,
            T - 3 * D,
            T + 5 * S,
            d(&[T - 2 * D, T - D, T], 0, T),
        ),
        // Back two hours late: all three missed.
        (CatchUp::None, 10, T - 3 * D, T + 2 * H, d(&[], 3, T)),
        (CatchUp::Latest, 10, T - 3 * D, T + 2 * H, d(&[T], 2, T)),
        (CatchUp::All, 2, T - 3 * D, T + 2 * H, d(&[T - D, T], 1, T)),
    ];
    for (catch_up, max, after, now, want) in cases {
        assert_eq!(
            due_(catch_up, max, after, now),
            want,
            "{catch_up:?} max {max}, after {after}, now {now}"
        );
    }
    // A schedule every 15 s, looked at 40 s later: two on time.
    let seconds = Schedule::new("*/15 * * * * *", "UTC").expect("valid");
    assert_eq!(
        due(&seconds, CatchUp::None, 10, T, T + 40 * S),
        d(&[T + 15 * S, T + 30 * S], 0, T + 30 * S)
    );
}
