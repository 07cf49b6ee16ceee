//! `sop run`, `sop resume` and the internal `sop __drive`.

use sop_core::run::{self, ResumeHow, RunStatus, TriggerInfo};
use sop_core::Priority;
use sop_runtime::engine::{self, EngineError, Quiet};
use sop_runtime::ops::{ExecuteRequest, Executed};
use sop_runtime::{identity, recovery, Home};

use super::files::print_diagnostics;
use crate::app::App;
use crate::cli::RunArgs;
use crate::printer::Printer;
use crate::target::parse_pairs;
use crate::{CmdResult, Exit, Fail};

pub fn run(home: Home, args: &RunArgs) -> CmdResult {
    let app = App::open(home)?;
    let priority = match &args.priority {
        None => None,
        Some(p) => Some(Priority::parse(p).ok_or_else(|| {
            Fail::bad(format!(
                "`--priority {p}`: expected low, medium, high or critical"
            ))
        })?),
    };
    let (_, warnings) = sop_runtime::ops::load_sop(&app.home, &args.sop)?;
    print_diagnostics(&warnings);
    let request = ExecuteRequest {
        sop: args.sop.clone(),
        vars: parse_pairs(&args.vars, "--var")?,
        skip_approval: args.skip_approval,
        priority,
        force: args.force,
        trigger: TriggerInfo {
            kind: "manual".to_string(),
            by: identity::current_user(),
        },
        owner: (!args.detach).then(engine::this_process),
    };
    let run = match app.ops().execute(request)? {
        Executed::Created(run) => run,
        Executed::Coalesced(run_id) => {
            outln!("{run_id}");
            eprintln!("admission_policy = \"coalesce\": folded into run {run_id}");
            return Ok(Exit::Ok);
        }
    };
    if args.skip_approval {
        eprintln!(
            "warning: approvals skipped for run {} (recorded in its audit file)",
            run.id
        );
    }
    if args.force {
        eprintln!(
            "warning: cooldown overridden for run {} (recorded in its audit file)",
            run.id
        );
    }
    if args.detach {
        recovery::launch_detached(&app.exe, &app.home, &run.id)
            .map_err(|e| Fail::failed(format!("cannot start a background driver: {e}")))?;
        outln!("{}", run.id);
        return Ok(Exit::Ok);
    }
    eprintln!(
        "run {} of {} ({}, {} mode)",
        run.id,
        run.sop.name,
        run.priority.as_str(),
        run.mode.as_str()
    );
    drive_here(&app, &run.id)
}

/// Drives a run in this process with the terminal printer; the exit code follows the run.
fn drive_here(app: &App, id: &str) -> CmdResult {
    let status =
        engine::drive(&app.context(), id, &mut Printer::new()).map_err(|e| engine_fail(&e))?;
    Ok(match status {
        RunStatus::Success => Exit::Ok,
        RunStatus::Interrupted => {
            eprintln!(
                "run {id} is interrupted; continue with `sop resume {id} --retry|--skip|--abort`"
            );
            Exit::Failed
        }
        _ => Exit::Failed,
    })
}

fn engine_fail(e: &EngineError) -> Fail {
    Fail::failed(e.to_string())
}

pub fn resume(home: Home, target: &str, how: (bool, bool, bool), detach: bool) -> CmdResult {
    let app = App::open(home)?;
    let ops = app.ops();
    let id = ops.resolve(target, &[RunStatus::Interrupted], "interrupted")?;
    let current = ops.load_run(&id)?;
    let how = match how {
        (true, _, _) => ResumeHow::Retry,
        (_, true, _) => ResumeHow::Skip,
        (_, _, true) => ResumeHow::Abort,
        _ if run::interrupted_step_is_idempotent(&current) => ResumeHow::Retry,
        _ => {
            return Err(Fail::bad(format!(
                "say how to continue run {id}: --retry (run the interrupted step again), --skip (mark it skipped) or --abort"
            )))
        }
    };
    ops.resume(&id, how, &identity::current_user())?;
    if detach {
        recovery::ensure_driven(&app.store, &app.home, &app.exe, &id)?;
        outln!("{id}");
        return Ok(Exit::Ok);
    }
    drive_here(&app, &id)
}

/// `sop __drive <run>`: a background driver (from --detach or recovery).
pub fn drive(home: Home, id: &str) -> CmdResult {
    let app = App::open(home)?;
    match engine::drive(&app.context(), id, &mut Quiet) {
        // Busy: another process won the race to drive this run; nothing to do.
        Ok(_) | Err(EngineError::Busy { .. }) => Ok(Exit::Ok),
        Err(e) => Err(engine_fail(&e)),
    }
}
