//! Crash recovery and time-based transitions, run by every `sop` command that opens the
//! store and by the daemon's scheduler: runs whose driving process died are made safe (a
//! running step becomes `interrupted`, its leftover processes are killed), approval
//! deadlines that passed are applied, and runs that can go on without a person are
//! reported `ready` for a driver.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};

use sop_core::config::RunnerConfig;
use sop_core::run::{self, ResumeHow, RunStatus};
use sop_store::{Owner, Store, StoreError};

use crate::audit;
use crate::clock::now;
use crate::engine::{self, owner_alive};
use crate::home::Home;
use crate::process;

/// What recovery did, for the caller to report and act on.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Runs now `interrupted`: an operator decides with `sop resume`.
    pub interrupted: Vec<String>,
    /// Runs that need a driver (queued, or able to go on alone).
    pub ready: Vec<String>,
}

/// Makes every orphaned run safe and applies passed deadlines. Drives nothing. `settle`:
/// the daemon's settler, for the final audit files of runs a deadline ends.
pub fn recover_runs(
    store: &dyn Store,
    home: &Home,
    config: &RunnerConfig,
    settle: Option<&audit::Settler>,
) -> Result<Recovered, StoreError> {
    let mut out = Recovered::default();
    for row in store.active_runs()? {
        match row.owner {
            Some(owner) if owner_alive(owner) => continue,
            None if row.status == RunStatus::Queued => {
                out.ready.push(row.id);
                continue;
            }
            None if row.status != RunStatus::Running => continue,
            _ => {}
        }
        // The driver died (or left a running run). Take the run over first (one
        // transaction): if another live process took it meanwhile, it is not an orphan.
        let me = engine::this_process();
        if store.acquire(&row.id, me, &owner_alive)? != me {
            continue;
        }
        // Stop what is left of the step before recording it interrupted: it must never
        // run alongside a retry of itself.
        if let Some(current) = store.load_run(&row.id)? {
            let leftover =
                run::current_record(&current).and_then(|rec| rec.pid.zip(rec.pid_start_time));
            if let Some((pid, start)) = leftover.filter(|_| current.status == RunStatus::Running) {
                process::kill_group_if_same(
                    pid,
                    start,
                    std::time::Duration::from_secs(config.kill_grace_secs),
                );
            }
        }
        let t = now();
        let result = store.update_run(&row.id, t, &mut |r, ev| {
            if r.status == RunStatus::Running {
                run::interrupt(r, t, ev);
                if run::interrupted_step_is_idempotent(r) {
                    run::resume(r, ResumeHow::Retry, "sop (idempotent step)", t, ev)?;
                }
            }
            Ok(())
        })?;
        store.release(&row.id, me)?;
        let Ok(run) = result else { continue };
        let _ = audit::write(store, home, &run.id);
        match run.status {
            RunStatus::Interrupted => out.interrupted.push(run.id),
            RunStatus::Queued | RunStatus::Running => out.ready.push(run.id),
            _ => {}
        }
    }
    for id in store.due_deadlines(now())? {
        let t = now();
        let mut registered = settle.map(|s| s.register(&id));
        let mut changed = false;
        let Ok(run) = store.update_run(&id, t, &mut |r, ev| {
            run::expire(r, t, ev);
            changed = !ev.is_empty();
            Ok(())
        })?
        else {
            continue;
        };
        // Ended by this commit (not before it: that run's file is someone else's to write).
        if changed && run.status.is_terminal() {
            if let Some(registered) = registered.as_mut() {
                registered.keep();
            }
            if let Err(e) = audit::write_final(store, home, settle, &id) {
                tracing::error!("run {id}: cannot write its audit file: {e}");
            }
        } else {
            let _ = audit::write(store, home, &id);
        }
        if matches!(run.status, RunStatus::Queued | RunStatus::Running) && !out.ready.contains(&id)
        {
            out.ready.push(id);
        }
    }
    Ok(out)
}

/// Rewrites, durably, the audit file of every queued run whose file is missing, is not
/// JSON, or does not say `queued`. A new run's first file is written without syncs (see
/// [`audit::Sync::Deferred`]; the run itself is committed before its id is returned), so a
/// power loss may leave it so; `sop serve` calls this once as it starts. Returns how many
/// files were rewritten.
pub fn repair_queued_audit(store: &dyn Store, home: &Home) -> Result<usize, StoreError> {
    let mut repaired = 0;
    for row in store.active_runs()? {
        let Some(rel) = row.audit_path.filter(|_| row.status == RunStatus::Queued) else {
            continue;
        };
        let current = std::fs::read(home.root().join(rel))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .is_some_and(|doc| doc["status"] == "queued");
        if !current {
            match audit::write(store, home, &row.id) {
                Ok(()) => repaired += 1,
                Err(e) => tracing::error!("run {}: cannot rewrite its audit file: {e}", row.id),
            }
        }
    }
    Ok(repaired)
}

/// Rewrites, durably, the audit file of every ended run with an event after the settle mark
/// of a `sop serve` that stopped without settling (a crash, a power loss: see
/// [`audit::Settler`]), then removes those marks; `sop serve` calls this once as it starts.
/// A mark stays when a rewrite fails, so the next start tries again. Returns how many files
/// were rewritten.
pub fn repair_unsettled_audit(
    store: &dyn Store,
    home: &Home,
    me: Owner,
) -> Result<usize, StoreError> {
    let stale: Vec<(Owner, i64)> = store
        .settle_marks()?
        .into_iter()
        .filter(|&(owner, _)| owner != me && !owner_alive(owner))
        .collect();
    let Some(from) = stale.iter().map(|&(_, through)| through).min() else {
        return Ok(0);
    };
    let mut repaired = 0;
    let mut failed = false;
    for id in store.ended_since(from)? {
        match audit::write(store, home, &id) {
            Ok(()) => repaired += 1,
            Err(e) => {
                failed = true;
                tracing::error!("run {id}: cannot rewrite its audit file: {e}");
            }
        }
    }
    if !failed {
        for (owner, _) in stale {
            store.set_settle_mark(owner, None)?;
        }
    }
    Ok(repaired)
}

/// Recovery for CLI commands: as [`recover_runs`], then a background driver for each
/// ready run — unless a `sop serve` holds this home, whose scheduler drives them.
pub fn recover(
    store: &dyn Store,
    home: &Home,
    config: &RunnerConfig,
    exe: &Path,
) -> Result<Recovered, StoreError> {
    let recovered = recover_runs(store, home, config, None)?;
    if !daemon_running(home) {
        for id in &recovered.ready {
            let _ = launch_detached(exe, home, id);
        }
    }
    Ok(recovered)
}

/// The lock file a `sop serve` holds for as long as it runs on a home.
pub fn serve_lock_path(home: &Home) -> std::path::PathBuf {
    home.state_dir().join("serve.lock")
}

/// Whether a `sop serve` holds this home's lock.
pub fn daemon_running(home: &Home) -> bool {
    let Ok(file) = File::open(serve_lock_path(home)) else {
        return false;
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(_) => true,
    }
}

/// Starts `sop __drive <run>` in the background, in its own process group, detached from
/// the terminal. Its own output goes to `state/driver.log`.
pub fn launch_detached(exe: &Path, home: &Home, run_id: &str) -> std::io::Result<u32> {
    use std::os::unix::process::CommandExt;
    std::fs::create_dir_all(home.state_dir())?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.state_dir().join("driver.log"))?;
    let child = Command::new(exe)
        .arg("--home")
        .arg(home.root())
        .arg("__drive")
        .arg(run_id)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()?;
    Ok(child.id())
}

/// After a decision by this process: if nobody drives the run any more, start a driver
/// (the daemon's scheduler does that itself when one runs on this home).
pub fn ensure_driven(
    store: &dyn Store,
    home: &Home,
    exe: &Path,
    run_id: &str,
) -> Result<bool, StoreError> {
    let Some(row) = store.run_row(run_id)? else {
        return Ok(false);
    };
    if row.status.is_terminal()
        || row.status.is_waiting()
        || row.status == RunStatus::Interrupted
        || row.owner.is_some_and(owner_alive)
    {
        return Ok(false);
    }
    if daemon_running(home) {
        return Ok(false);
    }
    Ok(launch_detached(exe, home, run_id).is_ok())
}
