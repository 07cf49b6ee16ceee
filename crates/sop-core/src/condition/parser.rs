//! Recursive-descent parser from tokens to an [`Expr`], with errors that point at a column.

use super::lexer::{Tok, Token};
use super::{ConditionError, Expr};

/// Deepest nesting of `(` and `!` accepted, so no input can exhaust the stack.
const MAX_DEPTH: u32 = 64;

/// What may start an operand, for "expected ..." messages.
const OPERAND: &str = "a variable, quoted string, number or `(`";

pub(super) fn parse(src: &str, tokens: &[Token]) -> Result<Expr, ConditionError> {
    if matches!(tokens.first().map(|t| &t.kind), None | Some(Tok::Eof)) {
        return Err(ConditionError::at(
            src,
            0..src.len(),
            "empty condition",
            Some(
                "write a variable name or a comparison, e.g. `previous_step == \"success\"`"
                    .to_string(),
            ),
        ));
    }
    let mut parser = Parser {
        src,
        tokens,
        pos: 0,
        depth: 0,
    };
    let expr = parser.or()?;
    let token = parser.peek();
    match token.kind {
        Tok::Eof => Ok(expr),
        Tok::RParen => Err(parser.error(
            token,
            "unmatched `)`",
            Some("remove it or add a matching `(`"),
        )),
        _ => Err(parser.error(
            token,
            &format!(
                "expected `&&`, `||` or the end of the condition, found {}",
                parser.describe(token)
            ),
            Some("join conditions with `&&` or `||`"),
        )),
    }
}

struct Parser<'a> {
    src: &'a str,
    /// Ends with [`Tok::Eof`].
    tokens: &'a [Token],
    pos: usize,
    depth: u32,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &'a Token {
        let last = self.tokens.len().saturating_sub(1);
        &self.tokens[self.pos.min(last)]
    }

    fn bump(&mut self) -> &'a Token {
        let token = self.peek();
        if token.kind != Tok::Eof {
            self.pos += 1;
        }
        token
    }

    fn error(&self, token: &Token, message: &str, help: Option<&str>) -> ConditionError {
        ConditionError::at(
            self.src,
            token.span.clone(),
            message,
            help.map(str::to_string),
        )
    }

    /// The token as the user wrote it, for messages.
    fn describe(&self, token: &Token) -> String {
        match token.kind {
            Tok::Eof => "the end of the condition".to_string(),
            _ => format!("`{}`", self.src.get(token.span.clone()).unwrap_or("")),
        }
    }

    fn or(&mut self) -> Result<Expr, ConditionError> {
        let mut items = vec![self.and()?];
        while self.peek().kind == Tok::Or {
            self.bump();
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, ConditionError> {
        let mut items = vec![self.unary()?];
        while self.peek().kind == Tok::And {
            self.bump();
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn unary(&mut self) -> Result<Expr, ConditionError> {
        if self.peek().kind != Tok::Not {
            return self.compare();
        }
        let bang = self.bump();
        self.enter(bang)?;
        let inner = self.unary()?;
        self.depth -= 1;
        Ok(Expr::Not(Box::new(inner)))
    }

    fn compare(&mut self) -> Result<Expr, ConditionError> {
        let left = self.atom()?;
        let Tok::Cmp(op) = self.peek().kind else {
            return Ok(left);
        };
        self.bump();
        let right = self.atom()?;
        let next = self.peek();
        if let Tok::Cmp(_) = next.kind {
            return Err(self.error(
                next,
                &format!(
                    "comparisons cannot be chained: found {} after a comparison",
                    self.describe(next)
                ),
                Some("compare two values at a time and join the comparisons with `&&`"),
            ));
        }
        Ok(Expr::Cmp(op, Box::new(left), Box::new(right)))
    }

    fn atom(&mut self) -> Result<Expr, ConditionError> {
        let token = self.peek();
        let expr = match &token.kind {
            Tok::Ident(name) => Expr::Var(name.clone()),
            Tok::Str(text) | Tok::Num(text) => Expr::Lit(text.clone()),
            Tok::LParen => return self.group(),
            _ => return Err(self.missing_operand(token)),
        };
        self.bump();
        Ok(expr)
    }

    /// `( expr )`, the `(` not yet consumed.
    fn group(&mut self) -> Result<Expr, ConditionError> {
        let open = self.bump();
        self.enter(open)?;
        let inner = self.or()?;
        self.depth -= 1;
        let close = self.peek();
        match close.kind {
            Tok::RParen => {
                self.bump();
                Ok(inner)
            }
            Tok::Eof => Err(self.error(open, "unclosed `(`", Some("add a `)` to close it"))),
            _ => Err(self.error(
                close,
                &format!("expected `&&`, `||` or `)`, found {}", self.describe(close)),
                Some("join conditions with `&&` or `||`"),
            )),
        }
    }

    /// Counts one more level of nesting at `token`, refusing absurd depths.
    fn enter(&mut self, token: &Token) -> Result<(), ConditionError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(
                token,
                &format!("condition nests too deeply: more than {MAX_DEPTH} levels of `(` and `!`"),
                None,
            ));
        }
        Ok(())
    }

    /// The error for `token` standing where an operand should be.
    fn missing_operand(&self, token: &Token) -> ConditionError {
        let after = self.pos.checked_sub(1).and_then(|i| self.tokens.get(i));
        let context = after.map_or(String::new(), |prev| {
            format!(" after {}", self.describe(prev))
        });
        let found = self.describe(token);
        let help = match (after.map(|t| &t.kind), &token.kind) {
            (Some(Tok::LParen), Tok::RParen) => Some("put a condition between the parentheses"),
            (Some(Tok::Cmp(_)), _) => Some("compare with a variable, a quoted string or a number"),
            (None, Tok::And | Tok::Or | Tok::Cmp(_)) => {
                Some("start with a variable, a quoted string or a number")
            }
            _ => None,
        };
        self.error(
            token,
            &format!("expected {OPERAND}{context}, found {found}"),
            help,
        )
    }
}
