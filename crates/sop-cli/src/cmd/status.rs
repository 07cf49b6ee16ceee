//! Read commands: `sop status`, `sop runs`, `sop logs`. Each reads from the daemon when one
//! is reachable, else from the store, and prints the same either way: human output is
//! rendered from the run document (`audit::document`, `GET /api/runs/{id}`).

use std::io::Write;
use std::time::Duration;

use serde_json::Value;
use sop_core::run::{DecisionKind, RunStatus};
use sop_runtime::clock::{human_ms, now};
use sop_runtime::Home;
use sop_store::{OutputChunk, RunFilter, RunRow, Store};

use crate::app::App;
use crate::backend::Backend;
use crate::remote::sse::{self, Until};
use crate::remote::Client;
use crate::{CmdResult, Exit, Fail};

fn print_json(v: &impl serde::Serialize) {
    outln!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub fn status(home: Home, target: Option<&str>, json: bool) -> CmdResult {
    let backend = Backend::open(home)?;
    let Some(target) = target else {
        let rows = match &backend {
            Backend::Local(app) => app.store.active_runs()?,
            Backend::Remote(client) => client.active_runs()?,
        };
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
    let doc = match &backend {
        Backend::Local(app) => local_document(app, target)?,
        Backend::Remote(client) => remote_document(client, target)?,
    };
    if json {
        print_json(&doc);
    } else {
        describe(&doc)?;
    }
    Ok(Exit::Ok)
}

fn local_document(app: &App, target: &str) -> Result<Value, Fail> {
    let id = app.ops().resolve(target, &[], "known")?;
    let run = app
        .store
        .load_run(&id)?
        .ok_or_else(|| Fail::bad(format!("run `{id}` does not exist")))?;
    Ok(app.ops().view(&run)?)
}

fn remote_document(client: &Client, target: &str) -> Result<Value, Fail> {
    let id = client.resolve(target, &[], "known")?;
    let doc = client.document(&id)?;
    Ok(doc)
}

/// Milliseconds since the epoch of an RFC 3339 time in a document.
fn ms(v: &Value) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.timestamp_millis())
}

fn describe(doc: &Value) -> Result<(), Fail> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let id = s(&doc["run_id"]);
    let status = s(&doc["status"]);
    outln!(
        "run {id} of {} {}: {status}",
        s(&doc["sop"]),
        s(&doc["version"])
    );
    outln!(
        "  priority {}, mode {}, started by {} ({})",
        s(&doc["priority"]),
        s(&doc["execution_mode"]),
        s(&doc["trigger"]["by"]),
        s(&doc["trigger"]["type"])
    );
    outln!("  created {}", s(&doc["created_at"]));
    if let Some(started) = ms(&doc["started_at"]) {
        let done = !doc["completed_at"].is_null();
        let took = doc["metrics"]["total_duration_ms"]
            .as_i64()
            .filter(|_| done)
            .unwrap_or_else(|| now() - started);
        outln!(
            "  started {} ({} {})",
            s(&doc["started_at"]),
            human_ms(took),
            if done { "in all" } else { "so far" }
        );
    }
    if let Some(why) = doc["queue"].as_str() {
        outln!("  queued: {why}");
    }
    let w = &doc["waiting"];
    if w.is_object() {
        let approval = w["kind"] == "approval";
        let who = match &w["approvers"] {
            Value::Array(list) => list.iter().map(&s).collect::<Vec<_>>().join(", "),
            _ => "anyone".to_string(),
        };
        let verb = if approval {
            "approve|reject"
        } else {
            "confirm"
        };
        outln!(
            "  waiting at {} since {} ({})",
            s(&w["gate"]),
            s(&w["since"]),
            human_ms(now() - ms(&w["since"]).unwrap_or_else(now))
        );
        outln!(
            "  who may decide: {who}{}",
            if w["self_approval"].as_bool().unwrap_or(true) {
                String::new()
            } else {
                format!(" (not {})", s(&doc["trigger"]["by"]))
            }
        );
        if approval {
            let by: Vec<String> = w["approved_by"]
                .as_array()
                .map(|a| a.iter().map(&s).collect())
                .unwrap_or_default();
            outln!(
                "  approvals: {} of {} ({})",
                by.len(),
                w["required"].as_u64().unwrap_or(1),
                by.join(", ")
            );
        }
        if let Some(d) = w["deadline"].as_str() {
            outln!("  deadline {d} (then {})", s(&w["timeout_action"]));
        }
        outln!("  decide: sop {verb} {id}");
    }
    if status == "interrupted" {
        outln!("  interrupted: the process running a step stopped; the step was not re-run");
        outln!("  continue: sop resume {id} --retry|--skip|--abort");
    }
    let mut out = std::io::stdout().lock();
    crate::printer::summary(&mut out, doc).map_err(|e| Fail::failed(e.to_string()))?;
    let approvals = doc["approvals"].as_array().cloned().unwrap_or_default();
    if !approvals.is_empty() {
        writeln!(out, "  approvals:").ok();
        for a in &approvals {
            let comment = a["comment"]
                .as_str()
                .map_or_else(String::new, |c| format!(": {c}"));
            let decision = serde_json::from_value::<DecisionKind>(a["decision"].clone())
                .map_or_else(|_| s(&a["decision"]), |d| format!("{d:?}"));
            writeln!(
                out,
                "    {} {decision} by {} via {} at {}{comment}",
                s(&a["gate"]),
                s(&a["by"]),
                s(&a["channel"]),
                s(&a["at"])
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
            sop_runtime::clock::rfc3339(r.created_at)
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
    let rows = match Backend::open(home)? {
        Backend::Local(app) => app.store.list_runs(&RunFilter {
            sop,
            statuses,
            limit: Some(limit),
        })?,
        Backend::Remote(client) => client.list_runs(sop.as_deref(), &statuses, limit)?,
    };
    if json {
        print_json(&rows);
    } else {
        print_rows(&rows);
    }
    Ok(Exit::Ok)
}

/// Prints stored output chunks: a header when the step (or attempt) changes.
struct LogPrinter {
    json: bool,
    gate: String,
}

impl LogPrinter {
    fn chunk(&mut self, c: &OutputChunk) {
        let mut out = std::io::stdout().lock();
        if self.json {
            writeln!(out, "{}", serde_json::to_string(c).unwrap_or_default()).ok();
        } else {
            if c.gate != self.gate {
                writeln!(out, "==> {} (attempt {})", c.gate, c.attempt).ok();
                self.gate.clone_from(&c.gate);
            }
            out.write_all(c.text.as_bytes()).ok();
        }
        out.flush().ok();
    }
}

pub fn logs(home: Home, target: &str, follow: bool, json: bool) -> CmdResult {
    let mut printer = LogPrinter {
        json,
        gate: String::new(),
    };
    let app = match Backend::open(home)? {
        Backend::Local(app) => app,
        Backend::Remote(client) => {
            let id = client.resolve(target, &[], "known")?;
            let until = if follow { Until::End } else { Until::Now };
            sse::follow(&client, &id, until, &mut |event| {
                if event.name == "output" {
                    let d = &event.data;
                    printer.chunk(&OutputChunk {
                        seq: event.output_seq(),
                        gate: d["gate"].as_str().unwrap_or_default().to_string(),
                        attempt: d["attempt"].as_u64().unwrap_or(1) as u32,
                        text: d["text"].as_str().unwrap_or_default().to_string(),
                    });
                }
                Ok(())
            })?;
            return Ok(Exit::Ok);
        }
    };
    let id = app.ops().resolve(target, &[], "known")?;
    let mut after = 0;
    loop {
        let chunks = app.store.output_since(&id, after)?;
        for c in &chunks {
            printer.chunk(c);
            after = c.seq;
        }
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
