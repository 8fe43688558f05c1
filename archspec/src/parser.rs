//! Recursive-descent parser. Reports every syntax error it can (recovering at statement
//! boundaries) and never recurses deeper than `limits::MAX_DEPTH`.

use crate::ast::{Arg, BinOp, Expr, ExprKind, Ident, Param, Program, Statement};
use crate::diagnostic::{Code, Diagnostic, Span};
use crate::lexer::{Token, TokenKind, lex};
use crate::limits;

/// Parses one program. Returns the program when the syntax is valid, and every diagnostic found.
pub fn parse(source: &str) -> (Option<Program>, Vec<Diagnostic>) {
    if source.len() > limits::MAX_SOURCE_BYTES {
        let diagnostic = Diagnostic::new(
            Code::E0103TooLarge,
            Span::new(0, 0),
            format!(
                "program is {} bytes; the limit is {} bytes",
                source.len(),
                limits::MAX_SOURCE_BYTES
            ),
        );
        return (None, vec![diagnostic]);
    }
    let (tokens, mut diagnostics) = lex(source);
    if tokens.len() > limits::MAX_TOKENS {
        diagnostics.push(Diagnostic::new(
            Code::E0103TooLarge,
            Span::new(0, 0),
            format!(
                "program has {} tokens; the limit is {}",
                tokens.len(),
                limits::MAX_TOKENS
            ),
        ));
        return (None, diagnostics);
    }
    let mut parser = Parser {
        tokens,
        pos: 0,
        diagnostics,
        depth: 0,
    };
    let program = parser.program();
    let diagnostics = parser.diagnostics;
    match program {
        Some(program) if diagnostics.is_empty() => (Some(program), diagnostics),
        _ => (None, diagnostics),
    }
}

/// Signals that the current construct was abandoned; the diagnostic is already recorded.
struct Abandon;

type PResult<T> = Result<T, Abandon>;

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    diagnostics: Vec<Diagnostic>,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &TokenKind {
        &self.tokens[self.pos.min(self.tokens.len() - 1)].kind
    }

    fn span(&self) -> Span {
        self.tokens[self.pos.min(self.tokens.len() - 1)].span
    }

    fn previous_span(&self) -> Span {
        self.tokens[self.pos.saturating_sub(1)].span
    }

    fn bump(&mut self) -> Token {
        let token = self.tokens[self.pos.min(self.tokens.len() - 1)].clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        token
    }

    fn at(&self, kind: &TokenKind) -> bool {
        self.peek() == kind
    }

    fn error<T>(&mut self, expected: &str) -> PResult<T> {
        let found = self.peek().describe();
        let span = self.span();
        self.diagnostics.push(Diagnostic::new(
            Code::E0101Expected,
            span,
            format!("expected {expected}, found {found}"),
        ));
        Err(Abandon)
    }

    fn expect(&mut self, kind: &TokenKind, expected: &str) -> PResult<Span> {
        if self.at(kind) {
            Ok(self.bump().span)
        } else {
            self.error(expected)
        }
    }

    fn ident(&mut self, expected: &str) -> PResult<Ident> {
        if let TokenKind::Ident(name) = self.peek().clone() {
            let span = self.bump().span;
            Ok(Ident { name, span })
        } else {
            self.error(expected)
        }
    }

    /// Skips newlines, `;` and comments; returns the comments seen since the last blank line.
    fn skip_trivia(&mut self) -> Vec<String> {
        let mut comments = Vec::new();
        let mut newlines_in_a_row = 0;
        loop {
            match self.peek() {
                TokenKind::Comment(text) => {
                    comments.push(text.clone());
                    newlines_in_a_row = 0;
                }
                TokenKind::Newline => {
                    newlines_in_a_row += 1;
                    if newlines_in_a_row > 1 {
                        comments.clear();
                    }
                }
                TokenKind::Semicolon => {}
                _ => return comments,
            }
            self.bump();
        }
    }

    fn program(&mut self) -> Option<Program> {
        let doc = self.skip_trivia();
        let header = self.header();
        let (name, params) = match header {
            Ok(header) => header,
            Err(Abandon) => return None,
        };
        let mut body = Vec::new();
        loop {
            self.skip_trivia();
            match self.peek() {
                TokenKind::Return => break,
                TokenKind::RBrace | TokenKind::Eof => {
                    let _ = self.error::<()>("a statement or `return`");
                    return None;
                }
                _ => {}
            }
            match self.statement() {
                Ok(statement) => {
                    if body.len() == limits::MAX_STATEMENTS {
                        self.diagnostics.push(Diagnostic::new(
                            Code::E0103TooLarge,
                            statement.name.span,
                            format!("more than {} statements", limits::MAX_STATEMENTS),
                        ));
                        return None;
                    }
                    body.push(statement);
                }
                Err(Abandon) => self.recover(),
            }
        }
        let ret_span = self.bump().span;
        let ret = match self
            .expr()
            .and_then(|ret| self.end_of_statement().map(|_| ret))
        {
            Ok(ret) => ret,
            Err(Abandon) => return None,
        };
        self.skip_trivia();
        if self
            .expect(&TokenKind::RBrace, "`}` after the return statement")
            .is_err()
        {
            return None;
        }
        self.skip_trivia();
        if !self.at(&TokenKind::Eof) {
            let _ = self.error::<()>("end of input after the mixer's `}` (one mixer per program)");
            return None;
        }
        Some(Program {
            doc,
            name,
            params,
            body,
            ret,
            ret_span,
        })
    }

    fn header(&mut self) -> PResult<(Ident, Vec<Param>)> {
        self.expect(&TokenKind::Mixer, "`mixer`")?;
        let name = self.ident("the mixer's name")?;
        self.expect(&TokenKind::LParen, "`(` and the hyperparameters")?;
        let mut params = Vec::new();
        while !self.at(&TokenKind::RParen) {
            let param_name = self.ident("a hyperparameter name")?;
            let default = if self.at(&TokenKind::Assign) {
                self.bump();
                Some(self.expr()?)
            } else {
                None
            };
            params.push(Param {
                name: param_name,
                default,
            });
            if params.len() > limits::MAX_STATEMENTS {
                let span = self.span();
                self.diagnostics.push(Diagnostic::new(
                    Code::E0103TooLarge,
                    span,
                    format!("more than {} hyperparameters", limits::MAX_STATEMENTS),
                ));
                return Err(Abandon);
            }
            if !self.at(&TokenKind::RParen) {
                self.expect(&TokenKind::Comma, "`,` or `)`")?;
            }
        }
        self.bump();
        self.skip_trivia();
        self.expect(&TokenKind::LBrace, "`{`")?;
        Ok((name, params))
    }

    fn statement(&mut self) -> PResult<Statement> {
        let name = self.ident("a statement `name = expression` or `return`")?;
        self.expect(&TokenKind::Assign, "`=`")?;
        let value = self.expr()?;
        self.end_of_statement()?;
        Ok(Statement { name, value })
    }

    fn end_of_statement(&mut self) -> PResult<()> {
        match self.peek() {
            TokenKind::Newline
            | TokenKind::Semicolon
            | TokenKind::Comment(_)
            | TokenKind::RBrace
            | TokenKind::Eof => Ok(()),
            _ => self.error("end of statement (a new line or `;`)"),
        }
    }

    /// Skips to the next statement boundary after an error.
    fn recover(&mut self) {
        while !matches!(
            self.peek(),
            TokenKind::Newline | TokenKind::Semicolon | TokenKind::RBrace | TokenKind::Eof
        ) {
            self.bump();
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > limits::MAX_DEPTH {
            let span = self.span();
            self.diagnostics.push(Diagnostic::new(
                Code::E0102TooDeep,
                span,
                format!("expression nested deeper than {} levels", limits::MAX_DEPTH),
            ));
            return Err(Abandon);
        }
        Ok(())
    }

    fn expr(&mut self) -> PResult<Expr> {
        self.enter()?;
        let result = self.pipe();
        self.depth -= 1;
        result
    }

    /// True when the next significant token (past newlines and comments) is `|>`.
    fn continues_with_pipe(&self) -> bool {
        self.tokens[self.pos..]
            .iter()
            .find(|t| !matches!(t.kind, TokenKind::Newline | TokenKind::Comment(_)))
            .is_some_and(|t| t.kind == TokenKind::Pipe)
    }

    fn pipe(&mut self) -> PResult<Expr> {
        let mut lhs = self.sum()?;
        let entered_before = self.depth;
        let result = self.pipe_links(&mut lhs);
        self.depth = entered_before;
        result.map(|()| lhs)
    }

    fn pipe_links(&mut self, lhs: &mut Expr) -> PResult<()> {
        while self.continues_with_pipe() {
            while !self.at(&TokenKind::Pipe) {
                self.bump();
            }
            self.bump();
            self.enter()?;
            let func = self.ident("an operation name after `|>`")?;
            let placeholder = Expr::synthetic(ExprKind::Int(0));
            let mut args = vec![Arg {
                name: None,
                value: std::mem::replace(lhs, placeholder),
            }];
            let mut end = func.span;
            if self.at(&TokenKind::LParen) {
                self.bump();
                args.extend(self.args()?);
                end = self.previous_span();
            }
            let span = args[0].value.span.to(end);
            *lhs = Expr::new(
                ExprKind::Call {
                    func,
                    args,
                    piped: true,
                },
                span,
            );
        }
        Ok(())
    }

    /// Runs `link` while it returns true, counting each link as one level of nesting
    /// (a chain `a + b + c` builds a tree as deep as it is long).
    fn chain(&mut self, mut link: impl FnMut(&mut Self) -> PResult<bool>) -> PResult<()> {
        let entered_before = self.depth;
        let result = loop {
            if let Err(abandon) = self.enter() {
                break Err(abandon);
            }
            match link(self) {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(abandon) => break Err(abandon),
            }
        };
        self.depth = entered_before;
        result
    }

    fn sum(&mut self) -> PResult<Expr> {
        let mut lhs = Some(self.product()?);
        self.chain(|parser| {
            let op = match parser.peek() {
                TokenKind::Plus => BinOp::Add,
                TokenKind::Minus => BinOp::Sub,
                _ => return Ok(false),
            };
            parser.bump();
            let rhs = parser.product()?;
            lhs = lhs.take().map(|lhs| binary(op, lhs, rhs));
            Ok(true)
        })?;
        lhs.ok_or(Abandon)
    }

    fn product(&mut self) -> PResult<Expr> {
        let mut lhs = Some(self.unary()?);
        self.chain(|parser| {
            let op = match parser.peek() {
                TokenKind::Star => BinOp::Mul,
                TokenKind::Slash => BinOp::Div,
                _ => return Ok(false),
            };
            parser.bump();
            let rhs = parser.unary()?;
            lhs = lhs.take().map(|lhs| binary(op, lhs, rhs));
            Ok(true)
        })?;
        lhs.ok_or(Abandon)
    }

    fn unary(&mut self) -> PResult<Expr> {
        self.enter()?;
        let result = self.unary_inner();
        self.depth -= 1;
        result
    }

    fn unary_inner(&mut self) -> PResult<Expr> {
        let start = self.span();
        let kind = match self.peek().clone() {
            TokenKind::Minus => {
                self.bump();
                let inner = self.unary()?;
                let span = start.to(inner.span);
                return Ok(Expr::new(ExprKind::Neg(Box::new(inner)), span));
            }
            TokenKind::Int(value) => ExprKind::Int(value),
            TokenKind::Float(value) => ExprKind::Float(value),
            TokenKind::True => ExprKind::Bool(true),
            TokenKind::False => ExprKind::Bool(false),
            TokenKind::LParen => {
                self.bump();
                let inner = self.expr()?;
                self.expect(&TokenKind::RParen, "`)`")?;
                return Ok(inner);
            }
            TokenKind::Ident(name) => {
                let func = Ident { name, span: start };
                self.bump();
                if !self.at(&TokenKind::LParen) {
                    return Ok(Expr::new(ExprKind::Name(func.name), start));
                }
                self.bump();
                let args = self.args()?;
                let span = start.to(self.previous_span());
                return Ok(Expr::new(
                    ExprKind::Call {
                        func,
                        args,
                        piped: false,
                    },
                    span,
                ));
            }
            _ => return self.error("an expression"),
        };
        self.bump();
        Ok(Expr::new(kind, start))
    }

    /// Arguments after `(`, through the closing `)`.
    fn args(&mut self) -> PResult<Vec<Arg>> {
        let mut args = Vec::new();
        while !self.at(&TokenKind::RParen) {
            let is_keyword = matches!(self.peek(), TokenKind::Ident(_))
                && self.tokens.get(self.pos + 1).map(|t| &t.kind) == Some(&TokenKind::Assign);
            let name = if is_keyword {
                let name = self.ident("an argument name")?;
                self.bump();
                Some(name)
            } else {
                None
            };
            let value = self.expr()?;
            args.push(Arg { name, value });
            if !self.at(&TokenKind::RParen) {
                self.expect(&TokenKind::Comma, "`,` or `)`")?;
            }
        }
        self.bump();
        Ok(args)
    }
}

fn binary(op: BinOp, lhs: Expr, rhs: Expr) -> Expr {
    let span = lhs.span.to(rhs.span);
    Expr::new(
        ExprKind::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        },
        span,
    )
}
