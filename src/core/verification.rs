//! Verification results: each promoted program's mean and 95% interval over its training seeds,
//! which of them count as new state of the art, and the discovery curve.
//!
//! A verified program is a new state of the art when the upper end of its validation-loss
//! interval lies below the mean of the current state of the art — the baseline at first, then
//! the last win (programs are taken in the order their verification finished). A win at the
//! exploration scale alone never counts.
//!
//! No claim rests on too few runs: a program, and the baseline it is compared with, need
//! `required_runs` finished runs (the campaign's `verification.seeds`, at least
//! [`MIN_RUNS`]). One surviving run has no interval at all; it would otherwise pass with a
//! width of zero. A program short of runs is listed with its shortfall and never counts.

use super::lifecycle::{Experiment, ExperimentId, Origin, Phase, Stage};
use super::stats::{MeanInterval, mean_interval};
use serde::Serialize;
use std::collections::BTreeMap;

/// The fewest finished runs any state-of-the-art claim rests on.
pub const MIN_RUNS: usize = 2;

/// Finished runs a claim needs when the campaign verifies under `seeds` training seeds.
pub fn required_runs(seeds: u32) -> usize {
    (seeds as usize).max(MIN_RUNS)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifiedProgram {
    /// The exploration experiment that was promoted.
    pub source: ExperimentId,
    pub name: String,
    /// Runs that finished (of the seeds tried).
    pub runs: usize,
    pub tried: usize,
    /// Finished runs still missing before this program may be compared (0 when complete).
    pub shortfall: usize,
    pub val_loss: MeanInterval,
    pub accuracy: BTreeMap<String, MeanInterval>,
    pub fitness: Option<MeanInterval>,
    pub state_of_the_art: bool,
    /// Trainer hours spent in the campaign when its last run ended.
    pub compute_hours_at: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurvePoint {
    pub compute_hours: f64,
    pub discoveries: u32,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Verification {
    /// Finished runs each claim needs (the baseline's and each program's).
    pub required_runs: usize,
    pub baseline: Option<MeanInterval>,
    /// Finished baseline runs still missing before anything can be compared with it.
    pub baseline_shortfall: usize,
    pub baseline_accuracy: BTreeMap<String, MeanInterval>,
    pub programs: Vec<VerifiedProgram>,
    /// Cumulative verified state-of-the-art count against compute spent.
    pub curve: Vec<CurvePoint>,
}

impl Verification {
    pub fn discoveries(&self) -> u32 {
        self.programs.iter().filter(|p| p.state_of_the_art).count() as u32
    }
}

/// Summarises every completed verification in memory; claims need `required_runs` finished
/// runs (see [`required_runs`]).
pub fn summarise(experiments: &[Experiment], required_runs: usize) -> Verification {
    let required_runs = required_runs.max(MIN_RUNS);
    let verification: Vec<&Experiment> = experiments
        .iter()
        .filter(|e| e.stage == Stage::Verification)
        .collect();
    let baseline_runs: Vec<&Experiment> = verification
        .iter()
        .copied()
        .filter(|e| e.origin == Origin::Seed)
        .collect();
    let baseline = mean_interval(&val_losses(&baseline_runs));
    let mut groups: BTreeMap<ExperimentId, Vec<&Experiment>> = BTreeMap::new();
    for run in verification
        .iter()
        .filter(|e| e.origin == Origin::Verification)
    {
        if let Some(source) = run.parent {
            groups.entry(source).or_default().push(run);
        }
    }
    let mut programs: Vec<(ExperimentId, VerifiedProgram)> = Vec::new();
    for (source, runs) in groups {
        if runs.iter().any(|e| !e.phase.is_terminal()) {
            continue;
        }
        let Some(val_loss) = mean_interval(&val_losses(&runs)) else {
            continue;
        };
        let last_id = runs.iter().map(|e| e.id).max().unwrap_or(source);
        let compute_seconds: f64 = experiments
            .iter()
            .filter(|e| e.id <= last_id)
            .map(Experiment::compute_seconds)
            .sum();
        let name = experiments
            .iter()
            .find(|e| e.id == source)
            .map_or_else(|| format!("experiment {source}"), |e| e.name.clone());
        let fitness: Vec<f64> = runs.iter().filter_map(|e| e.fitness).collect();
        programs.push((
            last_id,
            VerifiedProgram {
                source,
                name,
                runs: val_loss.runs,
                tried: runs.len(),
                shortfall: required_runs.saturating_sub(val_loss.runs),
                val_loss,
                accuracy: accuracies(&runs),
                fitness: mean_interval(&fitness),
                state_of_the_art: false,
                compute_hours_at: compute_seconds / 3600.0,
            },
        ));
    }
    programs.sort_by_key(|p| p.0);
    let mut programs: Vec<VerifiedProgram> = programs.into_iter().map(|(_, p)| p).collect();
    let mut curve = vec![CurvePoint {
        compute_hours: 0.0,
        discoveries: 0,
    }];
    let baseline_shortfall = required_runs.saturating_sub(baseline.map_or(0, |b| b.runs));
    let mut reference = baseline.filter(|_| baseline_shortfall == 0).map(|b| b.mean);
    let mut count = 0;
    for program in &mut programs {
        if let Some(best) = reference
            && program.shortfall == 0
            && program.val_loss.upper() < best
        {
            program.state_of_the_art = true;
            reference = Some(program.val_loss.mean);
            count += 1;
        }
        curve.push(CurvePoint {
            compute_hours: program.compute_hours_at,
            discoveries: count,
        });
    }
    let total_hours = experiments
        .iter()
        .map(Experiment::compute_seconds)
        .sum::<f64>()
        / 3600.0;
    curve.push(CurvePoint {
        compute_hours: total_hours,
        discoveries: count,
    });
    Verification {
        required_runs,
        baseline,
        baseline_shortfall,
        baseline_accuracy: accuracies(&baseline_runs),
        programs,
        curve,
    }
}

fn val_losses(runs: &[&Experiment]) -> Vec<f64> {
    runs.iter()
        .filter(|e| e.phase == Phase::Succeeded)
        .filter_map(|e| e.summary().map(|s| s.val_loss))
        .collect()
}

fn accuracies(runs: &[&Experiment]) -> BTreeMap<String, MeanInterval> {
    let mut by_task: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for summary in runs.iter().filter_map(|e| e.summary()) {
        for (task, value) in &summary.accuracy {
            by_task.entry(task.clone()).or_default().push(*value);
        }
    }
    by_task
        .into_iter()
        .filter_map(|(task, values)| mean_interval(&values).map(|m| (task, m)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::lifecycle::{Attempt, Outcome, TrainSummary};

    /// A verification run (a seed's when `source` is `None`) that finished with `val_loss`, or
    /// crashed when `val_loss` is `None`.
    fn run(id: u64, source: Option<u64>, val_loss: Option<f64>) -> Experiment {
        let mut e = Experiment::new(id, Stage::Verification, source, vec![]);
        e.origin = if source.is_some() {
            Origin::Verification
        } else {
            Origin::Seed
        };
        e.name = source.map_or("baseline".into(), |s| format!("p{s}"));
        e.phase = if val_loss.is_some() {
            Phase::Succeeded
        } else {
            Phase::Failed
        };
        e.attempts.push(Attempt {
            number: 1,
            program: String::new(),
            outcome: Some(match val_loss {
                Some(val_loss) => Outcome::Finished {
                    summary: TrainSummary {
                        val_loss,
                        accuracy: BTreeMap::new(),
                        wall_s: 1.0,
                        params: 10,
                        benchmarks: BTreeMap::new(),
                    },
                },
                None => Outcome::Crashed {
                    message: "killed".into(),
                    log_tail: String::new(),
                },
            }),
            progress: vec![],
            structure: None,
        });
        e
    }

    /// Experiments: the baseline's runs, then each program's runs in order (ids ascending, so
    /// programs finish in the order given).
    fn campaign(baseline: &[Option<f64>], programs: &[&[Option<f64>]]) -> Vec<Experiment> {
        let mut experiments = Vec::new();
        let mut id = 100;
        for loss in baseline {
            id += 1;
            experiments.push(run(id, None, *loss));
        }
        for (index, losses) in programs.iter().enumerate() {
            for loss in *losses {
                id += 1;
                experiments.push(run(id, Some(index as u64 + 1), *loss));
            }
        }
        experiments
    }

    fn claims(verification: &Verification) -> Vec<bool> {
        verification
            .programs
            .iter()
            .map(|p| p.state_of_the_art)
            .collect()
    }

    // Baseline 1.0, 1.2, 1.4: mean 1.2, half-width t(2)·0.2/√3 = 0.497 (lower end 0.703).
    const BASELINE: [Option<f64>; 3] = [Some(1.0), Some(1.2), Some(1.4)];

    #[test]
    fn a_lower_mean_is_not_enough_the_upper_end_must_clear_the_reference_mean() {
        // Mean 1.0 < 1.2 but upper end 1.0 + 0.248 > 1.2: no claim (a mean-vs-mean rule would
        // claim). Mean 0.85, upper end 0.974 < 1.2: a claim, although it does not clear the
        // baseline's lower end 0.703 (a rule comparing interval ends would refuse it).
        let a: &[Option<f64>] = &[Some(0.9), Some(1.0), Some(1.1)];
        let b: &[Option<f64>] = &[Some(0.8), Some(0.85), Some(0.9)];
        let verification = summarise(&campaign(&BASELINE, &[a, b]), 3);
        assert!(verification.programs[0].val_loss.half_width > 0.2);
        assert!(verification.programs[0].val_loss.mean < 1.2);
        assert_eq!(claims(&verification), [false, true]);
        assert_eq!(verification.discoveries(), 1);
    }

    #[test]
    fn after_a_win_the_next_claim_is_measured_against_the_win() {
        // b wins against the baseline (mean 0.85); c's upper end 0.974 clears the baseline's
        // 1.2 but not b's 0.85; d's upper end 0.674 clears 0.85.
        let b: &[Option<f64>] = &[Some(0.8), Some(0.85), Some(0.9)];
        let c: &[Option<f64>] = &[Some(0.8), Some(0.85), Some(0.9)];
        let d: &[Option<f64>] = &[Some(0.5), Some(0.55), Some(0.6)];
        let verification = summarise(&campaign(&BASELINE, &[b, c, d]), 3);
        assert_eq!(claims(&verification), [true, false, true]);
        let points: Vec<u32> = verification.curve.iter().map(|p| p.discoveries).collect();
        assert_eq!(points, [0, 1, 1, 2, 2]);
    }

    #[test]
    fn one_finished_run_of_three_is_never_a_discovery() {
        let lucky: &[Option<f64>] = &[Some(0.01), None, None];
        let verification = summarise(&campaign(&BASELINE, &[lucky]), 3);
        let program = &verification.programs[0];
        assert_eq!((program.runs, program.tried, program.shortfall), (1, 3, 2));
        assert!(!program.state_of_the_art);
        assert_eq!(verification.discoveries(), 0);
    }

    #[test]
    fn two_of_three_runs_are_short_of_three_seeds_but_enough_under_two() {
        let program: &[Option<f64>] = &[Some(0.1), Some(0.12), None];
        let three = summarise(&campaign(&BASELINE, &[program]), 3);
        assert_eq!(three.programs[0].shortfall, 1);
        assert_eq!(claims(&three), [false]);
        let two = summarise(&campaign(&BASELINE, &[program]), 2);
        assert_eq!(claims(&two), [true]);
        // A campaign verifying under one seed still needs two runs for a claim.
        assert_eq!(required_runs(1), MIN_RUNS);
        let one: &[Option<f64>] = &[Some(0.1)];
        let single = summarise(&campaign(&BASELINE, &[one]), 1);
        assert_eq!(single.required_runs, 2);
        assert_eq!(claims(&single), [false]);
    }

    #[test]
    fn a_baseline_with_too_few_runs_supports_no_claim() {
        let baseline = [Some(1.2), None, None];
        let clear_win: &[Option<f64>] = &[Some(0.1), Some(0.11), Some(0.12)];
        let verification = summarise(&campaign(&baseline, &[clear_win]), 3);
        assert_eq!(verification.baseline_shortfall, 2);
        assert_eq!(claims(&verification), [false]);
    }

    #[test]
    fn programs_still_running_are_not_summarised() {
        let mut experiments = campaign(&BASELINE, &[&[Some(0.1), Some(0.1), Some(0.1)]]);
        experiments.last_mut().expect("a run").phase = Phase::Training;
        assert!(summarise(&experiments, 3).programs.is_empty());
    }
    #[test]
    fn programs_carry_their_name_accuracy_and_the_compute_spent_when_they_finished() {
        let program: &[Option<f64>] = &[Some(0.8), Some(0.85), Some(0.9)];
        let mut experiments = campaign(&BASELINE, &[program]);
        for e in &mut experiments {
            if let Some(Attempt {
                outcome: Some(Outcome::Finished { summary }),
                ..
            }) = e.attempts.last_mut()
            {
                summary.accuracy = BTreeMap::from([("mqar".to_string(), 0.75)]);
            }
        }
        let mut source = Experiment::new(1, Stage::Exploration, None, vec![]);
        source.name = "gla-paper-12".into();
        experiments.push(source);
        // An exploration that ran after verification: counted in the total, not in the point.
        let mut later = run(200, None, Some(2.0));
        later.stage = Stage::Exploration;
        later.attempts[0].outcome = Some(Outcome::Finished {
            summary: TrainSummary {
                val_loss: 2.0,
                accuracy: BTreeMap::new(),
                wall_s: 54.0,
                params: 10,
                benchmarks: BTreeMap::new(),
            },
        });
        experiments.push(later);
        let verification = summarise(&experiments, 3);
        let program = &verification.programs[0];
        assert_eq!(program.name, "gla-paper-12");
        assert!((program.accuracy["mqar"].mean - 0.75).abs() < 1e-12);
        assert!((verification.baseline_accuracy["mqar"].mean - 0.75).abs() < 1e-12);
        // Six verification runs of one second each had ended when the program finished.
        assert!((program.compute_hours_at - 6.0 / 3600.0).abs() < 1e-12);
        let total = verification.curve.last().expect("a curve").compute_hours;
        assert!((total - 60.0 / 3600.0).abs() < 1e-12, "{total}");
    }
}
