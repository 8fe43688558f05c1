//! The checked program as a dataflow graph with concrete dimensions: what the trainer
//! interprets and what the analyses, canonical form and hashes are computed on.

use crate::ast::BinOp;
use crate::diagnostic::Span;
use serde::Serialize;
use std::fmt;

/// The shape of a value. `B` and `T` are always symbolic; feature sizes are concrete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Type {
    /// `[B,T,d]` sequence features.
    Seq { d: usize },
    /// `[B,H,T,K]` per-head features; `k == 1` is a per-head scalar `[B,H,T]`.
    Heads { h: usize, k: usize },
    /// A number, broadcast over everything.
    Scalar,
}

impl Type {
    /// Size of the last axis.
    pub fn last_dim(self) -> usize {
        match self {
            Type::Seq { d } => d,
            Type::Heads { k, .. } => k,
            Type::Scalar => 1,
        }
    }

    /// Numbers per position (per batch element).
    pub fn per_token(self) -> u64 {
        match self {
            Type::Seq { d } => d as u64,
            Type::Heads { h, k } => (h * k) as u64,
            Type::Scalar => 1,
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Seq { d } => write!(f, "[B,T,{d}]"),
            Type::Heads { h, k: 1 } => write!(f, "[B,{h},T]"),
            Type::Heads { h, k } => write!(f, "[B,{h},T,{k}]"),
            Type::Scalar => write!(f, "a number"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Silu,
    Gelu,
    Relu,
    Sigmoid,
    Tanh,
    Softplus,
    /// `elu(v) + 1`: a positive feature map.
    Elu1,
    Exp,
    Logsigmoid,
}

impl Activation {
    pub const ALL: [Activation; 9] = [
        Activation::Silu,
        Activation::Gelu,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Softplus,
        Activation::Elu1,
        Activation::Exp,
        Activation::Logsigmoid,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Activation::Silu => "silu",
            Activation::Gelu => "gelu",
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Softplus => "softplus",
            Activation::Elu1 => "elu1",
            Activation::Exp => "exp",
            Activation::Logsigmoid => "logsigmoid",
        }
    }

    pub fn from_name(name: &str) -> Option<Activation> {
        Activation::ALL.into_iter().find(|a| a.name() == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Norm {
    Rms,
    Layer,
    L2,
}

impl Norm {
    pub fn name(self) -> &'static str {
        match self {
            Norm::Rms => "rmsnorm",
            Norm::Layer => "layernorm",
            Norm::L2 => "l2norm",
        }
    }
}

/// One operation with its arguments resolved to numbers. Tensor inputs are the node's `inputs`,
/// in the order the operation's documentation lists them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Op {
    /// The mixer input `x`.
    Input,
    /// A number used in arithmetic with a tensor.
    Const {
        value: f64,
    },
    Linear {
        out: usize,
        bias: bool,
    },
    SplitHeads {
        heads: usize,
    },
    MergeHeads,
    Activation {
        function: Activation,
    },
    FeatureSoftmax,
    Norm {
        norm: Norm,
    },
    GroupNorm {
        groups: usize,
    },
    Rope {
        base: f64,
    },
    Binary {
        op: BinOp,
    },
    Neg,
    /// Inputs: router logits `[B,T,n]`, then the n paths.
    Route,
    RetnetDecay {
        heads: usize,
    },
    HeadParam {
        heads: usize,
        init: f64,
    },
    ShortConv {
        width: usize,
    },
    TokenShift {
        shift: i64,
    },
    SoftmaxAttention,
    WindowAttention {
        window: usize,
    },
    LinearAttention,
    DecayAttention,
    DeltaRule,
    GatedDeltaRule,
}

/// Which positions an output at time `t` reads, as offsets relative to `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeKernel {
    /// Furthest offset into the past (`None` = back to the start of the sequence).
    pub past: Option<u64>,
    /// Furthest offset into the future; anything above 0 breaks causality.
    pub future: i64,
}

/// How an operation's cost grows with the sequence length `T`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Complexity {
    /// O(T).
    Linear,
    /// O(T·W) for a fixed window W.
    Window,
    /// O(T²).
    Quadratic,
}

impl Complexity {
    pub fn name(self) -> &'static str {
        match self {
            Complexity::Linear => "linear",
            Complexity::Window => "window",
            Complexity::Quadratic => "quadratic",
        }
    }

    pub fn from_name(name: &str) -> Option<Complexity> {
        [
            Complexity::Linear,
            Complexity::Window,
            Complexity::Quadratic,
        ]
        .into_iter()
        .find(|c| c.name() == name)
    }
}

/// The widest `short_conv` counted as linear in T (Mamba, H3 and DeltaNet use 2–4 taps); a
/// wider one costs what a window of its width costs.
pub const SHORT_CONV_LINEAR_WIDTH: usize = 16;

impl Op {
    /// The positions an output reads from its inputs.
    pub fn time_kernel(&self) -> TimeKernel {
        let pointwise = TimeKernel {
            past: Some(0),
            future: 0,
        };
        match self {
            Op::ShortConv { width } => TimeKernel {
                past: Some(width.saturating_sub(1) as u64),
                future: 0,
            },
            Op::TokenShift { shift } => TimeKernel {
                past: Some(shift.max(&0).unsigned_abs()),
                future: -shift,
            },
            Op::WindowAttention { window } => TimeKernel {
                past: Some(window.saturating_sub(1) as u64),
                future: 0,
            },
            Op::SoftmaxAttention
            | Op::LinearAttention
            | Op::DecayAttention
            | Op::DeltaRule
            | Op::GatedDeltaRule => TimeKernel {
                past: None,
                future: 0,
            },
            _ => pointwise,
        }
    }

    pub fn complexity(&self) -> Complexity {
        match self {
            Op::SoftmaxAttention => Complexity::Quadratic,
            Op::WindowAttention { .. } => Complexity::Window,
            // A convolution reads `width` positions per token: O(T·W), like a window, once
            // it is more than the few taps that make it a cheap local mix.
            Op::ShortConv { width } if *width > SHORT_CONV_LINEAR_WIDTH => Complexity::Window,
            _ => Complexity::Linear,
        }
    }

    /// True for operations that move information between positions.
    pub fn is_time_mixing(&self) -> bool {
        !matches!(
            self.time_kernel(),
            TimeKernel {
                past: Some(0),
                future: 0
            }
        )
    }

    /// True for the attention-like operations taking `(q, k, v, ...)`.
    pub fn is_sequence_mixer(&self) -> bool {
        matches!(
            self,
            Op::SoftmaxAttention
                | Op::WindowAttention { .. }
                | Op::LinearAttention
                | Op::DecayAttention
                | Op::DeltaRule
                | Op::GatedDeltaRule
        )
    }

    /// A short signature used in canonical forms and distances, e.g. `linear(64)`.
    pub fn signature(&self) -> String {
        match self {
            Op::Input => "x".into(),
            Op::Const { value } => format!("{value:?}"),
            Op::Linear { out, bias } => {
                if *bias {
                    format!("linear({out}, bias = true)")
                } else {
                    format!("linear({out})")
                }
            }
            Op::SplitHeads { heads } => format!("split_heads({heads})"),
            Op::MergeHeads => "merge_heads".into(),
            Op::Activation { function } => function.name().into(),
            Op::FeatureSoftmax => "feature_softmax".into(),
            Op::Norm { norm } => norm.name().into(),
            Op::GroupNorm { groups } => format!("groupnorm({groups})"),
            Op::Rope { base } => format!("rope(base = {base:?})"),
            Op::Binary { op } => op.symbol().into(),
            Op::Neg => "neg".into(),
            Op::Route => "route".into(),
            Op::RetnetDecay { heads } => format!("retnet_decay({heads})"),
            Op::HeadParam { heads, init } => format!("head_param({heads}, init = {init:?})"),
            Op::ShortConv { width } => format!("short_conv({width})"),
            Op::TokenShift { shift } => format!("token_shift({shift})"),
            Op::SoftmaxAttention => "softmax_attention".into(),
            Op::WindowAttention { window } => format!("window_attention({window})"),
            Op::LinearAttention => "linear_attention".into(),
            Op::DecayAttention => "decay_attention".into(),
            Op::DeltaRule => "delta_rule".into(),
            Op::GatedDeltaRule => "gated_delta_rule".into(),
        }
    }
}

pub type NodeId = usize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    #[serde(flatten)]
    pub op: Op,
    pub inputs: Vec<NodeId>,
    #[serde(skip)]
    pub ty: Type,
    #[serde(skip)]
    pub span: Span,
}

/// Nodes in creation order: every node's inputs come before it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub output: NodeId,
}

impl Graph {
    /// Which nodes the output depends on.
    pub fn live(&self) -> Vec<bool> {
        let mut live = vec![false; self.nodes.len()];
        if self.output < live.len() {
            live[self.output] = true;
        }
        for id in (0..self.nodes.len()).rev() {
            if live[id] {
                for &input in &self.nodes[id].inputs {
                    live[input] = true;
                }
            }
        }
        live
    }

    /// The live nodes, in order.
    pub fn live_nodes(&self) -> impl Iterator<Item = (NodeId, &Node)> {
        let live = self.live();
        self.nodes
            .iter()
            .enumerate()
            .filter(move |(id, _)| live[*id])
    }
}
