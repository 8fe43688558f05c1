//! The shared scorer: each request's log-likelihood and greedy match under the model, then
//! the harness's metrics. A request's tokens are cut as the harness cuts them
//! (`(context + continuation)[-(max_length + 1):][:-1]`) and requests are run in batches
//! padded on the right, which a causal model does not see.

use super::encode::Tokenized;
use super::{Benchmark, Doc};
use crate::events::BenchmarkScore;
use crate::model::LanguageModel;
use crate::params::ParamStore;
use burn::Tensor;
use burn::tensor::{Device, Int, TensorData, activation};

/// One request's score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// Summed log-probability of the continuation's tokens (natural log).
    pub log_likelihood: f64,
    /// Whether every continuation token is the model's argmax.
    pub greedy: bool,
}

/// Scores every request of `benchmark`, in doc order then request order.
pub fn log_likelihoods(
    model: &LanguageModel,
    store: &ParamStore,
    benchmark: &Benchmark,
    seq_len: usize,
    batch_size: usize,
    device: &Device,
) -> Vec<Vec<Scored>> {
    let flat: Vec<(usize, usize, &Tokenized)> = benchmark
        .tokens
        .iter()
        .enumerate()
        .flat_map(|(doc, requests)| {
            requests
                .iter()
                .enumerate()
                .map(move |(request, tokens)| (doc, request, tokens))
        })
        .collect();
    // Longest first, as the harness orders them: a batch's padding stays small.
    let mut order: Vec<usize> = (0..flat.len()).collect();
    order.sort_by_key(|&index| {
        let tokens = flat[index].2;
        std::cmp::Reverse(tokens.context.len() + tokens.continuation.len())
    });
    let mut scores: Vec<Vec<Scored>> = benchmark
        .tokens
        .iter()
        .map(|requests| {
            vec![
                Scored {
                    log_likelihood: f64::NAN,
                    greedy: false,
                };
                requests.len()
            ]
        })
        .collect();
    for batch in order.chunks(batch_size.max(1)) {
        let windows: Vec<Window> = batch
            .iter()
            .map(|&index| Window::of(flat[index].2, seq_len))
            .collect();
        for (&index, scored) in batch
            .iter()
            .zip(score_batch(model, store, &windows, device))
        {
            let (doc, request, _) = flat[index];
            scores[doc][request] = scored;
        }
    }
    scores
}

/// One request cut to the model's context: the input tokens, and the continuation's tokens
/// as the targets of the last `continuation.len()` inputs.
struct Window {
    inputs: Vec<u32>,
    continuation: Vec<u32>,
}

impl Window {
    fn of(tokens: &Tokenized, seq_len: usize) -> Window {
        let whole: Vec<u32> = tokens
            .context
            .iter()
            .chain(&tokens.continuation)
            .copied()
            .collect();
        let start = whole.len().saturating_sub(seq_len + 1);
        let mut inputs = whole[start..].to_vec();
        inputs.pop();
        Window {
            inputs,
            continuation: tokens.continuation.clone(),
        }
    }
}

fn score_batch(
    model: &LanguageModel,
    store: &ParamStore,
    windows: &[Window],
    device: &Device,
) -> Vec<Scored> {
    let width = windows
        .iter()
        .map(|w| w.inputs.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let rows = windows.len();
    let mut inputs = vec![0i64; rows * width];
    let mut targets = vec![0i64; rows * width];
    for (row, window) in windows.iter().enumerate() {
        let base = row * width;
        for (position, &token) in window.inputs.iter().enumerate() {
            inputs[base + position] = i64::from(token);
        }
        let first = window.inputs.len() - window.continuation.len().min(window.inputs.len());
        for (offset, &token) in window.continuation.iter().enumerate() {
            if first + offset < width {
                targets[base + first + offset] = i64::from(token);
            }
        }
    }
    let inputs: Tensor<2, Int> = Tensor::from_data(TensorData::new(inputs, [rows, width]), device);
    let target_tensor: Tensor<2, Int> =
        Tensor::from_data(TensorData::new(targets.clone(), [rows, width]), device);
    let logits = model.forward(&store.values, inputs, false);
    let predicted: Vec<i64> = logits
        .clone()
        .argmax(2)
        .reshape([rows * width])
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap_or_default();
    let picked: Vec<f32> = activation::log_softmax(logits, 2)
        .gather(2, target_tensor.reshape([rows, width, 1]))
        .reshape([rows * width])
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    windows
        .iter()
        .enumerate()
        .map(|(row, window)| {
            let base = row * width;
            let first = window.inputs.len() - window.continuation.len().min(window.inputs.len());
            let mut log_likelihood = 0.0;
            let mut greedy = true;
            for position in first..window.inputs.len() {
                let at = base + position;
                log_likelihood += f64::from(picked.get(at).copied().unwrap_or(f32::NAN));
                greedy &= predicted.get(at) == Some(&targets[at]);
            }
            Scored {
                log_likelihood,
                greedy,
            }
        })
        .collect()
}

/// The harness's metrics of one benchmark from its requests' scores.
pub fn metrics(benchmark: &Benchmark, scores: &[Vec<Scored>]) -> BenchmarkScore {
    let mut correct = Vec::with_capacity(scores.len());
    let mut correct_norm = Vec::new();
    let mut continuation_lls = Vec::new();
    for (doc, scored) in benchmark.docs.iter().zip(scores) {
        match doc {
            Doc::Choice { gold, lengths, .. } => {
                let lls: Vec<f64> = scored.iter().map(|s| s.log_likelihood).collect();
                correct.push(f64::from(u8::from(argmax(&lls) == *gold)));
                let normalised: Vec<f64> = lls
                    .iter()
                    .zip(lengths)
                    .map(|(ll, &length)| ll / length as f64)
                    .collect();
                correct_norm.push(f64::from(u8::from(argmax(&normalised) == *gold)));
            }
            Doc::Continuation(_) => {
                let scored = scored.first().copied().unwrap_or(Scored {
                    log_likelihood: f64::NAN,
                    greedy: false,
                });
                correct.push(f64::from(u8::from(scored.greedy)));
                continuation_lls.push(scored.log_likelihood);
            }
        }
    }
    let with_norm = benchmark.acc_norm && !correct_norm.is_empty();
    BenchmarkScore {
        task: benchmark.task.to_string(),
        n: correct.len(),
        acc: mean(&correct),
        acc_stderr: mean_stderr(&correct),
        acc_norm: with_norm.then(|| mean(&correct_norm)),
        acc_norm_stderr: if with_norm {
            mean_stderr(&correct_norm)
        } else {
            None
        },
        perplexity: (!continuation_lls.is_empty()).then(|| (-mean(&continuation_lls)).exp()),
    }
}

/// The first index of the largest value (`np.argmax`; a NaN is never the largest).
fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (index, value) in values.iter().enumerate() {
        if *value > values[best] || values[best].is_nan() && !value.is_nan() {
            best = index;
        }
    }
    best
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// The harness's `mean_stderr`: the sample standard deviation (n − 1) over √n.
fn mean_stderr(values: &[f64]) -> Option<f64> {
    let n = values.len();
    if n < 2 {
        return None;
    }
    let mu = mean(values);
    let variance = values.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / (n - 1) as f64;
    Some(variance.sqrt() / (n as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_of_equal_values_as_numpy_does() {
        assert_eq!(argmax(&[-1.0, -0.5, -0.5]), 1);
        assert_eq!(argmax(&[f64::NAN, -3.0]), 1);
    }

    #[test]
    fn the_standard_error_is_the_harness_s() {
        // lm_eval.api.metrics.mean_stderr([1, 0, 1, 1]) = stdev / sqrt(4) = 0.5 / 2.
        let stderr = mean_stderr(&[1.0, 0.0, 1.0, 1.0]).expect("n ≥ 2");
        assert!((stderr - 0.25).abs() < 1e-12, "{stderr}");
        assert_eq!(mean_stderr(&[1.0]), None);
    }

    #[test]
    fn a_window_keeps_the_last_tokens_and_scores_the_continuation() {
        let tokens = Tokenized {
            context: vec![1, 2, 3, 4],
            continuation: vec![5, 6],
        };
        let window = Window::of(&tokens, 4);
        // (context + continuation)[-5:][:-1]
        assert_eq!(window.inputs, vec![2, 3, 4, 5]);
        assert_eq!(window.continuation, vec![5, 6]);
    }
}
