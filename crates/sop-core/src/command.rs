//! Command lines (SPEC §6): text that arrives by `sop cmd`, `POST /api/command` (and later
//! other channels). A line is either one of the built-in decisions (`/approve <sop|run>
//! [comment]`, `/reject <sop|run> <reason>`) or text matched against every SOP's
//! `command` triggers, each match giving the variables its capture groups caught.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::model::{Sop, Trigger};
use crate::vars::{check_var_name, MIN_FRAGMENT_CHARS};

/// What a command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine<'a> {
    /// `/approve <target> [comment]`: approve the gate the target's run waits at.
    Approve {
        target: &'a str,
        comment: Option<&'a str>,
    },
    /// `/reject <target> <reason>`.
    Reject { target: &'a str, reason: &'a str },
    /// Anything else: matched against the SOPs' `command` triggers (surrounding white space
    /// removed).
    Text(&'a str),
}

/// A command line that cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("the command is empty: expected text to match against `command` triggers, or `/approve` or `/reject`")]
    Empty,
    #[error("`/{verb}` needs a SOP name or run id: expected `{usage}`")]
    NoTarget {
        verb: &'static str,
        usage: &'static str,
    },
    #[error("`/reject {target}` needs a reason: expected `/reject <sop|run> <reason>`")]
    NoReason { target: String },
}

/// Reads a command line. Only `/approve` and `/reject` as the first word are built-ins; any
/// other text (also other words starting with `/`) is for the triggers.
pub fn parse_command(text: &str) -> Result<CommandLine<'_>, CommandError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(CommandError::Empty);
    }
    let (word, rest) = split_word(text);
    match word {
        "/approve" => {
            let (target, comment) = split_word(rest);
            if target.is_empty() {
                return Err(CommandError::NoTarget {
                    verb: "approve",
                    usage: "/approve <sop|run> [comment]",
                });
            }
            Ok(CommandLine::Approve {
                target,
                comment: (!comment.is_empty()).then_some(comment),
            })
        }
        "/reject" => {
            let (target, reason) = split_word(rest);
            if target.is_empty() {
                return Err(CommandError::NoTarget {
                    verb: "reject",
                    usage: "/reject <sop|run> <reason>",
                });
            }
            if reason.is_empty() {
                return Err(CommandError::NoReason {
                    target: target.to_string(),
                });
            }
            Ok(CommandLine::Reject { target, reason })
        }
        _ => Ok(CommandLine::Text(text)),
    }
}

/// The first white-space separated word of `text` and the trimmed rest.
fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim();
    match text.find(char::is_whitespace) {
        Some(at) => (&text[..at], text[at..].trim()),
        None => (text, ""),
    }
}

/// Whether one of `sop`'s `command` triggers matches `text` (the first that does, in file
/// order), and the variables it gives: with `capture_groups` (the default), `match_1`,
/// `match_2`, ... for the groups that took part in the match, and each named group that
/// took part under its name when that is a valid variable name (SPEC §4).
///
/// A group named after a variable declared `secret` gives only that variable, which is
/// redacted wherever it is shown; any other group whose text would show it gives nothing
/// (one that overlaps it, such as an enclosing group or its own `match_N`, or whose text
/// is elsewhere in the line and contains it, or is a piece of it of 8 characters or more). `None`: no
/// command trigger of `sop` matches.
pub fn match_triggers(sop: &Sop, text: &str) -> Option<BTreeMap<String, String>> {
    let secret = |name: &str| sop.vars.get(name).is_some_and(|d| d.secret);
    sop.triggers.iter().find_map(|trigger| match trigger {
        Trigger::Command {
            pattern,
            capture_groups,
        } => match_one(pattern, *capture_groups, text, &secret),
        _ => None,
    })
}

/// Whether `text`, shown as it is, would show the secret value `secret`: it contains it,
/// or is a piece of it long enough to matter (a digit or a short word that happens to
/// occur in a secret shows nothing).
pub fn shows_secret(text: &str, secret: &str) -> bool {
    !secret.is_empty()
        && (text.contains(secret)
            || (text.chars().count() >= MIN_FRAGMENT_CHARS && secret.contains(text)))
}

/// A group's name, when it is a valid variable name.
fn var_name(name: Option<&str>) -> Option<&str> {
    name.filter(|n| check_var_name(n).is_ok())
}

fn match_one(
    pattern: &str,
    capture_groups: bool,
    text: &str,
    secret: &dyn Fn(&str) -> bool,
) -> Option<BTreeMap<String, String>> {
    // Checked when the SOP was parsed; a pattern that fails here matches nothing.
    let regex = regex::Regex::new(pattern).ok()?;
    let caps = regex.captures(text)?;
    let mut vars = BTreeMap::new();
    if !capture_groups {
        return Some(vars);
    }
    // The secret groups' texts, where they are (an empty one shows nothing).
    let secrets: Vec<(Range<usize>, &str)> = regex
        .capture_names()
        .enumerate()
        .filter(|(_, name)| var_name(*name).is_some_and(secret))
        .filter_map(|(i, _)| caps.get(i).map(|m| (m.range(), m.as_str())))
        .filter(|(r, _)| !r.is_empty())
        .collect();
    // Whether a group's text would show a secret: it overlaps one, or shows its text
    // elsewhere in the line (see [`shows_secret`]).
    let shows_secret = |m: &regex::Match<'_>| {
        secrets.iter().any(|(r, secret)| {
            (r.start < m.end() && m.start() < r.end) || shows_secret(m.as_str(), secret)
        })
    };
    for (i, name) in regex.capture_names().enumerate().skip(1) {
        let Some(m) = caps.get(i) else { continue };
        let value = m.as_str().to_string();
        match var_name(name) {
            Some(name) if secret(name) => {
                vars.insert(name.to_string(), value);
                continue;
            }
            _ if shows_secret(&m) => continue,
            Some(name) => {
                vars.insert(name.to_string(), value.clone());
            }
            None => {}
        }
        vars.insert(format!("match_{i}"), value);
    }
    Some(vars)
}
