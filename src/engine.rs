//! The engine both drivers share: it asks the planner what to create, retrieves cognition,
//! calls the agents, steps the lifecycle and writes every change to memory, and hands the
//! driver only what needs a body — start or stop a trainer. The local driver runs trainers as
//! child processes; the operator as pods. Neither decides anything.

use crate::agents::llm::client::RoleStats;
use crate::agents::{
    Agents, AnalysisRequest, JudgeRequest, ProposalRequest, Repair, RepairRequest,
};
use crate::api::CampaignSpec;
use crate::cognition::embedding::{TextEmbedder, cosine};
use crate::cognition::lexical::GrowingIndex;
use crate::cognition::{Base, Retriever};
use crate::core::campaign::{self, Ending, NewExperiment, Next, StepInputs};
use crate::core::lifecycle::{self, Effect, Event, Experiment, ExperimentId, Origin, Phase, Stage};
use crate::core::progress_writes::{self, Write};
use crate::core::spec_change::{self, SpecChange};
use crate::memory::{Loaded, MemoryError, Quarantined, Store};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};
use trainer::TrainConfig;

/// How [`Engine::resume_with`] treats trainers a previous run left running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// The trainers died with the driver (child processes): start them again from scratch.
    Restart,
    /// The trainers may still run (pods): adopt them, keeping the progress already seen.
    Adopt,
}

/// What the driver must do with its body.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Start {
        experiment: ExperimentId,
        name: String,
        attempt: u32,
        /// Runs of this attempt lost to the infrastructure so far (0 on the first run): the
        /// operator names each run's pod after it.
        retry: u32,
        program: String,
        config: Box<TrainConfig>,
    },
    Stop {
        experiment: ExperimentId,
        attempt: u32,
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error("seed `{0}` has no program")]
    UnknownSeed(String),
    #[error("cognition retrieval: {0}")]
    Cognition(#[from] crate::cognition::CognitionError),
}

type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Cognition retrieval as the campaign configured it.
pub struct Cognition {
    pub base: Base,
    pub retriever: Box<dyn Retriever>,
    pub top_k: usize,
    pub min_score: f64,
}

/// An embedder with a cache, so each motivation is embedded once.
struct Motivations {
    embedder: Box<dyn TextEmbedder>,
    cache: std::collections::HashMap<String, Vec<f32>>,
}

impl Motivations {
    /// Similarity of `motivation` to each of `others`, or `None` when the endpoint fails.
    fn similarities(&mut self, motivation: &str, others: &[&str]) -> Option<Vec<f64>> {
        let missing: Vec<String> = std::iter::once(motivation)
            .chain(others.iter().copied())
            .filter(|t| !self.cache.contains_key(*t))
            .map(str::to_string)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !missing.is_empty() {
            match self.embedder.embed(&missing) {
                Ok(vectors) if vectors.len() == missing.len() => {
                    self.cache.extend(missing.into_iter().zip(vectors));
                }
                Ok(_) | Err(_) => {
                    tracing::warn!(
                        "motivation embeddings unavailable; using the built-in embedding"
                    );
                    return None;
                }
            }
        }
        let own = self.cache.get(motivation)?;
        others
            .iter()
            .map(|o| self.cache.get(*o).map(|v| cosine(own, v)))
            .collect()
    }
}

/// Keeps `index` holding the motivation of each exploration experiment (what the novelty check
/// compares a proposal's motivation with).
fn index_motivation(index: &mut GrowingIndex, experiment: &Experiment) {
    if experiment.stage == Stage::Exploration && !experiment.motivation.trim().is_empty() {
        index.upsert(experiment.id, &experiment.motivation);
    }
}

/// Adds the structural hashes of an exploration experiment's attempts to `known` (attempts are
/// only ever added, and a stored structure never changes).
fn add_hashes(known: &mut HashSet<String>, experiment: &Experiment) {
    if experiment.stage == Stage::Exploration {
        for structure in experiment
            .attempts
            .iter()
            .filter_map(|a| a.structure.as_ref())
        {
            if !known.contains(&structure.hash) {
                known.insert(structure.hash.clone());
            }
        }
    }
}

/// Used when a parent has no problem summary yet (a seed that is still being analysed).
const DEFAULT_QUERY: &str =
    "associative recall is poor: the recurrent state cannot retrieve the value of a queried key";

pub struct Engine<S: Store> {
    pub campaign: String,
    pub spec: CampaignSpec,
    store: S,
    agents: Box<dyn Agents>,
    cognition: Cognition,
    /// Mirror of memory (this engine is the campaign's only writer).
    experiments: Vec<Experiment>,
    /// Stored experiments that could not be read back: left out, but counted (see `usage`).
    quarantined: Vec<Quarantined>,
    /// Agent statistics of earlier runs of this campaign, and this run's tokens already
    /// added to the usage in memory.
    stats_before: BTreeMap<String, RoleStats>,
    tokens_recorded: u64,
    motivations: Option<Motivations>,
    /// The built-in lexical embedding of every exploration motivation, kept up to date as
    /// experiments are saved, so that a proposal's motivation check does not re-index memory.
    motivation_index: GrowingIndex,
    /// Structural hashes of every program tried at the exploration scale, as stored with the
    /// attempts (no program is checked again); kept up to date as experiments are saved.
    known_hashes: HashSet<String>,
    retrieval_fallback: Option<String>,
    /// When this run last wrote each experiment, and the experiments whose mirror holds
    /// progress not yet written (see [`progress_writes`]).
    written_at: BTreeMap<ExperimentId, Instant>,
    unwritten: BTreeSet<ExperimentId>,
    progress_interval: Duration,
    /// The memory of the device trainers run on, as the driver measured it (the campaign's
    /// `constraints.deviceMemoryGiB` takes precedence).
    device_memory: Option<u64>,
}

/// Registers the campaign's spec. Where memory holds another spec under the name (SQLite; the
/// operator's memory is the Campaign resource, whose edits its reconcile judges), the edit is
/// judged by the rule the operator applies: a raised budget continues the campaign and the new
/// spec is stored; any other edit is refused, naming what changed.
fn accept_spec(
    store: &mut impl Store,
    campaign: &str,
    spec: &CampaignSpec,
    spec_json: &str,
) -> Result<()> {
    match store.register_campaign(campaign, spec_json) {
        Err(MemoryError::SpecChanged { .. }) => {}
        other => return Ok(other?),
    }
    let stored = store.campaign_spec(campaign)?.unwrap_or_default();
    let running: CampaignSpec =
        serde_json::from_str(&stored).map_err(|e| MemoryError::Corrupt {
            what: format!("campaign {campaign}'s stored spec"),
            message: e.to_string(),
        })?;
    match spec_change::judge(&running, spec) {
        // Equal once read (written by an older archlab): store it as this one writes it.
        SpecChange::Unchanged => store.replace_campaign_spec(campaign, spec_json)?,
        SpecChange::BudgetRaised => {
            tracing::info!(campaign, "the budget was raised; the campaign continues");
            store.replace_campaign_spec(campaign, spec_json)?;
        }
        SpecChange::Refused { reason } => {
            return Err(MemoryError::SpecChanged {
                name: campaign.to_string(),
                reason,
            }
            .into());
        }
    }
    Ok(())
}

impl<S: Store> Engine<S> {
    pub fn open(
        campaign: &str,
        spec: CampaignSpec,
        mut store: S,
        agents: Box<dyn Agents>,
        cognition: Cognition,
    ) -> Result<Engine<S>> {
        let spec_json = serde_json::to_string(&spec).map_err(|e| MemoryError::Corrupt {
            what: "campaign spec".into(),
            message: e.to_string(),
        })?;
        accept_spec(&mut store, campaign, &spec, &spec_json)?;
        let Loaded {
            experiments,
            quarantined,
        } = store.load(campaign)?;
        for damaged in &quarantined {
            tracing::warn!(
                "experiment {} cannot be read back ({}); it is left out of this run and its record kept as it is",
                damaged.id,
                damaged.reason
            );
        }
        let record = store
            .agent_stats(campaign)?
            .and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok())
            .unwrap_or_default();
        let stats_before = serde_json::from_value(record["roles"].clone()).unwrap_or_default();
        let mut agents = agents;
        if let Ok(negotiated) = serde_json::from_value(record["negotiated"].clone()) {
            agents.restore_negotiated(&negotiated);
        }
        let mut engine = Engine {
            campaign: campaign.to_string(),
            spec,
            store,
            agents,
            cognition,
            experiments,
            quarantined,
            stats_before,
            tokens_recorded: 0,
            motivations: None,
            motivation_index: GrowingIndex::default(),
            known_hashes: HashSet::new(),
            retrieval_fallback: None,
            written_at: BTreeMap::new(),
            unwritten: BTreeSet::new(),
            progress_interval: progress_writes::INTERVAL,
            device_memory: None,
        };
        for experiment in &engine.experiments {
            index_motivation(&mut engine.motivation_index, experiment);
            add_hashes(&mut engine.known_hashes, experiment);
        }
        engine.fill_in_structures()?;
        Ok(engine)
    }

    /// Holds programs to `bytes` of device memory where the campaign states none (the local
    /// driver passes this machine's RAM).
    pub fn with_device_memory(mut self, bytes: Option<u64>) -> Engine<S> {
        self.device_memory = bytes;
        self
    }

    /// Judges motivation novelty with `embedder` instead of the built-in lexical embedding.
    pub fn with_motivation_embedder(mut self, embedder: Box<dyn TextEmbedder>) -> Engine<S> {
        self.motivations = Some(Motivations {
            embedder,
            cache: std::collections::HashMap::new(),
        });
        self
    }

    /// Writes progress-only changes of an experiment at most once per `interval` (default
    /// [`progress_writes::INTERVAL`]).
    pub fn with_progress_interval(mut self, interval: Duration) -> Engine<S> {
        self.progress_interval = interval;
        self
    }

    /// Writes the experiments whose kept progress has waited its interval. Drivers call it
    /// whenever they wake; [`Engine::next_write_in`] says when it is next needed.
    pub fn write_due(&mut self) -> Result<()> {
        let due: Vec<ExperimentId> = self
            .unwritten
            .iter()
            .copied()
            .filter(|id| self.write_in(*id) == Duration::ZERO)
            .collect();
        self.write_kept(&due)
    }

    /// Writes every change kept for later (before a driver stops).
    pub fn write_all(&mut self) -> Result<()> {
        let kept: Vec<ExperimentId> = self.unwritten.iter().copied().collect();
        self.write_kept(&kept)
    }

    /// How long until a kept change must be written; `None` when nothing waits.
    pub fn next_write_in(&self) -> Option<Duration> {
        self.unwritten.iter().map(|id| self.write_in(*id)).min()
    }

    fn write_in(&self, id: ExperimentId) -> Duration {
        self.written_at.get(&id).map_or(Duration::ZERO, |at| {
            progress_writes::due_in(at.elapsed(), self.progress_interval)
        })
    }

    fn write_kept(&mut self, ids: &[ExperimentId]) -> Result<()> {
        for id in ids {
            if let Some(experiment) = self.get(*id).cloned() {
                self.save(experiment)?;
            }
            self.unwritten.remove(id);
        }
        Ok(())
    }

    pub fn experiments(&self) -> &[Experiment] {
        &self.experiments
    }

    /// Stored experiments left out because they cannot be read back.
    pub fn quarantined(&self) -> &[Quarantined] {
        &self.quarantined
    }

    pub fn usage(&self) -> crate::core::budget::Usage {
        let tokens = self
            .store
            .usage(&self.campaign)
            .map(|u| u.llm_tokens)
            .unwrap_or(0);
        let mut usage = campaign::usage(&self.experiments, tokens);
        // A damaged experiment was run all the same: it keeps its place in the experiment
        // budget (its compute time cannot be read, so it is not counted).
        let damaged = u32::try_from(self.quarantined.len()).unwrap_or(u32::MAX);
        usage.experiments = usage.experiments.saturating_add(damaged);
        usage
    }

    /// Usage as the planner should see it: when the LLM backend may fall back to the
    /// evolutionary agents, spent LLM tokens switch agents instead of ending the campaign.
    fn planning_usage(&self) -> crate::core::budget::Usage {
        let mut usage = self.usage();
        if self
            .spec
            .agents
            .llm
            .as_ref()
            .is_some_and(|llm| llm.fallback_to_evolutionary)
        {
            usage.llm_tokens = 0;
        }
        usage
    }

    /// Per-role statistics over every run of this campaign.
    pub fn agent_stats(&self) -> BTreeMap<String, RoleStats> {
        let mut merged = self.stats_before.clone();
        for (role, stats) in self.agents.stats() {
            let total = merged.entry(role).or_default();
            total.requests += stats.requests;
            total.errors += stats.errors;
            total.retries += stats.retries;
            total.downgrades += stats.downgrades;
            total.prompt_tokens = total.prompt_tokens.saturating_add(stats.prompt_tokens);
            total.completion_tokens = total
                .completion_tokens
                .saturating_add(stats.completion_tokens);
            total.latency_ms += stats.latency_ms;
        }
        merged
    }

    /// Writes the agents' token usage and statistics to memory.
    fn record_agents(&mut self) -> Result<()> {
        let tokens = self.agents.tokens_used();
        if tokens > self.tokens_recorded {
            let delta = crate::core::budget::Usage {
                llm_tokens: tokens - self.tokens_recorded,
                ..Default::default()
            };
            self.store.add_usage(&self.campaign, &delta)?;
            self.tokens_recorded = tokens;
        }
        let negotiated = self.agents.negotiated();
        if tokens > 0
            || self.agents.fallback().is_some()
            || self.retrieval_fallback.is_some()
            || !negotiated.is_empty()
        {
            let record = serde_json::json!({
                "roles": self.agent_stats(),
                "fallback": self.agents.fallback(),
                "retrievalFallback": self.retrieval_fallback,
                "negotiated": negotiated,
            });
            self.store
                .save_agent_stats(&self.campaign, &record.to_string())?;
        }
        Ok(())
    }

    pub fn agents_name(&self) -> &'static str {
        self.agents.name()
    }

    /// Why the agents fell back to the evolutionary backend, once they have.
    pub fn agents_fallback(&self) -> Option<&str> {
        self.agents.fallback()
    }

    fn get(&self, id: ExperimentId) -> Option<&Experiment> {
        self.experiments.iter().find(|e| e.id == id)
    }

    fn save(&mut self, experiment: Experiment) -> Result<()> {
        self.store.save_experiment(&self.campaign, &experiment)?;
        self.written_at.insert(experiment.id, Instant::now());
        self.unwritten.remove(&experiment.id);
        index_motivation(&mut self.motivation_index, &experiment);
        add_hashes(&mut self.known_hashes, &experiment);
        match self.experiments.iter_mut().find(|e| e.id == experiment.id) {
            Some(slot) => *slot = experiment,
            None => self.experiments.push(experiment),
        }
        Ok(())
    }

    /// Updates the mirror only; the change is written by [`Engine::write_due`].
    fn keep(&mut self, experiment: Experiment) {
        self.unwritten.insert(experiment.id);
        if let Some(slot) = self.experiments.iter_mut().find(|e| e.id == experiment.id) {
            *slot = experiment;
        }
    }

    /// Picks up experiments a previous run left unfinished: restarts interrupted trainers (the
    /// attempt's partial progress is discarded) and re-asks interrupted agents.
    pub fn resume(&mut self) -> Result<Vec<Command>> {
        self.resume_with(Resume::Restart)
    }

    /// As [`Engine::resume`], but with `Resume::Adopt` a training attempt keeps its progress and
    /// its `Start` means "make sure its trainer runs": a body whose trainers outlive it (pods)
    /// re-attaches to a running one; progress it sees again is not counted twice.
    pub fn resume_with(&mut self, mode: Resume) -> Result<Vec<Command>> {
        let mut commands = Vec::new();
        let pending: Vec<Experiment> = self
            .experiments
            .iter()
            .filter(|e| !e.phase.is_terminal())
            .cloned()
            .collect();
        for mut experiment in pending {
            match experiment.phase {
                Phase::Training => {
                    if let Some(attempt) = experiment.attempts.last_mut() {
                        if mode == Resume::Restart {
                            attempt.progress.clear();
                        }
                        attempt.outcome = None;
                        let command = self.start_command(&experiment);
                        self.save(experiment)?;
                        commands.extend(command);
                    }
                }
                Phase::Proposing => commands.extend(self.propose(experiment)?),
                Phase::Revising => {
                    let error = experiment
                        .current()
                        .and_then(|a| a.outcome.as_ref())
                        .map(lifecycle::Outcome::describe)
                        .unwrap_or_default();
                    let program = experiment.program().unwrap_or_default().to_string();
                    commands.extend(
                        self.apply(experiment, vec![Effect::RequestRevision { program, error }])?,
                    );
                }
                Phase::Analysing => {
                    commands.extend(self.apply(experiment, vec![Effect::RequestAnalysis])?)
                }
                Phase::Succeeded | Phase::Failed => {}
            }
        }
        Ok(commands)
    }

    /// Creates experiments until `free_slots` trainers have been started or the planner says
    /// wait or done.
    pub fn fill(&mut self, free_slots: usize) -> Result<(Vec<Command>, Option<Ending>)> {
        let mut commands = Vec::new();
        while commands.len() < free_slots {
            let usage = self.planning_usage();
            let next_id = self.store.next_experiment_id(&self.campaign)?;
            let mut rng = SmallRng::seed_from_u64(
                self.spec.seed ^ next_id.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            match campaign::next(&self.spec, &self.experiments, &usage, &mut rng) {
                Next::Create(new) => {
                    tracing::debug!(id = next_id, ?new, "creating an experiment");
                    let experiment = self.create(next_id, new)?;
                    commands.extend(self.propose(experiment)?);
                }
                Next::Wait => break,
                Next::Done(ending) => return Ok((commands, Some(ending))),
            }
        }
        Ok((commands, None))
    }

    fn create(&mut self, id: ExperimentId, new: NewExperiment) -> Result<Experiment> {
        let mut experiment = Experiment::new(id, new.stage, new.parent, new.references);
        experiment.origin = new.origin;
        experiment.replica = new.replica;
        experiment.rung = new.rung;
        if let Some(seed) = &new.seed {
            experiment.name = seed.clone();
        }
        self.save(experiment.clone())?;
        Ok(experiment)
    }

    /// Produces the experiment's program (seed, verification copy or Researcher proposal) and
    /// steps the lifecycle with it.
    fn propose(&mut self, experiment: Experiment) -> Result<Vec<Command>> {
        let event = match experiment.origin {
            Origin::Seed => {
                let seed = self
                    .spec
                    .seeds
                    .iter()
                    .find(|s| s.name == experiment.name)
                    .ok_or_else(|| EngineError::UnknownSeed(experiment.name.clone()))?;
                let program = match (&seed.library, &seed.program) {
                    (_, Some(program)) => program.clone(),
                    (Some(name), None) => archspec::library::get(name)
                        .map(|entry| entry.source.to_string())
                        .ok_or_else(|| EngineError::UnknownSeed(name.clone()))?,
                    (None, None) => return Err(EngineError::UnknownSeed(seed.name.clone())),
                };
                Event::Proposed {
                    name: seed.name.clone(),
                    motivation: format!("seed `{}` of the campaign", seed.name),
                    program,
                    retrieved: Vec::new(),
                    operator: None,
                }
            }
            Origin::Verification => {
                let source = experiment.parent.and_then(|id| self.get(id));
                match source.and_then(|s| s.program().map(|p| (s, p.to_string()))) {
                    Some((source, program)) => Event::Proposed {
                        name: format!("{}@seed{}", source.name, experiment.replica),
                        motivation: format!(
                            "verification of {} at the larger scale, training seed {}",
                            source.name, experiment.replica
                        ),
                        program,
                        retrieved: Vec::new(),
                        operator: None,
                    },
                    None => Event::RevisionAbandoned {
                        reason: "the promoted experiment has no program".into(),
                    },
                }
            }
            Origin::Proposal => self.research(&experiment)?,
        };
        self.apply_event(experiment, event)
    }

    /// The cognition entries for `query`. A retriever that fails (an embeddings endpoint that
    /// went down, a vector of the wrong size) is replaced by the built-in lexical one for the
    /// rest of the run, which the run's output and the report say; retrieval never ends a
    /// campaign.
    fn retrieve(&mut self, query: &str) -> Vec<crate::cognition::Hit> {
        let (top_k, min_score) = (self.cognition.top_k, self.cognition.min_score);
        match self
            .cognition
            .base
            .search(self.cognition.retriever.as_ref(), query, top_k, min_score)
        {
            Ok(hits) => return hits,
            Err(error) => {
                let reason = format!(
                    "the {} retriever failed ({error}); using the lexical retriever",
                    self.cognition.retriever.name()
                );
                tracing::warn!("{reason}");
                self.retrieval_fallback = Some(reason);
                self.cognition.retriever = Box::new(self.cognition.base.lexical());
            }
        }
        self.cognition
            .base
            .search(self.cognition.retriever.as_ref(), query, top_k, min_score)
            .unwrap_or_default()
    }

    /// The verification results and claims of this campaign so far.
    pub fn verification(&self) -> crate::core::verification::Verification {
        crate::core::verification::summarise(
            self.experiments(),
            &crate::core::verification::Rules::of(&self.spec),
        )
    }

    /// Why retrieval fell back to the lexical retriever, once it has.
    pub fn retrieval_fallback(&self) -> Option<&str> {
        self.retrieval_fallback.as_deref()
    }

    /// Retrieves cognition for the parent's problem and asks the Researcher.
    fn research(&mut self, experiment: &Experiment) -> Result<Event> {
        let Some(parent) = experiment.parent.and_then(|id| self.get(id)).cloned() else {
            return Ok(Event::RevisionAbandoned {
                reason: "the proposal has no parent".into(),
            });
        };
        let query = parent
            .problem_summary
            .clone()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_QUERY.to_string());
        let hits = self.retrieve(&query);
        let entries: Vec<&crate::cognition::Entry> = hits
            .iter()
            .filter_map(|hit| self.cognition.base.get(&hit.id))
            .collect();
        let references: Vec<&Experiment> = experiment
            .references
            .iter()
            .filter_map(|id| self.experiments.iter().find(|e| e.id == *id))
            .collect();
        let check = campaign::check_config(&self.spec, experiment);
        let request = ProposalRequest {
            experiment: experiment.id,
            seed: self.spec.seed ^ experiment.id.wrapping_mul(0xA24B_AED4_963E_E407),
            parent: &parent,
            references,
            cognition: entries,
            history: &self.experiments,
            known_hashes: &self.known_hashes,
            check: &check,
        };
        let retrieved: Vec<String> = hits.iter().map(|h| h.id.clone()).collect();
        Ok(match self.agents.propose(&request) {
            Ok(proposal) => Event::Proposed {
                name: proposal.name,
                motivation: proposal.motivation,
                program: proposal.program,
                retrieved,
                operator: proposal.operator,
            },
            Err(error) => {
                tracing::warn!(experiment = experiment.id, %error, "the Researcher failed");
                Event::RevisionAbandoned {
                    reason: error.to_string(),
                }
            }
        })
    }

    /// Memories written before attempts kept their structure (hash and distance features) get
    /// it here, once, with the check configuration of the experiment's stage, and saved.
    fn fill_in_structures(&mut self) -> Result<()> {
        for index in 0..self.experiments.len() {
            let experiment = &self.experiments[index];
            let missing = |a: &lifecycle::Attempt| a.structure.is_none() && !a.program.is_empty();
            if !experiment.attempts.iter().any(missing) {
                continue;
            }
            let check = archspec::CheckConfig {
                max_complexity: None,
                ..campaign::check_config(&self.spec, experiment)
            };
            let mut updated = experiment.clone();
            let mut changed = false;
            for attempt in updated.attempts.iter_mut().filter(|a| missing(a)) {
                // A program that does not check has no structure; it stays without one.
                if let Ok(valid) = archspec::check_source(&attempt.program, &check) {
                    attempt.structure = Some(valid.structure());
                    changed = true;
                }
            }
            if changed {
                self.save(updated)?;
            }
        }
        Ok(())
    }

    fn start_command(&self, experiment: &Experiment) -> Option<Command> {
        let attempt = experiment.current()?;
        Some(Command::Start {
            experiment: experiment.id,
            name: experiment.name.clone(),
            attempt: attempt.number,
            retry: experiment.infrastructure_retries(),
            program: attempt.program.clone(),
            config: Box::new(campaign::train_config(
                &self.spec,
                experiment.level(),
                experiment.replica,
            )),
        })
    }

    /// Feeds a trainer observation for `attempt` of `experiment`. Observations for another
    /// attempt (a late line from a stopped run) are dropped.
    pub fn observe(
        &mut self,
        experiment: ExperimentId,
        attempt: u32,
        event: Event,
    ) -> Result<Vec<Command>> {
        let Some(current) = self.get(experiment).cloned() else {
            return Ok(Vec::new());
        };
        let is_current = current.phase == Phase::Training
            && current.current().is_some_and(|a| a.number == attempt);
        if !is_current {
            return Ok(Vec::new());
        }
        self.apply_event(current, event)
    }

    /// Steps the lifecycle, saves, and carries out the effects that need no body.
    fn apply_event(&mut self, experiment: Experiment, event: Event) -> Result<Vec<Command>> {
        let with_known = matches!(event, Event::Proposed { .. } | Event::Revised { .. });
        let device_memory = self
            .spec
            .constraints
            .device_memory_bytes()
            .or(self.device_memory);
        let inputs = StepInputs::gather(&self.spec, &self.experiments, &experiment, with_known)
            .with_device_memory(&self.spec, &experiment, device_memory);
        let mut known = inputs.known();
        let motivation = match &event {
            Event::Proposed { motivation, .. } => motivation.as_str(),
            _ => experiment.motivation.as_str(),
        };
        if with_known && !known.is_empty() && !motivation.trim().is_empty() {
            // The embeddings endpoint when one is configured and answers, else the built-in
            // lexical embedding from the index memory keeps (never re-indexed per proposal).
            let external = self.motivations.as_mut().and_then(|motivations| {
                let others: Vec<&str> = known.iter().map(|k| k.motivation).collect();
                motivations.similarities(motivation, &others)
            });
            let similarities = external.unwrap_or_else(|| {
                let keys: Vec<ExperimentId> = known.iter().map(|k| k.id).collect();
                self.motivation_index
                    .scores(motivation, &keys, Some(experiment.id))
            });
            for (k, similarity) in known.iter_mut().zip(similarities) {
                k.motivation_similarity = Some(similarity);
            }
        }
        let context = inputs.context(&self.spec, &known);
        let handled = progress_writes::Handled::of(&event);
        let (next, effects) = lifecycle::step(experiment, event, &context);
        self.record_agents()?;
        tracing::debug!(experiment = next.id, phase = ?next.phase, ?effects, "stepped");
        let since_written = self.written_at.get(&next.id).map(Instant::elapsed);
        match progress_writes::decide(handled, &effects, since_written, self.progress_interval) {
            Write::Now => self.save(next.clone())?,
            Write::Later => self.keep(next.clone()),
        }
        self.apply(next, effects)
    }

    fn apply(&mut self, experiment: Experiment, effects: Vec<Effect>) -> Result<Vec<Command>> {
        let mut commands = Vec::new();
        for effect in effects {
            match effect {
                Effect::StartTrainer { .. } => commands.extend(self.start_command(&experiment)),
                Effect::StopTrainer { attempt, reason } => commands.push(Command::Stop {
                    experiment: experiment.id,
                    attempt,
                    reason,
                }),
                Effect::RequestRevision { error, .. } => {
                    let event = self.revise(&experiment, &error);
                    let current = self
                        .get(experiment.id)
                        .cloned()
                        .unwrap_or(experiment.clone());
                    commands.extend(self.apply_event(current, event)?);
                }
                Effect::RequestAnalysis => {
                    let event = self.analyse(&experiment);
                    let current = self
                        .get(experiment.id)
                        .cloned()
                        .unwrap_or(experiment.clone());
                    commands.extend(self.apply_event(current, event)?);
                }
                Effect::Completed { .. } => {}
            }
        }
        Ok(commands)
    }

    fn revise(&mut self, experiment: &Experiment, error: &str) -> Event {
        let parent = experiment.parent.and_then(|id| self.get(id)).cloned();
        let check = campaign::check_config(&self.spec, experiment);
        let request = RepairRequest {
            seed: self.spec.seed ^ (experiment.id << 8) ^ experiment.attempts.len() as u64,
            experiment,
            parent: parent.as_ref(),
            error,
            known_hashes: &self.known_hashes,
            check: &check,
        };
        match self.agents.repair(&request) {
            Ok(Repair::Revised { program, .. }) => Event::Revised { program },
            Ok(Repair::Abandoned { reason }) => Event::RevisionAbandoned { reason },
            Err(error) => Event::RevisionAbandoned {
                reason: error.to_string(),
            },
        }
    }

    fn analyse(&mut self, experiment: &Experiment) -> Event {
        let finished = |e: &&Experiment| e.level() == experiment.level() && e.summary().is_some();
        let parent = experiment
            .parent
            .and_then(|id| self.experiments.iter().find(|e| e.id == id));
        let siblings: Vec<&Experiment> = self
            .experiments
            .iter()
            .filter(finished)
            .filter(|e| experiment.parent.is_some() && e.parent == experiment.parent)
            .collect();
        let baseline = self.experiments.iter().find(|e| {
            e.level() == experiment.level()
                && e.origin == Origin::Seed
                && e.name == self.spec.baseline
                && e.replica == experiment.replica
        });
        let peers: Vec<&Experiment> = self
            .experiments
            .iter()
            .filter(finished)
            .filter(|e| e.id != experiment.id)
            .collect();
        let request = AnalysisRequest {
            experiment,
            parent,
            siblings,
            baseline,
            peers,
        };
        match self.agents.analyse(&request) {
            Ok(analysis) => {
                let judge = self.agents.judge(&JudgeRequest {
                    experiment,
                    numbers: &analysis.analysis,
                });
                Event::Analysed {
                    analysis: analysis.analysis,
                    problem_summary: analysis.problem_summary,
                    judge,
                }
            }
            Err(error) => Event::Analysed {
                analysis: format!("analysis failed: {error}"),
                problem_summary: String::new(),
                judge: None,
            },
        }
    }
}
