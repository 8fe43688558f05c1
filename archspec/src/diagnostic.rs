//! Diagnostics: a byte span, a stable code and a message; rendered with line and column only at the edge.

use serde::Serialize;
use std::fmt;

/// A half-open byte range `start..end` into the program source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// Stable diagnostic codes. They are part of the output contract (the Engineer agent and tests key on them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Code {
    /// A character that starts no token: `q = x @ y`.
    E0001UnexpectedCharacter,
    /// A number that does not fit or is not finite: `linear(99999999999999999999)`.
    E0002BadNumber,
    /// The parser expected something else: `q = linear(x 4)`.
    E0101Expected,
    /// Nesting deeper than the limit: `((((((...))))))`.
    E0102TooDeep,
    /// Source, statements or tokens over the limits.
    E0103TooLarge,
    /// A name that is not defined: `return y`.
    E0201UnknownName,
    /// A name assigned twice: `q = x` then `q = x`.
    E0202Reassigned,
    /// A call of something that is not an operation: `q = foo(x)`.
    E0203UnknownOperation,
    /// Wrong number, name or kind of arguments: `linear(x)`.
    E0204BadArguments,
    /// A hyperparameter without a value, or whose value is not an integer: `d_head = d_model / 3`.
    E0205BadHyperparameter,
    /// Two tensors whose shapes do not combine: `split_heads(x, 4) + x`.
    E0301ShapeMismatch,
    /// An operation given a value of the wrong kind: `linear(split_heads(x, 4), 8)`.
    E0302WrongShape,
    /// The returned value is not `[B,T,d_model]`.
    E0303BadReturn,
    /// An operation reads a later position: `token_shift(x, -1)`.
    E0401NotCausal,
    /// The program's cost in T is above the limit: softmax attention under a `linear` limit.
    E0402TooComplex,
    /// A dimension or count over the limits: `linear(x, 1000000)`.
    E0501LimitExceeded,
}

impl Code {
    /// The short code, e.g. `E0401`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::E0001UnexpectedCharacter => "E0001",
            Code::E0002BadNumber => "E0002",
            Code::E0101Expected => "E0101",
            Code::E0102TooDeep => "E0102",
            Code::E0103TooLarge => "E0103",
            Code::E0201UnknownName => "E0201",
            Code::E0202Reassigned => "E0202",
            Code::E0203UnknownOperation => "E0203",
            Code::E0204BadArguments => "E0204",
            Code::E0205BadHyperparameter => "E0205",
            Code::E0301ShapeMismatch => "E0301",
            Code::E0302WrongShape => "E0302",
            Code::E0303BadReturn => "E0303",
            Code::E0401NotCausal => "E0401",
            Code::E0402TooComplex => "E0402",
            Code::E0501LimitExceeded => "E0501",
        }
    }
}

/// One problem found in a program.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub code: Code,
    pub span: Span,
    pub message: String,
}

impl Diagnostic {
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            span,
            message: message.into(),
        }
    }

    /// Resolves the span against the source it came from.
    pub fn locate(&self, source: &str) -> Located {
        let (line, column) = line_column(source, self.span.start);
        Located {
            code: self.code.as_str(),
            line,
            column,
            message: self.message.clone(),
        }
    }
}

/// A diagnostic with 1-based line and column, the form shown to people and agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Located {
    pub code: &'static str,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "error[{}] at {}:{}: {}",
            self.code, self.line, self.column, self.message
        )
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(source, offset.min(source.len()));
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn floor_char_boundary(source: &str, mut offset: usize) -> usize {
    while offset > 0 && !source.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Renders diagnostics with the offending line and a caret, as a compiler would.
pub fn render(source: &str, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics {
        let located = diagnostic.locate(source);
        out.push_str(&located.to_string());
        out.push('\n');
        if let Some(text) = source.lines().nth(located.line - 1) {
            let width = {
                let start = floor_char_boundary(source, diagnostic.span.start.min(source.len()));
                let end = floor_char_boundary(source, diagnostic.span.end.min(source.len()));
                source[start..end.max(start)]
                    .lines()
                    .next()
                    .map_or(1, |s| s.chars().count().max(1))
            };
            out.push_str(&format!(
                "  | {text}\n  | {}{}\n",
                " ".repeat(located.column - 1),
                "^".repeat(width)
            ));
        }
    }
    out
}
