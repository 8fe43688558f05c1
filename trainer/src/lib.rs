//! The archlab trainer: an archspec program becomes a burn language model that is trained on
//! generated or local data and evaluated. Runs as a child process locally and as the container
//! command of trainer pods; speaks JSON lines (see [`events`]).
//!
//! Flow: [`prepare`] checks the program and config (errors here mean exit 1 before any
//! training), then [`run`] trains one model per learning rate, keeps the best by validation
//! loss, scores it on the test split and returns the result.

pub mod config;
pub mod data;
pub mod events;
pub mod first_step;
pub mod kernels;
pub mod mixer;
pub mod model;
pub mod params;
pub mod shards;
pub mod training;

pub use config::TrainConfig;
pub use events::{Event, Status, TrainResult};

use archspec::{CheckConfig, ModelShape, Valid};
use burn::tensor::Device;
use std::collections::BTreeMap;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The program does not pass archspec's checks (rendered diagnostics).
    #[error("invalid program:\n{0}")]
    InvalidProgram(String),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error("unknown device `{0}`; this build supports: {1}")]
    UnknownDevice(String, &'static str),
}

/// A program and config that passed every check, ready to train.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub program: Valid,
    pub config: TrainConfig,
    pub shape: ModelShape,
}

/// Checks the program against the config's model width and sequence length.
pub fn prepare(program_source: &str, config: TrainConfig) -> Result<Prepared, TrainError> {
    config
        .validate()
        .map_err(|error| TrainError::InvalidConfig(error.to_string()))?;
    let check_config = CheckConfig {
        d_model: config.model.d_model,
        seq_len: config.data.seq_len,
        ..CheckConfig::default()
    };
    let program = archspec::check_source(program_source, &check_config).map_err(|diagnostics| {
        TrainError::InvalidProgram(archspec::diagnostic::render(program_source, &diagnostics))
    })?;
    // Unreadable or too-short text files are config errors too: find them before training.
    data::Stream::new(&config.data, data::Split::Train, config.seed)?;
    let shape = ModelShape {
        d_model: config.model.d_model,
        n_layers: config.model.n_layers,
        vocab_size: config.vocab_size(),
        d_ff: config.d_ff(),
        seq_len: config.data.seq_len,
    };
    Ok(Prepared {
        program,
        config,
        shape,
    })
}

/// The devices this build can train on.
pub const DEVICES: &str = if cfg!(feature = "tch") {
    "cpu, tch-cpu, cuda"
} else {
    "cpu"
};

/// Resolves a device name: `cpu` (burn's flex backend), and with the `tch` feature
/// `tch-cpu` and `cuda` (libtorch).
pub fn device(name: &str) -> Result<Device, TrainError> {
    match name {
        "cpu" => Ok(Device::flex()),
        #[cfg(feature = "tch")]
        #[allow(deprecated)]
        // burn-tch is deprecated upstream but is the decided CUDA backend.
        "tch-cpu" => Ok(Device::libtorch()),
        #[cfg(feature = "tch")]
        #[allow(deprecated)]
        "cuda" => Ok(Device::libtorch_cuda(0)),
        other => Err(TrainError::UnknownDevice(other.to_string(), DEVICES)),
    }
}

/// Trains and evaluates; never panics outward: an internal failure becomes an `error` result.
pub fn run(prepared: &Prepared, device: &Device, emit: &mut dyn FnMut(Event)) -> TrainResult {
    let started = Instant::now();
    let mut result = empty_result(prepared);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_inner(prepared, device, emit, &mut result)
    }));
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            result.status = Status::Error;
            result.error = Some(error.to_string());
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            result.status = Status::Error;
            result.error = Some(format!("internal error: {message}"));
        }
    }
    result.wall_s = started.elapsed().as_secs_f64();
    result
}

fn empty_result(prepared: &Prepared) -> TrainResult {
    let analysis = prepared.program.analysis;
    TrainResult {
        status: Status::Error,
        val_loss: None,
        accuracy: BTreeMap::new(),
        test_loss: None,
        test_accuracy: BTreeMap::new(),
        params: prepared.shape.params(analysis.params),
        flops_per_token: prepared.shape.flops_per_token(analysis.flops_per_token),
        state_size: analysis.state_size * prepared.shape.n_layers as u64,
        tokens_per_s: 0.0,
        tokens: 0,
        wall_s: 0.0,
        steps: 0,
        lr: None,
        trials: Vec::new(),
        time_limit_reached: false,
        program_hash: prepared.program.hash(),
        error: None,
    }
}

fn run_inner(
    prepared: &Prepared,
    device: &Device,
    emit: &mut dyn FnMut(Event),
    result: &mut TrainResult,
) -> Result<(), TrainError> {
    let config = &prepared.config;
    let graph = &prepared.program.checked.graph;
    let mut best: Option<training::TrialRun> = None;
    let mut total_tokens = 0u64;
    let mut total_seconds = 0.0;
    for (index, lr) in config.learning_rates().into_iter().enumerate() {
        let run = training::train_trial(graph, prepared.shape, config, lr, index, device, emit)?;
        total_tokens += run.tokens;
        total_seconds += run.train_seconds;
        result.trials.push(run.trial.clone());
        result.time_limit_reached |= run.time_limit_reached;
        let better = match (&best, run.trial.val_loss) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(current), Some(loss)) => current
                .trial
                .val_loss
                .is_none_or(|best_loss| loss < best_loss),
        };
        if better {
            best = Some(run);
        }
        if result.time_limit_reached {
            break;
        }
    }
    result.tokens_per_s = total_tokens as f64 / total_seconds.max(1e-9);
    result.tokens = total_tokens;
    let Some(best) = best else {
        result.status = Status::Diverged;
        result.error = Some("the loss became NaN or infinite at every learning rate tried".into());
        return Ok(());
    };
    let validation = training::evaluate(
        &best.model,
        &best.store,
        config,
        data::Split::Validation,
        device,
    )?;
    let test = training::evaluate(&best.model, &best.store, config, data::Split::Test, device)?;
    result.status = Status::Ok;
    result.val_loss = Some(validation.loss);
    result.accuracy = validation.accuracy;
    result.test_loss = Some(test.loss);
    result.test_accuracy = test.accuracy;
    result.steps = best.trial.steps;
    result.lr = Some(best.trial.lr);
    result.params = best.store.count();
    Ok(())
}
