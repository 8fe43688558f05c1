//! The syntax tree of one program, as written (hyperparameters still symbolic).

use crate::diagnostic::Span;

#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    /// Comment lines directly above `mixer`: the program's description and citation.
    pub doc: Vec<String>,
    pub name: Ident,
    pub params: Vec<Param>,
    pub body: Vec<Statement>,
    pub ret: Expr,
    /// Span of the `return` keyword.
    pub ret_span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: Ident,
    pub default: Option<Expr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub name: Ident,
    pub value: Expr,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }

    /// Binding strength: products bind tighter than sums.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Add | BinOp::Sub => 1,
            BinOp::Mul | BinOp::Div => 2,
        }
    }

    pub fn is_commutative(self) -> bool {
        matches!(self, BinOp::Add | BinOp::Mul)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Bool(bool),
    Name(String),
    /// `f(a, b)`, or `a |> f(b)` when `piped` (then `args[0]` is the piped value).
    Call {
        func: Ident,
        args: Vec<Arg>,
        piped: bool,
    },
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Neg(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    /// `Some` for a keyword argument `name = value`.
    pub name: Option<Ident>,
    pub value: Expr,
}

impl Expr {
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        Expr { kind, span }
    }

    /// An expression built by a tool rather than parsed (no source position).
    pub fn synthetic(kind: ExprKind) -> Expr {
        Expr::new(kind, Span::default())
    }

    pub fn name(name: &str) -> Expr {
        Expr::synthetic(ExprKind::Name(name.to_string()))
    }

    /// A non-negative integer literal; negative values become `-(n)` so printing round-trips.
    pub fn int(value: i64) -> Expr {
        if value < 0 {
            Expr::synthetic(ExprKind::Neg(Box::new(Expr::synthetic(ExprKind::Int(
                value.saturating_neg(),
            )))))
        } else {
            Expr::synthetic(ExprKind::Int(value))
        }
    }

    /// A call `func(args)`; with `piped`, printed as `args[0] |> func(rest)`.
    pub fn call(func: &str, args: Vec<Expr>, piped: bool) -> Expr {
        Expr::synthetic(ExprKind::Call {
            func: Ident {
                name: func.to_string(),
                span: Span::default(),
            },
            args: args
                .into_iter()
                .map(|value| Arg { name: None, value })
                .collect(),
            piped,
        })
    }

    pub fn binary(op: BinOp, lhs: Expr, rhs: Expr) -> Expr {
        Expr::synthetic(ExprKind::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        })
    }

    /// Calls `visit` on this expression and every expression inside it, parents first.
    pub fn walk<'a>(&'a self, visit: &mut impl FnMut(&'a Expr)) {
        visit(self);
        match &self.kind {
            ExprKind::Call { args, .. } => args.iter().for_each(|arg| arg.value.walk(visit)),
            ExprKind::Binary { lhs, rhs, .. } => {
                lhs.walk(visit);
                rhs.walk(visit);
            }
            ExprKind::Neg(inner) => inner.walk(visit),
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Bool(_) | ExprKind::Name(_) => {}
        }
    }

    /// Names this expression refers to.
    pub fn names(&self) -> Vec<&str> {
        let mut names = Vec::new();
        self.walk(&mut |expr| {
            if let ExprKind::Name(name) = &expr.kind {
                names.push(name.as_str());
            }
        });
        names
    }

    fn clear_spans(&mut self) {
        self.span = Span::default();
        match &mut self.kind {
            ExprKind::Call { func, args, .. } => {
                func.span = Span::default();
                for arg in args {
                    if let Some(name) = &mut arg.name {
                        name.span = Span::default();
                    }
                    arg.value.clear_spans();
                }
            }
            ExprKind::Binary { lhs, rhs, .. } => {
                lhs.clear_spans();
                rhs.clear_spans();
            }
            ExprKind::Neg(inner) => inner.clear_spans(),
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Bool(_) | ExprKind::Name(_) => {}
        }
    }
}

impl Program {
    /// The same program with every span zeroed, for comparing structure.
    pub fn without_spans(&self) -> Program {
        let mut program = self.clone();
        program.name.span = Span::default();
        program.ret_span = Span::default();
        program.ret.clear_spans();
        for param in &mut program.params {
            param.name.span = Span::default();
            if let Some(default) = &mut param.default {
                default.clear_spans();
            }
        }
        for statement in &mut program.body {
            statement.name.span = Span::default();
            statement.value.clear_spans();
        }
        program
    }

    /// Every name the program defines: hyperparameters, `x` and statements.
    pub fn defined_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = vec!["x"];
        names.extend(self.params.iter().map(|p| p.name.name.as_str()));
        names.extend(self.body.iter().map(|s| s.name.name.as_str()));
        names
    }

    /// A name based on `base` that the program does not define yet.
    pub fn fresh_name(&self, base: &str) -> String {
        let taken = self.defined_names();
        if !taken.contains(&base) && !crate::ops::is_operation(base) {
            return base.to_string();
        }
        (2..)
            .map(|n| format!("{base}{n}"))
            .find(|candidate| !taken.contains(&candidate.as_str()))
            .unwrap_or_else(|| base.to_string())
    }

    /// Removes statements whose values never reach `return`.
    pub fn remove_dead_statements(&mut self) {
        let mut live: std::collections::HashSet<String> =
            self.ret.names().into_iter().map(str::to_string).collect();
        for statement in self.body.iter().rev() {
            if live.contains(&statement.name.name) {
                live.extend(statement.value.names().into_iter().map(str::to_string));
            }
        }
        self.body
            .retain(|statement| live.contains(&statement.name.name));
    }
}
