//! Tokens of the condition language, each with the byte span it came from.

use std::ops::Range;

use super::{CmpOp, ConditionError};

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tok {
    Ident(String),
    /// A quoted string, escapes already resolved.
    Str(String),
    /// A number, as written.
    Num(String),
    LParen,
    RParen,
    Not,
    And,
    Or,
    Cmp(CmpOp),
    Eof,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Token {
    pub kind: Tok,
    /// Byte range in the condition text.
    pub span: Range<usize>,
}

/// Splits `src` into tokens, ending with [`Tok::Eof`] (whose span is empty, at the end).
pub(super) fn tokenize(src: &str) -> Result<Vec<Token>, ConditionError> {
    let mut lexer = Lexer { src, pos: 0 };
    let mut tokens = Vec::new();
    loop {
        lexer.skip_whitespace();
        let start = lexer.pos;
        let Some(c) = lexer.peek() else {
            tokens.push(Token {
                kind: Tok::Eof,
                span: start..start,
            });
            return Ok(tokens);
        };
        let kind = lexer.token(c)?;
        tokens.push(Token {
            kind,
            span: start..lexer.pos,
        });
    }
}

/// Operators from other languages, with what to write instead.
const MISTAKEN_OPERATORS: [(&str, &str); 4] = [
    ("===", "use `==` to compare"),
    ("<>", "use `!=` for \"not equal\""),
    ("=<", "use `<=`"),
    ("=>", "use `>=`"),
];

struct Lexer<'a> {
    src: &'a str,
    /// Byte offset of the next unread character.
    pos: usize,
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn error(
        &self,
        span: Range<usize>,
        message: impl Into<String>,
        help: Option<&str>,
    ) -> ConditionError {
        ConditionError::at(self.src, span, message, help.map(str::to_string))
    }

    /// Reads one token starting with `c` (already known to be there).
    fn token(&mut self, c: char) -> Result<Tok, ConditionError> {
        let start = self.pos;
        if let Some((op, help)) = MISTAKEN_OPERATORS
            .iter()
            .find(|(op, _)| self.rest().starts_with(op))
        {
            return Err(self.error(
                start..start + op.len(),
                format!("`{op}` is not an operator"),
                Some(help),
            ));
        }
        let (kind, width) = match (c, self.peek_second()) {
            ('(', _) => (Tok::LParen, 1),
            (')', _) => (Tok::RParen, 1),
            ('&', Some('&')) => (Tok::And, 2),
            ('|', Some('|')) => (Tok::Or, 2),
            ('=', Some('=')) => (Tok::Cmp(CmpOp::Eq), 2),
            ('!', Some('=')) => (Tok::Cmp(CmpOp::Ne), 2),
            ('<', Some('=')) => (Tok::Cmp(CmpOp::Le), 2),
            ('>', Some('=')) => (Tok::Cmp(CmpOp::Ge), 2),
            ('!', _) => (Tok::Not, 1),
            ('<', _) => (Tok::Cmp(CmpOp::Lt), 1),
            ('>', _) => (Tok::Cmp(CmpOp::Gt), 1),
            ('"' | '\'', _) => return self.string(c),
            ('-', Some(d)) if d.is_ascii_digit() => return self.number(),
            (d, _) if d.is_ascii_digit() => return self.number(),
            (a, _) if a.is_ascii_alphabetic() || a == '_' => return self.word(),
            _ => return Err(self.unexpected(c)),
        };
        self.pos += width;
        Ok(kind)
    }

    /// A quoted string; `quote` is the opening quote, not yet consumed.
    fn string(&mut self, quote: char) -> Result<Tok, ConditionError> {
        let open = self.pos;
        self.bump();
        let mut text = String::new();
        loop {
            let at = self.pos;
            match self.bump() {
                None => {
                    return Err(self.error(
                        open..open + 1,
                        "unterminated string",
                        Some(if quote == '"' {
                            "close the string with `\"`"
                        } else {
                            "close the string with `'`"
                        }),
                    ))
                }
                Some(c) if c == quote => return Ok(Tok::Str(text)),
                Some('\\') => {
                    match self.bump() {
                        Some(e @ ('"' | '\'' | '\\')) => text.push(e),
                        Some(other) => {
                            return Err(self.error(
                                at..self.pos,
                                format!("unknown escape `\\{other}` in string"),
                                Some("the only escapes are `\\\"`, `\\'` and `\\\\`"),
                            ))
                        }
                        None => return Err(self.error(
                            open..open + 1,
                            "unterminated string",
                            Some("a `\\` at the end escapes nothing; write `\\\\` for a backslash"),
                        )),
                    }
                }
                Some(c) => text.push(c),
            }
        }
    }

    /// A number: optional `-`, digits, optional `.digits`. Anything glued to it that could
    /// belong to a word (letters, `_`, more dots) makes it one invalid number, so that
    /// `1.2.3` gets a useful message instead of a confusing one about `.3`.
    fn number(&mut self) -> Result<Tok, ConditionError> {
        let start = self.pos;
        if self.peek() == Some('-') {
            self.bump();
        }
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            self.bump();
        }
        let text = &self.src[start..self.pos];
        if is_number_literal(text) {
            Ok(Tok::Num(text.to_string()))
        } else {
            Err(self.error(
                start..self.pos,
                format!(
                    "invalid number `{text}`: expected digits with an optional `-` and `.digits`"
                ),
                Some(&format!("quote it to mean the text: `\"{text}\"`")),
            ))
        }
    }

    /// An identifier, refusing the words people write by habit from other languages.
    fn word(&mut self) -> Result<Tok, ConditionError> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.bump();
        }
        let word = &self.src[start..self.pos];
        let refused = match word.to_ascii_lowercase().as_str() {
            "and" => Some(("is not an operator", "use `&&`".to_string())),
            "or" => Some(("is not an operator", "use `||`".to_string())),
            "not" => Some(("is not an operator", "use `!`".to_string())),
            lit @ ("true" | "false") => Some((
                "is not a literal here (it would name a variable)",
                format!("quote it to mean the text: `\"{lit}\"`"),
            )),
            _ => None,
        };
        match refused {
            Some((what, help)) => {
                Err(self.error(start..self.pos, format!("`{word}` {what}"), Some(&help)))
            }
            None => Ok(Tok::Ident(word.to_string())),
        }
    }

    /// The error for a character that starts no token.
    fn unexpected(&self, c: char) -> ConditionError {
        let help = match c {
            '=' => Some("use `==` to compare"),
            '&' => Some("use `&&` for \"and\""),
            '|' => Some("use `||` for \"or\""),
            '$' => Some("name variables without `$`: write `name`, not `$name`"),
            '{' | '}' => Some("name variables directly: write `name`, not `{{ name }}`"),
            '.' => Some("variable names are letters, digits and `_`; quote text that has a `.`"),
            '-' => Some("`-` is only allowed at the start of a number"),
            '\u{201c}' | '\u{201d}' | '\u{2018}' | '\u{2019}' => {
                Some("use straight quotes, `\"` or `'`")
            }
            _ => None,
        };
        let shown = if c.is_control() {
            c.escape_default().to_string()
        } else {
            c.to_string()
        };
        self.error(
            self.pos..self.pos + c.len_utf8(),
            format!("unexpected character `{shown}`"),
            help,
        )
    }
}

/// Whether `text` is `-?[0-9]+(\.[0-9]+)?`.
pub(super) fn is_number_literal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, frac) = match digits.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole) && frac.is_none_or(all_digits)
}
