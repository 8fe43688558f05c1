//! Time-mixing kernels. Each has a parallel (chunked or masked) form used for training and a
//! sequential reference that follows the recurrence literally; tests hold them equal.
//!
//! Shapes: per-head tensors are `[B,H,T,K]`; sequence tensors `[B,T,D]`.

pub mod attention;
pub mod delta;
pub mod linear;
pub mod local;
pub mod masks;

use burn::Tensor;

/// Pads the time axis (dim 2) of `[B,H,T,K]` with zeros up to a multiple of `chunk`.
pub(crate) fn pad_time(tensor: Tensor<4>, chunk: usize) -> Tensor<4> {
    let t = tensor.dims()[2];
    let padded = t.div_ceil(chunk) * chunk;
    if padded == t {
        tensor
    } else {
        tensor.pad(
            [(0, padded - t), (0, 0)],
            burn::tensor::ops::PadMode::Constant(0.0),
        )
    }
}

/// `[B,H,T,K]` → `[B,H,N,C,K]` with `T = N·C` (after padding).
pub(crate) fn into_chunks(tensor: Tensor<4>, chunk: usize) -> Tensor<5> {
    let [b, h, t, k] = tensor.dims();
    tensor.reshape([b, h, t / chunk, chunk, k])
}

/// `[B,H,N,C,K]` → `[B,H,T,K]`, keeping the first `t` positions.
pub(crate) fn from_chunks(tensor: Tensor<5>, t: usize) -> Tensor<4> {
    let [b, h, n, c, k] = tensor.dims();
    tensor.reshape([b, h, n * c, k]).narrow(2, 0, t)
}

/// The `n`-th chunk of a `[B,H,N,…]` tensor, without the chunk axis.
pub(crate) fn chunk_at<const D: usize, const D2: usize>(
    tensor: &Tensor<D>,
    n: usize,
) -> Tensor<D2> {
    tensor.clone().narrow(2, n, 1).squeeze_dim::<D2>(2)
}

/// The inputs of a chunked recurrent kernel: `q` scaled by `1/√K`, then `q, k, v` padded and
/// split into chunks, with the sizes and the within-chunk causal mask every kernel needs.
pub(crate) struct Chunked {
    pub q: Tensor<5>,
    pub k: Tensor<5>,
    pub v: Tensor<5>,
    pub chunk: usize,
    pub n_chunks: usize,
    pub batch: usize,
    pub heads: usize,
    pub time: usize,
    pub key_dim: usize,
    pub value_dim: usize,
    /// `[1,1,1,C,C]`, 1 where `j <= i`.
    pub causal: Tensor<5>,
}

pub(crate) fn chunk_inputs(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, chunk: usize) -> Chunked {
    let [batch, heads, time, key_dim] = q.dims();
    let value_dim = v.dims()[3];
    let chunk = chunk.clamp(1, time.max(1));
    let q = into_chunks(pad_time(q / (key_dim as f64).sqrt(), chunk), chunk);
    let causal = masks::causal(chunk, &q.device()).reshape([1, 1, 1, chunk, chunk]);
    Chunked {
        n_chunks: q.dims()[2],
        q,
        k: into_chunks(pad_time(k, chunk), chunk),
        v: into_chunks(pad_time(v, chunk), chunk),
        chunk,
        batch,
        heads,
        time,
        key_dim,
        value_dim,
        causal,
    }
}

/// Cumulative log decay within each chunk, `G: [B,H,N,C,Kg]`, from `g: [B,H,T,Kg]` clamped to ≤ 0.
pub(crate) fn cumulative_log_decay(g: Tensor<4>, chunk: usize) -> Tensor<5> {
    into_chunks(pad_time(g.clamp_max(0.0), chunk), chunk).cumsum(3)
}
