//! `sop run`, `sop resume` and the internal `sop __drive`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;

use serde_json::json;
use signal_hook::consts::SIGINT;
use sop_core::run::{self, Happened, ResumeHow, RunStatus, TriggerInfo};
use sop_core::Priority;
use sop_runtime::engine::{self, EngineError, Quiet};
use sop_runtime::ops::{ExecuteRequest, Executed};
use sop_runtime::{identity, recovery, Home};

use super::files::print_diagnostics;
use crate::app::App;
use crate::backend::Backend;
use crate::cli::RunArgs;
use crate::printer::{print_event, summary, Printer, View};
use crate::remote::sse::{self, Until};
use crate::remote::{segment, Client};
use crate::target::parse_pairs;
use crate::{CmdResult, Exit, Fail};

pub fn run(home: Home, args: &RunArgs) -> CmdResult {
    let priority = match &args.priority {
        None => None,
        Some(p) => Some(Priority::parse(p).ok_or_else(|| {
            Fail::bad(format!(
                "`--priority {p}`: expected low, medium, high or critical"
            ))
        })?),
    };
    let vars = parse_pairs(&args.vars, "--var")?;
    let app = match Backend::open(home)? {
        Backend::Local(app) => app,
        Backend::Remote(client) => return remote_run(&client, args, priority, &vars),
    };
    let (_, warnings) = sop_runtime::ops::load_sop(&app.home, &args.sop)?;
    print_diagnostics(&warnings);
    let request = ExecuteRequest {
        sop: args.sop.clone(),
        vars,
        trigger_vars: BTreeMap::new(),
        skip_approval: args.skip_approval,
        priority,
        force: args.force,
        trigger: TriggerInfo {
            kind: "manual".to_string(),
            by: identity::current_user(),
        },
        owner: (!args.detach).then(engine::this_process),
        fire: None,
    };
    let run = match app.ops().execute(request)? {
        Executed::Created(run) => run,
        Executed::Coalesced(run_id) => {
            outln!("{run_id}");
            eprintln!("admission_policy = \"coalesce\": folded into run {run_id}");
            return Ok(Exit::Ok);
        }
        // Only a schedule's request carries a scheduled time.
        Executed::AlreadyFired => return Err(Fail::failed("the run was taken for a schedule's")),
    };
    overrides_warning(args, &run.id);
    if args.detach {
        // A `sop serve` on this home drives queued runs itself.
        if !recovery::daemon_running(&app.home) {
            recovery::launch_detached(&app.exe, &app.home, &run.id)
                .map_err(|e| Fail::failed(format!("cannot start a background driver: {e}")))?;
        }
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

fn overrides_warning(args: &RunArgs, id: &str) {
    if args.skip_approval {
        eprintln!("warning: approvals skipped for run {id} (recorded in its audit file)");
    }
    if args.force {
        eprintln!("warning: cooldown overridden for run {id} (recorded in its audit file)");
    }
}

/// `sop run` through the daemon: queue the run there; without `--detach`, follow its
/// events and print what a local run prints. The exit code follows the run.
fn remote_run(
    client: &Client,
    args: &RunArgs,
    priority: Option<Priority>,
    vars: &BTreeMap<String, String>,
) -> CmdResult {
    let body = json!({
        "vars": vars,
        "skip_approval": args.skip_approval,
        "priority": priority.map(Priority::as_str),
        "force": args.force,
    });
    let answer = client
        .post(&format!("/api/sops/{}/execute", segment(&args.sop)), &body)
        .map_err(|e| {
            let unknown = e.status == 404 && !e.message.contains("did you mean");
            let mut fail = Fail::from(e);
            if unknown {
                fail.message
                    .push_str("\n  = help: run `sop list` to see the SOPs");
            }
            fail
        })?;
    let id = answer["run_id"].as_str().unwrap_or_default().to_string();
    overrides_warning(args, &id);
    if args.detach {
        outln!("{id}");
        return Ok(Exit::Ok);
    }
    let doc = client.document(&id)?;
    eprintln!(
        "run {id} of {} ({}, {} mode)",
        doc["sop"].as_str().unwrap_or_default(),
        doc["priority"].as_str().unwrap_or_default(),
        doc["execution_mode"].as_str().unwrap_or_default()
    );
    let approvers: Vec<String> = client
        .get(&format!("/api/sops/{}", segment(&args.sop)))
        .ok()
        .and_then(|sop| serde_json::from_value(sop["approvers"].clone()).ok())
        .unwrap_or_default();
    let view = View::of_document(&doc, approvers);
    sse::follow(client, &id, Until::End, &mut |event| {
        match event.name.as_str() {
            "output" => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(event.data["text"].as_str().unwrap_or_default().as_bytes());
                let _ = out.flush();
            }
            "finished" => {}
            name => {
                let mut data = event.data.clone();
                if let Some(obj) = data.as_object_mut() {
                    obj.insert("event".to_string(), json!(name));
                }
                if let Ok(happened) = serde_json::from_value::<Happened>(data) {
                    let _ = print_event(&mut std::io::stderr().lock(), &view, &happened);
                }
            }
        }
        Ok(())
    })?;
    let doc = client.document(&id)?;
    let status = doc["status"].as_str().and_then(RunStatus::parse);
    if status.is_some_and(RunStatus::is_terminal) {
        summary(&mut std::io::stderr().lock(), &doc).map_err(|e| Fail::failed(e.to_string()))?;
    }
    Ok(exit_for(&id, status.unwrap_or(RunStatus::Failure)))
}

/// The exit code of a run that this command followed to its end.
fn exit_for(id: &str, status: RunStatus) -> Exit {
    match status {
        RunStatus::Success => Exit::Ok,
        RunStatus::Interrupted => {
            eprintln!(
                "run {id} is interrupted; continue with `sop resume {id} --retry|--skip|--abort`"
            );
            Exit::Failed
        }
        _ => Exit::Failed,
    }
}

/// Drives a run in this process with the terminal printer; the exit code follows the run.
///
/// Ctrl-C cancels the run (its step is stopped, rollback runs); a second Ctrl-C leaves at
/// once, and the next `sop` command reports the run `interrupted`.
fn drive_here(app: &App, id: &str) -> CmdResult {
    let ctrl_c = Arc::new(AtomicBool::new(false));
    // Registered first, so it sees the flag before the second registration sets it: the
    // second Ctrl-C exits at once.
    signal_hook::flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(&ctrl_c))
        .and_then(|_| signal_hook::flag::register(SIGINT, Arc::clone(&ctrl_c)))
        .map_err(|e| Fail::failed(format!("cannot handle Ctrl-C: {e}")))?;
    // Dropping `done` ends the watcher at once (no poll interval added to every run).
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watcher = {
        let ctrl_c = Arc::clone(&ctrl_c);
        let (home, config, run_id) = (app.home.clone(), app.config.clone(), id.to_string());
        std::thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) =
                finished.recv_timeout(std::time::Duration::from_millis(50))
            {
                if ctrl_c.load(Ordering::SeqCst) {
                    eprintln!("\n... Ctrl-C: cancelling run {run_id} (Ctrl-C again to leave it unwatched)");
                    if let Ok(store) = crate::app::open_store(&home.db_path(), &config) {
                        let ops = sop_runtime::ops::Ops {
                            store: &store,
                            home: &home,
                            config: &config,
                            served: false,
                            settle: None,
                        };
                        if let Err(e) = ops.cancel(&run_id, &identity::current_user()) {
                            eprintln!("error: {e}");
                        }
                    }
                    return;
                }
            }
        })
    };
    let result = engine::drive(&app.context(), id, &mut Printer::new());
    drop(done);
    let _ = watcher.join();
    let status = result.map_err(|e| engine_fail(&e))?;
    Ok(exit_for(id, status))
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
