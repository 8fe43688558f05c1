//! The checker: binds hyperparameters, type-checks every statement, lowers the program to a
//! [`Graph`], and verifies causality and the complexity limit. Reports every problem it finds.

use crate::ast::{Arg, BinOp, Expr, ExprKind, Program};
use crate::diagnostic::{Code, Diagnostic, Span};
use crate::ir::{Complexity, Graph, Node, NodeId, Op, Type};
use crate::limits;
use crate::ops::{self, ArgKind, Bound, DefaultValue};
use std::collections::{BTreeMap, HashMap};

/// What a program is checked against: the model width and sequence length of the training
/// config, hyperparameter overrides, and the campaign's complexity limit.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckConfig {
    pub d_model: usize,
    pub seq_len: usize,
    pub overrides: BTreeMap<String, i64>,
    pub max_complexity: Option<Complexity>,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            d_model: 128,
            seq_len: 512,
            overrides: BTreeMap::new(),
            max_complexity: None,
        }
    }
}

/// A program that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub graph: Graph,
    /// Every hyperparameter with its value, in declaration order.
    pub hyperparameters: Vec<(String, i64)>,
    /// The type of every statement, in order.
    pub bindings: Vec<(String, Type)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    Tensor(NodeId, Type),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// The result of an expression that already produced a diagnostic.
    Poison,
}

impl Value {
    fn describe(self) -> String {
        match self {
            Value::Tensor(_, ty) => format!("a tensor {ty}"),
            Value::Int(v) => format!("the integer {v}"),
            Value::Float(v) => format!("the number {v:?}"),
            Value::Bool(v) => format!("`{v}`"),
            Value::Poison => "an invalid value".into(),
        }
    }
}

/// Checks a parsed program. On success the graph is ready to interpret.
pub fn check(program: &Program, config: &CheckConfig) -> Result<Checked, Vec<Diagnostic>> {
    let mut checker = Checker {
        config,
        nodes: Vec::new(),
        env: HashMap::new(),
        diagnostics: Vec::new(),
    };
    let hyperparameters = checker.hyperparameters(program);
    let input = checker.push(
        Op::Input,
        vec![],
        Type::Seq { d: config.d_model },
        Span::default(),
    );
    checker.env.insert(
        "x".into(),
        Value::Tensor(input, Type::Seq { d: config.d_model }),
    );
    let mut bindings = Vec::new();
    for statement in &program.body {
        let value = checker.eval(&statement.value);
        let name = &statement.name.name;
        if checker.env.contains_key(name) {
            checker.error(
                Code::E0202Reassigned,
                statement.name.span,
                format!("`{name}` is already defined; every name is assigned once"),
            );
        } else if ops::is_operation(name) {
            checker.error(
                Code::E0202Reassigned,
                statement.name.span,
                format!("`{name}` is the name of an operation; choose another name"),
            );
        }
        if let Value::Tensor(_, ty) = value {
            bindings.push((name.clone(), ty));
        }
        checker.env.entry(name.clone()).or_insert(value);
    }
    let output = match checker.eval(&program.ret) {
        Value::Tensor(id, ty) if ty == (Type::Seq { d: config.d_model }) => Some(id),
        Value::Poison => None,
        other => {
            checker.error(
                Code::E0303BadReturn,
                program.ret.span,
                format!(
                    "the mixer must return [B,T,{}] (d_model features), found {}; end with … |> linear(d_model)",
                    config.d_model,
                    other.describe()
                ),
            );
            None
        }
    };
    let graph = output.map(|output| Graph {
        nodes: std::mem::take(&mut checker.nodes),
        output,
    });
    if let Some(graph) = &graph {
        checker.check_causality(graph);
        checker.check_complexity(graph);
    }
    match graph {
        Some(graph) if checker.diagnostics.is_empty() => Ok(Checked {
            graph,
            hyperparameters,
            bindings,
        }),
        _ => Err(checker.diagnostics),
    }
}

struct Checker<'a> {
    config: &'a CheckConfig,
    nodes: Vec<Node>,
    env: HashMap<String, Value>,
    diagnostics: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error(&mut self, code: Code, span: Span, message: String) {
        self.diagnostics.push(Diagnostic::new(code, span, message));
    }

    fn push(&mut self, op: Op, inputs: Vec<NodeId>, ty: Type, span: Span) -> NodeId {
        self.nodes.push(Node {
            op,
            inputs,
            ty,
            span,
        });
        self.nodes.len() - 1
    }

    fn hyperparameters(&mut self, program: &Program) -> Vec<(String, i64)> {
        let mut values: Vec<(String, i64)> = Vec::new();
        let mut env: HashMap<String, i64> = HashMap::new();
        for param in &program.params {
            let name = &param.name.name;
            let span = param.name.span;
            if env.contains_key(name) || name == "x" {
                self.error(
                    Code::E0202Reassigned,
                    span,
                    format!("hyperparameter `{name}` is defined twice"),
                );
                continue;
            }
            let value = if name == "d_model" {
                if param.default.is_some() {
                    self.error(
                        Code::E0205BadHyperparameter,
                        span,
                        "`d_model` comes from the training config; remove its default".into(),
                    );
                }
                Some(self.config.d_model as i64)
            } else if let Some(value) = self.config.overrides.get(name) {
                Some(*value)
            } else if let Some(default) = &param.default {
                self.eval_int(default, &env)
            } else {
                self.error(
                    Code::E0205BadHyperparameter,
                    span,
                    format!(
                        "hyperparameter `{name}` has no value; give it a default: `{name} = 4`"
                    ),
                );
                None
            };
            if let Some(value) = value {
                env.insert(name.clone(), value);
                values.push((name.clone(), value));
                self.env.insert(name.clone(), Value::Int(value));
            } else {
                self.env.insert(name.clone(), Value::Poison);
            }
        }
        for name in self.config.overrides.keys() {
            if !env.contains_key(name) {
                self.error(
                    Code::E0205BadHyperparameter,
                    program.name.span,
                    format!("the config sets hyperparameter `{name}`, which mixer `{}` does not declare", program.name.name),
                );
            }
        }
        values
    }

    /// Evaluates a hyperparameter default: integer arithmetic over earlier hyperparameters.
    fn eval_int(&mut self, expr: &Expr, env: &HashMap<String, i64>) -> Option<i64> {
        let fail = |checker: &mut Self, message: String| {
            checker.error(Code::E0205BadHyperparameter, expr.span, message);
            None
        };
        match &expr.kind {
            ExprKind::Int(value) => Some(*value),
            ExprKind::Name(name) => match env.get(name) {
                Some(value) => Some(*value),
                None => {
                    self.error(
                        Code::E0201UnknownName,
                        expr.span,
                        format!("unknown hyperparameter `{name}`; a default may use only hyperparameters declared before it"),
                    );
                    None
                }
            },
            ExprKind::Neg(inner) => self.eval_int(inner, env).map(i64::saturating_neg),
            ExprKind::Binary { op, lhs, rhs } => {
                let lhs = self.eval_int(lhs, env);
                let rhs = self.eval_int(rhs, env);
                let (lhs, rhs) = (lhs?, rhs?);
                let result = match op {
                    BinOp::Add => lhs.checked_add(rhs),
                    BinOp::Sub => lhs.checked_sub(rhs),
                    BinOp::Mul => lhs.checked_mul(rhs),
                    BinOp::Div if rhs == 0 => return fail(self, "division by zero".into()),
                    BinOp::Div if lhs % rhs != 0 => {
                        return fail(self, format!("{lhs} / {rhs} is not a whole number; hyperparameters are integers"));
                    }
                    BinOp::Div => lhs.checked_div(rhs),
                };
                match result {
                    Some(value) if value.abs() <= limits::MAX_DIM * limits::MAX_DIM => Some(value),
                    _ => {
                        self.error(Code::E0501LimitExceeded, expr.span, "hyperparameter value is too large".into());
                        None
                    }
                }
            }
            ExprKind::Float(_) | ExprKind::Bool(_) => {
                fail(self, "hyperparameters are integers".into())
            }
            ExprKind::Call { .. } => fail(
                self,
                "a hyperparameter default is integer arithmetic over earlier hyperparameters; calls are not allowed".into(),
            ),
        }
    }

    fn eval(&mut self, expr: &Expr) -> Value {
        if self.nodes.len() > limits::MAX_NODES {
            if !self
                .diagnostics
                .iter()
                .any(|d| d.code == Code::E0103TooLarge)
            {
                self.error(
                    Code::E0103TooLarge,
                    expr.span,
                    format!("program has more than {} operations", limits::MAX_NODES),
                );
            }
            return Value::Poison;
        }
        match &expr.kind {
            ExprKind::Int(value) => Value::Int(*value),
            ExprKind::Float(value) => Value::Float(*value),
            ExprKind::Bool(value) => Value::Bool(*value),
            ExprKind::Name(name) => match self.env.get(name) {
                Some(value) => *value,
                None => {
                    let message = if ops::is_operation(name) {
                        format!("`{name}` is an operation; call it: `{name}(v)` or `v |> {name}`")
                    } else {
                        format!("unknown name `{name}`")
                    };
                    self.error(Code::E0201UnknownName, expr.span, message);
                    Value::Poison
                }
            },
            ExprKind::Neg(inner) => match self.eval(inner) {
                Value::Int(v) => Value::Int(v.saturating_neg()),
                Value::Float(v) => Value::Float(-v),
                Value::Tensor(id, ty) => {
                    Value::Tensor(self.push(Op::Neg, vec![id], ty, expr.span), ty)
                }
                Value::Bool(_) => {
                    self.error(
                        Code::E0204BadArguments,
                        expr.span,
                        "cannot negate a boolean".into(),
                    );
                    Value::Poison
                }
                Value::Poison => Value::Poison,
            },
            ExprKind::Binary { op, lhs, rhs } => {
                let lhs = self.eval(lhs);
                let rhs = self.eval(rhs);
                self.binary(*op, lhs, rhs, expr.span)
            }
            ExprKind::Call { func, args, .. } => self.call(&func.name, func.span, args, expr.span),
        }
    }

    fn binary(&mut self, op: BinOp, lhs: Value, rhs: Value, span: Span) -> Value {
        let number = |value: Value| match value {
            Value::Int(v) => Some(v as f64),
            Value::Float(v) => Some(v),
            _ => None,
        };
        match (lhs, rhs) {
            (Value::Poison, _) | (_, Value::Poison) => Value::Poison,
            (Value::Int(a), Value::Int(b)) => {
                let result = match op {
                    BinOp::Add => a.checked_add(b),
                    BinOp::Sub => a.checked_sub(b),
                    BinOp::Mul => a.checked_mul(b),
                    BinOp::Div if b != 0 && a % b == 0 => a.checked_div(b),
                    BinOp::Div => return self.float_result(a as f64 / b as f64, span),
                };
                match result {
                    Some(value) => Value::Int(value),
                    None => {
                        self.error(Code::E0501LimitExceeded, span, "integer overflow".into());
                        Value::Poison
                    }
                }
            }
            (Value::Tensor(a, a_ty), Value::Tensor(b, b_ty)) => match broadcast(a_ty, b_ty) {
                Some(ty) => Value::Tensor(self.push(Op::Binary { op }, vec![a, b], ty, span), ty),
                None => {
                    let hint = match (a_ty, b_ty) {
                        (Type::Seq { .. }, Type::Heads { .. })
                        | (Type::Heads { .. }, Type::Seq { .. }) => {
                            "; convert one side with split_heads or merge_heads"
                        }
                        _ => "",
                    };
                    self.error(
                        Code::E0301ShapeMismatch,
                        span,
                        format!(
                            "cannot combine {a_ty} with {b_ty} in `{}`{hint}",
                            op.symbol()
                        ),
                    );
                    Value::Poison
                }
            },
            (Value::Tensor(id, ty), other) => match number(other) {
                Some(value) => {
                    let constant = self.push(Op::Const { value }, vec![], Type::Scalar, span);
                    Value::Tensor(
                        self.push(Op::Binary { op }, vec![id, constant], ty, span),
                        ty,
                    )
                }
                None => self.not_arithmetic(other, span),
            },
            (other, Value::Tensor(id, ty)) => match number(other) {
                Some(value) => {
                    let constant = self.push(Op::Const { value }, vec![], Type::Scalar, span);
                    Value::Tensor(
                        self.push(Op::Binary { op }, vec![constant, id], ty, span),
                        ty,
                    )
                }
                None => self.not_arithmetic(other, span),
            },
            (a, b) => match (number(a), number(b)) {
                (Some(a), Some(b)) => {
                    let result = match op {
                        BinOp::Add => a + b,
                        BinOp::Sub => a - b,
                        BinOp::Mul => a * b,
                        BinOp::Div => a / b,
                    };
                    self.float_result(result, span)
                }
                _ => self.not_arithmetic(if number(a).is_none() { a } else { b }, span),
            },
        }
    }

    fn float_result(&mut self, value: f64, span: Span) -> Value {
        if value.is_finite() {
            Value::Float(value)
        } else {
            self.error(
                Code::E0002BadNumber,
                span,
                "this arithmetic gives a number that is not finite".into(),
            );
            Value::Poison
        }
    }

    fn not_arithmetic(&mut self, value: Value, span: Span) -> Value {
        self.error(
            Code::E0204BadArguments,
            span,
            format!(
                "arithmetic needs tensors or numbers, found {}",
                value.describe()
            ),
        );
        Value::Poison
    }

    fn call(&mut self, name: &str, name_span: Span, args: &[Arg], span: Span) -> Value {
        let values: Vec<(Option<&str>, Value, Span)> = args
            .iter()
            .map(|arg| {
                (
                    arg.name.as_ref().map(|n| n.name.as_str()),
                    self.eval(&arg.value),
                    arg.value.span,
                )
            })
            .collect();
        let Some(spec) = ops::lookup(name) else {
            let message = match closest_operation(name) {
                Some(suggestion) => {
                    format!("`{name}` is not an operation; did you mean `{suggestion}`?")
                }
                None => format!("`{name}` is not an operation; see GRAMMAR.md for the list"),
            };
            self.error(Code::E0203UnknownOperation, name_span, message);
            return Value::Poison;
        };
        if values.iter().any(|(_, value, _)| *value == Value::Poison) {
            return Value::Poison;
        }
        let bound = match bind(spec, &values) {
            Ok(bound) => bound,
            Err((message, at)) => {
                self.error(
                    Code::E0204BadArguments,
                    at.unwrap_or(span),
                    format!("{message}; usage: {}", spec.usage()),
                );
                return Value::Poison;
            }
        };
        match ops::build(name, &bound) {
            Ok((op, inputs, ty)) => Value::Tensor(self.push(op, inputs, ty, span), ty),
            Err((code, message)) => {
                self.error(code, span, message);
                Value::Poison
            }
        }
    }

    fn check_causality(&mut self, graph: &Graph) {
        for node in &graph.nodes {
            let future = node.op.time_kernel().future;
            if future > 0 {
                self.error(
                    Code::E0401NotCausal,
                    node.span,
                    format!(
                        "{} reads position t+{future}, a later position: the program is not causal (a language model may only read the past)",
                        node.op.signature()
                    ),
                );
            }
        }
    }

    fn check_complexity(&mut self, graph: &Graph) {
        let Some(limit) = self.config.max_complexity else {
            return;
        };
        for (_, node) in graph.live_nodes() {
            let complexity = node.op.complexity();
            if complexity > limit {
                self.error(
                    Code::E0402TooComplex,
                    node.span,
                    format!(
                        "{} costs {} in the sequence length; this campaign allows at most {}",
                        node.op.signature(),
                        complexity.name(),
                        limit.name()
                    ),
                );
            }
        }
    }
}

/// The shape of an elementwise combination, or `None` when the shapes do not combine.
pub fn broadcast(a: Type, b: Type) -> Option<Type> {
    match (a, b) {
        (Type::Seq { d: x }, Type::Seq { d: y }) if x == y || x == 1 || y == 1 => {
            Some(Type::Seq { d: x.max(y) })
        }
        (Type::Heads { h: h1, k: k1 }, Type::Heads { h: h2, k: k2 })
            if h1 == h2 && (k1 == k2 || k1 == 1 || k2 == 1) =>
        {
            Some(Type::Heads {
                h: h1,
                k: k1.max(k2),
            })
        }
        _ => None,
    }
}

type BindError = (String, Option<Span>);

/// Matches positional and keyword arguments to the operation's parameters.
fn bind(
    spec: &ops::OpSpec,
    values: &[(Option<&str>, Value, Span)],
) -> Result<Vec<Bound>, BindError> {
    let mut slots: Vec<Option<(Value, Span)>> = vec![None; spec.params.len()];
    let mut rest: Vec<(Value, Span)> = Vec::new();
    let mut next_positional = 0;
    for &(keyword, value, span) in values {
        match keyword {
            Some(keyword) => {
                let Some(index) = spec.params.iter().position(|p| p.name == keyword) else {
                    return Err((
                        format!("{} has no argument named `{keyword}`", spec.name),
                        Some(span),
                    ));
                };
                if slots[index].is_some() {
                    return Err((
                        format!("argument `{keyword}` of {} is given twice", spec.name),
                        Some(span),
                    ));
                }
                slots[index] = Some((value, span));
            }
            None => {
                while next_positional < spec.params.len() && slots[next_positional].is_some() {
                    next_positional += 1;
                }
                match spec.params.get(next_positional) {
                    Some(param) if param.kind == ArgKind::Tensors => rest.push((value, span)),
                    Some(_) => {
                        slots[next_positional] = Some((value, span));
                        next_positional += 1;
                    }
                    None => {
                        return Err((
                            format!(
                                "{} takes {} arguments, found {}",
                                spec.name,
                                spec.params.len(),
                                values.len()
                            ),
                            Some(span),
                        ));
                    }
                }
            }
        }
    }
    let mut bound = Vec::with_capacity(spec.params.len());
    for (param, slot) in spec.params.iter().zip(slots) {
        let converted = match (param.kind, slot) {
            (ArgKind::Tensors, _) => {
                let mut tensors = Vec::new();
                for (value, span) in &rest {
                    match value {
                        Value::Tensor(id, ty) => tensors.push((*id, *ty)),
                        other => {
                            return Err((
                                format!(
                                    "the paths of {} must be tensors, found {}",
                                    spec.name,
                                    other.describe()
                                ),
                                Some(*span),
                            ));
                        }
                    }
                }
                Bound::Tensors(tensors)
            }
            (_, None) => match param.default {
                Some(DefaultValue::Int(v)) => Bound::Int(v),
                Some(DefaultValue::Float(v)) => Bound::Float(v),
                Some(DefaultValue::Bool(v)) => Bound::Bool(v),
                None => {
                    return Err((
                        format!("{} needs argument `{}`", spec.name, param.name),
                        None,
                    ));
                }
            },
            (kind, Some((value, span))) => match (kind, value) {
                (ArgKind::Tensor, Value::Tensor(id, ty)) if ty != Type::Scalar => {
                    Bound::Tensor(id, ty)
                }
                (ArgKind::Int, Value::Int(v)) => Bound::Int(v),
                (ArgKind::Float, Value::Int(v)) => Bound::Float(v as f64),
                (ArgKind::Float, Value::Float(v)) => Bound::Float(v),
                (ArgKind::Bool, Value::Bool(v)) => Bound::Bool(v),
                (kind, value) => {
                    let expected = match kind {
                        ArgKind::Tensor | ArgKind::Tensors => "a tensor",
                        ArgKind::Int => "an integer",
                        ArgKind::Float => "a number",
                        ArgKind::Bool => "`true` or `false`",
                    };
                    return Err((
                        format!(
                            "argument `{}` of {} must be {expected}, found {}",
                            param.name,
                            spec.name,
                            value.describe()
                        ),
                        Some(span),
                    ));
                }
            },
        };
        bound.push(converted);
    }
    Ok(bound)
}

/// The operation name nearest to a misspelling, when one is close.
fn closest_operation(name: &str) -> Option<&'static str> {
    ops::OPERATIONS
        .iter()
        .map(|spec| (edit_distance(name, spec.name), spec.name))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, name)| name)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().take(64).enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(previous + usize::from(ca != *cb));
            previous = current;
        }
    }
    row[b.len()]
}
