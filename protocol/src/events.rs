//! The output contract: JSON lines on stdout. Progress at a steady cadence, then exactly one
//! result. The same result goes to `--result FILE` and the pod's termination message.

use serde::Serialize;
use std::collections::BTreeMap;

/// One line of trainer output.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Progress(Progress),
    Result(Box<TrainResult>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub step: usize,
    /// Mean training loss since the previous progress line.
    pub loss: f64,
    pub lr: f64,
    pub tokens_per_s: f64,
    /// Tokens trained on so far in this trial.
    pub tokens: u64,
    pub elapsed_s: f64,
    /// Index of the learning rate being tried (0 without a sweep).
    pub trial: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// The loss became NaN or infinite.
    Diverged,
    Error,
}

/// How one learning rate fared.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Trial {
    pub lr: f64,
    pub status: Status,
    pub val_loss: Option<f64>,
    pub steps: usize,
}

/// The final line. Metrics are those of the best learning rate by validation loss.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainResult {
    pub status: Status,
    pub val_loss: Option<f64>,
    /// Accuracy on the scored positions of each task's validation stream, keyed by task name.
    pub accuracy: BTreeMap<String, f64>,
    pub test_loss: Option<f64>,
    pub test_accuracy: BTreeMap<String, f64>,
    pub params: u64,
    pub flops_per_token: u64,
    pub state_size: u64,
    pub tokens_per_s: f64,
    /// Tokens trained on, over every trial.
    pub tokens: u64,
    pub wall_s: f64,
    pub steps: usize,
    pub lr: Option<f64>,
    pub trials: Vec<Trial>,
    pub time_limit_reached: bool,
    pub program_hash: String,
    /// Zero-shot benchmarks of the best model, keyed by benchmark name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub benchmarks: BTreeMap<String, BenchmarkScore>,
    /// Length extrapolation and passkey retrieval, when the config asks for them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub long_context: Option<LongContextScores>,
    /// How each task keeps evaluation data apart from training data.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held_out: Vec<HeldOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The error was a full disk (saving a checkpoint): the machine's failure, not the
    /// program's.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub storage_full: bool,
}

/// One task's split of training and evaluation data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeldOut {
    pub task: String,
    /// `seeds` (generated from independent seeds), `bytes` (disjoint byte ranges: 90/5/5)
    /// or `files` (held-out files or shards: their first half validates, the second tests).
    pub by: &'static str,
    /// Tokens available to train on and held out (token tasks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_out_tokens: Option<u64>,
}

/// One benchmark's scores, named as lm-evaluation-harness names them.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct BenchmarkScore {
    /// The task layout (`piqa`, `lambada_openai`, …).
    pub task: String,
    /// Documents scored.
    pub n: usize,
    pub acc: f64,
    pub acc_stderr: Option<f64>,
    /// Multiple choice: the log-likelihood per character of each choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acc_norm: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acc_norm_stderr: Option<f64>,
    /// Continuation tasks (LAMBADA): `exp(-mean log-likelihood)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perplexity: Option<f64>,
}

/// Long-context scores of the best model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct LongContextScores {
    /// Validation loss by window length in tokens (the training length's is `val_loss`).
    pub val_loss: BTreeMap<usize, f64>,
    pub passkey: Vec<PasskeyScore>,
}

/// Passkey accuracy (the key decoded greedily) at one length and depth.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PasskeyScore {
    pub length: usize,
    pub depth: f64,
    pub n: usize,
    pub acc: f64,
}

impl Event {
    /// One JSON line (without the newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|error| format!("{{\"event\":\"result\",\"status\":\"error\",\"error\":\"serialising output: {error}\"}}"))
    }
}
