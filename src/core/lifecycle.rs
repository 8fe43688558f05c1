//! The experiment lifecycle as a pure state machine: `step(experiment, event, context)` returns
//! the new experiment and the effects a driver must carry out. Nothing here does I/O.
//!
//! ```text
//!  Proposed ──check──► Training ──finished──► Analysing ──analysed──► Succeeded
//!     ▲          │          │ QA stop / crash / diverged
//!     │          ▼          ▼
//!     └──── Revising ◄──────┘      (bounded by max_revisions, then Failed)
//! ```
//! Every attempt is kept with its outcome; a revision is a new attempt.

use super::fitness::{self, FitnessWeights, Scores, fitness};
use super::novelty::{self, Known, NoveltyConfig};
use super::qa::{self, ProgressPoint, QaContext, QaLimits, QaVerdict};
use archspec::CheckConfig;
use archspec::canon::Structure;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub type ExperimentId = u64;

/// Where on the ladder of scales an experiment runs, in the order a program climbs it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Exploration,
    /// A rung between exploration and verification (`Experiment::rung` says which).
    Screening,
    Verification,
}

/// One rung of the ladder: the stage, and for screening which of `stages.rungs` (1 for the
/// first; 0 at exploration and verification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Level {
    pub stage: Stage,
    pub rung: u32,
}

impl Level {
    pub const EXPLORATION: Level = Level {
        stage: Stage::Exploration,
        rung: 0,
    };
    pub const VERIFICATION: Level = Level {
        stage: Stage::Verification,
        rung: 0,
    };

    /// The `rung`-th screening rung (1-based).
    pub fn screening(rung: u32) -> Level {
        Level {
            stage: Stage::Screening,
            rung,
        }
    }

    /// "exploration", "rung 1", "verification".
    pub fn describe(self) -> String {
        match self.stage {
            Stage::Exploration => "exploration".into(),
            Stage::Screening => format!("rung {}", self.rung),
            Stage::Verification => "verification".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Waiting for the Researcher's proposal.
    Proposing,
    /// The current attempt's trainer is running (or about to).
    Training,
    /// Waiting for the Engineer's repaired program.
    Revising,
    /// Waiting for the Analyst.
    Analysing,
    Succeeded,
    Failed,
}

impl Phase {
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}

/// What a finished trainer reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TrainSummary {
    pub val_loss: f64,
    /// Per task, and per benchmark its `acc` (so benchmarks weigh into fitness as tasks do).
    pub accuracy: BTreeMap<String, f64>,
    pub wall_s: f64,
    pub params: u64,
    /// Benchmarks' whole scores: `acc_norm`, perplexity, standard errors, documents.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub benchmarks: BTreeMap<String, trainer::BenchmarkScore>,
}

/// How an attempt ended. Text fields read as empty when absent: the cluster's memory leaves
/// empty strings out (server-side apply in Kubernetes 1.20 turns them into null).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// The program failed the static checks (diagnostics with line:column).
    Invalid {
        #[serde(default)]
        diagnostics: String,
    },
    /// The program or motivation is not novel.
    NotNovel {
        #[serde(default)]
        reason: String,
        /// A program can be changed into a novel one; a repeated motivation cannot (the
        /// Engineer edits programs, not ideas), so that attempt is not revised.
        #[serde(default = "yes")]
        repairable: bool,
    },
    /// QA stopped the trainer.
    Stopped {
        verdict: QaVerdict,
    },
    /// The trainer reported a NaN or infinite loss.
    Diverged,
    /// The trainer failed (a crash, an error result, a lost pod).
    Crashed {
        #[serde(default)]
        message: String,
        #[serde(default)]
        log_tail: String,
    },
    Finished {
        summary: TrainSummary,
    },
    /// An agent could not produce a proposal or repair.
    AgentFailed {
        #[serde(default)]
        message: String,
    },
    /// The infrastructure kept failing (eviction, node lost, unschedulable, image pull): not
    /// the program's fault, so never handed to the Engineer as a revision.
    Infrastructure {
        #[serde(default)]
        reason: String,
    },
}

impl Outcome {
    /// The outcome's kind, as in memory and reports (`crashed`, `not_novel`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Invalid { .. } => "invalid",
            Outcome::NotNovel { .. } => "not_novel",
            Outcome::Stopped { .. } => "stopped",
            Outcome::Diverged => "diverged",
            Outcome::Crashed { .. } => "crashed",
            Outcome::Finished { .. } => "finished",
            Outcome::AgentFailed { .. } => "agent_failed",
            Outcome::Infrastructure { .. } => "infrastructure",
        }
    }

    /// The error text handed to the Engineer.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Invalid { diagnostics } => {
                format!("the program fails the checks:\n{diagnostics}")
            }
            Outcome::NotNovel { reason, .. } => reason.clone(),
            Outcome::Stopped { verdict } => {
                format!("quality assurance stopped training: {}", verdict.describe())
            }
            Outcome::Diverged => "training diverged: the loss became NaN or infinite".into(),
            Outcome::Crashed { message, log_tail } => {
                format!("the trainer failed: {message}\nlast output:\n{log_tail}")
            }
            Outcome::Finished { .. } => "finished".into(),
            Outcome::AgentFailed { message } => format!("the agent failed: {message}"),
            Outcome::Infrastructure { reason } => format!("the infrastructure failed: {reason}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Attempt {
    pub number: u32,
    pub program: String,
    pub outcome: Option<Outcome>,
    /// Progress seen so far (kept for QA and the loss curves).
    pub progress: Vec<ProgressPoint>,
    /// The program's structural hash and distance features, computed once when the attempt
    /// starts (absent when the program does not check, and in memories older than this field
    /// until the engine fills it in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub structure: Option<Structure>,
}

impl Attempt {
    /// An attempt of `program` that finished with `summary` (as memory holds it afterwards).
    pub fn finished(number: u32, program: String, summary: TrainSummary) -> Attempt {
        Attempt {
            number,
            program,
            outcome: Some(Outcome::Finished { summary }),
            progress: Vec::new(),
            structure: None,
        }
    }
}

fn yes() -> bool {
    true
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// Where an experiment's program came from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A seed of the campaign (the baseline among them), trained as given.
    Seed,
    /// A Researcher's proposal.
    #[default]
    Proposal,
    /// One training seed of a promoted exploration, retrained at the verification scale.
    Verification,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Experiment {
    pub id: ExperimentId,
    pub name: String,
    pub stage: Stage,
    #[serde(default)]
    pub origin: Origin,
    /// The training seed index at verification (0 at exploration): runs with the same replica
    /// share data order and initialisation, so baseline and candidates compare like for like.
    #[serde(default)]
    pub replica: u32,
    /// Which screening rung (1-based) a `Screening` experiment runs at; 0 otherwise.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rung: u32,
    /// How the Researcher made the program (a mutation kind, `crossover`, `llm`), when known.
    #[serde(default)]
    pub operator: Option<String>,
    pub parent: Option<ExperimentId>,
    pub references: Vec<ExperimentId>,
    pub motivation: String,
    pub phase: Phase,
    pub attempts: Vec<Attempt>,
    pub fitness: Option<f64>,
    pub analysis: Option<String>,
    /// The Analyst's short problem statement, the query for cognition retrieval.
    pub problem_summary: Option<String>,
    /// Cognition entries retrieved for this experiment's proposal.
    pub retrieved: Vec<String>,
    /// Trainer runs lost to the infrastructure (a pod evicted, a node lost, no node to
    /// schedule on, an image that cannot be pulled). Each was retried as the same attempt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub infrastructure_failures: Vec<InfrastructureFailure>,
}

/// One trainer run the infrastructure lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InfrastructureFailure {
    pub attempt: u32,
    #[schemars(length(max = crate::api::bounds::EARLIER_OUTCOME_BYTES))]
    pub reason: String,
}

impl Experiment {
    /// A new experiment waiting for its proposal.
    pub fn new(
        id: ExperimentId,
        stage: Stage,
        parent: Option<ExperimentId>,
        references: Vec<ExperimentId>,
    ) -> Experiment {
        Experiment {
            id,
            name: String::new(),
            stage,
            origin: Origin::Proposal,
            replica: 0,
            rung: 0,
            operator: None,
            parent,
            references,
            motivation: String::new(),
            phase: Phase::Proposing,
            attempts: Vec::new(),
            fitness: None,
            analysis: None,
            problem_summary: None,
            retrieved: Vec::new(),
            infrastructure_failures: Vec::new(),
        }
    }

    /// The rung of the ladder this experiment runs at.
    pub fn level(&self) -> Level {
        Level {
            stage: self.stage,
            rung: if self.stage == Stage::Screening {
                self.rung
            } else {
                0
            },
        }
    }

    /// Runs of the current attempt the infrastructure lost (each one retried): the body names
    /// the retry's trainer after it (`…-a2-r1`).
    pub fn infrastructure_retries(&self) -> u32 {
        let Some(current) = self.current() else {
            return 0;
        };
        self.infrastructure_failures
            .iter()
            .filter(|f| f.attempt == current.number)
            .count() as u32
    }

    /// The attempt in progress or last finished.
    pub fn current(&self) -> Option<&Attempt> {
        self.attempts.last()
    }

    /// The program of the last attempt.
    pub fn program(&self) -> Option<&str> {
        self.attempts.last().map(|attempt| attempt.program.as_str())
    }

    /// Trainer seconds spent over all attempts (a running attempt counts up to its last
    /// progress report).
    pub fn compute_seconds(&self) -> f64 {
        self.attempts
            .iter()
            .map(|attempt| match &attempt.outcome {
                Some(Outcome::Finished { summary }) => summary.wall_s,
                _ => attempt.progress.last().map_or(0.0, |p| p.elapsed_s),
            })
            .sum()
    }

    pub fn summary(&self) -> Option<&TrainSummary> {
        self.attempts
            .iter()
            .rev()
            .find_map(|attempt| match &attempt.outcome {
                Some(Outcome::Finished { summary }) => Some(summary),
                _ => None,
            })
    }
}

/// What happened, as reported by agents and trainers.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The Researcher's proposal (also used for seeds and baselines).
    Proposed {
        name: String,
        motivation: String,
        program: String,
        retrieved: Vec<String>,
        /// How the Researcher made it (a mutation kind, `crossover`, `llm`), when known.
        operator: Option<String>,
    },
    /// The Engineer's repair of the last attempt.
    Revised {
        program: String,
    },
    /// The Engineer gave up.
    RevisionAbandoned {
        reason: String,
    },
    Progress(ProgressPoint),
    Finished(TrainSummary),
    Diverged,
    Crashed {
        message: String,
        log_tail: String,
    },
    /// The trainer's run was lost to the infrastructure, not to the program.
    InfrastructureFailed {
        reason: String,
    },
    Analysed {
        analysis: String,
        problem_summary: String,
        /// The judge's 1–10 score, when a judge ran: it enters fitness.
        judge: Option<f64>,
    },
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Start the trainer for attempt `attempt` with `program`.
    StartTrainer { attempt: u32, program: String },
    /// Stop the running trainer of attempt `attempt`.
    StopTrainer { attempt: u32, reason: String },
    /// Ask the Engineer to repair `program` given `error`.
    RequestRevision { program: String, error: String },
    /// Ask the Analyst to analyse the finished experiment.
    RequestAnalysis,
    /// Nothing further will happen to this experiment.
    Completed { phase: Phase },
}

/// The memory of the device each trainer runs on, with the config that sizes a run.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryBudget {
    pub device_bytes: u64,
    pub train: trainer::TrainConfig,
}

/// Everything a decision needs besides the experiment: limits and what memory knows.
pub struct Context<'a> {
    pub check: &'a CheckConfig,
    pub novelty: &'a NoveltyConfig,
    /// QA thresholds, and the bound on infrastructure retries.
    pub qa: &'a QaLimits,
    pub weights: &'a FitnessWeights,
    pub max_revisions: u32,
    /// Most parameters one mixer may have (the campaign's constraint), if limited.
    pub max_params: Option<u64>,
    /// The device a run will have and the config it trains under, when its memory is known:
    /// a program whose estimated peak exceeds it is refused before it trains.
    pub memory: Option<&'a MemoryBudget>,
    /// Programs in memory (other experiments), for novelty.
    pub known: &'a [Known<'a, ExperimentId>],
    pub qa_context: QaContext,
    /// The baseline's scores at this stage, for fitness; `None` while the baseline runs.
    pub baseline: Option<Scores>,
    /// Seeds and baselines skip the novelty check (they are the reference points).
    pub skip_novelty: bool,
}

/// Why `program` cannot train on the device, if its estimated peak memory exceeds it.
fn exceeds_memory(program: &archspec::Valid, budget: Option<&MemoryBudget>) -> Option<String> {
    let budget = budget?;
    let needed = trainer::memory::peak_training_bytes(&budget.train, program);
    let gib = |bytes: u64| bytes as f64 / f64::from(1 << 30);
    (needed > budget.device_bytes).then(|| {
        format!(
            "training it needs about {:.2} GiB (estimated at batch {}, length {}; README, \"Peak memory\"), more than the device's {:.2} GiB: make it smaller (fewer or narrower heads, a window or a chunked kernel instead of full attention)",
            gib(needed),
            budget.train.batch_size,
            budget.train.data.seq_len,
            gib(budget.device_bytes)
        )
    })
}

/// Advances one experiment by one event.
pub fn step(
    mut experiment: Experiment,
    event: Event,
    context: &Context<'_>,
) -> (Experiment, Vec<Effect>) {
    let mut effects = Vec::new();
    match (experiment.phase, event) {
        (
            Phase::Proposing,
            Event::Proposed {
                name,
                motivation,
                program,
                retrieved,
                operator,
            },
        ) => {
            experiment.operator = operator;
            experiment.name = name.chars().take(MAX_NAME_CHARS).collect();
            experiment.motivation = bounded(&motivation, MAX_MOTIVATION_BYTES);
            experiment.retrieved = retrieved;
            start_attempt(&mut experiment, program, context, &mut effects);
        }
        (Phase::Revising, Event::Revised { program }) => {
            start_attempt(&mut experiment, program, context, &mut effects)
        }
        (Phase::Proposing, Event::RevisionAbandoned { reason }) => {
            // No program exists: an attempt without one keeps the reason in memory.
            experiment.attempts.push(Attempt {
                number: experiment.attempts.len() as u32 + 1,
                program: String::new(),
                outcome: Some(Outcome::AgentFailed { message: reason }),
                progress: Vec::new(),
                structure: None,
            });
            finish(&mut experiment, Phase::Failed, &mut effects);
        }
        (Phase::Revising, Event::RevisionAbandoned { reason }) => {
            experiment.analysis = Some(format!("revision abandoned: {reason}"));
            finish(&mut experiment, Phase::Failed, &mut effects);
        }
        (Phase::Training, Event::Progress(point)) => {
            let Some(attempt) = experiment.attempts.last_mut() else {
                return (experiment, effects);
            };
            // A point at or before the last one is a replay (logs re-read after a restart):
            // counting it twice would corrupt QA and the curves.
            if attempt
                .progress
                .last()
                .is_some_and(|last| (point.trial, point.step) <= (last.trial, last.step))
            {
                return (experiment, effects);
            }
            attempt.progress.push(point);
            if let Some(verdict) = qa::judge(&attempt.progress, &context.qa_context, context.qa) {
                let number = attempt.number;
                let reason = verdict.describe();
                attempt.outcome = Some(Outcome::Stopped { verdict });
                effects.push(Effect::StopTrainer {
                    attempt: number,
                    reason,
                });
                revise_or_fail(&mut experiment, context, &mut effects);
            }
        }
        (Phase::Training, Event::Finished(summary)) => {
            if !summary.val_loss.is_finite() {
                return step(experiment, Event::Diverged, context);
            }
            let scores = scores_of(&experiment, &summary, None, context);
            experiment.fitness = context
                .baseline
                .as_ref()
                .map_or(Some(fitness::BASELINE), |baseline| {
                    fitness(&scores, baseline, context.weights)
                });
            if let Some(attempt) = experiment.attempts.last_mut() {
                attempt.outcome = Some(Outcome::Finished { summary });
            }
            experiment.phase = Phase::Analysing;
            effects.push(Effect::RequestAnalysis);
        }
        (Phase::Training, Event::Diverged) => {
            if let Some(attempt) = experiment.attempts.last_mut() {
                attempt.outcome = Some(Outcome::Diverged);
            }
            revise_or_fail(&mut experiment, context, &mut effects);
        }
        (Phase::Training, Event::Crashed { message, log_tail }) => {
            if let Some(attempt) = experiment.attempts.last_mut() {
                attempt.outcome = Some(Outcome::Crashed { message, log_tail });
            }
            revise_or_fail(&mut experiment, context, &mut effects);
        }
        (Phase::Training, Event::InfrastructureFailed { reason }) => {
            let Some(attempt) = experiment.attempts.last_mut() else {
                return (experiment, effects);
            };
            let number = attempt.number;
            let retries = experiment
                .infrastructure_failures
                .iter()
                .filter(|f| f.attempt == number)
                .count() as u32;
            if retries < context.qa.max_infrastructure_retries {
                // The same attempt again, from the start: a lost run says nothing about the
                // program.
                attempt.progress.clear();
                let program = attempt.program.clone();
                experiment
                    .infrastructure_failures
                    .push(InfrastructureFailure {
                        attempt: number,
                        reason,
                    });
                effects.push(Effect::StartTrainer {
                    attempt: number,
                    program,
                });
            } else {
                attempt.outcome = Some(Outcome::Infrastructure {
                    reason: format!(
                        "{reason} (lost {} runs; qa.maxInfrastructureRetries is {})",
                        retries + 1,
                        context.qa.max_infrastructure_retries
                    ),
                });
                experiment
                    .infrastructure_failures
                    .push(InfrastructureFailure {
                        attempt: number,
                        reason,
                    });
                finish(&mut experiment, Phase::Failed, &mut effects);
            }
        }
        (
            Phase::Analysing,
            Event::Analysed {
                analysis,
                problem_summary,
                judge,
            },
        ) => {
            if let (Some(judge), Some(summary), Some(baseline)) =
                (judge, experiment.summary(), context.baseline.as_ref())
            {
                let scores = scores_of(&experiment, summary, Some(judge), context);
                experiment.fitness = fitness(&scores, baseline, context.weights);
            }
            experiment.analysis = Some(analysis);
            experiment.problem_summary = Some(problem_summary);
            finish(&mut experiment, Phase::Succeeded, &mut effects);
        }
        // Anything else is stale (a late progress line after a stop, a duplicate message):
        // ignoring it keeps the machine idempotent under redelivery.
        _ => {}
    }
    (experiment, effects)
}

/// What fitness weighs of a finished run: its results, the judge's score, and the mixer's cost
/// when a cost term counts.
fn scores_of(
    experiment: &Experiment,
    summary: &TrainSummary,
    judge: Option<f64>,
    context: &Context<'_>,
) -> Scores {
    Scores {
        val_loss: summary.val_loss,
        accuracy: summary.accuracy.clone(),
        judge,
        cost: experiment
            .program()
            .filter(|_| context.weights.cost.any())
            .and_then(|program| fitness::Cost::of(program, context.check)),
    }
}

fn start_attempt(
    experiment: &mut Experiment,
    program: String,
    context: &Context<'_>,
    effects: &mut Vec<Effect>,
) {
    let number = experiment.attempts.len() as u32 + 1;
    let checked = archspec::check_source(&program, context.check);
    let structure = match &checked {
        Ok(valid) => Some(valid.structure()),
        // A program over the complexity limit still has a structure that later proposals
        // must not repeat (novelty compares without the limit).
        Err(_) if context.check.max_complexity.is_some() => {
            let unlimited = CheckConfig {
                max_complexity: None,
                ..context.check.clone()
            };
            archspec::check_source(&program, &unlimited)
                .ok()
                .map(|valid| valid.structure())
        }
        Err(_) => None,
    };
    let outcome = match checked {
        Err(diagnostics) => Some(Outcome::Invalid {
            diagnostics: archspec::diagnostic::render(&program, &diagnostics),
        }),
        Ok(valid)
            if context
                .max_params
                .is_some_and(|max| valid.analysis.params > max) =>
        {
            Some(Outcome::Invalid {
                diagnostics: format!(
                    "the mixer has {} parameters; the campaign allows at most {}",
                    valid.analysis.params,
                    context.max_params.unwrap_or_default()
                ),
            })
        }
        Ok(valid) if exceeds_memory(&valid, context.memory).is_some() => Some(Outcome::Invalid {
            diagnostics: exceeds_memory(&valid, context.memory).unwrap_or_default(),
        }),
        Ok(_) if !context.skip_novelty => structure
            .as_ref()
            .and_then(|structure| novelty_outcome(structure, &experiment.motivation, context)),
        Ok(_) => None,
    };
    experiment.attempts.push(Attempt {
        number,
        // An over-long program was refused by the parser; memory keeps what a reader needs.
        program: bounded(&program, archspec::limits::MAX_SOURCE_BYTES),
        outcome: outcome.clone(),
        progress: Vec::new(),
        structure,
    });
    match outcome {
        None => {
            experiment.phase = Phase::Training;
            effects.push(Effect::StartTrainer {
                attempt: number,
                program,
            });
        }
        Some(_) => revise_or_fail(experiment, context, effects),
    }
}

/// The most of a proposal's name and motivation kept (an agent's words: an LLM may write
/// megabytes).
pub const MAX_NAME_CHARS: usize = 128;
pub const MAX_MOTIVATION_BYTES: usize = 16 * 1024;

/// `text` cut to at most `limit` bytes at a character boundary, saying so when it was cut.
pub fn bounded(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n# … cut at {end} of {} bytes", &text[..end], text.len())
}

fn novelty_outcome(
    structure: &Structure,
    motivation: &str,
    context: &Context<'_>,
) -> Option<Outcome> {
    novelty::check(structure, motivation, context.known, context.novelty)
        .err()
        .map(|not_novel| Outcome::NotNovel {
            reason: not_novel.describe(),
            repairable: !matches!(not_novel, novelty::NotNovel::RepeatedMotivation { .. }),
        })
}

/// After a failed attempt: ask for a revision while the bound allows, else fail.
fn revise_or_fail(experiment: &mut Experiment, context: &Context<'_>, effects: &mut Vec<Effect>) {
    let revisions_used = experiment.attempts.len().saturating_sub(1) as u32;
    let repairable = |attempt: &Attempt| {
        !matches!(
            attempt.outcome,
            Some(Outcome::NotNovel {
                repairable: false,
                ..
            })
        )
    };
    match experiment.attempts.last() {
        Some(attempt) if revisions_used < context.max_revisions && repairable(attempt) => {
            let error = attempt
                .outcome
                .as_ref()
                .map(Outcome::describe)
                .unwrap_or_default();
            experiment.phase = Phase::Revising;
            effects.push(Effect::RequestRevision {
                program: attempt.program.clone(),
                error,
            });
        }
        _ => finish(experiment, Phase::Failed, effects),
    }
}

fn finish(experiment: &mut Experiment, phase: Phase, effects: &mut Vec<Effect>) {
    experiment.phase = phase;
    effects.push(Effect::Completed { phase });
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "mixer good(d_model) {\n  return x |> linear(d_model) |> silu |> short_conv(4) |> linear(d_model)\n}\n";
    const PEEKING: &str =
        "mixer peek(d_model) {\n  return x |> token_shift(-1) |> linear(d_model)\n}\n";

    struct Fixture {
        check: CheckConfig,
        novelty: NoveltyConfig,
        qa: QaLimits,
        weights: FitnessWeights,
    }

    /// `structure` already in memory as experiment 9, proposed for `motivation`.
    fn known_as_9<'a>(
        structure: &'a archspec::canon::Structure,
        motivation: &'a str,
    ) -> [Known<'a, u64>; 1] {
        [Known {
            id: 9,
            structure,
            motivation,
            motivation_similarity: None,
        }]
    }

    impl Fixture {
        /// The structure of `GOOD` under this fixture's check.
        fn good_structure(&self) -> archspec::canon::Structure {
            archspec::check_source(GOOD, &self.check)
                .unwrap()
                .structure()
        }

        fn new() -> Fixture {
            Fixture {
                check: CheckConfig::default(),
                novelty: NoveltyConfig::default(),
                qa: QaLimits::default(),
                weights: FitnessWeights::default(),
            }
        }

        fn context(&self, max_revisions: u32) -> Context<'_> {
            Context {
                check: &self.check,
                novelty: &self.novelty,
                qa: &self.qa,
                weights: &self.weights,
                max_revisions,
                max_params: None,
                memory: None,
                known: &[],
                qa_context: QaContext {
                    steps: 100,
                    trials: 1,
                    ..QaContext::default()
                },
                baseline: Some(Scores {
                    val_loss: 2.0,
                    accuracy: BTreeMap::from([("mqar".into(), 0.5)]),
                    judge: None,
                    cost: None,
                }),
                skip_novelty: false,
            }
        }
    }

    fn proposed(program: &str) -> Event {
        Event::Proposed {
            name: "candidate".into(),
            motivation: "try a convolution".into(),
            program: program.into(),
            retrieved: vec!["h3".into()],
            operator: None,
        }
    }

    fn finished(loss: f64) -> Event {
        Event::Finished(TrainSummary {
            val_loss: loss,
            accuracy: BTreeMap::from([("mqar".into(), 0.9)]),
            wall_s: 10.0,
            params: 1000,
            benchmarks: BTreeMap::new(),
        })
    }

    fn run(events: Vec<Event>, max_revisions: u32) -> (Experiment, Vec<Effect>) {
        let fixture = Fixture::new();
        let context = fixture.context(max_revisions);
        let mut experiment = Experiment::new(1, Stage::Exploration, None, vec![]);
        let mut all = Vec::new();
        for event in events {
            let (next, effects) = step(experiment, event, &context);
            experiment = next;
            all.extend(effects);
        }
        (experiment, all)
    }

    fn lost(reason: &str) -> Event {
        Event::InfrastructureFailed {
            reason: reason.into(),
        }
    }

    fn point(trial: usize, step: usize, loss: f64) -> Event {
        Event::Progress(ProgressPoint {
            step,
            loss,
            elapsed_s: step as f64,
            trial,
        })
    }

    #[test]
    fn a_run_lost_to_the_infrastructure_reruns_the_same_attempt_and_is_no_revision() {
        let (experiment, effects) = run(
            vec![
                proposed(GOOD),
                point(0, 1, 3.0),
                lost("the node was lost"),
                point(0, 1, 3.1),
                finished(1.5),
            ],
            0,
        );
        // Zero revisions allowed, yet the experiment goes on: nothing was charged.
        assert_eq!(experiment.phase, Phase::Analysing);
        assert_eq!(experiment.attempts.len(), 1);
        assert_eq!(experiment.infrastructure_retries(), 1);
        assert_eq!(
            experiment.infrastructure_failures,
            vec![InfrastructureFailure {
                attempt: 1,
                reason: "the node was lost".into()
            }]
        );
        // The rerun's progress replaced the lost run's.
        assert_eq!(experiment.attempts[0].progress.len(), 1);
        assert_eq!(experiment.attempts[0].progress[0].loss, 3.1);
        let starts: Vec<&Effect> = effects
            .iter()
            .filter(|e| matches!(e, Effect::StartTrainer { attempt: 1, .. }))
            .collect();
        assert_eq!(starts.len(), 2, "{effects:?}");
    }

    #[test]
    fn an_attempt_the_infrastructure_keeps_losing_fails_with_the_reason_and_the_bound() {
        let retries = QaLimits::default().max_infrastructure_retries;
        let mut events = vec![proposed(GOOD)];
        events.extend(
            (0..=retries).map(|_| lost("0/3 nodes are available: insufficient nvidia.com/gpu")),
        );
        let (experiment, effects) = run(events, 2);
        assert_eq!(experiment.phase, Phase::Failed);
        assert_eq!(experiment.attempts.len(), 1, "never handed to the Engineer");
        assert!(
            !effects
                .iter()
                .any(|e| matches!(e, Effect::RequestRevision { .. }))
        );
        assert_eq!(
            effects.last(),
            Some(&Effect::Completed {
                phase: Phase::Failed
            })
        );
        let Some(Outcome::Infrastructure { reason }) = &experiment.attempts[0].outcome else {
            panic!("{:?}", experiment.attempts[0].outcome);
        };
        assert!(reason.contains("insufficient nvidia.com/gpu"), "{reason}");
        assert!(
            reason.contains(&format!("lost {} runs", retries + 1)),
            "{reason}"
        );
        assert!(reason.contains("qa.maxInfrastructureRetries"), "{reason}");
    }

    #[test]
    fn progress_seen_again_after_a_reattach_is_not_counted_twice() {
        let (experiment, _) = run(
            vec![
                proposed(GOOD),
                point(0, 1, 3.0),
                point(0, 2, 2.9),
                point(0, 1, 3.0),
                point(0, 2, 2.9),
                point(0, 3, 2.8),
                point(1, 1, 3.2),
                point(0, 4, 2.7),
            ],
            2,
        );
        let seen: Vec<(usize, usize)> = experiment.attempts[0]
            .progress
            .iter()
            .map(|p| (p.trial, p.step))
            .collect();
        assert_eq!(seen, vec![(0, 1), (0, 2), (0, 3), (1, 1)]);
    }

    #[test]
    fn a_cost_term_charges_the_program_s_checked_cost_against_the_baseline_s() {
        let mut fixture = Fixture::new();
        fixture.weights.cost.flops_per_token = 0.5;
        let program_cost = fitness::Cost::of(GOOD, &fixture.check).unwrap();
        let fitness_with = |baseline_flops: u64| {
            let mut context = fixture.context(0);
            if let Some(baseline) = context.baseline.as_mut() {
                baseline.cost = Some(fitness::Cost {
                    flops_per_token: baseline_flops,
                    ..program_cost
                });
            }
            let mut experiment = Experiment::new(1, Stage::Exploration, None, vec![]);
            for event in [proposed(GOOD), finished(1.5)] {
                experiment = step(experiment, event, &context).0;
            }
            experiment.fitness.unwrap()
        };
        // A baseline half as expensive per token (counted + 1) costs the program 0.5 · ln 2.
        let counted = program_cost.flops_per_token + 1;
        let half = counted / 2;
        let same = fitness_with(program_cost.flops_per_token);
        let cheaper = fitness_with(half - 1);
        let expected = 0.5 * (counted as f64 / half as f64).ln();
        assert!((same - cheaper - expected).abs() < 1e-9, "{same} {cheaper}");
    }

    #[test]
    fn a_good_proposal_trains_is_analysed_and_succeeds() {
        let analysed = Event::Analysed {
            analysis: "better".into(),
            problem_summary: "recall is fine".into(),
            judge: None,
        };
        let (experiment, effects) = run(vec![proposed(GOOD), finished(1.5), analysed], 2);
        assert_eq!(experiment.phase, Phase::Succeeded);
        assert_eq!(experiment.retrieved, vec!["h3".to_string()]);
        assert!(experiment.fitness.unwrap() > fitness::BASELINE);
        assert_eq!(
            effects,
            vec![
                Effect::StartTrainer {
                    attempt: 1,
                    program: GOOD.into()
                },
                Effect::RequestAnalysis,
                Effect::Completed {
                    phase: Phase::Succeeded
                }
            ]
        );
    }

    #[test]
    fn an_invalid_program_is_revised_and_every_attempt_is_kept() {
        let (experiment, effects) = run(
            vec![
                proposed(PEEKING),
                Event::Revised {
                    program: GOOD.into(),
                },
                finished(1.9),
            ],
            2,
        );
        assert_eq!(experiment.phase, Phase::Analysing);
        assert_eq!(experiment.attempts.len(), 2);
        match &experiment.attempts[0].outcome {
            Some(Outcome::Invalid { diagnostics }) => assert!(
                diagnostics.contains("E0401") && diagnostics.contains("2:10"),
                "{diagnostics}"
            ),
            other => panic!("expected invalid, got {other:?}"),
        }
        assert!(
            matches!(&effects[0], Effect::RequestRevision { error, .. } if error.contains("not causal"))
        );
        assert_eq!(
            effects[1],
            Effect::StartTrainer {
                attempt: 2,
                program: GOOD.into()
            }
        );
    }

    #[test]
    fn revisions_are_bounded() {
        let (experiment, effects) = run(
            vec![
                proposed(PEEKING),
                Event::Revised {
                    program: PEEKING.into(),
                },
                Event::Revised {
                    program: PEEKING.into(),
                },
            ],
            1,
        );
        assert_eq!(experiment.phase, Phase::Failed);
        assert_eq!(experiment.attempts.len(), 2);
        assert_eq!(
            effects.last(),
            Some(&Effect::Completed {
                phase: Phase::Failed
            })
        );
        // The third revision arrived after the experiment failed and was ignored.
        assert_eq!(
            effects
                .iter()
                .filter(|e| matches!(e, Effect::RequestRevision { .. }))
                .count(),
            1
        );
    }

    #[test]
    fn qa_stops_a_nan_run_and_asks_for_a_revision() {
        let nan = Event::Progress(ProgressPoint {
            step: 5,
            loss: f64::NAN,
            elapsed_s: 1.0,
            trial: 0,
        });
        let (experiment, effects) = run(vec![proposed(GOOD), nan], 2);
        assert_eq!(experiment.phase, Phase::Revising);
        assert!(matches!(
            experiment.attempts[0].outcome,
            Some(Outcome::Stopped {
                verdict: QaVerdict::NotFinite { step: 5 }
            })
        ));
        assert!(matches!(
            &effects[1],
            Effect::StopTrainer { attempt: 1, .. }
        ));
        assert!(matches!(&effects[2], Effect::RequestRevision { .. }));
    }

    #[test]
    fn crashes_and_divergence_are_recorded_with_their_reason() {
        let crash = Event::Crashed {
            message: "exit status 101".into(),
            log_tail: "thread panicked".into(),
        };
        let (experiment, _) = run(
            vec![
                proposed(GOOD),
                crash,
                Event::Revised {
                    program: GOOD.into(),
                },
                Event::Diverged,
            ],
            1,
        );
        assert_eq!(experiment.phase, Phase::Failed);
        assert!(
            matches!(&experiment.attempts[0].outcome, Some(Outcome::Crashed { message, .. }) if message == "exit status 101")
        );
        assert_eq!(experiment.attempts[1].outcome, Some(Outcome::Diverged));
    }

    #[test]
    fn a_duplicate_structure_is_not_novel() {
        let fixture = Fixture::new();
        let structure = fixture.good_structure();
        let known = known_as_9(&structure, "something else entirely");
        let mut context = fixture.context(0);
        context.known = &known;
        let (experiment, effects) = step(
            Experiment::new(1, Stage::Exploration, None, vec![]),
            proposed(GOOD),
            &context,
        );
        assert_eq!(experiment.phase, Phase::Failed);
        assert!(
            matches!(&experiment.attempts[0].outcome, Some(Outcome::NotNovel { reason, .. }) if reason.contains("experiment 9"))
        );
        assert_eq!(
            effects,
            vec![Effect::Completed {
                phase: Phase::Failed
            }]
        );
    }

    #[test]
    fn stale_events_change_nothing() {
        let (before, _) = run(vec![proposed(GOOD)], 2);
        let fixture = Fixture::new();
        let (after, effects) = step(
            before.clone(),
            Event::Revised {
                program: GOOD.into(),
            },
            &fixture.context(2),
        );
        assert_eq!(after, before);
        assert!(effects.is_empty());
    }
    #[test]
    fn a_program_whose_estimated_peak_exceeds_the_device_is_refused_before_it_trains() {
        let fixture = Fixture::new();
        let train: trainer::TrainConfig = serde_yaml::from_str(
            "model: {d_model: 32, n_layers: 2}\ndata: {vocab_size: 64, seq_len: 64, tasks: [{kind: mqar, num_kv_pairs: 4}]}\nsteps: 10\nbatch_size: 4\noptim: {lr: 0.01}\n",
        )
        .expect("config");
        let valid = archspec::check_source(GOOD, &fixture.check).expect("valid");
        let needed = trainer::memory::peak_training_bytes(&train, &valid);
        for (device_bytes, admitted) in [(needed - 1, false), (needed, true)] {
            let budget = MemoryBudget {
                device_bytes,
                train: train.clone(),
            };
            let context = Context {
                memory: Some(&budget),
                ..fixture.context(0)
            };
            let experiment = Experiment::new(1, Stage::Exploration, None, vec![]);
            let (experiment, effects) = step(experiment, proposed(GOOD), &context);
            if admitted {
                assert_eq!(experiment.phase, Phase::Training);
                assert!(matches!(effects[..], [Effect::StartTrainer { .. }]));
            } else {
                match &experiment.attempts[0].outcome {
                    Some(Outcome::Invalid { diagnostics }) => assert!(
                        diagnostics.contains("more than the device's")
                            && diagnostics.contains("batch 4, length 64"),
                        "{diagnostics}"
                    ),
                    other => panic!("{other:?}"),
                }
            }
        }
    }

    #[test]
    fn the_parameter_limit_rejects_a_larger_mixer_and_admits_one_at_the_limit() {
        let fixture = Fixture::new();
        let params = archspec::check_source(GOOD, &fixture.check)
            .expect("valid")
            .analysis
            .params;
        for (limit, admitted) in [(params - 1, false), (params, true)] {
            let context = Context {
                max_params: Some(limit),
                ..fixture.context(0)
            };
            let experiment = Experiment::new(1, Stage::Exploration, None, vec![]);
            let (experiment, effects) = step(experiment, proposed(GOOD), &context);
            if admitted {
                assert_eq!(experiment.phase, Phase::Training, "limit {limit}");
                assert!(matches!(effects[..], [Effect::StartTrainer { .. }]));
            } else {
                match &experiment.attempts[0].outcome {
                    Some(Outcome::Invalid { diagnostics }) => {
                        assert!(
                            diagnostics.contains(&format!("at most {limit}")),
                            "{diagnostics}"
                        )
                    }
                    other => panic!("limit {limit}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn each_outcome_kind_is_the_name_memory_stores_it_under() {
        let outcomes = [
            Outcome::Invalid {
                diagnostics: "d".into(),
            },
            Outcome::NotNovel {
                reason: "r".into(),
                repairable: true,
            },
            Outcome::Stopped {
                verdict: QaVerdict::NotFinite { step: 3 },
            },
            Outcome::Diverged,
            Outcome::Crashed {
                message: "m".into(),
                log_tail: String::new(),
            },
            Outcome::Finished {
                summary: TrainSummary {
                    val_loss: 1.0,
                    accuracy: BTreeMap::new(),
                    wall_s: 1.0,
                    params: 1,
                    benchmarks: BTreeMap::new(),
                },
            },
            Outcome::AgentFailed {
                message: "m".into(),
            },
            Outcome::Infrastructure { reason: "r".into() },
        ];
        for outcome in outcomes {
            let stored = serde_json::to_value(&outcome).unwrap();
            assert_eq!(stored["kind"], outcome.kind(), "{outcome:?}");
        }
    }

    #[test]
    fn a_not_novel_outcome_stored_without_its_repairable_flag_reads_as_repairable() {
        // Memories from before the flag existed: every not-novel attempt was revised.
        let outcome: Outcome =
            serde_json::from_str(r#"{"kind": "not_novel", "reason": "same structure"}"#).unwrap();
        assert_eq!(
            outcome,
            Outcome::NotNovel {
                reason: "same structure".into(),
                repairable: true,
            }
        );
    }

    #[test]
    fn infrastructure_retries_count_the_current_attempts_lost_runs_only() {
        let mut experiment = Experiment::new(1, Stage::Exploration, None, vec![]);
        assert_eq!(experiment.infrastructure_retries(), 0, "no attempt yet");
        for number in 1..=2 {
            experiment.attempts.push(Attempt {
                number,
                program: String::new(),
                outcome: None,
                progress: vec![],
                structure: None,
            });
        }
        assert_eq!(experiment.infrastructure_retries(), 0);
        let lost = |attempt| InfrastructureFailure {
            attempt,
            reason: "node lost".into(),
        };
        experiment.infrastructure_failures = vec![lost(1), lost(2), lost(2)];
        assert_eq!(experiment.infrastructure_retries(), 2);
    }

    #[test]
    fn a_researcher_that_gives_up_leaves_attempt_one_with_its_reason() {
        let (experiment, effects) = run(
            vec![Event::RevisionAbandoned {
                reason: "no operator gave a new program".into(),
            }],
            2,
        );
        assert_eq!(experiment.phase, Phase::Failed);
        assert_eq!(experiment.attempts.len(), 1);
        assert_eq!(experiment.attempts[0].number, 1);
        assert_eq!(
            experiment.attempts[0].outcome,
            Some(Outcome::AgentFailed {
                message: "no operator gave a new program".into()
            })
        );
        assert_eq!(
            effects,
            vec![Effect::Completed {
                phase: Phase::Failed
            }]
        );
    }

    #[test]
    fn a_program_over_the_complexity_limit_is_invalid_but_keeps_its_structure() {
        let mut fixture = Fixture::new();
        fixture.check.max_complexity = Some(archspec::Complexity::Linear);
        let softmax = archspec::library::get("softmax_rope").unwrap().source;
        let (experiment, _) = step(
            Experiment::new(1, Stage::Exploration, None, vec![]),
            proposed(softmax),
            &fixture.context(0),
        );
        assert!(matches!(
            experiment.attempts[0].outcome,
            Some(Outcome::Invalid { .. })
        ));
        // Novelty compares without the limit, so a later proposal of it is a repeat.
        let unlimited = archspec::check_source(softmax, &CheckConfig::default())
            .unwrap()
            .structure();
        assert_eq!(experiment.attempts[0].structure, Some(unlimited));
        // A program that does not check at all has none.
        let (broken, _) = step(
            Experiment::new(2, Stage::Exploration, None, vec![]),
            proposed("mixer broken(d_model) { return y }"),
            &fixture.context(0),
        );
        assert_eq!(broken.attempts[0].structure, None);
    }

    #[test]
    fn an_agent_s_megabytes_are_kept_cut_to_the_bounds_and_the_program_refused() {
        let fixture = Fixture::new();
        let huge = format!(
            "mixer m(d_model) {{\n{}  return x\n}}\n",
            "  # é padding\n".repeat(20_000)
        );
        let event = Event::Proposed {
            name: "n".repeat(10_000),
            motivation: "why ".repeat(100_000),
            program: huge.clone(),
            retrieved: vec![],
            operator: None,
        };
        let (experiment, _) = step(
            Experiment::new(1, Stage::Exploration, None, vec![]),
            event,
            &fixture.context(0),
        );
        let stored = &experiment.attempts[0];
        assert!(matches!(stored.outcome, Some(Outcome::Invalid { .. })));
        assert!(stored.program.len() < archspec::limits::MAX_SOURCE_BYTES + 64);
        assert!(
            stored
                .program
                .ends_with(&format!("of {} bytes", huge.len())),
            "{}",
            &stored.program[stored.program.len() - 80..]
        );
        assert_eq!(experiment.name.chars().count(), MAX_NAME_CHARS);
        assert!(experiment.motivation.len() < MAX_MOTIVATION_BYTES + 64);
        // Within the bounds nothing is touched.
        assert_eq!(bounded("é", 2), "é");
        assert_eq!(bounded("éé", 3), "é\n# … cut at 2 of 4 bytes");
    }

    #[test]
    fn seeds_and_verification_reruns_skip_the_novelty_check() {
        let fixture = Fixture::new();
        let structure = fixture.good_structure();
        let known = known_as_9(&structure, "try a convolution");
        let mut context = fixture.context(0);
        context.known = &known;
        context.skip_novelty = true;
        let (experiment, effects) = step(
            Experiment::new(1, Stage::Verification, None, vec![]),
            proposed(GOOD),
            &context,
        );
        assert_eq!(experiment.phase, Phase::Training);
        assert_eq!(experiment.attempts[0].outcome, None);
        assert!(matches!(effects[..], [Effect::StartTrainer { .. }]));
    }

    #[test]
    fn a_repeated_structure_goes_to_the_engineer_and_a_repeated_motivation_does_not() {
        let fixture = Fixture::new();
        let structure = fixture.good_structure();
        let known = known_as_9(&structure, "try a convolution");
        let mut context = fixture.context(2);
        context.known = &known;
        // The same program: the Engineer can change it.
        let (same_program, effects) = step(
            Experiment::new(1, Stage::Exploration, None, vec![]),
            Event::Proposed {
                name: "copy".into(),
                motivation: "an unrelated idea about gating".into(),
                program: GOOD.into(),
                retrieved: vec![],
                operator: None,
            },
            &context,
        );
        assert_eq!(same_program.phase, Phase::Revising);
        assert!(matches!(effects[..], [Effect::RequestRevision { .. }]));
        // The same motivation with a new program: no edit of the program fixes the idea.
        let new_program = "mixer other(d_model) {\n  return x |> linear(d_model) |> short_conv(4) |> silu |> linear(d_model)\n}\n";
        let (same_idea, effects) = step(
            Experiment::new(2, Stage::Exploration, None, vec![]),
            proposed(new_program),
            &context,
        );
        assert!(
            matches!(
                same_idea.attempts[0].outcome,
                Some(Outcome::NotNovel {
                    repairable: false,
                    ..
                })
            ),
            "{:?}",
            same_idea.attempts[0].outcome
        );
        assert_eq!(same_idea.phase, Phase::Failed);
        assert_eq!(
            effects,
            vec![Effect::Completed {
                phase: Phase::Failed
            }]
        );
    }
}
