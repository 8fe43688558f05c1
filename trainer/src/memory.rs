//! A static estimate of a training run's peak memory, before anything is allocated: what the
//! drivers compare with the device a run will have, so that a program that cannot fit is
//! refused with a reason instead of being killed by the kernel (or CUDA) mid-run.

use crate::TrainConfig;
use archspec::{ModelShape, Valid, analysis};

/// The model a config builds around a mixer.
pub fn model_shape(config: &TrainConfig) -> ModelShape {
    ModelShape {
        d_model: config.model.d_model,
        n_layers: config.model.n_layers,
        vocab_size: config.vocab_size(),
        d_ff: config.d_ff(),
        seq_len: config.data.seq_len,
        tied_embeddings: config.model.tie_embeddings,
    }
}

/// Estimated peak bytes of one training step of `program` under `config`
/// ([`ModelShape::training_memory_bytes`]; README, "Peak memory").
pub fn peak_training_bytes(config: &TrainConfig, program: &Valid) -> u64 {
    let activations = analysis::activations_per_token(
        &program.checked.graph,
        config.data.seq_len,
        config.chunk_size,
    );
    model_shape(config).training_memory_bytes(
        program.analysis.params,
        activations,
        config.batch_size,
    )
}
