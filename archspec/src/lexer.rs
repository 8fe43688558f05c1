//! Turns source text into tokens. Never fails: bad characters become diagnostics and are skipped.

use crate::diagnostic::{Code, Diagnostic, Span};

#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    Ident(String),
    Int(i64),
    Float(f64),
    Mixer,
    Return,
    True,
    False,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    Assign,
    Plus,
    Minus,
    Star,
    Slash,
    Pipe,
    Semicolon,
    Newline,
    /// A `#` comment, text after the `#`, trimmed.
    Comment(String),
    Eof,
}

impl TokenKind {
    /// How the token is named in "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match self {
            TokenKind::Ident(name) => format!("`{name}`"),
            TokenKind::Int(value) => format!("number `{value}`"),
            TokenKind::Float(value) => format!("number `{value:?}`"),
            TokenKind::Mixer => "`mixer`".into(),
            TokenKind::Return => "`return`".into(),
            TokenKind::True => "`true`".into(),
            TokenKind::False => "`false`".into(),
            TokenKind::LParen => "`(`".into(),
            TokenKind::RParen => "`)`".into(),
            TokenKind::LBrace => "`{`".into(),
            TokenKind::RBrace => "`}`".into(),
            TokenKind::Comma => "`,`".into(),
            TokenKind::Assign => "`=`".into(),
            TokenKind::Plus => "`+`".into(),
            TokenKind::Minus => "`-`".into(),
            TokenKind::Star => "`*`".into(),
            TokenKind::Slash => "`/`".into(),
            TokenKind::Pipe => "`|>`".into(),
            TokenKind::Semicolon => "`;`".into(),
            TokenKind::Newline => "end of line".into(),
            TokenKind::Comment(_) => "comment".into(),
            TokenKind::Eof => "end of input".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

/// Splits `source` into tokens, ending with `Eof`. Newlines inside parentheses are dropped,
/// so arguments may span lines.
pub fn lex(source: &str) -> (Vec<Token>, Vec<Diagnostic>) {
    let mut tokens = Vec::new();
    let mut diagnostics = Vec::new();
    let bytes = source.as_bytes();
    let mut pos = 0;
    let mut paren_depth: usize = 0;
    while pos < bytes.len() {
        let start = pos;
        let byte = bytes[pos];
        let single = |kind| (kind, 1usize);
        let (kind, len) = match byte {
            b' ' | b'\t' | b'\r' => {
                pos += 1;
                continue;
            }
            b'\n' => {
                pos += 1;
                if paren_depth == 0 {
                    tokens.push(Token {
                        kind: TokenKind::Newline,
                        span: Span::new(start, pos),
                    });
                }
                continue;
            }
            b'#' => {
                let end = source[pos..].find('\n').map_or(bytes.len(), |i| pos + i);
                let text = source[pos + 1..end].trim().to_string();
                (TokenKind::Comment(text), end - pos)
            }
            b'(' => {
                paren_depth += 1;
                single(TokenKind::LParen)
            }
            b')' => {
                paren_depth = paren_depth.saturating_sub(1);
                single(TokenKind::RParen)
            }
            b'{' => single(TokenKind::LBrace),
            b'}' => single(TokenKind::RBrace),
            b',' => single(TokenKind::Comma),
            b'=' => single(TokenKind::Assign),
            b'+' => single(TokenKind::Plus),
            b'-' => single(TokenKind::Minus),
            b'*' => single(TokenKind::Star),
            b'/' => single(TokenKind::Slash),
            b';' => single(TokenKind::Semicolon),
            b'|' if bytes.get(pos + 1) == Some(&b'>') => (TokenKind::Pipe, 2),
            b'0'..=b'9' | b'.' if is_number_start(bytes, pos) => {
                let len = number_length(bytes, pos);
                let text = &source[pos..pos + len];
                let kind = parse_number(text).unwrap_or_else(|message| {
                    diagnostics.push(Diagnostic::new(
                        Code::E0002BadNumber,
                        Span::new(pos, pos + len),
                        message,
                    ));
                    TokenKind::Int(1)
                });
                (kind, len)
            }
            b if b == b'_' || b.is_ascii_alphabetic() => {
                let len = bytes[pos..]
                    .iter()
                    .take_while(|b| **b == b'_' || b.is_ascii_alphanumeric())
                    .count();
                let kind = match &source[pos..pos + len] {
                    "mixer" => TokenKind::Mixer,
                    "return" => TokenKind::Return,
                    "true" => TokenKind::True,
                    "false" => TokenKind::False,
                    word => TokenKind::Ident(word.to_string()),
                };
                (kind, len)
            }
            _ => {
                let ch = source[pos..].chars().next().unwrap_or('\u{fffd}');
                let len = ch.len_utf8();
                diagnostics.push(Diagnostic::new(
                    Code::E0001UnexpectedCharacter,
                    Span::new(pos, pos + len),
                    format!("unexpected character {ch:?}"),
                ));
                pos += len;
                continue;
            }
        };
        pos += len;
        tokens.push(Token {
            kind,
            span: Span::new(start, pos),
        });
    }
    tokens.push(Token {
        kind: TokenKind::Eof,
        span: Span::new(bytes.len(), bytes.len()),
    });
    (tokens, diagnostics)
}

fn is_number_start(bytes: &[u8], pos: usize) -> bool {
    bytes[pos].is_ascii_digit() || bytes.get(pos + 1).is_some_and(u8::is_ascii_digit)
}

fn number_length(bytes: &[u8], start: usize) -> usize {
    let mut pos = start;
    while pos < bytes.len() && (bytes[pos].is_ascii_digit() || bytes[pos] == b'.') {
        pos += 1;
    }
    if pos < bytes.len() && (bytes[pos] == b'e' || bytes[pos] == b'E') {
        let mut exp = pos + 1;
        if exp < bytes.len() && (bytes[exp] == b'+' || bytes[exp] == b'-') {
            exp += 1;
        }
        if exp < bytes.len() && bytes[exp].is_ascii_digit() {
            pos = exp;
            while pos < bytes.len() && bytes[pos].is_ascii_digit() {
                pos += 1;
            }
        }
    }
    pos - start
}

fn parse_number(text: &str) -> Result<TokenKind, String> {
    if text.contains(['.', 'e', 'E']) {
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(TokenKind::Float(value)),
            Ok(_) => Err(format!("number `{text}` is too large")),
            Err(_) => Err(format!("`{text}` is not a number")),
        }
    } else {
        text.parse::<i64>()
            .map(TokenKind::Int)
            .map_err(|_| format!("integer `{text}` is too large"))
    }
}
