//! How often the claim rule claims a program that is no better than the best, measured by
//! simulation under a campaign's own noise.
//!
//! Each trial is a campaign in memory: the baseline seed, the best program `best` (clearly
//! better than the baseline, so its claim stands) and a promoted `twin` with exactly the same
//! quality — the best program under another name — either `best`'s child or its sibling (the
//! baseline's child). Every program is retrained under the same seeds, with seed-to-seed
//! noise drawn from [`Noise`], and [`verification::summarise`] decides. A claim of `twin` is a
//! false claim. The noise is the campaign's own: the residuals of every verified program's
//! runs around its mean, on the scales fitness uses (log loss, log-odds of accuracy). A share
//! `shared` of each seed's deviation is common to all programs (what pairing removes); the
//! rest is each program's own.

use super::fitness::ACCURACY_FLOOR;
use super::lifecycle::{Attempt, Experiment, Origin, Phase, Stage, TrainSummary};
use super::verification::{self, Rules, Verification};
use rand::Rng;
use serde::Serialize;
use std::collections::BTreeMap;

/// Seed-to-seed deviations, as measured in a campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Noise {
    /// The baseline's mean validation loss and accuracies: where the simulated programs sit.
    pub val_loss: f64,
    pub accuracy: BTreeMap<String, f64>,
    /// Deviations of ln(validation loss) from each verified program's mean.
    pub log_loss: Vec<f64>,
    /// Per task, deviations of logit(accuracy) from each program's mean.
    pub log_odds: BTreeMap<String, Vec<f64>>,
}

impl Noise {
    /// The noise of a campaign's verification: residuals of every program with at least two
    /// finished runs (scaled by √(n/(n−1)), so that they have the spread of a run, not of a
    /// residual). `None` before the baseline has two finished runs.
    pub fn measured(experiments: &[Experiment], verification: &Verification) -> Option<Noise> {
        let baseline = verification.baseline.filter(|b| b.runs >= 2)?;
        let mut groups: BTreeMap<verification::Subject, Vec<&TrainSummary>> = BTreeMap::new();
        for run in experiments
            .iter()
            .filter(|e| e.stage == Stage::Verification && e.phase == Phase::Succeeded)
        {
            let subject = match run.origin {
                Origin::Seed => verification::Subject::Seed {
                    name: run.name.clone(),
                },
                _ => match run.parent {
                    Some(id) => verification::Subject::Explored { id },
                    None => continue,
                },
            };
            if let Some(summary) = run.summary().filter(|s| s.val_loss.is_finite()) {
                groups.entry(subject).or_default().push(summary);
            }
        }
        let mut log_loss = Vec::new();
        let mut log_odds: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for runs in groups.values().filter(|runs| runs.len() >= 2) {
            let values: Vec<f64> = runs.iter().map(|s| s.val_loss.max(1e-12).ln()).collect();
            log_loss.extend(residuals(&values));
            let tasks: std::collections::BTreeSet<&String> =
                runs.iter().flat_map(|s| s.accuracy.keys()).collect();
            for task in tasks {
                let values: Vec<f64> = runs
                    .iter()
                    .filter_map(|s| s.accuracy.get(task).map(|a| logit(*a)))
                    .collect();
                if values.len() >= 2 {
                    log_odds
                        .entry(task.clone())
                        .or_default()
                        .extend(residuals(&values));
                }
            }
        }
        Some(Noise {
            val_loss: baseline.mean,
            accuracy: verification
                .baseline_accuracy
                .iter()
                .map(|(task, m)| (task.clone(), m.mean))
                .collect(),
            log_loss,
            log_odds,
        })
    }

    /// Whether there is any spread to draw from.
    pub fn is_degenerate(&self) -> bool {
        self.log_loss.iter().all(|r| *r == 0.0)
            && self.log_odds.values().flatten().all(|r| *r == 0.0)
    }
}

fn logit(accuracy: f64) -> f64 {
    let p = accuracy.clamp(ACCURACY_FLOOR, 1.0 - ACCURACY_FLOOR);
    (p / (1.0 - p)).ln()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn residuals(values: &[f64]) -> Vec<f64> {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let scale = (n / (n - 1.0)).sqrt();
    values.iter().map(|v| (v - mean) * scale).collect()
}

/// Where the twin comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lineage {
    /// The twin is the best program's child: it is compared with it as current best and parent.
    Child,
    /// The twin is the baseline's child: it is compared with the best and with the baseline.
    Sibling,
}

/// The measured rate of one scenario.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    pub lineage: Lineage,
    pub shared: f64,
    pub trials: usize,
    pub false_claims: usize,
    /// Trials in which the best program's own claim stood (the scenario is as intended).
    pub best_claimed: usize,
    pub rate: f64,
    /// Wilson's 95% interval of the rate.
    pub low: f64,
    pub high: f64,
}

/// How much better (in log loss and log-odds) the best program is than the baseline: far
/// enough that its own claim stands, so the twin is tested against it.
const BEST_GAIN: f64 = 2.0;

/// Runs `trials` simulated campaigns of `lineage` under `noise` with `seeds` training seeds.
pub fn false_claim_rate(
    noise: &Noise,
    lineage: Lineage,
    shared: f64,
    seeds: u32,
    trials: usize,
    rng: &mut impl Rng,
) -> Rate {
    let shared = shared.clamp(0.0, 1.0);
    let rules = Rules {
        required_runs: verification::required_runs(seeds),
        ..Rules::with_baseline("baseline")
    };
    let (mut false_claims, mut best_claimed) = (0, 0);
    for _ in 0..trials {
        let experiments = trial(noise, lineage, shared, seeds, rng);
        let verification = verification::summarise(&experiments, &rules);
        for program in &verification.programs {
            match program.name.as_str() {
                "best" => best_claimed += usize::from(program.state_of_the_art),
                _ => false_claims += usize::from(program.state_of_the_art),
            }
        }
    }
    let (low, high) = wilson(false_claims, trials);
    Rate {
        lineage,
        shared,
        trials,
        false_claims,
        best_claimed,
        rate: false_claims as f64 / trials.max(1) as f64,
        low,
        high,
    }
}

/// Wilson's 95% score interval of `k` successes in `n` trials.
fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (n, p, z) = (n as f64, k as f64 / n as f64, 1.959_964);
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / (1.0 + z * z / n);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// One campaign's memory: explorations, then verification runs in the planner's order.
fn trial(
    noise: &Noise,
    lineage: Lineage,
    shared: f64,
    seeds: u32,
    rng: &mut impl Rng,
) -> Vec<Experiment> {
    const BASELINE: u64 = 1;
    const BEST: u64 = 2;
    const TWIN: u64 = 3;
    let twin_parent = match lineage {
        Lineage::Child => BEST,
        Lineage::Sibling => BASELINE,
    };
    let mut experiments = vec![
        exploration(BASELINE, Origin::Seed, "baseline", None, 0.0),
        exploration(BEST, Origin::Proposal, "best", Some(BASELINE), 2.0),
        exploration(TWIN, Origin::Proposal, "twin", Some(twin_parent), 1.9),
    ];
    // Each seed's deviation common to every program, per scale.
    let draw = |pool: &[f64], rng: &mut dyn rand::RngCore| -> f64 {
        if pool.is_empty() {
            0.0
        } else {
            pool[rng.random_range(0..pool.len())]
        }
    };
    let common: Vec<(f64, BTreeMap<String, f64>)> = (0..seeds)
        .map(|_| {
            let loss = draw(&noise.log_loss, rng);
            let odds = noise
                .log_odds
                .iter()
                .map(|(task, pool)| (task.clone(), draw(pool, rng)))
                .collect();
            (loss, odds)
        })
        .collect();
    let mut id = 10;
    for (subject, gain) in [
        (None, 0.0),
        (Some(BEST), BEST_GAIN),
        (Some(TWIN), BEST_GAIN),
    ] {
        for (replica, (shared_loss, shared_odds)) in common.iter().enumerate() {
            let own = draw(&noise.log_loss, rng);
            let log_loss = noise.val_loss.max(1e-12).ln() - gain
                + shared.sqrt() * shared_loss
                + (1.0 - shared).sqrt() * own;
            let accuracy = noise
                .accuracy
                .iter()
                .map(|(task, base)| {
                    let pool = noise.log_odds.get(task).map_or(&[][..], Vec::as_slice);
                    let own = draw(pool, rng);
                    let common = shared_odds.get(task).copied().unwrap_or(0.0);
                    let odds =
                        logit(*base) + gain + shared.sqrt() * common + (1.0 - shared).sqrt() * own;
                    (task.clone(), sigmoid(odds))
                })
                .collect();
            id += 1;
            let mut run = Experiment::new(id, Stage::Verification, subject, vec![]);
            run.origin = if subject.is_some() {
                Origin::Verification
            } else {
                Origin::Seed
            };
            run.name = if subject.is_some() {
                String::new()
            } else {
                "baseline".into()
            };
            run.replica = replica as u32;
            run.phase = Phase::Succeeded;
            run.attempts.push(finished(log_loss.exp(), accuracy));
            experiments.push(run);
        }
    }
    experiments
}

fn exploration(
    id: u64,
    origin: Origin,
    name: &str,
    parent: Option<u64>,
    fitness: f64,
) -> Experiment {
    let mut e = Experiment::new(id, Stage::Exploration, parent, vec![]);
    e.origin = origin;
    e.name = name.into();
    e.phase = Phase::Succeeded;
    e.fitness = Some(fitness);
    e
}

fn finished(val_loss: f64, accuracy: BTreeMap<String, f64>) -> Attempt {
    let summary = TrainSummary {
        val_loss,
        accuracy,
        wall_s: 1.0,
        params: 1,
        benchmarks: BTreeMap::new(),
    };
    Attempt::finished(1, String::new(), summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::lifecycle::Outcome;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    /// Noise like the quickstart's: a few percent in loss, a few points of accuracy.
    fn noise() -> Noise {
        let mut rng = SmallRng::seed_from_u64(7);
        let normal = |rng: &mut SmallRng| {
            // Box–Muller.
            let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        };
        Noise {
            val_loss: 1.8,
            accuracy: BTreeMap::from([("mqar".to_string(), 0.3)]),
            log_loss: (0..60).map(|_| 0.03 * normal(&mut rng)).collect(),
            log_odds: BTreeMap::from([(
                "mqar".to_string(),
                (0..60).map(|_| 0.2 * normal(&mut rng)).collect(),
            )]),
        }
    }

    #[test]
    fn the_best_under_another_name_is_claimed_at_most_five_percent_of_the_time() {
        let noise = noise();
        let mut rng = SmallRng::seed_from_u64(11);
        for lineage in [Lineage::Child, Lineage::Sibling] {
            for shared in [0.0, 0.5, 0.9] {
                let rate = false_claim_rate(&noise, lineage, shared, 3, 2000, &mut rng);
                assert!(rate.rate <= 0.05, "{rate:?}");
                // The scenario is as meant: the best's own claim stands, and the rule is not
                // merely refusing everything.
                assert!(
                    rate.best_claimed as f64 > 0.9 * rate.trials as f64,
                    "{rate:?}"
                );
                assert!(rate.low <= rate.rate && rate.rate <= rate.high);
            }
        }
    }

    #[test]
    fn a_twin_that_is_better_is_claimed_so_the_rule_has_power() {
        // The same machinery with the twin's loss e times lower than the best's: the rule must
        // claim it most of the time, or a low false-claim rate means nothing.
        let noise = noise();
        let mut rng = SmallRng::seed_from_u64(5);
        let rules = Rules::with_baseline("baseline");
        let mut claimed = 0;
        for _ in 0..200 {
            let mut experiments = trial(&noise, Lineage::Child, 0.5, 3, &mut rng);
            for run in experiments.iter_mut().filter(|e| e.parent == Some(3)) {
                if let Some(Attempt {
                    outcome: Some(Outcome::Finished { summary }),
                    ..
                }) = run.attempts.last_mut()
                {
                    summary.val_loss *= (-1.0f64).exp();
                }
            }
            let verification = verification::summarise(&experiments, &rules);
            claimed += verification
                .programs
                .iter()
                .filter(|p| p.name == "twin" && p.state_of_the_art)
                .count();
        }
        assert!(claimed > 120, "{claimed} of 200");
    }

    #[test]
    fn noise_is_measured_from_every_verified_program_s_residuals() {
        let noise = noise();
        let mut rng = SmallRng::seed_from_u64(3);
        let experiments = trial(&noise, Lineage::Sibling, 0.0, 3, &mut rng);
        let rules = Rules::with_baseline("baseline");
        let verification = verification::summarise(&experiments, &rules);
        let measured = Noise::measured(&experiments, &verification).unwrap();
        // Three programs of three runs each.
        assert_eq!(measured.log_loss.len(), 9);
        assert_eq!(measured.log_odds["mqar"].len(), 9);
        // Residuals of each program sum to zero.
        for chunk in measured.log_loss.chunks(3) {
            assert!(chunk.iter().sum::<f64>().abs() < 1e-9, "{chunk:?}");
        }
        assert!(!measured.is_degenerate());
        assert!((measured.val_loss - verification.baseline.unwrap().mean).abs() < 1e-12);
        let (low, high) = wilson(5, 100);
        assert!((low - 0.0215).abs() < 1e-3 && (high - 0.1118).abs() < 1e-3);
    }
}
