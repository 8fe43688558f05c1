//! One training step written out for an exact comparison with another implementation of the
//! same model (`scripts/parity/`): the initial parameters by name, the first training batch,
//! the loss on it and every parameter's gradient. Comparing training runs only shows that two
//! implementations learn alike within seed noise; this shows the forward and backward passes
//! agree number for number.

use crate::data::{Split, Stream};
use crate::model::LanguageModel;
use crate::params::ParamStore;
use crate::training::{batch_tensors, masked_cross_entropy};
use crate::{Prepared, TrainError};
use burn::Tensor;
use burn::tensor::Device;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct NamedTensor {
    pub name: String,
    pub shape: [usize; 2],
    pub values: Vec<f32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FirstStep {
    pub params: Vec<NamedTensor>,
    /// `[batch, seq_len]`, row-major.
    pub batch_size: usize,
    pub seq_len: usize,
    pub inputs: Vec<i64>,
    pub targets: Vec<i64>,
    pub mask: Vec<f32>,
    /// Mean cross-entropy over the scored positions.
    pub loss: f64,
    /// `[batch, seq_len, vocab]`, row-major.
    pub logits: Vec<f32>,
    pub grads: Vec<NamedTensor>,
}

fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_to_vec::<f32>().unwrap_or_default()
}

/// The model and the first batch exactly as the first trial of a run starts them (same seed,
/// same order of draws), then one forward and backward pass.
pub fn first_step(prepared: &Prepared, device: &Device) -> Result<FirstStep, TrainError> {
    let config = &prepared.config;
    let mut rng = SmallRng::seed_from_u64(config.seed);
    let mut store = ParamStore::new();
    let model = LanguageModel::init(
        &prepared.program.checked.graph,
        prepared.shape,
        config.chunk_size,
        &mut store,
        &mut rng,
        device,
    );
    let mut stream = Stream::new(&config.data, &prepared.sources, Split::Train, config.seed)?;
    let batch = stream.next_batch(config.batch_size)?;
    let (inputs, targets, mask) = batch_tensors(&batch, device);
    let tracked = store.tracked();
    let logits = model.forward(&tracked, inputs, false);
    let loss = masked_cross_entropy(logits.clone(), targets, mask);
    let loss_value = f64::from(loss.clone().into_scalar::<f32>());
    let gradients = loss.backward();
    let named = |index: usize, values: Vec<f32>| NamedTensor {
        name: store.infos[index].name.clone(),
        shape: store.infos[index].shape,
        values,
    };
    let grads = tracked
        .iter()
        .enumerate()
        .map(|(index, param)| {
            let grad = param
                .grad(&gradients)
                .unwrap_or_else(|| store.values[index].zeros_like());
            named(index, values(grad))
        })
        .collect();
    Ok(FirstStep {
        params: (0..store.values.len())
            .map(|index| named(index, values(store.values[index].clone())))
            .collect(),
        batch_size: batch.batch_size,
        seq_len: batch.seq_len,
        inputs: batch.inputs,
        targets: batch.targets,
        mask: batch.mask,
        loss: loss_value,
        logits: values(logits),
        grads,
    })
}
