//! `sop metrics [<sop>] [--json]`: SPEC §7's metrics, from the store or a reachable daemon
//! (`GET /api/metrics`). Both print from the same JSON document.

use serde_json::Value;
use sop_runtime::clock::human_ms;
use sop_runtime::Home;

use crate::backend::Backend;
use crate::remote::segment;
use crate::{CmdResult, Exit, Fail};

const WINDOWS: [(&str, &str); 3] = [("all", "all time"), ("30d", "30 days"), ("7d", "7 days")];

pub fn metrics(home: Home, sop: Option<&str>, json: bool) -> CmdResult {
    let doc = match Backend::open(home)? {
        Backend::Local(app) => serde_json::to_value(app.ops().metrics(sop)?)
            .map_err(|e| Fail::failed(format!("cannot show the metrics: {e}")))?,
        Backend::Remote(client) => {
            let path = match sop {
                Some(s) => format!("/api/metrics?sop={}", segment(s)),
                None => "/api/metrics".to_string(),
            };
            client.get(&path)?
        }
    };
    if json {
        outln!("{doc:#}");
        return Ok(Exit::Ok);
    }
    let title = sop.map_or_else(|| "all SOPs".to_string(), |s| format!("`{s}`"));
    print_figures(&title, &doc["overall"]);
    if sop.is_none() {
        print_per_sop(&doc["sops"]);
    }
    Ok(Exit::Ok)
}

/// One row per figure, one column per window.
fn print_figures(title: &str, windows: &Value) {
    let head: Vec<String> = WINDOWS.iter().map(|(_, w)| format!("{w:>12}")).collect();
    outln!("{:<24}{}", format!("{title}:"), head.join(""));
    let row = |label: &str, cell: &dyn Fn(&Value) -> String| {
        let cells: Vec<String> = WINDOWS
            .iter()
            .map(|(key, _)| format!("{:>12}", cell(&windows[*key])))
            .collect();
        outln!("{label:<24}{}", cells.join(""));
    };
    let count = |key: &'static str| move |f: &Value| f[key].as_u64().unwrap_or(0).to_string();
    row("runs", &count("runs"));
    // Statuses some window has runs in, in the order the document gives them.
    let statuses: Vec<String> = windows["all"]["by_status"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
                .map(|(s, _)| s.clone())
                .collect()
        })
        .unwrap_or_default();
    for status in &statuses {
        row(&format!("  {status}"), &|f| {
            f["by_status"][status.as_str()]
                .as_u64()
                .unwrap_or(0)
                .to_string()
        });
    }
    row("success rate", &|f| {
        f["success_rate"]
            .as_f64()
            .map_or_else(|| "-".to_string(), |r| format!("{:.1} %", r * 100.0))
    });
    for (label, key) in [
        ("run duration", "run_duration_ms"),
        ("step duration", "step_duration_ms"),
        ("queue wait", "queue_wait_ms"),
        ("approval wait", "approval_wait_ms"),
    ] {
        for q in ["p50", "p95", "max"] {
            row(&format!("{label} {q}"), &|f| duration(&f[key][q]));
        }
    }
    row("approvals", &count("approvals"));
    row("rejections", &count("rejections"));
    row("suppressed triggers", &count("suppressed_triggers"));
}

/// All-time summary per SOP.
fn print_per_sop(sops: &Value) {
    let Some(sops) = sops.as_object().filter(|m| !m.is_empty()) else {
        return;
    };
    outln!();
    outln!(
        "{:<24}{:>8}{:>10}{:>12}{:>12}{:>12}",
        "SOP (all time)",
        "RUNS",
        "SUCCESS",
        "P50",
        "P95",
        "SUPPRESSED"
    );
    for (name, windows) in sops {
        let f = &windows["all"];
        outln!(
            "{:<24}{:>8}{:>10}{:>12}{:>12}{:>12}",
            name,
            f["runs"].as_u64().unwrap_or(0),
            f["success_rate"]
                .as_f64()
                .map_or_else(|| "-".to_string(), |r| format!("{:.1} %", r * 100.0)),
            duration(&f["run_duration_ms"]["p50"]),
            duration(&f["run_duration_ms"]["p95"]),
            f["suppressed_triggers"].as_u64().unwrap_or(0),
        );
    }
}

fn duration(ms: &Value) -> String {
    ms.as_i64().map_or_else(|| "-".to_string(), human_ms)
}
