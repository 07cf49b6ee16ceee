//! What the metrics read (`Store::metric_facts`), and the suppressed triggers they count
//! (`Store::record_suppression`, schema 3).

use std::collections::HashMap;

use rusqlite::{params, Connection};
use serde::Deserialize;
use sop_core::metrics::{RunFacts, SuppressedFact};
use sop_core::run::{DecisionKind, Millis};

use super::runs::status_from;
use crate::{StoreError, Suppression};

/// A decision as the run's head keeps it: only what the metrics need.
#[derive(Deserialize)]
struct Decided {
    decision: DecisionKind,
    waited_ms: i64,
}

/// The facts of the runs created at or after `since`, and the triggers suppressed since,
/// from the connection's snapshot. Only the fields the metrics need are taken out of the
/// stored documents (`json_extract`), so step output is not read into memory.
pub(super) fn facts(
    conn: &Connection,
    since: Millis,
) -> Result<(Vec<RunFacts>, Vec<SuppressedFact>), StoreError> {
    let mut runs: Vec<RunFacts> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT id, sop, status, created_at, started_at, completed_at,
                json_extract(doc, '$.queue_wait_ms'), json_extract(doc, '$.approvals')
         FROM runs WHERE created_at >= ?1",
    )?;
    let mut rows = stmt.query([since])?;
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        let approvals: Option<String> = r.get(7)?;
        let decisions = match approvals {
            None => vec![],
            Some(text) => serde_json::from_str::<Vec<Decided>>(&text)
                .map_err(|source| StoreError::Corrupt {
                    id: id.clone(),
                    source,
                })?
                .into_iter()
                .map(|d| (d.decision, d.waited_ms))
                .collect(),
        };
        index.insert(id, runs.len());
        runs.push(RunFacts {
            sop: r.get(1)?,
            status: status_from(&r.get::<_, String>(2)?),
            created_at: r.get(3)?,
            started_at: r.get(4)?,
            completed_at: r.get(5)?,
            queue_wait_ms: r.get(6)?,
            step_durations_ms: vec![],
            decisions,
        });
    }
    let mut stmt = conn.prepare_cached(
        "SELECT rr.run_id, json_extract(rr.doc, '$.duration_ms')
         FROM run_records rr JOIN runs r ON r.id = rr.run_id
         WHERE r.created_at >= ?1 AND rr.slot LIKE 'main:%'
           AND json_extract(rr.doc, '$.duration_ms') IS NOT NULL",
    )?;
    let mut rows = stmt.query([since])?;
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        if let Some(&i) = index.get(&id) {
            runs[i].step_durations_ms.push(r.get(1)?);
        }
    }
    let suppressed = conn
        .prepare_cached("SELECT sop, at FROM suppressed_triggers WHERE at >= ?1")?
        .query_map([since], |r| {
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
        "INSERT INTO suppressed_triggers (at, sop, trigger, by, cooldown_run)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![s.at, s.sop, s.trigger, s.by, s.cooldown_run])?;
    Ok(())
}
