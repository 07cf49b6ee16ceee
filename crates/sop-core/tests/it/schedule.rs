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
        // Not yet: what lies before the last minute is passed over (nothing here).
        (CatchUp::None, 10, T - H, T - 10 * S, d(&[], 0, T - 70 * S)),
        // Down for three days, back 5 s after today's time: two missed, one on time.
        // `none` looks at the last minute only: the missed ones go uncounted.
        (CatchUp::None, 10, T - 3 * D, T + 5 * S, d(&[T], 0, T)),
        (CatchUp::Latest, 10, T - 3 * D, T + 5 * S, d(&[T], 2, T)),
        (
            CatchUp::All,
            10,
            T - 3 * D,
            T + 5 * S,
            d(&[T - 2 * D, T - D, T], 0, T),
        ),
        // Back two hours late: all three missed.
        (
            CatchUp::None,
            10,
            T - 3 * D,
            T + 2 * H,
            d(&[], 0, T + 2 * H - 60 * S),
        ),
        (CatchUp::Latest, 10, T - 3 * D, T + 2 * H, d(&[T], 0, T)),
        (CatchUp::All, 2, T - 3 * D, T + 2 * H, d(&[T - D, T], 1, T)),
        // `max_catch_up = 0`: nothing missed is caught up.
        (
            CatchUp::All,
            0,
            T - 3 * D,
            T + 2 * H,
            d(&[], 0, T + 2 * H - 60 * S),
        ),
    ];
    for (catch_up, max, after, now, want) in cases {
        assert_eq!(
            due_(catch_up, max, after, now),
            want,
            "{catch_up:?} max {max}, after {after}, now {now}"
        );
    }
    // A schedule every 15 s, looked at 40 s later: only the latest is on time; the one
    // before was missed (the daemon was stuck) and follows catch_up.
    let seconds = Schedule::new("*/15 * * * * *", "UTC").expect("valid");
    assert_eq!(
        due(&seconds, CatchUp::None, 10, T, T + 40 * S),
        d(&[T + 30 * S], 1, T + 30 * S)
    );
    assert_eq!(
        due(&seconds, CatchUp::All, 10, T, T + 40 * S),
        d(&[T + 15 * S, T + 30 * S], 0, T + 30 * S)
    );
}

#[test]
fn clocks_going_back_or_forward_neither_freeze_nor_repeat_a_schedule() {
    // New York, 2025-11-02: 01:00-02:00 EDT (05:00-06:00Z), then 01:00-02:00 EST again
    // (06:00-07:00Z).
    let ny = Schedule::new("15 1 * * *", "America/New_York").expect("valid");
    let first_pass = 1_762_060_500_000; // 2025-11-02T05:15:00Z = 01:15 EDT
    let second_pass = first_pass + H; // 06:15Z = 01:15 EST
    assert_eq!(ny.next_after(first_pass - H), Some(first_pass));
    // From inside the repeated hour: on to the next day, not back to the first pass.
    let next = ny.next_after(second_pass - 30 * S).expect("a next time");
    assert!(next > second_pass - 30 * S, "never before `after`");
    assert_eq!(next, first_pass + D + H, "01:15 EST the next day");
    // A minutely schedule through the repeated hour keeps going.
    let minutely = Schedule::new("* * * * *", "America/New_York").expect("valid");
    let inside = first_pass + H + 10 * 60 * S; // 06:25Z
    assert!(minutely.next_after(inside).expect("next") > inside);
    // New York, 2025-03-09: 02:00-03:00 does not exist; 02:30 fires no time that day.
    let spring = Schedule::new("30 2 * * *", "America/New_York").expect("valid");
    let before = 1_741_500_000_000; // 2025-03-09T06:00:00Z = 01:00 EST
    let next = spring.next_after(before).expect("a next time");
    assert_eq!(
        next,
        before + H,
        "when the clock jumps to 03:00 EDT (07:00Z)"
    );
}

#[test]
fn a_per_second_schedule_after_a_long_downtime_is_looked_at_briefly() {
    let every = Schedule::new("* * * * * *", "UTC").expect("valid");
    let started = std::time::Instant::now();
    let d30 = due(&every, CatchUp::Latest, 10, T - 30 * D, T);
    assert_eq!(d30.fire, [T], "the latest, on time");
    assert_eq!(d30.through, T);
    let all = due(&every, CatchUp::All, 10, T - 30 * D, T);
    let want: Vec<i64> = (0..=10).map(|k| T - (10 - k) * S).collect();
    assert_eq!(all.fire, want, "ten missed, then the one on time");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
