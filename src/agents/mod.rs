//! The three agent roles behind one trait, so the evolutionary (offline) backend and the LLM
//! backend are interchangeable: the Researcher proposes, the Engineer repairs, the Analyst
//! explains. Requests carry everything a role may look at; agents never touch memory.

pub mod analyst;
pub mod engineer;
pub mod evolutionary;
pub mod llm;
pub mod random;

use crate::cognition::Entry;
use crate::core::lifecycle::{Experiment, ExperimentId};
use archspec::CheckConfig;
use std::collections::HashSet;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The agent could not produce a usable answer (after its own retries).
    #[error("{role}: {message}")]
    Failed { role: &'static str, message: String },
}

/// What the Researcher sees.
pub struct ProposalRequest<'a> {
    pub experiment: ExperimentId,
    /// Seed of this proposal's random choices (campaign seed and experiment id).
    pub seed: u64,
    pub parent: &'a Experiment,
    pub references: Vec<&'a Experiment>,
    /// Cognition entries retrieved for the parent's problem summary, best first.
    pub cognition: Vec<&'a Entry>,
    /// Every experiment in memory (for what worked before and motivations already tried).
    pub history: &'a [Experiment],
    /// Structural hashes of every program tried, to avoid proposing one again.
    pub known_hashes: &'a HashSet<String>,
    pub check: &'a CheckConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub name: String,
    pub motivation: String,
    pub program: String,
    /// How the program was made, for the per-operator statistics.
    pub operator: Option<String>,
}

/// What the Engineer sees: the experiment with all its attempts (the last one failed).
pub struct RepairRequest<'a> {
    pub seed: u64,
    pub experiment: &'a Experiment,
    pub parent: Option<&'a Experiment>,
    /// The failure as text (checker diagnostics with line:column, QA verdict, log tail).
    pub error: &'a str,
    pub known_hashes: &'a HashSet<String>,
    pub check: &'a CheckConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Repair {
    Revised { program: String, note: String },
    Abandoned { reason: String },
}

/// What the Analyst sees: the finished experiment and what to compare it with.
pub struct AnalysisRequest<'a> {
    pub experiment: &'a Experiment,
    pub parent: Option<&'a Experiment>,
    /// Finished experiments with the same parent.
    pub siblings: Vec<&'a Experiment>,
    /// The baseline at the same stage.
    pub baseline: Option<&'a Experiment>,
    /// Finished experiments of the same stage, for the rank.
    pub peers: Vec<&'a Experiment>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub analysis: String,
    /// Symptoms in a sentence or two: the query for cognition retrieval.
    pub problem_summary: String,
}

/// What the judge sees: the finished experiment and the Analyst's numbers.
pub struct JudgeRequest<'a> {
    pub experiment: &'a Experiment,
    pub numbers: &'a str,
}

/// One backend for the roles.
pub trait Agents: Send {
    /// The backend's name, for logs and reports.
    fn name(&self) -> &'static str;
    fn propose(&mut self, request: &ProposalRequest<'_>) -> Result<Proposal, AgentError>;
    fn repair(&mut self, request: &RepairRequest<'_>) -> Result<Repair, AgentError>;
    fn analyse(&mut self, request: &AnalysisRequest<'_>) -> Result<Analysis, AgentError>;
    /// A 1–10 quality score for fitness's judge term; `None` when there is no judge.
    fn judge(&mut self, _request: &JudgeRequest<'_>) -> Option<f64> {
        None
    }
    /// LLM tokens spent by this process.
    fn tokens_used(&self) -> u64 {
        0
    }
    /// Requests, errors, tokens and latency per role (this process).
    fn stats(&self) -> std::collections::BTreeMap<String, llm::client::RoleStats> {
        std::collections::BTreeMap::new()
    }
    /// Why the backend fell back to the evolutionary agents, if it has.
    fn fallback(&self) -> Option<&str> {
        None
    }
    /// The structured-output form settled on per endpoint and model ("<url> <model>" → form).
    fn negotiated(&self) -> std::collections::BTreeMap<String, String> {
        std::collections::BTreeMap::new()
    }
    /// Takes over what an earlier run of the campaign negotiated.
    fn restore_negotiated(&mut self, _negotiated: &std::collections::BTreeMap<String, String>) {}
}

/// The Researcher variants of the offline backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchStrategy {
    /// Fitness-ranked parents, operator statistics, analysis and cognition steering.
    Evolutionary,
    /// Uniform parents and operators: the control the benchmark compares against.
    Random,
}

/// The offline backend: a Researcher of the given strategy, the rule-based Engineer and the
/// numeric Analyst.
pub struct Offline {
    pub strategy: SearchStrategy,
}

impl Agents for Offline {
    fn name(&self) -> &'static str {
        match self.strategy {
            SearchStrategy::Evolutionary => "evolutionary",
            SearchStrategy::Random => "random",
        }
    }

    fn propose(&mut self, request: &ProposalRequest<'_>) -> Result<Proposal, AgentError> {
        match self.strategy {
            SearchStrategy::Evolutionary => evolutionary::propose(request),
            SearchStrategy::Random => random::propose(request),
        }
    }

    fn repair(&mut self, request: &RepairRequest<'_>) -> Result<Repair, AgentError> {
        Ok(engineer::repair(request))
    }

    fn analyse(&mut self, request: &AnalysisRequest<'_>) -> Result<Analysis, AgentError> {
        Ok(analyst::analyse(request))
    }
}
