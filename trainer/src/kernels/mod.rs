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
