//! Crash recovery, run by every `sop` command that opens the store: runs whose driving
//! process died are made safe (a running step becomes `interrupted`, its leftover process
//! group is killed) and handed to a new detached driver when they can go on by themselves.

use std::path::Path;
use std::process::{Command, Stdio};

use sop_core::config::RunnerConfig;
use sop_core::run::{self, ResumeHow, RunStatus};
use sop_store::{Store, StoreError};

use crate::audit;
use crate::clock::now;
use crate::engine::owner_alive;
use crate::home::Home;
use crate::process;

/// What recovery did, for the caller to report.
#[derive(Debug, Default)]
pub struct Recovered {
    pub interrupted: Vec<String>,
    pub relaunched: Vec<String>,
}

/// Makes every orphaned run safe; relaunches those that can continue without a person.
pub fn recover(
    store: &dyn Store,
    home: &Home,
    config: &RunnerConfig,
    exe: &Path,
) -> Result<Recovered, StoreError> {
    let mut out = Recovered::default();
    for row in store.active_runs()? {
        if row.owner.is_some_and(owner_alive) {
            continue;
        }
        let t = now();
        let mut kill: Option<(u32, u64)> = None;
        let mut relaunch = false;
        let result = store.update_run(&row.id, t, &mut |r, ev| {
            kill = None;
            relaunch = false;
            if r.status == RunStatus::Running {
                if let Some(rec) = run::current_record(r) {
                    kill = rec.pid.zip(rec.pid_start_time);
                }
                run::interrupt(r, t, ev);
                if run::interrupted_step_is_idempotent(r) {
                    run::resume(r, ResumeHow::Retry, "sop (idempotent step)", t, ev)?;
                }
            }
            if r.status.is_waiting() {
                // Applies an approval deadline that passed while nobody was waiting.
                let _ = run::advance(r, t, ev);
            }
            relaunch = matches!(r.status, RunStatus::Queued | RunStatus::Running);
            Ok(())
        })?;
        let Ok(run) = result else { continue };
        if let Some((pid, start)) = kill {
            process::kill_group_if_same(
                pid,
                start,
                std::time::Duration::from_secs(config.kill_grace_secs),
            );
        }
        if run.status == RunStatus::Interrupted {
            out.interrupted.push(run.id.clone());
        }
        let _ = audit::write(store, home, &run.id);
        if relaunch && launch_detached(exe, home, &run.id).is_ok() {
            out.relaunched.push(run.id.clone());
        }
    }
    Ok(out)
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

/// After a decision by this process: if nobody drives the run any more, start a driver.
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
        || row.status == RunStatus::Interrupted
        || row.owner.is_some_and(owner_alive)
    {
        return Ok(false);
    }
    Ok(launch_detached(exe, home, run_id).is_ok())
}
