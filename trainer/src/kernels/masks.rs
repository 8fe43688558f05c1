//! Masks built from explicit index comparisons. (burn's `tril_mask`/`triu_mask` are true
//! *outside* the named triangle; spelling the condition out avoids that trap.)

use burn::tensor::{Device, Tensor, TensorData};

/// `[C,C]` float mask: 1 where `keep(i, j)` for row `i` (query) and column `j` (key), else 0.
pub fn float_mask(
    size_q: usize,
    size_k: usize,
    device: &Device,
    keep: impl Fn(usize, usize) -> bool,
) -> Tensor<2> {
    let mut values = Vec::with_capacity(size_q * size_k);
    for i in 0..size_q {
        for j in 0..size_k {
            values.push(if keep(i, j) { 1.0f32 } else { 0.0 });
        }
    }
    Tensor::from_data(TensorData::new(values, [size_q, size_k]), device)
}

/// 1 on and below the diagonal (`j <= i`): a position sees itself and the past.
pub fn causal(size: usize, device: &Device) -> Tensor<2> {
    float_mask(size, size, device, |i, j| j <= i)
}

/// 1 strictly below the diagonal (`j < i`).
pub fn strictly_past(size: usize, device: &Device) -> Tensor<2> {
    float_mask(size, size, device, |i, j| j < i)
}

/// Additive attention bias: 0 where `keep`, a large negative number elsewhere.
pub fn additive_bias(
    size: usize,
    device: &Device,
    keep: impl Fn(usize, usize) -> bool,
) -> Tensor<2> {
    let keep_mask = float_mask(size, size, device, keep);
    (keep_mask - 1.0) * 1e9
}
