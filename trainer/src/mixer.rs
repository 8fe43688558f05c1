//! The interpreter: a checked archspec graph becomes a mixer whose forward pass evaluates the
//! graph's live nodes in order, with learned parameters for the nodes that have them.

use crate::kernels::{attention, delta, linear, local};
use crate::params::{Init, ParamId, ParamStore};
use archspec::ast::BinOp;
use archspec::ir::{Activation, Norm};
use archspec::{Graph, Op};
use burn::Tensor;
use burn::tensor::activation;
use burn::tensor::{Device, TensorData};
use rand::rngs::SmallRng;

const NORM_EPS: f64 = 1e-6;

/// A value flowing through the graph.
#[derive(Debug, Clone)]
enum Value {
    /// `[B,T,D]`.
    Seq(Tensor<3>),
    /// `[B,H,T,K]`; per-head constants are `[1,H,1,1]`.
    Heads(Tensor<4>),
    Scalar(f64),
}

/// One mixer layer: the graph plus, per node, the indices of its parameters.
#[derive(Debug, Clone)]
pub struct Mixer {
    graph: Graph,
    live: Vec<bool>,
    node_params: Vec<Vec<ParamId>>,
    chunk_size: usize,
}

impl Mixer {
    /// Creates the parameters of every live node, named `{prefix}.n{node}.{what}`.
    pub fn init(
        graph: &Graph,
        prefix: &str,
        chunk_size: usize,
        store: &mut ParamStore,
        rng: &mut SmallRng,
        device: &Device,
    ) -> Mixer {
        let live = graph.live();
        let mut node_params = vec![Vec::new(); graph.nodes.len()];
        for (id, node) in graph.nodes.iter().enumerate() {
            if !live[id] {
                continue;
            }
            let input_dim = node
                .inputs
                .first()
                .map_or(0, |&input| graph.nodes[input].ty.last_dim());
            let name = |what: &str| format!("{prefix}.n{id}.{what}");
            let mut add = |what: &str, shape: [usize; 2], init: Init, decay: bool| {
                let param = store.add(name(what), shape, init, decay, rng, device);
                node_params[id].push(param);
            };
            match &node.op {
                Op::Linear { out, bias } => {
                    add("weight", [input_dim, *out], Init::UniformFanIn, true);
                    if *bias {
                        add("bias", [1, *out], Init::Constant(0.0), false);
                    }
                }
                Op::Norm { norm: Norm::Rms } => {
                    add("scale", [1, node.ty.last_dim()], Init::Constant(1.0), false)
                }
                Op::Norm { norm: Norm::Layer } => {
                    add("scale", [1, node.ty.last_dim()], Init::Constant(1.0), false);
                    add("bias", [1, node.ty.last_dim()], Init::Constant(0.0), false);
                }
                Op::GroupNorm { .. } => {
                    add("scale", [1, node.ty.last_dim()], Init::Constant(1.0), false);
                    add("bias", [1, node.ty.last_dim()], Init::Constant(0.0), false);
                }
                // Stored [width, D] so the fan-in of the uniform init is the kernel width.
                Op::ShortConv { width } => add(
                    "weight",
                    [*width, node.ty.last_dim()],
                    Init::UniformFanIn,
                    true,
                ),
                Op::HeadParam { heads, init } => {
                    add("value", [1, *heads], Init::Constant(*init as f32), false)
                }
                _ => {}
            }
        }
        Mixer {
            graph: graph.clone(),
            live,
            node_params,
            chunk_size,
        }
    }

    /// `x: [B,T,D]` → `[B,T,D]`. Uses the chunked kernels, or the sequential references
    /// when `reference` (for tests).
    pub fn forward(&self, params: &[Tensor<2>], x: Tensor<3>, reference: bool) -> Tensor<3> {
        let [batch, time, _] = x.dims();
        let device = x.device();
        let mut values: Vec<Option<Value>> = vec![None; self.graph.nodes.len()];
        for (id, node) in self.graph.nodes.iter().enumerate() {
            if !self.live[id] {
                continue;
            }
            let input = |index: usize| -> Value {
                node.inputs
                    .get(index)
                    .and_then(|&input| values[input].clone())
                    .unwrap_or(Value::Scalar(0.0))
            };
            let param = |index: usize| params[self.node_params[id][index]].clone();
            let full_heads = |value: Value| -> Tensor<4> {
                let tensor = heads(value);
                let [_, h, _, k] = tensor.dims();
                tensor.expand([batch, h, time, k])
            };
            let value = match &node.op {
                Op::Input => Value::Seq(x.clone()),
                Op::Const { value } => Value::Scalar(*value),
                Op::Linear { bias, .. } => {
                    let output = matmul_last(seq(input(0)), param(0));
                    Value::Seq(if *bias {
                        output + param(1).unsqueeze::<3>()
                    } else {
                        output
                    })
                }
                Op::SplitHeads { heads: h } => {
                    let tensor = seq(input(0));
                    let [b, t, d] = tensor.dims();
                    Value::Heads(tensor.reshape([b, t, *h, d / h]).swap_dims(1, 2))
                }
                Op::MergeHeads => {
                    let tensor = heads(input(0));
                    let [b, h, t, k] = tensor.dims();
                    Value::Seq(tensor.swap_dims(1, 2).reshape([b, t, h * k]))
                }
                Op::Activation { function } => map(
                    input(0),
                    |t| activate3(t, *function),
                    |t| activate4(t, *function),
                ),
                Op::FeatureSoftmax => map(
                    input(0),
                    |t| activation::softmax(t, 2),
                    |t| activation::softmax(t, 3),
                ),
                Op::Norm { norm } => {
                    let scale = self.node_params[id].first().map(|_| param(0));
                    let bias = self.node_params[id].get(1).map(|_| param(1));
                    map(
                        input(0),
                        |t| normalise(t, *norm, scale.clone(), bias.clone()),
                        |t| normalise(t, *norm, scale.clone(), bias.clone()),
                    )
                }
                Op::GroupNorm { groups } => {
                    let tensor = seq(input(0));
                    let [b, t, d] = tensor.dims();
                    let grouped: Tensor<4> = tensor.reshape([b, t, *groups, d / groups]);
                    let normalised: Tensor<3> =
                        normalise(grouped, Norm::Layer, None, None).reshape([b, t, d]);
                    Value::Seq(normalised * param(0).unsqueeze::<3>() + param(1).unsqueeze::<3>())
                }
                Op::Rope { base } => Value::Heads(rope(heads(input(0)), *base)),
                Op::Binary { op } => binary(*op, input(0), input(1)),
                Op::Neg => map(input(0), |t| -t, |t| -t),
                Op::Route => {
                    let weights = activation::softmax(seq(input(0)), 2);
                    let paths: Vec<Value> = (1..node.inputs.len()).map(&input).collect();
                    route(weights, paths)
                }
                Op::RetnetDecay { heads: h } => {
                    let decays: Vec<f32> = (0..*h)
                        .map(|i| (1.0 - 2f64.powi(-5 - i as i32)).ln() as f32)
                        .collect();
                    Value::Heads(Tensor::from_data(
                        TensorData::new(decays, [1, *h, 1, 1]),
                        &device,
                    ))
                }
                Op::HeadParam { heads: h, .. } => Value::Heads(param(0).reshape([1, *h, 1, 1])),
                Op::ShortConv { .. } => {
                    let weight = param(0).transpose();
                    let input = seq(input(0));
                    Value::Seq(if reference {
                        local::short_conv_reference(input, weight)
                    } else {
                        local::short_conv(input, weight)
                    })
                }
                Op::TokenShift { shift } => {
                    let shift = (*shift).max(0) as usize;
                    map(
                        input(0),
                        |t| local::token_shift(t, shift, 1),
                        |t| local::token_shift(t, shift, 2),
                    )
                }
                Op::SoftmaxAttention | Op::WindowAttention { .. } => {
                    let window = match node.op {
                        Op::WindowAttention { window } => Some(window),
                        _ => None,
                    };
                    // A per-head constant (`head_param`) may stand for q, k or v: every position
                    // and sequence sees it (the sequential kernels read one step at a time).
                    let (q, k, v) = (
                        full_heads(input(0)),
                        full_heads(input(1)),
                        full_heads(input(2)),
                    );
                    Value::Heads(if reference {
                        attention::softmax_attention_reference(q, k, v, window)
                    } else {
                        attention::softmax_attention(q, k, v, window)
                    })
                }
                Op::LinearAttention | Op::DecayAttention => {
                    // A per-head constant (`head_param`) may stand for q, k or v: every position
                    // and sequence sees it (the sequential kernels read one step at a time).
                    let (q, k, v) = (
                        full_heads(input(0)),
                        full_heads(input(1)),
                        full_heads(input(2)),
                    );
                    let g = (node.op == Op::DecayAttention).then(|| full_heads(input(3)));
                    Value::Heads(if reference {
                        linear::decay_attention_reference(q, k, v, g)
                    } else {
                        linear::decay_attention(q, k, v, g, self.chunk_size)
                    })
                }
                Op::DeltaRule | Op::GatedDeltaRule => {
                    // A per-head constant (`head_param`) may stand for q, k or v: every position
                    // and sequence sees it (the sequential kernels read one step at a time).
                    let (q, k, v) = (
                        full_heads(input(0)),
                        full_heads(input(1)),
                        full_heads(input(2)),
                    );
                    let beta = full_heads(input(3));
                    let g = (node.op == Op::GatedDeltaRule).then(|| full_heads(input(4)));
                    Value::Heads(if reference {
                        delta::delta_rule_reference(q, k, v, beta, g)
                    } else {
                        delta::delta_rule(q, k, v, beta, g, self.chunk_size)
                    })
                }
            };
            values[id] = Some(value);
        }
        match values.get(self.graph.output).cloned().flatten() {
            Some(Value::Seq(output)) => output,
            // The checker guarantees a [B,T,D] output; keep the residual path intact otherwise.
            _ => x.zeros_like(),
        }
    }
}

fn seq(value: Value) -> Tensor<3> {
    match value {
        Value::Seq(tensor) => tensor,
        Value::Heads(tensor) => {
            let [b, h, t, k] = tensor.dims();
            tensor.swap_dims(1, 2).reshape([b, t, h * k])
        }
        Value::Scalar(_) => unreachable_shape(),
    }
}

fn heads(value: Value) -> Tensor<4> {
    match value {
        Value::Heads(tensor) => tensor,
        Value::Seq(tensor) => tensor.unsqueeze_dim(1),
        Value::Scalar(_) => unreachable_shape(),
    }
}

/// The checker rules out scalars where tensors are needed; reaching this is a bug in archspec.
fn unreachable_shape() -> ! {
    panic!("archspec checker admitted a number where a tensor is required")
}

fn map(
    value: Value,
    on_seq: impl FnOnce(Tensor<3>) -> Tensor<3>,
    on_heads: impl FnOnce(Tensor<4>) -> Tensor<4>,
) -> Value {
    match value {
        Value::Seq(tensor) => Value::Seq(on_seq(tensor)),
        Value::Heads(tensor) => Value::Heads(on_heads(tensor)),
        scalar => scalar,
    }
}

/// `[B,T,D] @ [D,N]` → `[B,T,N]`.
pub fn matmul_last(x: Tensor<3>, weight: Tensor<2>) -> Tensor<3> {
    let [b, t, d] = x.dims();
    let n = weight.dims()[1];
    x.reshape([b * t, d]).matmul(weight).reshape([b, t, n])
}

fn activate<const D: usize>(tensor: Tensor<D>, function: Activation) -> Tensor<D> {
    match function {
        Activation::Silu => activation::silu(tensor),
        Activation::Gelu => activation::gelu(tensor),
        Activation::Relu => activation::relu(tensor),
        Activation::Sigmoid => activation::sigmoid(tensor),
        Activation::Tanh => activation::tanh(tensor),
        Activation::Softplus => activation::softplus(tensor, 1.0),
        Activation::Elu1 => activation::elu(tensor, 1.0) + 1.0,
        // Clamped so an unlucky program diverges visibly (loss NaN) instead of overflowing silently.
        Activation::Exp => tensor.clamp_max(30.0).exp(),
        Activation::Logsigmoid => activation::log_sigmoid(tensor),
    }
}

fn activate3(tensor: Tensor<3>, function: Activation) -> Tensor<3> {
    activate(tensor, function)
}

fn activate4(tensor: Tensor<4>, function: Activation) -> Tensor<4> {
    activate(tensor, function)
}

/// Normalises over the last axis; `scale` and `bias` are `[1, last]`.
fn normalise<const D: usize>(
    tensor: Tensor<D>,
    norm: Norm,
    scale: Option<Tensor<2>>,
    bias: Option<Tensor<2>>,
) -> Tensor<D> {
    let last = D - 1;
    let normalised = match norm {
        Norm::Rms => tensor.clone() / (tensor.square().mean_dim(last) + NORM_EPS).sqrt(),
        Norm::Layer => {
            let centred = tensor.clone() - tensor.mean_dim(last);
            centred.clone() / (centred.square().mean_dim(last) + NORM_EPS).sqrt()
        }
        Norm::L2 => tensor.clone() / (tensor.square().sum_dim(last) + NORM_EPS).sqrt(),
    };
    let scaled = match scale {
        Some(scale) => normalised * scale.unsqueeze::<D>(),
        None => normalised,
    };
    match bias {
        Some(bias) => scaled + bias.unsqueeze::<D>(),
        None => scaled,
    }
}

/// Rotary embedding on `[B,H,T,K]`, rotating the pairs `(i, i + K/2)`.
fn rope(tensor: Tensor<4>, base: f64) -> Tensor<4> {
    let [_, _, t, k] = tensor.dims();
    let half = k / 2;
    let device = tensor.device();
    let mut cos = Vec::with_capacity(t * half);
    let mut sin = Vec::with_capacity(t * half);
    for position in 0..t {
        for i in 0..half {
            let angle = position as f64 * base.powf(-2.0 * i as f64 / k as f64);
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    let cos: Tensor<4> =
        Tensor::<2>::from_data(TensorData::new(cos, [t, half]), &device).unsqueeze();
    let sin: Tensor<4> =
        Tensor::<2>::from_data(TensorData::new(sin, [t, half]), &device).unsqueeze();
    let first = tensor.clone().narrow(3, 0, half);
    let second = tensor.narrow(3, half, half);
    let rotated_first = first.clone() * cos.clone() - second.clone() * sin.clone();
    let rotated_second = second * cos + first * sin;
    Tensor::cat(vec![rotated_first, rotated_second], 3)
}

fn binary(op: BinOp, lhs: Value, rhs: Value) -> Value {
    match (lhs, rhs) {
        (Value::Seq(a), Value::Seq(b)) => Value::Seq(apply(op, a, b)),
        (Value::Heads(a), Value::Heads(b)) => Value::Heads(apply(op, a, b)),
        (Value::Seq(a), Value::Scalar(c)) => Value::Seq(apply_scalar(op, a, c)),
        (Value::Heads(a), Value::Scalar(c)) => Value::Heads(apply_scalar(op, a, c)),
        (Value::Scalar(c), Value::Seq(a)) => Value::Seq(scalar_apply(op, c, a)),
        (Value::Scalar(c), Value::Heads(a)) => Value::Heads(scalar_apply(op, c, a)),
        (Value::Scalar(a), Value::Scalar(b)) => Value::Scalar(match op {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
        }),
        // Mixed Seq/Heads is rejected by the checker.
        (lhs, _) => lhs,
    }
}

fn apply<const D: usize>(op: BinOp, a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
    }
}

fn apply_scalar<const D: usize>(op: BinOp, a: Tensor<D>, c: f64) -> Tensor<D> {
    match op {
        BinOp::Add => a + c,
        BinOp::Sub => a - c,
        BinOp::Mul => a * c,
        BinOp::Div => a / c,
    }
}

fn scalar_apply<const D: usize>(op: BinOp, c: f64, a: Tensor<D>) -> Tensor<D> {
    match op {
        BinOp::Add => a + c,
        BinOp::Sub => -a + c,
        BinOp::Mul => a * c,
        BinOp::Div => a.recip() * c,
    }
}

fn route(weights: Tensor<3>, paths: Vec<Value>) -> Value {
    let mut sum: Option<Value> = None;
    for (index, path) in paths.into_iter().enumerate() {
        let weight = weights.clone().narrow(2, index, 1); // [B,T,1]
        let term = match path {
            Value::Seq(tensor) => Value::Seq(tensor * weight),
            Value::Heads(tensor) => {
                let [b, t, _] = weight.dims();
                Value::Heads(tensor * weight.reshape([b, 1, t, 1]))
            }
            scalar => scalar,
        };
        sum = Some(match sum {
            None => term,
            Some(acc) => binary(BinOp::Add, acc, term),
        });
    }
    sum.unwrap_or(Value::Scalar(0.0))
}
