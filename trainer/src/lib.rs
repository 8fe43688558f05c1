//! The archlab trainer: an archspec program becomes a burn language model that is trained on
//! generated or local data and evaluated. Runs as a child process locally and as the container
//! command of trainer pods; speaks JSON lines (see [`events`]).
//!
//! Flow: [`prepare`] checks the program and config (errors here mean exit 1 before any
//! training), then [`run`] trains one model per learning rate, keeps the best by validation
//! loss, scores it on the test split and returns the result.

pub mod benchmarks;
pub mod causality;
pub mod checkpoint;
pub mod config;
pub mod corpus;
pub mod data;
pub mod first_step;
pub mod json_lines;
pub mod kernels;
pub mod long_context;
pub mod memory;
pub mod mixer;
pub mod model;
pub mod params;
pub mod schema_bounds;
pub mod shards;
pub mod tokenizer;
pub mod training;

pub use config::TrainConfig;
pub use events::{BenchmarkScore, Event, Status, TrainResult};
/// The output contract, shared with the drivers that read it.
pub use protocol::events;

use archspec::{CheckConfig, ModelShape, Valid};
use burn::tensor::Device;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
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
    #[error(transparent)]
    Benchmark(#[from] benchmarks::BenchmarkError),
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error("unknown device `{0}`; this build supports: {1}")]
    UnknownDevice(String, &'static str),
    /// Asked to stop (SIGTERM) before the run ended.
    #[error(
        "stopped by SIGTERM after step {step} of {of} (learning-rate trial {trial}){}",
        match saved {
            Some(dir) => format!("; saved under {}, where the next run resumes", dir.display()),
            None => "; no checkpoint directory, so nothing was saved".into(),
        }
    )]
    Stopped {
        trial: usize,
        step: usize,
        of: usize,
        saved: Option<std::path::PathBuf>,
    },
}

impl TrainError {
    /// Whether a full disk caused it (saving a checkpoint): the machine's failure, which says
    /// nothing of the program.
    pub fn is_storage_full(&self) -> bool {
        matches!(
            self,
            TrainError::Checkpoint(checkpoint::CheckpointError::Io { error, .. })
                if error.kind() == std::io::ErrorKind::StorageFull
        )
    }
}

/// A program and config that passed every check, ready to train.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub program: Valid,
    /// The program's source, kept with saved models.
    pub source: String,
    /// The config with `data.vocab_size` raised to the tokenizers' vocabulary.
    pub config: TrainConfig,
    pub shape: ModelShape,
    /// Every task's data, read (and tokenized) once.
    pub sources: data::Sources,
    /// Every benchmark, read and tokenized.
    pub benchmarks: Vec<benchmarks::Benchmark>,
    /// The words of the long-context passkey, when one is asked for.
    pub passkey_tokenizer: Option<benchmarks::encode::BenchTokenizer>,
}

/// Checks the program against the config's model width and sequence length.
pub fn prepare(program_source: &str, mut config: TrainConfig) -> Result<Prepared, TrainError> {
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
    // Unreadable data is a config error too: find it before training.
    let sources = data::Sources::open(&config.data)?;
    if let Some(vocab) = sources.tokenizer_vocab() {
        config.data.vocab_size = config.data.vocab_size.max(vocab);
    }
    for split in [
        data::Split::Train,
        data::Split::Validation,
        data::Split::Test,
    ] {
        data::Stream::new(&config.data, &sources, split, config.seed)?;
    }
    let benchmarks = benchmarks::load_all(&config)?;
    let passkey_tokenizer = match config
        .long_context
        .as_ref()
        .and_then(|l| l.passkey.as_ref())
    {
        Some(passkey) => Some(benchmarks::tokenizer(
            &config,
            passkey.tokenizer.as_deref(),
        )?),
        None => None,
    };
    let shape = memory::model_shape(&config);
    Ok(Prepared {
        program,
        source: program_source.to_string(),
        config,
        shape,
        sources,
        benchmarks,
        passkey_tokenizer,
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
    run_with_checkpoints(prepared, device, None, &AtomicBool::new(false), emit)
}

/// [`run`], saving checkpoints under `checkpoint_dir` (see [`checkpoint`]) and resuming from
/// the ones found there; the final model is written there too. Setting `stop` ends the run
/// at the next training step with an `error` result naming [`TrainError::Stopped`], after
/// saving that step under `checkpoint_dir`.
pub fn run_with_checkpoints(
    prepared: &Prepared,
    device: &Device,
    checkpoint_dir: Option<&Path>,
    stop: &AtomicBool,
    emit: &mut dyn FnMut(Event),
) -> TrainResult {
    let started = Instant::now();
    let mut result = empty_result(prepared);
    let checkpoints = checkpoint_dir
        .map(|dir| training::Checkpointing::new(dir, prepared.program.hash(), &prepared.config));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_inner(
            prepared,
            device,
            checkpoints.as_ref(),
            stop,
            emit,
            &mut result,
        )
    }));
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            result.status = Status::Error;
            result.storage_full = error.is_storage_full();
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
        benchmarks: BTreeMap::new(),
        long_context: None,
        held_out: prepared.sources.held_out(&prepared.config.data),
        error: None,
        storage_full: false,
    }
}

fn run_inner(
    prepared: &Prepared,
    device: &Device,
    checkpoints: Option<&training::Checkpointing>,
    stop: &AtomicBool,
    emit: &mut dyn FnMut(Event),
    result: &mut TrainResult,
) -> Result<(), TrainError> {
    let config = &prepared.config;
    let graph = &prepared.program.checked.graph;
    let sources = &prepared.sources;
    if let Some(checkpoints) = checkpoints {
        let card = checkpoints.directory.root.join(checkpoint::MODEL_JSON);
        if card.is_file() {
            let saved: checkpoint::ModelCard = checkpoint::read_json(&card)?;
            checkpoint::check_model_card(
                &card,
                &saved,
                &checkpoints.program_hash,
                &checkpoints.identity,
            )?;
        }
    }
    let mut best: Option<training::TrialRun> = None;
    let mut total_tokens = 0u64;
    let mut total_seconds = 0.0;
    for (index, lr) in config.learning_rates().into_iter().enumerate() {
        let finished = match checkpoints {
            Some(checkpoints) => match checkpoints.directory.finished(index) {
                Some(dir) => training::load_finished(
                    checkpoints,
                    &dir,
                    graph,
                    prepared.shape,
                    config,
                    device,
                )?,
                None => None,
            },
            None => None,
        };
        let run = match finished {
            Some(run) => run,
            None => {
                let run = training::train_trial(
                    graph,
                    prepared.shape,
                    config,
                    lr,
                    index,
                    device,
                    sources,
                    checkpoints,
                    stop,
                    emit,
                )?;
                if let Some(checkpoints) = checkpoints {
                    training::save_finished(checkpoints, &run)?;
                }
                run
            }
        };
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
        sources,
        data::Split::Validation,
        device,
    )?;
    let test = training::evaluate(
        &best.model,
        &best.store,
        config,
        sources,
        data::Split::Test,
        device,
    )?;
    result.status = Status::Ok;
    result.val_loss = Some(validation.loss);
    result.accuracy = validation.accuracy;
    result.test_loss = Some(test.loss);
    result.test_accuracy = test.accuracy;
    result.steps = best.trial.steps;
    result.lr = Some(best.trial.lr);
    result.params = best.store.count();
    result.benchmarks = score_benchmarks(prepared, &best.model, &best.store, device);
    result.long_context = score_long_context(prepared, &best.model, &best.store, device);
    if let Some(checkpoints) = checkpoints {
        save_model(prepared, &checkpoints.directory.root, &best, result)?;
    }
    Ok(())
}

/// The long-context scores the config asks for (`long_context`), under `model`.
pub fn score_long_context(
    prepared: &Prepared,
    model: &model::LanguageModel,
    store: &params::ParamStore,
    device: &Device,
) -> Option<events::LongContextScores> {
    let settings = prepared.config.long_context.as_ref()?;
    let evaluation = long_context::LongContext {
        config: &prepared.config,
        settings,
        sources: &prepared.sources,
        program: &prepared.source,
        tokenizer: prepared.passkey_tokenizer.as_ref(),
    };
    Some(evaluation.evaluate(model, store, device))
}

/// Every benchmark's scores under `model`.
pub fn score_benchmarks(
    prepared: &Prepared,
    model: &model::LanguageModel,
    store: &params::ParamStore,
    device: &Device,
) -> BTreeMap<String, events::BenchmarkScore> {
    prepared
        .benchmarks
        .iter()
        .map(|benchmark| {
            let scores = benchmarks::score::log_likelihoods(
                model,
                store,
                benchmark,
                prepared.config.data.seq_len,
                prepared.config.batch_size,
                device,
            );
            (
                benchmark.name.clone(),
                benchmarks::score::metrics(benchmark, &scores),
            )
        })
        .collect()
}

/// Writes the final model: `model.safetensors` and `model.json` (written last, so a
/// `model.json` always describes whole weights).
fn save_model(
    prepared: &Prepared,
    root: &Path,
    best: &training::TrialRun,
    result: &TrainResult,
) -> Result<(), checkpoint::CheckpointError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| checkpoint::CheckpointError::Io { path, error }
    };
    std::fs::create_dir_all(root).map_err(io(root))?;
    let weights = root.join(checkpoint::MODEL_FILE);
    let partial = root.join(format!("{}.partial", checkpoint::MODEL_FILE));
    checkpoint::write_tensors(&partial, &checkpoint::named(&best.store))?;
    std::fs::rename(&partial, &weights).map_err(io(&weights))?;
    let card = checkpoint::ModelCard {
        format: checkpoint::FORMAT,
        program_name: prepared.program.program.name.name.clone(),
        program_hash: prepared.program.hash(),
        program: prepared.source.clone(),
        config: prepared.config.clone(),
        tokenizers: prepared.sources.tokenizers().to_vec(),
        params: result.params,
        steps: result.steps,
        lr: result.lr,
        val_loss: result.val_loss,
        test_loss: result.test_loss,
    };
    let json = root.join(checkpoint::MODEL_JSON);
    let partial = root.join(format!("{}.partial", checkpoint::MODEL_JSON));
    checkpoint::write_json(&partial, &card)?;
    std::fs::rename(&partial, &json).map_err(io(&json))?;
    // The trials' saves served resuming; the final model is all that is kept.
    let trials = root.join("trials");
    match std::fs::remove_dir_all(&trials) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(io(&trials)(error)),
        _ => Ok(()),
    }
}
