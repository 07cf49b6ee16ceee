//! `SOP.md`: the `## Steps` and `## Rollback` sections, their numbered items and step bodies.

use crate::diagnostic::{did_you_mean, Diagnostic, Severity};
use crate::model::Script;

use super::annotations::{
    classify, scan_group, trimmed, Annotation, KeyKind, StepBuilder, ANNOTATION_KEYS,
};
use super::fences::{fence_map, Fence};
use super::span::{Loc, Source};

/// The steps of `SOP.md`, numbered 1..n, with what the lint needs.
#[derive(Debug, Default)]
pub(crate) struct Procedure {
    pub steps: Vec<StepBuilder>,
    pub rollback: Vec<StepBuilder>,
}

/// A level-1 or level-2 heading outside code fences: (0-based line index, level, text).
fn headings<'t>(lines: &[&'t str], fenced: &[Option<usize>]) -> Vec<(usize, usize, &'t str)> {
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if fenced[i].is_some() {
            continue;
        }
        let level = line.chars().take_while(|&c| c == '#').count();
        let rest = &line[level..];
        if (1..=6).contains(&level) && (rest.is_empty() || rest.starts_with([' ', '\t'])) {
            out.push((i, level, rest.trim().trim_end_matches('#').trim()));
        }
    }
    out
}

/// Reads `SOP.md`; `shell` is the sop's default interpreter for untagged fences.
pub(crate) fn read_procedure(
    src: &Source<'_>,
    shell: &str,
    diags: &mut Vec<Diagnostic>,
) -> Procedure {
    let lines: Vec<&str> = src
        .text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let (fences, owner) = fence_map(src, &lines, diags);
    let heads = headings(&lines, &owner);
    let mut procedure = Procedure::default();
    let mut steps_found = false;
    let mut rollback_found = false;
    for (n, &(start, level, text)) in heads.iter().enumerate() {
        let name = text.to_ascii_lowercase();
        if level != 2 || (name != "steps" && name != "rollback") {
            continue;
        }
        let end = heads[n + 1..]
            .iter()
            .find(|h| h.1 <= 2)
            .map_or(lines.len(), |h| h.0);
        let heading = Loc::in_line(start as u32 + 1, lines[start], 0, lines[start].len());
        let found = if name == "steps" {
            &mut steps_found
        } else {
            &mut rollback_found
        };
        if *found {
            diags.push(
                src.at(
                    Severity::Error,
                    heading,
                    format!("duplicate `## {text}` section"),
                )
                .with_help("merge the two sections into one"),
            );
            continue;
        }
        *found = true;
        let section = Section {
            src,
            lines: &lines,
            fences: &fences,
            fenced: &owner,
            shell,
        };
        let steps = section.read_items(start + 1, end, diags);
        if steps.is_empty() {
            let (severity, message) = if name == "steps" {
                (
                    Severity::Error,
                    format!("`## {text}` has no numbered steps"),
                )
            } else {
                (
                    Severity::Warning,
                    format!("`## {text}` has no numbered steps; nothing runs on failure"),
                )
            };
            diags.push(
                src.at(severity, heading, message)
                    .with_help("write each step as `1. **Title**` at the start of a line"),
            );
        }
        if name == "steps" {
            procedure.steps = steps;
        } else {
            procedure.rollback = steps;
        }
    }
    if !steps_found {
        let near = heads.iter().find(|h| h.2.eq_ignore_ascii_case("steps"));
        let diag = match near {
            Some(&(i, _, _)) => src
                .at(
                    Severity::Error,
                    Loc::in_line(i as u32 + 1, lines[i], 0, lines[i].len()),
                    "`SOP.md` has no `## Steps` section",
                )
                .with_help("steps need a level-2 heading: write `## Steps`"),
            None => Diagnostic::file(
                Severity::Error,
                src.path,
                "`SOP.md` has no `## Steps` section",
            )
            .with_help(
                "add a `## Steps` heading followed by numbered steps such as `1. **Run Tests**`",
            ),
        };
        diags.push(diag);
    }
    procedure
}

struct Section<'s, 'a> {
    src: &'s Source<'a>,
    lines: &'s [&'s str],
    fences: &'s [Fence],
    fenced: &'s [Option<usize>],
    shell: &'s str,
}

/// A numbered item line: indentation, written number and where the text after it starts.
fn item_start(line: &str) -> Option<(usize, u64, usize, usize)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    let digits = line[indent..]
        .chars()
        .take_while(char::is_ascii_digit)
        .count();
    if indent > 3 || digits == 0 || digits > 9 {
        return None;
    }
    let after = indent + digits;
    let rest = &line[after..];
    if !rest.starts_with(['.', ')']) || !(rest.len() == 1 || rest[1..].starts_with([' ', '\t'])) {
        return None;
    }
    let number = line[indent..after].parse().ok()?;
    Some((indent, number, indent, after + 1))
}

impl Section<'_, '_> {
    fn read_items(
        &self,
        start: usize,
        end: usize,
        diags: &mut Vec<Diagnostic>,
    ) -> Vec<StepBuilder> {
        let mut items: Vec<(usize, u64, usize, usize)> = Vec::new();
        let mut indent = None;
        for i in start..end {
            if self.fenced[i].is_some() {
                continue;
            }
            if let Some((ind, number, num_at, text_at)) = item_start(self.lines[i]) {
                if *indent.get_or_insert(ind) == ind {
                    items.push((i, number, num_at, text_at));
                }
            }
        }
        let mut steps = Vec::new();
        let mut previous: Option<u64> = None;
        for (k, &(i, number, num_at, text_at)) in items.iter().enumerate() {
            let position = k as u32 + 1;
            let expected = previous.map_or(1, |p| p + 1);
            if number != expected {
                let loc = Loc::in_line(i as u32 + 1, self.lines[i], num_at, text_at - 1);
                let message = match previous {
                    Some(p) if p == number => format!("step number `{number}` is repeated"),
                    Some(p) => format!("step is numbered `{number}` but follows step `{p}`"),
                    None => format!("first step is numbered `{number}`"),
                };
                diags.push(
                    self.src
                        .at(Severity::Warning, loc, message)
                        .with_help(format!(
                            "steps are numbered by their order: this one is step {position}"
                        )),
                );
            }
            previous = Some(number);
            let body_end = items.get(k + 1).map_or(end, |next| next.0);
            let mut builder = StepBuilder::default();
            builder.step.number = position;
            builder.step.line = i as u32 + 1;
            let inline = self.read_head(&mut builder, i, text_at, diags);
            self.read_body(&mut builder, inline, i + 1, body_end, diags);
            steps.push(builder);
        }
        steps
    }

    /// Title, annotation groups and inline description of the item on line `i`.
    fn read_head(
        &self,
        b: &mut StepBuilder,
        i: usize,
        text_at: usize,
        diags: &mut Vec<Diagnostic>,
    ) -> String {
        let line = self.lines[i];
        let line_no = i as u32 + 1;
        let (start, end) = trimmed(line, text_at, line.len());
        let mut pos = start;
        if line[pos..end].starts_with("**") {
            if let Some(close) = line[pos + 2..end].find("**") {
                b.step.title = line[pos + 2..pos + 2 + close].trim().to_string();
                pos += close + 4;
            } else {
                let loc = Loc::in_line(line_no, line, pos, pos + 2);
                diags.push(
                    self.src
                        .at(
                            Severity::Error,
                            loc,
                            "step title opens `**` but never closes it",
                        )
                        .with_help("write the title as `**Title**`"),
                );
                return String::new();
            }
        } else {
            let stop = title_end(&line[pos..end]);
            b.step.title = line[pos..pos + stop].trim().to_string();
            pos += stop;
        }
        if b.step.title.is_empty() {
            let loc = Loc::in_line(line_no, line, text_at - 1, text_at);
            diags.push(
                self.src
                    .at(Severity::Error, loc, "step has no title")
                    .with_help("write the step as `1. **Title**`"),
            );
        }
        loop {
            let (next, _) = trimmed(line, pos, end);
            if !line[next..end].starts_with('[') || is_link(&line[next..end]) {
                pos = next;
                break;
            }
            let Some((annotations, after)) = scan_group(self.src, line_no, line, next, diags)
            else {
                return String::new();
            };
            for a in &annotations {
                b.apply(self.src, a, diags);
            }
            pos = after;
        }
        let rest = line[pos..end].trim_start();
        rest.strip_prefix(['—', '–', '-', ':'])
            .unwrap_or(rest)
            .trim()
            .to_string()
    }

    /// Description lines, code fences and `- key: value` bullets until the next item.
    fn read_body(
        &self,
        b: &mut StepBuilder,
        inline: String,
        start: usize,
        end: usize,
        diags: &mut Vec<Diagnostic>,
    ) {
        let mut text: Vec<String> = Vec::new();
        if !inline.is_empty() {
            text.push(inline);
        }
        let mut tags: Vec<(String, Script)> = Vec::new();
        let mut i = start;
        while i < end {
            if let Some(f) = self.fenced[i] {
                let fence = &self.fences[f];
                if fence.open == i {
                    tags.push((
                        fence.tag.clone(),
                        Script {
                            interpreter: String::new(),
                            code: fence.code.clone(),
                            line: i as u32 + 1,
                        },
                    ));
                }
                i += 1;
                continue;
            }
            let line = self.lines[i];
            if let Some(a) = bullet(line, i as u32 + 1) {
                b.apply(self.src, &a, diags);
            } else if let Some(diag) = near_miss_bullet(self.src, line, i as u32 + 1) {
                diags.push(diag);
            } else if line.trim().is_empty() {
                if text.last().is_some_and(|l| !l.is_empty()) {
                    text.push(String::new());
                }
            } else {
                text.push(line.trim().to_string());
            }
            i += 1;
        }
        while text.last().is_some_and(String::is_empty) {
            text.pop();
        }
        b.step.description = text.join("\n");
        let shell = b
            .step
            .shell
            .clone()
            .unwrap_or_else(|| self.shell.to_string());
        for (tag, mut script) in tags {
            if let Some(interpreter) = interpreter(&tag, &shell) {
                script.interpreter = interpreter;
                b.step.scripts.push(script);
            }
        }
    }
}

/// Where an unbolded title ends: at `[` or a ` — ` / ` - ` separator.
fn title_end(text: &str) -> usize {
    let mut end = text.len();
    for sep in ["[", " — ", " – ", " - "] {
        if let Some(i) = text.find(sep) {
            end = end.min(i);
        }
    }
    end
}

/// `[text](url)` is a markdown link, not an annotation group.
fn is_link(text: &str) -> bool {
    text.find(']')
        .is_some_and(|close| text[close + 1..].starts_with('('))
}

/// The program that runs a fence with this info tag; `None`: documentation, never run.
fn interpreter(tag: &str, shell: &str) -> Option<String> {
    match tag {
        "" | "shell" => Some(shell.to_string()),
        "bash" | "sh" | "zsh" => Some(tag.to_string()),
        "python" | "python3" | "py" => Some("python3".to_string()),
        "node" | "js" | "javascript" => Some("node".to_string()),
        _ => None,
    }
}

/// A `- key: value` bullet whose key a step knows (or an agent-only key).
fn bullet(line: &str, line_no: u32) -> Option<Annotation> {
    let (key_start, key_end, v_start, v_end) = bullet_parts(line)?;
    let key = &line[key_start..key_end];
    if classify(key) == KeyKind::Unknown {
        return None;
    }
    Some(Annotation {
        key: key.to_string(),
        key_at: Loc::in_line(line_no, line, key_start, key_end),
        value: unquote(&line[v_start..v_end]).to_string(),
        value_at: Loc::in_line(line_no, line, v_start, v_end),
    })
}

/// `- requires_aproval: true`: a bullet that looks like a misspelt annotation is an error;
/// any other `- Word: text` bullet is description.
fn near_miss_bullet(src: &Source<'_>, line: &str, line_no: u32) -> Option<Diagnostic> {
    let (key_start, key_end, _, _) = bullet_parts(line)?;
    let key = &line[key_start..key_end];
    if !key
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return None;
    }
    let help = did_you_mean(key, ANNOTATION_KEYS.iter().copied())?;
    let loc = Loc::in_line(line_no, line, key_start, key_end);
    Some(
        src.at(Severity::Error, loc, format!("unknown step bullet `{key}`"))
            .with_help(help),
    )
}

/// Byte ranges of key and value in `- key: value`.
fn bullet_parts(line: &str) -> Option<(usize, usize, usize, usize)> {
    let lead = line.len() - line.trim_start().len();
    let rest = &line[lead..];
    if !rest.starts_with(['-', '*', '+']) || !rest[1..].starts_with([' ', '\t']) {
        return None;
    }
    let key_start = lead + 1 + (rest[1..].len() - rest[1..].trim_start().len());
    let key_len = line[key_start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .count();
    let key_end = key_start + key_len;
    if key_len == 0 || !line[key_start..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
    {
        return None;
    }
    let after = &line[key_end..];
    let colon = key_end + (after.len() - after.trim_start().len());
    if !line[colon..].starts_with(':') {
        return None;
    }
    let (v_start, v_end) = trimmed(line, colon + 1, line.len());
    Some((key_start, key_end, v_start, v_end))
}

fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    value
}
