//! Checkpoints: weights (and AdamW's moments) as safetensors beside a JSON file of the state,
//! so a trainer killed or evicted and started again with the same program and config resumes
//! at the saved step, and a finished model can be scored again (`archlab eval`).
//!
//! A checkpoint directory (one per Experiment attempt) holds:
//! - `trials/<k>/step-<n>/`: a periodic save of learning-rate trial `k` after step `n`
//!   (`params.safetensors`, `optimizer.safetensors`, `state.json`); the newest `keep` stay;
//! - `trials/<k>/done/`: trial `k` finished (`params.safetensors`, `state.json`);
//! - `model.safetensors` and `model.json`: the final model, its program, config, tokenizer and
//!   result; once they are written, `trials/` is removed.
//!
//! Every save is written into a temporary directory and renamed into place, so a kill in the
//! middle leaves the previous checkpoint whole.

use crate::config::TrainConfig;
use crate::params::ParamStore;
use burn::Tensor;
use burn::tensor::{Device, TensorData};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::path::{Path, PathBuf};

/// Bumped when the layout changes; other versions are refused.
pub const FORMAT: u32 = 1;
pub const PARAMS_FILE: &str = "params.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "state.json";
pub const MODEL_FILE: &str = "model.safetensors";
pub const MODEL_JSON: &str = "model.json";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        /// Printed in the message, so not a `source` too (`{:#}` would print it twice).
        error: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Mismatch { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        error: source,
    }
}

/// Where a trial stands, saved with its weights.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrialState {
    pub format: u32,
    pub program_hash: String,
    /// The config that matters for resuming (see [`identity`]).
    pub config: serde_json::Value,
    pub trial: usize,
    pub lr: f64,
    /// Steps done.
    pub step: usize,
    pub tokens: u64,
    /// Training seconds before this save (a time limit counts them).
    pub elapsed_s: f64,
    /// The progress window not yet reported.
    pub window_loss: f64,
    pub window_steps: usize,
    /// For a finished trial: how it ended.
    #[serde(default)]
    pub finished: Option<crate::events::Trial>,
    #[serde(default)]
    pub time_limit_reached: bool,
}

/// The final model's description, `model.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelCard {
    pub format: u32,
    pub program_name: String,
    pub program_hash: String,
    /// The archspec source, so the checkpoint alone rebuilds the model.
    pub program: String,
    pub config: TrainConfig,
    /// Tokenizers of the corpus tasks: path and FNV-1a of the file.
    pub tokenizers: Vec<(PathBuf, String)>,
    pub params: u64,
    pub steps: usize,
    pub lr: Option<f64>,
    pub val_loss: Option<f64>,
    pub test_loss: Option<f64>,
}

/// The parts of a config a resumed run must share with the one that saved: everything but
/// the checkpoint policy and the time limit (which may change between attempts).
pub fn identity(config: &TrainConfig) -> serde_json::Value {
    let mut value = serde_json::to_value(config).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.remove("checkpoint");
        object.remove("time_limit_s");
    }
    value
}

/// Refuses a state saved for another program or config, naming the first field that differs.
pub fn check_compatible(
    path: &Path,
    state: &TrialState,
    program_hash: &str,
    config: &serde_json::Value,
) -> Result<(), CheckpointError> {
    check_saved(
        path,
        (state.format, &state.program_hash, &state.config),
        program_hash,
        config,
    )
}

/// Refuses a directory whose final model is of another program or config: a run must not
/// overwrite it.
pub fn check_model_card(
    path: &Path,
    card: &ModelCard,
    program_hash: &str,
    config: &serde_json::Value,
) -> Result<(), CheckpointError> {
    check_saved(
        path,
        (card.format, &card.program_hash, &identity(&card.config)),
        program_hash,
        config,
    )
}

fn check_saved(
    path: &Path,
    (format, saved_hash, saved_config): (u32, &str, &serde_json::Value),
    program_hash: &str,
    config: &serde_json::Value,
) -> Result<(), CheckpointError> {
    let fail = |message: String| {
        Err(CheckpointError::Mismatch {
            path: path.to_path_buf(),
            message,
        })
    };
    if format != FORMAT {
        return fail(format!(
            "checkpoint format {format} (this trainer reads {FORMAT})"
        ));
    }
    if saved_hash != program_hash {
        return fail(format!(
            "saved for program {saved_hash} but this program is {program_hash}: a checkpoint of another program"
        ));
    }
    if let Some(field) = first_difference(saved_config, config, String::new()) {
        return fail(format!(
            "saved with another config: `{field}` differs; start with an empty checkpoint directory or the config it was saved with"
        ));
    }
    Ok(())
}

fn first_difference(
    saved: &serde_json::Value,
    now: &serde_json::Value,
    at: String,
) -> Option<String> {
    match (saved, now) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|key| {
                let path = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => first_difference(x, y, path),
                    _ => Some(path),
                }
            })
        }
        _ if saved == now => None,
        _ => Some(if at.is_empty() { "(config)".into() } else { at }),
    }
}

/// Writes `tensors` (name, value) as one safetensors file.
pub fn write_tensors(path: &Path, tensors: &[(String, &Tensor<2>)]) -> Result<(), CheckpointError> {
    let mut buffers = Vec::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        let data = tensor.to_data();
        let values: Vec<f32> = data.try_to_vec().map_err(|error| CheckpointError::Format {
            path: path.to_path_buf(),
            message: format!("{name}: {error:?}"),
        })?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        buffers.push((name.clone(), tensor.dims().to_vec(), bytes));
    }
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
                .map_err(|error| CheckpointError::Format {
                    path: path.to_path_buf(),
                    message: error.to_string(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize_to_file(views, None, path).map_err(|error| match error {
        // A write that failed (a full disk) is the storage's error, not the format's.
        safetensors::SafeTensorError::IoError(error) => CheckpointError::Io {
            path: path.to_path_buf(),
            error,
        },
        other => CheckpointError::Format {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    })
}

/// Reads the tensors `names` of the shapes `shapes` from a safetensors file.
pub fn read_tensors(
    path: &Path,
    names: &[String],
    shapes: &[[usize; 2]],
    device: &Device,
) -> Result<Vec<Tensor<2>>, CheckpointError> {
    let format = |message: String| CheckpointError::Format {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(io(path))?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|error| format(format!("not a safetensors file: {error}")))?;
    names
        .iter()
        .zip(shapes)
        .map(|(name, shape)| {
            let view = file.tensor(name).map_err(|_| CheckpointError::Mismatch {
                path: path.to_path_buf(),
                message: format!("no tensor `{name}`: a checkpoint of another model"),
            })?;
            if view.dtype() != Dtype::F32 || view.shape() != shape.as_slice() {
                return Err(CheckpointError::Mismatch {
                    path: path.to_path_buf(),
                    message: format!(
                        "tensor `{name}` is {:?} {:?}, this model's is F32 {shape:?}",
                        view.dtype(),
                        view.shape()
                    ),
                });
            }
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            Ok(Tensor::from_data(TensorData::new(values, *shape), device))
        })
        .collect()
}

/// The parameters of `store` by name.
pub fn named(store: &ParamStore) -> Vec<(String, &Tensor<2>)> {
    store
        .infos
        .iter()
        .zip(&store.values)
        .map(|(info, value)| (info.name.clone(), value))
        .collect()
}

/// Replaces the store's values with the saved ones.
pub fn load_params(
    path: &Path,
    store: &mut ParamStore,
    device: &Device,
) -> Result<(), CheckpointError> {
    let names: Vec<String> = store.infos.iter().map(|info| info.name.clone()).collect();
    let shapes: Vec<[usize; 2]> = store.infos.iter().map(|info| info.shape).collect();
    store.values = read_tensors(path, &names, &shapes, device)?;
    Ok(())
}

/// The checkpoint directory of one run.
#[derive(Debug, Clone)]
pub struct Directory {
    pub root: PathBuf,
}

impl Directory {
    pub fn new(root: &Path) -> Directory {
        Directory {
            root: root.to_path_buf(),
        }
    }

    pub fn trial(&self, trial: usize) -> PathBuf {
        self.root.join("trials").join(trial.to_string())
    }

    /// The finished trial's directory, when it is there.
    pub fn finished(&self, trial: usize) -> Option<PathBuf> {
        let dir = self.trial(trial).join("done");
        dir.join(STATE_FILE).is_file().then_some(dir)
    }

    /// The newest periodic save of a trial: (step, directory).
    pub fn latest(&self, trial: usize) -> Result<Option<(usize, PathBuf)>, CheckpointError> {
        Ok(self.periodic(trial)?.pop())
    }

    /// Periodic saves of a trial, oldest first.
    fn periodic(&self, trial: usize) -> Result<Vec<(usize, PathBuf)>, CheckpointError> {
        let dir = self.trial(trial);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(io(&dir)(error)),
        };
        let mut saves = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io(&dir))?;
            let name = entry.file_name();
            let Some(step) = name
                .to_str()
                .and_then(|n| n.strip_prefix("step-"))
                .and_then(|n| n.parse::<usize>().ok())
            else {
                continue;
            };
            if entry.path().join(STATE_FILE).is_file() {
                saves.push((step, entry.path()));
            }
        }
        saves.sort();
        Ok(saves)
    }

    /// Writes a directory at `target` through `write(temporary)`, then renames it into place.
    pub fn write_atomically(
        &self,
        target: &Path,
        write: impl FnOnce(&Path) -> Result<(), CheckpointError>,
    ) -> Result<(), CheckpointError> {
        let parent = target.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temporary = parent.join(format!(".{name}.partial"));
        if temporary.exists() {
            std::fs::remove_dir_all(&temporary).map_err(io(&temporary))?;
        }
        std::fs::create_dir_all(&temporary).map_err(io(&temporary))?;
        write(&temporary)?;
        if target.exists() {
            std::fs::remove_dir_all(target).map_err(io(target))?;
        }
        std::fs::rename(&temporary, target).map_err(io(target))
    }

    /// Deletes all but the newest `keep` periodic saves of a trial (all of them when `keep` is
    /// 0: the trial finished).
    pub fn prune(&self, trial: usize, keep: usize) -> Result<(), CheckpointError> {
        let saves = self.periodic(trial)?;
        let excess = saves.len().saturating_sub(keep);
        for (_, dir) in &saves[..excess] {
            std::fs::remove_dir_all(dir).map_err(io(dir))?;
        }
        Ok(())
    }
}

/// Writes a JSON file.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), CheckpointError> {
    let text = serde_json::to_string_pretty(value).map_err(|error| CheckpointError::Format {
        path: path.to_path_buf(),
        message: error.to_string(),
    })?;
    std::fs::write(path, text).map_err(io(path))
}

/// Reads a JSON file of a bounded size.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CheckpointError> {
    const LIMIT: u64 = 16 << 20;
    let size = std::fs::metadata(path).map_err(io(path))?.len();
    if size > LIMIT {
        return Err(CheckpointError::Format {
            path: path.to_path_buf(),
            message: format!("{size} bytes is over the limit of {LIMIT}"),
        });
    }
    let text = std::fs::read(path).map_err(io(path))?;
    serde_json::from_slice(&text).map_err(|error| CheckpointError::Format {
        path: path.to_path_buf(),
        message: error.to_string(),
    })
}
