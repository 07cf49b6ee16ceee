//! Wall-clock time and its formats. The only place the runtime reads the clock.

use chrono::{DateTime, SecondsFormat, Utc};
use sop_core::run::Millis;

/// Milliseconds since the Unix epoch, now.
pub fn now() -> Millis {
    Utc::now().timestamp_millis()
}

/// `2026-02-25T13:00:00.123Z`.
pub fn rfc3339(ms: Millis) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).map_or_else(String::new, |t| {
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    })
}

/// `2026-02-25T13-00-00.123Z`: the audit file name of a run started at `ms`.
pub fn file_stamp(ms: Millis) -> String {
    rfc3339(ms).replace(':', "-")
}

/// [`human_ms`] of a number of seconds (a cooldown's remaining time).
pub fn human_secs(secs: u64) -> String {
    human_ms(i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000))
}

/// `1h 2m`, `3.2s`, `45ms`: a human duration.
pub fn human_ms(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m {}s", ms / 60_000, (ms % 60_000) / 1000)
    } else {
        format!("{}h {}m", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    }
}
