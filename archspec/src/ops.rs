//! The operation table: each surface operation's parameters, documentation and shape rule.

use crate::diagnostic::Code;
use crate::ir::{Activation, NodeId, Norm, Op, Type};
use crate::limits;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ArgKind {
    Tensor,
    Int,
    Float,
    Bool,
    /// Any number of tensors (only last).
    Tensors,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DefaultValue {
    Int(i64),
    Float(f64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    pub name: &'static str,
    pub kind: ArgKind,
    pub default: Option<DefaultValue>,
}

#[derive(Debug, Clone, Copy)]
pub struct OpSpec {
    pub name: &'static str,
    pub params: &'static [ParamSpec],
}

const fn tensor(name: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        kind: ArgKind::Tensor,
        default: None,
    }
}

const fn int(name: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        kind: ArgKind::Int,
        default: None,
    }
}

const fn with_default(mut spec: ParamSpec, default: DefaultValue) -> ParamSpec {
    spec.default = Some(default);
    spec
}

const UNARY: &[ParamSpec] = &[tensor("v")];
const QKV: &[ParamSpec] = &[tensor("q"), tensor("k"), tensor("v")];

/// Every operation of the language.
pub const OPERATIONS: &[OpSpec] = &[
    OpSpec {
        name: "linear",
        params: &[
            tensor("v"),
            int("n"),
            with_default(
                ParamSpec {
                    name: "bias",
                    kind: ArgKind::Bool,
                    default: None,
                },
                DefaultValue::Bool(false),
            ),
        ],
    },
    OpSpec {
        name: "split_heads",
        params: &[tensor("v"), int("h")],
    },
    OpSpec {
        name: "merge_heads",
        params: UNARY,
    },
    OpSpec {
        name: "silu",
        params: UNARY,
    },
    OpSpec {
        name: "gelu",
        params: UNARY,
    },
    OpSpec {
        name: "relu",
        params: UNARY,
    },
    OpSpec {
        name: "sigmoid",
        params: UNARY,
    },
    OpSpec {
        name: "tanh",
        params: UNARY,
    },
    OpSpec {
        name: "softplus",
        params: UNARY,
    },
    OpSpec {
        name: "elu1",
        params: UNARY,
    },
    OpSpec {
        name: "exp",
        params: UNARY,
    },
    OpSpec {
        name: "logsigmoid",
        params: UNARY,
    },
    OpSpec {
        name: "feature_softmax",
        params: UNARY,
    },
    OpSpec {
        name: "rmsnorm",
        params: UNARY,
    },
    OpSpec {
        name: "layernorm",
        params: UNARY,
    },
    OpSpec {
        name: "l2norm",
        params: UNARY,
    },
    OpSpec {
        name: "groupnorm",
        params: &[tensor("v"), int("groups")],
    },
    OpSpec {
        name: "rope",
        params: &[
            tensor("v"),
            with_default(
                ParamSpec {
                    name: "base",
                    kind: ArgKind::Float,
                    default: None,
                },
                DefaultValue::Float(10000.0),
            ),
        ],
    },
    OpSpec {
        name: "route",
        params: &[
            tensor("w"),
            ParamSpec {
                name: "paths",
                kind: ArgKind::Tensors,
                default: None,
            },
        ],
    },
    OpSpec {
        name: "retnet_decay",
        params: &[int("h")],
    },
    OpSpec {
        name: "head_param",
        params: &[
            int("h"),
            with_default(
                ParamSpec {
                    name: "init",
                    kind: ArgKind::Float,
                    default: None,
                },
                DefaultValue::Float(0.0),
            ),
        ],
    },
    OpSpec {
        name: "short_conv",
        params: &[tensor("v"), int("w")],
    },
    OpSpec {
        name: "token_shift",
        params: &[tensor("v"), with_default(int("n"), DefaultValue::Int(1))],
    },
    OpSpec {
        name: "softmax_attention",
        params: QKV,
    },
    OpSpec {
        name: "window_attention",
        params: &[tensor("q"), tensor("k"), tensor("v"), int("w")],
    },
    OpSpec {
        name: "linear_attention",
        params: QKV,
    },
    OpSpec {
        name: "decay_attention",
        params: &[tensor("q"), tensor("k"), tensor("v"), tensor("g")],
    },
    OpSpec {
        name: "delta_rule",
        params: &[tensor("q"), tensor("k"), tensor("v"), tensor("beta")],
    },
    OpSpec {
        name: "gated_delta_rule",
        params: &[
            tensor("q"),
            tensor("k"),
            tensor("v"),
            tensor("beta"),
            tensor("g"),
        ],
    },
];

pub fn lookup(name: &str) -> Option<&'static OpSpec> {
    OPERATIONS.iter().find(|spec| spec.name == name)
}

pub fn is_operation(name: &str) -> bool {
    lookup(name).is_some()
}

/// The names of the attention-like operations taking `(q, k, v, ...)`.
pub const SEQUENCE_MIXERS: &[&str] = &[
    "softmax_attention",
    "window_attention",
    "linear_attention",
    "decay_attention",
    "delta_rule",
    "gated_delta_rule",
];

impl OpSpec {
    /// How the operation is called, for error messages: `linear(v, n, bias = false)`.
    pub fn usage(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|p| match (p.kind, p.default) {
                (ArgKind::Tensors, _) => format!("{}…", p.name),
                (_, Some(DefaultValue::Int(v))) => format!("{} = {v}", p.name),
                (_, Some(DefaultValue::Float(v))) => format!("{} = {v:?}", p.name),
                (_, Some(DefaultValue::Bool(v))) => format!("{} = {v}", p.name),
                (_, None) => p.name.to_string(),
            })
            .collect();
        format!("{}({})", self.name, params.join(", "))
    }
}

/// An argument after binding, in the order of the operation's parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    Tensor(NodeId, Type),
    Int(i64),
    Float(f64),
    Bool(bool),
    Tensors(Vec<(NodeId, Type)>),
}

/// A shape or value problem found while building an operation.
pub type BuildError = (Code, String);

/// Applies the operation's shape rule: the IR op, its tensor inputs and its output type.
pub fn build(name: &str, args: &[Bound]) -> Result<(Op, Vec<NodeId>, Type), BuildError> {
    let tensor = |index: usize| match args.get(index) {
        Some(Bound::Tensor(id, ty)) => Ok((*id, *ty)),
        _ => Err(bad_arguments(format!("{name}: missing tensor argument"))),
    };
    let int = |index: usize| match args.get(index) {
        Some(Bound::Int(value)) => Ok(*value),
        _ => Err(bad_arguments(format!("{name}: missing integer argument"))),
    };
    let float = |index: usize| match args.get(index) {
        Some(Bound::Float(value)) => Ok(*value),
        Some(Bound::Int(value)) => Ok(*value as f64),
        _ => Err(bad_arguments(format!("{name}: missing number argument"))),
    };
    if let Some(function) = Activation::from_name(name) {
        let (id, ty) = tensor(0)?;
        return Ok((Op::Activation { function }, vec![id], ty));
    }
    match name {
        "linear" => {
            let (id, ty) = tensor(0)?;
            let Type::Seq { .. } = ty else {
                return Err(wrong_shape(name, "[B,T,D]", ty, hint_merge(ty)));
            };
            let out = dimension(name, "n", int(1)?)?;
            let bias = matches!(args.get(2), Some(Bound::Bool(true)));
            Ok((Op::Linear { out, bias }, vec![id], Type::Seq { d: out }))
        }
        "split_heads" => {
            let (id, ty) = tensor(0)?;
            let heads = dimension(name, "h", int(1)?)?;
            match ty {
                Type::Seq { d } if d % heads == 0 => Ok((
                    Op::SplitHeads { heads },
                    vec![id],
                    Type::Heads {
                        h: heads,
                        k: d / heads,
                    },
                )),
                Type::Seq { d } => Err((
                    Code::E0302WrongShape,
                    format!(
                        "split_heads({heads}) needs a feature size divisible by {heads}, found {d}"
                    ),
                )),
                _ => Err(wrong_shape(
                    name,
                    "[B,T,D]",
                    ty,
                    "the value is already split into heads",
                )),
            }
        }
        "merge_heads" => {
            let (id, ty) = tensor(0)?;
            match ty {
                Type::Heads { h, k } => Ok((Op::MergeHeads, vec![id], Type::Seq { d: h * k })),
                _ => Err(wrong_shape(name, "[B,H,T,K]", ty, "")),
            }
        }
        "feature_softmax" | "rmsnorm" | "layernorm" | "l2norm" => {
            let (id, ty) = tensor(0)?;
            let op = match name {
                "feature_softmax" => Op::FeatureSoftmax,
                "rmsnorm" => Op::Norm { norm: Norm::Rms },
                "layernorm" => Op::Norm { norm: Norm::Layer },
                _ => Op::Norm { norm: Norm::L2 },
            };
            Ok((op, vec![id], ty))
        }
        "groupnorm" => {
            let (id, ty) = tensor(0)?;
            let groups = dimension(name, "groups", int(1)?)?;
            match ty {
                Type::Seq { d } if d % groups == 0 => Ok((Op::GroupNorm { groups }, vec![id], ty)),
                Type::Seq { d } => Err((
                    Code::E0302WrongShape,
                    format!(
                        "groupnorm({groups}) needs a feature size divisible by {groups}, found {d}"
                    ),
                )),
                _ => Err(wrong_shape(name, "[B,T,D]", ty, hint_merge(ty))),
            }
        }
        "rope" => {
            let (id, ty) = tensor(0)?;
            let base = float(1)?;
            if !(base.is_finite() && base > 1.0) {
                return Err(bad_arguments(format!(
                    "rope: base must be a number above 1, found {base}"
                )));
            }
            match ty {
                Type::Heads { k, .. } if k % 2 == 0 => Ok((Op::Rope { base }, vec![id], ty)),
                Type::Heads { k, .. } => Err((
                    Code::E0302WrongShape,
                    format!("rope needs an even per-head size K, found {k}"),
                )),
                _ => Err(wrong_shape(
                    name,
                    "[B,H,T,K]",
                    ty,
                    "split the heads first: v |> split_heads(h) |> rope",
                )),
            }
        }
        "route" => {
            let (weights, weights_ty) = tensor(0)?;
            let Some(Bound::Tensors(paths)) = args.get(1) else {
                return Err(bad_arguments("route: missing paths".into()));
            };
            if paths.len() < 2 || paths.len() > limits::MAX_ROUTE_PATHS {
                return Err(bad_arguments(format!(
                    "route takes 2 to {} paths after the weights, found {}",
                    limits::MAX_ROUTE_PATHS,
                    paths.len()
                )));
            }
            if weights_ty != (Type::Seq { d: paths.len() }) {
                return Err((
                    Code::E0302WrongShape,
                    format!(
                        "route's weights must be [B,T,{}] (one logit per path), found {weights_ty}; write x |> linear({})",
                        paths.len(),
                        paths.len()
                    ),
                ));
            }
            let path_ty = paths[0].1;
            if let Some((_, other)) = paths.iter().find(|(_, ty)| *ty != path_ty) {
                return Err((
                    Code::E0301ShapeMismatch,
                    format!("route's paths must all have one shape, found {path_ty} and {other}"),
                ));
            }
            let mut inputs = vec![weights];
            inputs.extend(paths.iter().map(|(id, _)| *id));
            Ok((Op::Route, inputs, path_ty))
        }
        "retnet_decay" => {
            let heads = dimension(name, "h", int(0)?)?;
            Ok((
                Op::RetnetDecay { heads },
                vec![],
                Type::Heads { h: heads, k: 1 },
            ))
        }
        "head_param" => {
            let heads = dimension(name, "h", int(0)?)?;
            let init = float(1)?;
            if !init.is_finite() {
                return Err(bad_arguments("head_param: init must be finite".into()));
            }
            Ok((
                Op::HeadParam { heads, init },
                vec![],
                Type::Heads { h: heads, k: 1 },
            ))
        }
        "short_conv" => {
            let (id, ty) = tensor(0)?;
            let width = dimension(name, "w", int(1)?)?;
            match ty {
                Type::Seq { .. } => Ok((Op::ShortConv { width }, vec![id], ty)),
                _ => Err(wrong_shape(name, "[B,T,D]", ty, hint_merge(ty))),
            }
        }
        "token_shift" => {
            let (id, ty) = tensor(0)?;
            let shift = int(1)?;
            if shift.abs() > limits::MAX_DIM {
                return Err((
                    Code::E0501LimitExceeded,
                    format!(
                        "token_shift by {shift} is over the limit of {}",
                        limits::MAX_DIM
                    ),
                ));
            }
            Ok((Op::TokenShift { shift }, vec![id], ty))
        }
        "softmax_attention" | "window_attention" | "linear_attention" | "decay_attention"
        | "delta_rule" | "gated_delta_rule" => sequence_mixer(name, args),
        _ => Err((
            Code::E0203UnknownOperation,
            format!("`{name}` is not an operation"),
        )),
    }
}

fn sequence_mixer(name: &str, args: &[Bound]) -> Result<(Op, Vec<NodeId>, Type), BuildError> {
    let heads_arg = |index: usize, role: &str| match args.get(index) {
        Some(Bound::Tensor(id, Type::Heads { h, k })) => Ok((*id, *h, *k)),
        Some(Bound::Tensor(_, ty)) => Err(wrong_shape(
            name,
            "[B,H,T,K]",
            *ty,
            &format!("`{role}` must be split into heads: … |> split_heads(h)"),
        )),
        _ => Err(bad_arguments(format!("{name}: missing `{role}`"))),
    };
    let (q, q_heads, q_dim) = heads_arg(0, "q")?;
    let (k, k_heads, k_dim) = heads_arg(1, "k")?;
    let (v, v_heads, v_dim) = heads_arg(2, "v")?;
    if (q_heads, q_dim) != (k_heads, k_dim) {
        return Err((
            Code::E0301ShapeMismatch,
            format!(
                "{name}: q and k must have the same shape, found {} and {}",
                Type::Heads {
                    h: q_heads,
                    k: q_dim
                },
                Type::Heads {
                    h: k_heads,
                    k: k_dim
                }
            ),
        ));
    }
    if v_heads != q_heads {
        return Err((
            Code::E0301ShapeMismatch,
            format!("{name}: q has {q_heads} heads but v has {v_heads}"),
        ));
    }
    let out = Type::Heads {
        h: v_heads,
        k: v_dim,
    };
    let per_head_scalar = |index: usize, role: &str| match args.get(index) {
        Some(Bound::Tensor(id, Type::Heads { h, k: 1 })) if *h == q_heads => Ok(*id),
        Some(Bound::Tensor(_, ty)) => Err((
            Code::E0302WrongShape,
            format!(
                "{name}: `{role}` must be a per-head scalar [B,{q_heads},T], found {ty}; write x |> linear({q_heads}) |> sigmoid |> split_heads({q_heads})"
            ),
        )),
        _ => Err(bad_arguments(format!("{name}: missing `{role}`"))),
    };
    match name {
        "softmax_attention" => Ok((Op::SoftmaxAttention, vec![q, k, v], out)),
        "window_attention" => {
            let window = match args.get(3) {
                Some(Bound::Int(w)) => dimension(name, "w", *w)?,
                _ => return Err(bad_arguments(format!("{name}: missing window `w`"))),
            };
            Ok((Op::WindowAttention { window }, vec![q, k, v], out))
        }
        "linear_attention" => Ok((Op::LinearAttention, vec![q, k, v], out)),
        "decay_attention" => match args.get(3) {
            Some(Bound::Tensor(g, Type::Heads { h, k: g_dim }))
                if *h == q_heads && (*g_dim == 1 || *g_dim == q_dim) =>
            {
                Ok((Op::DecayAttention, vec![q, k, v, *g], out))
            }
            Some(Bound::Tensor(_, ty)) => Err((
                Code::E0302WrongShape,
                format!(
                    "decay_attention: `g` must be [B,{q_heads},T] (a decay per head) or [B,{q_heads},T,{q_dim}] (a decay per key), found {ty}"
                ),
            )),
            _ => Err(bad_arguments("decay_attention: missing `g`".into())),
        },
        "delta_rule" => {
            let beta = per_head_scalar(3, "beta")?;
            Ok((Op::DeltaRule, vec![q, k, v, beta], out))
        }
        _ => {
            let beta = per_head_scalar(3, "beta")?;
            let g = per_head_scalar(4, "g")?;
            Ok((Op::GatedDeltaRule, vec![q, k, v, beta, g], out))
        }
    }
}

fn dimension(op: &str, param: &str, value: i64) -> Result<usize, BuildError> {
    if value < 1 {
        return Err(bad_arguments(format!(
            "{op}: `{param}` must be at least 1, found {value}"
        )));
    }
    if value > limits::MAX_DIM {
        return Err((
            Code::E0501LimitExceeded,
            format!(
                "{op}: `{param}` = {value} is over the limit of {}",
                limits::MAX_DIM
            ),
        ));
    }
    Ok(value as usize)
}

fn bad_arguments(message: String) -> BuildError {
    (Code::E0204BadArguments, message)
}

fn hint_merge(ty: Type) -> &'static str {
    match ty {
        Type::Heads { .. } => "use merge_heads first",
        _ => "",
    }
}

fn wrong_shape(op: &str, expected: &str, found: Type, hint: &str) -> BuildError {
    let mut message = format!("{op} expects {expected}, found {found}");
    if !hint.is_empty() {
        message.push_str("; ");
        message.push_str(hint);
    }
    (Code::E0302WrongShape, message)
}
