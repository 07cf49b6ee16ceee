//! Schema versions (`PRAGMA user_version`) and the steps between them. A new database
//! takes every step in order, so one path is tested for both.

use std::sync::Mutex;

use rusqlite::Transaction;

use super::records::{self, Snapshots};
use crate::StoreError;

/// The schema this build writes.
pub(crate) const LATEST: i64 = 3;

const V1: &str = include_str!("migrations/v1.sql");
const V2: &str = include_str!("migrations/v2.sql");
const V3: &str = include_str!("migrations/v3.sql");

/// Brings the database up to [`LATEST`] inside `tx`; refuses one written by a newer sop.
pub(crate) fn migrate(tx: &Transaction<'_>, cache: &Mutex<Snapshots>) -> Result<(), StoreError> {
    let found: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > LATEST {
        return Err(StoreError::TooNew {
            found,
            known: LATEST,
        });
    }
    if found < 1 {
        tx.execute_batch(V1)?;
    }
    if found < 2 {
        tx.execute_batch(V2)?;
        split_runs(tx, cache)?;
    }
    if found < 3 {
        tx.execute_batch(V3)?;
        super::ledger::backfill(tx)?;
    }
    if found < LATEST {
        tx.pragma_update(None, "user_version", LATEST)?;
    }
    Ok(())
}

/// Version 1 kept each run whole in `runs.doc`; version 2 splits it. A page of runs at a
/// time: a long-lived home's documents (SOPs, step output) need not fit in memory at once.
fn split_runs(tx: &Transaction<'_>, cache: &Mutex<Snapshots>) -> Result<(), StoreError> {
    const PAGE: i64 = 256;
    let mut after: i64 = 0;
    loop {
        let page: Vec<(i64, String, String)> = tx
            .prepare("SELECT rowid, id, doc FROM runs WHERE rowid > ?1 ORDER BY rowid LIMIT ?2")?
            .query_map([after, PAGE], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let Some(&(last, _, _)) = page.last() else {
            return Ok(());
        };
        for (_, id, doc) in page {
            records::split_v1(tx, cache, &id, &doc)?;
        }
        after = last;
    }
}
