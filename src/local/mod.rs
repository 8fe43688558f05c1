//! The local driver behind `archlab run`: the engine's body on one machine. Trainers are child
//! processes (at most `spec.parallelism` at once), memory is SQLite in the state directory,
//! Ctrl-C stops cleanly, and running the same command again resumes where it stopped.

pub mod child;
pub mod progress;

use crate::agents::llm::LlmAgents;
use crate::agents::llm::client::{ApiKey, Client, RetryPolicy};
use crate::agents::{Agents, Offline, SearchStrategy};
use crate::api::campaign::LlmSpec;
use crate::api::campaign::{AgentBackend, EmbedderKind};
use crate::api::{Campaign, parse_campaign};
use crate::cognition::endpoint::{EndpointEmbedder, EndpointRetriever};
use crate::cognition::{Base, Retriever, minilm};
use crate::core::campaign::Ending;
use crate::core::lifecycle::{Event, ExperimentId};
use crate::core::trainer_output::parse_line;
use crate::core::verification;
use crate::engine::{Cognition, Command, Engine};
use crate::memory::Store;
use crate::memory::sqlite::SqliteStore;
use anyhow::{Context, Result, bail};
use child::{Message, TrainerChild};
use progress::Display;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

pub struct RunOptions {
    pub manifest: PathBuf,
    pub state: PathBuf,
    /// Overrides the spec's agents (benchmarks compare search strategies on one manifest).
    pub strategy: Option<SearchStrategy>,
    /// The executable run as `archlab train` (this binary by default).
    pub trainer_exe: Option<PathBuf>,
    pub device: String,
    pub quiet: bool,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    Finished(Ending),
    Interrupted,
}

/// Reads and validates a manifest file.
pub fn load_campaign(path: &Path) -> Result<Campaign> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{}: the manifest is not UTF-8 text", path.display()))?;
    parse_campaign(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The campaign's name: `metadata.name`, which names its records in memory.
pub fn campaign_name(campaign: &Campaign) -> Result<String> {
    match campaign.metadata.name.as_deref() {
        Some(name) if !name.trim().is_empty() => Ok(name.to_string()),
        _ => bail!("metadata.name: the campaign needs a name (it keys its records in memory)"),
    }
}

/// The endpoint client settings shared by agents and embeddings.
fn api_key(llm: &LlmSpec) -> Result<Option<ApiKey>> {
    match &llm.api_key_env {
        None => Ok(None),
        Some(name) => match std::env::var(name) {
            Ok(key) if !key.is_empty() => Ok(Some(ApiKey::new(key))),
            _ => bail!("spec.agents.llm.apiKeyEnv: the environment variable `{name}` is not set"),
        },
    }
}

fn llm_client(llm: &LlmSpec) -> Result<Client> {
    Client::new(
        &llm.base_url,
        api_key(llm)?,
        Duration::from_secs_f64(llm.timeout_seconds),
        RetryPolicy {
            max_retries: llm.max_retries,
            backoff: Duration::from_secs_f64(llm.backoff_seconds.max(0.0)),
            max_wait: Duration::from_secs(60),
        },
    )
    .map_err(|e| anyhow::anyhow!("spec.agents.llm: {e}"))
}

fn cognition(campaign: &Campaign) -> Result<Cognition> {
    let spec = &campaign.spec.cognition;
    let dirs: Vec<PathBuf> = spec.extra_dirs.iter().map(PathBuf::from).collect();
    let base = Base::load(&dirs)?;
    let retriever: Box<dyn Retriever> = match spec.embedder {
        EmbedderKind::Lexical => Box::new(base.lexical()),
        EmbedderKind::Minilm => {
            let dir = minilm::default_dir();
            Box::new(minilm::MiniLm::load(&dir, &base.entries).map_err(|e| {
                anyhow::anyhow!(
                    "spec.cognition.embedder: minilm: {e}; fetch it with scripts/fetch-minilm.sh"
                )
            })?)
        }
        EmbedderKind::Endpoint => {
            let llm = campaign.spec.agents.llm.as_ref().ok_or_else(|| {
                anyhow::anyhow!("spec.cognition.embedder: `endpoint` needs spec.agents.llm")
            })?;
            let model = llm.embeddings_model.as_deref().unwrap_or_default();
            Box::new(
                EndpointRetriever::new(llm_client(llm)?, model, &base.entries)
                    .map_err(|e| anyhow::anyhow!("spec.cognition.embedder: {e}"))?,
            )
        }
    };
    Ok(Cognition {
        base,
        retriever,
        top_k: spec.top_k,
        min_score: spec.min_score,
    })
}

/// The campaign's constraints in words, for LLM prompts.
fn constraints_text(campaign: &Campaign) -> String {
    let spec = &campaign.spec;
    let train = &spec.stages.exploration.train;
    format!(
        "- cost in the sequence length at most `{:?}` (linear < window < quadratic)\n- d_model {} and sequence length {} at exploration\n{}",
        spec.constraints.max_complexity,
        train.model.d_model,
        train.data.seq_len,
        spec.constraints
            .max_params
            .map_or_else(String::new, |p| format!(
                "- at most {p} parameters per mixer\n"
            ))
    )
}

fn agents(
    campaign: &Campaign,
    strategy: Option<SearchStrategy>,
    tokens_before: u64,
) -> Result<Box<dyn Agents>> {
    if let Some(strategy) = strategy {
        return Ok(Box::new(Offline { strategy }));
    }
    match campaign.spec.agents.backend {
        AgentBackend::Evolutionary => Ok(Box::new(Offline {
            strategy: SearchStrategy::Evolutionary,
        })),
        AgentBackend::Llm => {
            let Some(llm) = &campaign.spec.agents.llm else {
                bail!("spec.agents.llm: `backend: llm` needs an `llm` block");
            };
            let agents = LlmAgents::new(
                llm,
                api_key(llm)?,
                campaign.spec.budget.max_llm_tokens,
                tokens_before,
                constraints_text(campaign),
            )
            .map_err(|e| anyhow::anyhow!("spec.agents.llm: {e}"))?;
            Ok(Box::new(agents))
        }
    }
}

pub fn run(options: &RunOptions) -> Result<RunEnd> {
    let campaign = load_campaign(&options.manifest)?;
    let name = campaign_name(&campaign)?;
    let store = SqliteStore::open(&options.state)?;
    let tokens_before = store.usage(&name).map(|u| u.llm_tokens).unwrap_or(0);
    let agents = agents(&campaign, options.strategy, tokens_before)?;
    let cognition = cognition(&campaign)?;
    let parallelism = campaign.spec.parallelism.max(1) as usize;
    let budget = campaign.spec.budget.max_experiments;
    let mut engine = Engine::open(&name, campaign.spec.clone(), store, agents, cognition)?;
    if let Some(llm) = &campaign.spec.agents.llm
        && let Some(model) = &llm.embeddings_model
        && campaign.spec.agents.backend == AgentBackend::Llm
    {
        engine = engine.with_motivation_embedder(Box::new(EndpointEmbedder {
            client: llm_client(llm)?,
            model: model.clone(),
        }));
    }
    let exe = match &options.trainer_exe {
        Some(exe) => exe.clone(),
        None => std::env::current_exe().context("locating the archlab executable")?,
    };
    let (sender, messages) = mpsc::channel();
    let interrupt = sender.clone();
    // A second handler cannot be installed in one process (tests call `run` once per process).
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    let _ = ctrlc::set_handler(move || {
        flag.store(true, Ordering::SeqCst);
        let _ = interrupt.send(Message::Interrupt);
    });
    let mut display = Display::new(budget, options.quiet);
    display.skip_existing(engine.experiments());
    let resumed = engine.experiments().len();
    display.line(&format!(
        "campaign `{name}`: {} agents, state in {}{}",
        engine.agents_name(),
        options.state.display(),
        if resumed > 0 {
            format!(", resuming with {resumed} experiments in memory")
        } else {
            String::new()
        }
    ));
    let mut running: BTreeMap<(ExperimentId, u32), TrainerChild> = BTreeMap::new();
    let mut body = Body {
        exe: &exe,
        state: &options.state,
        device: &options.device,
        sender: &sender,
    };
    let commands = engine.resume()?;
    body.execute(commands, &mut running, &mut display)?;
    let mut ending: Option<Ending> = None;
    loop {
        if ending.is_none() && running.len() < parallelism {
            let (commands, done) = engine.fill(parallelism - running.len())?;
            body.execute(commands, &mut running, &mut display)?;
            ending = done;
        }
        refresh(&mut display, &engine);
        if running.is_empty() {
            if ending.is_some() {
                break;
            }
            // The planner waits on nothing: only possible if memory is inconsistent.
            bail!("the planner is waiting but no trainer is running");
        }
        let Ok(message) = messages.recv() else {
            bail!("the trainer readers stopped unexpectedly");
        };
        match message {
            Message::Interrupt => {
                for (_, child) in std::mem::take(&mut running) {
                    child.kill();
                }
                display.finish();
                display.line(&format!(
                    "interrupted: unfinished runs will restart when you run the same command again (state in {})",
                    options.state.display()
                ));
                return Ok(RunEnd::Interrupted);
            }
            Message::Line {
                experiment,
                attempt,
                line,
            } => {
                let Some(event) = parse_line(&line) else {
                    continue;
                };
                if let Event::Progress(point) = &event {
                    display.progress(experiment, attempt, point.step, point.loss);
                }
                let commands = engine.observe(experiment, attempt, event)?;
                body.execute(commands, &mut running, &mut display)?;
            }
            // After Ctrl-C, an ended child is an interrupted run, not a crash: it restarts on
            // resume.
            Message::Closed { .. } if interrupted.load(Ordering::SeqCst) => {}
            Message::Closed {
                experiment,
                attempt,
            } => {
                let Some(child) = running.remove(&(experiment, attempt)) else {
                    continue;
                };
                display.end_run(experiment, attempt);
                let (status, log_tail) = child.finish();
                // Still training after the output ended: no result line came.
                let event = Event::Crashed {
                    message: match status {
                        Some(status) => format!("the trainer exited ({status}) without a result"),
                        None => "the trainer vanished without a result".into(),
                    },
                    log_tail,
                };
                let commands = engine.observe(experiment, attempt, event)?;
                body.execute(commands, &mut running, &mut display)?;
            }
        }
    }
    display.finish();
    let ending = ending.unwrap_or(Ending::Completed);
    summary(&display, &engine, &ending, &options.state);
    Ok(RunEnd::Finished(ending))
}

fn refresh<S: crate::memory::Store>(display: &mut Display, engine: &Engine<S>) {
    let wins = verification::summarise(engine.experiments(), engine.required_runs()).discoveries();
    display.update(engine.experiments(), wins);
    if let Some(reason) = engine.agents_fallback() {
        display.notice_once(&format!(
            "the LLM agents fell back to the evolutionary agents: {reason}"
        ));
    }
    if let Some(reason) = engine.retrieval_fallback() {
        display.notice_once(&format!("cognition retrieval: {reason}"));
    }
}

/// Starts and stops trainer children for the engine's commands.
struct Body<'a> {
    exe: &'a Path,
    state: &'a Path,
    device: &'a str,
    sender: &'a mpsc::Sender<Message>,
}

impl Body<'_> {
    fn execute(
        &mut self,
        commands: Vec<Command>,
        running: &mut BTreeMap<(ExperimentId, u32), TrainerChild>,
        display: &mut Display,
    ) -> Result<()> {
        for command in commands {
            match command {
                Command::Start {
                    experiment,
                    name,
                    attempt,
                    program,
                    config,
                } => {
                    let child = TrainerChild::spawn(
                        self.exe,
                        self.state,
                        experiment,
                        attempt,
                        &program,
                        &config,
                        self.device,
                        self.sender.clone(),
                    )
                    .with_context(|| format!("starting the trainer {}", self.exe.display()))?;
                    let steps = config.steps * config.optim.lr_sweep.len().max(1);
                    display.start_run(experiment, attempt, &name, steps);
                    running.insert((experiment, attempt), child);
                }
                Command::Stop {
                    experiment,
                    attempt,
                    reason,
                } => {
                    if let Some(child) = running.remove(&(experiment, attempt)) {
                        child.kill();
                        display.end_run(experiment, attempt);
                        display.line(&format!(
                            "■ e{experiment} attempt {attempt} stopped: {reason}"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

fn summary<S: crate::memory::Store>(
    display: &Display,
    engine: &Engine<S>,
    ending: &Ending,
    state: &Path,
) {
    let experiments = engine.experiments();
    let usage = engine.usage();
    let verified = verification::summarise(experiments, engine.required_runs());
    let mut lines = vec![
        String::new(),
        format!(
            "campaign `{}` ended: {}",
            engine.campaign,
            ending.describe()
        ),
        format!(
            "{} experiments, {:.1} trainer-minutes; {} failed",
            usage.experiments,
            usage.compute_seconds / 60.0,
            experiments
                .iter()
                .filter(|e| e.phase == crate::core::lifecycle::Phase::Failed)
                .count()
        ),
    ];
    if let Some(baseline) = verified.baseline {
        lines.push(format!(
            "verification baseline `{}`: val loss {:.3} ± {:.3}",
            engine.spec.baseline, baseline.mean, baseline.half_width
        ));
    }
    for program in &verified.programs {
        lines.push(format!(
            "verified {}: val loss {:.3} ± {:.3} over {} seeds{}",
            program.name,
            program.val_loss.mean,
            program.val_loss.half_width,
            program.runs,
            if program.state_of_the_art {
                "  — new state of the art"
            } else {
                ""
            }
        ));
    }
    for (role, stats) in engine.agent_stats() {
        lines.push(format!(
            "llm {role}: {} requests, {} errors, {} retries, {} tokens",
            stats.requests,
            stats.errors,
            stats.retries,
            stats.tokens()
        ));
    }
    lines.push(format!(
        "report: archlab report --state {}",
        state.display()
    ));
    for line in lines {
        display.line(&line);
    }
}
