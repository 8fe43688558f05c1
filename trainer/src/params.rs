//! The model's learned parameters as one flat list of `[rows, cols]` tensors, with the facts
//! the optimizer needs (name, whether weight decay applies). Keeping them flat lets an
//! interpreted model of any shape train with one optimizer loop.
//!
//! Initialisation follows PyTorch's defaults for the same layers, so a model learns here what
//! the same model learns there (`scripts/parity/` checks it):
//! - token embedding: N(0, 1), as `nn.Embedding`. (It was U(±1/√vocab), std ≈ 0.036 at a
//!   vocabulary of 256: softmax attention then reached 0.38 MQAR accuracy where PyTorch's
//!   reaches 1.00, and 1.00 here too with unit-variance embeddings; `tests/recall.rs` holds it.)
//! - linear weights and the output head: U(±1/√fan_in), as `nn.Linear` (stored `[in, out]`,
//!   so fan_in = rows).
//! - short convolution: U(±1/√width), as a depthwise `nn.Conv1d` (fan_in = in_channels/groups
//!   × kernel = width); no bias, as in the short convolutions of FLA's layers.
//! - linear biases: 0 (PyTorch draws them U(±1/√fan_in); a zero start keeps a bias-free and a
//!   biased program equal at step 0).
//! - norm scales 1 and norm biases 0, as `nn.LayerNorm`/`nn.RMSNorm`.
//! - per-head constants (`head_param`): the value the program gives; RetNet's decays are fixed
//!   numbers, not parameters.

use burn::tensor::{Device, Tensor, TensorData};
use rand::Rng;
use rand::rngs::SmallRng;

/// How a parameter starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Uniform in ±1/√fan_in (fan_in = rows): `nn.Linear`'s default.
    UniformFanIn,
    /// Normal with mean 0 and this standard deviation: `nn.Embedding`'s default is 1.
    Normal(f32),
    /// Every entry the same value (norm scales 1, biases 0, per-head constants).
    Constant(f32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    pub name: String,
    pub shape: [usize; 2],
    /// AdamW weight decay applies to matrices only, not to scales, biases or per-head numbers.
    pub decay: bool,
}

/// Parameters in creation order; `values[i]` belongs to `infos[i]`.
#[derive(Debug, Clone)]
pub struct ParamStore {
    pub infos: Vec<ParamInfo>,
    pub values: Vec<Tensor<2>>,
}

/// One draw from N(0, 1) by the Box–Muller transform (burn's `rand_distr` is built for another
/// `rand` major version than ours; four lines are cheaper than a second copy of it).
fn standard_normal(rng: &mut SmallRng) -> f32 {
    // 1 - u lies in (0, 1], so the logarithm is finite.
    let radius = (-2.0 * (1.0 - rng.random::<f64>()).ln()).sqrt();
    let angle = std::f64::consts::TAU * rng.random::<f64>();
    (radius * angle.cos()) as f32
}

/// Index of a parameter in its store.
pub type ParamId = usize;

impl ParamStore {
    pub fn new() -> ParamStore {
        ParamStore {
            infos: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Adds a parameter and returns its index.
    pub fn add(
        &mut self,
        name: impl Into<String>,
        shape: [usize; 2],
        init: Init,
        decay: bool,
        rng: &mut SmallRng,
        device: &Device,
    ) -> ParamId {
        let count = shape[0] * shape[1];
        let values: Vec<f32> = match init {
            Init::UniformFanIn => {
                let bound = 1.0 / (shape[0].max(1) as f32).sqrt();
                (0..count)
                    .map(|_| rng.random_range(-bound..=bound))
                    .collect()
            }
            Init::Normal(std) => (0..count).map(|_| std * standard_normal(rng)).collect(),
            Init::Constant(value) => vec![value; count],
        };
        self.infos.push(ParamInfo {
            name: name.into(),
            shape,
            decay,
        });
        self.values
            .push(Tensor::from_data(TensorData::new(values, shape), device));
        self.values.len() - 1
    }

    /// Number of learned numbers.
    pub fn count(&self) -> u64 {
        self.infos
            .iter()
            .map(|info| (info.shape[0] * info.shape[1]) as u64)
            .sum()
    }

    /// Copies that record gradients, for one forward/backward pass.
    pub fn tracked(&self) -> Vec<Tensor<2>> {
        self.values
            .iter()
            .map(|value| value.clone().autodiff().require_grad())
            .collect()
    }
}

impl Default for ParamStore {
    fn default() -> Self {
        ParamStore::new()
    }
}
