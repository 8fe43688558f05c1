//! The model's learned parameters as one flat list of `[rows, cols]` tensors, with the facts
//! the optimizer needs (name, whether weight decay applies). Keeping them flat lets an
//! interpreted model of any shape train with one optimizer loop.

use burn::tensor::{Device, Tensor, TensorData};
use rand::Rng;
use rand::rngs::SmallRng;

/// How a parameter starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Uniform in ±1/√fan_in (fan_in = rows): the init that lets small recall models learn.
    UniformFanIn,
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
