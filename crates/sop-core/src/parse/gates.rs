//! `[gates]`: approval and verification gates at the start, the end or before a step.

use std::ops::Range;

use crate::diagnostic::did_you_mean;
use crate::model::{Gate, GateAt, GateKind};

use super::fields::TomlCtx;
use super::toml_tree::{get, Entry};

const GATE_KEYS: &[&str] = &["type", "required", "command", "at"];

/// A gate whose `before:<n>` still has to be checked against the steps.
#[derive(Debug)]
pub(crate) struct PendingGate {
    pub gate: Gate,
    /// Span of the `at` value when it is `before:<n>`.
    pub before_span: Option<Range<usize>>,
}

pub(crate) fn parse_gates(ctx: &mut TomlCtx<'_>, table: &[Entry]) -> Vec<PendingGate> {
    table
        .iter()
        .filter_map(|entry| read_gate(ctx, entry))
        .collect()
}

fn read_gate(ctx: &mut TomlCtx<'_>, entry: &Entry) -> Option<PendingGate> {
    let fields = ctx.table(entry)?;
    ctx.check_keys(fields, GATE_KEYS, &format!("gate `{}`", entry.key));
    let (at, before_span) = gate_at(ctx, entry, fields)?;
    let Some(type_entry) = get(fields, "type") else {
        let help = "add `type = \"approval\"` or `type = \"verification\"`";
        ctx.error_at(
            &entry.node,
            format!("gate `{}` is missing `type`", entry.key),
        )
        .help = Some(help.to_string());
        return None;
    };
    let kind = ctx.string(type_entry)?;
    let required = get(fields, "required").map_or(Some(true), |e| ctx.boolean(e));
    let command = match get(fields, "command") {
        Some(e) => Some(ctx.string(e)?),
        None => None,
    };
    let kind = match kind.as_str() {
        "approval" => GateKind::Approval {
            required: required?,
        },
        "verification" => {
            let Some(command) = command.filter(|c| !c.trim().is_empty()) else {
                let message = format!("verification gate `{}` has no `command`", entry.key);
                ctx.error_at(&entry.node, message).help = Some(
                    "add `command = \"...\"`: the check to run; non-zero exit fails the run"
                        .to_string(),
                );
                return None;
            };
            GateKind::Verification { command }
        }
        other => {
            let help = did_you_mean(other, ["approval", "verification"])
                .unwrap_or_else(|| "expected `approval` or `verification`".to_string());
            ctx.error_at(&type_entry.node, format!("unknown gate type `{other}`"))
                .help = Some(help);
            return None;
        }
    };
    Some(PendingGate {
        gate: Gate {
            name: entry.key.clone(),
            at,
            kind,
        },
        before_span,
    })
}

fn gate_at(
    ctx: &mut TomlCtx<'_>,
    entry: &Entry,
    fields: &[Entry],
) -> Option<(GateAt, Option<Range<usize>>)> {
    let help = "set `at = \"start\"`, `\"end\"` or `\"before:<step number>\"`";
    let Some(at_entry) = get(fields, "at") else {
        if entry.key.starts_with("pre") {
            return Some((GateAt::Start, None));
        }
        if entry.key.starts_with("post") {
            return Some((GateAt::End, None));
        }
        let message = format!("gate `{}` does not say where it sits", entry.key);
        let diag = ctx
            .src
            .error(&entry.key_span, message)
            .with_help(format!("{help}, or start its name with `pre` or `post`"));
        ctx.diags.push(diag);
        return None;
    };
    let text = ctx.string(at_entry)?;
    match text.as_str() {
        "start" => Some((GateAt::Start, None)),
        "end" => Some((GateAt::End, None)),
        _ => {
            let number = text
                .strip_prefix("before:")
                .and_then(|n| n.trim().parse::<u32>().ok())
                .filter(|&n| n > 0);
            if let Some(n) = number {
                Some((GateAt::Before(n), Some(at_entry.node.span.clone())))
            } else {
                ctx.error_at(&at_entry.node, format!("invalid gate position `{text}`"))
                    .help = Some(help.to_string());
                None
            }
        }
    }
}
