//! Verification results: each promoted program's mean and 95% interval over its training seeds,
//! which of them count as new state of the art, and the discovery curve.
//!
//! A verified program is a new state of the art when the upper end of its validation-loss
//! interval lies below the mean of the current state of the art — the baseline at first, then
//! the last win (programs are taken in the order their verification finished). A win at the
//! exploration scale alone never counts.

use super::lifecycle::{Experiment, ExperimentId, Origin, Phase, Stage};
use super::stats::{MeanInterval, mean_interval};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifiedProgram {
    /// The exploration experiment that was promoted.
    pub source: ExperimentId,
    pub name: String,
    /// Runs that finished (of the seeds tried).
    pub runs: usize,
    pub tried: usize,
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
    pub baseline: Option<MeanInterval>,
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

/// Summarises every completed verification in memory.
pub fn summarise(experiments: &[Experiment]) -> Verification {
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
                runs: runs.iter().filter(|e| e.summary().is_some()).count(),
                tried: runs.len(),
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
    let mut reference = baseline.map(|b| b.mean);
    let mut count = 0;
    for program in &mut programs {
        if let Some(best) = reference
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
        baseline,
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
