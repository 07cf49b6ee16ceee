//! `sop cmd` and `sop trigger test`: a command line (SPEC §6), taken on this home's store
//! or sent to a reachable daemon (`POST /api/command`). Both print from the API's answer
//! shape, so the two paths say the same.

use serde_json::{json, Value};
use sop_core::command::parse_command;
use sop_runtime::command::{Caller, CommandAnswer, FireOutcome};
use sop_runtime::ops::OpError;
use sop_runtime::{identity, recovery, Home};
use sop_server::CommandReply;

use crate::app::App;
use crate::backend::Backend;
use crate::{CmdResult, Exit, Fail};

/// `sop cmd "<text>"`: decide (`/approve`, `/reject`) or fire the matching triggers.
pub fn cmd(home: Home, text: &str, json: bool) -> CmdResult {
    send(home, text, false, json)
}

/// `sop trigger test "<text>"`: what `sop cmd` would do, doing nothing.
pub fn trigger_test(home: Home, text: &str, json: bool) -> CmdResult {
    send(home, text, true, json)
}

fn send(home: Home, text: &str, dry_run: bool, json: bool) -> CmdResult {
    let line = parse_command(text).map_err(|e| Fail::bad(e.to_string()))?;
    let reply = match Backend::open(home)? {
        Backend::Local(app) => {
            let caller = Caller {
                by: identity::current_user(),
                groups: identity::current_groups(),
            };
            let answer = app.ops().command(&line, &caller, dry_run)?;
            if !dry_run {
                drive(&app, &answer)?;
            }
            // The answer's shape hides internal failures' details (as the API does); here
            // they are this process's own.
            if let CommandAnswer::Fired { fired, .. } = &answer {
                for f in fired {
                    if let FireOutcome::Refused(
                        e @ (OpError::Store(_) | OpError::Audit(_) | OpError::Home { .. }),
                    ) = &f.outcome
                    {
                        eprintln!("error: `{}`: {e}", f.sop);
                    }
                }
            }
            serde_json::to_value(CommandReply::new(answer, dry_run))
                .map_err(|e| Fail::failed(format!("cannot show the answer: {e}")))?
        }
        Backend::Remote(client) => {
            client.post("/api/command", &json!({"text": text, "dry_run": dry_run}))?
        }
    };
    if json {
        outln!("{reply:#}");
    } else {
        print(&reply, text);
    }
    Ok(verdict(&reply))
}

/// Gets what this process committed moving when no `sop serve` does it: a driver for
/// each new run (as `sop run --detach`), and for a run a decision lets go on.
fn drive(app: &App, answer: &CommandAnswer) -> Result<(), Fail> {
    match answer {
        CommandAnswer::Decided { run, .. } => {
            recovery::ensure_driven(&app.store, &app.home, &app.exe, &run.id)?;
        }
        CommandAnswer::Fired { fired, .. } => {
            if recovery::daemon_running(&app.home) {
                return Ok(());
            }
            for f in fired {
                if let FireOutcome::Queued(run) = &f.outcome {
                    recovery::launch_detached(&app.exe, &app.home, &run.id).map_err(|e| {
                        Fail::failed(format!(
                            "run {} of `{}` is queued, but no background driver could start: {e}",
                            run.id, f.sop
                        ))
                    })?;
                }
            }
        }
    }
    Ok(())
}

/// Exit 0 when a built-in was decided, or when triggers matched and every match was
/// queued (or coalesced; in a dry run: would run); else 1 (nothing matched, or a match was
/// suppressed by its cooldown or refused).
fn verdict(reply: &Value) -> Exit {
    if reply["kind"] != "triggers" {
        return Exit::Ok;
    }
    let matched = reply["matched"].as_array().map_or(&[][..], Vec::as_slice);
    let all_ok = matched.iter().all(|m| {
        matches!(
            m["outcome"].as_str(),
            Some("queued" | "coalesced" | "would_run")
        )
    });
    if !matched.is_empty() && all_ok {
        Exit::Ok
    } else {
        Exit::Failed
    }
}

fn print(reply: &Value, text: &str) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let dry_run = reply["dry_run"].as_bool().unwrap_or(false);
    if reply["kind"] != "triggers" {
        let (id, status) = (s(&reply["run"]["run_id"]), s(&reply["run"]["status"]));
        let verb = s(&reply["kind"]);
        if dry_run {
            outln!("would {verb} run {id} (it is {status})");
        } else {
            let done = if verb == "reject" {
                "rejected"
            } else {
                "approved"
            };
            eprintln!("{done} run {id}; it is now {status}");
        }
        return;
    }
    for name in reply["invalid"].as_array().into_iter().flatten() {
        let name = s(name);
        eprintln!("warning: `{name}` has errors and was not matched (see `sop validate {name}`)");
    }
    let matched = reply["matched"].as_array().map_or(&[][..], Vec::as_slice);
    if matched.is_empty() {
        eprintln!("error: no SOP's `command` trigger matches `{text}`");
        eprintln!("  = help: `sop show <sop>` shows a SOP's triggers and their patterns");
        return;
    }
    for m in matched {
        let sop = s(&m["sop"]);
        let head = match m["outcome"].as_str().unwrap_or_default() {
            "would_run" => format!("{sop}: would run"),
            "queued" => format!("{sop}: queued run {}", s(&m["run_id"])),
            "coalesced" => format!(
                "{sop}: folded into run {} (admission_policy = \"coalesce\")",
                s(&m["run_id"])
            ),
            other => format!("{sop}: {other}: {}", s(&m["error"]["message"])),
        };
        outln!("{head}");
        for (name, value) in m["vars"].as_object().into_iter().flatten() {
            outln!("  {name} = {}", s(value));
        }
    }
}
