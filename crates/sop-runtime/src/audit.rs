//! The per-run audit file (SPEC §7): one JSON document, rewritten atomically (write,
//! rename) after every committed transition; fsynced (file and directory) whenever the run
//! comes to rest (waits, queues, ends), not between two steps of a moving run (see
//! [`Sync`]). `sop status --json` prints the same document.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use sop_core::run::{DecisionKind, Run, RunStatus, StepRecord, StepStatus};
use sop_store::Store;

use crate::clock::{file_stamp, rfc3339};
use crate::home::Home;

/// The audit document of a run: the seed's fields plus what an operator needs.
pub fn document(run: &Run) -> Value {
    let secret: Vec<&str> = run.sop.secret_vars().collect();
    let vars: Map<String, Value> = run
        .vars
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                Value::String(if secret.contains(&k.as_str()) {
                    "***".to_string()
                } else {
                    v.clone()
                }),
            )
        })
        .collect();
    let steps: Vec<Value> = run.steps.iter().map(|s| step_json(s)).collect();
    let rollback: Vec<Value> = run.rollback.iter().map(|s| step_json(s)).collect();
    let gates: Map<String, Value> = run
        .gates
        .iter()
        .map(|(k, r)| (k.clone(), step_json(r)))
        .collect();
    let approvals: Vec<Value> = run
        .approvals
        .iter()
        .map(|a| {
            json!({
                "gate": a.gate, "decision": a.decision, "by": a.by, "channel": a.channel,
                "at": rfc3339(a.at), "comment": a.comment, "waited_ms": a.waited_ms,
            })
        })
        .collect();
    let waiting = run.wait.as_ref().map(|w| {
        json!({
            "gate": w.gate, "kind": w.kind, "since": rfc3339(w.since),
            "deadline": w.deadline.map(rfc3339), "approved_by": w.approved_by, "required": w.required,
            "approvers": if run.sop.approvers.is_empty() { json!("anyone") } else { json!(run.sop.approvers) },
            "self_approval": run.sop.allow_self_approval,
            "timeout_action": run.sop.approval_timeout_action,
        })
    });
    let current_step = run
        .steps
        .iter()
        .chain(run.rollback.iter())
        .find(|s| s.status == StepStatus::Running)
        .map(|s| s.number);
    json!({
        "sop": run.sop.name,
        "version": run.sop.version,
        "run_id": run.id,
        "status": run.status,
        "priority": run.priority.as_str(),
        "execution_mode": run.mode.as_str(),
        "created_at": rfc3339(run.created_at),
        "started_at": run.started_at.map(rfc3339),
        "completed_at": run.completed_at.map(rfc3339),
        "trigger": {"type": run.trigger.kind, "by": run.trigger.by},
        "skip_approval": run.skip_approval,
        "forced": run.forced,
        "vars": vars,
        "current_step": current_step,
        "waiting": waiting,
        "error": run.error,
        "steps": steps,
        "rollback": rollback,
        "gates": gates,
        "approvals": approvals,
        "metrics": metrics(run),
    })
}

fn step_json(s: &StepRecord) -> Value {
    json!({
        "number": s.number,
        "title": s.title,
        "status": s.status,
        "started_at": s.started_at.map(rfc3339),
        "completed_at": s.completed_at.map(rfc3339),
        "duration_ms": s.duration_ms,
        "exit_code": s.exit_code,
        "output": s.output,
        "attempts": s.attempts,
        "reason": s.reason,
    })
}

fn metrics(run: &Run) -> Value {
    let all = || run.steps.iter();
    let count = |st: StepStatus| all().filter(|s| s.status == st).count();
    let failed = all()
        .filter(|s| {
            matches!(
                s.status,
                StepStatus::Failure | StepStatus::TimedOut | StepStatus::Interrupted
            )
        })
        .count();
    let decided: Vec<_> = run
        .approvals
        .iter()
        .filter(|a| !matches!(a.decision, DecisionKind::Escalated))
        .collect();
    let end = run.completed_at;
    json!({
        "total_duration_ms": run.started_at.zip(end).map(|(s, e)| e - s),
        "queue_wait_ms": run.queue_wait_ms,
        "steps_total": run.steps.len(),
        "steps_completed": count(StepStatus::Success),
        "steps_skipped": count(StepStatus::Skipped),
        "steps_failed": failed,
        "approval_waits": decided.len(),
        "approval_wait_ms": decided.iter().map(|a| a.waited_ms).sum::<i64>(),
    })
}

/// A unique audit file path for a run created at `created_at`.
pub fn new_path(home: &Home, sop: &str, created_at: i64, run_id: &str) -> PathBuf {
    let dir = home.logs_dir(sop);
    let stamp = file_stamp(created_at);
    let plain = dir.join(format!("{stamp}.json"));
    if !plain.exists() {
        return plain;
    }
    let short: String = run_id
        .chars()
        .rev()
        .take(8)
        .collect::<String>()
        .chars()
        .rev()
        .collect();
    dir.join(format!("{stamp}-{short}.json"))
}

/// How far an audit rewrite goes to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// write, fsync, rename, fsync of the directory: survives a power loss.
    Durable,
    /// write, rename: every reader sees a whole, current document, but a power loss may
    /// leave an older one. Only while the run moves on at once (its next step is starting):
    /// the store holds the truth, and a run that was moving when power was lost has its
    /// step `interrupted` by recovery, which rewrites its file durably.
    Deferred,
}

/// Rewrites the audit file of `run_id` with the newest committed state, durably.
///
/// Several processes may commit transitions of one run (the owner, an approver); each
/// rewrites the file after its commit. Under an exclusive lock, each writer re-reads the
/// run from the store, so the file always ends at the newest committed state whatever the
/// order of writers.
pub fn write(store: &dyn Store, home: &Home, run_id: &str) -> std::io::Result<()> {
    write_with(store, home, run_id, Sync::Durable)
}

/// [`write`], choosing how far the rewrite goes to disk.
pub fn write_with(store: &dyn Store, home: &Home, run_id: &str, sync: Sync) -> std::io::Result<()> {
    let to_io = |e: sop_store::StoreError| std::io::Error::other(e.to_string());
    let Some(row) = store.run_row(run_id).map_err(to_io)? else {
        return Ok(());
    };
    let Some(rel) = row.audit_path else {
        return Ok(());
    };
    let path = home.root().join(rel);
    let dir = path
        .parent()
        .map_or_else(|| home.root().to_path_buf(), Path::to_path_buf);
    fs::create_dir_all(&dir)?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))?;
    lock.lock()?;
    let Some(run) = store.load_run(run_id).map_err(to_io)? else {
        return Ok(());
    };
    let mut body = serde_json::to_vec_pretty(&document(&run)).map_err(std::io::Error::other)?;
    body.push(b'\n');
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&body)?;
        if sync == Sync::Durable {
            f.sync_all()?;
        }
    }
    fs::rename(&tmp, &path)?;
    if sync == Sync::Durable {
        // The rename is durable once the directory entry is.
        File::open(&dir)?.sync_all()?;
    }
    drop(lock);
    Ok(())
}

/// Whether the run ended well, for the summary.
pub fn succeeded(status: RunStatus) -> bool {
    status == RunStatus::Success
}
