//! Fitness: how much better than the campaign's baseline an experiment is, on a scale that does
//! not saturate, so programs far above the baseline stay ordered.
//!
//! ```text
//! loss_term  = ln(baseline_val_loss / val_loss)                          log-ratio, > 0 is better
//! task_term  = mean over shared tasks of logit(accuracy) − logit(baseline_accuracy)
//! judge_term = (judge − 5.5) / 4.5                                        a 1–10 score → [−1, 1]
//! fitness    = (w_loss · loss_term + w_task · task_term + w_judge · judge_term)
//!              / (w_loss + w_task + w_judge)
//! ```
//! A run equal to the baseline scores 0 ([`BASELINE`]); halving the loss adds ln 2 ≈ 0.69 to
//! the loss term however good the baseline already is. The task term is the log-odds ratio,
//! i.e. the log-ratio of accuracy plus the log-ratio of error, so it resolves both ends: 0.99
//! against 0.999 differs as much as 0.5 against 0.91 (both about tenfold odds). Accuracies are clamped to
//! [[`ACCURACY_FLOOR`], 1 − [`ACCURACY_FLOOR`]] (a perfect score on finitely many items is not
//! infinitely good), losses to at least [`LOSS_FLOOR`]. The judge term counts only when a
//! judge ran; its weight is then part of the sum.
//!
//! Optional cost terms (weights 0 by default) charge what the checker computes exactly for the
//! mixer against the baseline's, outside the normalised quality:
//! ```text
//! fitness −= c_params · ln((params + 1) / (baseline_params + 1))
//!          + c_flops  · ln((flops_per_token + 1) / (baseline_flops_per_token + 1))
//!          + c_state  · ln((state_size + 1) / (baseline_state_size + 1))
//! ```
//! so with `c_flops: 0.1` a mixer twice as expensive per token must gain 0.07 in quality.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The fitness of a run exactly as good as the baseline.
pub const BASELINE: f64 = 0.0;
/// Accuracies are clamped to `[ACCURACY_FLOOR, 1 − ACCURACY_FLOOR]` before the logit.
pub const ACCURACY_FLOOR: f64 = 1e-3;
/// Validation losses are clamped to at least this before the log-ratio.
pub const LOSS_FLOOR: f64 = 1e-6;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FitnessWeights {
    #[serde(default = "half")]
    #[schemars(range(min = 0.0, max = 1000.0))]
    pub loss: f64,
    #[serde(default = "half")]
    #[schemars(range(min = 0.0, max = 1000.0))]
    pub task: f64,
    #[serde(default = "judge_default")]
    #[schemars(range(min = 0.0, max = 1000.0))]
    pub judge: f64,
    /// Charges for what the mixer costs against the baseline's (all 0: quality alone).
    #[serde(default)]
    pub cost: CostWeights,
    /// No longer used: fitness was `σ(sharpness · gain)` and saturated at the top. Accepted so
    /// that older manifests and stored campaigns still load; never written.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub sharpness: Option<f64>,
}

fn half() -> f64 {
    0.5
}
fn judge_default() -> f64 {
    0.2
}

impl Default for FitnessWeights {
    fn default() -> Self {
        FitnessWeights {
            loss: half(),
            task: half(),
            judge: judge_default(),
            cost: CostWeights::default(),
            sharpness: None,
        }
    }
}

/// Weights of the cost terms, per unit of log-ratio against the baseline's cost.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CostWeights {
    /// The mixer's learned parameters.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1000.0))]
    pub params: f64,
    /// The mixer's forward FLOPs per token at the stage's sequence length.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1000.0))]
    pub flops_per_token: f64,
    /// The numbers the mixer keeps per sequence to go on generating.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1000.0))]
    pub state_size: f64,
}

impl CostWeights {
    /// Whether any cost term counts (then costs must be computed).
    pub fn any(&self) -> bool {
        self.params != 0.0 || self.flops_per_token != 0.0 || self.state_size != 0.0
    }
}

/// What a mixer costs, as the checker computes it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Cost {
    pub params: u64,
    pub flops_per_token: u64,
    pub state_size: u64,
}

impl Cost {
    /// The cost of `program` under `check` (the stage's width and length); `None` when it
    /// does not check.
    pub fn of(program: &str, check: &archspec::CheckConfig) -> Option<Cost> {
        let unlimited = archspec::CheckConfig {
            max_complexity: None,
            ..check.clone()
        };
        let analysis = archspec::check_source(program, &unlimited).ok()?.analysis;
        Some(Cost {
            params: analysis.params,
            flops_per_token: analysis.flops_per_token,
            state_size: analysis.state_size,
        })
    }
}

/// The numbers fitness is computed from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scores {
    pub val_loss: f64,
    pub accuracy: BTreeMap<String, f64>,
    /// A judge's 1–10 score, when an LLM judge ran.
    pub judge: Option<f64>,
    /// The mixer's cost, when a cost term counts.
    pub cost: Option<Cost>,
}

fn logit(accuracy: f64) -> f64 {
    let p = accuracy.clamp(ACCURACY_FLOOR, 1.0 - ACCURACY_FLOOR);
    (p / (1.0 - p)).ln()
}

/// Fitness of `run` against `baseline`, or `None` when the run has no finite loss.
pub fn fitness(run: &Scores, baseline: &Scores, weights: &FitnessWeights) -> Option<f64> {
    if !run.val_loss.is_finite() || !baseline.val_loss.is_finite() || baseline.val_loss <= 0.0 {
        return None;
    }
    let loss_term = (baseline.val_loss.max(LOSS_FLOOR) / run.val_loss.max(LOSS_FLOOR)).ln();
    let shared: Vec<f64> = baseline
        .accuracy
        .iter()
        .filter_map(|(task, base)| run.accuracy.get(task).map(|acc| logit(*acc) - logit(*base)))
        .filter(|gain| gain.is_finite())
        .collect();
    let task_term = if shared.is_empty() {
        0.0
    } else {
        shared.iter().sum::<f64>() / shared.len() as f64
    };
    let mut total = weights.loss * loss_term + weights.task * task_term;
    let mut weight_sum = weights.loss + weights.task;
    if let Some(judge) = run.judge.filter(|j| j.is_finite()) {
        total += weights.judge * (judge.clamp(1.0, 10.0) - 5.5) / 4.5;
        weight_sum += weights.judge;
    }
    let charge = match (run.cost, baseline.cost) {
        (Some(run), Some(base)) => {
            let ratio = |a: u64, b: u64| ((a as f64 + 1.0) / (b as f64 + 1.0)).ln();
            let c = &weights.cost;
            c.params * ratio(run.params, base.params)
                + c.flops_per_token * ratio(run.flops_per_token, base.flops_per_token)
                + c.state_size * ratio(run.state_size, base.state_size)
        }
        _ => 0.0,
    };
    (weight_sum > 0.0).then(|| total / weight_sum - charge)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(loss: f64, recall: f64) -> Scores {
        Scores {
            val_loss: loss,
            accuracy: BTreeMap::from([("mqar".to_string(), recall)]),
            judge: None,
            cost: None,
        }
    }

    fn close(got: f64, expected: f64) {
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
    }

    #[test]
    fn halving_the_loss_adds_ln_2_to_the_loss_term_at_any_level() {
        // Equal recall, no judge: fitness is 0.5 · ln(baseline / loss).
        let weights = FitnessWeights::default();
        let near = fitness(&scores(1.0, 0.5), &scores(2.0, 0.5), &weights).unwrap();
        let far = fitness(&scores(0.01, 0.5), &scores(0.02, 0.5), &weights).unwrap();
        close(near, 0.5 * 2f64.ln());
        close(far, near);
    }

    #[test]
    fn programs_far_above_the_baseline_stay_ordered() {
        // The quickstart's top two (validation loss 0.104 and 0.119 against the baseline's
        // 1.806, recall both perfect) scored 1.000 and 1.000 under σ(10 · gain).
        let weights = FitnessWeights::default();
        let baseline = scores(1.806, 0.3);
        let first = fitness(&scores(0.104, 1.0), &baseline, &weights).unwrap();
        let second = fitness(&scores(0.119, 1.0), &baseline, &weights).unwrap();
        assert!(first - second > 0.05, "{first} vs {second}");
        close(first - second, 0.5 * (0.119f64 / 0.104).ln());
    }

    #[test]
    fn the_task_term_is_the_mean_log_odds_ratio_over_the_shared_tasks() {
        // A task the baseline lacks counts not at all; 0.5 → 0.91 and 0.99 → 0.999 are each
        // about a tenfold change in odds.
        let accuracy = |pairs: &[(&str, f64)]| {
            pairs
                .iter()
                .map(|(task, value)| (task.to_string(), *value))
                .collect::<BTreeMap<_, _>>()
        };
        let baseline = Scores {
            val_loss: 2.0,
            accuracy: accuracy(&[("mqar", 0.5), ("text", 0.99)]),
            judge: None,
            cost: None,
        };
        let run = Scores {
            val_loss: 2.0,
            accuracy: accuracy(&[("mqar", 0.91), ("text", 0.999), ("new", 0.1)]),
            judge: None,
            cost: None,
        };
        let got = fitness(&run, &baseline, &FitnessWeights::default()).unwrap();
        let odds = |p: f64| p / (1.0 - p);
        let expected =
            0.5 * ((odds(0.91) / odds(0.5)).ln() + (odds(0.999) / odds(0.99)).ln()) / 2.0;
        close(got, expected);
        assert!(((odds(0.91) / odds(0.5)) / (odds(0.999) / odds(0.99)) - 1.0).abs() < 0.01);
    }

    #[test]
    fn perfect_and_zero_scores_are_clamped_not_infinite() {
        let weights = FitnessWeights::default();
        let got = fitness(&scores(0.0, 1.0), &scores(1.0, 0.0), &weights).unwrap();
        let floor = ACCURACY_FLOOR;
        let expected = 0.5 * (1.0 / LOSS_FLOOR).ln() + 0.5 * 2.0 * ((1.0 - floor) / floor).ln();
        close(got, expected);
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
        // A judge's score alone is then the fitness: 10 → 1, 1 → −1, 5.5 → 0.
        for (judge, expected) in [(10.0, 1.0), (1.0, -1.0), (5.5, 0.0), (40.0, 1.0)] {
            let judged = Scores {
                judge: Some(judge),
                ..scores(1.8, 0.6)
            };
            close(fitness(&judged, &baseline, &weights).unwrap(), expected);
        }
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
    fn equal_to_the_baseline_is_zero_and_better_is_higher() {
        let weights = FitnessWeights::default();
        let baseline = scores(2.0, 0.5);
        close(fitness(&baseline, &baseline, &weights).unwrap(), BASELINE);
        let better = fitness(&scores(1.8, 0.7), &baseline, &weights).unwrap();
        let worse = fitness(&scores(2.4, 0.3), &baseline, &weights).unwrap();
        assert!(better > BASELINE && worse < BASELINE);
    }

    #[test]
    fn a_judge_score_moves_fitness_by_its_weight() {
        let weights = FitnessWeights::default();
        let baseline = scores(2.0, 0.5);
        let mut judged = baseline.clone();
        judged.judge = Some(10.0);
        // (0.5·0 + 0.5·0 + 0.2·1) / 1.2
        close(fitness(&judged, &baseline, &weights).unwrap(), 0.2 / 1.2);
    }

    #[test]
    fn the_retired_sharpness_is_read_and_ignored() {
        let weights: FitnessWeights = serde_json::from_str(r#"{"sharpness": 10.0}"#).unwrap();
        assert_eq!(weights.sharpness, Some(10.0));
        let written = serde_json::to_string(&weights).unwrap();
        assert!(!written.contains("sharpness"), "{written}");
        let baseline = scores(2.0, 0.5);
        assert_eq!(
            fitness(&scores(1.0, 0.9), &baseline, &weights),
            fitness(&scores(1.0, 0.9), &baseline, &FitnessWeights::default())
        );
    }

    #[test]
    fn no_finite_loss_no_fitness() {
        let weights = FitnessWeights::default();
        assert_eq!(
            fitness(&scores(f64::NAN, 0.9), &scores(2.0, 0.5), &weights),
            None
        );
    }

    #[test]
    fn cost_terms_charge_the_log_ratio_of_what_the_mixer_costs() {
        let weights = FitnessWeights {
            cost: CostWeights {
                params: 0.0,
                flops_per_token: 0.1,
                state_size: 0.05,
            },
            ..FitnessWeights::default()
        };
        let cost = |flops: u64, state: u64| {
            Some(Cost {
                params: 7,
                flops_per_token: flops,
                state_size: state,
            })
        };
        let baseline = Scores {
            cost: cost(999, 63),
            ..scores(2.0, 0.5)
        };
        // Same quality, twice the FLOPs and four times the state (counted + 1).
        let run = Scores {
            cost: cost(1999, 255),
            ..scores(2.0, 0.5)
        };
        let expected = -(0.1 * 2f64.ln() + 0.05 * 4f64.ln());
        close(fitness(&run, &baseline, &weights).unwrap(), expected);
        // Without costs on both sides, or with zero weights, quality alone counts.
        let unknown = Scores {
            cost: None,
            ..run.clone()
        };
        close(fitness(&unknown, &baseline, &weights).unwrap(), 0.0);
        close(
            fitness(&run, &baseline, &FitnessWeights::default()).unwrap(),
            0.0,
        );
        assert!(weights.cost.any() && !CostWeights::default().any());
        // Parameters count by their own weight: twice the parameters (counted + 1) at 0.2.
        let by_params = FitnessWeights {
            cost: CostWeights {
                params: 0.2,
                flops_per_token: 0.0,
                state_size: 0.0,
            },
            ..FitnessWeights::default()
        };
        let bigger = Scores {
            cost: Some(Cost {
                params: 15,
                flops_per_token: 999,
                state_size: 63,
            }),
            ..scores(2.0, 0.5)
        };
        close(
            fitness(&bigger, &baseline, &by_params).unwrap(),
            -0.2 * 2f64.ln(),
        );
    }

    #[test]
    fn the_cost_is_the_checker_s_exact_analysis_at_the_stage_s_width_and_length() {
        let config = archspec::CheckConfig {
            d_model: 32,
            seq_len: 64,
            ..archspec::CheckConfig::default()
        };
        let source = |name: &str| archspec::library::get(name).unwrap().source;
        let linear = Cost::of(source("linear_attention"), &config).unwrap();
        let softmax = Cost::of(source("softmax_rope"), &config).unwrap();
        let analysis = archspec::check_source(source("softmax_rope"), &config)
            .unwrap()
            .analysis;
        assert_eq!(softmax.flops_per_token, analysis.flops_per_token);
        assert_eq!(softmax.state_size, analysis.state_size);
        assert!(softmax.flops_per_token > linear.flops_per_token);
        // A quadratic program has a cost even where the campaign limits complexity.
        let limited = archspec::CheckConfig {
            max_complexity: Some(archspec::Complexity::Linear),
            ..config.clone()
        };
        assert_eq!(Cost::of(source("softmax_rope"), &limited), Some(softmax));
        assert_eq!(Cost::of("mixer broken(", &config), None);
    }
}
