//! Verification results and the rule that makes a claim.
//!
//! Verification retrains, under the same `verification.seeds` training seeds, the baseline,
//! the campaign's best seed, and each promoted exploration together with its parent. A run's
//! replica fixes its data order and initialisation, so runs of two programs with the same
//! replica form a pair. A promoted program is claimed as a new state of the art when, over the
//! pairs it shares with each comparator — the current best (the verified program with the
//! highest mean fitness so far, claimed or not, or the baseline), its parent and the best
//! seed — its fitness is higher and the
//! paired t-test of the difference is significant (two-sided: the difference's 95% interval
//! lies above 0), and its Holm-adjusted p over every program tested so far in the campaign is
//! at most [`ALPHA`]. The program's p is the largest of its comparisons' (a claim must beat
//! all of them, so no further correction is due across comparators). Programs are
//! taken in the order their verification finished; as the family grows, Holm's adjusted p of
//! an earlier claim can rise above α, and that claim is withdrawn with the reason.
//!
//! Fitness here is every run's own fitness (no judge) against the mean of the baseline's
//! verification runs, so it weighs the metrics exploration weighs; each comparison also
//! reports the paired difference of validation loss and of every task's accuracy, with its
//! 95% interval, effect size and Wilcoxon's signed-rank p beside the t-test's. A win at the
//! exploration scale alone never counts, and no claim rests on fewer than
//! `required_runs` pairs (the campaign's `verification.seeds`, at least [`MIN_RUNS`]).

use super::fitness::{FitnessWeights, Scores, fitness};
use super::ladder::{self, RungRule};
use super::lifecycle::{Experiment, ExperimentId, Level, Origin, Phase, Stage};
use super::stats::{self, Better, MeanInterval, PairedTest, mean_interval};
use crate::api::CampaignSpec;
use serde::Serialize;
use std::collections::BTreeMap;

/// The fewest finished runs any state-of-the-art claim rests on.
pub const MIN_RUNS: usize = 2;

/// The significance level of a claim (one-sided, after Holm's correction).
pub const ALPHA: f64 = 0.05;

/// Finished runs a claim needs when the campaign verifies under `seeds` training seeds.
pub fn required_runs(seeds: u32) -> usize {
    (seeds as usize).max(MIN_RUNS)
}

/// What the claim rule needs from a campaign's spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub baseline: String,
    /// Paired runs each comparison needs (see [`required_runs`]).
    pub required_runs: usize,
    /// How many explorations verification promotes.
    pub promote: usize,
    pub weights: FitnessWeights,
    /// The verification scale's width and length, which the mixers' costs depend on (when a
    /// cost term counts).
    pub check: archspec::CheckConfig,
    /// The rungs between exploration and verification, smallest first.
    pub ladder: Vec<RungRule>,
}

impl Rules {
    /// A campaign's defaults (three seeds, two promotions, the default weights) around
    /// `baseline`.
    pub fn with_baseline(baseline: &str) -> Rules {
        Rules {
            baseline: baseline.to_string(),
            required_runs: 3,
            promote: 2,
            weights: FitnessWeights::default(),
            check: archspec::CheckConfig::default(),
            ladder: Vec::new(),
        }
    }

    pub fn of(spec: &CampaignSpec) -> Rules {
        Rules {
            baseline: spec.baseline.clone(),
            required_runs: required_runs(spec.stages.verification.seeds),
            promote: spec.stages.verification.promote as usize,
            weights: spec.fitness.clone(),
            check: scale_of(&spec.stages.verification.train),
            ladder: spec
                .stages
                .rungs
                .iter()
                .map(|rung| RungRule {
                    promote: rung.promote as usize,
                    seeds: rung.seeds,
                    check: scale_of(&rung.train),
                })
                .collect(),
        }
    }

    /// The check settings at `level` above exploration (for the mixers' costs).
    pub fn check_at(&self, level: Level) -> &archspec::CheckConfig {
        match level.stage {
            Stage::Screening => self
                .ladder
                .get((level.rung as usize).wrapping_sub(1))
                .map_or(&self.check, |rung| &rung.check),
            Stage::Exploration | Stage::Verification => &self.check,
        }
    }
}

/// A training config's width and length, as the checker sees a mixer there.
fn scale_of(train: &trainer::TrainConfig) -> archspec::CheckConfig {
    archspec::CheckConfig {
        d_model: train.model.d_model,
        seq_len: train.data.seq_len,
        // No complexity cap (the default): a cost is measured here, never refused.
        ..archspec::CheckConfig::default()
    }
}

/// A program as verification retrains it: a seed of the campaign by name (the baseline among
/// them), or an exploration by id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Subject {
    Seed { name: String },
    Explored { id: ExperimentId },
}

impl Subject {
    /// How verification retrains the exploration `experiment`.
    pub fn of(experiment: &Experiment) -> Subject {
        match experiment.origin {
            Origin::Seed => Subject::Seed {
                name: experiment.name.clone(),
            },
            Origin::Proposal | Origin::Verification => Subject::Explored { id: experiment.id },
        }
    }

    /// The exploration run of this program.
    pub fn exploration<'a>(&self, experiments: &'a [Experiment]) -> Option<&'a Experiment> {
        experiments.iter().find(|e| {
            e.stage == Stage::Exploration
                && match self {
                    Subject::Explored { id } => e.id == *id,
                    Subject::Seed { name } => e.origin == Origin::Seed && e.name == *name,
                }
        })
    }

    /// The program's name, as its exploration run has it.
    pub fn name(&self, experiments: &[Experiment]) -> String {
        match (self, self.exploration(experiments)) {
            (_, Some(e)) => e.name.clone(),
            (Subject::Seed { name }, None) => name.clone(),
            (Subject::Explored { id }, None) => format!("experiment {id}"),
        }
    }

    /// Whether `run` retrains this subject at `level` (a screening rung or verification).
    pub fn owns_at(&self, run: &Experiment, level: Level) -> bool {
        run.level() == level
            && match self {
                Subject::Seed { name } => run.origin == Origin::Seed && run.name == *name,
                Subject::Explored { id } => {
                    run.origin == Origin::Verification && run.parent == Some(*id)
                }
            }
    }
}

/// Why a program is compared with another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The verified program with the highest mean fitness so far, or the baseline.
    CurrentBest,
    /// The exploration the program was made from.
    Parent,
    /// The seed with the best exploration fitness.
    BestSeed,
}

impl Role {
    pub fn describe(self) -> &'static str {
        match self {
            Role::CurrentBest => "the current best",
            Role::Parent => "its parent",
            Role::BestSeed => "the best seed",
        }
    }
}

/// The seed with the best exploration fitness (the first on a tie).
pub fn best_seed(experiments: &[Experiment]) -> Option<&Experiment> {
    experiments
        .iter()
        .filter(|e| e.stage == Stage::Exploration && e.origin == Origin::Seed)
        .filter(|e| e.phase == Phase::Succeeded)
        .filter_map(|e| e.fitness.filter(|f| f.is_finite()).map(|f| (e, f)))
        .fold(
            None,
            |best: Option<(&Experiment, f64)>, (e, f)| match best {
                Some((_, top)) if top >= f => best,
                _ => Some((e, f)),
            },
        )
        .map(|(e, _)| e)
}

/// The subject of `source`'s parent, when it has one in memory.
fn parent_of(experiments: &[Experiment], source: ExperimentId) -> Option<Subject> {
    let parent = experiments.iter().find(|e| e.id == source)?.parent?;
    experiments
        .iter()
        .find(|e| e.id == parent && e.stage == Stage::Exploration)
        .map(Subject::of)
}

/// Every program verification retrains, in the order the planner creates their runs: the
/// baseline, the best seed, then for each promoted exploration its parent and itself (each
/// once).
pub fn subjects(rules: &Rules, experiments: &[Experiment]) -> Vec<Subject> {
    let mut subjects = vec![Subject::Seed {
        name: rules.baseline.clone(),
    }];
    let mut add = |subject: Subject| {
        if !subjects.contains(&subject) {
            subjects.push(subject);
        }
    };
    if let Some(seed) = best_seed(experiments) {
        add(Subject::of(seed));
    }
    for source in ladder::promoted(rules, experiments) {
        if let Some(parent) = parent_of(experiments, source) {
            add(parent);
        }
        add(Subject::Explored { id: source });
    }
    subjects
}

/// One comparison of a promoted program with a comparator over their shared seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Every reason this comparator is one (the best seed can also be the parent).
    pub roles: Vec<Role>,
    pub against: String,
    pub subject: Subject,
    /// Why no test could be made, when none was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The test that gates the claim: fitness, higher is better.
    pub fitness: Option<PairedTest>,
    /// Validation loss, lower is better.
    pub val_loss: Option<PairedTest>,
    /// Each task's accuracy, higher is better.
    pub accuracy: BTreeMap<String, PairedTest>,
}

impl Comparison {
    /// The claim's p against this comparator (1 when the program is not better); `None` when
    /// there was no test.
    pub fn p(&self) -> Option<f64> {
        self.fitness.map(|t| if t.improves { t.p } else { 1.0 })
    }

    /// The comparator's roles in words: "its parent and the best seed".
    pub fn describe_roles(&self) -> String {
        let words: Vec<&str> = self.roles.iter().map(|r| r.describe()).collect();
        words.join(" and ")
    }
}

/// Where a verified program stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Claim {
    /// Better than every comparator, significant after Holm's correction.
    Claimed,
    /// Was claimed; the growing family raised its adjusted p above α.
    Withdrawn {
        reason: String,
    },
    NotClaimed {
        reason: String,
    },
    /// Retrained only to be compared with (a parent or the best seed): no claim is tested.
    Comparator,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifiedProgram {
    /// The exploration experiment that was retrained.
    pub source: ExperimentId,
    pub subject: Subject,
    pub name: String,
    /// Runs that finished (of the seeds tried).
    pub runs: usize,
    pub tried: usize,
    /// Finished runs still missing before this program may be compared (0 when complete).
    pub shortfall: usize,
    pub val_loss: MeanInterval,
    pub accuracy: BTreeMap<String, MeanInterval>,
    /// Each run's fitness against the baseline's verification mean.
    pub fitness: Option<MeanInterval>,
    pub comparisons: Vec<Comparison>,
    /// The largest of the comparisons' p (the claim must beat them all).
    pub p: Option<f64>,
    /// Holm's adjustment over every program tested in the campaign.
    pub adjusted_p: Option<f64>,
    pub claim: Claim,
    pub state_of_the_art: bool,
    /// Trainer hours spent in the campaign when its last run ended.
    pub compute_hours_at: f64,
}

/// The spread of the baseline's replicas: differences smaller than this are noise.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NoiseFloor {
    pub runs: usize,
    /// Standard deviation of validation loss over the training seeds.
    pub val_loss_sd: f64,
    /// The same relative to the mean (coefficient of variation).
    pub val_loss_cv: f64,
    /// Standard deviation of fitness over the seeds.
    pub fitness_sd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurvePoint {
    pub compute_hours: f64,
    pub discoveries: u32,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Verification {
    /// Paired runs each comparison needs.
    pub required_runs: usize,
    pub alpha: f64,
    pub baseline: Option<MeanInterval>,
    /// Finished baseline runs still missing before anything can be compared with it.
    pub baseline_shortfall: usize,
    pub baseline_accuracy: BTreeMap<String, MeanInterval>,
    pub noise_floor: Option<NoiseFloor>,
    /// Promoted programs, in the order their verification finished.
    pub programs: Vec<VerifiedProgram>,
    /// The best seed and parents retrained only to be compared with.
    pub comparators: Vec<VerifiedProgram>,
    /// Standing claims against compute spent (a withdrawal lowers it).
    pub curve: Vec<CurvePoint>,
    /// The rungs between exploration and verification, and how well each level predicted the
    /// next.
    pub ladder: ladder::LadderSummary,
}

impl Verification {
    pub fn discoveries(&self) -> u32 {
        self.programs.iter().filter(|p| p.state_of_the_art).count() as u32
    }
}

/// One finished run's numbers.
#[derive(Debug, Clone)]
struct RunScores {
    val_loss: f64,
    accuracy: BTreeMap<String, f64>,
    fitness: Option<f64>,
}

/// A subject's verification runs, by replica.
pub(super) struct Measured<'a> {
    pub(super) subject: Subject,
    pub(super) runs: Vec<&'a Experiment>,
    finished: BTreeMap<u32, RunScores>,
}

impl Measured<'_> {
    pub(super) fn complete(&self) -> bool {
        !self.runs.is_empty() && self.runs.iter().all(|e| e.phase.is_terminal())
    }

    fn last_id(&self) -> Option<ExperimentId> {
        self.runs.iter().map(|e| e.id).max()
    }

    fn values(&self, metric: impl Fn(&RunScores) -> Option<f64>) -> Vec<f64> {
        self.finished.values().filter_map(metric).collect()
    }

    /// Mean and interval of the finished runs' fitness.
    pub(super) fn fitness(&self) -> Option<MeanInterval> {
        mean_interval(&self.values(|r| r.fitness))
    }

    /// Mean and interval of the finished runs' validation loss.
    pub(super) fn val_loss(&self) -> Option<MeanInterval> {
        mean_interval(&self.values(|r| Some(r.val_loss)))
    }
}

fn measure<'a>(
    subject: Subject,
    experiments: &'a [Experiment],
    baseline: Option<&Scores>,
    rules: &Rules,
) -> Measured<'a> {
    measure_at(subject, experiments, Level::VERIFICATION, baseline, rules)
}

/// A subject's runs at `level`, each scored against `baseline` (no judge).
pub(super) fn measure_at<'a>(
    subject: Subject,
    experiments: &'a [Experiment],
    level: Level,
    baseline: Option<&Scores>,
    rules: &Rules,
) -> Measured<'a> {
    let weights = &rules.weights;
    let check = rules.check_at(level);
    let runs: Vec<&Experiment> = experiments
        .iter()
        .filter(|e| subject.owns_at(e, level))
        .collect();
    let finished = runs
        .iter()
        .filter(|e| e.phase == Phase::Succeeded)
        .filter_map(|e| {
            let summary = e.summary()?;
            let scores = Scores {
                val_loss: summary.val_loss,
                accuracy: summary.accuracy.clone(),
                judge: None,
                cost: cost_of(e, rules, check),
            };
            Some((
                e.replica,
                RunScores {
                    val_loss: summary.val_loss,
                    accuracy: summary.accuracy.clone(),
                    fitness: baseline.and_then(|b| fitness(&scores, b, weights)),
                },
            ))
        })
        .filter(|(_, r)| r.val_loss.is_finite())
        .collect();
    Measured {
        subject,
        runs,
        finished,
    }
}

/// The mixer's cost of a run, when a cost term counts.
fn cost_of(
    run: &Experiment,
    rules: &Rules,
    check: &archspec::CheckConfig,
) -> Option<super::fitness::Cost> {
    if !rules.weights.cost.any() {
        return None;
    }
    super::fitness::Cost::of(run.program()?, check)
}

pub(super) fn mean_scores(measured: &Measured<'_>, rules: &Rules) -> Option<Scores> {
    let n = measured.finished.len();
    if n == 0 {
        return None;
    }
    Some(Scores {
        val_loss: measured.finished.values().map(|r| r.val_loss).sum::<f64>() / n as f64,
        accuracy: accuracies(measured)
            .into_iter()
            .map(|(task, m)| (task, m.mean))
            .collect(),
        judge: None,
        cost: measured
            .runs
            .first()
            .and_then(|run| cost_of(run, rules, rules.check_at(run.level()))),
    })
}

fn accuracies(measured: &Measured<'_>) -> BTreeMap<String, MeanInterval> {
    let mut by_task: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for run in measured.finished.values() {
        for (task, value) in &run.accuracy {
            by_task.entry(task.clone()).or_default().push(*value);
        }
    }
    by_task
        .into_iter()
        .filter_map(|(task, values)| mean_interval(&values).map(|m| (task, m)))
        .collect()
}

/// The paired tests of `program` against `comparator`.
fn compare(
    program: &Measured<'_>,
    comparator: &Measured<'_>,
    roles: Vec<Role>,
    against: String,
    required_runs: usize,
) -> Comparison {
    let pairs: Vec<(&RunScores, &RunScores)> = program
        .finished
        .iter()
        .filter_map(|(replica, run)| comparator.finished.get(replica).map(|other| (run, other)))
        .collect();
    let metric = |value: &dyn Fn(&RunScores) -> Option<f64>, better: Better| {
        let values: Vec<(f64, f64)> = pairs
            .iter()
            .filter_map(|(a, b)| Some((value(a)?, value(b)?)))
            .collect();
        stats::paired(&values, better)
    };
    let mut tasks: Vec<&String> = pairs
        .iter()
        .flat_map(|(a, b)| a.accuracy.keys().filter(|t| b.accuracy.contains_key(*t)))
        .collect();
    tasks.sort();
    tasks.dedup();
    let accuracy = tasks
        .into_iter()
        .filter_map(|task| {
            let test = metric(&|r| r.accuracy.get(task).copied(), Better::Higher)?;
            Some((task.clone(), test))
        })
        .collect();
    let fitness = metric(&|r| r.fitness, Better::Higher);
    let problem = match fitness {
        _ if pairs.len() < required_runs => Some(format!(
            "{} of the {} paired runs a comparison needs finished on both sides",
            pairs.len(),
            required_runs
        )),
        None => Some("no fitness to compare (the baseline has no finished run)".to_string()),
        Some(_) => None,
    };
    Comparison {
        roles,
        against,
        subject: comparator.subject.clone(),
        problem: problem.clone(),
        fitness: fitness.filter(|_| problem.is_none()),
        val_loss: metric(&|r| Some(r.val_loss), Better::Lower),
        accuracy,
    }
}

/// The summary of one retrained program, before any claim is decided.
fn verified(
    measured: &Measured<'_>,
    experiments: &[Experiment],
    required_runs: usize,
) -> Option<VerifiedProgram> {
    let val_loss = mean_interval(&measured.values(|r| Some(r.val_loss)))?;
    let last_id = measured.last_id()?;
    let compute_seconds: f64 = experiments
        .iter()
        .filter(|e| e.id <= last_id)
        .map(Experiment::compute_seconds)
        .sum();
    let exploration = measured.subject.exploration(experiments);
    Some(VerifiedProgram {
        source: exploration.map_or(0, |e| e.id),
        subject: measured.subject.clone(),
        name: measured.subject.name(experiments),
        runs: val_loss.runs,
        tried: measured.runs.len(),
        shortfall: required_runs.saturating_sub(val_loss.runs),
        val_loss,
        accuracy: accuracies(measured),
        fitness: mean_interval(&measured.values(|r| r.fitness)),
        comparisons: Vec::new(),
        p: None,
        adjusted_p: None,
        claim: Claim::Comparator,
        state_of_the_art: false,
        compute_hours_at: compute_seconds / 3600.0,
    })
}

/// Why a tested program is not claimed: the comparisons it failed.
fn failures(comparisons: &[Comparison]) -> Vec<String> {
    comparisons
        .iter()
        .filter_map(|c| match (&c.problem, c.fitness) {
            (Some(problem), _) => Some(format!(
                "no comparison with {} {}: {problem}",
                c.describe_roles(),
                c.against
            )),
            (None, Some(test)) if !test.improves || test.p > ALPHA => Some(format!(
                "not better than {} {}: Δ fitness {:+.3} [{:+.3}, {:+.3}], p {:.3}",
                c.describe_roles(),
                c.against,
                test.delta,
                test.low,
                test.high,
                test.p
            )),
            _ => None,
        })
        .collect()
}

/// Summarises every completed verification in memory and decides its claims under `rules`.
pub fn summarise(experiments: &[Experiment], rules: &Rules) -> Verification {
    let required_runs = rules.required_runs.max(MIN_RUNS);
    let baseline_subject = Subject::Seed {
        name: rules.baseline.clone(),
    };
    // Fitness at verification is against the mean of the baseline's own verification runs.
    let reference = mean_scores(
        &measure(baseline_subject.clone(), experiments, None, rules),
        rules,
    );
    let measured: BTreeMap<Subject, Measured<'_>> = subjects(rules, experiments)
        .into_iter()
        .map(|s| {
            let m = measure(s.clone(), experiments, reference.as_ref(), rules);
            (s, m)
        })
        .collect();
    let ladder = ladder::summarise(rules, experiments);
    let Some(baseline_runs) = measured.get(&baseline_subject) else {
        return Verification {
            ladder,
            ..Verification::default()
        };
    };
    let baseline = mean_interval(&baseline_runs.values(|r| Some(r.val_loss)));
    let baseline_shortfall = required_runs.saturating_sub(baseline.map_or(0, |b| b.runs));
    let noise_floor = baseline.and_then(|b| {
        let val_loss_sd = stats::standard_deviation(&baseline_runs.values(|r| Some(r.val_loss)))?;
        Some(NoiseFloor {
            runs: b.runs,
            val_loss_sd,
            val_loss_cv: val_loss_sd / b.mean.abs().max(f64::MIN_POSITIVE),
            fitness_sd: stats::standard_deviation(&baseline_runs.values(|r| r.fitness))?,
        })
    });
    let promoted = ladder::promoted(rules, experiments);
    let best_seed = best_seed(experiments).map(Subject::of);
    let complete = |subject: &Subject| measured.get(subject).is_some_and(Measured::complete);

    // A promoted program is summarised once its runs, the baseline's and its fixed
    // comparators' have all ended.
    let mut ready: Vec<(ExperimentId, VerifiedProgram)> = Vec::new();
    for source in &promoted {
        let subject = Subject::Explored { id: *source };
        let parent = parent_of(experiments, *source);
        let fixed = [Some(&baseline_subject), parent.as_ref(), best_seed.as_ref()];
        if !complete(&subject) || !fixed.into_iter().flatten().all(&complete) {
            continue;
        }
        let Some(program) = measured
            .get(&subject)
            .and_then(|m| verified(m, experiments, required_runs))
        else {
            continue;
        };
        let last_id = measured[&subject].last_id().unwrap_or(*source);
        ready.push((last_id, program));
    }
    ready.sort_by_key(|(last, _)| *last);
    let mut programs: Vec<VerifiedProgram> = ready.into_iter().map(|(_, p)| p).collect();

    let mut curve = vec![CurvePoint {
        compute_hours: 0.0,
        discoveries: 0,
    }];
    // (index into programs, p) of every program tested so far.
    let mut family: Vec<(usize, f64)> = Vec::new();
    let mut standing: Vec<usize> = Vec::new();
    for k in 0..programs.len() {
        let subject = programs[k].subject.clone();
        // The best measured so far, claimed or not: a program no better than an earlier one
        // must not be claimed because that one's own evidence fell short.
        let current_best = programs[..k]
            .iter()
            .filter(|p| p.shortfall == 0)
            .filter_map(|p| p.fitness.map(|f| (p, f.mean)))
            .filter(|(_, mean)| *mean > super::fitness::BASELINE)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(baseline_subject.clone(), |(p, _)| p.subject.clone());
        let mut wanted: Vec<(Role, Subject)> = vec![(Role::CurrentBest, current_best)];
        if let Some(parent) = parent_of(experiments, programs[k].source) {
            wanted.push((Role::Parent, parent));
        }
        if let Some(seed) = &best_seed {
            wanted.push((Role::BestSeed, seed.clone()));
        }
        let mut grouped: Vec<(Vec<Role>, Subject)> = Vec::new();
        for (role, other) in wanted.into_iter().filter(|(_, s)| *s != subject) {
            match grouped.iter_mut().find(|(_, s)| *s == other) {
                Some((roles, _)) => roles.push(role),
                None => grouped.push((vec![role], other)),
            }
        }
        let comparisons: Vec<Comparison> = grouped
            .into_iter()
            .filter_map(|(roles, other)| {
                let comparator = measured.get(&other)?;
                let against = other.name(experiments);
                Some(compare(
                    &measured[&subject],
                    comparator,
                    roles,
                    against,
                    required_runs,
                ))
            })
            .collect();
        let program = &mut programs[k];
        let tested = program.shortfall == 0
            && baseline_shortfall == 0
            && comparisons.iter().all(|c| c.problem.is_none());
        program.p = comparisons
            .iter()
            .map(Comparison::p)
            .try_fold(0.0f64, |worst, p| p.map(|p| worst.max(p)))
            .filter(|_| tested);
        let mut reasons = failures(&comparisons);
        if program.shortfall > 0 {
            reasons.insert(
                0,
                format!(
                    "{} of the {required_runs} runs a claim needs finished",
                    program.runs
                ),
            );
        }
        if baseline_shortfall > 0 {
            reasons.insert(
                0,
                format!(
                    "the baseline has {} of the {required_runs} runs a claim needs",
                    baseline.map_or(0, |b| b.runs)
                ),
            );
        }
        program.comparisons = comparisons;
        if let Some(p) = program.p {
            family.push((k, p));
        }
        let adjusted = stats::holm(&family.iter().map(|(_, p)| *p).collect::<Vec<_>>());
        let adjusted_of = |index: usize| {
            family
                .iter()
                .position(|(i, _)| *i == index)
                .map(|at| adjusted[at])
        };
        for j in standing.clone() {
            if let Some(adj) = adjusted_of(j).filter(|adj| *adj > ALPHA) {
                programs[j].claim = Claim::Withdrawn {
                    reason: format!(
                        "Holm-adjusted p rose to {adj:.3} (> α = {ALPHA}) when {} programs had been tested",
                        family.len()
                    ),
                };
                programs[j].state_of_the_art = false;
                standing.retain(|s| *s != j);
            }
        }
        let adj = adjusted_of(k);
        let program = &mut programs[k];
        program.claim = match adj {
            Some(adj) if reasons.is_empty() && adj <= ALPHA => {
                program.state_of_the_art = true;
                standing.push(k);
                Claim::Claimed
            }
            Some(adj) if reasons.is_empty() => Claim::NotClaimed {
                reason: format!(
                    "better than every comparator, but the Holm-adjusted p {adj:.3} is above α = {ALPHA} with {} programs tested",
                    family.len()
                ),
            },
            _ => Claim::NotClaimed {
                reason: reasons.join("; "),
            },
        };
        curve.push(CurvePoint {
            compute_hours: program.compute_hours_at,
            discoveries: standing.len() as u32,
        });
    }
    let adjusted = stats::holm(&family.iter().map(|(_, p)| *p).collect::<Vec<_>>());
    for ((index, _), adj) in family.iter().zip(adjusted) {
        programs[*index].adjusted_p = Some(adj);
    }

    let claimed: Vec<&Subject> = programs.iter().map(|p| &p.subject).collect();
    let comparators: Vec<VerifiedProgram> = measured
        .values()
        .filter(|m| m.subject != baseline_subject && !claimed.contains(&&m.subject))
        .filter(|m| match &m.subject {
            Subject::Explored { id } => !promoted.contains(id),
            Subject::Seed { .. } => true,
        })
        .filter(|m| m.complete())
        .filter_map(|m| verified(m, experiments, required_runs))
        .collect();
    let total_hours = experiments
        .iter()
        .map(Experiment::compute_seconds)
        .sum::<f64>()
        / 3600.0;
    curve.push(CurvePoint {
        compute_hours: total_hours,
        discoveries: standing.len() as u32,
    });
    Verification {
        required_runs,
        alpha: ALPHA,
        baseline,
        baseline_shortfall,
        baseline_accuracy: accuracies(baseline_runs),
        noise_floor,
        programs,
        comparators,
        curve,
        ladder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::lifecycle::{Attempt, Outcome, TrainSummary};

    fn finished_attempt(val_loss: f64, accuracy: f64, wall_s: f64) -> Attempt {
        let summary = TrainSummary {
            val_loss,
            accuracy: BTreeMap::from([("mqar".to_string(), accuracy)]),
            wall_s,
            params: 10,
            benchmarks: BTreeMap::new(),
        };
        Attempt::finished(1, String::new(), summary)
    }

    /// A campaign under construction: explorations, then verification runs with ids counting
    /// up (so programs finish in the order their runs are added).
    struct Campaign {
        experiments: Vec<Experiment>,
        next_id: u64,
    }

    const BASE: u64 = 1;
    const OTHER_SEED: u64 = 2;

    impl Campaign {
        /// The baseline seed `base` (id 1) and a weaker seed `other` (id 2).
        fn new() -> Campaign {
            let mut campaign = Campaign {
                experiments: Vec::new(),
                next_id: 1,
            };
            campaign.explore(Origin::Seed, "base", None, 0.0);
            campaign.explore(Origin::Seed, "other", None, -0.5);
            campaign
        }

        fn explore(
            &mut self,
            origin: Origin,
            name: &str,
            parent: Option<u64>,
            fitness: f64,
        ) -> u64 {
            let id = self.next_id;
            self.next_id += 1;
            let mut e = Experiment::new(id, Stage::Exploration, parent, vec![]);
            e.origin = origin;
            e.name = name.into();
            e.phase = Phase::Succeeded;
            e.fitness = Some(fitness);
            e.attempts.push(finished_attempt(1.0, 0.5, 1.0));
            self.experiments.push(e);
            id
        }

        /// Verification runs of `subject`, replica by replica (`None`: a crashed run).
        fn verify(&mut self, subject: &Subject, losses: &[Option<f64>]) {
            for (replica, loss) in losses.iter().enumerate() {
                let id = self.next_id + 100;
                self.next_id += 1;
                let (origin, parent, name) = match subject {
                    Subject::Seed { name } => (Origin::Seed, None, name.clone()),
                    Subject::Explored { id } => (Origin::Verification, Some(*id), format!("e{id}")),
                };
                let mut e = Experiment::new(id, Stage::Verification, parent, vec![]);
                e.origin = origin;
                e.name = name;
                e.replica = replica as u32;
                match loss {
                    Some(loss) => {
                        e.phase = Phase::Succeeded;
                        e.attempts.push(finished_attempt(*loss, 0.5, 1.0));
                    }
                    None => {
                        e.phase = Phase::Failed;
                        e.attempts.push(Attempt {
                            number: 1,
                            program: String::new(),
                            outcome: Some(Outcome::Crashed {
                                message: "killed".into(),
                                log_tail: String::new(),
                            }),
                            progress: vec![],
                            structure: None,
                        });
                    }
                }
                self.experiments.push(e);
            }
        }

        fn summarise(&self, promote: usize) -> Verification {
            summarise(&self.experiments, &rules(promote))
        }
    }

    fn rules(promote: usize) -> Rules {
        Rules {
            promote,
            ..Rules::with_baseline("base")
        }
    }

    fn seed(name: &str) -> Subject {
        Subject::Seed { name: name.into() }
    }

    fn explored(id: u64) -> Subject {
        Subject::Explored { id }
    }

    fn some(values: &[f64]) -> Vec<Option<f64>> {
        values.iter().copied().map(Some).collect()
    }

    /// Losses `ratio` times lower than `base`'s on each seed, i.e. a fitness gain of
    /// 0.5 · ln(ratio) (no task differs).
    fn better(base: &[f64], log_gains: &[f64]) -> Vec<Option<f64>> {
        base.iter()
            .zip(log_gains)
            .map(|(loss, gain)| Some(loss / gain.exp()))
            .collect()
    }

    // The seeds move the loss a lot (1.0 to 1.4); programs differ by less.
    const BASELINE: [f64; 3] = [1.0, 1.2, 1.4];

    #[test]
    fn a_consistent_gain_under_shared_seeds_is_claimed_though_the_intervals_overlap() {
        let mut campaign = Campaign::new();
        let p = campaign.explore(Origin::Proposal, "p", Some(BASE), 1.0);
        campaign.verify(&seed("base"), &some(&BASELINE));
        let losses = better(&BASELINE, &[0.05, 0.06, 0.055]);
        campaign.verify(&explored(p), &losses);
        let verification = campaign.summarise(1);
        let program = &verification.programs[0];
        // Unpaired, the program's interval reaches far above the baseline's mean.
        assert!(program.val_loss.upper() > verification.baseline.unwrap().mean);
        assert_eq!(program.claim, Claim::Claimed, "{program:#?}");
        assert!(program.state_of_the_art);
        // The baseline is the current best, the parent and the best seed: one comparison.
        assert_eq!(program.comparisons.len(), 1);
        let comparison = &program.comparisons[0];
        assert_eq!(
            comparison.roles,
            [Role::CurrentBest, Role::Parent, Role::BestSeed]
        );
        let test = comparison.fitness.unwrap();
        assert_eq!(test.n, 3);
        assert!((test.delta - 0.5 * 0.055).abs() < 1e-12, "{test:?}");
        assert!(test.low > 0.0 && test.p < 0.01 && test.effect_size.unwrap() > 5.0);
        // Wilcoxon with three seeds cannot reach below 1/4, so it is reported, not gating.
        assert_eq!(test.wilcoxon_p, 0.25);
        let loss = comparison.val_loss.unwrap();
        assert!(loss.delta < 0.0 && loss.high < 0.0, "{loss:?}");
        assert_eq!(comparison.accuracy["mqar"].delta, 0.0);
        assert_eq!(program.adjusted_p, program.p);
        assert_eq!(verification.discoveries(), 1);
    }

    #[test]
    fn a_program_no_better_than_its_parent_is_not_claimed() {
        // q improves on the baseline only through its parent p, which verification retrains
        // beside it: against p it gains nothing.
        let mut campaign = Campaign::new();
        let p = campaign.explore(Origin::Proposal, "p", Some(BASE), 0.9);
        let q = campaign.explore(Origin::Proposal, "q", Some(p), 1.0);
        campaign.verify(&seed("base"), &some(&BASELINE));
        let parent = better(&BASELINE, &[0.3, 0.32, 0.31]);
        campaign.verify(&explored(p), &parent);
        let child: Vec<Option<f64>> = parent
            .iter()
            .zip([1.001, 0.999, 1.0])
            .map(|(l, f)| l.map(|l| l * f))
            .collect();
        campaign.verify(&explored(q), &child);
        // Only q is promoted: p is a comparator.
        let verification = campaign.summarise(1);
        assert_eq!(verification.programs.len(), 1);
        let program = &verification.programs[0];
        assert_eq!(program.name, "q");
        let Claim::NotClaimed { reason } = &program.claim else {
            panic!("{program:#?}");
        };
        assert!(reason.contains("not better than its parent p"), "{reason}");
        assert!(!reason.contains("current best"), "{reason}");
        assert_eq!(verification.comparators.len(), 1);
        assert_eq!(verification.comparators[0].name, "p");
        assert_eq!(verification.comparators[0].claim, Claim::Comparator);
        assert_eq!(verification.discoveries(), 0);
    }

    #[test]
    fn a_program_no_better_than_the_best_seed_is_not_claimed() {
        // `other` explored best among the seeds; the program beats the baseline it came from,
        // not `other`.
        let mut campaign = Campaign::new();
        campaign.experiments[1].fitness = Some(0.8);
        let p = campaign.explore(Origin::Proposal, "p", Some(BASE), 1.0);
        assert_eq!(
            best_seed(&campaign.experiments).map(|e| e.id),
            Some(OTHER_SEED)
        );
        assert_eq!(
            subjects(&rules(1), &campaign.experiments),
            [seed("base"), seed("other"), explored(p)]
        );
        campaign.verify(&seed("base"), &some(&BASELINE));
        campaign.verify(&seed("other"), &better(&BASELINE, &[0.4, 0.42, 0.41]));
        campaign.verify(&explored(p), &better(&BASELINE, &[0.2, 0.22, 0.21]));
        let verification = campaign.summarise(1);
        let program = &verification.programs[0];
        let Claim::NotClaimed { reason } = &program.claim else {
            panic!("{program:#?}");
        };
        assert!(
            reason.contains("not better than the best seed other"),
            "{reason}"
        );
        let roles: Vec<&[Role]> = program.comparisons.iter().map(|c| &c.roles[..]).collect();
        assert_eq!(
            roles,
            [
                &[Role::CurrentBest, Role::Parent][..],
                &[Role::BestSeed][..]
            ]
        );
    }

    #[test]
    fn the_best_program_under_another_name_is_never_claimed() {
        // The same program retrained under the same seeds gives the same runs: no difference
        // at all, p = 1.
        let mut campaign = Campaign::new();
        let p = campaign.explore(Origin::Proposal, "p", Some(BASE), 1.0);
        let twin = campaign.explore(Origin::Proposal, "p-renamed", Some(p), 0.99);
        let losses = better(&BASELINE, &[0.3, 0.32, 0.31]);
        campaign.verify(&seed("base"), &some(&BASELINE));
        campaign.verify(&explored(p), &losses);
        campaign.verify(&explored(twin), &losses);
        let verification = campaign.summarise(2);
        assert_eq!(verification.programs[0].claim, Claim::Claimed);
        let renamed = &verification.programs[1];
        assert_eq!(renamed.name, "p-renamed");
        assert_eq!(renamed.p, Some(1.0));
        assert!(
            matches!(renamed.claim, Claim::NotClaimed { .. }),
            "{renamed:#?}"
        );
        assert_eq!(verification.discoveries(), 1);
    }

    #[test]
    fn a_claim_is_withdrawn_when_holm_over_the_grown_family_lifts_it_above_alpha() {
        // Log-gains 0.10, 0.13, 0.07 on three seeds: t = 5.77, p = 0.0287. a alone is claimed
        // (family of one); b gains the same over a (and twice that over the baseline), so the
        // family holds two p of 0.0287, and Holm lifts both to 0.0574.
        let gains = [0.10, 0.13, 0.07];
        let mut campaign = Campaign::new();
        let a = campaign.explore(Origin::Proposal, "a", Some(BASE), 1.0);
        let b = campaign.explore(Origin::Proposal, "b", Some(BASE), 0.9);
        campaign.verify(&seed("base"), &some(&BASELINE));
        let a_losses = better(&BASELINE, &gains);
        campaign.verify(&explored(a), &a_losses);
        let a_plain: Vec<f64> = a_losses.iter().flatten().copied().collect();
        campaign.verify(&explored(b), &better(&a_plain, &gains));

        let after_a = summarise(
            &campaign.experiments[..campaign.experiments.len() - 3],
            &rules(2),
        );
        assert_eq!(after_a.programs.len(), 1);
        let p = after_a.programs[0].p.unwrap();
        assert!((p - 0.028_72).abs() < 1e-4, "{p}");
        assert_eq!(after_a.programs[0].claim, Claim::Claimed);

        let verification = campaign.summarise(2);
        let (first, second) = (&verification.programs[0], &verification.programs[1]);
        assert_eq!(second.comparisons[0].against, "a", "a was the current best");
        assert!((first.adjusted_p.unwrap() - 2.0 * p).abs() < 1e-9);
        let Claim::Withdrawn { reason } = &first.claim else {
            panic!("{first:#?}");
        };
        assert!(reason.contains("2 programs had been tested"), "{reason}");
        let Claim::NotClaimed { reason } = &second.claim else {
            panic!("{second:#?}");
        };
        assert!(reason.contains("Holm-adjusted p"), "{reason}");
        assert_eq!(verification.discoveries(), 0);
        let points: Vec<u32> = verification.curve.iter().map(|c| c.discoveries).collect();
        assert_eq!(points, [0, 1, 0, 0]);
    }

    #[test]
    fn clear_claims_stand_together_and_the_second_is_measured_against_the_first() {
        let mut campaign = Campaign::new();
        let a = campaign.explore(Origin::Proposal, "a", Some(BASE), 1.0);
        let b = campaign.explore(Origin::Proposal, "b", Some(a), 0.9);
        campaign.verify(&seed("base"), &some(&BASELINE));
        let a_losses = better(&BASELINE, &[0.30, 0.31, 0.305]);
        campaign.verify(&explored(a), &a_losses);
        let a_plain: Vec<f64> = a_losses.iter().flatten().copied().collect();
        campaign.verify(&explored(b), &better(&a_plain, &[0.20, 0.21, 0.205]));
        let verification = campaign.summarise(2);
        let claims: Vec<&Claim> = verification.programs.iter().map(|p| &p.claim).collect();
        assert_eq!(claims, [&Claim::Claimed, &Claim::Claimed]);
        let second = &verification.programs[1];
        // a is b's current best and its parent; the baseline is the best seed.
        assert_eq!(second.comparisons.len(), 2);
        assert_eq!(
            second.comparisons[0].roles,
            [Role::CurrentBest, Role::Parent]
        );
        assert_eq!(second.comparisons[1].against, "base");
        assert!(second.adjusted_p.unwrap() <= ALPHA);
        let points: Vec<u32> = verification.curve.iter().map(|c| c.discoveries).collect();
        assert_eq!(points, [0, 1, 2, 2]);
    }

    #[test]
    fn one_finished_run_of_three_is_never_a_discovery() {
        let mut campaign = Campaign::new();
        let p = campaign.explore(Origin::Proposal, "p", Some(BASE), 1.0);
        campaign.verify(&seed("base"), &some(&BASELINE));
        campaign.verify(&explored(p), &[Some(0.01), None, None]);
        let verification = campaign.summarise(1);
        let program = &verification.programs[0];
        assert_eq!((program.runs, program.tried, program.shortfall), (1, 3, 2));
        assert_eq!(program.p, None);
        let Claim::NotClaimed { reason } = &program.claim else {
            panic!("{program:#?}");
        };
        assert!(
            reason.starts_with("1 of the 3 runs a claim needs finished"),
            "{reason}"
        );
        assert!(reason.contains("1 of the 3 paired runs"), "{reason}");
        assert_eq!(verification.discoveries(), 0);
    }

    #[test]
    fn two_of_three_runs_are_short_of_three_seeds_but_enough_under_two() {
        let mut campaign = Campaign::new();
        let p = campaign.explore(Origin::Proposal, "p", Some(BASE), 1.0);
        campaign.verify(&seed("base"), &some(&BASELINE));
        let mut losses = better(&BASELINE, &[0.3, 0.32, 0.31]);
        losses[2] = None;
        campaign.verify(&explored(p), &losses);
        let three = campaign.summarise(1);
        assert_eq!(three.programs[0].shortfall, 1);
        assert!(!three.programs[0].state_of_the_art);
        let two = summarise(
            &campaign.experiments,
            &Rules {
                required_runs: 2,
                ..rules(1)
            },
        );
        assert_eq!(two.programs[0].claim, Claim::Claimed);
        assert_eq!(two.programs[0].comparisons[0].fitness.unwrap().n, 2);
        // A campaign verifying under one seed still needs two runs for a claim.
        assert_eq!(required_runs(1), MIN_RUNS);
    }

    #[test]
    fn a_baseline_with_too_few_runs_supports_no_claim() {
        let mut campaign = Campaign::new();
        let p = campaign.explore(Origin::Proposal, "p", Some(BASE), 1.0);
        campaign.verify(&seed("base"), &[Some(1.2), None, None]);
        campaign.verify(&explored(p), &some(&[0.1, 0.11, 0.12]));
        let verification = campaign.summarise(1);
        assert_eq!(verification.baseline_shortfall, 2);
        let Claim::NotClaimed { reason } = &verification.programs[0].claim else {
            panic!("{verification:#?}");
        };
        assert!(
            reason.starts_with("the baseline has 1 of the 3 runs"),
            "{reason}"
        );
    }

    #[test]
    fn programs_wait_for_their_own_runs_and_their_comparators() {
        let mut campaign = Campaign::new();
        let p = campaign.explore(Origin::Proposal, "p", Some(BASE), 0.9);
        let q = campaign.explore(Origin::Proposal, "q", Some(p), 1.0);
        campaign.verify(&seed("base"), &some(&BASELINE));
        campaign.verify(&explored(p), &some(&[0.5, 0.5, 0.5]));
        campaign.verify(&explored(q), &some(&[0.1, 0.1, 0.1]));
        let running = |index: usize| {
            let mut experiments = campaign.experiments.clone();
            experiments[index].phase = Phase::Training;
            summarise(&experiments, &rules(1))
        };
        let last = campaign.experiments.len() - 1;
        assert!(running(last).programs.is_empty(), "q's own run");
        assert!(running(last - 3).programs.is_empty(), "its parent's run");
        assert_eq!(campaign.summarise(1).programs.len(), 1);
    }

    #[test]
    fn the_noise_floor_is_the_spread_of_the_baseline_s_replicas() {
        let mut campaign = Campaign::new();
        campaign.explore(Origin::Proposal, "p", Some(BASE), 1.0);
        campaign.verify(&seed("base"), &some(&BASELINE));
        let floor = campaign.summarise(1).noise_floor.unwrap();
        assert_eq!(floor.runs, 3);
        assert!((floor.val_loss_sd - 0.2).abs() < 1e-12);
        assert!((floor.val_loss_cv - 0.2 / 1.2).abs() < 1e-12);
        // Fitness 0.5 · ln(1.2 / loss) on each seed.
        let fitness: Vec<f64> = BASELINE.iter().map(|l| 0.5 * (1.2 / l).ln()).collect();
        let sd = stats::standard_deviation(&fitness).unwrap();
        assert!((floor.fitness_sd - sd).abs() < 1e-12);
    }

    #[test]
    fn subjects_are_the_baseline_the_best_seed_then_each_parent_before_its_child() {
        let mut campaign = Campaign::new();
        campaign.experiments[1].fitness = Some(0.3);
        let p = campaign.explore(Origin::Proposal, "p", Some(OTHER_SEED), 0.9);
        let q = campaign.explore(Origin::Proposal, "q", Some(p), 1.0);
        let r = campaign.explore(Origin::Proposal, "r", Some(BASE), 0.8);
        // Not promoted: level with the baseline.
        campaign.explore(Origin::Proposal, "s", Some(BASE), 0.0);
        assert_eq!(
            subjects(&rules(3), &campaign.experiments),
            [
                seed("base"),
                seed("other"),
                explored(p),
                explored(q),
                explored(r)
            ]
        );
        assert_eq!(
            subjects(&rules(1), &campaign.experiments),
            [seed("base"), seed("other"), explored(p), explored(q)]
        );
    }

    #[test]
    fn costs_are_counted_at_each_level_s_own_width_and_length() {
        let text = include_str!("../../tests/fixtures/tiny_campaign.yaml");
        let mut spec = crate::api::parse_campaign(text)
            .map(|c| c.spec)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut rung = spec.stages.exploration.train.clone();
        (rung.model.d_model, rung.data.seq_len) = (24, 40);
        spec.stages.rungs = vec![crate::api::campaign::RungStage {
            train: rung,
            promote: 1,
            seeds: 1,
        }];
        let verification = &mut spec.stages.verification.train;
        (verification.model.d_model, verification.data.seq_len) = (48, 96);
        let rules = Rules::of(&spec);
        let at = |level| {
            let check = rules.check_at(level);
            (check.d_model, check.seq_len)
        };
        assert_eq!(at(Level::screening(1)), (24, 40));
        assert_eq!(at(Level::VERIFICATION), (48, 96));
        // Exploration's costs, and a rung the ladder lacks, are at verification's scale.
        assert_eq!(at(Level::EXPLORATION), (48, 96));
        assert_eq!(at(Level::screening(2)), (48, 96));
    }

    #[test]
    fn a_subject_is_its_own_exploration_and_owns_only_its_own_retraining() {
        let mut campaign = Campaign::new();
        let p = campaign.explore(Origin::Proposal, "p", Some(BASE), 1.0);
        campaign.verify(&seed("base"), &some(&BASELINE));
        campaign.verify(&seed("other"), &some(&BASELINE));
        campaign.verify(&explored(p), &some(&BASELINE));
        let experiments = &campaign.experiments;
        let exploration = |s: Subject| s.exploration(experiments).map(|e| e.id);
        assert_eq!(exploration(seed("base")), Some(BASE));
        assert_eq!(exploration(seed("other")), Some(OTHER_SEED));
        assert_eq!(exploration(explored(p)), Some(p));
        assert_eq!(exploration(seed("absent")), None);
        let owned = |s: Subject| {
            experiments
                .iter()
                .filter(|e| s.owns_at(e, Level::VERIFICATION))
                .count()
        };
        assert_eq!(owned(seed("base")), 3);
        assert_eq!(owned(seed("other")), 3);
        assert_eq!(owned(explored(p)), 3);
    }

    #[test]
    fn programs_carry_their_name_accuracy_and_the_compute_spent_when_they_finished() {
        let mut campaign = Campaign::new();
        let p = campaign.explore(Origin::Proposal, "gla-paper-12", Some(BASE), 1.0);
        campaign.verify(&seed("base"), &some(&BASELINE));
        campaign.verify(&explored(p), &some(&[0.8, 0.85, 0.9]));
        // An exploration that ran after verification: counted in the total, not in the point.
        let mut later = Experiment::new(900, Stage::Exploration, Some(BASE), vec![]);
        later.phase = Phase::Failed;
        later.attempts.push(finished_attempt(2.0, 0.1, 54.0));
        campaign.experiments.push(later);
        let verification = campaign.summarise(1);
        let program = &verification.programs[0];
        assert_eq!(program.name, "gla-paper-12");
        assert_eq!(program.source, p);
        assert!((program.accuracy["mqar"].mean - 0.5).abs() < 1e-12);
        assert!((verification.baseline_accuracy["mqar"].mean - 0.5).abs() < 1e-12);
        // Three explorations and six verification runs of one second each.
        assert!((program.compute_hours_at - 9.0 / 3600.0).abs() < 1e-12);
        let total = verification.curve.last().expect("a curve").compute_hours;
        assert!((total - 63.0 / 3600.0).abs() < 1e-12, "{total}");
    }
}
