//! Code fences of `SOP.md` (backticks and tildes): where each opens and closes, its tag and its code.

use crate::diagnostic::{Diagnostic, Severity};

use super::span::{Loc, Source};

/// One fenced block.
#[derive(Debug, Clone)]
pub(crate) struct Fence {
    /// 0-based index of the opening line.
    pub open: usize,
    /// First word of the info string, lower-cased (`bash`, `json`, or empty).
    pub tag: String,
    /// The lines between the fences, with the fence's indentation removed.
    pub code: String,
}

/// Every fence of the file, and for each line the index of the fence it belongs to.
pub(crate) fn fence_map(
    src: &Source<'_>,
    lines: &[&str],
    diags: &mut Vec<Diagnostic>,
) -> (Vec<Fence>, Vec<Option<usize>>) {
    let mut fences = Vec::new();
    let mut owner = vec![None; lines.len()];
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let indent = line.len() - line.trim_start_matches(' ').len();
        let rest = &line[indent..];
        let Some(marker) = rest.chars().next().filter(|c| matches!(c, '`' | '~')) else {
            i += 1;
            continue;
        };
        let width = rest.chars().take_while(|&c| c == marker).count();
        let info = rest[width..].trim();
        if width < 3 || (marker == '`' && info.contains('`')) {
            i += 1;
            continue;
        }
        let tag = info
            .split(|c: char| c.is_whitespace() || c == '{' || c == ',')
            .next()
            .unwrap_or("")
            .trim_start_matches('.')
            .to_ascii_lowercase();
        let index = fences.len();
        owner[i] = Some(index);
        let mut code = Vec::new();
        let mut j = i + 1;
        let mut closed = false;
        while j < lines.len() {
            owner[j] = Some(index);
            let t = lines[j].trim_start_matches(' ');
            let run = t.chars().take_while(|&c| c == marker).count();
            if run >= width && t[run..].trim().is_empty() {
                closed = true;
                break;
            }
            code.push(strip_indent(lines[j], indent));
            j += 1;
        }
        if !closed {
            let loc = Loc::in_line(i as u32 + 1, line, indent, indent + width);
            let chars = if marker == '`' { "backticks" } else { "tildes" };
            let help = format!("close it with a line of {width} {chars}");
            diags.push(
                src.at(Severity::Error, loc, "code fence is never closed")
                    .with_help(help),
            );
        }
        let mut text = code.join("\n");
        if !code.is_empty() {
            text.push('\n');
        }
        fences.push(Fence {
            open: i,
            tag,
            code: text,
        });
        i = j + 1;
    }
    (fences, owner)
}

/// Removes up to `indent` leading spaces.
fn strip_indent(line: &str, indent: usize) -> &str {
    let spaces = line.len() - line.trim_start_matches(' ').len();
    &line[spaces.min(indent)..]
}
