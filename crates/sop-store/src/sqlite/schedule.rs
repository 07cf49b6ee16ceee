//! Schedule triggers' records (schema 3): the times fired (`schedule_fires`, inserted with
//! the run in `batch.rs`) and when a daemon first saw each schedule (`schedule_seen`).

use rusqlite::{params, Connection};
use sop_core::run::Millis;

use crate::{Fire, StoreError};

/// Records `fire` inside the transaction creating its run: `false` if that time of that
/// SOP was recorded before (by another daemon, or before a restart).
pub(super) fn record_fire(tx: &Connection, fire: &Fire) -> Result<bool, StoreError> {
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO schedule_fires (sop, scheduled_at, trigger_key)
             VALUES (?1, ?2, ?3)",
        )?
        .execute(params![fire.sop, fire.scheduled_at, fire.trigger_key])?;
    Ok(inserted == 1)
}

/// The latest time recorded for the schedule, or its first sight if later.
pub(super) fn last_fire(
    conn: &Connection,
    sop: &str,
    trigger_key: &str,
) -> Result<Option<Millis>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT max(t) FROM (
                 SELECT max(scheduled_at) AS t FROM schedule_fires
                  WHERE sop = ?1 AND trigger_key = ?2
                 UNION ALL
                 SELECT seen_at FROM schedule_seen WHERE sop = ?1 AND trigger_key = ?2)",
        )?
        .query_row(params![sop, trigger_key], |r| r.get(0))?)
}

pub(super) fn note_seen(
    conn: &Connection,
    sop: &str,
    trigger_key: &str,
    at: Millis,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO schedule_seen (sop, trigger_key, seen_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![sop, trigger_key, at])?;
    Ok(())
}
