//! Checks across both files: gate positions against the steps, and condition variables that
//! nothing can set.

use std::collections::BTreeSet;

use crate::diagnostic::{Diagnostic, Severity};

use super::annotations::StepBuilder;
use super::manifest::Manifest;
use super::procedure::Procedure;
use super::span::{Loc, Source};

const BUILT_INS: &[&str] = &["previous_step", "run_id", "sop_name", "trigger"];

/// `gate before:N` must name an existing step.
pub(crate) fn check_gates(
    toml: &Source<'_>,
    manifest: &Manifest,
    step_count: usize,
    diags: &mut Vec<Diagnostic>,
) {
    for pending in &manifest.gates {
        let (crate::model::GateAt::Before(n), Some(span)) = (pending.gate.at, &pending.before_span)
        else {
            continue;
        };
        if n as usize > step_count {
            let steps = if step_count == 1 { "step" } else { "steps" };
            let message = format!(
                "gate `{}` sits before step {n}, but the procedure has {step_count} {steps}",
                pending.gate.name
            );
            diags.push(toml.error(span, message).with_help(format!(
                "use a step number from 1 to {step_count}, `start` or `end`"
            )));
        }
    }
}

/// Warns about each condition variable that no declared var, built-in, trigger, `outputs:`
/// annotation or `$SOP_OUTPUT` write can set.
pub(crate) fn check_condition_vars(
    md: &Source<'_>,
    manifest: &Manifest,
    procedure: &Procedure,
    diags: &mut Vec<Diagnostic>,
) {
    if manifest.trigger_vars.any {
        return;
    }
    let steps = || procedure.steps.iter().chain(&procedure.rollback);
    let mut known: BTreeSet<String> = BUILT_INS.iter().map(|s| (*s).to_string()).collect();
    known.extend(manifest.vars.iter().flat_map(|v| v.keys().cloned()));
    known.extend(manifest.trigger_vars.names.iter().cloned());
    known.extend((1..=manifest.trigger_vars.match_count).map(|k| format!("match_{k}")));
    known.extend((1..=procedure.steps.len()).map(|k| format!("step_{k}")));
    for b in steps() {
        known.extend(b.step.outputs.iter().cloned());
        for script in &b.step.scripts {
            known.extend(output_writes(&script.code));
        }
    }
    for b in steps() {
        check_step(md, manifest, b, &known, diags);
    }
}

fn check_step(
    md: &Source<'_>,
    manifest: &Manifest,
    b: &StepBuilder,
    known: &BTreeSet<String>,
    diags: &mut Vec<Diagnostic>,
) {
    let (Some(condition), Some(at)) = (&b.step.condition, b.condition_at) else {
        return;
    };
    for name in condition.variables() {
        if known.contains(&name) {
            continue;
        }
        let loc = word_in(condition.source(), &name).map_or(at, |(col, len)| Loc {
            line: at.line,
            col: at.col + col,
            len,
        });
        let message =
            format!("condition reads `{name}`, which no step output, declared var or trigger sets");
        let help = if manifest.vars.is_some() {
            format!("declare it under `[vars]`, or list it in a step's `outputs:` and write `{name}=...` to `$SOP_OUTPUT`")
        } else {
            format!("declare it under `[vars]` or set it with `--var {name}=...`")
        };
        diags.push(md.at(Severity::Warning, loc, message).with_help(help));
    }
}

/// Character offset and length of `word` as a whole identifier in `text`.
fn word_in(text: &str, word: &str) -> Option<(u32, u32)> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word)
        .find(|&(i, _)| {
            !text[..i].ends_with(is_ident) && !text[i + word.len()..].starts_with(is_ident)
        })
        .map(|(i, _)| {
            (
                text[..i].chars().count() as u32,
                word.chars().count() as u32,
            )
        })
}

/// Names a script may write as `name=value` to `$SOP_OUTPUT`: every `NAME=` on a line that
/// mentions `SOP_OUTPUT`.
fn output_writes(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in code.lines().filter(|l| l.contains("SOP_OUTPUT")) {
        let bytes = line.as_bytes();
        for (i, _) in line.match_indices('=') {
            // The name starts after the last character that cannot be part of it (which
            // may be several bytes long).
            let start = line[..i]
                .char_indices()
                .rfind(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
                .map_or(0, |(p, c)| p + c.len_utf8());
            let name = &line[start..i];
            let before = if start == 0 { b' ' } else { bytes[start - 1] };
            if !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && before != b'$'
                && name != "SOP_OUTPUT"
            {
                names.push(name.to_string());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::{output_writes, word_in};

    #[test]
    fn finds_output_names() {
        assert_eq!(
            output_writes("echo \"artifact=dist/app.tar.gz\" >> \"$SOP_OUTPUT\"\nx=1\n"),
            vec!["artifact"]
        );
        assert_eq!(
            output_writes("printf 'a=%s' \"$v\" >> $SOP_OUTPUT"),
            vec!["a"]
        );
    }

    #[test]
    fn finds_whole_words() {
        assert_eq!(word_in("ab == 1 && b", "b"), Some((11, 1)));
    }
}
