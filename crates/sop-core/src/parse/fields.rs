//! Typed reads of TOML values that report "expected ..., found ..." and unknown keys.

use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::vars::regex_error;

use super::span::Source;
use super::toml_tree::{Entry, Node, Value};

/// `ZeroClaw` keys that only mean something to an agent runtime: warned about, then ignored.
pub(crate) const AGENT_ONLY_KEYS: &[&str] = &[
    "agent",
    "agents",
    "deterministic",
    "tools",
    "policy",
    "input",
    "inputs",
    "output",
    "next",
    "depends_on",
    "model",
    "prompt",
    "system_prompt",
    "memory",
    "skills",
];

pub(crate) fn is_agent_only(key: &str) -> bool {
    AGENT_ONLY_KEYS.contains(&key)
}

/// The file being read and the diagnostics found so far.
pub(crate) struct TomlCtx<'a> {
    pub src: Source<'a>,
    pub diags: Vec<Diagnostic>,
}

impl TomlCtx<'_> {
    fn wrong_type(&mut self, entry: &Entry, expected: &str) {
        let found = entry.node.value.type_name();
        let diag = self.src.error(
            &entry.node.span,
            format!("`{}` must be {expected}, found {found}", entry.key),
        );
        let diag = match (&entry.node.value, expected) {
            (Value::Integer(_) | Value::Float(_) | Value::Boolean(_), "a string") => {
                diag.with_help("quote the value")
            }
            (Value::String(_), "a boolean") => {
                diag.with_help("write `true` or `false` without quotes")
            }
            (Value::String(_), "a non-negative integer") => {
                diag.with_help("write a plain number without quotes")
            }
            _ => diag,
        };
        self.diags.push(diag);
    }

    pub fn string(&mut self, entry: &Entry) -> Option<String> {
        if let Value::String(s) = &entry.node.value {
            Some(s.clone())
        } else {
            self.wrong_type(entry, "a string");
            None
        }
    }

    pub fn boolean(&mut self, entry: &Entry) -> Option<bool> {
        if let Value::Boolean(b) = entry.node.value {
            Some(b)
        } else {
            self.wrong_type(entry, "a boolean");
            None
        }
    }

    pub fn uint(&mut self, entry: &Entry) -> Option<u64> {
        match entry.node.value {
            Value::Integer(i) if i >= 0 => Some(i as u64),
            Value::Integer(i) => {
                let msg = format!(
                    "`{}` must be a non-negative integer, found `{i}`",
                    entry.key
                );
                self.diags.push(self.src.error(&entry.node.span, msg));
                None
            }
            _ => {
                self.wrong_type(entry, "a non-negative integer");
                None
            }
        }
    }

    pub fn uint32(&mut self, entry: &Entry) -> Option<u32> {
        let value = self.uint(entry)?;
        if let Ok(v) = u32::try_from(value) {
            Some(v)
        } else {
            let msg = format!("`{}` is too large, found `{value}`", entry.key);
            self.diags.push(self.src.error(&entry.node.span, msg));
            None
        }
    }

    pub fn string_list(&mut self, entry: &Entry) -> Option<Vec<String>> {
        let Value::Array(items) = &entry.node.value else {
            self.wrong_type(entry, "an array of strings");
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for item in items {
            if let Value::String(s) = &item.value {
                out.push(s.clone());
            } else {
                let msg = format!(
                    "`{}` must hold only strings, found {}",
                    entry.key,
                    item.value.type_name()
                );
                self.diags.push(self.src.error(&item.span, msg));
                ok = false;
            }
        }
        ok.then_some(out)
    }

    pub fn table<'e>(&mut self, entry: &'e Entry) -> Option<&'e [Entry]> {
        let table = entry.node.as_table();
        if table.is_none() {
            self.wrong_type(entry, "a table");
        }
        table
    }

    /// Reports every key of `entries` not in `known`: agent-only keys warn, others are errors.
    pub fn check_keys(&mut self, entries: &[Entry], known: &[&str], context: &str) {
        for entry in entries {
            if known.contains(&entry.key.as_str()) {
                continue;
            }
            if is_agent_only(&entry.key) {
                let msg = format!("`{}` is an agent-only key; ignored here", entry.key);
                self.diags.push(self.src.warning(&entry.key_span, msg));
                continue;
            }
            let diag = self.src.error(
                &entry.key_span,
                format!("unknown key `{}` in {context}", entry.key),
            );
            let help = did_you_mean(&entry.key, known.iter().copied())
                .or_else(|| {
                    known
                        .iter()
                        .find(|k| k.starts_with(entry.key.as_str()))
                        .map(|k| format!("did you mean `{k}`?"))
                })
                .unwrap_or_else(|| format!("known keys: {}", backticked(known)));
            self.diags.push(diag.with_help(help));
        }
    }

    /// A string that must be one of `allowed`, mapped by `parse`.
    pub fn choice<T>(
        &mut self,
        entry: &Entry,
        allowed: &[&str],
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let text = self.string(entry)?;
        let value = parse(&text);
        if value.is_none() {
            let what = entry.key.replace('_', " ");
            self.error_at(&entry.node, format!("unknown {what} `{text}`"))
                .help = Some(one_of_help(&text, allowed));
        }
        value
    }

    /// `text` compiled as a regex (at most 1 MiB compiled), or an error at `entry`.
    pub fn regex(&mut self, entry: &Entry, text: &str) -> Option<regex::Regex> {
        match regex::RegexBuilder::new(text).size_limit(1 << 20).build() {
            Ok(regex) => Some(regex),
            Err(err) => {
                let message = format!("invalid `{}`: {}", entry.key, regex_error(&err));
                self.error_at(&entry.node, message).help =
                    Some("the pattern is a Rust regular expression".to_string());
                None
            }
        }
    }

    /// An error pointing at a node (for a table, its header line).
    pub fn error_at(&mut self, node: &Node, message: impl Into<String>) -> &mut Diagnostic {
        self.diags.push(self.src.error(&node.span, message));
        self.diags.last_mut().expect("just pushed")
    }
}

/// "did you mean ...?" when `found` is close to one of `allowed`, else the list of them.
pub(crate) fn one_of_help(found: &str, allowed: &[&str]) -> String {
    did_you_mean(found, allowed.iter().copied())
        .unwrap_or_else(|| format!("expected one of {}", backticked(allowed)))
}

/// `a`, `b`, `c` — for "one of" and "known keys" hints.
pub(crate) fn backticked(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
