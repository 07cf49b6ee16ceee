//! `GET /api/metrics` (JSON, every window) and `GET /metrics` (Prometheus text, all time):
//! SPEC §7's metrics, computed from the store as of the request.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use sop_core::metrics::{Figures, Metrics, Spread, Window};

use crate::auth::{Auth, Viewer};
use crate::error::ApiError;
use crate::extract::Query;
use crate::openapi::MetricsDocument;
use crate::shapes::{ErrorBody, MetricsQuery};
use crate::{blocking, ServerState};

/// Metrics per SOP and overall, for all time and the last 30 and 7 days (`sop`: that SOP's
/// only).
#[utoipa::path(get, path = "/api/metrics", tag = "metrics", security(("bearer" = [])),
    params(MetricsQuery),
    responses(
        (status = 200, description = "the metrics", body = MetricsDocument),
        (status = 400, description = "unknown query parameter", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "role too low or host not allowed", body = ErrorBody),
        (status = 404, description = "no such SOP (and no runs of it)", body = ErrorBody),
    ))]
pub async fn json(
    State(state): State<Arc<ServerState>>,
    _auth: Auth<Viewer>,
    Query(q): Query<MetricsQuery>,
) -> Result<axum::Json<Metrics>, ApiError> {
    let metrics = blocking(&state, move |ops| Ok(ops.metrics(q.sop.as_deref())?)).await?;
    Ok(axum::Json(metrics))
}

/// The all-time metrics per SOP in Prometheus' text format (durations in seconds).
#[utoipa::path(get, path = "/metrics", tag = "metrics", security(("bearer" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "role too low or host not allowed", body = ErrorBody),
    ))]
pub async fn prometheus(
    State(state): State<Arc<ServerState>>,
    _auth: Auth<Viewer>,
) -> Result<impl IntoResponse, ApiError> {
    let metrics = blocking(&state, |ops| Ok(ops.metrics(None)?)).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        exposition(&metrics),
    ))
}

/// One metric family: its name, help, type, and how to write its samples for a SOP.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    write: fn(&mut String, &'static str, &str, &Figures),
}

const FAMILIES: &[Family] = &[
    Family {
        name: "sop_runs",
        help: "Runs by SOP and their status now.",
        kind: "gauge",
        write: |out, name, sop, f| {
            for (status, n) in &f.by_status {
                let _ = writeln!(out, "{name}{{sop=\"{sop}\",status=\"{status}\"}} {n}");
            }
        },
    },
    Family {
        name: "sop_run_success_ratio",
        help: "Successful runs over the runs that ended.",
        kind: "gauge",
        write: |out, name, sop, f| {
            if let Some(rate) = f.success_rate {
                sample(out, name, sop, rate);
            }
        },
    },
    Family {
        name: "sop_run_duration_seconds",
        help: "From a run's first claim to its end, of the runs that ended.",
        kind: "summary",
        write: |out, name, sop, f| summary(out, name, sop, &f.run_duration_ms),
    },
    Family {
        name: "sop_step_duration_seconds",
        help: "Main steps whose process ran.",
        kind: "summary",
        write: |out, name, sop, f| summary(out, name, sop, &f.step_duration_ms),
    },
    Family {
        name: "sop_queue_wait_seconds",
        help: "From queued to a run's first claim.",
        kind: "summary",
        write: |out, name, sop, f| summary(out, name, sop, &f.queue_wait_ms),
    },
    Family {
        name: "sop_approval_wait_seconds",
        help: "How long approval gates waited for the decision.",
        kind: "summary",
        write: |out, name, sop, f| summary(out, name, sop, &f.approval_wait_ms),
    },
    Family {
        name: "sop_approvals_total",
        help: "Approvals given.",
        kind: "counter",
        write: |out, name, sop, f| sample(out, name, sop, f.approvals),
    },
    Family {
        name: "sop_rejections_total",
        help: "Gates rejected, by a person or by the approval timeout.",
        kind: "counter",
        write: |out, name, sop, f| sample(out, name, sop, f.rejections),
    },
    Family {
        name: "sop_triggers_suppressed_total",
        help: "Triggers that fired while the SOP was in cooldown (not queued).",
        kind: "counter",
        write: |out, name, sop, f| sample(out, name, sop, f.suppressed_triggers),
    },
];

/// One sample of a SOP's series.
fn sample(out: &mut String, name: &str, sop: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{name}{{sop=\"{sop}\"}} {value}");
}

/// Quantiles (nearest rank; none while empty), sum and count, in seconds.
fn summary(out: &mut String, name: &str, sop: &str, s: &Spread) {
    let secs = |ms: i64| {
        #[allow(clippy::cast_precision_loss)]
        let s = ms as f64 / 1000.0;
        s
    };
    for (q, v) in [("0.5", s.p50), ("0.95", s.p95)] {
        if let Some(v) = v {
            let _ = writeln!(out, "{name}{{sop=\"{sop}\",quantile=\"{q}\"}} {}", secs(v));
        }
    }
    sample(out, &format!("{name}_sum"), sop, secs(s.sum));
    sample(out, &format!("{name}_count"), sop, s.count);
}

/// The all-time figures of every SOP, family by family.
pub fn exposition(m: &Metrics) -> String {
    let mut out = String::new();
    for family in FAMILIES {
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
        for (sop, windows) in &m.sops {
            if let Some(all) = windows.get(&Window::All) {
                (family.write)(&mut out, family.name, &label_value(sop), all);
            }
        }
    }
    out
}

/// A label value as the text format wants it (`\`, `"` and newlines escaped). SOP names
/// (`[a-z0-9._-]`) have none of them, but a name read from an older store might.
fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
