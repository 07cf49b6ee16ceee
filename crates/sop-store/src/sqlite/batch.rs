//! Group commit of new runs. Concurrent `create_run` calls (the daemon's execute requests)
//! queue their request; whichever caller gets the connection next commits every queued
//! request in one transaction, and leaves each caller its answer. A caller that finds its
//! answer already there returns it (once the commit's sync is done). The batch forms by
//! itself while the connection is busy; a lone request is a batch of one.

use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, TransactionBehavior};
use sop_core::policy::{self, Admission, Limits};
use sop_core::run::{Happened, Millis, Run};

use super::runs::{bump, insert_events, last_executed, limits_of, remember, sop_load};
use super::{records, SqliteStore};
use crate::{Created, Fire, Owner, StoreError};

/// One caller's request and, once committed, its answer.
pub(crate) struct Slot {
    request: Mutex<Option<Request>>,
    answer: Mutex<Option<Result<Created, StoreError>>>,
}

struct Request {
    run: Run,
    audit_path: String,
    owner: Option<Owner>,
    now: Millis,
    fire: Option<Fire>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SqliteStore {
    pub(crate) fn create_batched(
        &self,
        run: Run,
        audit_path: &str,
        owner: Option<Owner>,
        now: Millis,
        fire: Option<Fire>,
    ) -> Result<Created, StoreError> {
        let slot = Arc::new(Slot {
            request: Mutex::new(Some(Request {
                run,
                audit_path: audit_path.to_string(),
                owner,
                now,
                fire,
            })),
            answer: Mutex::new(None),
        });
        lock(&self.creating).push(Arc::clone(&slot));
        // Either way, the answer is returned once the batch's commit is on disk (`with`).
        self.with(|conn| {
            if let Some(answer) = lock(&slot.answer).take() {
                return answer; // an earlier holder of the connection committed it
            }
            let batch = std::mem::take(&mut *lock(&self.creating));
            if let Err(e) = commit_batch(conn, self, &batch) {
                // Nothing of the batch was committed: every caller learns why.
                let why = e.to_string();
                for s in batch.iter().filter(|s| !Arc::ptr_eq(s, &slot)) {
                    *lock(&s.answer) = Some(Err(StoreError::Commit(why.clone())));
                }
                return Err(e);
            }
            let answer = lock(&slot.answer).take();
            answer.unwrap_or_else(|| Err(StoreError::Commit("the request was lost".to_string())))
        })
    }
}

/// Commits `batch` in one transaction, all or nothing: any error fails every request of
/// the batch. (A savepoint per request would not do: after some errors — a full disk, an
/// I/O error — `SQLite` rolls the whole transaction back, and the next statements would run
/// and commit on their own, creating runs whose callers were told they failed.)
fn commit_batch(
    conn: &mut Connection,
    store: &SqliteStore,
    batch: &[Arc<Slot>],
) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut answers = Vec::with_capacity(batch.len());
    for slot in batch {
        let request = lock(&slot.request).take();
        match request {
            Some(request) => answers.push(Some(create_one(&tx, store, request)?)),
            None => answers.push(None),
        }
    }
    bump(&tx)?;
    tx.commit()?;
    for (slot, answer) in batch.iter().zip(answers) {
        if let Some(Created::New(run)) = &answer {
            // Its audit file is written next: from the cache, not parsed back.
            remember(&store.cache, 1, (**run).clone());
        }
        *lock(&slot.answer) = answer.map(Ok);
    }
    Ok(())
}

/// Admission and insert of one new run, inside the batch's transaction.
fn create_one(
    tx: &Connection,
    store: &SqliteStore,
    request: Request,
) -> Result<Created, StoreError> {
    let Request {
        run,
        audit_path,
        owner,
        now,
        fire,
    } = request;
    if let Some(fire) = fire {
        if !super::schedule::record_fire(tx, &fire)? {
            return Ok(Created::AlreadyFired);
        }
    }
    let stored_limits = limits_of(&run);
    let load = sop_load(tx, &run.sop.name, &run.id)?;
    let last = last_executed(tx, &run.sop.name)?;
    match policy::admit(
        &Limits::from(&stored_limits),
        &load,
        last.as_ref(),
        run.forced,
        now,
    ) {
        Admission::Accept => {}
        other => return Ok(Created::NotCreated(other)),
    }
    let limits = serde_json::to_string(&stored_limits).map_err(|source| StoreError::Corrupt {
        id: run.id.clone(),
        source,
    })?;
    records::insert_run(
        tx,
        &store.snapshots,
        &run,
        &records::Columns {
            limits: &limits,
            audit_path: &audit_path,
            owner,
        },
    )?;
    insert_events(
        tx,
        &run.id,
        now,
        &[Happened::Requeued {
            reason: "created".to_string(),
        }],
    )?;
    Ok(Created::New(Box::new(run)))
}
