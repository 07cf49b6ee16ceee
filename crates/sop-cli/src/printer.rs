//! The terminal front end of a run: step headers, live output, waits, the summary.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::mpsc::{self, Receiver};

use sop_core::policy::Blocked;
use sop_core::run::{
    Decision, Happened, Refusal, Run, RunStatus, StepRecord, StepStatus, Verb, WaitKind,
};
use sop_runtime::clock::human_ms;
use sop_runtime::engine::Observer;
use sop_runtime::identity;

/// Prints a run as it happens. At a terminal it also offers to decide waits in place.
pub struct Printer {
    interactive: bool,
    prompt: Option<(String, Receiver<String>)>,
}

impl Printer {
    pub fn new() -> Printer {
        Printer {
            interactive: std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
            prompt: None,
        }
    }
}

fn title(run: &Run, gate: &str) -> String {
    let find = |list: &[StepRecord], n: &str| {
        n.parse::<usize>()
            .ok()
            .and_then(|i| list.get(i - 1))
            .map(|s| s.title.clone())
    };
    let t = if let Some(n) = gate.strip_prefix("rollback step ") {
        find(&run.rollback, n)
    } else if let Some(n) = gate.strip_prefix("step ") {
        find(&run.steps, n)
    } else {
        None
    };
    t.map_or_else(|| gate.to_string(), |t| format!("{gate}: {t}"))
}

impl Observer for Printer {
    fn event(&mut self, run: &Run, event: &Happened) {
        let mut err = std::io::stderr().lock();
        let _ = match event {
            Happened::StepStarted { gate, attempt } => {
                let again = if *attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                writeln!(err, "==> {}{again}", title(run, gate))
            }
            Happened::StepFinished {
                gate,
                status,
                exit_code,
            } => {
                let code = exit_code.map_or_else(String::new, |c| format!(", exit code {c}"));
                writeln!(err, "<== {gate} {}{code}", status.as_str())
            }
            Happened::StepSkipped { gate, reason } => {
                writeln!(err, "--- {} skipped: {reason}", title(run, gate))
            }
            Happened::Waiting { gate, kind, .. } => {
                let (what, verb) = match kind {
                    WaitKind::Approval => ("approval", "approve"),
                    WaitKind::Confirmation => ("confirmation (manual step)", "confirm"),
                };
                let who = if run.sop.approvers.is_empty() {
                    "anyone".to_string()
                } else {
                    run.sop.approvers.join(", ")
                };
                writeln!(
                    err,
                    "... waiting for {what} at {}; decide from any terminal: sop {verb} {} (allowed: {who})",
                    title(run, gate),
                    run.id
                )
            }
            Happened::Decided {
                gate,
                decision,
                by,
                channel,
            } => {
                writeln!(
                    err,
                    "... {gate}: {} by {by} ({channel})",
                    serde_json::to_value(decision)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default()
                )
            }
            Happened::RollbackStarted => writeln!(err, "==> rolling back"),
            Happened::CancelRequested { by } => writeln!(err, "... cancel requested by {by}"),
            Happened::Finished { .. } => {
                self.prompt = None;
                summary(&mut err, run)
            }
            _ => Ok(()),
        };
    }

    fn output(&mut self, _run: &Run, _gate: &str, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    fn blocked(&mut self, run: &Run, why: &Blocked) {
        eprintln!("... run {} queued: {why}", run.id);
    }

    fn poll_decision(&mut self, run: &Run) -> Option<Decision> {
        if !self.interactive {
            return None;
        }
        let wait = run.wait.as_ref()?;
        if self.prompt.as_ref().is_none_or(|(g, _)| *g != wait.gate) {
            let question = match wait.kind {
                WaitKind::Approval => "approve here? [y]es / [r]eject / Enter: keep waiting",
                WaitKind::Confirmation => "step done? [d]one / [f]ailed / Enter: keep waiting",
            };
            eprintln!("{question}");
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let mut line = String::new();
                if std::io::stdin().lock().read_line(&mut line).is_ok() {
                    let _ = tx.send(line.trim().to_string());
                }
            });
            self.prompt = Some((wait.gate.clone(), rx));
        }
        let (_, rx) = self.prompt.as_ref()?;
        let answer = rx.try_recv().ok()?;
        let verb = match (wait.kind, answer.as_str()) {
            (WaitKind::Approval, "y" | "yes") => Verb::Approve,
            (WaitKind::Approval, "r" | "reject") => Verb::Reject,
            (WaitKind::Confirmation, "d" | "done" | "y" | "yes") => Verb::Confirm,
            (WaitKind::Confirmation, "f" | "failed") => Verb::ConfirmFailed,
            _ => {
                self.prompt = None;
                return None;
            }
        };
        self.prompt = None;
        Some(Decision {
            verb,
            by: identity::current_user(),
            groups: identity::current_groups(),
            channel: "cli".to_string(),
            comment: (verb == Verb::Reject).then(|| "rejected at the terminal".to_string()),
            set: std::collections::BTreeMap::new(),
        })
    }

    fn refused(&mut self, _run: &Run, why: &Refusal) {
        eprintln!("error: {why}");
    }
}

/// The end-of-run table: every step with its status and duration.
pub fn summary(out: &mut dyn Write, run: &Run) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "run {} of {}: {}",
        run.id,
        run.sop.name,
        run.status.as_str()
    )?;
    let rows = run
        .steps
        .iter()
        .map(|s| ("", s))
        .chain(run.rollback.iter().map(|s| ("rollback ", s)));
    for (prefix, s) in rows {
        let dur = s.duration_ms.map_or_else(String::new, human_ms);
        let reason = s
            .reason
            .as_deref()
            .filter(|_| s.status != StepStatus::Success)
            .map_or_else(String::new, |r| format!("  ({r})"));
        writeln!(
            out,
            "  {prefix}{:>2}. {:<32} {:<12} {:>8}{reason}",
            s.number,
            s.title,
            s.status.as_str(),
            dur
        )?;
    }
    if let Some(total) = run.started_at.zip(run.completed_at).map(|(a, b)| b - a) {
        writeln!(out, "  total {}", human_ms(total))?;
    }
    if let (Some(e), true) = (&run.error, run.status != RunStatus::Success) {
        writeln!(out, "  {e}")?;
    }
    Ok(())
}
