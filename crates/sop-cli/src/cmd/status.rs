//! Read commands: `sop status`, `sop runs`, `sop logs`.

use std::io::Write;
use std::time::Duration;

use sop_core::run::{Run, RunStatus};
use sop_runtime::clock::{human_ms, now, rfc3339};
use sop_runtime::{audit, Home};
use sop_store::{RunFilter, RunRow, Store};

use crate::app::App;
use crate::{CmdResult, Exit, Fail};

fn print_json(v: &impl serde::Serialize) {
    outln!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub fn status(home: Home, target: Option<&str>, json: bool) -> CmdResult {
    let app = App::open(home)?;
    let Some(target) = target else {
        let rows = app.store.active_runs()?;
        if json {
            print_json(&rows);
        } else if rows.is_empty() {
            eprintln!("no active runs");
        } else {
            print_rows(&rows);
        }
        return Ok(Exit::Ok);
    };
    // A run id, or the latest run of a SOP.
    let id = app.ops().resolve(target, &[], "known")?;
    let run = app
        .store
        .load_run(&id)?
        .ok_or_else(|| Fail::bad(format!("run `{id}` does not exist")))?;
    if json {
        print_json(&audit::document(&run));
    } else {
        describe(&app, &run)?;
    }
    Ok(Exit::Ok)
}

fn describe(app: &App, run: &Run) -> Result<(), Fail> {
    outln!(
        "run {} of {} {}: {}",
        run.id,
        run.sop.name,
        run.sop.version,
        run.status.as_str()
    );
    outln!(
        "  priority {}, mode {}, started by {} ({})",
        run.priority.as_str(),
        run.mode.as_str(),
        run.trigger.by,
        run.trigger.kind
    );
    outln!("  created {}", rfc3339(run.created_at));
    if let Some(s) = run.started_at {
        let end = run.completed_at.unwrap_or_else(now);
        outln!(
            "  started {} ({} {})",
            rfc3339(s),
            human_ms(end - s),
            if run.completed_at.is_some() {
                "in all"
            } else {
                "so far"
            }
        );
    }
    if run.status == RunStatus::Queued {
        let row = app.store.run_row(&run.id)?;
        let why = app
            .store
            .claim_preview(&run.id, app.config.workers, now())?;
        if let Some(b) = why {
            outln!("  queued: {b}")
        } else {
            outln!(
                "  queued: can start now{}",
                row.and_then(|r| r.owner)
                    .map_or(" (no driver yet)".to_string(), |_| String::new())
            )
        }
    }
    if let Some(w) = &run.wait {
        let who = if run.sop.approvers.is_empty() {
            "anyone".to_string()
        } else {
            run.sop.approvers.join(", ")
        };
        let verb = if w.kind == sop_core::run::WaitKind::Approval {
            "approve|reject"
        } else {
            "confirm"
        };
        outln!(
            "  waiting at {} since {} ({})",
            w.gate,
            rfc3339(w.since),
            human_ms(now() - w.since)
        );
        outln!(
            "  who may decide: {who}{}",
            if run.sop.allow_self_approval {
                String::new()
            } else {
                format!(" (not {})", run.trigger.by)
            }
        );
        if w.kind == sop_core::run::WaitKind::Approval {
            outln!(
                "  approvals: {} of {} ({})",
                w.approved_by.len(),
                w.required,
                w.approved_by.join(", ")
            );
        }
        if let Some(d) = w.deadline {
            outln!(
                "  deadline {} (then {:?})",
                rfc3339(d),
                run.sop.approval_timeout_action
            );
        }
        outln!("  decide: sop {verb} {}", run.id);
    }
    if run.status == RunStatus::Interrupted {
        outln!("  interrupted: the process running a step stopped; the step was not re-run");
        outln!("  continue: sop resume {} --retry|--skip|--abort", run.id);
    }
    let mut out = std::io::stdout().lock();
    crate::printer::summary(&mut out, run).map_err(|e| Fail::failed(e.to_string()))?;
    if !run.approvals.is_empty() {
        writeln!(out, "  approvals:").ok();
        for a in &run.approvals {
            let comment = a
                .comment
                .as_deref()
                .map_or_else(String::new, |c| format!(": {c}"));
            writeln!(
                out,
                "    {} {:?} by {} via {} at {}{comment}",
                a.gate,
                a.decision,
                a.by,
                a.channel,
                rfc3339(a.at)
            )
            .ok();
        }
    }
    Ok(())
}

fn print_rows(rows: &[RunRow]) {
    outln!(
        "{:<14} {:<24} {:<21} {:<9} CREATED",
        "RUN",
        "SOP",
        "STATUS",
        "PRIORITY"
    );
    for r in rows {
        outln!(
            "{:<14} {:<24} {:<21} {:<9} {}",
            r.id,
            r.sop,
            r.status.as_str(),
            r.priority.as_str(),
            rfc3339(r.created_at)
        );
    }
}

pub fn runs(
    home: Home,
    sop: Option<String>,
    status: Option<&str>,
    limit: u32,
    json: bool,
) -> CmdResult {
    let app = App::open(home)?;
    let statuses = match status {
        None => vec![],
        Some(s) => vec![RunStatus::parse(s).ok_or_else(|| {
            let all: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
            Fail::bad(format!(
                "`--status {s}`: expected one of {}",
                all.join(", ")
            ))
        })?],
    };
    let rows = app.store.list_runs(&RunFilter {
        sop,
        statuses,
        limit: Some(limit),
    })?;
    if json {
        print_json(&rows);
    } else {
        print_rows(&rows);
    }
    Ok(Exit::Ok)
}

pub fn logs(home: Home, target: &str, follow: bool, json: bool) -> CmdResult {
    let app = App::open(home)?;
    let id = app.ops().resolve(target, &[], "known")?;
    let mut after = 0;
    let mut gate = String::new();
    loop {
        let chunks = app.store.output_since(&id, after)?;
        let mut out = std::io::stdout().lock();
        for c in &chunks {
            if json {
                writeln!(out, "{}", serde_json::to_string(c).unwrap_or_default()).ok();
            } else {
                if c.gate != gate {
                    writeln!(out, "==> {} (attempt {})", c.gate, c.attempt).ok();
                    gate.clone_from(&c.gate);
                }
                out.write_all(c.text.as_bytes()).ok();
            }
            after = c.seq;
        }
        out.flush().ok();
        if !follow {
            return Ok(Exit::Ok);
        }
        let status = app
            .store
            .run_row(&id)?
            .map_or(RunStatus::Cancelled, |r| r.status);
        if (status.is_terminal() || status == RunStatus::Interrupted) && chunks.is_empty() {
            return Ok(Exit::Ok);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
