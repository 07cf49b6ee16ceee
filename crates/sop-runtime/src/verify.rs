//! `sop audit verify` (SPEC §7): the event ledger's hash chain, and every run's audit file
//! against the run the store keeps — an ended run's file must say exactly what the store
//! says (altered otherwise), every run must have its file (removed otherwise), and a file
//! no run names is reported (a run removed from the store, or a stray file).

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;
use sop_store::RunFilter;

use crate::audit;
use crate::ops::{OpError, Ops};

/// What `sop audit verify` found.
#[derive(Debug, Default, Serialize)]
pub struct AuditCheck {
    /// Events in the ledger.
    pub events: u64,
    /// The first event whose hash does not follow (altered, removed or moved at or before it).
    pub ledger_broken_at: Option<i64>,
    /// The newest event's `seq` and hash: note it, and compare later.
    pub head: Option<(i64, String)>,
    /// Audit files read.
    pub files: u64,
    /// Runs whose audit file is not there.
    pub missing: Vec<Problem>,
    /// Ended runs whose file does not say what the store says (or cannot be read as JSON).
    pub altered: Vec<Problem>,
    /// Files under `logs/sop/` no run names.
    pub unknown: Vec<String>,
    /// Ended runs whose file still shows them moving (their final rewrite was not made:
    /// a crash or a failed write; `sop serve` redoes it as it starts). Not a failure.
    pub stale: Vec<Problem>,
}

impl AuditCheck {
    pub fn ok(&self) -> bool {
        self.ledger_broken_at.is_none()
            && self.missing.is_empty()
            && self.altered.is_empty()
            && self.unknown.is_empty()
    }
}

#[derive(Debug, Serialize)]
pub struct Problem {
    pub run_id: String,
    pub path: String,
    pub why: String,
}

impl Ops<'_> {
    /// Checks the ledger and the audit files. Reads only (open the store without recovery
    /// for a check that changes nothing).
    pub fn verify_audit(&self) -> Result<AuditCheck, OpError> {
        let ledger = self.store.verify_ledger()?;
        let mut check = AuditCheck {
            events: ledger.events,
            ledger_broken_at: ledger.first_broken,
            head: ledger.head,
            ..AuditCheck::default()
        };
        // Files first: a run created meanwhile has its row by the time runs are listed.
        let files = audit_files(&self.home.root().join("logs/sop"));
        let rows = self.store.list_runs(&RunFilter::default())?;
        let mut named = BTreeSet::new();
        for row in &rows {
            if let Some(rel) = &row.audit_path {
                named.insert(self.home.root().join(rel));
            }
        }
        for file in files {
            if !named.contains(&file) {
                check.unknown.push(self.home.display(&file));
            }
        }
        // A run's file is written just after its commit: what looks wrong is looked at
        // again a moment later, and only what stays wrong is reported.
        let mut suspects = Vec::new();
        for row in &rows {
            if let Some(found) = self.look_at(row, &mut check.files)? {
                suspects.push((row.id.clone(), found));
            }
        }
        if !suspects.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        for (id, _) in suspects {
            let Some(row) = self.store.run_row(&id)? else {
                continue;
            };
            let mut ignored = 0;
            match self.look_at(&row, &mut ignored)? {
                Some(Found::Missing(p)) => check.missing.push(p),
                Some(Found::Altered(p)) => check.altered.push(p),
                Some(Found::Stale(p)) => check.stale.push(p),
                None => {}
            }
        }
        Ok(check)
    }
}

/// What is wrong with one run's file.
enum Found {
    Missing(Problem),
    Altered(Problem),
    Stale(Problem),
}

impl Ops<'_> {
    /// One run's audit file against the store (`files` counts the files read).
    fn look_at(&self, row: &sop_store::RunRow, files: &mut u64) -> Result<Option<Found>, OpError> {
        let Some(rel) = row.audit_path.clone() else {
            return Ok(None);
        };
        let problem = |why: String| Problem {
            run_id: row.id.clone(),
            path: rel.clone(),
            why,
        };
        let text = match std::fs::read_to_string(self.home.root().join(&rel)) {
            Ok(text) => text,
            Err(e) => return Ok(Some(Found::Missing(problem(e.to_string())))),
        };
        *files += 1;
        // A moving run's file may be a moment behind the store: only ended runs' files
        // are held to what the store says.
        if !row.status.is_terminal() {
            return Ok(None);
        }
        let Some(run) = self.store.load_run(&row.id)? else {
            return Ok(None);
        };
        let found = match serde_json::from_str::<serde_json::Value>(&text) {
            Err(e) => return Ok(Some(Found::Altered(problem(format!("not JSON: {e}"))))),
            Ok(found) => found,
        };
        // The final rewrite never made (a crash, a failed write): `sop serve` redoes it as
        // it starts. Not an alteration.
        let said = found
            .get("status")
            .and_then(|s| s.as_str())
            .unwrap_or_default();
        if sop_core::run::RunStatus::parse(said).is_some_and(|s| !s.is_terminal()) {
            return Ok(Some(Found::Stale(problem(format!(
                "the file still says `{said}`; the run ended `{}` (the next `sop serve` rewrites it)",
                row.status.as_str()
            )))));
        }
        Ok(differs(&found, &audit::document(&run)).map(|why| Found::Altered(problem(why))))
    }
}

/// The first field (a JSON pointer) where `found` and `expected` differ.
fn differs(found: &serde_json::Value, expected: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    fn walk(at: &str, a: &Value, b: &Value) -> Option<String> {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                keys.into_iter().find_map(|k| {
                    walk(
                        &format!("{at}/{k}"),
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                    )
                })
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
                .iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (p, q))| walk(&format!("{at}/{i}"), p, q)),
            _ if a == b => None,
            _ => Some(format!(
                "`{}` differs from the store",
                if at.is_empty() { "/" } else { at }
            )),
        }
    }
    walk("", found, expected)
}

/// The audit files under `logs/sop/<sop>/` (not the hidden spares and locks).
fn audit_files(root: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(root) else {
        return out;
    };
    for dir in dirs.flatten() {
        let Ok(files) = std::fs::read_dir(dir.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name();
            let name = name.to_string_lossy();
            if !name.starts_with('.') && name.ends_with(".json") {
                out.push(f.path());
            }
        }
    }
    out.sort();
    out
}
