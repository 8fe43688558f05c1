//! The training loop: AdamW (decoupled weight decay on matrices only), warmup then cosine or
//! WSD schedule, global gradient-norm clipping, divergence detection, evaluation, and an
//! optional learning-rate sweep that keeps the best run. Deterministic for a seed on CPU.

use crate::checkpoint::{self, CheckpointError, Directory, TrialState};
use crate::config::{Schedule, TrainConfig};
use crate::data::{Batch, Sources, Split, Stream};
use crate::events::{Event, Progress, Status, Trial};
use crate::model::LanguageModel;
use crate::params::ParamStore;
use archspec::{Graph, ModelShape};
use burn::Tensor;
use burn::tensor::{Device, Int, TensorData, activation};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A trained model and how its training went.
pub struct TrialRun {
    pub trial: Trial,
    pub trial_index: usize,
    pub model: LanguageModel,
    pub store: ParamStore,
    pub tokens: u64,
    pub train_seconds: f64,
    pub time_limit_reached: bool,
}

/// Loss and per-task accuracy on one split.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: BTreeMap<String, f64>,
}

/// Learning rate at `step` (1-based) of `total`.
pub fn learning_rate(config: &TrainConfig, base: f64, step: usize, total: usize) -> f64 {
    let optim = &config.optim;
    let warmup = optim.warmup_steps.min(total);
    if step <= warmup && warmup > 0 {
        return base * step as f64 / warmup as f64;
    }
    let min_lr = base * optim.min_lr_ratio;
    let progress = (step - warmup) as f64 / (total - warmup).max(1) as f64;
    match optim.schedule {
        Schedule::Constant => base,
        Schedule::Cosine => {
            min_lr
                + (base - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos())
        }
        Schedule::Wsd => {
            let decay_start = 1.0 - optim.decay_fraction;
            if progress <= decay_start {
                base
            } else {
                let fraction = ((progress - decay_start) / optim.decay_fraction.max(1e-9)).min(1.0);
                base + (min_lr - base) * fraction
            }
        }
    }
}

pub(crate) fn batch_tensors(
    batch: &Batch,
    device: &Device,
) -> (Tensor<2, Int>, Tensor<2, Int>, Tensor<2>) {
    let shape = [batch.batch_size, batch.seq_len];
    (
        Tensor::from_data(TensorData::new(batch.inputs.clone(), shape), device),
        Tensor::from_data(TensorData::new(batch.targets.clone(), shape), device),
        Tensor::from_data(TensorData::new(batch.mask.clone(), shape), device),
    )
}

/// Mean cross-entropy over the scored positions. Returns a one-element tensor.
pub fn masked_cross_entropy(
    logits: Tensor<3>,
    targets: Tensor<2, Int>,
    mask: Tensor<2>,
) -> Tensor<1> {
    let [b, t, _] = logits.dims();
    let log_probs = activation::log_softmax(logits, 2);
    let picked: Tensor<2> = log_probs
        .gather(2, targets.reshape([b, t, 1]))
        .reshape([b, t]);
    let scored = mask.clone().sum().clamp_min(1.0);
    -(picked * mask).sum() / scored
}

/// Where and when a run saves checkpoints, and what they must match to be resumed.
#[derive(Debug, Clone)]
pub struct Checkpointing {
    pub directory: Directory,
    pub program_hash: String,
    /// [`checkpoint::identity`] of the config.
    pub identity: serde_json::Value,
}

impl Checkpointing {
    pub fn new(root: &std::path::Path, program_hash: String, config: &TrainConfig) -> Self {
        Checkpointing {
            directory: Directory::new(root),
            program_hash,
            identity: checkpoint::identity(config),
        }
    }

    fn state(&self, trial: usize, lr: f64) -> TrialState {
        TrialState {
            format: checkpoint::FORMAT,
            program_hash: self.program_hash.clone(),
            config: self.identity.clone(),
            trial,
            lr,
            step: 0,
            tokens: 0,
            elapsed_s: 0.0,
            window_loss: 0.0,
            window_steps: 0,
            finished: None,
            time_limit_reached: false,
        }
    }
}

/// A fresh model of `shape` (its parameters drawn from the config's seed).
pub fn fresh_model(
    graph: &Graph,
    shape: ModelShape,
    config: &TrainConfig,
    device: &Device,
) -> (LanguageModel, ParamStore) {
    let mut rng = SmallRng::seed_from_u64(config.seed);
    let mut store = ParamStore::new();
    let model = LanguageModel::init(
        graph,
        shape,
        config.chunk_size,
        &mut store,
        &mut rng,
        device,
    );
    (model, store)
}

fn moment_names(store: &ParamStore, prefix: &str) -> Vec<String> {
    store
        .infos
        .iter()
        .map(|info| format!("{prefix}.{}", info.name))
        .collect()
}

/// Trains one model at learning rate `lr`, reporting progress through `emit`; with
/// `checkpoints`, resumes from the trial's newest save and saves as the config says. Once
/// `stop` is set (SIGTERM: a pod deleted or evicted, within its grace period) it ends at the
/// next step boundary with [`crate::TrainError::Stopped`], saving that step first when it has
/// `checkpoints`, so the next run resumes there rather than at the last periodic save.
#[allow(clippy::too_many_arguments)]
pub fn train_trial(
    graph: &Graph,
    shape: ModelShape,
    config: &TrainConfig,
    lr: f64,
    trial_index: usize,
    device: &Device,
    sources: &Sources,
    checkpoints: Option<&Checkpointing>,
    stop: &AtomicBool,
    emit: &mut dyn FnMut(Event),
) -> Result<TrialRun, crate::TrainError> {
    let (model, mut store) = fresh_model(graph, shape, config, device);
    let mut stream = Stream::new(&config.data, sources, Split::Train, config.seed)?;
    let optim = &config.optim;
    let mut first_moments: Vec<Tensor<2>> = store.values.iter().map(Tensor::zeros_like).collect();
    let mut second_moments: Vec<Tensor<2>> = first_moments.clone();
    let started = Instant::now();
    let mut saved = Instant::now();
    let mut tokens: u64 = 0;
    let mut window_loss = 0.0;
    let mut window_steps = 0usize;
    let mut status = Status::Ok;
    let mut steps_done = 0;
    let mut time_limit_reached = false;
    let mut elapsed_before = 0.0;
    if let Some(checkpoints) = checkpoints
        && let Some((step, dir)) = checkpoints.directory.latest(trial_index)?
    {
        let state: TrialState = checkpoint::read_json(&dir.join(checkpoint::STATE_FILE))?;
        checkpoint::check_compatible(
            &dir,
            &state,
            &checkpoints.program_hash,
            &checkpoints.identity,
        )?;
        if state.step != step || state.step > config.steps {
            return Err(CheckpointError::Format {
                path: dir,
                message: format!("state.json says step {} of {}", state.step, config.steps),
            }
            .into());
        }
        checkpoint::load_params(&dir.join(checkpoint::PARAMS_FILE), &mut store, device)?;
        let shapes: Vec<[usize; 2]> = store.infos.iter().map(|info| info.shape).collect();
        let optimizer = dir.join(checkpoint::OPTIMIZER_FILE);
        first_moments =
            checkpoint::read_tensors(&optimizer, &moment_names(&store, "m"), &shapes, device)?;
        second_moments =
            checkpoint::read_tensors(&optimizer, &moment_names(&store, "v"), &shapes, device)?;
        stream.skip_batches(step, config.batch_size);
        steps_done = step;
        tokens = state.tokens;
        window_loss = state.window_loss;
        window_steps = state.window_steps;
        elapsed_before = state.elapsed_s;
        eprintln!(
            "resuming trial {trial_index} at step {step} from {}",
            dir.display()
        );
    }
    for step in steps_done + 1..=config.steps {
        let lr_now = learning_rate(config, lr, step, config.steps);
        let batch = stream.next_batch(config.batch_size)?;
        let (inputs, targets, mask) = batch_tensors(&batch, device);
        let tracked = store.tracked();
        let logits = model.forward(&tracked, inputs, false);
        let loss = masked_cross_entropy(logits, targets, mask);
        let loss_value = f64::from(loss.clone().into_scalar::<f32>());
        if !loss_value.is_finite() {
            status = Status::Diverged;
            break;
        }
        let gradients = loss.backward();
        let grads: Vec<Tensor<2>> = tracked
            .iter()
            .zip(&store.values)
            .map(|(param, value)| param.grad(&gradients).unwrap_or_else(|| value.zeros_like()))
            .collect();
        let squared_norm: f64 = {
            let sums: Vec<Tensor<1>> = grads.iter().map(|g| g.clone().square().sum()).collect();
            f64::from(Tensor::cat(sums, 0).sum().into_scalar::<f32>())
        };
        if !squared_norm.is_finite() {
            status = Status::Diverged;
            break;
        }
        let norm = squared_norm.sqrt();
        let clip = if optim.grad_clip > 0.0 && norm > optim.grad_clip {
            optim.grad_clip / norm
        } else {
            1.0
        };
        let (beta1, beta2) = (optim.beta1, optim.beta2);
        let bias1 = 1.0 - beta1.powi(step as i32);
        let bias2 = 1.0 - beta2.powi(step as i32);
        for (index, grad) in grads.into_iter().enumerate() {
            let grad = grad * clip;
            first_moments[index] =
                first_moments[index].clone() * beta1 + grad.clone() * (1.0 - beta1);
            second_moments[index] =
                second_moments[index].clone() * beta2 + grad.square() * (1.0 - beta2);
            let update = (first_moments[index].clone() / bias1)
                / ((second_moments[index].clone() / bias2).sqrt() + optim.eps);
            let mut value = store.values[index].clone();
            if store.infos[index].decay && optim.weight_decay > 0.0 {
                value = value * (1.0 - lr_now * optim.weight_decay);
            }
            store.values[index] = value - update * lr_now;
        }
        steps_done = step;
        tokens += (batch.batch_size * batch.seq_len) as u64;
        window_loss += loss_value;
        window_steps += 1;
        let elapsed = elapsed_before + started.elapsed().as_secs_f64();
        if step % config.progress_every == 0 || step == config.steps {
            emit(Event::Progress(Progress {
                step,
                loss: window_loss / window_steps as f64,
                lr: lr_now,
                tokens_per_s: tokens as f64 / elapsed.max(1e-9),
                tokens,
                elapsed_s: elapsed,
                trial: trial_index,
            }));
            window_loss = 0.0;
            window_steps = 0;
        }
        if config.time_limit_s.is_some_and(|limit| elapsed > limit) {
            time_limit_reached = true;
            break;
        }
        // Asked to stop before the last step: save this one (whatever the schedule) and end.
        let stopping = step < config.steps && stop.load(Ordering::Relaxed);
        if let Some(checkpoints) = checkpoints
            && step < config.steps
            && (stopping || due(config, step, saved.elapsed().as_secs_f64()))
        {
            let state = TrialState {
                step,
                tokens,
                elapsed_s: elapsed,
                window_loss,
                window_steps,
                ..checkpoints.state(trial_index, lr)
            };
            save_periodic(
                checkpoints,
                config,
                &state,
                &store,
                &first_moments,
                &second_moments,
            )?;
            saved = Instant::now();
        }
        if stopping {
            return Err(crate::TrainError::Stopped {
                trial: trial_index,
                step,
                of: config.steps,
                saved: checkpoints.map(|c| c.directory.root.clone()),
            });
        }
    }
    let train_seconds = elapsed_before + started.elapsed().as_secs_f64();
    let val_loss = if status == Status::Ok {
        let evaluation = evaluate(&model, &store, config, sources, Split::Validation, device)?;
        if evaluation.loss.is_finite() {
            Some(evaluation.loss)
        } else {
            status = Status::Diverged;
            None
        }
    } else {
        None
    };
    Ok(TrialRun {
        trial: Trial {
            lr,
            status,
            val_loss,
            steps: steps_done,
        },
        trial_index,
        model,
        store,
        tokens,
        train_seconds,
        time_limit_reached,
    })
}

/// Whether a periodic checkpoint is due after `step`, `minutes` since the last one.
fn due(config: &TrainConfig, step: usize, seconds_since: f64) -> bool {
    let policy = &config.checkpoint;
    policy
        .every_steps
        .is_some_and(|every| step.is_multiple_of(every))
        || policy
            .every_minutes
            .is_some_and(|minutes| seconds_since >= minutes * 60.0)
}

fn save_periodic(
    checkpoints: &Checkpointing,
    config: &TrainConfig,
    state: &TrialState,
    store: &ParamStore,
    first_moments: &[Tensor<2>],
    second_moments: &[Tensor<2>],
) -> Result<(), CheckpointError> {
    let directory = &checkpoints.directory;
    let target = directory
        .trial(state.trial)
        .join(format!("step-{:09}", state.step));
    directory.write_atomically(&target, |dir| {
        checkpoint::write_tensors(
            &dir.join(checkpoint::PARAMS_FILE),
            &checkpoint::named(store),
        )?;
        let moments: Vec<(String, &Tensor<2>)> = moment_names(store, "m")
            .into_iter()
            .zip(first_moments)
            .chain(moment_names(store, "v").into_iter().zip(second_moments))
            .collect();
        checkpoint::write_tensors(&dir.join(checkpoint::OPTIMIZER_FILE), &moments)?;
        checkpoint::write_json(&dir.join(checkpoint::STATE_FILE), state)
    })?;
    directory.prune(state.trial, config.checkpoint.keep())
}

/// Saves a finished trial (its weights and how it ended) and drops its periodic saves.
pub fn save_finished(checkpoints: &Checkpointing, run: &TrialRun) -> Result<(), CheckpointError> {
    let directory = &checkpoints.directory;
    let trial = run.trial_index;
    let state = TrialState {
        step: run.trial.steps,
        tokens: run.tokens,
        elapsed_s: run.train_seconds,
        finished: Some(run.trial.clone()),
        time_limit_reached: run.time_limit_reached,
        ..checkpoints.state(trial, run.trial.lr)
    };
    directory.write_atomically(&directory.trial(trial).join("done"), |dir| {
        checkpoint::write_tensors(
            &dir.join(checkpoint::PARAMS_FILE),
            &checkpoint::named(&run.store),
        )?;
        checkpoint::write_json(&dir.join(checkpoint::STATE_FILE), &state)
    })?;
    directory.prune(trial, 0)
}

/// A trial a previous run finished, from its checkpoint.
pub fn load_finished(
    checkpoints: &Checkpointing,
    dir: &std::path::Path,
    graph: &Graph,
    shape: ModelShape,
    config: &TrainConfig,
    device: &Device,
) -> Result<Option<TrialRun>, CheckpointError> {
    let state: TrialState = checkpoint::read_json(&dir.join(checkpoint::STATE_FILE))?;
    checkpoint::check_compatible(
        dir,
        &state,
        &checkpoints.program_hash,
        &checkpoints.identity,
    )?;
    let Some(trial) = state.finished else {
        return Ok(None);
    };
    let (model, mut store) = fresh_model(graph, shape, config, device);
    checkpoint::load_params(&dir.join(checkpoint::PARAMS_FILE), &mut store, device)?;
    eprintln!("trial {} finished before: {}", state.trial, dir.display());
    Ok(Some(TrialRun {
        trial,
        trial_index: state.trial,
        model,
        store,
        tokens: state.tokens,
        train_seconds: state.elapsed_s,
        time_limit_reached: state.time_limit_reached,
    }))
}

/// Loss over all scored positions of `eval_batches` batches per task, and accuracy per task.
/// The stream is rebuilt from the seed, so every trial sees the same examples.
pub fn evaluate(
    model: &LanguageModel,
    store: &ParamStore,
    config: &TrainConfig,
    sources: &Sources,
    split: Split,
    device: &Device,
) -> Result<Evaluation, crate::TrainError> {
    let mut stream = Stream::new(&config.data, sources, split, config.seed)?;
    let names = crate::data::task_names(&config.data);
    let mut total_loss = 0.0;
    let mut total_scored = 0.0;
    let mut accuracy = BTreeMap::new();
    for (task, name) in names.iter().enumerate() {
        let mut correct = 0.0;
        let mut scored = 0.0;
        for _ in 0..config.eval_batches {
            let batch = stream.batch_of(task, config.batch_size)?;
            let (inputs, targets, mask) = batch_tensors(&batch, device);
            let logits = model.forward(&store.values, inputs, false);
            let batch_scored = f64::from(mask.clone().sum().into_scalar::<f32>());
            let loss = f64::from(
                masked_cross_entropy(logits.clone(), targets.clone(), mask.clone())
                    .into_scalar::<f32>(),
            );
            let [b, t, _] = logits.dims();
            let predicted: Tensor<2, Int> = logits.argmax(2).reshape([b, t]);
            let hits: Tensor<2> = predicted.equal(targets).float();
            correct += f64::from((hits * mask).sum().into_scalar::<f32>());
            scored += batch_scored;
            total_loss += loss * batch_scored;
            total_scored += batch_scored;
        }
        // Two tasks of one name (e.g. two MQAR settings) share an entry; the last wins.
        accuracy.insert(
            name.clone(),
            if scored > 0.0 { correct / scored } else { 0.0 },
        );
    }
    Ok(Evaluation {
        loss: if total_scored > 0.0 {
            total_loss / total_scored
        } else {
            f64::NAN
        },
        accuracy,
    })
}
