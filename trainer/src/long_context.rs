//! Long context: validation loss at multiples of the training length (length extrapolation)
//! and passkey retrieval — a number hidden in held-out text at several depths, asked for at
//! the end (Mohtashami & Jaggi 2023's format) — on the language-modelling tasks' held-out
//! data. A length the program does not pass archspec's checks at is left out.

use crate::benchmarks::encode::{BenchTokenizer, Tokenized};
use crate::benchmarks::{Benchmark, Doc, Request, score};
use crate::config::{LongContextConfig, TaskConfig, TrainConfig};
use crate::data::{Sources, Split, Stream};
use crate::events::{LongContextScores, PasskeyScore};
use crate::model::LanguageModel;
use crate::params::ParamStore;
use crate::training::masked_cross_entropy;
use burn::tensor::Device;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Everything the long-context evaluation needs besides the model.
pub struct LongContext<'a> {
    pub config: &'a TrainConfig,
    pub settings: &'a LongContextConfig,
    pub sources: &'a Sources,
    pub program: &'a str,
    /// The tokenizer of the passkey's words (None: no passkey).
    pub tokenizer: Option<&'a BenchTokenizer>,
}

/// The language-modelling tasks' indices: their held-out text is what long contexts are cut
/// from.
fn language_tasks(config: &TrainConfig) -> Vec<usize> {
    config
        .data
        .tasks
        .iter()
        .enumerate()
        .filter(|(_, task)| {
            matches!(
                task,
                TaskConfig::Text { .. } | TaskConfig::Tokens { .. } | TaskConfig::Corpus { .. }
            )
        })
        .map(|(index, _)| index)
        .collect()
}

impl LongContext<'_> {
    /// Whether the program passes archspec's checks at `length` tokens.
    fn program_runs_at(&self, length: usize) -> bool {
        let check = archspec::CheckConfig {
            d_model: self.config.model.d_model,
            seq_len: length,
            ..archspec::CheckConfig::default()
        };
        archspec::check_source(self.program, &check).is_ok()
    }

    /// A validation stream of `length`-token windows.
    fn stream(&self, length: usize) -> Option<Stream> {
        let mut data = self.config.data.clone();
        data.seq_len = length;
        Stream::new(&data, self.sources, Split::Validation, self.config.seed).ok()
    }

    pub fn evaluate(
        &self,
        model: &LanguageModel,
        store: &ParamStore,
        device: &Device,
    ) -> LongContextScores {
        let tasks = language_tasks(self.config);
        let seq_len = self.config.data.seq_len;
        let mut scores = LongContextScores::default();
        if tasks.is_empty() {
            return scores;
        }
        for &factor in &self.settings.extrapolation {
            let length = seq_len * factor;
            if let Some(loss) = self.loss_at(length, &tasks, model, store, device) {
                scores.val_loss.insert(length, loss);
            }
        }
        if let (Some(passkey), Some(tokenizer)) = (&self.settings.passkey, self.tokenizer) {
            let lengths = if passkey.lengths.is_empty() {
                vec![seq_len, 2 * seq_len, 4 * seq_len]
            } else {
                passkey.lengths.clone()
            };
            for length in lengths {
                scores.passkey.extend(
                    self.passkey_at(length, passkey, tokenizer, tasks[0], model, store, device),
                );
            }
        }
        scores
    }

    /// Mean validation loss over the language tasks' windows of `length` tokens.
    fn loss_at(
        &self,
        length: usize,
        tasks: &[usize],
        model: &LanguageModel,
        store: &ParamStore,
        device: &Device,
    ) -> Option<f64> {
        if !self.program_runs_at(length) {
            return None;
        }
        let mut stream = self.stream(length)?;
        // Weighted by scored positions, as `training::evaluate` weighs them: at 1× this is the
        // validation loss itself.
        let (mut total, mut scored) = (0.0, 0.0);
        for &task in tasks {
            for _ in 0..self.config.eval_batches {
                let batch = stream.batch_of(task, self.config.batch_size).ok()?;
                let (inputs, targets, mask) = crate::training::batch_tensors(&batch, device);
                let logits = model.forward(&store.values, inputs, false);
                let positions = f64::from(mask.clone().sum().into_scalar::<f32>());
                let loss =
                    f64::from(masked_cross_entropy(logits, targets, mask).into_scalar::<f32>());
                total += loss * positions;
                scored += positions;
            }
        }
        (scored > 0.0).then(|| total / scored)
    }

    /// Passkey accuracy at each depth for contexts of `length` tokens.
    #[allow(clippy::too_many_arguments)]
    fn passkey_at(
        &self,
        length: usize,
        settings: &crate::config::PasskeyConfig,
        tokenizer: &BenchTokenizer,
        task: usize,
        model: &LanguageModel,
        store: &ParamStore,
        device: &Device,
    ) -> Vec<PasskeyScore> {
        if !self.program_runs_at(length) {
            return Vec::new();
        }
        let Some(mut stream) = self.stream(length) else {
            return Vec::new();
        };
        let depths = if settings.depths.is_empty() {
            vec![0.0, 0.25, 0.5, 0.75, 1.0]
        } else {
            settings.depths.clone()
        };
        let mut rng = SmallRng::seed_from_u64(self.config.seed ^ 0x0070_6173_736b_6579);
        let mut out = Vec::new();
        for depth in depths {
            let mut docs = Vec::new();
            let mut tokens = Vec::new();
            for _ in 0..settings.items {
                let key: u32 = rng.random_range(10_000..100_000);
                let Ok(filler) = stream.batch_of(task, 1) else {
                    continue;
                };
                let filler: Vec<u32> = filler
                    .inputs
                    .iter()
                    .map(|&token| u32::try_from(token).unwrap_or(0))
                    .collect();
                let Some(item) = passkey_item(tokenizer, &filler, length, depth, key) else {
                    continue;
                };
                docs.push(Doc::Continuation(Request {
                    context: String::new(),
                    continuation: format!(" {key}"),
                }));
                tokens.push(vec![item]);
            }
            if docs.is_empty() {
                // The trainer's notes go to stderr; stdout is its event stream.
                eprintln!(
                    "passkey: no item fits in {length} tokens at depth {depth} (the key's \
                     sentences and the question take more, or the held-out text is shorter)"
                );
                continue;
            }
            let benchmark = Benchmark {
                name: "passkey".into(),
                task: "passkey",
                path: Default::default(),
                acc_norm: false,
                docs,
                tokens,
            };
            let scored = score::log_likelihoods(
                model,
                store,
                &benchmark,
                length,
                self.config.batch_size,
                device,
            );
            let metrics = score::metrics(&benchmark, &scored);
            out.push(PasskeyScore {
                length,
                depth,
                n: metrics.n,
                acc: metrics.acc,
            });
        }
        out
    }
}

/// One passkey context of `length` tokens: the start of `filler` (held-out text) with the
/// key's sentence at `depth` (0 = first, 1 = just before the question), then the question; the
/// continuation is the key. None when the filler is too short or the tokenizer fails.
fn passkey_item(
    tokenizer: &BenchTokenizer,
    filler: &[u32],
    length: usize,
    depth: f64,
    key: u32,
) -> Option<Tokenized> {
    let needle = tokenizer
        .encode(&format!(
            " The pass key is {key}. Remember it. {key} is the pass key."
        ))
        .ok()?;
    let question = tokenizer
        .encode(" What is the pass key? The pass key is")
        .ok()?;
    let continuation = tokenizer.encode(&format!(" {key}")).ok()?;
    let filler_len = length.checked_sub(needle.len() + question.len() + continuation.len())?;
    let filler = filler.get(..filler_len)?;
    let at = ((filler.len() as f64) * depth.clamp(0.0, 1.0)).round() as usize;
    let mut context = filler[..at].to_vec();
    context.extend(&needle);
    context.extend(&filler[at..]);
    context.extend(&question);
    Some(Tokenized {
        context,
        continuation,
    })
}

/// The default multiples of the training length.
pub fn default_extrapolation() -> Vec<usize> {
    vec![2, 4]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(tokens: &[u32]) -> String {
        tokens.iter().map(|&t| char::from(t as u8)).collect()
    }

    #[test]
    fn the_key_sits_at_its_depth_and_the_context_fills_the_length() {
        let filler: Vec<u32> = "abcdefghij".repeat(30).bytes().map(u32::from).collect();
        let needle = " The pass key is 12345. Remember it. 12345 is the pass key.";
        let question = " What is the pass key? The pass key is";
        for (depth, before) in [(0.0, 0), (0.5, 60), (1.0, 120)] {
            let item = passkey_item(&BenchTokenizer::Bytes, &filler, 223, depth, 12345).unwrap();
            assert_eq!(item.context.len() + item.continuation.len(), 223);
            assert_eq!(text(&item.continuation), " 12345");
            let context = text(&item.context);
            assert_eq!(
                context.find(needle),
                Some(before),
                "depth {depth}: {context}"
            );
            assert!(context.ends_with(question));
            assert_eq!(context[..before], text(&filler[..before]));
        }
        // Too short a filler, or a length the sentences alone exceed: no item.
        assert!(passkey_item(&BenchTokenizer::Bytes, &filler[..50], 223, 0.5, 1).is_none());
        assert!(passkey_item(&BenchTokenizer::Bytes, &filler, 64, 0.5, 1).is_none());
    }
}
