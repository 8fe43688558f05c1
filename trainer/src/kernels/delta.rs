//! The (gated) delta rule: `S_t = exp(g_t) (I - β_t k_t k_tᵀ) S_{t-1} + β_t k_t v_tᵀ`,
//! `o_t = S_tᵀ q_t / √K`, with `g` a per-head log decay `[B,H,T,1]` (absent: the plain delta
//! rule) and `β: [B,H,T,1]`.
//!
//! Chunked form (Yang et al. 2024, WY/UT representation): within a chunk write
//! `S_t = γ_t S_0 + Σ_{j≤t} (γ_t/γ_j) k_j u_jᵀ`. The `u` solve the unit lower-triangular system
//! `(I + tril(diag(β)(K Kᵀ ⊙ Γ), -1)) U = diag(β)(V - diag(γ) K S_0)`, whose inverse is a
//! product of `log2(C)` matrix squares (the strictly lower part is nilpotent). Every exponent
//! is ≤ 0.

use super::{
    Chunked, chunk_at, chunk_inputs, cumulative_log_decay, from_chunks, into_chunks, masks,
    pad_time,
};
use burn::Tensor;

/// Chunked parallel form. `q, k: [B,H,T,K]`, `v: [B,H,T,V]`, `beta, g: [B,H,T,1]`.
pub fn delta_rule(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    beta: Tensor<4>,
    g: Option<Tensor<4>>,
    chunk: usize,
) -> Tensor<4> {
    let Chunked {
        q,
        k,
        v,
        chunk,
        n_chunks,
        batch: b,
        heads: h,
        time: t,
        key_dim,
        value_dim,
        causal,
    } = chunk_inputs(q, k, v, chunk);
    let device = q.device();
    let beta = into_chunks(pad_time(beta, chunk), chunk); // [B,H,N,C,1]
    let strictly_past = masks::strictly_past(chunk, &device).reshape([1, 1, 1, chunk, chunk]);

    // γ_t = exp(G_t) and Γ_tj = γ_t / γ_j for j <= t.
    let (gamma, gamma_ratio, gamma_to_end) = match g {
        Some(g) => {
            let cum = cumulative_log_decay(g, chunk); // [B,H,N,C,1]
            let last = cum.clone().narrow(3, chunk - 1, 1);
            let ratio = (cum.clone() - cum.clone().swap_dims(3, 4))
                .clamp_max(0.0)
                .exp();
            (
                Some(cum.clone().exp()),
                Some(ratio),
                Some((last - cum).exp()),
            )
        }
        None => (None, None, None),
    };
    let k_beta = k.clone() * beta.clone();
    let v_beta = v * beta;
    let mut key_gram = k_beta.clone().matmul(k.clone().swap_dims(3, 4));
    let mut query_key = q.clone().matmul(k.clone().swap_dims(3, 4));
    if let Some(ratio) = &gamma_ratio {
        key_gram = key_gram * ratio.clone();
        query_key = query_key * ratio.clone();
    }
    let inverse = unit_lower_inverse(key_gram * strictly_past, chunk);
    let query_key = query_key * causal;
    let u_tilde = inverse.clone().matmul(v_beta); // [B,H,N,C,V]
    let w = match &gamma {
        Some(gamma) => inverse.matmul(k_beta * gamma.clone()),
        None => inverse.matmul(k_beta),
    }; // [B,H,N,C,K]
    let q_gamma = match &gamma {
        Some(gamma) => q * gamma.clone(),
        None => q,
    };
    let k_to_end = match &gamma_to_end {
        Some(to_end) => k * to_end.clone(),
        None => k,
    };
    let chunk_decay = gamma.map(|gamma| gamma.narrow(3, chunk - 1, 1)); // [B,H,N,1,1]

    let mut state = Tensor::<4>::zeros([b, h, key_dim, value_dim], &device);
    let mut outputs = Vec::with_capacity(n_chunks);
    for n in 0..n_chunks {
        let u: Tensor<4> =
            chunk_at::<5, 4>(&u_tilde, n) - chunk_at::<5, 4>(&w, n).matmul(state.clone());
        let out = chunk_at::<5, 4>(&q_gamma, n).matmul(state.clone())
            + chunk_at::<5, 4>(&query_key, n).matmul(u.clone());
        outputs.push(out);
        let update = chunk_at::<5, 4>(&k_to_end, n).swap_dims(2, 3).matmul(u);
        state = match &chunk_decay {
            Some(decay) => state * chunk_at::<5, 4>(decay, n) + update,
            None => state + update,
        };
    }
    let outputs: Tensor<5> = Tensor::stack(outputs, 2);
    from_chunks(outputs, t)
}

/// `(I + L)⁻¹` for strictly lower-triangular `L: [..,C,C]`: `Π_j (I + (-L)^(2^j))`, exact
/// because `L^C = 0`.
fn unit_lower_inverse(lower: Tensor<5>, size: usize) -> Tensor<5> {
    let device = lower.device();
    let identity = Tensor::<2>::eye(size, &device).reshape([1, 1, 1, size, size]);
    let mut power = -lower; // (-L)^(2^j)
    let mut inverse = identity.clone() + power.clone();
    let mut span = 2;
    while span < size {
        power = power.clone().matmul(power);
        inverse = inverse.matmul(identity.clone() + power.clone());
        span *= 2;
    }
    inverse
}

/// Reference: the recurrence one position at a time.
pub fn delta_rule_reference(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    beta: Tensor<4>,
    g: Option<Tensor<4>>,
) -> Tensor<4> {
    let [b, h, t, key_dim] = q.dims();
    let value_dim = v.dims()[3];
    let q = q / (key_dim as f64).sqrt();
    let mut state = Tensor::<4>::zeros([b, h, key_dim, value_dim], &q.device());
    let mut outputs = Vec::with_capacity(t);
    for pos in 0..t {
        if let Some(g) = &g {
            state = state * g.clone().narrow(2, pos, 1).clamp_max(0.0).exp();
        }
        let k_col = k.clone().narrow(2, pos, 1).swap_dims(2, 3); // [B,H,K,1]
        let k_row = k.clone().narrow(2, pos, 1); // [B,H,1,K]
        let v_row = v.clone().narrow(2, pos, 1); // [B,H,1,V]
        let beta_t = beta.clone().narrow(2, pos, 1); // [B,H,1,1]
        let predicted = k_row.matmul(state.clone()); // [B,H,1,V]
        state = state + k_col.matmul((v_row - predicted) * beta_t);
        outputs.push(q.clone().narrow(2, pos, 1).matmul(state.clone()));
    }
    Tensor::cat(outputs, 2)
}
