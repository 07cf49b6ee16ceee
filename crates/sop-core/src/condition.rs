//! The `[if: ...]` condition language (SPEC §4). Placeholder: being written.

use serde::{Deserialize, Serialize};

/// A parsed condition; serialises as its source text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Condition {
    source: String,
}

/// A parse error. `col` is the 1-based character column within the condition text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConditionError {
    pub message: String,
    pub col: u32,
    pub len: u32,
    pub help: Option<String>,
}

impl Condition {
    pub fn parse(source: &str) -> Result<Condition, ConditionError> {
        Ok(Condition { source: source.to_string() })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates with `lookup` giving the current value of a variable (None = unset).
    pub fn eval(&self, lookup: &dyn Fn(&str) -> Option<String>) -> bool {
        lookup(&self.source).is_some()
    }

    /// Variable names the condition reads, in order of first appearance.
    pub fn variables(&self) -> Vec<String> {
        Vec::new()
    }
}

impl TryFrom<String> for Condition {
    type Error = ConditionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Condition::parse(&s)
    }
}

impl From<Condition> for String {
    fn from(c: Condition) -> String {
        c.source
    }
}
