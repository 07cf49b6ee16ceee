//! The terminal front end of a run: step headers, live output, waits, the summary.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::mpsc::{self, Receiver};

use serde_json::Value;
use sop_core::policy::Blocked;
use sop_core::run::{Decision, Happened, Refusal, Run, StepRecord, Verb, WaitKind};
use sop_runtime::audit;
use sop_runtime::clock::human_ms;
use sop_runtime::engine::Observer;
use sop_runtime::identity;

/// Prints a run as it happens. At a terminal it also offers to decide waits in place.
pub struct Printer {
    interactive: bool,
    prompt: Option<(String, Receiver<String>)>,
    /// The view of the run being printed, built once (a 1,000-step run has 1,000 titles).
    view: Option<View>,
}

impl Printer {
    pub fn new() -> Printer {
        Printer {
            interactive: std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
            prompt: None,
            view: None,
        }
    }
}

/// What the printer needs of a run: its id, step titles and who may decide. Built from a
/// `Run` (local) or from its document (`GET /api/runs/{id}`), so both print the same.
pub struct View {
    pub id: String,
    pub steps: Vec<String>,
    pub rollback: Vec<String>,
    pub approvers: Vec<String>,
}

impl View {
    pub fn of_run(run: &Run) -> View {
        let titles =
            |list: &[std::sync::Arc<StepRecord>]| list.iter().map(|s| s.title.clone()).collect();
        View {
            id: run.id.clone(),
            steps: titles(&run.steps),
            rollback: titles(&run.rollback),
            approvers: run.sop.approvers.clone(),
        }
    }

    /// From a run document; `approvers` come from the SOP (empty: anyone).
    pub fn of_document(doc: &Value, approvers: Vec<String>) -> View {
        let titles = |key: &str| {
            doc[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|s| s["title"].as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        View {
            id: doc["run_id"].as_str().unwrap_or_default().to_string(),
            steps: titles("steps"),
            rollback: titles("rollback"),
            approvers,
        }
    }

    fn title(&self, gate: &str) -> String {
        let find = |list: &[String], n: &str| {
            n.parse::<usize>()
                .ok()
                .and_then(|i| list.get(i.checked_sub(1)?))
                .cloned()
        };
        let t = if let Some(n) = gate.strip_prefix("rollback step ") {
            find(&self.rollback, n)
        } else if let Some(n) = gate.strip_prefix("step ") {
            find(&self.steps, n)
        } else {
            None
        };
        t.map_or_else(|| gate.to_string(), |t| format!("{gate}: {t}"))
    }
}

/// One line on stderr for an event of the run (`Finished` prints nothing here: the
/// caller prints the summary).
pub fn print_event(err: &mut dyn Write, view: &View, event: &Happened) -> std::io::Result<()> {
    match event {
        Happened::StepStarted { gate, attempt } => {
            let again = if *attempt > 1 {
                format!(" (attempt {attempt})")
            } else {
                String::new()
            };
            writeln!(err, "==> {}{again}", view.title(gate))
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
            writeln!(err, "--- {} skipped: {reason}", view.title(gate))
        }
        Happened::Waiting { gate, kind, .. } => {
            let (what, verb) = match kind {
                WaitKind::Approval => ("approval", "approve"),
                WaitKind::Confirmation => ("confirmation (manual step)", "confirm"),
            };
            let who = if view.approvers.is_empty() {
                "anyone".to_string()
            } else {
                view.approvers.join(", ")
            };
            writeln!(
                err,
                "... waiting for {what} at {}; decide from any terminal: sop {verb} {} (allowed: {who})",
                view.title(gate),
                view.id
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
        _ => Ok(()),
    }
}

impl Observer for Printer {
    fn event(&mut self, run: &Run, event: &Happened) {
        // Formatted first, then written at once: stderr is unbuffered, and every piece of
        // a `writeln!` would be a write of its own.
        let mut text = Vec::new();
        let _ = if let Happened::Finished { .. } = event {
            self.prompt = None;
            summary(&mut text, &audit::document(run))
        } else {
            // Rollback records appear when the rollback starts: then the view is rebuilt.
            let stale = self
                .view
                .as_ref()
                .is_none_or(|v| v.id != run.id || v.rollback.len() != run.rollback.len());
            if stale {
                self.view = Some(View::of_run(run));
            }
            let view = self.view.get_or_insert_with(|| View::of_run(run));
            print_event(&mut text, view, event)
        };
        let _ = std::io::stderr().lock().write_all(&text);
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
            gate: Some(wait.gate.clone()),
        })
    }

    fn refused(&mut self, _run: &Run, why: &Refusal) {
        eprintln!("error: {why}");
    }
}

/// The end-of-run table from a run document: every step with its status and duration.
pub fn summary(out: &mut dyn Write, doc: &Value) -> std::io::Result<()> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    writeln!(out)?;
    writeln!(
        out,
        "run {} of {}: {}",
        text(&doc["run_id"]),
        text(&doc["sop"]),
        text(&doc["status"])
    )?;
    let list = |key: &str| doc[key].as_array().cloned().unwrap_or_default();
    let rows = list("steps")
        .into_iter()
        .map(|s| ("", s))
        .chain(list("rollback").into_iter().map(|s| ("rollback ", s)));
    for (prefix, s) in rows {
        let dur = s["duration_ms"].as_i64().map_or_else(String::new, human_ms);
        let status = text(&s["status"]);
        let reason = s["reason"]
            .as_str()
            .filter(|_| status != "success")
            .map_or_else(String::new, |r| format!("  ({r})"));
        writeln!(
            out,
            "  {prefix}{:>2}. {:<32} {:<12} {:>8}{reason}",
            s["number"].as_u64().unwrap_or_default(),
            text(&s["title"]),
            status,
            dur
        )?;
    }
    if let Some(total) = doc["metrics"]["total_duration_ms"].as_i64() {
        writeln!(out, "  total {}", human_ms(total))?;
    }
    if let (Some(e), true) = (doc["error"].as_str(), doc["status"] != "success") {
        writeln!(out, "  {e}")?;
    }
    Ok(())
}
