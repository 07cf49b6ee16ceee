//! Step annotations: `[key: value, ...]` groups and `- key: value` sub-bullets.

use std::collections::BTreeSet;

use crate::condition::Condition;
use crate::diagnostic::{did_you_mean, Diagnostic, Severity};
use crate::duration::parse_duration;
use crate::model::Step;

use super::fields::{backticked, is_agent_only};
use super::names::{is_program_name, var_name_problem, workdir_problem};
use super::span::{Loc, Source};

/// Annotation keys a step understands (`requires_confirmation` is `ZeroClaw`'s `requires_approval`).
pub(crate) const ANNOTATION_KEYS: &[&str] = &[
    "if",
    "requires_approval",
    "timeout",
    "retry",
    "retry_delay",
    "continue_on_error",
    "idempotent",
    "shell",
    "workdir",
    "outputs",
    "requires_confirmation",
];

/// Most retries one step may ask for.
const MAX_RETRY: u32 = 100;

/// One `key: value`, with where its parts were written.
#[derive(Debug, Clone)]
pub(crate) struct Annotation {
    pub key: String,
    pub key_at: Loc,
    /// Unquoted.
    pub value: String,
    pub value_at: Loc,
}

/// What a key means to a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Known,
    AgentOnly,
    Unknown,
}

pub(crate) fn classify(key: &str) -> KeyKind {
    if ANNOTATION_KEYS.contains(&key) {
        KeyKind::Known
    } else if is_agent_only(key) {
        KeyKind::AgentOnly
    } else {
        KeyKind::Unknown
    }
}

/// Scans one `[ ... ]` group opening at byte `open` of `line`. Returns its annotations and
/// the byte index after `]`, or `None` (with a diagnostic) when the group is malformed.
pub(crate) fn scan_group(
    src: &Source<'_>,
    line_no: u32,
    line: &str,
    open: usize,
    diags: &mut Vec<Diagnostic>,
) -> Option<(Vec<Annotation>, usize)> {
    let mut items: Vec<Annotation> = Vec::new();
    let mut seg_start = open + 1;
    let mut quote: Option<(char, usize)> = None;
    let mut prev = '[';
    for (i, c) in line[open + 1..]
        .char_indices()
        .map(|(i, c)| (i + open + 1, c))
    {
        if let Some((q, _)) = quote {
            if c == q {
                quote = None;
            }
        } else if matches!(c, '"' | '\'') && !prev.is_alphanumeric() {
            quote = Some((c, i));
        } else if c == ',' || c == ']' {
            segment(src, line_no, line, seg_start, i, &mut items, diags);
            seg_start = i + 1;
            if c == ']' {
                return Some((items, i + 1));
            }
        }
        prev = c;
    }
    if let Some((q, at)) = quote {
        let loc = Loc::in_line(line_no, line, at, at + 1);
        let diag = src
            .at(
                Severity::Error,
                loc,
                "unterminated quoted value in annotation",
            )
            .with_help(format!("close the value with `{q}`"));
        diags.push(diag);
    } else {
        let loc = Loc::in_line(line_no, line, open, open + 1);
        diags.push(
            src.at(Severity::Error, loc, "annotation group is never closed")
                .with_help("close it with `]`"),
        );
    }
    None
}

/// One comma-separated piece `line[start..end]` of a group.
fn segment(
    src: &Source<'_>,
    line_no: u32,
    line: &str,
    start: usize,
    end: usize,
    items: &mut Vec<Annotation>,
    diags: &mut Vec<Diagnostic>,
) {
    let raw = &line[start..end];
    if raw.trim().is_empty() {
        return;
    }
    let (value_start, value_end) = trimmed(line, start, end);
    let colon = raw.find(':').filter(|&c| !raw[..c].contains(['"', '\'']));
    let Some(colon) = colon else {
        // `[outputs: a, b]`: later names continue the list.
        if let Some(last) = items.last_mut().filter(|a| a.key == "outputs") {
            last.value.push(',');
            last.value.push_str(&line[value_start..value_end]);
            return;
        }
        let loc = Loc::in_line(line_no, line, value_start, value_end);
        let text = &line[value_start..value_end];
        let diag = src.at(
            Severity::Error,
            loc,
            format!("expected `key: value` in annotation, found `{text}`"),
        );
        diags.push(
            diag.with_help("annotations look like `[requires_approval: true, timeout: 10m]`"),
        );
        return;
    };
    let (key_start, key_end) = trimmed(line, start, start + colon);
    let (mut v_start, mut v_end) = trimmed(line, start + colon + 1, end);
    if is_single_quoted(&line[v_start..v_end]) {
        v_start += 1;
        v_end -= 1;
    }
    items.push(Annotation {
        key: line[key_start..key_end].to_string(),
        key_at: Loc::in_line(line_no, line, key_start, key_end),
        value: line[v_start..v_end].to_string(),
        value_at: Loc::in_line(line_no, line, v_start, v_end),
    });
}

/// `line[start..end]` without surrounding whitespace, as byte offsets.
pub(crate) fn trimmed(line: &str, start: usize, end: usize) -> (usize, usize) {
    let text = &line[start..end];
    let lead = text.len() - text.trim_start().len();
    let s = start + lead;
    (s, s + text.trim().len())
}

/// `"x"` or `'x'` as one token (not `"a" == "b"`).
fn is_single_quoted(value: &str) -> bool {
    let Some(q) = value.chars().next().filter(|c| matches!(c, '"' | '\'')) else {
        return false;
    };
    value.len() >= 2 && value[1..].find(q) == Some(value.len() - 2)
}

/// A step being built, with what the lint needs to know later.
#[derive(Debug, Default)]
pub(crate) struct StepBuilder {
    pub step: Step,
    seen: BTreeSet<String>,
    /// Where the condition text starts, for warnings about the variables it reads.
    pub condition_at: Option<Loc>,
}

impl StepBuilder {
    /// Applies a known or agent-only key; unknown keys are reported as errors.
    pub fn apply(&mut self, src: &Source<'_>, a: &Annotation, diags: &mut Vec<Diagnostic>) {
        let error = |loc: Loc, message: String| src.at(Severity::Error, loc, message);
        match classify(&a.key) {
            KeyKind::Unknown => {
                let help =
                    did_you_mean(&a.key, ANNOTATION_KEYS.iter().copied()).unwrap_or_else(|| {
                        format!("known annotations: {}", backticked(&ANNOTATION_KEYS[..10]))
                    });
                diags.push(
                    error(a.key_at, format!("unknown annotation `{}`", a.key)).with_help(help),
                );
                return;
            }
            KeyKind::AgentOnly => {
                if a.key != "tools" {
                    diags.push(src.at(
                        Severity::Warning,
                        a.key_at,
                        format!("`{}` is an agent-only key; ignored here", a.key),
                    ));
                }
                self.step.metadata.insert(a.key.clone(), a.value.clone());
                return;
            }
            KeyKind::Known => {}
        }
        let canonical = if a.key == "requires_confirmation" {
            "requires_approval"
        } else {
            a.key.as_str()
        };
        if !self.seen.insert(canonical.to_string()) {
            diags.push(
                error(a.key_at, format!("`{}` is set twice for this step", a.key))
                    .with_help("keep one of them"),
            );
            return;
        }
        if let Err(diag) = self.apply_known(src, canonical, a) {
            diags.push(diag);
        }
    }

    fn apply_known(
        &mut self,
        src: &Source<'_>,
        key: &str,
        a: &Annotation,
    ) -> Result<(), Diagnostic> {
        let error = |message: String| src.at(Severity::Error, a.value_at, message);
        let error_with_help = |(message, help): (String, Option<String>)| {
            let mut diag = error(message);
            diag.help = help;
            diag
        };
        let step = &mut self.step;
        match key {
            "if" => {
                let condition = Condition::parse(&a.value).map_err(|e| {
                    let loc = Loc {
                        line: a.value_at.line,
                        col: a.value_at.col + e.col.saturating_sub(1),
                        len: e.len.max(1),
                    };
                    let diag = src.at(Severity::Error, loc, e.message);
                    match e.help {
                        Some(help) => diag.with_help(help),
                        None => diag,
                    }
                })?;
                step.condition = Some(condition);
                self.condition_at = Some(a.value_at);
            }
            "requires_approval" => step.requires_approval = boolean(a).map_err(error)?,
            "continue_on_error" => step.continue_on_error = boolean(a).map_err(error)?,
            "idempotent" => step.idempotent = boolean(a).map_err(error)?,
            "timeout" => {
                let secs = duration(a).map_err(error_with_help)?;
                if secs == 0 {
                    return Err(error("`timeout` must be greater than zero".to_string())
                        .with_help("remove it to use the sop's `timeout_secs`"));
                }
                step.timeout_secs = Some(secs);
            }
            "retry_delay" => {
                step.retry_delay_secs = duration(a).map_err(error_with_help)?;
            }
            "retry" => {
                let retry = a.value.parse::<u32>().map_err(|_| {
                    error(format!(
                        "`retry` must be a whole number of attempts, found `{}`",
                        a.value
                    ))
                    .with_help("for example `retry: 2` runs the step at most three times")
                })?;
                if retry > MAX_RETRY {
                    return Err(error(format!(
                        "`retry` is at most {MAX_RETRY}, found `{retry}`"
                    )));
                }
                step.retry = retry;
            }
            "shell" => {
                if !is_program_name(&a.value) {
                    return Err(error(format!(
                        "`shell` must be a program name, found `{}`",
                        a.value
                    ))
                    .with_help("for example `bash`, `sh` or `zsh`"));
                }
                step.shell = Some(a.value.clone());
            }
            "workdir" => {
                if let Some(problem) = workdir_problem(&a.value) {
                    return Err(error(problem).with_help("use a path inside the sop directory"));
                }
                step.workdir = Some(a.value.clone());
            }
            "outputs" => {
                for (start, name) in output_names(&a.value) {
                    if let Some((message, help)) = var_name_problem(name) {
                        let mut diag = src.at(Severity::Error, name_at(a, start, name), message);
                        diag.help = help;
                        return Err(diag);
                    }
                    step.outputs.push(name.to_string());
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// A duration value in seconds, or the message and help saying why it is not one.
fn duration(a: &Annotation) -> Result<u64, (String, Option<String>)> {
    parse_duration(&a.value)
        .map_err(|e| (format!("invalid `{}`: {}", a.key, e.problem()), e.help()))
}

/// The names of an `outputs` value (separated by commas or spaces), each with its byte offset.
fn output_names(value: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut offset = 0;
    value.split([',', ' ']).filter_map(move |part| {
        let start = offset + (part.len() - part.trim_start().len());
        offset += part.len() + 1;
        let name = part.trim();
        (!name.is_empty()).then_some((start, name))
    })
}

/// Where `name`, at byte `start` of `a.value`, was written: the value's place when the value
/// is not the line's text as written (`[outputs: a, b]` is joined from two pieces).
fn name_at(a: &Annotation, start: usize, name: &str) -> Loc {
    let written = a.value.chars().count() == a.value_at.len as usize;
    if !written {
        return a.value_at;
    }
    Loc {
        line: a.value_at.line,
        col: a.value_at.col + a.value[..start].chars().count() as u32,
        len: name.chars().count() as u32,
    }
}

fn boolean(a: &Annotation) -> Result<bool, String> {
    match a.value.to_ascii_lowercase().as_str() {
        "true" | "yes" => Ok(true),
        "false" | "no" => Ok(false),
        _ => Err(format!(
            "`{}` must be `true` or `false`, found `{}`",
            a.key, a.value
        )),
    }
}
