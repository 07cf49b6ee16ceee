//! The hash-chained event ledger (SPEC §7). Each event's `hash` is the hex SHA-256 of
//!
//! ```text
//! <previous event's hash>\n<seq>\n<run id>\n<at>\n<body>
//! ```
//!
//! (the first event's previous hash is empty). Events are appended in commit order (the
//! writer holds the database's write lock), so the chain follows `seq`: an event altered,
//! removed or moved breaks every hash after it. What it cannot show by itself is events
//! cut off the end: compare the head `sop audit verify` prints with one noted earlier.

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::{LedgerCheck, StoreError};

/// The hash of one event, chained to `prev`.
pub(super) fn chain(prev: &str, seq: i64, run_id: &str, at: i64, body: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(format!("\n{seq}\n{run_id}\n{at}\n").as_bytes());
    h.update(body.as_bytes());
    hex::encode(h.finalize())
}

/// The newest event's `seq` and hash (`(0, "")` before any).
pub(super) fn head(conn: &Connection) -> Result<(i64, String), StoreError> {
    Ok(conn
        .prepare_cached("SELECT seq, coalesce(hash, '') FROM events ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, String::new())))
}

/// Gives the events of schema 2 their hashes, in `seq` order (the migration to schema 3).
pub(super) fn backfill(conn: &Connection) -> Result<(), StoreError> {
    const PAGE: i64 = 1024;
    let mut prev = String::new();
    let mut after = 0;
    loop {
        let page: Vec<(i64, String, i64, String)> = conn
            .prepare(
                "SELECT seq, run_id, at, body FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?
            .query_map(params![after, PAGE], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let Some(&(last, ..)) = page.last() else {
            return Ok(());
        };
        let mut set = conn.prepare_cached("UPDATE events SET hash = ?2 WHERE seq = ?1")?;
        for (seq, run_id, at, body) in page {
            prev = chain(&prev, seq, &run_id, at, &body);
            set.execute(params![seq, prev])?;
        }
        after = last;
    }
}

/// Walks the whole ledger and recomputes every hash.
pub(super) fn verify(conn: &Connection) -> Result<LedgerCheck, StoreError> {
    let mut check = LedgerCheck::default();
    let mut prev = String::new();
    let mut stmt = conn.prepare("SELECT seq, run_id, at, body, hash FROM events ORDER BY seq")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (seq, run_id, at, body): (i64, String, i64, String) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
        let stored: Option<String> = r.get(4)?;
        let expected = chain(&prev, seq, &run_id, at, &body);
        if stored.as_deref() != Some(expected.as_str()) && check.first_broken.is_none() {
            check.first_broken = Some(seq);
        }
        check.events += 1;
        // The chain goes on from what is stored, so one bad event is told once, not as
        // every later one.
        prev = stored.unwrap_or(expected);
        check.head = Some((seq, prev.clone()));
    }
    Ok(check)
}
