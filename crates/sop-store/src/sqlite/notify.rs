//! What the notifier of `sop serve` reads and writes (schema 3): the event ledger in
//! order, its place in it (`meta.notify_cursor`), and every delivery (`notifications`).

use rusqlite::{params, Connection, OptionalExtension};

use crate::{Delivery, EventRow, StoreError};

/// Events after `after_seq`, oldest first, at most `limit`, each with its run's SOP. An
/// event this build cannot read (written by a newer sop, or damaged) is skipped, not a
/// stop for every later one.
pub(super) fn events_after(
    conn: &Connection,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<(EventRow, String)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.seq, e.run_id, e.at, e.body, r.sop FROM events e
         JOIN runs r ON r.id = e.run_id WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![after_seq, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows
        .into_iter()
        .filter_map(
            |(seq, run_id, at, body, sop)| match serde_json::from_str(&body) {
                Ok(event) => Some((
                    EventRow {
                        seq,
                        run_id,
                        at,
                        event,
                    },
                    sop,
                )),
                Err(e) => {
                    tracing::warn!("event {seq} of run {run_id} is unreadable ({e}); skipped");
                    None
                }
            },
        )
        .collect())
}

pub(super) fn cursor(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT value FROM meta WHERE key = 'notify_cursor'")?
        .query_row([], |r| r.get(0))
        .optional()?)
}

pub(super) fn set_cursor(conn: &Connection, seq: i64) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('notify_cursor', ?1)")?
        .execute([seq])?;
    Ok(())
}

pub(super) fn record_delivery(conn: &Connection, d: &Delivery) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO notifications (at, run_id, event, channel, ok, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![d.at, d.run_id, d.event, d.channel, d.ok, d.detail])?;
    Ok(())
}
