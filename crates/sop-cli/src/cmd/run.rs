//! `sop run`, `sop resume` and the internal `sop __drive`.

use sop_core::policy::Admission;
use sop_core::run::{self, NewRun, ResumeHow, RunStatus, TriggerInfo};
use sop_core::vars::resolve_vars;
use sop_core::Priority;
use sop_runtime::clock::{human_ms, now};
use sop_runtime::engine::{self, EngineError, Quiet};
use sop_runtime::{audit, identity, recovery, Home};
use sop_store::{Created, Store};

use super::files::load_checked;
use crate::app::App;
use crate::cli::RunArgs;
use crate::printer::Printer;
use crate::target::parse_pairs;
use crate::{CmdResult, Exit, Fail};

/// A new run id: 12 random hex digits (operators type prefixes of it).
fn new_run_id() -> String {
    let u = uuid::Uuid::now_v7().simple().to_string();
    u[u.len() - 12..].to_string()
}

pub fn run(home: Home, args: &RunArgs) -> CmdResult {
    let app = App::open(home)?;
    let sop = load_checked(&app.home, &args.sop)?;
    let priority = match &args.priority {
        None => None,
        Some(p) => Some(Priority::parse(p).ok_or_else(|| {
            Fail::bad(format!(
                "`--priority {p}`: expected low, medium, high or critical"
            ))
        })?),
    };
    let given = parse_pairs(&args.vars, "--var")?;
    let vars = resolve_vars(&sop.vars, &given).map_err(|errs| {
        let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
        Fail::bad(format!(
            "invalid variables for `{}`:\n  {}",
            sop.name,
            lines.join("\n  ")
        ))
    })?;
    let t = now();
    let id = new_run_id();
    let by = identity::current_user();
    let new = run::new_run(
        NewRun {
            id: id.clone(),
            sop,
            priority,
            skip_approval: args.skip_approval,
            forced: args.force,
            trigger: TriggerInfo {
                kind: "manual".to_string(),
                by,
            },
            vars,
        },
        t,
    );
    let audit_path = audit::new_path(&app.home, &new.sop.name, t, &id);
    let audit_rel = app.home.display(&audit_path);
    let owner = (!args.detach).then(engine::this_process);
    let run = match app.store.create_run(new, &audit_rel, owner, t)? {
        Created::New(run) => run,
        Created::NotCreated(Admission::Cooldown {
            remaining_secs,
            run_id,
        }) => {
            return Err(Fail::failed(format!(
                "`{}` is in cooldown: {} remain (run {run_id} started it); use --force to override",
                args.sop,
                human_ms(remaining_secs as i64 * 1000)
            )));
        }
        Created::NotCreated(Admission::Coalesce { run_id }) => {
            outln!("{run_id}");
            eprintln!("admission_policy = \"coalesce\": folded into run {run_id}");
            return Ok(Exit::Ok);
        }
        Created::NotCreated(Admission::Dropped { running }) => {
            return Err(Fail::failed(format!(
                "admission_policy = \"drop\": `{}` is busy (running: {})",
                args.sop,
                running.join(", ")
            )));
        }
        Created::NotCreated(Admission::Accept) => {
            return Err(Fail::failed("the store did not create the run"))
        }
    };
    audit::write(&app.store, &app.home, &run.id)
        .map_err(|e| Fail::failed(format!("cannot write the audit file: {e}")))?;
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
    let id = crate::target::resolve(
        app.store(),
        target,
        &[RunStatus::Interrupted],
        "interrupted",
    )?;
    let row = app
        .store
        .load_run(&id)?
        .ok_or_else(|| Fail::bad(format!("run `{id}` does not exist")))?;
    let how = match how {
        (true, _, _) => ResumeHow::Retry,
        (_, true, _) => ResumeHow::Skip,
        (_, _, true) => ResumeHow::Abort,
        _ if run::interrupted_step_is_idempotent(&row) => ResumeHow::Retry,
        _ => {
            return Err(Fail::bad(format!(
                "say how to continue run {id}: --retry (run the interrupted step again), --skip (mark it skipped) or --abort"
            )))
        }
    };
    let by = identity::current_user();
    let t = now();
    app.store
        .update_run(&id, t, &mut |r, ev| run::resume(r, how, &by, t, ev))?
        .map_err(|refusal| Fail::failed(refusal.to_string()))?;
    audit::write(&app.store, &app.home, &id)
        .map_err(|e| Fail::failed(format!("cannot write the audit file: {e}")))?;
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
