//! Static analyses of a checked graph: parameters, FLOPs per token, recurrent state size and
//! cost class in the sequence length. The trainer's parameter count must equal these figures.

use crate::ir::{Complexity, Graph, Op, Type};
use serde::Serialize;

/// The backbone around the mixer, as the trainer builds it: embedding, `n_layers` pre-norm
/// blocks (RMSNorm, mixer, RMSNorm, SwiGLU MLP of width `d_ff`), final RMSNorm, and a head
/// that is its own matrix or, tied, the embedding's transpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModelShape {
    pub d_model: usize,
    pub n_layers: usize,
    pub vocab_size: usize,
    pub d_ff: usize,
    pub seq_len: usize,
    /// The output head is the input embedding's transpose (one `vocab × d_model` matrix).
    pub tied_embeddings: bool,
}

impl Default for ModelShape {
    fn default() -> Self {
        ModelShape {
            d_model: 128,
            n_layers: 2,
            vocab_size: 256,
            d_ff: 256,
            seq_len: 512,
            tied_embeddings: false,
        }
    }
}

impl ModelShape {
    /// Parameters of the whole model given the parameters of one mixer.
    pub fn params(&self, mixer_params: u64) -> u64 {
        let d = self.d_model as u64;
        let per_block = mixer_params + 2 * d + 3 * d * self.d_ff as u64;
        self.embedding_params() + self.n_layers as u64 * per_block + d
    }

    /// Parameters of the input embedding and output head: `vocab × d_model` each, once when
    /// tied. Papers usually quote model sizes without them.
    pub fn embedding_params(&self) -> u64 {
        let matrices = if self.tied_embeddings { 1 } else { 2 };
        matrices * self.vocab_size as u64 * self.d_model as u64
    }

    /// Forward FLOPs per token of the whole model given one mixer's.
    pub fn flops_per_token(&self, mixer_flops: u64) -> u64 {
        let d = self.d_model as u64;
        let per_block =
            mixer_flops + 2 * 4 * d + 2 * 3 * d * self.d_ff as u64 + 4 * self.d_ff as u64;
        self.n_layers as u64 * per_block + 2 * d * self.vocab_size as u64 + 4 * d
    }
}

/// What the checker reports about one mixer (one layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Analysis {
    /// Learned parameters of one mixer.
    pub params: u64,
    /// Forward floating-point operations per token of one mixer (a multiply-add counts 2),
    /// averaged over the positions of a sequence of `seq_len`.
    pub flops_per_token: u64,
    /// Numbers a mixer must keep per sequence to continue generating (recurrent state, caches).
    pub state_size: u64,
    pub complexity: Complexity,
}

/// Analyses the live part of a graph at sequence length `seq_len`.
pub fn analyse(graph: &Graph, seq_len: usize) -> Analysis {
    let mut analysis = Analysis {
        params: 0,
        flops_per_token: 0,
        state_size: 0,
        complexity: Complexity::Linear,
    };
    let t = seq_len as u64;
    for (_, node) in graph.live_nodes() {
        let input_ty = |index: usize| node.inputs.get(index).map(|&id| graph.nodes[id].ty);
        let (in_dim, out_size) = (
            input_ty(0).map_or(0, |ty| ty.per_token()),
            node.ty.per_token(),
        );
        let (h, k, v) = match (input_ty(1), node.ty) {
            (Some(Type::Heads { h, k }), Type::Heads { k: v, .. }) => {
                (h as u64, k as u64, v as u64)
            }
            _ => (0, 0, 0),
        };
        let (params, flops, state) = match &node.op {
            Op::Input | Op::Const { .. } | Op::SplitHeads { .. } | Op::MergeHeads => (0, 0, 0),
            Op::Linear { out, bias } => {
                let out = *out as u64;
                (
                    in_dim * out + if *bias { out } else { 0 },
                    2 * in_dim * out,
                    0,
                )
            }
            Op::Activation { .. } | Op::Neg | Op::Binary { .. } => (0, out_size, 0),
            Op::FeatureSoftmax => (0, 3 * out_size, 0),
            Op::Norm { norm } => {
                let scale = node.ty.last_dim() as u64;
                let params = match norm {
                    crate::ir::Norm::Rms => scale,
                    crate::ir::Norm::Layer => 2 * scale,
                    crate::ir::Norm::L2 => 0,
                };
                (params, 4 * out_size, 0)
            }
            Op::GroupNorm { .. } => (2 * out_size, 5 * out_size, 0),
            Op::Rope { .. } => (0, 3 * out_size, 0),
            Op::Route => {
                let paths = node.inputs.len().saturating_sub(1) as u64;
                (0, 3 * paths + 2 * paths * out_size, 0)
            }
            Op::RetnetDecay { .. } => (0, 0, 0),
            Op::HeadParam { heads, .. } => (*heads as u64, 0, 0),
            Op::ShortConv { width } => {
                let width = *width as u64;
                (
                    out_size * width,
                    2 * out_size * width,
                    out_size * (width - 1),
                )
            }
            Op::TokenShift { shift } => (0, 0, out_size * shift.max(&0).unsigned_abs()),
            Op::SoftmaxAttention => (
                0,
                h * (k + v) * (t + 1) + 3 * h * (t + 1) / 2,
                h * t * (k + v),
            ),
            Op::WindowAttention { window } => {
                let w = (*window as u64).min(t);
                (0, 2 * h * (k + v) * w + 3 * h * w, h * w * (k + v))
            }
            Op::LinearAttention => (0, 4 * h * k * v, h * k * v),
            Op::DecayAttention => (0, 5 * h * k * v, h * k * v),
            Op::DeltaRule => (0, 6 * h * k * v, h * k * v),
            Op::GatedDeltaRule => (0, 7 * h * k * v, h * k * v),
        };
        analysis.params = analysis.params.saturating_add(params);
        analysis.flops_per_token = analysis.flops_per_token.saturating_add(flops);
        analysis.state_size = analysis.state_size.saturating_add(state);
        analysis.complexity = analysis.complexity.max(node.op.complexity());
    }
    analysis
}

/// Numbers one mixer keeps per token for the backward pass when trained at `seq_len` with the
/// trainer's chunk length `chunk` (f32 each): every live node's output, plus what its kernel
/// materialises — the `T×T` scores, masked scores and weights of (windowed) softmax attention
/// (the trainer's parallel form is dense), the per-chunk scores and states of the chunked
/// kernels, and a short convolution's tap products. An estimate, calibrated against measured
/// peaks (README, "Peak memory").
pub fn activations_per_token(graph: &Graph, seq_len: usize, chunk: usize) -> u64 {
    let (t, chunk) = (seq_len as u64, chunk.max(1) as u64);
    let mut floats = 0u64;
    for (_, node) in graph.live_nodes() {
        let out = node.ty.per_token();
        let (h, k, v) = match (node.inputs.get(1).map(|&id| graph.nodes[id].ty), node.ty) {
            (Some(Type::Heads { h, k }), Type::Heads { k: v, .. }) => {
                (h as u64, k as u64, v as u64)
            }
            _ => (0, 0, 0),
        };
        let kernel = match &node.op {
            Op::SoftmaxAttention | Op::WindowAttention { .. } => 3 * h * t,
            Op::LinearAttention | Op::DecayAttention | Op::DeltaRule | Op::GatedDeltaRule => {
                // A per-key decay (GLA) adds the pairwise decays of the trainer's 8-position
                // sub-chunks (`kernels::linear::SUB_CHUNK`).
                let per_key = match node.inputs.get(3).map(|&id| graph.nodes[id].ty) {
                    Some(Type::Heads { k: gk, .. })
                        if gk > 1 && matches!(node.op, Op::DecayAttention) =>
                    {
                        4 * h * 8 * gk as u64
                    }
                    _ => 0,
                };
                3 * h * chunk + 2 * h * k * v / chunk + per_key
            }
            Op::ShortConv { width } => out * (*width as u64),
            _ => 0,
        };
        floats = floats.saturating_add(out).saturating_add(kernel);
    }
    floats
}

impl ModelShape {
    /// A static estimate of a training step's peak memory in bytes (f32 throughout), for a
    /// batch of `batch` sequences, given one mixer's parameters and its
    /// [`activations_per_token`]:
    ///
    /// `4 · (4·P + B·T·(L·(A + 7·d + 4·d_ff) + 3·d + 3·V))`
    ///
    /// where `P` is the whole model's parameters (weights, gradients and Adam's two moments:
    /// 4·P), `A` the mixer's activations per token, `7·d + 4·d_ff` the block's own (two
    /// RMSNorms, residuals, the SwiGLU MLP), `3·d` the embedding and final norm and `3·V`
    /// the logits, their log-softmax and its gradient.
    pub fn training_memory_bytes(
        &self,
        mixer_params: u64,
        mixer_activations: u64,
        batch: usize,
    ) -> u64 {
        let (d, d_ff, layers) = (self.d_model as u64, self.d_ff as u64, self.n_layers as u64);
        let tokens = (batch as u64).saturating_mul(self.seq_len as u64);
        let per_token = layers
            .saturating_mul(mixer_activations.saturating_add(7 * d + 4 * d_ff))
            .saturating_add(3 * d + 3 * self.vocab_size as u64);
        let floats = self
            .params(mixer_params)
            .saturating_mul(4)
            .saturating_add(tokens.saturating_mul(per_token));
        floats.saturating_mul(4)
    }
}
