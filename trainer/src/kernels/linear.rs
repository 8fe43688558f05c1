//! Linear attention with optional decay: `S_t = diag(exp(g_t)) S_{t-1} + k_t v_tᵀ`,
//! `o_t = S_tᵀ q_t / √K`. `g` is a log decay, `[B,H,T,1]` (one per head) or `[B,H,T,K]`
//! (one per key); it is clamped to ≤ 0.
//!
//! The chunked form computes within-chunk interactions as masked matrix products and carries
//! the state between chunks; every exponent it takes is ≤ 0, so it cannot overflow.

use super::{Chunked, chunk_at, chunk_inputs, cumulative_log_decay, from_chunks, masks};
use burn::Tensor;

/// Chunked parallel form. `q, k: [B,H,T,K]`, `v: [B,H,T,V]`, `g: [B,H,T,1|K]` → `[B,H,T,V]`.
pub fn decay_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
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
    let cumulative = g.map(|g| cumulative_log_decay(g, chunk));

    let (intra, q_decayed, k_to_end, chunk_decay) = match &cumulative {
        None => {
            let scores = q.clone().matmul(k.clone().swap_dims(3, 4)) * causal;
            (scores.matmul(v.clone()), q, k, None)
        }
        Some(cum) => {
            let g_dim = cum.dims()[4];
            let last = cum.clone().narrow(3, chunk - 1, 1); // [B,H,N,1,Kg]
            let intra = if g_dim == 1 {
                // exp(G_i - G_j) for j <= i; clamp keeps masked entries finite.
                let diff = cum.clone() - cum.clone().swap_dims(3, 4);
                let decay = diff.clamp_max(0.0).exp() * causal.clone();
                (q.clone().matmul(k.clone().swap_dims(3, 4)) * decay).matmul(v.clone())
            } else {
                per_key_intra_chunk(q.clone(), k.clone(), v.clone(), cum.clone())
            };
            let q_decayed = q.clone() * cum.clone().exp();
            let k_to_end = k.clone() * (last.clone() - cum.clone()).exp();
            let chunk_decay = last.exp().swap_dims(3, 4); // [B,H,N,Kg,1]
            (intra, q_decayed, k_to_end, Some(chunk_decay))
        }
    };
    let chunk_kv = k_to_end.swap_dims(3, 4).matmul(v); // [B,H,N,K,V]

    // Carry the state across chunks; the state entering chunk n reads chunks < n.
    let mut state = Tensor::<4>::zeros([b, h, key_dim, value_dim], &device);
    let mut states = Vec::with_capacity(n_chunks);
    for n in 0..n_chunks {
        states.push(state.clone());
        let kv: Tensor<4> = chunk_at(&chunk_kv, n);
        state = match &chunk_decay {
            Some(decay) => state * chunk_at::<5, 4>(decay, n) + kv,
            None => state + kv,
        };
    }
    let states: Tensor<5> = Tensor::stack(states, 2); // [B,H,N,K,V]
    let inter = q_decayed.matmul(states);
    from_chunks(intra + inter, t)
}

/// Sub-chunk size for per-key decay: the pairwise term costs `T·S·K`, so it stays small.
const SUB_CHUNK: usize = 8;

/// Within-chunk output for per-key decay, `A_ij = Σ_k q_ik k_jk exp(G_ik - G_jk)` for `j <= i`,
/// times `v`. Pairs inside one sub-chunk use the pairwise form; pairs across sub-chunks factor
/// through the log decay at the query sub-chunk's start (`G_i - G_ref <= 0 <= ...`), a matmul.
/// All tensors `[B,H,N,C,·]`.
fn per_key_intra_chunk(q: Tensor<5>, k: Tensor<5>, v: Tensor<5>, cum: Tensor<5>) -> Tensor<5> {
    let [b, h, n, c, key_dim] = q.dims();
    let value_dim = v.dims()[4];
    let device = q.device();
    let sub = if c > SUB_CHUNK && c % SUB_CHUNK == 0 {
        SUB_CHUNK
    } else {
        c
    };
    let blocks = c / sub;
    let split =
        |t: Tensor<5>, last: usize| -> Tensor<6> { t.reshape([b, h, n, blocks, sub, last]) };
    let (qb, kb, vb, gb) = (
        split(q.clone(), key_dim),
        split(k.clone(), key_dim),
        split(v.clone(), value_dim),
        split(cum.clone(), key_dim),
    );

    // Pairs inside a sub-chunk: [B,H,N,S#,S,S,K] summed over K.
    let qi: Tensor<7> = qb.clone().unsqueeze_dim(5);
    let kj: Tensor<7> = kb.unsqueeze_dim(4);
    let weights = (gb.clone().unsqueeze_dim::<7>(5) - gb.clone().unsqueeze_dim::<7>(4))
        .clamp_max(0.0)
        .exp();
    let diagonal: Tensor<6> = (qi * kj * weights).sum_dim(6).squeeze_dim(6);
    let within = masks::causal(sub, &device).reshape([1, 1, 1, 1, sub, sub]);
    let mut output: Tensor<5> = (diagonal * within)
        .matmul(vb)
        .reshape([b, h, n, c, value_dim]);

    if blocks > 1 {
        // Reference log decay for query block a: G at the last position of block a-1.
        let block_ends = gb.clone().narrow(4, sub - 1, 1); // [B,H,N,S#,1,K]
        let reference = Tensor::cat(
            vec![
                block_ends.clone().narrow(3, 0, 1),
                block_ends.narrow(3, 0, blocks - 1),
            ],
            3,
        );
        let q_scaled = qb * (gb - reference.clone()).clamp_max(0.0).exp(); // [B,H,N,S#,S,K]
        let k_all: Tensor<6> = k.unsqueeze_dim(3); // [B,H,N,1,C,K]
        let g_all: Tensor<6> = cum.unsqueeze_dim(3);
        let k_scaled = k_all * (reference - g_all).clamp_max(0.0).exp(); // [B,H,N,S#,C,K]
        let scores = q_scaled.matmul(k_scaled.swap_dims(4, 5)); // [B,H,N,S#,S,C]
        let earlier = masks::float_mask(blocks, c, &device, |a, j| j < a * sub)
            .reshape([1, 1, 1, blocks, 1, c]);
        let across: Tensor<5> = (scores * earlier).reshape([b, h, n, c, c]);
        output = output + across.matmul(v);
    }
    output
}

/// Reference: the recurrence one position at a time.
pub fn decay_attention_reference(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    g: Option<Tensor<4>>,
) -> Tensor<4> {
    let [b, h, t, key_dim] = q.dims();
    let value_dim = v.dims()[3];
    let q = q / (key_dim as f64).sqrt();
    let mut state = Tensor::<4>::zeros([b, h, key_dim, value_dim], &q.device());
    let mut outputs = Vec::with_capacity(t);
    for pos in 0..t {
        let k_t = k.clone().narrow(2, pos, 1).swap_dims(2, 3); // [B,H,K,1]
        let v_t = v.clone().narrow(2, pos, 1); // [B,H,1,V]
        if let Some(g) = &g {
            let decay = g
                .clone()
                .narrow(2, pos, 1)
                .clamp_max(0.0)
                .exp()
                .swap_dims(2, 3); // [B,H,Kg,1]
            state = state * decay;
        }
        state = state + k_t.matmul(v_t);
        outputs.push(q.clone().narrow(2, pos, 1).matmul(state.clone()));
    }
    Tensor::cat(outputs, 2)
}
