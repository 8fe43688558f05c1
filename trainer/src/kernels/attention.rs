//! Softmax attention, full causal and sliding-window. The parallel form masks a `T×T` score
//! matrix; the reference loops over query positions.

use super::masks;
use burn::Tensor;
use burn::tensor::activation::softmax;

/// Causal softmax attention over a window of the last `window` positions (`None` = all).
/// `q, k: [B,H,T,K]`, `v: [B,H,T,V]` → `[B,H,T,V]`.
pub fn softmax_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    window: Option<usize>,
) -> Tensor<4> {
    let [_, _, t, key_dim] = q.dims();
    let device = q.device();
    let scores = q.matmul(k.swap_dims(2, 3)) / (key_dim as f64).sqrt();
    let bias = masks::additive_bias(t, &device, |i, j| {
        j <= i && window.is_none_or(|w| i - j < w)
    });
    let weights = softmax(scores + bias.unsqueeze::<4>(), 3);
    weights.matmul(v)
}

/// Reference: each query position attends to its allowed keys, one position at a time.
pub fn softmax_attention_reference(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    window: Option<usize>,
) -> Tensor<4> {
    let [_, _, t, key_dim] = q.dims();
    let outputs: Vec<Tensor<4>> = (0..t)
        .map(|i| {
            let start = window.map_or(0, |w| (i + 1).saturating_sub(w));
            let len = i + 1 - start;
            let qi = q.clone().narrow(2, i, 1);
            let ks = k.clone().narrow(2, start, len);
            let vs = v.clone().narrow(2, start, len);
            let weights = softmax(qi.matmul(ks.swap_dims(2, 3)) / (key_dim as f64).sqrt(), 3);
            weights.matmul(vs)
        })
        .collect();
    Tensor::cat(outputs, 2)
}
