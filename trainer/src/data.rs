//! Training data, generated from a seed or read from files given by path; nothing is
//! downloaded. Each task yields examples of `seq_len` input tokens, next-token targets and a
//! loss mask (1 where the position is scored).
//!
//! Streams: train, validation and test draw from independent seeds (synthetic tasks),
//! disjoint byte ranges (text) or disjoint shards (tokens: the validation shards are never
//! trained on), so no evaluation example is trained on.

use crate::config::{DataConfig, MqarVariant, TaskConfig};
use crate::corpus::CorpusError;
use crate::shards::{Shard, ShardError};
use crate::tokenizer::{TextTokenizer, TokenizerError};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::path::PathBuf;
use std::sync::Arc;

/// Which part of the data a stream reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Validation,
    Test,
}

impl Split {
    fn seed_offset(self) -> u64 {
        match self {
            Split::Train => 0x7261_696e,
            Split::Validation => 0x7661_6c69,
            Split::Test => 0x7465_7374,
        }
    }
}

/// One example: `inputs[t]` predicts `targets[t]`, scored where `mask[t] == 1`.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub inputs: Vec<i64>,
    pub targets: Vec<i64>,
    pub mask: Vec<f32>,
}

/// A batch of examples of one task, flattened row-major `[batch, seq_len]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub task: usize,
    pub batch_size: usize,
    pub seq_len: usize,
    pub inputs: Vec<i64>,
    pub targets: Vec<i64>,
    pub mask: Vec<f32>,
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("reading text file {path}: {error}")]
    Read {
        path: PathBuf,
        /// Printed in the message, so not a `source` too (`{:#}` would print it twice).
        error: std::io::Error,
    },
    #[error(
        "text task: the files hold {bytes} bytes; each split needs more than seq_len + 1 = {needed}"
    )]
    TooLittleText { bytes: usize, needed: usize },
    #[error(transparent)]
    Shard(#[from] ShardError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error("internal error: the data sources were opened for another config")]
    SourcesMismatch,
    #[error(
        "tokens task: no {split:?} shard holds seq_len + 1 = {needed} tokens (the largest holds {largest})"
    )]
    TooFewTokens {
        split: Split,
        largest: u64,
        needed: usize,
    },
}

/// A task ready to sample from.
#[derive(Debug, Clone)]
enum Task {
    Mqar {
        num_kv_pairs: usize,
        power_a: f64,
        variant: MqarVariant,
    },
    SelectiveCopy {
        num_tokens: usize,
    },
    Induction {
        prefix_len: usize,
    },
    Text {
        bytes: Arc<Vec<u8>>,
    },
    Tokens {
        shards: Arc<Vec<Shard>>,
        /// This split's part of each shard (`index`, `first`, `count`), long enough for a window.
        ranges: Vec<(usize, u64, u64)>,
    },
}

/// Samples batches of a weighted task mix for one split.
#[derive(Debug, Clone)]
pub struct Stream {
    tasks: Vec<Task>,
    weights: Vec<f64>,
    vocab_size: usize,
    seq_len: usize,
    split: Split,
    rng: SmallRng,
}

/// The names under which per-task accuracy is reported, in config order.
pub fn task_names(config: &DataConfig) -> Vec<String> {
    config
        .tasks
        .iter()
        .map(|task| task.name().to_string())
        .collect()
}

/// What each task reads, read once (text files, shards, corpora tokenized) and shared by every
/// stream of a run.
#[derive(Debug, Clone)]
pub struct Sources {
    tasks: Vec<Source>,
    tokenizer_vocab: Option<usize>,
    /// Each corpus task's tokenizer: its path and fingerprint.
    tokenizers: Vec<(PathBuf, String)>,
}

#[derive(Debug, Clone)]
enum Source {
    Generated,
    /// The train, validation and test bytes.
    Text([Arc<Vec<u8>>; 3]),
    /// Training shards, and held-out shards whose halves validate and test.
    Tokens {
        train: Arc<Vec<Shard>>,
        held_out: Arc<Vec<Shard>>,
    },
}

/// A corpus tokenized on the fly is held in memory (4 bytes a token); larger ones are
/// prepared as shards first (`archlab data prepare`).
pub const MAX_CORPUS_TOKENS: usize = 1 << 28;

impl Sources {
    /// Reads every task's files; errors name the file.
    pub fn open(config: &DataConfig) -> Result<Sources, DataError> {
        let mut tasks = Vec::new();
        let mut tokenizer_vocab: Option<usize> = None;
        let mut tokenizers = Vec::new();
        for task in &config.tasks {
            tasks.push(match task {
                TaskConfig::Mqar { .. }
                | TaskConfig::SelectiveCopy { .. }
                | TaskConfig::Induction { .. } => Source::Generated,
                TaskConfig::Text { paths, .. } => Source::Text(read_text(paths, config.seq_len)?),
                TaskConfig::Tokens {
                    train,
                    validation,
                    dtype,
                    ..
                } => {
                    let open = |paths: &[PathBuf]| {
                        paths
                            .iter()
                            .map(|path| Shard::open(path, *dtype))
                            .collect::<Result<Vec<_>, _>>()
                    };
                    Source::Tokens {
                        train: Arc::new(open(train)?),
                        held_out: Arc::new(open(validation)?),
                    }
                }
                TaskConfig::Corpus {
                    tokenizer,
                    train,
                    validation,
                    text_field,
                    eot,
                    ..
                } => {
                    let tokenizer = TextTokenizer::load(tokenizer, eot.as_deref())?;
                    tokenizer_vocab = tokenizer_vocab.max(Some(tokenizer.vocab_size()));
                    tokenizers.push((tokenizer.path.clone(), tokenizer.fingerprint.clone()));
                    Source::Tokens {
                        train: Arc::new(tokenize(&tokenizer, train, text_field)?),
                        held_out: Arc::new(tokenize(&tokenizer, validation, text_field)?),
                    }
                }
            });
        }
        Ok(Sources {
            tasks,
            tokenizer_vocab,
            tokenizers,
        })
    }

    /// The largest vocabulary of the corpus tasks' tokenizers: the model needs at least it.
    pub fn tokenizer_vocab(&self) -> Option<usize> {
        self.tokenizer_vocab
    }

    /// How each task holds evaluation data out of training, for the result.
    pub fn held_out(&self, config: &DataConfig) -> Vec<crate::events::HeldOut> {
        let count = |shards: &Arc<Vec<Shard>>| shards.iter().map(Shard::len).sum::<u64>();
        config
            .tasks
            .iter()
            .zip(&self.tasks)
            .map(|(task, source)| {
                let (by, train_tokens, held_out_tokens) = match source {
                    Source::Generated => ("seeds", None, None),
                    Source::Text(_) => ("bytes", None, None),
                    Source::Tokens { train, held_out } => {
                        ("files", Some(count(train)), Some(count(held_out)))
                    }
                };
                crate::events::HeldOut {
                    task: task.name().to_string(),
                    by,
                    train_tokens,
                    held_out_tokens,
                }
            })
            .collect()
    }

    /// Each corpus task's tokenizer: its path and FNV-1a fingerprint.
    pub fn tokenizers(&self) -> &[(PathBuf, String)] {
        &self.tokenizers
    }
}

/// Tokenizes a corpus into in-memory shards cut as `archlab data prepare` cuts them.
fn tokenize(
    tokenizer: &TextTokenizer,
    files: &[PathBuf],
    text_field: &str,
) -> Result<Vec<Shard>, DataError> {
    let mut shards = Vec::new();
    let mut total = 0usize;
    let origin = files.first().cloned().unwrap_or_default();
    crate::corpus::tokenize_into_shards(
        tokenizer,
        files,
        text_field,
        crate::corpus::SHARD_TOKENS,
        crate::corpus::Position::default(),
        &mut |_| {},
        &mut |tokens, _| {
            total += tokens.len();
            if total > MAX_CORPUS_TOKENS {
                return Err(CorpusError::Sink(format!(
                    "{} and the files after it: over {MAX_CORPUS_TOKENS} tokens, too many to hold in memory; write shards with `archlab data prepare` and train on them with a `tokens` task",
                    origin.display()
                )));
            }
            shards.push(Shard::in_memory(origin.clone(), tokens));
            Ok(())
        },
    )?;
    Ok(shards)
}

impl Stream {
    pub fn new(
        config: &DataConfig,
        sources: &Sources,
        split: Split,
        seed: u64,
    ) -> Result<Stream, DataError> {
        let mut tasks = Vec::new();
        let mut weights = Vec::new();
        for (task, source) in config.tasks.iter().zip(&sources.tasks) {
            weights.push(task.weight());
            tasks.push(match (task, source) {
                (
                    TaskConfig::Mqar {
                        num_kv_pairs,
                        power_a,
                        variant,
                        ..
                    },
                    _,
                ) => Task::Mqar {
                    num_kv_pairs: *num_kv_pairs,
                    power_a: *power_a,
                    variant: *variant,
                },
                (TaskConfig::SelectiveCopy { num_tokens, .. }, _) => Task::SelectiveCopy {
                    num_tokens: *num_tokens,
                },
                (TaskConfig::Induction { prefix_len, .. }, _) => Task::Induction {
                    prefix_len: *prefix_len,
                },
                (_, Source::Text(splits)) => Task::Text {
                    bytes: splits[split as usize].clone(),
                },
                (_, Source::Tokens { train, held_out }) => {
                    token_split(train, held_out, split, config.seq_len)?
                }
                (_, Source::Generated) => return Err(DataError::SourcesMismatch),
            });
        }
        Ok(Stream {
            tasks,
            weights,
            vocab_size: config.vocab_size,
            seq_len: config.seq_len,
            split,
            rng: SmallRng::seed_from_u64(seed ^ split.seed_offset()),
        })
    }

    pub fn split(&self) -> Split {
        self.split
    }

    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// The next batch, of a task drawn by weight (an error only from a shard: unreadable, or
    /// a token beyond the vocabulary).
    pub fn next_batch(&mut self, batch_size: usize) -> Result<Batch, DataError> {
        let task = self.pick_task();
        self.batch_of(task, batch_size)
    }

    /// Advances the stream past `batches` calls of [`Stream::next_batch`] without reading
    /// files, so a resumed run goes on with the data an uninterrupted one would have seen.
    pub fn skip_batches(&mut self, batches: usize, batch_size: usize) {
        let seq_len = self.seq_len;
        for _ in 0..batches {
            let task = self.pick_task();
            for _ in 0..batch_size {
                match &self.tasks[task] {
                    Task::Text { bytes } => {
                        text_start(&mut self.rng, bytes.len(), seq_len);
                    }
                    Task::Tokens { ranges, .. } => {
                        window_start(&mut self.rng, ranges, seq_len);
                    }
                    // Generating is cheap and cannot fail.
                    _ => {
                        let _ = self.example(task);
                    }
                }
            }
        }
    }

    fn pick_task(&mut self) -> usize {
        let total: f64 = self.weights.iter().sum();
        let mut pick = self.rng.random::<f64>() * total;
        let mut task = 0;
        for (index, weight) in self.weights.iter().enumerate() {
            task = index;
            if pick < *weight {
                break;
            }
            pick -= weight;
        }
        task
    }

    /// The next batch of one given task.
    pub fn batch_of(&mut self, task: usize, batch_size: usize) -> Result<Batch, DataError> {
        let mut batch = Batch {
            task,
            batch_size,
            seq_len: self.seq_len,
            inputs: Vec::with_capacity(batch_size * self.seq_len),
            targets: Vec::with_capacity(batch_size * self.seq_len),
            mask: Vec::with_capacity(batch_size * self.seq_len),
        };
        for _ in 0..batch_size {
            let example = self.example(task)?;
            batch.inputs.extend(example.inputs);
            batch.targets.extend(example.targets);
            batch.mask.extend(example.mask);
        }
        Ok(batch)
    }

    fn example(&mut self, task: usize) -> Result<Example, DataError> {
        let (vocab, len) = (self.vocab_size, self.seq_len);
        Ok(match &self.tasks[task] {
            Task::Mqar {
                num_kv_pairs,
                power_a,
                variant: MqarVariant::Zoology,
            } => mqar(&mut self.rng, vocab, len, *num_kv_pairs, *power_a),
            Task::Mqar {
                num_kv_pairs,
                power_a,
                variant: MqarVariant::Answered,
            } => mqar_answered(&mut self.rng, vocab, len, *num_kv_pairs, *power_a),
            Task::SelectiveCopy { num_tokens } => {
                selective_copy(&mut self.rng, vocab, len, *num_tokens)
            }
            Task::Induction { prefix_len } => induction(&mut self.rng, vocab, len, *prefix_len),
            Task::Text { bytes } => {
                let bytes = bytes.clone();
                text_window(&mut self.rng, &bytes, len)
            }
            Task::Tokens { shards, ranges } => {
                token_window(&mut self.rng, shards, ranges, len, vocab)?
            }
        })
    }
}

/// Builds an example from a full token sequence of `seq_len + 1` and the scored target positions.
fn shifted(sequence: Vec<i64>, scored: &[usize]) -> Example {
    let len = sequence.len() - 1;
    let mut mask = vec![0.0; len];
    for &position in scored {
        if position < len {
            mask[position] = 1.0;
        }
    }
    Example {
        inputs: sequence[..len].to_vec(),
        targets: sequence[1..].to_vec(),
        mask,
    }
}

/// Multi-query associative recall exactly as Zoology's `multiquery_ar` (Arora et al. 2023,
/// HazyResearch/zoology `data/associative_recall.py`, `random_non_queries=True`):
/// `num_kv_pairs` distinct keys from `1..vocab/2` each followed by one of as many distinct values
/// from `vocab/2..vocab`; then each key is queried once, alone, at slot `context + 2·gap` with
/// gaps drawn without replacement by `p(g) ∝ a·g^(a-1)`; the value is the target at the query
/// and is never written into the input; every other position is a uniform random token of the
/// whole vocabulary (distractors). Only the queries are scored.
pub fn mqar(
    rng: &mut SmallRng,
    vocab: usize,
    seq_len: usize,
    num_kv_pairs: usize,
    power_a: f64,
) -> Example {
    let half = vocab / 2;
    let context = 2 * num_kv_pairs;
    // 0 marks "not written yet"; Zoology fills those positions with random tokens at the end.
    let mut inputs = vec![0i64; seq_len];
    let mut targets = vec![0i64; seq_len];
    let mut mask = vec![0.0; seq_len];
    let keys = distinct(rng, 1, half, num_kv_pairs);
    let values = distinct(rng, half, vocab, num_kv_pairs);
    for (index, (key, value)) in keys.iter().zip(&values).enumerate() {
        inputs[2 * index] = *key;
        inputs[2 * index + 1] = *value;
    }
    let slots = seq_len.saturating_sub(context) / 2;
    let chosen = weighted_distinct(rng, &power_law(slots, power_a), num_kv_pairs.min(slots));
    for (index, slot) in chosen.into_iter().enumerate() {
        let position = context + 2 * slot;
        inputs[position] = keys[index];
        targets[position] = values[index];
        mask[position] = 1.0;
    }
    for token in inputs.iter_mut().filter(|token| **token == 0) {
        *token = rng.random_range(0..vocab) as i64;
    }
    // Unscored targets are the next input, so every target is a real next token.
    for position in 0..seq_len {
        if mask[position] == 0.0 {
            targets[position] = inputs.get(position + 1).copied().unwrap_or(0);
        }
    }
    Example {
        inputs,
        targets,
        mask,
    }
}

/// The easier MQAR layout ([`MqarVariant::Answered`]): keys and values as in [`mqar`] (values
/// may repeat), but each query is followed by its value in the input and every unused position
/// is 0, so the sequence has no distractors.
pub fn mqar_answered(
    rng: &mut SmallRng,
    vocab: usize,
    seq_len: usize,
    num_kv_pairs: usize,
    power_a: f64,
) -> Example {
    let half = vocab / 2;
    let context = 2 * num_kv_pairs;
    let mut sequence = vec![0i64; seq_len + 1];
    let keys = distinct(rng, 1, half, num_kv_pairs);
    let values: Vec<i64> = (0..num_kv_pairs)
        .map(|_| rng.random_range(half..vocab) as i64)
        .collect();
    for (index, (key, value)) in keys.iter().zip(&values).enumerate() {
        sequence[2 * index] = *key;
        sequence[2 * index + 1] = *value;
    }
    let slots = (seq_len + 1).saturating_sub(context) / 2;
    let chosen = weighted_distinct(rng, &power_law(slots, power_a), num_kv_pairs.min(slots));
    let mut scored = Vec::new();
    for (index, slot) in chosen.into_iter().enumerate() {
        let position = context + 2 * slot;
        sequence[position] = keys[index];
        sequence[position + 1] = values[index];
        scored.push(position);
    }
    shifted(sequence, &scored)
}

/// Zoology's gap weights over slots `1..=slots`: `a·g^(a-1)` (normalised by the sampler).
fn power_law(slots: usize, power_a: f64) -> Vec<f64> {
    (1..=slots)
        .map(|g| power_a * (g as f64).powf(power_a - 1.0))
        .collect()
}

/// Selective copying (Gu & Dao 2023): `num_tokens` data tokens scattered among blanks (0) in
/// the first part, then a marker, then the data tokens in order; only the copies are scored.
pub fn selective_copy(
    rng: &mut SmallRng,
    vocab: usize,
    seq_len: usize,
    num_tokens: usize,
) -> Example {
    let marker = (vocab - 1) as i64;
    let data_len = seq_len + 1 - num_tokens - 1;
    let positions = {
        let mut chosen: Vec<usize> = distinct(rng, 0, data_len, num_tokens)
            .into_iter()
            .map(|p| p as usize)
            .collect();
        chosen.sort_unstable();
        chosen
    };
    let mut sequence = vec![0i64; seq_len + 1];
    let tokens: Vec<i64> = (0..num_tokens)
        .map(|_| rng.random_range(1..vocab - 1) as i64)
        .collect();
    for (position, token) in positions.iter().zip(&tokens) {
        sequence[*position] = *token;
    }
    sequence[data_len] = marker;
    let mut scored = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        sequence[data_len + 1 + index] = *token;
        scored.push(data_len + index);
    }
    shifted(sequence, &scored)
}

/// Induction / copying: a random prefix followed by its exact repeat; the repeat is scored
/// (after its first token, which cannot be predicted).
pub fn induction(rng: &mut SmallRng, vocab: usize, seq_len: usize, prefix_len: usize) -> Example {
    let mut sequence: Vec<i64> = (0..prefix_len)
        .map(|_| rng.random_range(1..vocab) as i64)
        .collect();
    let mut scored = Vec::new();
    while sequence.len() < seq_len + 1 {
        let position = sequence.len();
        let copied = sequence[position - prefix_len];
        if position > prefix_len {
            scored.push(position - 1);
        }
        sequence.push(copied);
    }
    shifted(sequence, &scored)
}

fn text_start(rng: &mut SmallRng, bytes: usize, seq_len: usize) -> usize {
    rng.random_range(0..bytes - seq_len - 1)
}

/// A random window of bytes; every position is scored.
fn text_window(rng: &mut SmallRng, bytes: &[u8], seq_len: usize) -> Example {
    let start = text_start(rng, bytes.len(), seq_len);
    let sequence: Vec<i64> = bytes[start..start + seq_len + 1]
        .iter()
        .map(|&b| i64::from(b))
        .collect();
    let scored: Vec<usize> = (0..seq_len).collect();
    shifted(sequence, &scored)
}

/// The part of the shards this split reads: the training shards whole for training; the first
/// half of each held-out shard for validation, the second half for test.
fn token_split(
    train: &Arc<Vec<Shard>>,
    held_out: &Arc<Vec<Shard>>,
    split: Split,
    seq_len: usize,
) -> Result<Task, DataError> {
    let shards = if split == Split::Train {
        train
    } else {
        held_out
    };
    let needed = seq_len as u64 + 1;
    let ranges: Vec<(usize, u64, u64)> = shards
        .iter()
        .enumerate()
        .map(|(index, shard)| {
            let half = shard.len() / 2;
            match split {
                Split::Train => (index, 0, shard.len()),
                Split::Validation => (index, 0, half),
                Split::Test => (index, half, shard.len() - half),
            }
        })
        .filter(|(_, _, count)| *count >= needed)
        .collect();
    if ranges.is_empty() {
        return Err(DataError::TooFewTokens {
            split,
            largest: shards.iter().map(Shard::len).max().unwrap_or(0),
            needed: seq_len + 1,
        });
    }
    Ok(Task::Tokens {
        shards: shards.clone(),
        ranges,
    })
}

/// A random window of `seq_len + 1` tokens from one of the ranges (drawn by length, so every
/// token is equally likely to start a window); every position is scored.
fn token_window(
    rng: &mut SmallRng,
    shards: &[Shard],
    ranges: &[(usize, u64, u64)],
    seq_len: usize,
    vocab: usize,
) -> Result<Example, DataError> {
    let (shard, start) = window_start(rng, ranges, seq_len);
    let sequence = shards[shard].read(start, seq_len + 1, vocab)?;
    let scored: Vec<usize> = (0..seq_len).collect();
    Ok(shifted(sequence, &scored))
}

/// Where a window starts: (shard, first token).
fn window_start(rng: &mut SmallRng, ranges: &[(usize, u64, u64)], seq_len: usize) -> (usize, u64) {
    let window = seq_len as u64 + 1;
    let starts: u64 = ranges.iter().map(|(_, _, count)| count - window + 1).sum();
    let mut pick = rng.random_range(0..starts);
    for &(index, first, count) in ranges {
        let here = count - window + 1;
        if pick < here {
            return (index, first + pick);
        }
        pick -= here;
    }
    (ranges[0].0, ranges[0].1)
}

/// Reads the text files and splits their bytes: the first 90% for training, the next 5% for
/// validation, the last 5% for test.
fn read_text(paths: &[PathBuf], seq_len: usize) -> Result<[Arc<Vec<u8>>; 3], DataError> {
    let mut all = Vec::new();
    for path in paths {
        let bytes = std::fs::read(path).map_err(|source| DataError::Read {
            path: path.clone(),
            error: source,
        })?;
        all.extend(bytes);
    }
    let total = all.len();
    let cuts = [0, total * 90 / 100, total * 95 / 100, total];
    if cuts.windows(2).any(|cut| cut[1] - cut[0] <= seq_len + 1) {
        return Err(DataError::TooLittleText {
            bytes: total,
            needed: seq_len + 2,
        });
    }
    Ok([0, 1, 2].map(|split| Arc::new(all[cuts[split]..cuts[split + 1]].to_vec())))
}

/// `count` distinct integers in `low..high`.
fn distinct(rng: &mut SmallRng, low: usize, high: usize, count: usize) -> Vec<i64> {
    let mut pool: Vec<i64> = (low as i64..high as i64).collect();
    let count = count.min(pool.len());
    for index in 0..count {
        let swap = rng.random_range(index..pool.len());
        pool.swap(index, swap);
    }
    pool.truncate(count);
    pool
}

/// `count` distinct indices drawn without replacement with probability ∝ `weights`.
fn weighted_distinct(rng: &mut SmallRng, weights: &[f64], count: usize) -> Vec<usize> {
    let mut remaining: Vec<(usize, f64)> = weights.iter().copied().enumerate().collect();
    let mut chosen = Vec::with_capacity(count);
    for _ in 0..count {
        let total: f64 = remaining.iter().map(|(_, w)| w).sum();
        let mut pick = rng.random::<f64>() * total;
        let mut index = remaining.len() - 1;
        for (position, (_, weight)) in remaining.iter().enumerate() {
            if pick < *weight {
                index = position;
                break;
            }
            pick -= weight;
        }
        chosen.push(remaining.swap_remove(index).0);
    }
    chosen
}
