//! `impl Store for SqliteStore`: runs, claims, events and output.

use std::collections::HashMap;
use std::fmt::Write as _;

use std::sync::{Mutex, PoisonError};

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};
use serde::{Deserialize, Serialize};
use sop_core::metrics::{RunFacts, SuppressedFact};
use sop_core::policy::{self, LastExecuted, Limits, Queued, SopLoad};
use sop_core::run::{Happened, Millis, Refusal, Run, RunStatus};
use sop_core::{AdmissionPolicy, Priority};

use super::{records, SqliteStore};
use crate::{
    ClaimResult, Created, Delivery, EventRow, Fire, OutputChunk, Owner, RunChange, RunFilter,
    RunRow, Store, StoreError, Successor, Suppression,
};

/// The SOP limits kept beside each run so the scheduler need not parse whole runs.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredLimits {
    cooldown_secs: u64,
    max_concurrent: u32,
    admission: AdmissionPolicy,
    max_pending_approvals: u32,
}

impl From<&StoredLimits> for Limits {
    fn from(l: &StoredLimits) -> Limits {
        Limits {
            cooldown_secs: l.cooldown_secs,
            max_concurrent: l.max_concurrent,
            admission: l.admission,
            max_pending_approvals: l.max_pending_approvals,
        }
    }
}

pub(super) fn limits_of(run: &Run) -> StoredLimits {
    StoredLimits {
        cooldown_secs: run.sop.cooldown_secs,
        max_concurrent: run.sop.max_concurrent,
        admission: run.sop.admission_policy,
        max_pending_approvals: run.sop.max_pending_approvals,
    }
}

fn priority_from_rank(rank: i64) -> Priority {
    Priority::ALL
        .into_iter()
        .find(|p| p.rank() == rank)
        .unwrap_or_default()
}

pub(super) fn status_from(s: &str) -> RunStatus {
    // Only this crate writes the column, always from `RunStatus::as_str`.
    RunStatus::parse(s).unwrap_or(RunStatus::Interrupted)
}

const ROW_COLUMNS: &str = "id, sop, status, priority, created_at, started_at, completed_at, owner_pid, owner_start, audit_path";

fn run_row(r: &Row<'_>) -> rusqlite::Result<RunRow> {
    let owner_pid: Option<u32> = r.get(7)?;
    let owner_start: Option<i64> = r.get(8)?;
    Ok(RunRow {
        id: r.get(0)?,
        sop: r.get(1)?,
        status: status_from(&r.get::<_, String>(2)?),
        priority: priority_from_rank(r.get(3)?),
        created_at: r.get(4)?,
        started_at: r.get(5)?,
        completed_at: r.get(6)?,
        owner: owner_from(owner_pid, owner_start),
        audit_path: r.get(9)?,
    })
}

/// The owner stored in the `owner_pid` and `owner_start` columns.
fn owner_from(pid: Option<u32>, start: Option<i64>) -> Option<Owner> {
    pid.zip(start).map(|(pid, start)| Owner {
        pid,
        start_time: start as u64,
    })
}

/// `owner` if it is a live process other than `me`: then the run is not `me`'s to take.
fn other_live(owner: Option<Owner>, me: Owner, is_alive: &dyn Fn(Owner) -> bool) -> Option<Owner> {
    owner.filter(|&o| o != me && is_alive(o))
}

fn set_owner(tx: &Connection, id: &str, owner: Owner) -> rusqlite::Result<usize> {
    tx.prepare_cached("UPDATE runs SET owner_pid = ?2, owner_start = ?3 WHERE id = ?1")?
        .execute(params![id, owner.pid, owner.start_time as i64])
}

pub(super) fn bump(tx: &Connection) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE meta SET value = value + 1 WHERE key = 'changes'")?
        .execute([])?;
    Ok(())
}

/// Runs recently read or written by this process, by id and `version`.
#[derive(Default)]
pub(crate) struct RunCache {
    /// Oldest first; at most [`RunCache::CAP`].
    entries: Vec<(String, i64, Run)>,
}

impl RunCache {
    const CAP: usize = 16;

    fn take(&mut self, id: &str, version: i64) -> Option<Run> {
        let at = self
            .entries
            .iter()
            .position(|(i, v, _)| i == id && *v == version)?;
        Some(self.entries.remove(at).2)
    }

    fn get(&self, id: &str, version: i64) -> Option<Run> {
        self.entries
            .iter()
            .find(|(i, v, _)| i == id && *v == version)
            .map(|(_, _, r)| r.clone())
    }

    fn put(&mut self, version: i64, run: Run) {
        self.entries.retain(|(i, _, _)| *i != run.id);
        if self.entries.len() >= Self::CAP {
            self.entries.remove(0);
        }
        self.entries.push((run.id.clone(), version, run));
    }
}

fn version_of(conn: &Connection, id: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT version FROM runs WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?)
}

/// The committed run and its version, read only if the cache does not have that version.
fn load_doc(tx: &Transaction<'_>, store: &SqliteStore, id: &str) -> Result<(Run, i64), StoreError> {
    let version = version_of(tx, id)?.ok_or_else(|| StoreError::NoSuchRun(id.to_string()))?;
    let cached = store
        .cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take(id, version);
    match cached {
        Some(run) => Ok((run, version)),
        None => Ok((read_whole(tx, store, id)?, version)),
    }
}

fn read_whole(conn: &Connection, store: &SqliteStore, id: &str) -> Result<Run, StoreError> {
    records::read_run(conn, &store.snapshots, id)?
        .ok_or_else(|| StoreError::NoSuchRun(id.to_string()))
}

pub(super) fn remember(cache: &Mutex<RunCache>, version: i64, run: Run) {
    cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .put(version, run);
}

pub(super) fn insert_events(
    tx: &Connection,
    run_id: &str,
    now: Millis,
    events: &[Happened],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    // Chained to the newest event (this transaction holds the write lock: nobody appends
    // meanwhile), with `seq` given so that it is in the hash.
    let (mut seq, mut prev) = super::ledger::head(tx)?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO events (seq, run_id, at, body, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for e in events {
        let body = serde_json::to_string(e).map_err(|source| StoreError::Corrupt {
            id: run_id.to_string(),
            source,
        })?;
        seq += 1;
        prev = super::ledger::chain(&prev, seq, run_id, now, &body);
        stmt.execute(params![seq, run_id, now, body, prev])?;
    }
    Ok(())
}

/// The load of one SOP, excluding `except` (the run being decided).
///
/// Of the queued runs only the first (in queue order) is read: the policy looks at no
/// more (`admit` coalesces onto it; `may_start` ignores queued runs), and reading every
/// queued id made each decision O(queue length).
pub(super) fn sop_load(tx: &Connection, sop: &str, except: &str) -> Result<SopLoad, StoreError> {
    let mut load = SopLoad::default();
    let mut stmt = tx.prepare_cached(
        "SELECT id, status FROM runs WHERE sop = ?1 AND status IN ('running', 'waiting_approval', 'waiting_confirmation', 'interrupted')
         AND id != ?2 ORDER BY priority DESC, created_at, id",
    )?;
    let rows = stmt.query_map(params![sop, except], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (id, status) = row?;
        match status_from(&status) {
            RunStatus::Running => load.running.push(id),
            RunStatus::Interrupted => load.interrupted += 1,
            _ => load.waiting += 1,
        }
    }
    let mut first = tx.prepare_cached(
        "SELECT id FROM runs WHERE status = 'queued' AND sop = ?1 AND id != ?2
         ORDER BY priority DESC, created_at, id LIMIT 1",
    )?;
    if let Some(id) = first
        .query_row(params![sop, except], |r| r.get::<_, String>(0))
        .optional()?
    {
        load.queued.push(id);
    }
    Ok(load)
}

pub(super) fn last_executed(
    tx: &Connection,
    sop: &str,
) -> Result<Option<LastExecuted>, StoreError> {
    Ok(tx
        .prepare_cached(
            "SELECT id, started_at FROM runs WHERE sop = ?1 AND executed_step = 1 AND started_at IS NOT NULL
             ORDER BY started_at DESC LIMIT 1",
        )?
        .query_row(
            [sop],
            |r| Ok(LastExecuted { run_id: r.get(0)?, started_at: r.get(1)? }),
        )
        .optional()?)
}

/// Whether queued run `id` may start now: the policy for it, and no run ahead of it in
/// queue order that could start instead.
///
/// The queue is walked in order and the walk stops at `id`; once a run ahead that may start
/// is found, the rest of the walk only counts. A decision so costs O(runs ahead of `id`),
/// not O(queue): the scheduler asks about the head of the queue.
fn queue_verdict(tx: &Transaction<'_>, id: &str, workers: u32) -> Result<ClaimResult, StoreError> {
    let running_total: u32 = tx
        .prepare_cached("SELECT count(*) FROM runs WHERE status = 'running'")?
        .query_row([], |r| r.get(0))?;
    let mut stmt = tx.prepare_cached(
        "SELECT id, sop, priority, created_at, started_at IS NOT NULL, limits FROM runs WHERE status = 'queued'
         ORDER BY priority DESC, created_at, id",
    )?;
    let mut rows = stmt.query([])?;
    let mut loads: HashMap<String, SopLoad> = HashMap::new();
    let mut seen: u32 = 0;
    while let Some(r) = rows.next()? {
        seen += 1;
        let q = Queued {
            id: r.get(0)?,
            sop: r.get(1)?,
            priority: priority_from_rank(r.get(2)?),
            created_at: r.get(3)?,
            resumed: r.get(4)?,
        };
        let limits_json: String = r.get(5)?;
        let stored: StoredLimits =
            serde_json::from_str(&limits_json).map_err(|source| StoreError::Corrupt {
                id: q.id.clone(),
                source,
            })?;
        if !loads.contains_key(&q.sop) {
            // `may_start` does not look at queued runs, so one load serves every run of a SOP.
            let load = sop_load(tx, &q.sop, &q.id)?;
            loads.insert(q.sop.clone(), load);
        }
        let may = policy::may_start(
            &q,
            &Limits::from(&stored),
            &loads[&q.sop],
            running_total,
            workers,
        );
        if q.id == id {
            return Ok(may);
        }
        if may.is_ok() {
            while let Some(r) = rows.next()? {
                seen += 1;
                if r.get::<_, String>(0)? == id {
                    return Ok(Err(policy::Blocked::Behind { position: seen }));
                }
            }
            // `id` is not queued: there is no queue to wait in.
            return Ok(Ok(()));
        }
    }
    Ok(Ok(()))
}

/// Reads, changes and commits one run in one transaction (see [`Store::update_run`]).
fn update_in(
    conn: &mut Connection,
    store: &SqliteStore,
    id: &str,
    now: Millis,
    change: &mut RunChange<'_>,
) -> Result<Result<Run, Refusal>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    match apply_in(&tx, store, id, now, change)? {
        Applied::Refused(refusal) => Ok(Err(refusal)),
        Applied::Unchanged(run) => Ok(Ok(run)),
        Applied::Written(run, version) => {
            bump(&tx)?;
            tx.commit()?;
            remember(&store.cache, version + 1, run.clone());
            Ok(Ok(run))
        }
    }
}

/// What [`apply_in`] did.
enum Applied {
    Refused(Refusal),
    /// Nothing to write: the run as it was.
    Unchanged(Run),
    /// Written (not committed) over `version`.
    Written(Run, i64),
}

/// `change` applied to run `id` inside `tx`: the changed records and the events are
/// written; committing is the caller's.
fn apply_in(
    tx: &Transaction<'_>,
    store: &SqliteStore,
    id: &str,
    now: Millis,
    change: &mut RunChange<'_>,
) -> Result<Applied, StoreError> {
    let (mut run, version) = load_doc(tx, store, id)?;
    let before = run.clone();
    let mut events = Vec::new();
    if let Err(refusal) = change(&mut run, &mut events) {
        remember(&store.cache, version, before);
        return Ok(Applied::Refused(refusal));
    }
    if events.is_empty() && !records::differs(&before, &run) {
        // Nothing changed: no write, so waiters are not woken for nothing.
        remember(&store.cache, version, before);
        return Ok(Applied::Unchanged(run));
    }
    records::update_run(tx, &store.snapshots, &before, &run)?;
    insert_events(tx, id, now, &events)?;
    Ok(Applied::Written(run, version))
}

/// What [`claim_in`] did.
enum Claim {
    Claimed(Box<Run>, i64),
    NotQueued,
    Blocked(policy::Blocked),
}

/// `Store::claim_and` inside the transaction `tx` (not committed here): the run claimed and
/// walked, with the version it had.
fn claim_in(
    tx: &Transaction<'_>,
    store: &SqliteStore,
    id: &str,
    workers: u32,
    now: Millis,
    then: &mut RunChange<'_>,
) -> Result<Claim, StoreError> {
    let (mut run, version) = load_doc(tx, store, id)?;
    if run.status != RunStatus::Queued {
        remember(&store.cache, version, run);
        return Ok(Claim::NotQueued);
    }
    if let Err(why) = queue_verdict(tx, id, workers)? {
        remember(&store.cache, version, run);
        return Ok(Claim::Blocked(why));
    }
    let before = run.clone();
    let mut events = Vec::new();
    sop_core::run::claimed(&mut run, now, &mut events);
    let (claimed, claim_events) = (run.clone(), events.len());
    if then(&mut run, &mut events).is_err() {
        // `then` refused: the claim alone is committed.
        run = claimed;
        events.truncate(claim_events);
    }
    records::update_run(tx, &store.snapshots, &before, &run)?;
    insert_events(tx, id, now, &events)?;
    Ok(Claim::Claimed(Box::new(run), version))
}

/// Claims `next` for `next.me` inside `tx` if it is queued, not another live process's, and
/// may start.
fn claim_successor(
    tx: &Transaction<'_>,
    store: &SqliteStore,
    now: Millis,
    next: &Successor<'_>,
    then: &mut RunChange<'_>,
) -> Result<Option<(Run, i64)>, StoreError> {
    if !owned_by_none_but(tx, next)? || !(next.wanted)() {
        return Ok(None);
    }
    // Owned first: a run that ends in its walk to the first step (a final gate, a skip)
    // is then let go by that same write, like every ended run (undone if not claimed).
    set_owner(tx, next.id, next.me)?;
    let Claim::Claimed(run, version) = claim_in(tx, store, next.id, next.workers, now, then)?
    else {
        return Ok(None);
    };
    Ok(Some((*run, version)))
}

/// Whether `next.id` exists and is owned by nobody, by `next.me`, or by a process that is
/// gone.
fn owned_by_none_but(tx: &Transaction<'_>, next: &Successor<'_>) -> Result<bool, StoreError> {
    let owner: Option<(Option<u32>, Option<i64>)> = tx
        .prepare_cached("SELECT owner_pid, owner_start FROM runs WHERE id = ?1")?
        .query_row([next.id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(owner.is_some_and(|(pid, start)| {
        other_live(owner_from(pid, start), next.me, next.is_alive).is_none()
    }))
}

/// `Store::acquire` inside one transaction.
fn acquire_in(
    conn: &mut rusqlite::Connection,
    id: &str,
    me: Owner,
    is_alive: &dyn Fn(Owner) -> bool,
) -> Result<Owner, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: Option<(Option<u32>, Option<i64>, String)> = tx
        .prepare_cached("SELECT owner_pid, owner_start, status FROM runs WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((pid, start, status)) = current else {
        return Err(StoreError::NoSuchRun(id.to_string()));
    };
    if status_from(&status).is_terminal() {
        // Nothing left to drive: the caller may look, but the run is nobody's.
        return Ok(me);
    }
    if let Some(other) = other_live(owner_from(pid, start), me, is_alive) {
        return Ok(other);
    }
    set_owner(&tx, id, me)?;
    bump(&tx)?;
    tx.commit()?;
    Ok(me)
}

/// `Store::release` inside one transaction.
fn release_in(conn: &mut rusqlite::Connection, id: &str, me: Owner) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let released = tx
        .prepare_cached(
            "UPDATE runs SET owner_pid = NULL, owner_start = NULL WHERE id = ?1 AND owner_pid = ?2 AND owner_start = ?3",
        )?
        .execute(params![id, me.pid, me.start_time as i64])?;
    if released > 0 {
        bump(&tx)?;
        tx.commit()?;
    } // else: not ours (or released when it ended): nothing to write
    Ok(())
}

impl Store for SqliteStore {
    fn create_run(
        &self,
        run: Run,
        audit_path: &str,
        owner: Option<Owner>,
        now: Millis,
    ) -> Result<Created, StoreError> {
        self.create_batched(run, audit_path, owner, now, None)
    }

    fn create_fired_run(
        &self,
        run: Run,
        audit_path: &str,
        now: Millis,
        fire: &Fire,
    ) -> Result<Created, StoreError> {
        self.create_batched(run, audit_path, None, now, Some(fire.clone()))
    }

    fn last_fire(&self, sop: &str, trigger_key: &str) -> Result<Option<Millis>, StoreError> {
        self.read(|conn| super::schedule::last_fire(conn, sop, trigger_key))
    }

    fn note_schedule_seen(
        &self,
        sop: &str,
        trigger_key: &str,
        at: Millis,
    ) -> Result<(), StoreError> {
        self.with(|conn| super::schedule::note_seen(conn, sop, trigger_key, at))
    }

    fn load_run(&self, id: &str) -> Result<Option<Run>, StoreError> {
        self.read_run(id, |conn| {
            let Some(version) = version_of(conn, id)? else {
                return Ok(None);
            };
            let cached = self
                .cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(id, version);
            if let Some(run) = cached {
                return Ok(Some(run));
            }
            let run = read_whole(conn, self, id)?;
            remember(&self.cache, version, run.clone());
            Ok(Some(run))
        })
    }

    fn find_run_ids(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                // A range on the primary key (ids are ASCII; U+10FFFF sorts after any of them).
                "SELECT id FROM runs WHERE id >= ?1 AND id < ?1 || char(1114111) ORDER BY created_at LIMIT 20",
            )?;
            let ids = stmt
                .query_map([prefix], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(ids)
        })
    }

    fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>, StoreError> {
        self.read(|conn| {
            let mut sql = format!("SELECT {ROW_COLUMNS} FROM runs WHERE 1 = 1");
            let mut args: Vec<String> = Vec::new();
            if let Some(sop) = &filter.sop {
                args.push(sop.clone());
                let _ = write!(sql, " AND sop = ?{}", args.len());
            }
            if !filter.statuses.is_empty() {
                let marks: Vec<String> = filter
                    .statuses
                    .iter()
                    .map(|s| {
                        args.push(s.as_str().to_string());
                        format!("?{}", args.len())
                    })
                    .collect();
                let _ = write!(sql, " AND status IN ({})", marks.join(", "));
            }
            sql.push_str(" ORDER BY created_at DESC, id DESC");
            if let Some(limit) = filter.limit {
                let _ = write!(sql, " LIMIT {limit}");
            }
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args.iter()), run_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn run_row(&self, id: &str) -> Result<Option<RunRow>, StoreError> {
        self.read_run(id, |conn| {
            let mut stmt =
                conn.prepare_cached(&format!("SELECT {ROW_COLUMNS} FROM runs WHERE id = ?1"))?;
            let row = stmt.query_row([id], run_row).optional()?;
            Ok(row)
        })
    }

    fn update_run(
        &self,
        id: &str,
        now: Millis,
        change: &mut RunChange<'_>,
    ) -> Result<Result<Run, Refusal>, StoreError> {
        self.with(|conn| update_in(conn, self, id, now, change))
    }

    fn update_run_unsynced(
        &self,
        id: &str,
        now: Millis,
        change: &mut RunChange<'_>,
    ) -> Result<Result<Run, Refusal>, StoreError> {
        self.with_unsynced(|conn| update_in(conn, self, id, now, change))
    }

    fn claim(&self, id: &str, workers: u32, now: Millis) -> Result<ClaimResult, StoreError> {
        Ok(self
            .claim_and(id, workers, now, &mut |_, _| Ok(()))?
            .map(drop))
    }

    fn claim_and(
        &self,
        id: &str,
        workers: u32,
        now: Millis,
        then: &mut RunChange<'_>,
    ) -> Result<Result<Option<Run>, policy::Blocked>, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (run, version) = match claim_in(&tx, self, id, workers, now, then)? {
                Claim::Claimed(run, version) => (*run, version),
                Claim::NotQueued => return Ok(Ok(None)),
                Claim::Blocked(why) => return Ok(Err(why)),
            };
            bump(&tx)?;
            tx.commit()?;
            remember(&self.cache, version + 1, run.clone());
            Ok(Ok(Some(run)))
        })
    }

    fn update_run_then_claim(
        &self,
        id: &str,
        now: Millis,
        change: &mut RunChange<'_>,
        next: &Successor<'_>,
        then: &mut RunChange<'_>,
    ) -> Result<(Result<Run, Refusal>, Option<Run>), StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (run, written) = match apply_in(&tx, self, id, now, change)? {
                Applied::Refused(refusal) => return Ok((Err(refusal), None)),
                Applied::Unchanged(run) => (run, None),
                Applied::Written(run, version) => (run, Some(version)),
            };
            // The next run, if this one ended (its slot is free now, in this transaction). Under
            // a savepoint: whatever goes wrong with it, this run's change is committed.
            let mut claimed = None;
            if run.status.is_terminal() {
                tx.execute_batch("SAVEPOINT successor")?;
                match claim_successor(&tx, self, now, next, then) {
                    Ok(Some(next_claimed)) => {
                        tx.execute_batch("RELEASE successor")?;
                        claimed = Some(next_claimed);
                    }
                    // SQLite rolled the whole transaction back (a full disk, an I/O error): this
                    // run's change is made again, alone.
                    Err(_) if tx.is_autocommit() => {
                        drop(tx);
                        return Ok((update_in(conn, self, id, now, change)?, None));
                    }
                    // Not claimed, or it failed: the next run stays queued, as it was, and the
                    // scheduler sees to it.
                    Ok(None) => tx.execute_batch("ROLLBACK TO successor; RELEASE successor")?,
                    Err(e) => {
                        tracing::warn!(
                            "run {}: not claimed with the end of run {id}: {e}",
                            next.id
                        );
                        tx.execute_batch("ROLLBACK TO successor; RELEASE successor")?;
                    }
                }
            }
            if written.is_some() || claimed.is_some() {
                bump(&tx)?;
                tx.commit()?;
            }
            if let Some(version) = written {
                remember(&self.cache, version + 1, run.clone());
            }
            let claimed = claimed.map(|(next_run, next_version)| {
                remember(&self.cache, next_version + 1, next_run.clone());
                next_run
            });
            Ok((Ok(run), claimed))
        })
    }

    fn claim_preview(
        &self,
        id: &str,
        workers: u32,
        _now: Millis,
    ) -> Result<Option<policy::Blocked>, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            Ok(queue_verdict(&tx, id, workers)?.err())
        })
    }

    fn acquire(
        &self,
        id: &str,
        me: Owner,
        is_alive: &dyn Fn(Owner) -> bool,
    ) -> Result<Owner, StoreError> {
        // Ownership only matters while processes live, and a power loss ends them all:
        // no fsync needed (a crash of this process keeps it).
        self.with_unsynced(|conn| acquire_in(conn, id, me, is_alive))
    }

    fn release(&self, id: &str, me: Owner) -> Result<(), StoreError> {
        // Ownership only matters while processes live, and a power loss ends them all:
        // no fsync needed (a crash of this process keeps it).
        self.with_unsynced(|conn| release_in(conn, id, me))
    }

    fn active_runs(&self) -> Result<Vec<RunRow>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {ROW_COLUMNS} FROM runs WHERE status IN ('queued', 'running', 'waiting_approval', 'waiting_confirmation', 'interrupted')
                 ORDER BY priority DESC, created_at, id"
            ))?;
            let rows = stmt
                .query_map([], run_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn append_output(
        &self,
        run_id: &str,
        gate: &str,
        attempt: u32,
        text: &str,
    ) -> Result<(), StoreError> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            tx.prepare_cached(
                "INSERT INTO output (run_id, gate, attempt, text) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![run_id, gate, attempt, text])?;
            bump(&tx)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn output_since(&self, run_id: &str, after_seq: i64) -> Result<Vec<OutputChunk>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT seq, gate, attempt, text FROM output WHERE run_id = ?1 AND seq > ?2 ORDER BY seq")?;
            let rows = stmt
                .query_map(params![run_id, after_seq], |r| {
                    Ok(OutputChunk {
                        seq: r.get(0)?,
                        gate: r.get(1)?,
                        attempt: r.get(2)?,
                        text: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn events_since(&self, run_id: &str, after_seq: i64) -> Result<Vec<EventRow>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, at, body FROM events WHERE run_id = ?1 AND seq > ?2 ORDER BY seq",
            )?;
            let rows = stmt
                .query_map(params![run_id, after_seq], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(seq, at, body)| {
                    let event =
                        serde_json::from_str(&body).map_err(|source| StoreError::Corrupt {
                            id: run_id.to_string(),
                            source,
                        })?;
                    Ok(EventRow {
                        seq,
                        run_id: run_id.to_string(),
                        at,
                        event,
                    })
                })
                .collect()
        })
    }

    fn queue_head(&self, limit: u32) -> Result<Vec<RunRow>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {ROW_COLUMNS} FROM runs WHERE status = 'queued' ORDER BY priority DESC, created_at, id LIMIT ?1"
            ))?;
            let rows = stmt
                .query_map([limit], run_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn due_deadlines(&self, now: Millis) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id FROM runs WHERE deadline IS NOT NULL AND deadline <= ?1
                 AND status IN ('waiting_approval', 'waiting_confirmation') ORDER BY deadline",
            )?;
            let ids = stmt
                .query_map([now], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(ids)
        })
    }

    fn change_counter(&self) -> Result<i64, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT value FROM meta WHERE key = 'changes'")?;
            let counter = stmt.query_row([], |r| r.get(0))?;
            Ok(counter)
        })
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            bump(&tx)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn last_event_seq(&self) -> Result<i64, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT coalesce(max(seq), 0) FROM events")?;
            let seq = stmt.query_row([], |r| r.get(0))?;
            Ok(seq)
        })
    }

    fn ended_since(&self, after_seq: i64) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            // The events after the mark (a range of `seq`, the rowid), and the runs they name.
            let mut stmt = conn.prepare_cached(
                "SELECT id FROM runs WHERE completed_at IS NOT NULL
                 AND id IN (SELECT run_id FROM events WHERE seq > ?1) ORDER BY completed_at, id",
            )?;
            let ids = stmt
                .query_map([after_seq], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(ids)
        })
    }

    fn settle_marks(&self) -> Result<Vec<(Owner, i64)>, StoreError> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT key, value FROM meta WHERE key LIKE 'settled:%'")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            // A key this build cannot read is not a mark of any live `sop`: left alone.
            Ok(rows
                .into_iter()
                .filter_map(|(key, through)| Some((mark_owner(&key)?, through)))
                .collect())
        })
    }

    fn set_settle_mark(&self, owner: Owner, through: Option<i64>) -> Result<(), StoreError> {
        let key = mark_key(owner);
        self.with(|conn| {
            match through {
                Some(seq) => conn
                    .prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
                    .execute(params![key, seq])?,
                None => conn
                    .prepare_cached("DELETE FROM meta WHERE key = ?1")?
                    .execute([key])?,
            };
            Ok(())
        })
    }

    fn events_after(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<(EventRow, String)>, StoreError> {
        self.read(|conn| super::notify::events_after(conn, after_seq, limit))
    }

    fn notify_cursor(&self) -> Result<Option<i64>, StoreError> {
        self.read(super::notify::cursor)
    }

    fn set_notify_cursor(&self, seq: i64) -> Result<(), StoreError> {
        // Unsynced: after a power loss the notifier resends a few notices, as it may anyway.
        self.with_unsynced(|conn| super::notify::set_cursor(conn, seq))
    }

    fn record_delivery(&self, d: &Delivery) -> Result<(), StoreError> {
        self.with(|conn| super::notify::record_delivery(conn, d))
    }

    fn verify_ledger(&self) -> Result<crate::LedgerCheck, StoreError> {
        self.read(super::ledger::verify)
    }

    fn record_suppression(&self, s: &Suppression) -> Result<(), StoreError> {
        self.with(|conn| super::metrics::record(conn, s))
    }

    fn metric_facts(
        &self,
        since: Option<Millis>,
        sop: Option<&str>,
    ) -> Result<(Vec<RunFacts>, Vec<SuppressedFact>), StoreError> {
        let since = since.unwrap_or(Millis::MIN);
        self.read(|conn| super::metrics::facts(conn, &self.snapshots, since, sop))
    }
}

/// The `meta` key of `owner`'s settle mark: `settled:<pid>:<start time>`.
fn mark_key(owner: Owner) -> String {
    format!("settled:{}:{}", owner.pid, owner.start_time)
}

fn mark_owner(key: &str) -> Option<Owner> {
    let (pid, start_time) = key.strip_prefix("settled:")?.split_once(':')?;
    Some(Owner {
        pid: pid.parse().ok()?,
        start_time: start_time.parse().ok()?,
    })
}
