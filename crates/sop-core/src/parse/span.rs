//! One source file's text and the mapping from byte offsets to `line:col` diagnostics.

use std::ops::Range;

use crate::diagnostic::{Diagnostic, Severity};

/// A place on one line: 1-based line and character column, width in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub line: u32,
    pub col: u32,
    pub len: u32,
}

impl Loc {
    /// The characters `start..end` (byte offsets) of `text`, the content of line `line`.
    pub fn in_line(line: u32, text: &str, start: usize, end: usize) -> Loc {
        let col = text.get(..start).map_or(0, |s| s.chars().count()) as u32 + 1;
        let len = text.get(start..end).map_or(1, |s| s.chars().count()) as u32;
        Loc {
            line,
            col,
            len: len.max(1),
        }
    }
}

/// The text of one file and its display path; builds diagnostics that point into it.
#[derive(Debug)]
pub(crate) struct Source<'a> {
    pub path: &'a str,
    pub text: &'a str,
    /// Byte offset where each line starts.
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    pub fn new(path: &'a str, text: &'a str) -> Source<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source {
            path,
            text,
            line_starts,
        }
    }

    /// 1-based line and character column of a byte offset.
    pub fn position(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        let line_index = self
            .line_starts
            .partition_point(|&start| start <= offset)
            .saturating_sub(1);
        let start = self.line_starts[line_index];
        let col = self
            .text
            .get(start..offset)
            .map_or(0, |prefix| prefix.chars().count());
        (line_index as u32 + 1, col as u32 + 1)
    }

    /// A diagnostic underlining the bytes of `span`, cut at the end of its first line.
    pub fn diag(
        &self,
        severity: Severity,
        span: &Range<usize>,
        message: impl Into<String>,
    ) -> Diagnostic {
        let (line, col) = self.position(span.start);
        let end = self.text[span.start.min(self.text.len())..]
            .find(['\n', '\r'])
            .map_or(self.text.len(), |i| span.start + i)
            .min(span.end.max(span.start));
        let len = self
            .text
            .get(span.start..end)
            .map_or(1, |s| s.chars().count());
        Diagnostic::at(
            severity, self.path, self.text, line, col, len as u32, message,
        )
    }

    /// A diagnostic at a 1-based character column of a 1-based line.
    pub fn at(&self, severity: Severity, loc: Loc, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(
            severity, self.path, self.text, loc.line, loc.col, loc.len, message,
        )
    }

    pub fn error(&self, span: &Range<usize>, message: impl Into<String>) -> Diagnostic {
        self.diag(Severity::Error, span, message)
    }

    pub fn warning(&self, span: &Range<usize>, message: impl Into<String>) -> Diagnostic {
        self.diag(Severity::Warning, span, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters() {
        let src = Source::new("f", "ab\n— x\n");
        assert_eq!(src.position(0), (1, 1));
        assert_eq!(src.position(3), (2, 1));
        assert_eq!(src.position(7), (2, 3));
        let d = src.error(&(7..8), "m");
        assert_eq!((d.line, d.col, d.len), (2, 3, 1));
    }
}
