//! The campaign planner: from the spec and every experiment in memory, decide what to create
//! next. Reconcile-style (no state of its own), so the local driver and the operator ask the
//! same question after every change and get the same answer.
//!
//! Order: the baseline seed, then the other seeds, then proposals until the exploration share
//! of the budget is spent; then, once every exploration has ended, each rung of the ladder in
//! turn (the baseline first, then the programs [`ladder::entrants`] sends up, under the rung's
//! seeds); then the programs verification compares retrained at the verification scale under
//! `verification.seeds` training seeds: the baseline first, then the best seed, and each
//! promoted program after its parent ([`verification::subjects`]).

use super::budget::{Exhausted, Usage};
use super::fitness::{self, Scores};
use super::ladder;
use super::lifecycle::{
    Context, Experiment, ExperimentId, Level, MemoryBudget, Origin, Outcome, Phase, Stage,
};
use super::novelty::Known;
use super::qa::{self, QaContext};
use super::sampling::{Ranked, sample};
use super::verification::{self, Subject};
use crate::api::CampaignSpec;
use archspec::CheckConfig;
use rand::Rng;
use std::collections::BTreeMap;

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// An experiment the driver must create (and then feed its proposal).
#[derive(Debug, Clone, PartialEq)]
pub struct NewExperiment {
    pub stage: Stage,
    /// The screening rung (1-based) of a `Screening` experiment; 0 otherwise.
    pub rung: u32,
    pub origin: Origin,
    pub parent: Option<ExperimentId>,
    pub references: Vec<ExperimentId>,
    pub replica: u32,
    /// For seeds: the seed's name in the spec.
    pub seed: Option<String>,
}

/// Why a campaign ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Ending {
    /// Exploration and verification are done.
    Completed,
    /// No exploration beat the baseline, so nothing was promoted.
    NothingToVerify,
    /// No program beat the baseline at a rung of the ladder, so nothing went further.
    NothingPromoted {
        rung: u32,
    },
    BudgetExhausted {
        limit: Exhausted,
    },
    /// The baseline failed at a stage (at `rung` of the ladder, for screening), so no fitness
    /// can be computed there.
    BaselineFailed {
        stage: Stage,
        #[serde(default, skip_serializing_if = "is_zero")]
        rung: u32,
    },
}

impl Ending {
    pub fn describe(&self) -> String {
        match self {
            Ending::Completed => "exploration and verification completed".into(),
            Ending::NothingToVerify => {
                "no exploration beat the baseline; nothing was promoted to verification".into()
            }
            Ending::NothingPromoted { rung } => {
                format!("no program beat the baseline at rung {rung}; nothing was promoted further")
            }
            Ending::BudgetExhausted { limit } => format!("budget exhausted: {}", limit.describe()),
            Ending::BaselineFailed { stage, rung } => {
                let level = Level {
                    stage: *stage,
                    rung: *rung,
                };
                format!(
                    "the baseline failed at {}; fitness cannot be computed",
                    level.describe()
                )
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Create(NewExperiment),
    /// Nothing can start until a running experiment ends.
    Wait,
    Done(Ending),
}

/// Usage derived from memory: experiments created and trainer seconds of every attempt.
pub fn usage(experiments: &[Experiment], llm_tokens: u64) -> Usage {
    Usage {
        experiments: experiments.len() as u32,
        compute_seconds: experiments.iter().map(Experiment::compute_seconds).sum(),
        llm_tokens,
    }
}

/// Runs reserved above exploration: at each rung, the baseline and the programs promoted to
/// it once per seed; at verification, once per seed, the baseline, the best seed, and each
/// promoted program with its parent — the most that can be needed, since which seed is best
/// and which parents are seeds is known only when exploration ends. What is not needed is not
/// spent. Nothing is verified, and nothing reserved, when nothing is promoted.
pub fn verification_runs(spec: &CampaignSpec) -> u32 {
    let verification = &spec.stages.verification;
    if verification.promote == 0 {
        return 0;
    }
    let rungs: u32 = spec
        .stages
        .rungs
        .iter()
        .map(|rung| (rung.promote + 1) * rung.seeds)
        .sum();
    rungs + (2 * verification.promote + 2) * verification.seeds
}

/// What to do next. `rng` draws the parent and references of a new proposal.
pub fn next(
    spec: &CampaignSpec,
    experiments: &[Experiment],
    usage: &Usage,
    rng: &mut impl Rng,
) -> Next {
    if let Some(limit) = spec.budget.exhausted(usage)
        && limit != Exhausted::Experiments
    {
        return Next::Done(Ending::BudgetExhausted { limit });
    }
    let exploration: Vec<&Experiment> = experiments
        .iter()
        .filter(|e| e.stage == Stage::Exploration)
        .collect();
    // Seeds, baseline first: everything else's fitness is relative to it.
    let seed_names = std::iter::once(spec.baseline.as_str()).chain(
        spec.seeds
            .iter()
            .map(|s| s.name.as_str())
            .filter(|name| *name != spec.baseline),
    );
    for (position, name) in seed_names.enumerate() {
        match find_seed(&exploration, name, 0) {
            None => {
                if position > 0 && usage.experiments >= spec.budget.max_experiments {
                    return exhausted(experiments, Exhausted::Experiments);
                }
                return Next::Create(seed(Level::EXPLORATION, name, 0));
            }
            Some(baseline) if position == 0 && !baseline.phase.is_terminal() => return Next::Wait,
            Some(baseline) if position == 0 && baseline.phase == Phase::Failed => {
                return Next::Done(Ending::BaselineFailed {
                    stage: Stage::Exploration,
                    rung: 0,
                });
            }
            Some(_) => {}
        }
    }
    let exploration_cap = spec
        .budget
        .max_experiments
        .saturating_sub(verification_runs(spec));
    if usage.experiments < exploration_cap {
        let mut population: Vec<Ranked<ExperimentId>> = exploration
            .iter()
            .filter(|e| e.phase == Phase::Succeeded)
            .filter_map(|e| e.fitness.map(|fitness| Ranked { id: e.id, fitness }))
            .collect();
        let spent = spent_parents(&exploration);
        if population.iter().any(|r| !spent.contains(&r.id)) {
            population.retain(|r| !spent.contains(&r.id));
        }
        let seeds: Vec<ExperimentId> = exploration
            .iter()
            .filter(|e| e.origin == Origin::Seed && e.phase == Phase::Succeeded)
            .map(|e| e.id)
            .collect();
        return match sample(&population, &seeds, &spec.search.sampling, rng) {
            Some(drawn) => Next::Create(NewExperiment {
                stage: Stage::Exploration,
                rung: 0,
                origin: Origin::Proposal,
                parent: Some(drawn.parent),
                references: drawn.references,
                replica: 0,
                seed: None,
            }),
            // Not reached: the baseline succeeded (above), so it is a seed to build on. Were
            // it ever, nothing could be built on, which is the baseline's failure.
            None => Next::Done(Ending::BaselineFailed {
                stage: Stage::Exploration,
                rung: 0,
            }),
        };
    }
    if exploration.iter().any(|e| !e.phase.is_terminal()) {
        return Next::Wait;
    }
    let rules = verification::Rules::of(spec);
    for index in 0..spec.stages.rungs.len() {
        let level = Level::screening(index as u32 + 1);
        let decided = ladder::entrants(&rules, experiments);
        // Not reached: the rungs below this one have ended, so its entrants are decided.
        let Some(entering) = decided.get(index) else {
            return Next::Wait;
        };
        if entering.is_empty() {
            return Next::Done(match index {
                0 => Ending::NothingToVerify,
                _ => Ending::NothingPromoted {
                    rung: level.rung - 1,
                },
            });
        }
        let subjects: Vec<Subject> = std::iter::once(Subject::Seed {
            name: spec.baseline.clone(),
        })
        .chain(entering.iter().map(|id| Subject::Explored { id: *id }))
        .collect();
        let seeds = spec.stages.rungs[index].seeds;
        if let Some(next) = retrain_level(spec, experiments, usage, level, seeds, &subjects) {
            return next;
        }
    }
    if ladder::promoted(&rules, experiments).is_empty() {
        return Next::Done(match spec.stages.rungs.len() as u32 {
            0 => Ending::NothingToVerify,
            last => Ending::NothingPromoted { rung: last },
        });
    }
    let subjects = verification::subjects(&rules, experiments);
    let seeds = spec.stages.verification.seeds;
    retrain_level(
        spec,
        experiments,
        usage,
        Level::VERIFICATION,
        seeds,
        &subjects,
    )
    .unwrap_or(Next::Done(Ending::Completed))
}

/// The next run of `subjects` (the baseline first) at `level` under `seeds` training seeds;
/// `None` once all have ended there. Nothing else starts before the baseline's runs have
/// ended: every fitness at the level is relative to their mean.
fn retrain_level(
    spec: &CampaignSpec,
    experiments: &[Experiment],
    usage: &Usage,
    level: Level,
    seeds: u32,
    subjects: &[Subject],
) -> Option<Next> {
    let at_level: Vec<&Experiment> = experiments.iter().filter(|e| e.level() == level).collect();
    let missing = |subject: &Subject| {
        (0..seeds).find(|replica| {
            !at_level
                .iter()
                .any(|e| subject.owns_at(e, level) && e.replica == *replica)
        })
    };
    // Not reached: the baseline always leads the subjects.
    let (baseline, comparisons) = subjects.split_first()?;
    if let Some(replica) = missing(baseline) {
        if usage.experiments >= spec.budget.max_experiments {
            return Some(exhausted(experiments, Exhausted::Experiments));
        }
        return Some(Next::Create(retrain(baseline, level, replica)));
    }
    let baseline_runs: Vec<&&Experiment> = at_level
        .iter()
        .filter(|e| baseline.owns_at(e, level))
        .collect();
    if baseline_runs.iter().any(|e| !e.phase.is_terminal()) {
        return Some(Next::Wait);
    }
    if baseline_runs.iter().all(|e| e.phase == Phase::Failed) {
        return Some(Next::Done(Ending::BaselineFailed {
            stage: level.stage,
            rung: level.rung,
        }));
    }
    for subject in comparisons {
        if let Some(replica) = missing(subject) {
            if usage.experiments >= spec.budget.max_experiments {
                return Some(exhausted(experiments, Exhausted::Experiments));
            }
            return Some(Next::Create(retrain(subject, level, replica)));
        }
    }
    if at_level.iter().any(|e| !e.phase.is_terminal()) {
        return Some(Next::Wait);
    }
    None
}

/// One training seed of a program at `level`.
fn retrain(subject: &Subject, level: Level, replica: u32) -> NewExperiment {
    match subject {
        Subject::Seed { name } => seed(level, name, replica),
        Subject::Explored { id } => NewExperiment {
            stage: level.stage,
            rung: level.rung,
            origin: Origin::Verification,
            parent: Some(*id),
            references: Vec::new(),
            replica,
            seed: None,
        },
    }
}

/// Out of experiments: wait for running ones, then end.
fn exhausted(experiments: &[Experiment], limit: Exhausted) -> Next {
    if experiments.iter().any(|e| !e.phase.is_terminal()) {
        Next::Wait
    } else {
        Next::Done(Ending::BudgetExhausted { limit })
    }
}

fn seed(level: Level, name: &str, replica: u32) -> NewExperiment {
    NewExperiment {
        stage: level.stage,
        rung: level.rung,
        origin: Origin::Seed,
        parent: None,
        references: Vec::new(),
        replica,
        seed: Some(name.to_string()),
    }
}

fn find_seed<'a>(
    experiments: &[&'a Experiment],
    name: &str,
    replica: u32,
) -> Option<&'a Experiment> {
    experiments
        .iter()
        .find(|e| e.origin == Origin::Seed && e.name == name && e.replica == replica)
        .copied()
}

/// The explorations promoted to verification: proposals that beat the baseline (fitness above
/// [`fitness::BASELINE`]), best first, at most `verification.promote`. Seeds are reference
/// points, not discoveries, and are never promoted.
pub fn promoted(spec: &CampaignSpec, experiments: &[Experiment]) -> Vec<ExperimentId> {
    ladder::promoted(&verification::Rules::of(spec), experiments)
}

/// The best `promote` explorations that beat the baseline (see [`promoted`]).
pub fn promoted_of(experiments: &[Experiment], promote: usize) -> Vec<ExperimentId> {
    let mut candidates: Vec<(ExperimentId, f64)> = experiments
        .iter()
        .filter(|e| {
            e.stage == Stage::Exploration
                && e.origin == Origin::Proposal
                && e.phase == Phase::Succeeded
        })
        .filter_map(|e| {
            e.fitness
                .filter(|f| *f > fitness::BASELINE)
                .map(|f| (e.id, f))
        })
        .collect();
    candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    candidates
        .into_iter()
        .take(promote)
        .map(|(id, _)| id)
        .collect()
}

/// The training config of a rung of the ladder, with the replica's training seed.
pub fn train_config(spec: &CampaignSpec, level: Level, replica: u32) -> trainer::TrainConfig {
    let stages = &spec.stages;
    let mut config = match level.stage {
        Stage::Exploration => stages.exploration.train.clone(),
        // A rung beyond the spec's is not reached: stages cannot change while a campaign runs.
        Stage::Screening => (level.rung as usize)
            .checked_sub(1)
            .and_then(|index| stages.rungs.get(index))
            .map_or_else(|| stages.verification.train.clone(), |r| r.train.clone()),
        Stage::Verification => stages.verification.train.clone(),
    };
    config.seed = config
        .seed
        .wrapping_add(spec.seed)
        .wrapping_add(u64::from(replica));
    config
}

/// Children in a row that found nothing new before a parent counts as spent.
pub const SPENT_AFTER: usize = 3;

/// Parents whose last [`SPENT_AFTER`] proposals all failed for want of anything new (the
/// Researcher found no new program, or the Engineer no novel repair): their neighbourhood is
/// exhausted, and drawing them again would only burn experiments. The planner leaves them out
/// while any other parent remains.
fn spent_parents(exploration: &[&Experiment]) -> std::collections::HashSet<ExperimentId> {
    let mut recent: BTreeMap<ExperimentId, Vec<bool>> = BTreeMap::new();
    for child in exploration.iter().filter(|e| e.origin == Origin::Proposal) {
        let Some(parent) = child.parent else { continue };
        let nothing_new = child.phase == Phase::Failed
            && child.current().is_some_and(|a| {
                matches!(
                    a.outcome,
                    Some(Outcome::AgentFailed { .. } | Outcome::NotNovel { .. })
                )
            });
        recent.entry(parent).or_default().push(nothing_new);
    }
    recent
        .into_iter()
        .filter(|(_, children)| {
            children.len() >= SPENT_AFTER
                && children[children.len() - SPENT_AFTER..].iter().all(|&n| n)
        })
        .map(|(parent, _)| parent)
        .collect()
}

/// The static-check settings for an experiment: the stage's width and length, and the
/// campaign's complexity limit (seeds and their verification runs are exempt).
pub fn check_config(spec: &CampaignSpec, experiment: &Experiment) -> CheckConfig {
    let config = train_config(spec, experiment.level(), experiment.replica);
    let max_complexity = match experiment.origin {
        Origin::Proposal => Some(spec.constraints.max_complexity.into()),
        Origin::Seed | Origin::Verification => None,
    };
    CheckConfig {
        d_model: config.model.d_model,
        seq_len: config.data.seq_len,
        max_complexity,
        ..CheckConfig::default()
    }
}

/// The baseline's scores at a rung: the exploration run, or the mean over the rung's seeds.
/// `None` until they have finished.
pub fn baseline_scores(
    spec: &CampaignSpec,
    experiments: &[Experiment],
    level: Level,
) -> Option<Scores> {
    let baseline_at =
        |e: &&Experiment| e.level() == level && e.origin == Origin::Seed && e.name == spec.baseline;
    let summaries: Vec<_> = experiments
        .iter()
        .filter(baseline_at)
        .filter_map(Experiment::summary)
        .collect();
    if summaries.is_empty() {
        return None;
    }
    let n = summaries.len() as f64;
    let mut accuracy: BTreeMap<String, f64> = BTreeMap::new();
    for summary in &summaries {
        for (task, value) in &summary.accuracy {
            *accuracy.entry(task.clone()).or_default() += value / n;
        }
    }
    let cost = experiments
        .iter()
        .filter(|_| spec.fitness.cost.any())
        .find(baseline_at)
        .and_then(|e| {
            let program = e.program()?;
            fitness::Cost::of(program, &check_config(spec, e))
        });
    Some(Scores {
        val_loss: summaries.iter().map(|s| s.val_loss).sum::<f64>() / n,
        accuracy,
        judge: None,
        cost,
    })
}

/// Inputs of a lifecycle [`Context`] for one experiment, borrowing memory.
pub struct StepInputs<'a> {
    pub check: CheckConfig,
    known: Vec<Known<'a, ExperimentId>>,
    pub qa_context: QaContext,
    pub baseline: Option<Scores>,
    pub skip_novelty: bool,
    pub max_revisions: u32,
    pub max_params: Option<u64>,
    /// Filled in by the engine when the device's memory is known.
    pub memory: Option<MemoryBudget>,
}

impl<'a> StepInputs<'a> {
    /// Gathers what a step of `experiment` needs from memory. `with_known` also collects every
    /// other program's stored structure for the novelty check (only proposals and revisions
    /// need it).
    pub fn gather(
        spec: &CampaignSpec,
        experiments: &'a [Experiment],
        experiment: &Experiment,
        with_known: bool,
    ) -> StepInputs<'a> {
        let check = check_config(spec, experiment);
        let proposal = experiment.origin == Origin::Proposal;
        // Runs the learning-curve rule may stop: proposals, and programs screened at a rung
        // (never seeds, nor verification runs, whose pairs every claim needs).
        let screened = proposal
            || (experiment.stage == Stage::Screening && experiment.origin == Origin::Verification);
        let mut known = Vec::new();
        if with_known && proposal {
            for other in experiments.iter().filter(|e| e.id != experiment.id) {
                // Only the exploration scale: verification reruns the same programs.
                if other.stage != Stage::Exploration {
                    continue;
                }
                // Programs that never checked have no structure and nothing to repeat.
                for structure in other.attempts.iter().filter_map(|a| a.structure.as_ref()) {
                    known.push(Known {
                        id: other.id,
                        structure,
                        motivation: &other.motivation,
                        motivation_similarity: None,
                    });
                }
            }
        }
        // Peers run at the same rung, at the same scale.
        let peers: Vec<&Experiment> = experiments
            .iter()
            .filter(|e| e.level() == experiment.level() && e.id != experiment.id)
            .collect();
        let config = train_config(spec, experiment.level(), experiment.replica);
        let qa_context = QaContext {
            steps: config.steps,
            trials: config.learning_rates().len(),
            // Seeds and verification reruns are trusted programs: never stopped as slow (a
            // comparator's lost run would leave every claim tested against it without its
            // pair), nor suspected of leakage.
            peer_wall_s: peers
                .iter()
                .filter(|_| proposal)
                .filter_map(|e| e.summary().map(|s| s.wall_s))
                .collect(),
            best_val_loss: peers
                .iter()
                .filter(|_| proposal)
                .filter_map(|e| e.summary().map(|s| s.val_loss))
                .filter(|v| v.is_finite())
                .min_by(f64::total_cmp),
            worst_peer_loss: if screened && spec.qa.behind_factor.is_some() {
                let curves: Vec<&[qa::ProgressPoint]> = peers
                    .iter()
                    .filter(|e| e.phase == Phase::Succeeded)
                    .filter_map(|e| e.current().map(|a| a.progress.as_slice()))
                    .filter(|curve| !curve.is_empty())
                    .collect();
                let checkpoints = qa::curve_checkpoints(config.steps, &spec.qa);
                qa::worst_at(&curves, &checkpoints, spec.qa.min_peers)
            } else {
                Vec::new()
            },
        };
        StepInputs {
            check,
            known,
            qa_context,
            baseline: baseline_scores(spec, experiments, experiment.level()),
            skip_novelty: !proposal,
            max_revisions: if proposal {
                spec.search.max_revisions
            } else {
                0
            },
            max_params: if proposal {
                Some(spec.constraints.max_params_or_default())
            } else {
                None
            },
            memory: None,
        }
    }

    /// Holds programs to `device_bytes` of memory at this experiment's train config.
    pub fn with_device_memory(
        mut self,
        spec: &CampaignSpec,
        experiment: &Experiment,
        device_bytes: Option<u64>,
    ) -> StepInputs<'a> {
        self.memory = device_bytes.map(|device_bytes| MemoryBudget {
            device_bytes,
            train: train_config(spec, experiment.level(), experiment.replica),
        });
        self
    }

    pub fn context<'b>(
        &'b self,
        spec: &'b CampaignSpec,
        known: &'b [Known<'b, ExperimentId>],
    ) -> Context<'b> {
        Context {
            check: &self.check,
            novelty: &spec.search.novelty,
            qa: &spec.qa,
            weights: &spec.fitness,
            max_revisions: self.max_revisions,
            max_params: self.max_params,
            memory: self.memory.as_ref(),
            known,
            qa_context: self.qa_context.clone(),
            baseline: self.baseline.clone(),
            skip_novelty: self.skip_novelty,
        }
    }

    /// Borrowed views of the known programs, for [`StepInputs::context`].
    pub fn known(&self) -> Vec<Known<'a, ExperimentId>> {
        self.known.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::lifecycle::{Attempt, Outcome, TrainSummary};

    fn spec() -> CampaignSpec {
        let text = include_str!("../../tests/fixtures/tiny_campaign.yaml");
        crate::api::parse_campaign(text)
            .map(|c| c.spec)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn finished(id: u64, origin: Origin, name: &str, stage: Stage, fitness: f64) -> Experiment {
        let mut e = Experiment::new(id, stage, None, vec![]);
        e.origin = origin;
        e.name = name.into();
        e.phase = Phase::Succeeded;
        e.fitness = Some(fitness);
        e.attempts.push(Attempt {
            number: 1,
            program: String::new(),
            outcome: Some(Outcome::Finished {
                summary: TrainSummary {
                    val_loss: 2.0 - fitness,
                    accuracy: BTreeMap::new(),
                    wall_s: 1.0,
                    params: 10,
                    benchmarks: BTreeMap::new(),
                },
            }),
            progress: vec![],
            structure: None,
        });
        e
    }

    fn plan(spec: &CampaignSpec, experiments: &[Experiment]) -> Next {
        let usage = usage(experiments, 0);
        next(spec, experiments, &usage, &mut SmallRng::seed_from_u64(1))
    }

    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use std::collections::BTreeSet;

    fn nothing_new(id: u64, parent: u64) -> Experiment {
        let mut e = Experiment::new(id, Stage::Exploration, Some(parent), vec![]);
        e.phase = Phase::Failed;
        e.attempts.push(Attempt {
            number: 1,
            program: String::new(),
            outcome: Some(Outcome::AgentFailed {
                message: format!("researcher: no operator gave a new program from {parent}"),
            }),
            progress: vec![],
            structure: None,
        });
        e
    }

    fn parents_drawn(spec: &CampaignSpec, experiments: &[Experiment]) -> BTreeSet<u64> {
        let usage = usage(experiments, 0);
        (0..32)
            .filter_map(|seed| {
                match next(
                    spec,
                    experiments,
                    &usage,
                    &mut SmallRng::seed_from_u64(seed),
                ) {
                    Next::Create(new) => new.parent,
                    other => panic!("expected a proposal, got {other:?}"),
                }
            })
            .collect()
    }

    #[test]
    fn a_parent_whose_last_children_found_nothing_new_is_left_out_while_others_remain() {
        let mut spec = spec();
        spec.budget.max_experiments = 100;
        let base = vec![
            finished(1, Origin::Seed, "linear_attention", Stage::Exploration, 0.5),
            finished(2, Origin::Seed, "retnet", Stage::Exploration, 0.6),
        ];
        assert_eq!(parents_drawn(&spec, &base), BTreeSet::from([1, 2]));
        // Two failures in a row are not yet a spent neighbourhood; three are.
        let mut two = base.clone();
        two.extend([nothing_new(3, 2), nothing_new(4, 2)]);
        assert_eq!(parents_drawn(&spec, &two), BTreeSet::from([1, 2]));
        let mut three = two.clone();
        three.push(nothing_new(5, 2));
        assert_eq!(parents_drawn(&spec, &three), BTreeSet::from([1]));
        // A success after the failures makes the parent worth drawing again.
        let mut revived = three.clone();
        let mut child = finished(6, Origin::Proposal, "child", Stage::Exploration, 0.1);
        child.parent = Some(2);
        revived.push(child);
        assert!(parents_drawn(&spec, &revived).contains(&2));
        // Children that failed for other reasons (a crash) do not spend a parent, nor do
        // two nothing-new children after one: the last three must all have found nothing.
        let mut crashed = base.clone();
        for id in 3..=5 {
            let mut child = nothing_new(id, 2);
            child.attempts[0].outcome = Some(Outcome::Crashed {
                message: "exit 1".into(),
                log_tail: String::new(),
            });
            crashed.push(child);
        }
        assert_eq!(parents_drawn(&spec, &crashed), BTreeSet::from([1, 2]));
        crashed.drain(3..);
        crashed.extend([nothing_new(6, 2), nothing_new(7, 2)]);
        assert_eq!(parents_drawn(&spec, &crashed), BTreeSet::from([1, 2]));
        // When every parent is spent, none is left out (the campaign goes on), proposals
        // included: the population is kept whole, not replaced by the seeds.
        let mut all = three.clone();
        let mut proposal = finished(10, Origin::Proposal, "p", Stage::Exploration, 0.55);
        proposal.parent = Some(1);
        all.push(proposal);
        all.extend([nothing_new(7, 1), nothing_new(8, 1), nothing_new(9, 1)]);
        all.extend([
            nothing_new(11, 10),
            nothing_new(12, 10),
            nothing_new(13, 10),
        ]);
        assert_eq!(parents_drawn(&spec, &all), BTreeSet::from([1, 2, 10]));
    }

    #[test]
    fn before_any_fitness_the_seeds_that_succeeded_are_the_parents() {
        let mut spec = spec();
        spec.budget.max_experiments = 100;
        // No fitness yet (as before the baseline is scored); the other seed failed, and a
        // proposal that succeeded is not a seed.
        let mut baseline = finished(1, Origin::Seed, "linear_attention", Stage::Exploration, 0.5);
        baseline.fitness = None;
        let mut failed = finished(2, Origin::Seed, "retnet", Stage::Exploration, 0.6);
        failed.fitness = None;
        failed.phase = Phase::Failed;
        let mut proposal = finished(3, Origin::Proposal, "p", Stage::Exploration, 0.6);
        proposal.fitness = None;
        proposal.parent = Some(1);
        let experiments = [baseline, failed, proposal];
        assert_eq!(parents_drawn(&spec, &experiments), BTreeSet::from([1]));
    }

    #[test]
    fn the_baseline_comes_first_and_is_waited_for() {
        let spec = spec();
        match plan(&spec, &[]) {
            Next::Create(new) => {
                assert_eq!(new.seed.as_deref(), Some("linear_attention"));
                assert_eq!(new.origin, Origin::Seed);
            }
            other => panic!("{other:?}"),
        }
        let mut running = finished(1, Origin::Seed, "linear_attention", Stage::Exploration, 0.5);
        running.phase = Phase::Training;
        assert_eq!(plan(&spec, &[running.clone()]), Next::Wait);
        running.phase = Phase::Failed;
        assert_eq!(
            plan(&spec, &[running]),
            Next::Done(Ending::BaselineFailed {
                stage: Stage::Exploration,
                rung: 0,
            })
        );
    }

    #[test]
    fn proposals_stop_where_the_verification_reserve_begins() {
        let spec = spec();
        // 18 experiments, (baseline + best seed + 1 promoted + its parent) × 3 seeds
        // reserved: 6 explore.
        assert_eq!(verification_runs(&spec), 12);
        let mut experiments = vec![
            finished(1, Origin::Seed, "linear_attention", Stage::Exploration, 0.0),
            finished(2, Origin::Seed, "retnet", Stage::Exploration, -0.2),
        ];
        match plan(&spec, &experiments) {
            Next::Create(new) => {
                assert_eq!(new.origin, Origin::Proposal);
                assert!(matches!(new.parent, Some(1 | 2)));
            }
            other => panic!("{other:?}"),
        }
        for id in 3..=6 {
            experiments.push(finished(
                id,
                Origin::Proposal,
                "p",
                Stage::Exploration,
                -0.1 + id as f64 / 20.0,
            ));
        }
        // Five of the six exploration places are used: one more proposal.
        assert!(matches!(
            plan(&spec, &experiments[..5]),
            Next::Create(NewExperiment {
                origin: Origin::Proposal,
                ..
            })
        ));
        // Only proposals that beat the baseline are promoted, the best first.
        assert_eq!(promoted(&spec, &experiments), vec![6]);
        for replica in 0..3 {
            // Exploration is spent: the baseline is verified first, replica by replica.
            match plan(&spec, &experiments) {
                Next::Create(new) => {
                    assert_eq!(
                        (new.stage, new.origin, new.seed.as_deref(), new.replica),
                        (
                            Stage::Verification,
                            Origin::Seed,
                            Some("linear_attention"),
                            replica
                        )
                    );
                }
                other => panic!("replica {replica}: {other:?}"),
            }
            let mut e = finished(
                7 + u64::from(replica),
                Origin::Seed,
                "linear_attention",
                Stage::Verification,
                0.0,
            );
            e.replica = replica;
            experiments.push(e);
        }
        for replica in 0..3 {
            // Each training seed of the promoted program in turn, none twice.
            match plan(&spec, &experiments) {
                Next::Create(new) => {
                    assert_eq!(
                        (new.stage, new.origin, new.parent, new.replica),
                        (Stage::Verification, Origin::Verification, Some(6), replica)
                    );
                }
                other => panic!("replica {replica}: {other:?}"),
            }
            let mut e = finished(
                10 + u64::from(replica),
                Origin::Verification,
                "p@seed",
                Stage::Verification,
                0.8,
            );
            e.parent = Some(6);
            e.replica = replica;
            experiments.push(e);
        }
        assert_eq!(plan(&spec, &experiments), Next::Done(Ending::Completed));
        let rules = verification::Rules::of(&spec);
        let verified = verification::summarise(&experiments, &rules);
        assert_eq!(verified.programs.len(), 1);
        // Loss 1.2 on every seed against the baseline's 2.0: a verified win. The best seed is
        // the baseline, and the program has no parent in memory: one comparison.
        assert_eq!(verified.programs[0].comparisons.len(), 1);
        assert!(verified.programs[0].state_of_the_art);
        assert_eq!(verified.discoveries(), 1);
    }

    #[test]
    fn a_rung_retrains_the_best_explorations_and_sends_its_own_best_to_verification() {
        let mut spec = spec();
        let mut rung_train = spec.stages.exploration.train.clone();
        rung_train.steps = 80;
        spec.stages.rungs = vec![crate::api::campaign::RungStage {
            train: rung_train,
            promote: 2,
            seeds: 1,
        }];
        spec.budget.max_experiments = 30;
        // The rung's baseline and two programs once, then verification's 12.
        assert_eq!(verification_runs(&spec), 3 + 12);
        let mut experiments = vec![
            finished(1, Origin::Seed, "linear_attention", Stage::Exploration, 0.0),
            finished(2, Origin::Seed, "retnet", Stage::Exploration, -0.2),
        ];
        for id in 3..=15 {
            let mut e = finished(
                id,
                Origin::Proposal,
                "p",
                Stage::Exploration,
                id as f64 / 20.0,
            );
            e.parent = Some(1);
            experiments.push(e);
        }
        let rung = Level::screening(1);
        let add = |experiments: &mut Vec<Experiment>, new: NewExperiment, val_loss: f64| {
            let id = experiments.len() as u64 + 1;
            let mut e = finished(id, new.origin, "", new.stage, 0.0);
            e.name = new.seed.unwrap_or_default();
            e.parent = new.parent;
            e.replica = new.replica;
            e.rung = new.rung;
            e.fitness = None;
            if let Some(Outcome::Finished { summary }) = &mut e.attempts[0].outcome {
                summary.val_loss = val_loss;
            }
            experiments.push(e);
        };
        let created = |experiments: &[Experiment]| match plan(&spec, experiments) {
            Next::Create(new) => new,
            other => panic!("expected a run, got {other:?}"),
        };
        // Exploration is spent: the rung's baseline first, at the rung's scale.
        let first = created(&experiments);
        assert_eq!(
            (first.stage, first.rung, first.origin, first.seed.as_deref()),
            (Stage::Screening, 1, Origin::Seed, Some("linear_attention"))
        );
        assert_eq!(train_config(&spec, rung, 0).steps, 80);
        let mut running = experiments.clone();
        add(&mut running, first.clone(), 2.0);
        if let Some(e) = running.last_mut() {
            e.phase = Phase::Training;
        }
        assert_eq!(plan(&spec, &running), Next::Wait);
        add(&mut experiments, first, 2.0);
        // Then exploration's best two, 15 and 14; the rung finds 14 the better.
        let mut entered = Vec::new();
        for val_loss in [1.5, 1.0] {
            let new = created(&experiments);
            assert_eq!(
                (new.stage, new.rung, new.origin),
                (Stage::Screening, 1, Origin::Verification)
            );
            entered.push(new.parent);
            add(&mut experiments, new, val_loss);
        }
        assert_eq!(entered, [Some(15), Some(14)]);
        let rules = verification::Rules::of(&spec);
        assert_eq!(promoted(&spec, &experiments), vec![14]);
        // Verification: the baseline under three seeds, then the rung's best (its parent is
        // the baseline, the best seed too).
        for replica in 0..3 {
            let new = created(&experiments);
            assert_eq!(
                (new.stage, new.origin, new.replica),
                (Stage::Verification, Origin::Seed, replica)
            );
            add(&mut experiments, new, 2.0);
        }
        for replica in 0..3 {
            let new = created(&experiments);
            assert_eq!(
                (new.stage, new.origin, new.parent, new.replica),
                (Stage::Verification, Origin::Verification, Some(14), replica)
            );
            add(&mut experiments, new, 1.1);
        }
        assert_eq!(plan(&spec, &experiments), Next::Done(Ending::Completed));
        let verified = verification::summarise(&experiments, &rules);
        assert_eq!(verified.programs.len(), 1);
        assert_eq!(verified.ladder.rungs[0].programs.len(), 3);
        assert_eq!(verified.ladder.predictions.len(), 2);

        // Had neither program beaten the baseline at the rung, nothing would go further.
        let mut worse: Vec<Experiment> = experiments[..18].to_vec();
        for e in worse
            .iter_mut()
            .filter(|e| e.stage == Stage::Screening && e.origin == Origin::Verification)
        {
            if let Some(Outcome::Finished { summary }) = &mut e.attempts[0].outcome {
                summary.val_loss = 2.5;
            }
        }
        assert_eq!(
            plan(&spec, &worse),
            Next::Done(Ending::NothingPromoted { rung: 1 })
        );
    }

    #[test]
    fn checks_use_the_stage_s_width_and_length_and_limit_only_proposals() {
        let mut spec = spec();
        spec.stages.verification.train.model.d_model = 24;
        spec.stages.verification.train.data.seq_len = 40;
        let exploration = finished(1, Origin::Proposal, "p", Stage::Exploration, 0.6);
        let config = check_config(&spec, &exploration);
        assert_eq!((config.d_model, config.seq_len), (16, 16));
        assert_eq!(
            config.max_complexity,
            Some(spec.constraints.max_complexity.into())
        );
        let rerun = finished(2, Origin::Verification, "p", Stage::Verification, 0.6);
        let config = check_config(&spec, &rerun);
        assert_eq!(
            (config.d_model, config.seq_len, config.max_complexity),
            (24, 40, None)
        );
        let seed = finished(3, Origin::Seed, "retnet", Stage::Exploration, 0.6);
        assert_eq!(check_config(&spec, &seed).max_complexity, None);
    }

    #[test]
    fn the_baseline_s_scores_are_the_mean_of_its_own_runs_at_the_stage() {
        let spec = spec();
        let (e, v) = (Stage::Exploration, Stage::Verification);
        // (id, origin, name, stage, val_loss, accuracy, replica); the last two rows are not the
        // baseline's: another seed, and a program's rerun under the baseline's name.
        let rows = [
            (1, Origin::Seed, "linear_attention", e, 9.0, 0.9, 0),
            (2, Origin::Seed, "linear_attention", v, 1.0, 0.2, 0),
            (3, Origin::Seed, "linear_attention", v, 2.0, 0.4, 1),
            (4, Origin::Seed, "linear_attention", v, 4.5, 0.6, 2),
            (5, Origin::Seed, "retnet", v, 7.0, 1.0, 0),
            (6, Origin::Verification, "linear_attention", v, 7.0, 1.0, 0),
        ];
        let experiments: Vec<Experiment> = rows
            .into_iter()
            .map(|(id, origin, name, stage, val_loss, accuracy, replica)| {
                let mut e = finished(id, origin, name, stage, 0.5);
                e.replica = replica;
                if let Some(Outcome::Finished { summary }) = &mut e.attempts[0].outcome {
                    summary.val_loss = val_loss;
                    summary.accuracy = BTreeMap::from([("mqar".to_string(), accuracy)]);
                }
                e
            })
            .collect();
        let scores = baseline_scores(&spec, &experiments, Level::VERIFICATION).unwrap();
        assert_eq!(scores.val_loss, 2.5);
        assert!((scores.accuracy["mqar"] - 0.4).abs() < 1e-12, "{scores:?}");
        let exploration = baseline_scores(&spec, &experiments, Level::EXPLORATION).unwrap();
        assert_eq!(
            (exploration.val_loss, exploration.accuracy["mqar"]),
            (9.0, 0.9)
        );
        assert_eq!(
            baseline_scores(&spec, &experiments[..1], Level::VERIFICATION),
            None
        );
    }

    #[test]
    fn a_step_sees_its_own_stage_s_peers_and_known_programs_only_when_asked() {
        let spec = spec();
        let structure = |hash: &str| archspec::canon::Structure {
            hash: hash.into(),
            features: BTreeMap::new(),
        };
        let mut seed = finished(1, Origin::Seed, "linear_attention", Stage::Exploration, 0.5);
        seed.attempts[0].structure = Some(structure("a"));
        let mut proposal = Experiment::new(2, Stage::Exploration, Some(1), vec![]);
        proposal.phase = Phase::Training;
        proposal.attempts.push(Attempt {
            number: 1,
            program: String::new(),
            outcome: None,
            progress: vec![],
            structure: Some(structure("b")),
        });
        // A verification run: better and slower than anything exploring, and not a peer.
        let mut rerun = finished(3, Origin::Verification, "x", Stage::Verification, 1.9);
        if let Some(Outcome::Finished { summary }) = &mut rerun.attempts[0].outcome {
            summary.wall_s = 99.0;
        }
        rerun.attempts[0].structure = Some(structure("c"));
        let experiments = vec![seed, proposal, rerun];

        let inputs = StepInputs::gather(&spec, &experiments, &experiments[1], true);
        assert_eq!(inputs.qa_context.peer_wall_s, vec![1.0]);
        assert_eq!(inputs.qa_context.best_val_loss, Some(1.5));
        let hashes: Vec<&str> = inputs
            .known()
            .iter()
            .map(|k| k.structure.hash.as_str())
            .collect();
        assert_eq!(
            hashes,
            ["a"],
            "other exploration programs, not itself or reruns"
        );
        assert!(!inputs.skip_novelty);
        // The fixture sets no maxParams: proposals are still held to the default limit, which
        // a chain of two 65,536-wide projections is far past; seeds are trusted programs.
        assert_eq!(
            inputs.max_params,
            Some(crate::api::campaign::DEFAULT_MAX_PARAMS)
        );
        let wide = archspec::check_source(
            "mixer m(d_model) {\n  return x |> linear(65536) |> linear(65536) |> linear(d_model)\n}\n",
            &archspec::CheckConfig::default(),
        )
        .unwrap_or_else(|d| panic!("{d:?}"));
        assert!(wide.analysis.params > crate::api::campaign::DEFAULT_MAX_PARAMS);
        assert_eq!(
            StepInputs::gather(&spec, &experiments, &experiments[0], true).max_params,
            None
        );
        // Known programs are gathered only when asked, and only for proposals.
        let inputs = StepInputs::gather(&spec, &experiments, &experiments[1], false);
        assert!(inputs.known().is_empty());
        let inputs = StepInputs::gather(&spec, &experiments, &experiments[0], true);
        assert!(inputs.known().is_empty() && inputs.skip_novelty);
        assert_eq!(
            inputs.qa_context.best_val_loss, None,
            "seeds are not suspected of leakage"
        );
    }

    #[test]
    fn only_proposals_are_stopped_as_slow_a_trusted_comparator_runs_to_its_end() {
        let mut spec = spec();
        spec.qa.slow_factor = 3.0;
        let peer = |id: u64| {
            let mut e = finished(
                id,
                Origin::Seed,
                "linear_attention",
                Stage::Verification,
                0.0,
            );
            e.replica = id as u32;
            e
        };
        let mut experiments: Vec<Experiment> = (1..=3).map(peer).collect();
        let mut seed_run = Experiment::new(4, Stage::Verification, None, vec![]);
        seed_run.origin = Origin::Seed;
        seed_run.name = "retnet".into();
        let mut rerun = Experiment::new(5, Stage::Verification, Some(9), vec![]);
        rerun.origin = Origin::Verification;
        let mut proposal = Experiment::new(6, Stage::Verification, Some(1), vec![]);
        proposal.origin = Origin::Proposal;
        experiments.extend([seed_run, rerun, proposal]);
        // Ten times the peers' one second at a tenth of the steps.
        let steps = train_config(&spec, Level::VERIFICATION, 0).steps;
        let slow = [crate::core::qa::ProgressPoint {
            step: steps / 10,
            loss: 2.0,
            elapsed_s: 10.0,
            trial: 0,
        }];
        let verdict = |index: usize| {
            let inputs = StepInputs::gather(&spec, &experiments, &experiments[index], false);
            crate::core::qa::judge(&slow, &inputs.qa_context, &spec.qa)
        };
        assert_eq!(verdict(3), None, "a seed's verification run");
        assert_eq!(verdict(4), None, "a promoted program's rerun");
        assert!(
            matches!(verdict(5), Some(crate::core::qa::QaVerdict::TooSlow { .. })),
            "{:?}",
            verdict(5)
        );
    }

    #[test]
    fn nothing_is_verified_when_no_proposal_beats_the_baseline() {
        let spec = spec();
        let mut experiments = vec![
            finished(1, Origin::Seed, "linear_attention", Stage::Exploration, 0.5),
            finished(2, Origin::Seed, "retnet", Stage::Exploration, 0.6),
        ];
        // A seed above the baseline is a reference point, and a proposal exactly level with
        // the baseline has not beaten it.
        for id in 3..=5 {
            experiments.push(finished(
                id,
                Origin::Proposal,
                "p",
                Stage::Exploration,
                -0.1,
            ));
        }
        experiments.push(finished(
            6,
            Origin::Proposal,
            "p",
            Stage::Exploration,
            fitness::BASELINE,
        ));
        assert_eq!(
            plan(&spec, &experiments),
            Next::Done(Ending::NothingToVerify)
        );
    }

    #[test]
    fn the_compute_budget_ends_the_campaign() {
        let mut spec = spec();
        spec.budget.max_compute_hours = Some(1.0 / 3600.0);
        let experiments = vec![finished(
            1,
            Origin::Seed,
            "linear_attention",
            Stage::Exploration,
            0.5,
        )];
        assert!(matches!(
            plan(&spec, &experiments),
            Next::Done(Ending::BudgetExhausted { .. })
        ));
    }
    #[test]
    fn each_budget_limit_is_named_in_the_ending() {
        let seeds = || {
            vec![
                finished(1, Origin::Seed, "linear_attention", Stage::Exploration, 0.5),
                finished(2, Origin::Seed, "retnet", Stage::Exploration, 0.6),
            ]
        };
        let ended_by = |spec: &CampaignSpec, experiments: &[Experiment], tokens: u64| {
            let usage = usage(experiments, tokens);
            match next(spec, experiments, &usage, &mut SmallRng::seed_from_u64(1)) {
                Next::Done(Ending::BudgetExhausted { limit }) => Some(limit),
                _ => None,
            }
        };
        let mut spec = spec();
        spec.budget.max_llm_tokens = Some(100);
        assert_eq!(ended_by(&spec, &seeds(), 99), None);
        assert_eq!(ended_by(&spec, &seeds(), 100), Some(Exhausted::LlmTokens));
        let mut spec = self::spec();
        spec.budget.max_compute_hours = Some(2.0 / 3600.0);
        assert_eq!(
            ended_by(&spec, &seeds()[..1], 0),
            None,
            "one second spent of two"
        );
        assert_eq!(ended_by(&spec, &seeds(), 0), Some(Exhausted::ComputeHours));
        // Fewer experiments allowed than the seeds: the seeds that fit run, then it ends.
        let mut spec = self::spec();
        spec.budget.max_experiments = 1;
        assert_eq!(
            ended_by(&spec, &seeds()[..1], 0),
            Some(Exhausted::Experiments)
        );
        for (limit, words) in [
            (Exhausted::Experiments, "maxExperiments"),
            (Exhausted::ComputeHours, "maxComputeHours"),
            (Exhausted::LlmTokens, "maxLlmTokens"),
        ] {
            let text = Ending::BudgetExhausted { limit }.describe();
            assert!(text.contains(words), "{text}");
        }
    }
}
