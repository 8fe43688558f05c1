//! Local time mixing on `[B,T,D]` (or `[B,H,T,K]`) sequences: causal depthwise short
//! convolution and token shift.

use burn::Tensor;
use burn::tensor::ops::PadMode;

/// Causal depthwise convolution: `out[t] = Σ_i weight[:, i] · x[t - i]` for `i < width`,
/// with zeros before the start. `x: [B,T,D]`, `weight: [D, width]`.
pub fn short_conv(x: Tensor<3>, weight: Tensor<2>) -> Tensor<3> {
    let [_, t, d] = x.dims();
    let width = weight.dims()[1];
    let padded = x.pad([(width - 1, 0), (0, 0)], PadMode::Constant(0.0));
    let mut out: Option<Tensor<3>> = None;
    for i in 0..width {
        // Positions t - i for t in 0..T sit at offset (width - 1 - i) in the padded sequence.
        let shifted = padded.clone().narrow(1, width - 1 - i, t);
        let tap = weight.clone().narrow(1, i, 1).reshape([1, 1, d]);
        let term = shifted * tap;
        out = Some(match out {
            Some(sum) => sum + term,
            None => term,
        });
    }
    out.unwrap_or_else(|| Tensor::zeros([0, 0, 0], &weight.device()))
}

/// Reference: the same convolution computed position by position.
pub fn short_conv_reference(x: Tensor<3>, weight: Tensor<2>) -> Tensor<3> {
    let [b, t, d] = x.dims();
    let width = weight.dims()[1];
    let outputs: Vec<Tensor<3>> = (0..t)
        .map(|pos| {
            let mut sum = Tensor::zeros([b, 1, d], &x.device());
            for i in 0..width.min(pos + 1) {
                let tap = weight.clone().narrow(1, i, 1).reshape([1, 1, d]);
                sum = sum + x.clone().narrow(1, pos - i, 1) * tap;
            }
            sum
        })
        .collect();
    Tensor::cat(outputs, 1)
}

/// `out[t] = x[t - shift]` along time axis `time_dim`, zeros before the start. `shift >= 0`.
pub fn token_shift<const D: usize>(x: Tensor<D>, shift: usize, time_dim: usize) -> Tensor<D> {
    let t = x.dims()[time_dim];
    if shift == 0 {
        return x;
    }
    if shift >= t {
        return x.zeros_like();
    }
    let kept = x.clone().narrow(time_dim, 0, t - shift);
    let mut zeros_shape = x.dims();
    zeros_shape[time_dim] = shift;
    let zeros = Tensor::<D>::zeros(zeros_shape, &x.device());
    Tensor::cat(vec![zeros, kept], time_dim)
}
