//! `archlab report`: what a campaign found, from memory alone. [`Report::build`] gathers the
//! data (leaderboard, lineage, attempts, verification); `text`, `plots` and `html` render it.
//! The JSON form is the [`Report`] itself.

pub mod html;
pub mod plots;
pub mod text;

use crate::core::budget::Usage;
use crate::core::lifecycle::{Experiment, ExperimentId, Origin, Outcome, Phase, Stage};
use crate::core::stats::MeanInterval;
use crate::core::verification::{self, Verification};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct AttemptRow {
    pub number: u32,
    /// `finished`, `invalid`, `not_novel`, `stopped`, `diverged`, `crashed`, `agent_failed`,
    /// or `running`.
    pub outcome: String,
    /// Why the attempt failed (empty when it finished).
    pub reason: String,
    pub val_loss: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExperimentRow {
    pub id: ExperimentId,
    pub name: String,
    pub parent: Option<ExperimentId>,
    pub references: Vec<ExperimentId>,
    pub stage: Stage,
    /// The screening rung (1-based) of a `screening` run; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rung: Option<u32>,
    pub origin: Origin,
    pub replica: u32,
    pub phase: Phase,
    pub fitness: Option<f64>,
    pub val_loss: Option<f64>,
    pub accuracy: BTreeMap<String, f64>,
    /// Benchmarks' scores with their standard errors (`acc` is in `accuracy` too).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub benchmarks: BTreeMap<String, trainer::BenchmarkScore>,
    /// Whole-model parameters as trained.
    pub params: Option<u64>,
    /// Cost in the sequence length (`linear`, `window`, `quadratic`).
    pub complexity: Option<String>,
    /// The mixer's parameters, FLOPs per token and state at the verification scale.
    pub cost: Option<crate::core::fitness::Cost>,
    pub operator: Option<String>,
    pub motivation: String,
    pub analysis: Option<String>,
    pub problem_summary: Option<String>,
    pub retrieved: Vec<String>,
    pub compute_s: f64,
    pub attempts: Vec<AttemptRow>,
    /// The final attempt's program.
    pub program: String,
    /// `(step, training loss)` of the final attempt.
    pub loss_curve: Vec<(usize, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LeaderboardRow {
    pub rank: usize,
    pub id: ExperimentId,
    pub name: String,
    pub origin: Origin,
    pub fitness: f64,
    pub val_loss: Option<f64>,
    pub accuracy: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub benchmarks: BTreeMap<String, trainer::BenchmarkScore>,
    pub params: Option<u64>,
    pub complexity: Option<String>,
    pub cost: Option<crate::core::fitness::Cost>,
    /// Verification: validation loss mean ± 95% interval over seeds.
    pub verified: Option<MeanInterval>,
    pub state_of_the_art: bool,
}

/// What the agents cost (LLM backend): per-role counters and any fallback.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct AgentsRecord {
    #[serde(default)]
    pub roles: BTreeMap<String, crate::agents::llm::client::RoleStats>,
    #[serde(default)]
    pub fallback: Option<String>,
    /// Why cognition retrieval fell back to the lexical retriever, if it did.
    #[serde(default, rename = "retrievalFallback")]
    pub retrieval_fallback: Option<String>,
    /// The structured-output form each endpoint and model settled on ("<url> <model>" → mode).
    #[serde(default)]
    pub negotiated: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub campaign: String,
    pub baseline: String,
    pub usage: Usage,
    pub experiments: Vec<ExperimentRow>,
    /// Exploration results, best fitness first.
    pub leaderboard: Vec<LeaderboardRow>,
    pub verification: Verification,
    /// Requests, errors, retries, tokens and latency per LLM role (absent without an LLM).
    pub agents: Option<AgentsRecord>,
    /// The campaign's `spec.seed`: with `parallelism: 1` the same manifest and seed give the
    /// same experiments (more trainers make the proposals depend on which finishes first).
    pub seed: Option<u64>,
    /// The archlab that wrote this report.
    pub archlab_version: String,
    /// The claim rule's simulated false-claim rates, when asked (`report --false-claims`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub false_claims: Option<FalseClaims>,
    /// Stored experiments that cannot be read back, left out of every table above.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quarantined: Vec<crate::memory::Quarantined>,
}

/// How often the claim rule claimed the best program under another name, simulated under the
/// campaign's own verification noise ([`crate::core::false_claims`]).
#[derive(Debug, Clone, Serialize)]
pub struct FalseClaims {
    /// Residuals of ln(validation loss) the noise is drawn from, and their spread.
    pub residuals: usize,
    pub log_loss_sd: f64,
    /// Every residual is zero (deterministic training): identical programs tie, and nothing
    /// is claimed falsely, but that says nothing of noisier hardware.
    pub degenerate: bool,
    pub rates: Vec<crate::core::false_claims::Rate>,
}

fn outcome_row(number: u32, outcome: Option<&Outcome>) -> AttemptRow {
    let (kind, reason, val_loss) = match outcome {
        None => ("running", String::new(), None),
        Some(Outcome::Finished { summary }) => ("finished", String::new(), Some(summary.val_loss)),
        Some(other) => (other.kind(), other.describe(), None),
    };
    AttemptRow {
        number,
        outcome: kind.into(),
        reason,
        val_loss,
    }
}

fn complexity(program: &str) -> Option<String> {
    let check = archspec::CheckConfig {
        max_complexity: None,
        ..archspec::CheckConfig::default()
    };
    archspec::check_source(program, &check)
        .ok()
        .map(|v| v.analysis.complexity.name().to_string())
}

/// `1 experiment`, `2 experiments`: a count with its noun in the right number.
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A score as the harness prints it: `value ± standard error`, or the value alone.
pub fn with_error(value: Option<f64>, error: Option<f64>) -> Option<String> {
    match (value, error) {
        (Some(value), Some(error)) => Some(format!("{value:.4} ± {error:.4}")),
        (Some(value), None) => Some(format!("{value:.4}")),
        (None, _) => None,
    }
}

impl Report {
    /// Whether any leaderboard row has zero-shot benchmark scores.
    pub fn has_benchmarks(&self) -> bool {
        self.leaderboard
            .iter()
            .any(|row| !row.benchmarks.is_empty())
    }

    pub fn build(
        campaign: &str,
        rules: &verification::Rules,
        experiments: &[Experiment],
        usage: Usage,
    ) -> Report {
        let verification = verification::summarise(experiments, rules);
        let rows: Vec<ExperimentRow> = experiments
            .iter()
            .map(|e| {
                let summary = e.summary();
                let program = e.program().unwrap_or_default().to_string();
                ExperimentRow {
                    id: e.id,
                    name: e.name.clone(),
                    parent: e.parent,
                    references: e.references.clone(),
                    stage: e.stage,
                    rung: (e.stage == Stage::Screening).then_some(e.rung),
                    origin: e.origin,
                    replica: e.replica,
                    phase: e.phase,
                    fitness: e.fitness,
                    val_loss: summary.map(|s| s.val_loss),
                    accuracy: summary.map(|s| s.accuracy.clone()).unwrap_or_default(),
                    benchmarks: summary.map(|s| s.benchmarks.clone()).unwrap_or_default(),
                    params: summary.map(|s| s.params),
                    complexity: complexity(&program),
                    cost: crate::core::fitness::Cost::of(&program, &rules.check),
                    operator: e.operator.clone(),
                    motivation: e.motivation.clone(),
                    analysis: e.analysis.clone(),
                    problem_summary: e.problem_summary.clone(),
                    retrieved: e.retrieved.clone(),
                    compute_s: e.compute_seconds(),
                    attempts: e
                        .attempts
                        .iter()
                        .map(|a| outcome_row(a.number, a.outcome.as_ref()))
                        .collect(),
                    program,
                    loss_curve: e
                        .current()
                        .map(|a| a.progress.iter().map(|p| (p.step, p.loss)).collect())
                        .unwrap_or_default(),
                }
            })
            .collect();
        let mut leaderboard: Vec<LeaderboardRow> = rows
            .iter()
            .filter(|r| r.stage == Stage::Exploration && r.phase == Phase::Succeeded)
            .filter_map(|r| {
                let fitness = r.fitness?;
                let verified = verification
                    .programs
                    .iter()
                    .chain(&verification.comparators)
                    .find(|p| p.source == r.id);
                Some(LeaderboardRow {
                    rank: 0,
                    id: r.id,
                    name: r.name.clone(),
                    origin: r.origin,
                    fitness,
                    val_loss: r.val_loss,
                    accuracy: r.accuracy.clone(),
                    benchmarks: r.benchmarks.clone(),
                    params: r.params,
                    complexity: r.complexity.clone(),
                    cost: r.cost,
                    verified: verified.map(|v| v.val_loss),
                    state_of_the_art: verified.is_some_and(|v| v.state_of_the_art),
                })
            })
            .collect();
        leaderboard.sort_by(|a, b| b.fitness.total_cmp(&a.fitness).then(a.id.cmp(&b.id)));
        for (index, row) in leaderboard.iter_mut().enumerate() {
            row.rank = index + 1;
        }
        Report {
            campaign: campaign.to_string(),
            baseline: rules.baseline.clone(),
            usage,
            experiments: rows,
            leaderboard,
            verification,
            agents: None,
            seed: None,
            archlab_version: env!("CARGO_PKG_VERSION").to_string(),
            false_claims: None,
            quarantined: Vec::new(),
        }
    }

    pub fn experiment(&self, id: ExperimentId) -> Option<&ExperimentRow> {
        self.experiments.iter().find(|e| e.id == id)
    }
}
