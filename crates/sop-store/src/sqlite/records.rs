//! How a [`Run`] is laid out in rows (schema version 2): the head in `runs.doc`, the SOP
//! snapshot in `sop_snapshots` (shared by content), one `run_records` row per step record.
//! A change writes the head and only the records that differ from the run as read.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sop_core::run::{Run, StepRecord};
use sop_core::Sop;

use crate::StoreError;

/// Where a step record sits in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot<'a> {
    Main(usize),
    Rollback(usize),
    Gate(&'a str),
}

impl Slot<'_> {
    fn key(&self) -> String {
        match self {
            Slot::Main(i) => format!("main:{i}"),
            Slot::Rollback(i) => format!("rollback:{i}"),
            Slot::Gate(name) => format!("gate:{name}"),
        }
    }

    fn parse(key: &str) -> Option<Slot<'_>> {
        let (list, at) = key.split_once(':')?;
        match list {
            "main" => at.parse().ok().map(Slot::Main),
            "rollback" => at.parse().ok().map(Slot::Rollback),
            "gate" => Some(Slot::Gate(at)),
            _ => None,
        }
    }
}

/// SOP snapshots this process read or wrote, by content hash. Content-addressed, so an
/// entry is never stale; the cap only bounds memory.
#[derive(Default)]
pub(crate) struct Snapshots {
    /// Oldest first.
    entries: Vec<(Arc<Sop>, String)>,
}

impl Snapshots {
    const CAP: usize = 32;

    fn hash_of(&self, sop: &Arc<Sop>) -> Option<String> {
        self.entries
            .iter()
            .find(|(s, _)| Arc::ptr_eq(s, sop))
            .map(|(_, h)| h.clone())
    }

    fn sop_of(&self, hash: &str) -> Option<Arc<Sop>> {
        self.entries
            .iter()
            .find(|(_, h)| h == hash)
            .map(|(s, _)| Arc::clone(s))
    }

    fn put(&mut self, sop: Arc<Sop>, hash: String) {
        if self.entries.len() >= Self::CAP {
            self.entries.remove(0);
        }
        self.entries.push((sop, hash));
    }
}

fn corrupt(id: &str) -> impl Fn(serde_json::Error) -> StoreError + '_ {
    move |source| StoreError::Corrupt {
        id: id.to_string(),
        source,
    }
}

fn to_json<T: Serialize>(id: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(corrupt(id))
}

/// The hash under which `sop` is stored, storing it first if the database lacks it.
fn snapshot_hash(
    conn: &Connection,
    cache: &Mutex<Snapshots>,
    run_id: &str,
    sop: &Arc<Sop>,
) -> Result<String, StoreError> {
    let known = lock(cache).hash_of(sop);
    let Some(hash) = known else {
        let doc = to_json(run_id, &**sop)?;
        let hash = hex::encode(Sha256::digest(doc.as_bytes()));
        conn.prepare_cached("INSERT OR IGNORE INTO sop_snapshots (hash, doc) VALUES (?1, ?2)")?
            .execute(params![hash, doc])?;
        lock(cache).put(Arc::clone(sop), hash.clone());
        return Ok(hash);
    };
    // Known to this process, but the transaction that stored it may have rolled back.
    let present = conn
        .prepare_cached("SELECT 1 FROM sop_snapshots WHERE hash = ?1")?
        .exists([&hash])?;
    if !present {
        conn.prepare_cached("INSERT INTO sop_snapshots (hash, doc) VALUES (?1, ?2)")?
            .execute(params![hash, to_json(run_id, &**sop)?])?;
    }
    Ok(hash)
}

pub(super) fn snapshot(
    conn: &Connection,
    cache: &Mutex<Snapshots>,
    run_id: &str,
    hash: &str,
) -> Result<Arc<Sop>, StoreError> {
    if let Some(sop) = lock(cache).sop_of(hash) {
        return Ok(sop);
    }
    let doc: String = conn
        .prepare_cached("SELECT doc FROM sop_snapshots WHERE hash = ?1")?
        .query_row([hash], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::MissingSnapshot {
            id: run_id.to_string(),
            hash: hash.to_string(),
        })?;
    let sop = Arc::new(serde_json::from_str::<Sop>(&doc).map_err(corrupt(run_id))?);
    lock(cache).put(Arc::clone(&sop), hash.to_string());
    Ok(sop)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads run `id` whole, or `None` if there is no such run.
pub(crate) fn read_run(
    conn: &Connection,
    cache: &Mutex<Snapshots>,
    id: &str,
) -> Result<Option<Run>, StoreError> {
    let Some((head, hash)) = conn
        .prepare_cached("SELECT doc, sop_hash FROM runs WHERE id = ?1")?
        .query_row([id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .optional()?
    else {
        return Ok(None);
    };
    let mut run: Run = serde_json::from_str(&head).map_err(corrupt(id))?;
    run.sop = snapshot(conn, cache, id, &hash)?;
    let mut stmt = conn.prepare_cached("SELECT slot, doc FROM run_records WHERE run_id = ?1")?;
    let mut rows = stmt.query([id])?;
    let mut main = Vec::new();
    let mut rollback = Vec::new();
    while let Some(row) = rows.next()? {
        let key: String = row.get(0)?;
        let record: Arc<StepRecord> =
            serde_json::from_str(&row.get::<_, String>(1)?).map_err(corrupt(id))?;
        match Slot::parse(&key) {
            Some(Slot::Main(i)) => main.push((i, record)),
            Some(Slot::Rollback(i)) => rollback.push((i, record)),
            Some(Slot::Gate(name)) => {
                run.gates.insert(name.to_string(), record);
            }
            None => {
                return Err(StoreError::BadSlot {
                    id: id.to_string(),
                    slot: key,
                })
            }
        }
    }
    run.steps = dense(id, main)?;
    run.rollback = dense(id, rollback)?;
    Ok(Some(run))
}

/// Records by index into a vector; the indices must be exactly `0..n`.
fn dense(
    id: &str,
    mut records: Vec<(usize, Arc<StepRecord>)>,
) -> Result<Vec<Arc<StepRecord>>, StoreError> {
    records.sort_unstable_by_key(|(i, _)| *i);
    if let Some((i, _)) = records
        .iter()
        .enumerate()
        .find(|(n, (i, _))| n != i)
        .map(|(_, r)| r)
    {
        return Err(StoreError::BadSlot {
            id: id.to_string(),
            slot: format!("index {i} out of sequence"),
        });
    }
    Ok(records.into_iter().map(|(_, r)| r).collect())
}

/// What goes beside the head in the `runs` row, in columns the scheduler queries.
pub(crate) struct Columns<'a> {
    pub limits: &'a str,
    pub audit_path: &'a str,
    pub owner: Option<crate::Owner>,
}

/// Inserts a new run: its row, its SOP snapshot (unless stored already) and its records.
pub(crate) fn insert_run(
    conn: &Connection,
    cache: &Mutex<Snapshots>,
    run: &Run,
    columns: &Columns<'_>,
) -> Result<(), StoreError> {
    let hash = snapshot_hash(conn, cache, &run.id, &run.sop)?;
    conn.prepare_cached(
        "INSERT INTO runs (id, sop, status, priority, created_at, limits, version, audit_path, doc, owner_pid, owner_start, sop_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        run.id,
        run.sop.name,
        run.status.as_str(),
        run.priority.rank(),
        run.created_at,
        columns.limits,
        columns.audit_path,
        to_json(&run.id, run)?,
        columns.owner.map(|o| o.pid),
        columns.owner.map(|o| o.start_time as i64),
        hash,
    ])?;
    write_records(conn, &run.clone_head(), run)
}

/// Writes `after` over `before` (the run as read in this transaction): the head and
/// columns always, the SOP snapshot if it changed, and the records that differ.
pub(crate) fn update_run(
    conn: &Connection,
    cache: &Mutex<Snapshots>,
    before: &Run,
    after: &Run,
) -> Result<(), StoreError> {
    let deadline = |r: &Run| r.wait.as_ref().and_then(|w| w.deadline);
    let indexed_same = before.status == after.status
        && before.priority == after.priority
        && before.started_at == after.started_at
        && before.completed_at == after.completed_at
        && before.executed_step == after.executed_step
        && deadline(before) == deadline(after);
    if indexed_same {
        // SQLite rewrites the entries of every index on a column an UPDATE sets, changed or
        // not: between two steps only the head changes, so only it is set.
        conn.prepare_cached("UPDATE runs SET version = version + 1, doc = ?2 WHERE id = ?1")?
            .execute(params![after.id, to_json(&after.id, after)?])?;
    } else {
        // A run that ends has no driver any more: its owner goes in the same write.
        conn.prepare_cached(
            "UPDATE runs SET status = ?2, priority = ?3, started_at = ?4, completed_at = ?5, executed_step = ?6,
                             version = version + 1, doc = ?7, deadline = ?8,
                             owner_pid = CASE WHEN ?9 THEN NULL ELSE owner_pid END,
                             owner_start = CASE WHEN ?9 THEN NULL ELSE owner_start END
             WHERE id = ?1",
        )?
        .execute(params![
            after.id,
            after.status.as_str(),
            after.priority.rank(),
            after.started_at,
            after.completed_at,
            after.executed_step,
            to_json(&after.id, after)?,
            deadline(after),
            after.status.is_terminal()
        ])?;
    }
    if before.sop != after.sop {
        let hash = snapshot_hash(conn, cache, &after.id, &after.sop)?;
        conn.prepare_cached("UPDATE runs SET sop_hash = ?2 WHERE id = ?1")?
            .execute(params![after.id, hash])?;
    }
    write_records(conn, before, after)
}

/// Whether anything stored differs between `before` and `after`. Cheap: records and the
/// SOP are shared (`Arc`), and equal pointers compare equal without a look inside.
pub(crate) fn differs(before: &Run, after: &Run) -> bool {
    before != after
}

fn write_records(conn: &Connection, before: &Run, after: &Run) -> Result<(), StoreError> {
    let mut upsert = conn.prepare_cached(
        "INSERT INTO run_records (run_id, slot, doc) VALUES (?1, ?2, ?3)
         ON CONFLICT (run_id, slot) DO UPDATE SET doc = excluded.doc",
    )?;
    let mut delete =
        conn.prepare_cached("DELETE FROM run_records WHERE run_id = ?1 AND slot = ?2")?;
    let id = after.id.as_str();
    let lists = [
        (
            &before.steps,
            &after.steps,
            Slot::Main as fn(usize) -> Slot<'static>,
        ),
        (&before.rollback, &after.rollback, Slot::Rollback),
    ];
    for (old, new, slot) in lists {
        for (i, record) in new.iter().enumerate() {
            if old.get(i) != Some(record) {
                upsert.execute(params![id, slot(i).key(), to_json(id, record)?])?;
            }
        }
        for i in new.len()..old.len() {
            delete.execute(params![id, slot(i).key()])?;
        }
    }
    for (name, record) in &after.gates {
        if before.gates.get(name) != Some(record) {
            upsert.execute(params![id, Slot::Gate(name).key(), to_json(id, record)?])?;
        }
    }
    for name in before
        .gates
        .keys()
        .filter(|n| !after.gates.contains_key(*n))
    {
        delete.execute(params![id, Slot::Gate(name).key()])?;
    }
    Ok(())
}

/// Splits a version-1 run document (the whole run as one JSON object) into the head, the
/// SOP snapshot and the records of version 2. Used by the migration only.
pub(crate) fn split_v1(
    conn: &Connection,
    cache: &Mutex<Snapshots>,
    id: &str,
    doc: &str,
) -> Result<(), StoreError> {
    let mut whole: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(doc).map_err(corrupt(id))?;
    let mut take = |key: &str| whole.remove(key).unwrap_or(serde_json::Value::Null);
    let sop: Sop = serde_json::from_value(take("sop")).map_err(corrupt(id))?;
    let steps: Vec<Arc<StepRecord>> = serde_json::from_value(take("steps")).map_err(corrupt(id))?;
    let rollback: Vec<Arc<StepRecord>> =
        serde_json::from_value(take("rollback")).map_err(corrupt(id))?;
    let gates: BTreeMap<String, Arc<StepRecord>> =
        serde_json::from_value(take("gates")).map_err(corrupt(id))?;
    let mut run: Run =
        serde_json::from_value(serde_json::Value::Object(whole)).map_err(corrupt(id))?;
    run.sop = Arc::new(sop);
    let hash = snapshot_hash(conn, cache, id, &run.sop)?;
    conn.execute(
        "UPDATE runs SET doc = ?2, sop_hash = ?3 WHERE id = ?1",
        params![id, to_json(id, &run)?, hash],
    )?;
    let empty = run.clone_head();
    run.steps = steps;
    run.rollback = rollback;
    run.gates = gates;
    write_records(conn, &empty, &run)
}
