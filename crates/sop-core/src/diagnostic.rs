//! Diagnostics a person can act on: `path:line:col`, the source line, a caret, a `help:`.

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a SOP file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Lower-case, names things in backticks, no trailing period.
    pub message: String,
    /// Path as shown to the user (e.g. `sops/deploy/SOP.md`).
    pub path: String,
    /// 1-based; 0 when the problem concerns the whole file.
    pub line: u32,
    /// 1-based column in characters; 0 when unknown.
    pub col: u32,
    /// Caret width in characters (at least 1 when `line > 0`).
    pub len: u32,
    /// The text of `line`, without its newline.
    pub source_line: Option<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// A diagnostic about a whole file (no line).
    pub fn file(severity: Severity, path: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity,
            message: message.into(),
            path: path.to_string(),
            line: 0,
            col: 0,
            len: 0,
            source_line: None,
            help: None,
        }
    }

    /// A diagnostic pointing at `len` characters from `col` (both 1-based) on `line` of `source`.
    pub fn at(
        severity: Severity,
        path: &str,
        source: &str,
        line: u32,
        col: u32,
        len: u32,
        message: impl Into<String>,
    ) -> Diagnostic {
        let source_line = source
            .lines()
            .nth(line.saturating_sub(1) as usize)
            .map(|l| l.trim_end_matches('\r').to_string());
        Diagnostic {
            severity,
            message: message.into(),
            path: path.to_string(),
            line,
            col: col.max(1),
            len: len.max(1),
            source_line,
            help: None,
        }
    }

    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// The multi-line rendering shown by `sop validate`.
    pub fn render(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(f, "{label}: {}", self.message)?;
        if self.line == 0 {
            writeln!(f, "  --> {}", self.path)?;
        } else {
            let num = self.line.to_string();
            let pad = " ".repeat(num.len());
            writeln!(f, "{pad}--> {}:{}:{}", self.path, self.line, self.col)?;
            if let Some(src) = &self.source_line {
                // Tabs would misalign the caret; show them as one space each.
                let shown: String = src
                    .chars()
                    .map(|c| if c == '\t' { ' ' } else { c })
                    .collect();
                writeln!(f, "{pad} |")?;
                writeln!(f, "{num} | {shown}")?;
                let caret_pad = " ".repeat(self.col.saturating_sub(1) as usize);
                let carets = "^".repeat(self.len.max(1) as usize);
                writeln!(f, "{pad} | {caret_pad}{carets}")?;
            }
        }
        if let Some(help) = &self.help {
            let pad = if self.line == 0 {
                1
            } else {
                self.line.to_string().len()
            };
            writeln!(f, "{} = help: {help}", " ".repeat(pad))?;
        }
        Ok(())
    }
}

/// "did you mean `x`?" for the closest of `candidates` to `word`, if any is close enough.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

/// 1-based line, 1-based character column and character length of a byte span in `source`.
pub fn line_col(source: &str, span: std::ops::Range<usize>) -> (u32, u32, u32) {
    let start = span.start.min(source.len());
    let end = span.end.clamp(start, source.len());
    let before = source.get(..start).unwrap_or("");
    let line = before.matches('\n').count() as u32 + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = source
        .get(line_start..start)
        .map_or(0, |s| s.chars().count()) as u32
        + 1;
    let line_end = source[start..]
        .find('\n')
        .map_or(source.len(), |i| start + i);
    let len = source
        .get(start..end.min(line_end))
        .map_or(1, |s| s.chars().count())
        .max(1) as u32;
    (line, col, len)
}
