//! Fitness: how much better than the campaign's baseline an experiment is, in (0, 1).
//!
//! ```text
//! loss_gain  = (baseline_val_loss - val_loss) / baseline_val_loss      relative, > 0 is better
//! task_gain  = mean over tasks of (accuracy - baseline_accuracy)        absolute, > 0 is better
//! fitness    = (w_loss · σ(k · loss_gain) + w_task · σ(k · task_gain) + w_judge · judge / 10)
//!              / (w_loss + w_task + w_judge)
//! ```
//! `σ` is the logistic function and `k` the sharpness (default 10: a 10% loss improvement gives
//! σ = 0.73). A run equal to the baseline scores 0.5 without a judge. The judge term (a 1–10
//! score from an LLM judge) counts only when present; its weight is then part of the sum.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FitnessWeights {
    #[serde(default = "half")]
    pub loss: f64,
    #[serde(default = "half")]
    pub task: f64,
    #[serde(default = "judge_default")]
    pub judge: f64,
    #[serde(default = "sharpness_default")]
    pub sharpness: f64,
}

fn half() -> f64 {
    0.5
}
fn judge_default() -> f64 {
    0.2
}
fn sharpness_default() -> f64 {
    10.0
}

impl Default for FitnessWeights {
    fn default() -> Self {
        FitnessWeights {
            loss: half(),
            task: half(),
            judge: judge_default(),
            sharpness: sharpness_default(),
        }
    }
}

/// The numbers fitness is computed from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scores {
    pub val_loss: f64,
    pub accuracy: BTreeMap<String, f64>,
    /// A judge's 1–10 score, when an LLM judge ran.
    pub judge: Option<f64>,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Fitness of `run` against `baseline`, or `None` when the run has no finite loss.
pub fn fitness(run: &Scores, baseline: &Scores, weights: &FitnessWeights) -> Option<f64> {
    if !run.val_loss.is_finite() || !baseline.val_loss.is_finite() || baseline.val_loss <= 0.0 {
        return None;
    }
    let loss_gain = (baseline.val_loss - run.val_loss) / baseline.val_loss;
    let shared: Vec<f64> = baseline
        .accuracy
        .iter()
        .filter_map(|(task, base)| run.accuracy.get(task).map(|acc| acc - base))
        .filter(|gain| gain.is_finite())
        .collect();
    let task_gain = if shared.is_empty() {
        0.0
    } else {
        shared.iter().sum::<f64>() / shared.len() as f64
    };
    let mut total = weights.loss * sigmoid(weights.sharpness * loss_gain)
        + weights.task * sigmoid(weights.sharpness * task_gain);
    let mut weight_sum = weights.loss + weights.task;
    if let Some(judge) = run.judge.filter(|j| j.is_finite()) {
        total += weights.judge * (judge.clamp(1.0, 10.0) / 10.0);
        weight_sum += weights.judge;
    }
    (weight_sum > 0.0).then(|| total / weight_sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(loss: f64, recall: f64) -> Scores {
        Scores {
            val_loss: loss,
            accuracy: BTreeMap::from([("mqar".to_string(), recall)]),
            judge: None,
        }
    }

    #[test]
    fn the_default_sharpness_is_the_documented_one() {
        // "a 10% loss improvement gives σ = 0.73": with equal recall and no judge, fitness is
        // (0.5 · σ(10 · 0.1) + 0.5 · σ(0)) / 1.
        let baseline = scores(2.0, 0.5);
        let got = fitness(&scores(1.8, 0.5), &baseline, &FitnessWeights::default()).unwrap();
        let expected = 0.5 / (1.0 + (-1.0f64).exp()) + 0.25;
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
        assert!((expected - 0.6155).abs() < 1e-4);
    }

    #[test]
    fn the_task_gain_is_the_mean_over_the_shared_tasks() {
        // Two tasks gaining 0.1 and 0.3 count as one gain of 0.2 (a task the baseline lacks
        // counts not at all): the loss term is 0.5 · σ(0), the task term 0.5 · σ(10 · 0.2).
        let accuracy = |pairs: &[(&str, f64)]| {
            pairs
                .iter()
                .map(|(task, value)| (task.to_string(), *value))
                .collect::<BTreeMap<_, _>>()
        };
        let baseline = Scores {
            val_loss: 2.0,
            accuracy: accuracy(&[("mqar", 0.5), ("text", 0.2)]),
            judge: None,
        };
        let run = Scores {
            val_loss: 2.0,
            accuracy: accuracy(&[("mqar", 0.6), ("text", 0.5), ("new", 0.9)]),
            judge: None,
        };
        let got = fitness(&run, &baseline, &FitnessWeights::default()).unwrap();
        let expected = 0.25 + 0.5 / (1.0 + (-2.0f64).exp());
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
    }

    #[test]
    fn weights_that_sum_to_zero_give_no_fitness() {
        let weights = FitnessWeights {
            loss: 0.0,
            task: 0.0,
            ..FitnessWeights::default()
        };
        let baseline = scores(2.0, 0.5);
        assert_eq!(fitness(&scores(1.8, 0.6), &baseline, &weights), None);
        // A judge's score alone is then the fitness.
        let judged = Scores {
            judge: Some(7.0),
            ..scores(1.8, 0.6)
        };
        let got = fitness(&judged, &baseline, &weights).unwrap();
        assert!((got - 0.7).abs() < 1e-12, "{got}");
    }

    #[test]
    fn a_baseline_without_a_usable_loss_gives_no_fitness() {
        let weights = FitnessWeights::default();
        let run = scores(1.0, 0.5);
        for loss in [f64::INFINITY, f64::NAN, 0.0, -1.0] {
            assert_eq!(fitness(&run, &scores(loss, 0.5), &weights), None, "{loss}");
            assert_eq!(
                fitness(&scores(loss, 0.5), &run, &weights).is_none(),
                !loss.is_finite()
            );
        }
    }

    #[test]
    fn equal_to_the_baseline_is_one_half_and_better_is_higher() {
        let weights = FitnessWeights::default();
        let baseline = scores(2.0, 0.5);
        assert!((fitness(&baseline, &baseline, &weights).unwrap() - 0.5).abs() < 1e-12);
        let better = fitness(&scores(1.8, 0.7), &baseline, &weights).unwrap();
        let worse = fitness(&scores(2.4, 0.3), &baseline, &weights).unwrap();
        assert!(better > 0.5 && worse < 0.5 && better < 1.0 && worse > 0.0);
    }

    #[test]
    fn a_judge_score_moves_fitness_by_its_weight() {
        let weights = FitnessWeights::default();
        let baseline = scores(2.0, 0.5);
        let mut judged = baseline.clone();
        judged.judge = Some(10.0);
        // (0.5·0.5 + 0.5·0.5 + 0.2·1.0) / 1.2
        assert!((fitness(&judged, &baseline, &weights).unwrap() - 0.7 / 1.2).abs() < 1e-12);
    }

    #[test]
    fn no_finite_loss_no_fitness() {
        let weights = FitnessWeights::default();
        assert_eq!(
            fitness(&scores(f64::NAN, 0.9), &scores(2.0, 0.5), &weights),
            None
        );
    }
}
