//! The training config: one YAML or JSON document, the same struct campaign stages embed.
//! Unknown fields are errors that name the field; `validate` checks every value's range.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Sizes a config may have: the CRDs embed it (every list and string there needs a bound the
/// API server can estimate CEL costs from), and `validate` refuses the same.
pub mod limits {
    /// Tasks of one config.
    pub const TASKS: usize = 16;
    /// Files of one text task.
    pub const TEXT_PATHS: usize = 256;
    /// A file path, in characters.
    pub const PATH: usize = 4096;
    /// Learning rates of one sweep.
    pub const LR_SWEEP: usize = 16;
    /// A JSONL field name or a token's text.
    pub const FIELD: usize = 256;
    /// Benchmarks of one config.
    pub const BENCHMARKS: usize = 16;
    /// A benchmark's name.
    pub const BENCHMARK_NAME: usize = 63;
    /// Lengths, multiples or depths of the long-context evaluation.
    pub const LONG_CONTEXT_LENGTHS: usize = 8;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub model: ModelConfig,
    pub data: DataConfig,
    #[serde(default)]
    pub optim: OptimConfig,
    /// Optimisation steps per learning rate tried.
    #[schemars(range(min = 1, max = 1_000_000_000))]
    pub steps: usize,
    #[schemars(range(min = 1, max = 65_536))]
    pub batch_size: usize,
    #[serde(default)]
    pub seed: u64,
    /// Batches per task for validation and test metrics.
    #[serde(default = "default_eval_batches")]
    #[schemars(range(min = 1, max = 100_000))]
    pub eval_batches: usize,
    /// A progress line every this many steps.
    #[serde(default = "default_progress_every")]
    #[schemars(range(min = 1, max = 1_000_000_000))]
    pub progress_every: usize,
    /// Stop training (and evaluate) after this many seconds of wall time.
    #[serde(default)]
    #[schemars(range(min = 0.001, max = 31_536_000.0))]
    pub time_limit_s: Option<f64>,
    /// Chunk size of the chunked recurrent kernels.
    #[serde(default = "default_chunk_size")]
    #[schemars(range(min = 1, max = 4096))]
    pub chunk_size: usize,
    /// Periodic checkpoints, written where `archlab train --checkpoint-dir` says (final
    /// weights are written there whenever it is given).
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    /// Zero-shot benchmarks scored on the final model, as lm-evaluation-harness scores them
    /// (`crate::benchmarks`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::BENCHMARKS))]
    pub benchmarks: Vec<BenchmarkConfig>,
    /// Long-context evaluation of the final model (`crate::long_context`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_context: Option<LongContextConfig>,
}

/// Length extrapolation and passkey retrieval on the language tasks' held-out data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LongContextConfig {
    /// Validation loss at these multiples of `data.seq_len` (default 2 and 4).
    #[serde(default = "crate::long_context::default_extrapolation")]
    #[schemars(length(max = limits::LONG_CONTEXT_LENGTHS))]
    pub extrapolation: Vec<usize>,
    /// Passkey retrieval; absent, none.
    #[serde(default)]
    pub passkey: Option<PasskeyConfig>,
}

/// A five-digit key hidden in held-out text, asked for at the end; `acc` is greedy recall.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyConfig {
    /// Context lengths in tokens (default `seq_len`, 2× and 4×).
    #[serde(default)]
    #[schemars(length(max = limits::LONG_CONTEXT_LENGTHS))]
    pub lengths: Vec<usize>,
    /// Where the key sits in the text, 0 (start) to 1 (end); default 0, 0.25, 0.5, 0.75, 1.
    #[serde(default)]
    #[schemars(length(max = limits::LONG_CONTEXT_LENGTHS))]
    pub depths: Vec<f64>,
    /// Items per length and depth (default 10).
    #[serde(default = "default_passkey_items")]
    pub items: usize,
    /// The tokenizer of the key's sentence (default: the benchmarks'; see `BenchmarkConfig`).
    #[serde(default)]
    #[schemars(length(max = limits::PATH))]
    pub tokenizer: Option<PathBuf>,
}

fn default_passkey_items() -> usize {
    10
}

/// One benchmark: a task layout and the local file of its rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkConfig {
    /// The task's layout, named as lm-evaluation-harness names the task: `piqa`,
    /// `hellaswag`, `arc_easy`, `arc_challenge`, `winogrande`, `lambada_openai`, or
    /// `multiple_choice` (rows of `context`, `choices` and `label`).
    #[schemars(length(max = limits::BENCHMARK_NAME))]
    pub task: String,
    /// A JSONL (one row a line) or Parquet file in the layout the dataset is published in.
    #[schemars(length(max = limits::PATH))]
    pub path: PathBuf,
    /// Score only the first this many documents (the harness's `--limit`).
    #[serde(default)]
    pub limit: Option<usize>,
    /// The key of its scores in the result (default: `task`); two files of one layout need two.
    #[serde(default)]
    #[schemars(length(max = limits::BENCHMARK_NAME))]
    pub name: Option<String>,
    /// The `tokenizer.json` that turns its text into tokens (default: the corpus task's;
    /// a byte-level model reads bytes).
    #[serde(default)]
    #[schemars(length(max = limits::PATH))]
    pub tokenizer: Option<PathBuf>,
}

impl BenchmarkConfig {
    /// The key of its scores.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.task)
    }
}

/// When to save the training state, so a killed trainer resumes where it was.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Save every this many steps.
    #[serde(default)]
    #[schemars(range(min = 1, max = 1_000_000_000))]
    pub every_steps: Option<usize>,
    /// Save when this many minutes have passed since the last save.
    #[serde(default)]
    #[schemars(range(min = 0.001, max = 1_000_000.0))]
    pub every_minutes: Option<f64>,
    /// Periodic checkpoints kept (the newest); at least 1, default 2.
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    pub keep: Option<usize>,
}

impl CheckpointConfig {
    pub fn keep(&self) -> usize {
        self.keep.unwrap_or(2)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    #[schemars(range(min = 1, max = 8192))]
    pub d_model: usize,
    #[schemars(range(min = 1, max = 256))]
    pub n_layers: usize,
    /// Hidden width of the SwiGLU MLP; default 2·d_model.
    #[serde(default)]
    #[schemars(range(min = 1, max = 32_768))]
    pub d_ff: Option<usize>,
    /// The output head is the input embedding's transpose (GPT-2's choice), which saves
    /// `vocab × d_model` parameters.
    #[serde(default)]
    pub tie_embeddings: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Token vocabulary of the synthetic tasks and of token shards (text tasks need 256:
    /// bytes; a corpus task raises it to its tokenizer's, and a larger value pads, as
    /// nanoGPT's 50304 does for GPT-2's 50257).
    #[serde(default = "default_vocab")]
    #[schemars(range(min = 4, max = 1_048_576))]
    pub vocab_size: usize,
    #[schemars(range(min = 1, max = 65_536))]
    pub seq_len: usize,
    #[schemars(length(max = limits::TASKS))]
    pub tasks: Vec<TaskConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TaskConfig {
    /// Multi-query associative recall (Zoology's `multiquery_ar`).
    Mqar {
        #[serde(default = "default_weight")]
        weight: f64,
        num_kv_pairs: usize,
        #[serde(default = "default_power_a")]
        power_a: f64,
        #[serde(default)]
        variant: MqarVariant,
    },
    SelectiveCopy {
        #[serde(default = "default_weight")]
        weight: f64,
        num_tokens: usize,
    },
    Induction {
        #[serde(default = "default_weight")]
        weight: f64,
        prefix_len: usize,
    },
    /// Byte-level language modelling on local text files.
    Text {
        #[serde(default = "default_weight")]
        weight: f64,
        paths: Vec<PathBuf>,
    },
    /// Language modelling on pre-tokenized shards (`crate::shards`); `data.vocab_size` is the
    /// tokenizer's.
    Tokens {
        #[serde(default = "default_weight")]
        weight: f64,
        /// Shards trained on.
        train: Vec<PathBuf>,
        /// Held-out shards, never trained on: the first half of each validates, the second
        /// half tests.
        validation: Vec<PathBuf>,
        /// The token width of headerless shards (llm.c's header says its own).
        #[serde(default)]
        dtype: Option<crate::shards::TokenWidth>,
    },
    /// Language modelling on text files (plain text, one document a file; JSONL, one a line;
    /// Parquet, one a row), tokenized when the trainer starts (`crate::corpus`).
    Corpus {
        #[serde(default = "default_weight")]
        weight: f64,
        /// A Hugging Face `tokenizer.json`.
        tokenizer: PathBuf,
        /// Files trained on.
        train: Vec<PathBuf>,
        /// Held-out files, never trained on: the first half of each shard of their tokens
        /// validates, the second half tests.
        validation: Vec<PathBuf>,
        /// The JSONL field or Parquet column holding a document's text.
        #[serde(default = "default_text_field")]
        text_field: String,
        /// The end-of-text token put before each document (default: the tokenizer's
        /// `<|endoftext|>`, `<|end_of_text|>`, `</s>` or `<eos>`).
        #[serde(default)]
        eot: Option<String>,
    },
}

impl TaskConfig {
    pub fn name(&self) -> &'static str {
        match self {
            TaskConfig::Mqar { .. } => "mqar",
            TaskConfig::SelectiveCopy { .. } => "selective_copy",
            TaskConfig::Induction { .. } => "induction",
            TaskConfig::Text { .. } => "text",
            TaskConfig::Tokens { .. } => "tokens",
            TaskConfig::Corpus { .. } => "corpus",
        }
    }

    pub fn weight(&self) -> f64 {
        match self {
            TaskConfig::Mqar { weight, .. }
            | TaskConfig::SelectiveCopy { weight, .. }
            | TaskConfig::Induction { weight, .. }
            | TaskConfig::Text { weight, .. }
            | TaskConfig::Tokens { weight, .. }
            | TaskConfig::Corpus { weight, .. } => *weight,
        }
    }
}

/// Written by hand: Kubernetes' structural schemas cannot express an internally tagged union
/// (the derived `oneOf` gives `kind` a different enum in each branch), so the CRD gets one
/// object with `kind` and every task's fields; serde still refuses fields of another kind.
impl schemars::JsonSchema for TaskConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TaskConfig".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "One synthetic, text, token-shard or corpus task; `kind` says which, and which fields apply.",
            "type": "object",
            "required": ["kind"],
            "properties": {
                "kind": {"type": "string", "enum": ["mqar", "selective_copy", "induction", "text", "tokens", "corpus"]},
                "weight": {"type": "number", "description": "Share of the batches (all kinds)."},
                "num_kv_pairs": {"type": "integer", "minimum": 0, "description": "mqar: key-value pairs per sequence."},
                "power_a": {"type": "number", "description": "mqar: power-law exponent of the query gaps."},
                "variant": {"type": "string", "enum": ["zoology", "answered"], "description": "mqar: the sequence layout."},
                "num_tokens": {"type": "integer", "minimum": 0, "description": "selective_copy: tokens to copy."},
                "prefix_len": {"type": "integer", "minimum": 0, "description": "induction: length of the repeated prefix."},
                "paths": {"type": "array", "maxItems": limits::TEXT_PATHS, "items": {"type": "string", "maxLength": limits::PATH}, "description": "text: local files."},
                "train": {"type": "array", "maxItems": limits::TEXT_PATHS, "items": {"type": "string", "maxLength": limits::PATH}, "description": "tokens, corpus: shards or text files trained on."},
                "validation": {"type": "array", "maxItems": limits::TEXT_PATHS, "items": {"type": "string", "maxLength": limits::PATH}, "description": "tokens, corpus: held-out shards or files (first half validates, second half tests)."},
                "dtype": {"type": "string", "enum": ["uint16", "uint32"], "description": "tokens: the width of headerless shards."},
                "tokenizer": {"type": "string", "maxLength": limits::PATH, "description": "corpus: a Hugging Face tokenizer.json."},
                "text_field": {"type": "string", "maxLength": limits::FIELD, "description": "corpus: the JSONL field or Parquet column holding the text (default `text`)."},
                "eot": {"type": "string", "maxLength": limits::FIELD, "description": "corpus: the end-of-text token put before each document."}
            }
        })
    }
}

/// How an MQAR sequence is laid out.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MqarVariant {
    /// Zoology's `multiquery_ar`: distinct keys and values, each key queried alone (its value
    /// is only the target), every other position a uniform random token.
    #[default]
    Zoology,
    /// An easier layout: each query is followed by its value and unused positions are 0, so
    /// there are no distractors (archlab 0.1's generator; recurrent mixers score higher on it).
    Answered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Linear warmup, then cosine decay to `min_lr_ratio · lr`.
    Cosine,
    /// Warmup, stable, decay: constant after warmup, linear decay over the last `decay_fraction`.
    Wsd,
    Constant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    /// Peak learning rate (above 0, at most 10).
    #[serde(default = "default_lr")]
    #[schemars(range(min = 0.0, max = 10.0))]
    pub lr: f64,
    /// When non-empty, train once per learning rate and keep the best by validation loss.
    #[serde(default)]
    #[schemars(length(max = limits::LR_SWEEP), inner(range(min = 0.0, max = 10.0)))]
    pub lr_sweep: Vec<f64>,
    #[serde(default = "default_schedule")]
    pub schedule: Schedule,
    #[serde(default)]
    #[schemars(range(max = 1_000_000_000))]
    pub warmup_steps: usize,
    #[serde(default = "default_min_lr_ratio")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_lr_ratio: f64,
    /// Fraction of steps in the decay phase of `wsd`.
    #[serde(default = "default_decay_fraction")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub decay_fraction: f64,
    #[serde(default = "default_weight_decay")]
    #[schemars(range(min = 0.0, max = 1000.0))]
    pub weight_decay: f64,
    /// Adam's moment decays, below 1.
    #[serde(default = "default_beta1")]
    #[schemars(range(min = 0.0, max = 0.999_999))]
    pub beta1: f64,
    #[serde(default = "default_beta2")]
    #[schemars(range(min = 0.0, max = 0.999_999))]
    pub beta2: f64,
    #[serde(default = "default_eps")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub eps: f64,
    /// Clip the global gradient norm to this (0 disables).
    #[serde(default = "default_grad_clip")]
    #[schemars(range(min = 0.0, max = 1_000_000.0))]
    pub grad_clip: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            lr: default_lr(),
            lr_sweep: Vec::new(),
            schedule: default_schedule(),
            warmup_steps: 0,
            min_lr_ratio: default_min_lr_ratio(),
            decay_fraction: default_decay_fraction(),
            weight_decay: default_weight_decay(),
            beta1: default_beta1(),
            beta2: default_beta2(),
            eps: default_eps(),
            grad_clip: default_grad_clip(),
        }
    }
}

fn default_eval_batches() -> usize {
    4
}
fn default_progress_every() -> usize {
    10
}
fn default_chunk_size() -> usize {
    16
}
fn default_text_field() -> String {
    "text".into()
}
fn default_vocab() -> usize {
    64
}
fn default_weight() -> f64 {
    1.0
}
fn default_power_a() -> f64 {
    0.01
}
fn default_lr() -> f64 {
    3e-3
}
fn default_schedule() -> Schedule {
    Schedule::Cosine
}
fn default_min_lr_ratio() -> f64 {
    0.1
}
fn default_decay_fraction() -> f64 {
    0.2
}
fn default_weight_decay() -> f64 {
    0.1
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.98
}
fn default_eps() -> f64 {
    1e-8
}
fn default_grad_clip() -> f64 {
    1.0
}

/// A non-empty list of at most `limits::TEXT_PATHS` paths, each at most `limits::PATH` long.
fn check_paths(field: &str, paths: &[PathBuf]) -> Result<(), ConfigError> {
    let fail = |message: String| {
        Err(ConfigError {
            field: field.to_string(),
            message,
        })
    };
    if paths.is_empty() {
        return fail("needs at least one file".into());
    }
    if paths.len() > limits::TEXT_PATHS {
        return fail(format!(
            "at most {} files, found {}",
            limits::TEXT_PATHS,
            paths.len()
        ));
    }
    if let Some(path) = paths.iter().find(|p| p.as_os_str().len() > limits::PATH) {
        return fail(format!(
            "a path is at most {} characters, found {}",
            limits::PATH,
            path.as_os_str().len()
        ));
    }
    Ok(())
}

/// Training and validation paths, each list well formed and no path in both.
fn check_held_out(
    field: &dyn Fn(&str) -> String,
    train: &[PathBuf],
    validation: &[PathBuf],
    noun: &str,
) -> Result<(), ConfigError> {
    check_paths(&field("train"), train)?;
    check_paths(&field("validation"), validation)?;
    match train.iter().find(|path| validation.contains(path)) {
        Some(shared) => Err(ConfigError {
            field: field("validation"),
            message: format!(
                "{} is also a training {noun}: validation must be held out",
                shared.display()
            ),
        }),
        None => Ok(()),
    }
}

/// A config value out of range, with the field's path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("config field `{field}`: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl TrainConfig {
    /// Parses YAML (JSON is YAML too); unknown fields and wrong types name the field and line.
    pub fn from_yaml(text: &str) -> Result<TrainConfig, String> {
        let config: TrainConfig = serde_yaml::from_str(text).map_err(|error| error.to_string())?;
        config.validate().map_err(|error| error.to_string())?;
        Ok(config)
    }

    pub fn d_ff(&self) -> usize {
        self.model.d_ff.unwrap_or(2 * self.model.d_model)
    }

    /// The model's vocabulary: bytes when any task is text, else the synthetic vocabulary.
    pub fn vocab_size(&self) -> usize {
        if self
            .data
            .tasks
            .iter()
            .any(|task| matches!(task, TaskConfig::Text { .. }))
        {
            256.max(self.data.vocab_size)
        } else {
            self.data.vocab_size
        }
    }

    /// The learning rates to train with, in order.
    pub fn learning_rates(&self) -> Vec<f64> {
        if self.optim.lr_sweep.is_empty() {
            vec![self.optim.lr]
        } else {
            self.optim.lr_sweep.clone()
        }
    }

    /// Checks every value's range; the error names the field.
    /// The bounds declared on the config's types, checked as the API server checks a CRD's.
    fn check_bounds(&self) -> Result<(), ConfigError> {
        let schema = schemars::generate::SchemaSettings::default()
            .with(|settings| settings.inline_subschemas = true)
            .into_generator()
            .into_root_schema_for::<TrainConfig>();
        // JSON has no infinity or NaN (it writes them as null): look for them first.
        let written = serde_yaml::to_value(self).map_err(|error| ConfigError {
            field: String::new(),
            message: format!("cannot be written out: {error}"),
        })?;
        if let Some(field) = crate::schema_bounds::non_finite(&written, "") {
            return Err(ConfigError {
                field,
                message: "must be a finite number".into(),
            });
        }
        let value = serde_json::to_value(self).map_err(|error| ConfigError {
            field: String::new(),
            message: format!("cannot be written as JSON: {error}"),
        })?;
        crate::schema_bounds::check(schema.as_value(), &value, "").map_err(|exceeded| ConfigError {
            field: exceeded.path,
            message: exceeded.message,
        })
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |field: &str, message: String| {
            Err(ConfigError {
                field: field.to_string(),
                message,
            })
        };
        // Every range is declared on the types (the CRDs carry the same bounds).
        self.check_bounds()?;
        // A bound a schema range cannot say (it is inclusive): learning rates above 0.
        let optim = &self.optim;
        if let Some(zero) = std::iter::once(optim.lr)
            .chain(optim.lr_sweep.iter().copied())
            .position(|lr| lr == 0.0)
        {
            let field = match zero {
                0 => "optim.lr".to_string(),
                index => format!("optim.lr_sweep[{}]", index - 1),
            };
            return fail(&field, "a learning rate must be above 0".into());
        }
        let d_ff = self.d_ff();
        if d_ff > 32_768 {
            return fail(
                "model.d_ff",
                format!("{d_ff} (2 × d_model when unset) is over the limit of 32768"),
            );
        }
        if self.data.tasks.is_empty() {
            return fail("data.tasks", "needs at least one task".into());
        }
        if self.data.tasks.len() > limits::TASKS {
            return fail(
                "data.tasks",
                format!(
                    "at most {} tasks, found {}",
                    limits::TASKS,
                    self.data.tasks.len()
                ),
            );
        }
        if self.optim.lr_sweep.len() > limits::LR_SWEEP {
            return fail(
                "optim.lr_sweep",
                format!(
                    "at most {} learning rates, found {}",
                    limits::LR_SWEEP,
                    self.optim.lr_sweep.len()
                ),
            );
        }
        let (seq_len, vocab) = (self.data.seq_len, self.data.vocab_size);
        for (index, task) in self.data.tasks.iter().enumerate() {
            let field = |name: &str| format!("data.tasks[{index}].{name}");
            if !(task.weight().is_finite() && task.weight() > 0.0) {
                return fail(&field("weight"), "must be a positive number".into());
            }
            match task {
                TaskConfig::Mqar {
                    num_kv_pairs,
                    power_a,
                    ..
                } => {
                    if *num_kv_pairs == 0 || 4 * num_kv_pairs > seq_len {
                        return fail(
                            &field("num_kv_pairs"),
                            format!(
                                "must be in 1..={} for seq_len {seq_len} (the pairs and a query slot for each must fit, as in Zoology)",
                                seq_len / 4
                            ),
                        );
                    }
                    if *num_kv_pairs >= vocab / 2 {
                        return fail(
                            &field("num_kv_pairs"),
                            format!(
                                "needs {num_kv_pairs} distinct keys but the first half of a vocabulary of {vocab} has {}",
                                vocab / 2 - 1
                            ),
                        );
                    }
                    if !(power_a.is_finite() && *power_a > 0.0) {
                        return fail(&field("power_a"), "must be a positive number".into());
                    }
                }
                TaskConfig::SelectiveCopy { num_tokens, .. } => {
                    if *num_tokens == 0 || 2 * num_tokens + 1 > seq_len {
                        return fail(
                            &field("num_tokens"),
                            format!(
                                "must be in 1..={} for seq_len {seq_len}",
                                (seq_len.saturating_sub(1)) / 2
                            ),
                        );
                    }
                }
                TaskConfig::Induction { prefix_len, .. } => {
                    if *prefix_len == 0 || *prefix_len >= seq_len {
                        return fail(&field("prefix_len"), format!("must be in 1..{seq_len}"));
                    }
                }
                TaskConfig::Text { paths, .. } => check_paths(&field("paths"), paths)?,
                TaskConfig::Corpus {
                    tokenizer,
                    train,
                    validation,
                    text_field,
                    eot,
                    ..
                } => {
                    check_paths(&field("tokenizer"), std::slice::from_ref(tokenizer))?;
                    check_held_out(&field, train, validation, "file")?;
                    for (name, text) in [("text_field", Some(text_field)), ("eot", eot.as_ref())] {
                        if text.is_some_and(|t| t.is_empty() || t.len() > limits::FIELD) {
                            return fail(
                                &field(name),
                                format!("must be 1 to {} bytes", limits::FIELD),
                            );
                        }
                    }
                }
                TaskConfig::Tokens {
                    train, validation, ..
                } => check_held_out(&field, train, validation, "shard")?,
            }
        }
        self.validate_benchmarks()?;
        self.validate_long_context()?;
        Ok(())
    }
}

impl TrainConfig {
    /// Benchmark entries: known layouts, bounded sizes, and names no task or other benchmark
    /// has (each is a key of the result's accuracy).
    fn validate_benchmarks(&self) -> Result<(), ConfigError> {
        let fail = |field: String, message: String| Err(ConfigError { field, message });
        if self.benchmarks.len() > limits::BENCHMARKS {
            return fail(
                "benchmarks".into(),
                format!(
                    "at most {} benchmarks, found {}",
                    limits::BENCHMARKS,
                    self.benchmarks.len()
                ),
            );
        }
        let task_names = crate::data::task_names(&self.data);
        let mut seen: Vec<&str> = Vec::new();
        for (index, benchmark) in self.benchmarks.iter().enumerate() {
            let field = |name: &str| format!("benchmarks[{index}].{name}");
            if crate::benchmarks::layout(&benchmark.task).is_none() {
                return fail(
                    field("task"),
                    format!(
                        "unknown task `{}`; known: {}",
                        benchmark.task,
                        crate::benchmarks::names().join(", ")
                    ),
                );
            }
            check_paths(&field("path"), std::slice::from_ref(&benchmark.path))?;
            if let Some(tokenizer) = &benchmark.tokenizer {
                check_paths(&field("tokenizer"), std::slice::from_ref(tokenizer))?;
            }
            if benchmark.limit == Some(0) {
                return fail(field("limit"), "must be at least 1".into());
            }
            let name = benchmark.name();
            if name.is_empty()
                || name.len() > limits::BENCHMARK_NAME
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                return fail(
                    field("name"),
                    format!(
                        "`{name}`: 1 to {} letters, digits, `_`, `-` or `.`",
                        limits::BENCHMARK_NAME
                    ),
                );
            }
            if task_names.iter().any(|task| task == name) || seen.contains(&name) {
                return fail(
                    field("name"),
                    format!(
                        "`{name}` is already the name of a task or benchmark; give it another `name`"
                    ),
                );
            }
            seen.push(name);
        }
        Ok(())
    }
}

impl TrainConfig {
    /// Long-context lengths: bounded lists, lengths up to 16× the training length.
    fn validate_long_context(&self) -> Result<(), ConfigError> {
        let Some(settings) = &self.long_context else {
            return Ok(());
        };
        let fail = |field: &str, message: String| {
            Err(ConfigError {
                field: format!("long_context.{field}"),
                message,
            })
        };
        let most = 16 * self.data.seq_len;
        if settings.extrapolation.len() > limits::LONG_CONTEXT_LENGTHS
            || settings.extrapolation.iter().any(|&k| k == 0 || k > 16)
        {
            return fail(
                "extrapolation",
                format!(
                    "at most {} multiples of seq_len, each 1 to 16",
                    limits::LONG_CONTEXT_LENGTHS
                ),
            );
        }
        if let Some(passkey) = &settings.passkey {
            if passkey.lengths.len() > limits::LONG_CONTEXT_LENGTHS
                || passkey.lengths.iter().any(|&l| l < 32 || l > most)
            {
                return fail(
                    "passkey.lengths",
                    format!(
                        "at most {} lengths, each 32 to {most} tokens (16 × seq_len)",
                        limits::LONG_CONTEXT_LENGTHS
                    ),
                );
            }
            if passkey.depths.len() > limits::LONG_CONTEXT_LENGTHS
                || passkey.depths.iter().any(|d| !(0.0..=1.0).contains(d))
            {
                return fail(
                    "passkey.depths",
                    format!(
                        "at most {} depths, each in [0, 1]",
                        limits::LONG_CONTEXT_LENGTHS
                    ),
                );
            }
            if passkey.items == 0 || passkey.items > 1000 {
                return fail("passkey.items", "must be 1 to 1000".into());
            }
            if let Some(tokenizer) = &passkey.tokenizer {
                check_paths(
                    "long_context.passkey.tokenizer",
                    std::slice::from_ref(tokenizer),
                )?;
            }
        }
        Ok(())
    }
}
