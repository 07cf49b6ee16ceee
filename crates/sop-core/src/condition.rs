//! The `[if: ...]` condition language (SPEC §4): parsing with column-exact errors, evaluation
//! against variable values, and the names a condition reads.
//!
//! ```text
//! expr    := or
//! or      := and ("||" and)*
//! and     := unary ("&&" unary)*
//! unary   := "!" unary | compare
//! compare := atom (("==" | "!=" | "<" | "<=" | ">" | ">=") atom)?
//! atom    := identifier | "quoted string" | 'quoted string' | number | "(" expr ")"
//! ```
//!
//! Values are strings. A value used as a condition is true unless it is empty, `0`, `false`,
//! `no` or `off` (case-insensitive, surrounding whitespace ignored); an unset variable is
//! empty. `==` and `!=` compare text exactly. `<`, `<=`, `>`, `>=` compare numbers and are
//! false when either side is not a number (`-?digits(.digits)?`, surrounding whitespace
//! ignored). A parenthesised condition used as a value is the text `true` or `false`.
//!
//! Bare `and`, `or`, `not`, `true` and `false` are refused (whatever the case) rather than
//! read as variable names, because they almost always mean something else.

mod lexer;
mod parser;

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// A parsed condition; serialises as its source text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Condition {
    source: String,
    expr: Expr,
}

/// A parse error. `col` is the 1-based character column within the condition text and `len`
/// the caret width in characters (at least 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConditionError {
    pub message: String,
    pub col: u32,
    pub len: u32,
    pub help: Option<String>,
}

impl ConditionError {
    /// An error covering the byte range `span` of `src`.
    fn at(
        src: &str,
        span: Range<usize>,
        message: impl Into<String>,
        help: Option<String>,
    ) -> ConditionError {
        let start = span.start.min(src.len());
        let end = span.end.clamp(start, src.len());
        let chars = |r: Range<usize>| src.get(r).map_or(0, |s| s.chars().count()) as u32;
        ConditionError {
            message: message.into(),
            col: chars(0..start) + 1,
            len: chars(start..end).max(1),
            help,
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// The parsed form. `And`/`Or` hold flat lists so long chains do not deepen the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    Var(String),
    /// A quoted string or a number, as text.
    Lit(String),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
}

impl Condition {
    pub fn parse(source: &str) -> Result<Condition, ConditionError> {
        let tokens = lexer::tokenize(source)?;
        let expr = parser::parse(source, &tokens)?;
        Ok(Condition {
            source: source.to_string(),
            expr,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates with `lookup` giving the current value of a variable (None = unset).
    pub fn eval(&self, lookup: &dyn Fn(&str) -> Option<String>) -> bool {
        self.expr.truth(lookup)
    }

    /// Variable names the condition reads, in order of first appearance, each once.
    pub fn variables(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.expr.collect_variables(&mut names);
        names
    }
}

impl Expr {
    fn truth(&self, lookup: &dyn Fn(&str) -> Option<String>) -> bool {
        match self {
            Expr::Var(name) => lookup(name).is_some_and(|v| is_truthy(&v)),
            Expr::Lit(text) => is_truthy(text),
            Expr::Not(inner) => !inner.truth(lookup),
            Expr::And(items) => items.iter().all(|e| e.truth(lookup)),
            Expr::Or(items) => items.iter().any(|e| e.truth(lookup)),
            Expr::Cmp(op, left, right) => compare(*op, &left.value(lookup), &right.value(lookup)),
        }
    }

    /// The text of an operand of a comparison.
    fn value(&self, lookup: &dyn Fn(&str) -> Option<String>) -> String {
        match self {
            Expr::Var(name) => lookup(name).unwrap_or_default(),
            Expr::Lit(text) => text.clone(),
            _ => self.truth(lookup).to_string(),
        }
    }

    fn collect_variables(&self, names: &mut Vec<String>) {
        match self {
            Expr::Var(name) => {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
            Expr::Lit(_) => {}
            Expr::Not(inner) => inner.collect_variables(names),
            Expr::And(items) | Expr::Or(items) => {
                for item in items {
                    item.collect_variables(names);
                }
            }
            Expr::Cmp(_, left, right) => {
                left.collect_variables(names);
                right.collect_variables(names);
            }
        }
    }
}

/// Whether a value counts as true: anything but empty, `0`, `false`, `no` or `off`
/// (case-insensitive, surrounding whitespace ignored).
fn is_truthy(value: &str) -> bool {
    let v = value.trim();
    !(v.is_empty()
        || v == "0"
        || ["false", "no", "off"]
            .iter()
            .any(|f| v.eq_ignore_ascii_case(f)))
}

fn compare(op: CmpOp, left: &str, right: &str) -> bool {
    match op {
        CmpOp::Eq => left == right,
        CmpOp::Ne => left != right,
        CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => {
            let (Some(l), Some(r)) = (as_number(left), as_number(right)) else {
                return false;
            };
            match op {
                CmpOp::Lt => l < r,
                CmpOp::Le => l <= r,
                CmpOp::Gt => l > r,
                _ => l >= r,
            }
        }
    }
}

/// The value as a number, if it is one: `-?digits(.digits)?` after trimming. Exponents,
/// `inf` and `NaN` (which `f64::from_str` would take) are not numbers here.
fn as_number(value: &str) -> Option<f64> {
    let v = value.trim();
    if lexer::is_number_literal(v) {
        v.parse().ok()
    } else {
        None
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
