//! What the metrics read (`Store::metric_facts`), and the suppressed triggers they count
//! (`Store::record_suppression`, schema 3).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use rusqlite::{params, Connection};
use serde::Deserialize;
use sop_core::metrics::{DecisionFact, RunFacts, SuppressedFact};
use sop_core::run::{DecisionKind, Millis};

use super::records::{self, Snapshots};
use super::runs::status_from;
use crate::{StoreError, Suppression};

/// A decision as the run's head keeps it: only what the metrics need.
#[derive(Deserialize)]
struct Decided {
    gate: String,
    decision: DecisionKind,
    waited_ms: i64,
}

/// The facts of the runs created at or after `since` (of SOP `sop` only, if given), and
/// the triggers suppressed since, from the connection's snapshot. Fields of the stored
/// documents are taken out with `json_extract` (`SQLite` still parses each step record
/// whole, its output included, but none of it is copied out).
pub(super) fn facts(
    conn: &Connection,
    snapshots: &Mutex<Snapshots>,
    since: Millis,
    sop: Option<&str>,
) -> Result<(Vec<RunFacts>, Vec<SuppressedFact>), StoreError> {
    let mut runs: Vec<RunFacts> = Vec::new();
    // Run id → (index in `runs`, its SOP snapshot's hash).
    let mut index: HashMap<String, (usize, String)> = HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT id, sop, status, created_at, started_at, completed_at, sop_hash,
                json_extract(doc, '$.queue_wait_ms'), json_extract(doc, '$.approvals')
         FROM runs WHERE created_at >= ?1 AND (?2 IS NULL OR sop = ?2)",
    )?;
    let mut rows = stmt.query(params![since, sop])?;
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        let approvals: Option<String> = r.get(8)?;
        let decisions = match approvals {
            None => vec![],
            Some(text) => serde_json::from_str::<Vec<Decided>>(&text)
                .map_err(|source| StoreError::Corrupt {
                    id: id.clone(),
                    source,
                })?
                .into_iter()
                .map(|d| DecisionFact {
                    kind: d.decision,
                    gate: d.gate,
                    waited_ms: d.waited_ms,
                })
                .collect(),
        };
        index.insert(id, (runs.len(), r.get(6)?));
        runs.push(RunFacts {
            sop: r.get(1)?,
            status: status_from(&r.get::<_, String>(2)?),
            created_at: r.get(3)?,
            started_at: r.get(4)?,
            completed_at: r.get(5)?,
            queue_wait_ms: r.get(7)?,
            step_durations_ms: vec![],
            decisions,
        });
    }
    // Manual steps (no code) by snapshot: their records' durations are a person's wait.
    let mut manual: HashMap<String, HashSet<usize>> = HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT rr.run_id, substr(rr.slot, 6), json_extract(rr.doc, '$.duration_ms')
         FROM run_records rr JOIN runs r ON r.id = rr.run_id
         WHERE r.created_at >= ?1 AND (?2 IS NULL OR r.sop = ?2) AND rr.slot LIKE 'main:%'
           AND json_extract(rr.doc, '$.duration_ms') IS NOT NULL",
    )?;
    let mut rows = stmt.query(params![since, sop])?;
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        let Some((i, hash)) = index.get(&id) else {
            continue;
        };
        let step: usize = r.get::<_, String>(1)?.parse().unwrap_or(usize::MAX);
        if !manual.contains_key(hash) {
            let sop = records::snapshot(conn, snapshots, &id, hash)?;
            let steps = sop.steps.iter().enumerate();
            let set = steps.filter(|(_, s)| s.scripts.is_empty()).map(|(k, _)| k);
            manual.insert(hash.clone(), set.collect());
        }
        if !manual[hash].contains(&step) {
            runs[*i].step_durations_ms.push(r.get(2)?);
        }
    }
    let suppressed = conn
        .prepare_cached(
            "SELECT sop, at FROM suppressed_triggers WHERE at >= ?1 AND (?2 IS NULL OR sop = ?2)",
        )?
        .query_map(params![since, sop], |r| {
            Ok(SuppressedFact {
                sop: r.get(0)?,
                at: r.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((runs, suppressed))
}

pub(super) fn record(conn: &Connection, s: &Suppression) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO suppressed_triggers (at, sop, trigger_type, sent_by, cooldown_run)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![s.at, s.sop, s.trigger, s.by, s.cooldown_run])?;
    Ok(())
}
