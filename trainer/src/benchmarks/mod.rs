//! Zero-shot benchmarks scored as lm-evaluation-harness scores them, on rows the user brings
//! (JSONL or Parquet, in the layout each dataset is published in; nothing is downloaded).
//!
//! As in the harness, a task is a layout: one small file here turns a row into a [`Doc`] (its
//! prompt, its choices, its answer), and everything else is shared: [`rows`] reads files,
//! [`encode`] splits context and continuation tokens as the harness does, [`score`] runs the
//! model and computes `acc`, `acc_norm`, perplexity and their standard errors. Adding a task
//! is adding a file and one line to [`LAYOUTS`].

pub mod arc;
pub mod encode;
pub mod hellaswag;
pub mod lambada;
pub mod multiple_choice;
pub mod piqa;
pub mod rows;
pub mod score;
pub mod winogrande;

use crate::config::{BenchmarkConfig, TaskConfig, TrainConfig};
use crate::tokenizer::{TextTokenizer, TokenizerError};
use encode::{BenchTokenizer, Tokenized};
use std::path::PathBuf;
use std::sync::Arc;

/// One `(context, continuation)` pair whose log-likelihood is scored: the harness's
/// `loglikelihood` request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub context: String,
    pub continuation: String,
}

/// One document of a task, as its layout reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc {
    /// Multiple choice: one request per choice; `acc` asks whether the gold choice has the
    /// highest log-likelihood, `acc_norm` the highest per character of `lengths`.
    Choice {
        requests: Vec<Request>,
        gold: usize,
        /// Each choice's length in characters (the harness's `completion_len`).
        lengths: Vec<usize>,
    },
    /// One continuation: `acc` asks whether greedy decoding gives it, perplexity is
    /// `exp(-mean log-likelihood)` (LAMBADA).
    Continuation(Request),
}

impl Doc {
    pub fn requests(&self) -> &[Request] {
        match self {
            Doc::Choice { requests, .. } => requests,
            Doc::Continuation(request) => std::slice::from_ref(request),
        }
    }
}

/// How one task reads its rows.
pub trait Layout: Sync {
    /// The task's name, the harness's.
    fn name(&self) -> &'static str;
    /// Whether the harness reports `acc_norm` for it.
    fn acc_norm(&self) -> bool {
        true
    }
    /// The document of one row; the error says which field is wrong and what was expected.
    fn doc(&self, row: &rows::Row) -> Result<Doc, String>;
}

/// Every task layout, by name.
pub const LAYOUTS: &[&dyn Layout] = &[
    &piqa::Piqa,
    &hellaswag::Hellaswag,
    &arc::Arc::EASY,
    &arc::Arc::CHALLENGE,
    &winogrande::Winogrande,
    &lambada::Lambada,
    &multiple_choice::MultipleChoice,
];

pub fn layout(name: &str) -> Option<&'static dyn Layout> {
    LAYOUTS.iter().copied().find(|layout| layout.name() == name)
}

pub fn names() -> Vec<&'static str> {
    LAYOUTS.iter().map(|layout| layout.name()).collect()
}

/// The harness's multiple-choice request shape: the context, then each choice after the
/// target delimiter `" "`; `acc_norm` divides by the choice's own length.
pub fn choice_doc(context: String, choices: Vec<String>, gold: usize) -> Result<Doc, String> {
    check_choices(&choices, gold)?;
    Ok(Doc::Choice {
        lengths: choices
            .iter()
            .map(|choice| choice.chars().count())
            .collect(),
        requests: choices
            .into_iter()
            .map(|choice| Request {
                context: context.clone(),
                continuation: format!(" {choice}"),
            })
            .collect(),
        gold,
    })
}

/// At least two choices, none empty, and the answer one of them.
pub fn check_choices(choices: &[String], gold: usize) -> Result<(), String> {
    if choices.len() < 2 {
        return Err(format!("needs at least 2 choices, found {}", choices.len()));
    }
    if let Some(empty) = choices.iter().position(|choice| choice.trim().is_empty()) {
        return Err(format!("choice {empty} is empty"));
    }
    if gold >= choices.len() {
        return Err(format!(
            "the answer is choice {gold} but there are {} choices (counting from 0)",
            choices.len()
        ));
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum BenchmarkError {
    #[error(transparent)]
    Rows(#[from] rows::RowsError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// `what` is `benchmark `piqa`` or `long_context.passkey`.
    #[error("{what}: {message}")]
    Config { what: String, message: String },
    #[error("{path}: {at}: {message}")]
    Item {
        path: PathBuf,
        /// `line 3` (JSONL) or `row 3` (Parquet, counting from 0).
        at: String,
        message: String,
    },
}

/// A benchmark read and tokenized, ready to score.
#[derive(Debug, Clone)]
pub struct Benchmark {
    pub name: String,
    pub task: &'static str,
    pub path: PathBuf,
    pub acc_norm: bool,
    pub docs: Vec<Doc>,
    /// Per doc, per request: its tokens.
    pub tokens: Vec<Vec<Tokenized>>,
}

/// Reads and tokenizes every benchmark of `config` (before training, so a bad file fails
/// first).
pub fn load_all(config: &TrainConfig) -> Result<Vec<Benchmark>, BenchmarkError> {
    config
        .benchmarks
        .iter()
        .map(|benchmark| {
            let tokenizer =
                tokenizer(config, benchmark.tokenizer.as_deref()).map_err(|error| match error {
                    BenchmarkError::Config { message, .. } => BenchmarkError::Config {
                        what: format!("benchmark `{}`", benchmark.name()),
                        message,
                    },
                    other => other,
                })?;
            load(benchmark, &tokenizer, config.data.seq_len)
        })
        .collect()
}

/// The tokenizer benchmark text is read with: `own`, else the corpus task's, else bytes
/// when the model is byte-level.
pub fn tokenizer(
    config: &TrainConfig,
    own: Option<&std::path::Path>,
) -> Result<BenchTokenizer, BenchmarkError> {
    if let Some(path) = own {
        return Ok(BenchTokenizer::Text(Arc::new(TextTokenizer::load(
            path, None,
        )?)));
    }
    for task in &config.data.tasks {
        match task {
            TaskConfig::Corpus { tokenizer, eot, .. } => {
                return Ok(BenchTokenizer::Text(Arc::new(TextTokenizer::load(
                    tokenizer,
                    eot.as_deref(),
                )?)));
            }
            TaskConfig::Text { .. } => return Ok(BenchTokenizer::Bytes),
            _ => {}
        }
    }
    Err(BenchmarkError::Config {
        what: "long_context.passkey".into(),
        message: "no tokenizer: name one with `tokenizer` (a model of token shards or synthetic tasks has none of its own)".into(),
    })
}

/// Reads one benchmark's rows (the first `limit`), makes its documents and tokenizes them.
pub fn load(
    benchmark: &BenchmarkConfig,
    tokenizer: &BenchTokenizer,
    seq_len: usize,
) -> Result<Benchmark, BenchmarkError> {
    let layout = layout(&benchmark.task).ok_or_else(|| BenchmarkError::Config {
        what: format!("benchmark `{}`", benchmark.name()),
        message: format!(
            "unknown task `{}`; known: {}",
            benchmark.task,
            names().join(", ")
        ),
    })?;
    let rows = rows::read(&benchmark.path, benchmark.limit)?;
    if rows.is_empty() {
        return Err(BenchmarkError::Config {
            what: format!("benchmark `{}`", benchmark.name()),
            message: format!("{} holds no rows", benchmark.path.display()),
        });
    }
    let mut docs = Vec::with_capacity(rows.len());
    let mut tokens = Vec::with_capacity(rows.len());
    for row in &rows {
        let item = |message: String| BenchmarkError::Item {
            path: benchmark.path.clone(),
            at: row.at.clone(),
            message,
        };
        let doc = layout.doc(row).map_err(item)?;
        let mut encoded = Vec::new();
        for request in doc.requests() {
            let pair = tokenizer
                .encode_pair(&request.context, &request.continuation)
                .map_err(item)?;
            if pair.continuation.len() > seq_len {
                return Err(item(format!(
                    "a continuation of {} tokens is longer than the model's context of {seq_len}",
                    pair.continuation.len()
                )));
            }
            encoded.push(pair);
        }
        docs.push(doc);
        tokens.push(encoded);
    }
    Ok(Benchmark {
        name: benchmark.name().to_string(),
        task: layout.name(),
        path: benchmark.path.clone(),
        acc_norm: layout.acc_norm(),
        docs,
        tokens,
    })
}
