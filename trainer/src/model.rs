//! The language model around a mixer: embedding → `n_layers` pre-norm blocks (RMSNorm,
//! mixer, residual, RMSNorm, SwiGLU MLP, residual) → final RMSNorm → head (its own matrix, or
//! with `tied_embeddings` the embedding's transpose). Its parameter
//! count equals `archspec::ModelShape::params` of the mixer's static count.

use crate::mixer::{Mixer, matmul_last};
use crate::params::{Init, ParamId, ParamStore};
use archspec::{Graph, ModelShape};
use burn::Tensor;
use burn::tensor::{Device, Int, activation};
use rand::rngs::SmallRng;

const NORM_EPS: f64 = 1e-6;

#[derive(Debug, Clone)]
struct Block {
    mixer_norm: ParamId,
    mixer: Mixer,
    mlp_norm: ParamId,
    gate: ParamId,
    up: ParamId,
    down: ParamId,
}

#[derive(Debug, Clone)]
pub struct LanguageModel {
    pub shape: ModelShape,
    embedding: ParamId,
    blocks: Vec<Block>,
    final_norm: ParamId,
    /// `None` when the head is the embedding's transpose.
    head: Option<ParamId>,
}

impl LanguageModel {
    /// Creates the model's parameters in `store`.
    pub fn init(
        graph: &Graph,
        shape: ModelShape,
        chunk_size: usize,
        store: &mut ParamStore,
        rng: &mut SmallRng,
        device: &Device,
    ) -> LanguageModel {
        let (d, d_ff, vocab) = (shape.d_model, shape.d_ff, shape.vocab_size);
        // A tied embedding is also the head, so it starts at the head's scale (GPT-2 draws
        // N(0, 0.02²) at d_model 768; 1/√d_model is that order), not nn.Embedding's N(0, 1).
        let embedding_init = if shape.tied_embeddings {
            Init::Normal(1.0 / (d as f32).sqrt())
        } else {
            Init::Normal(1.0)
        };
        let embedding = store.add("embedding", [vocab, d], embedding_init, true, rng, device);
        let blocks = (0..shape.n_layers)
            .map(|layer| {
                let prefix = format!("block{layer}");
                Block {
                    mixer_norm: store.add(
                        format!("{prefix}.mixer_norm"),
                        [1, d],
                        Init::Constant(1.0),
                        false,
                        rng,
                        device,
                    ),
                    mixer: Mixer::init(
                        graph,
                        &format!("{prefix}.mixer"),
                        chunk_size,
                        store,
                        rng,
                        device,
                    ),
                    mlp_norm: store.add(
                        format!("{prefix}.mlp_norm"),
                        [1, d],
                        Init::Constant(1.0),
                        false,
                        rng,
                        device,
                    ),
                    gate: store.add(
                        format!("{prefix}.mlp.gate"),
                        [d, d_ff],
                        Init::UniformFanIn,
                        true,
                        rng,
                        device,
                    ),
                    up: store.add(
                        format!("{prefix}.mlp.up"),
                        [d, d_ff],
                        Init::UniformFanIn,
                        true,
                        rng,
                        device,
                    ),
                    down: store.add(
                        format!("{prefix}.mlp.down"),
                        [d_ff, d],
                        Init::UniformFanIn,
                        true,
                        rng,
                        device,
                    ),
                }
            })
            .collect();
        let final_norm = store.add(
            "final_norm",
            [1, d],
            Init::Constant(1.0),
            false,
            rng,
            device,
        );
        let head = (!shape.tied_embeddings)
            .then(|| store.add("head", [d, vocab], Init::UniformFanIn, true, rng, device));
        LanguageModel {
            shape,
            embedding,
            blocks,
            final_norm,
            head,
        }
    }

    /// `tokens: [B,T]` → logits `[B,T,vocab]`.
    pub fn forward(
        &self,
        params: &[Tensor<2>],
        tokens: Tensor<2, Int>,
        reference: bool,
    ) -> Tensor<3> {
        let [b, t] = tokens.dims();
        let d = self.shape.d_model;
        let mut hidden: Tensor<3> = params[self.embedding]
            .clone()
            .select(0, tokens.reshape([b * t]))
            .reshape([b, t, d]);
        for block in &self.blocks {
            let mixed = block.mixer.forward(
                params,
                rms_norm(hidden.clone(), params[block.mixer_norm].clone()),
                reference,
            );
            hidden = hidden + mixed;
            let normed = rms_norm(hidden.clone(), params[block.mlp_norm].clone());
            let gate = activation::silu(matmul_last(normed.clone(), params[block.gate].clone()));
            let up = matmul_last(normed, params[block.up].clone());
            hidden = hidden + matmul_last(gate * up, params[block.down].clone());
        }
        let normed = rms_norm(hidden, params[self.final_norm].clone());
        let head = match self.head {
            Some(head) => params[head].clone(),
            None => params[self.embedding].clone().transpose(),
        };
        matmul_last(normed, head)
    }
}

fn rms_norm(x: Tensor<3>, scale: Tensor<2>) -> Tensor<3> {
    x.clone() / (x.square().mean_dim(2) + NORM_EPS).sqrt() * scale.unsqueeze::<3>()
}
