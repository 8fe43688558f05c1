//! The local driver behind `archlab run`: the engine's body on one machine. Trainers are child
//! processes (at most `spec.parallelism` at once), memory is SQLite in the state directory,
//! Ctrl-C stops cleanly, and running the same command again resumes where it stopped.

mod capped_log;
pub mod child;
mod machine;
pub mod progress;

use crate::agents::SearchStrategy;
use crate::agents::llm::client::ApiKey;
use crate::api::{Campaign, parse_campaign};
use crate::core::campaign::Ending;
use crate::core::lifecycle::{Event, ExperimentId};
use crate::core::trainer_output::parse_line;
use crate::core::watchdog;
use crate::engine::{Command, Engine};
use crate::memory::Store;
use crate::memory::lock::StateLock;
use crate::memory::sqlite::SqliteStore;
use crate::setup;
use anyhow::{Context, Result, bail};
use child::{Message, TrainerChild};
use progress::Display;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};

pub struct RunOptions {
    pub manifest: PathBuf,
    pub state: PathBuf,
    /// Overrides the spec's agents (benchmarks compare search strategies on one manifest).
    pub strategy: Option<SearchStrategy>,
    /// The executable run as `archlab train` (this binary by default).
    pub trainer_exe: Option<PathBuf>,
    pub device: String,
    pub quiet: bool,
    /// How often progress-only changes are saved (see `core::progress_writes`).
    pub progress_interval: std::time::Duration,
}

/// How often the watchdog looks at running trainers.
const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

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

/// The API key named by `spec.agents.llm.apiKeyEnv`, read from this process's environment.
fn api_key(campaign: &Campaign) -> Result<Option<ApiKey>> {
    let Some(llm) = &campaign.spec.agents.llm else {
        return Ok(None);
    };
    match &llm.api_key_env {
        None => Ok(None),
        Some(name) => match std::env::var(name) {
            Ok(key) if !key.is_empty() => Ok(Some(ApiKey::new(key))),
            _ => bail!("spec.agents.llm.apiKeyEnv: the environment variable `{name}` is not set"),
        },
    }
}

pub fn run(options: &RunOptions) -> Result<RunEnd> {
    let campaign = load_campaign(&options.manifest)?;
    let name = campaign_name(&campaign)?;
    // One writer per state directory, for the whole run (ids, saves and run files assume it).
    let lock = StateLock::acquire(&options.state)?;
    let store = SqliteStore::open(&options.state)?;
    let tokens_before = store.usage(&name).map(|u| u.llm_tokens).unwrap_or(0);
    let key = api_key(&campaign)?;
    let agents = setup::agents(&campaign, options.strategy, tokens_before, key.clone())?;
    let cognition = setup::cognition(&campaign, key.clone())?;
    let parallelism = campaign.spec.parallelism.max(1) as usize;
    let budget = campaign.spec.budget.max_experiments;
    // The trainers share this machine's memory: each gets its part.
    let device_memory = machine::memory_bytes().map(|bytes| bytes / parallelism as u64);
    let mut engine = Engine::open(&name, campaign.spec.clone(), store, agents, cognition)?
        .with_progress_interval(options.progress_interval)
        .with_device_memory(device_memory);
    if let Some(embedder) = setup::motivation_embedder(&campaign, key)? {
        engine = engine.with_motivation_embedder(embedder);
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
    if let Some(holder) = &lock.taken_over {
        display.line(&format!(
            "{}: took over the lock of {holder}, which ended without releasing it",
            lock.path().display()
        ));
    }
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
        engine.write_due()?;
        // Trainers past their deadline or silent too long: killed and recorded.
        let overdue: Vec<_> = running
            .iter()
            .filter_map(|(key, child)| {
                let (liveness, now) = child.liveness();
                watchdog::overdue(&engine.spec.qa, &liveness, now).map(|why| (*key, why))
            })
            .collect();
        for ((experiment, attempt), why) in overdue {
            let Some(child) = running.remove(&(experiment, attempt)) else {
                continue;
            };
            display.end_run(experiment, attempt);
            display.line(&format!(
                "■ e{experiment} attempt {attempt} stopped: {}",
                why.describe()
            ));
            let log_tail = child.stop();
            let event = why.event(&log_tail);
            body.observe(
                &mut engine,
                (experiment, attempt),
                event,
                &mut running,
                &mut display,
            )?;
        }
        if running.is_empty() {
            continue;
        }
        // Wake at least once a second while trainers run, for the watchdog.
        let wait = engine
            .next_write_in()
            .map_or(WATCH_INTERVAL, |due| due.min(WATCH_INTERVAL));
        let message = match messages.recv_timeout(wait) {
            Ok(message) => message,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => {
                bail!("the trainer readers stopped unexpectedly")
            }
        };
        match message {
            Message::Interrupt => {
                for (_, child) in std::mem::take(&mut running) {
                    child.kill();
                }
                engine.write_all()?;
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
                // Here the only infrastructure is this machine (a trainer's disk filled up):
                // the run stops as Ctrl-C stops it, nothing charged to the program, and the
                // same command resumes once the user has made room.
                if let Event::InfrastructureFailed { reason } = &event {
                    for (_, child) in std::mem::take(&mut running) {
                        child.kill();
                    }
                    engine.write_all()?;
                    display.finish();
                    bail!(
                        "e{experiment} attempt {attempt}: {reason}. Stopped; unfinished runs restart when you run the same command again, once there is room (state in {})",
                        options.state.display()
                    );
                }
                if let Event::Progress(point) = &event {
                    display.progress(experiment, attempt, point.step, point.loss);
                }
                body.observe(
                    &mut engine,
                    (experiment, attempt),
                    event,
                    &mut running,
                    &mut display,
                )?;
            }
            Message::Broken {
                experiment,
                attempt,
                reason,
            } => {
                let Some(child) = running.remove(&(experiment, attempt)) else {
                    continue;
                };
                display.end_run(experiment, attempt);
                let log_tail = child.stop();
                let event = Event::Crashed {
                    message: reason,
                    log_tail,
                };
                body.observe(
                    &mut engine,
                    (experiment, attempt),
                    event,
                    &mut running,
                    &mut display,
                )?;
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
                let (status, killed, log_tail) = child.finish(child::EXIT_GRACE);
                // Still training after the output ended: no result line came.
                let event = Event::Crashed {
                    message: match status {
                        _ if killed => format!(
                            "the trainer closed its output but kept running; stopped after {} s",
                            child::EXIT_GRACE.as_secs()
                        ),
                        Some(status) => format!("the trainer exited ({status}) without a result"),
                        None => "the trainer vanished without a result".into(),
                    },
                    log_tail,
                };
                body.observe(
                    &mut engine,
                    (experiment, attempt),
                    event,
                    &mut running,
                    &mut display,
                )?;
            }
        }
    }
    engine.write_all()?;
    display.finish();
    let ending = ending.unwrap_or(Ending::Completed);
    summary(&display, &engine, &ending, &options.state);
    Ok(RunEnd::Finished(ending))
}

fn refresh<S: crate::memory::Store>(display: &mut Display, engine: &Engine<S>) {
    let wins = engine.verification().discoveries();
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
    /// Tells the engine what happened to an attempt and carries out what it decides.
    fn observe<S: crate::memory::Store>(
        &mut self,
        engine: &mut Engine<S>,
        (experiment, attempt): (ExperimentId, u32),
        event: Event,
        running: &mut BTreeMap<(ExperimentId, u32), TrainerChild>,
        display: &mut Display,
    ) -> Result<()> {
        let commands = engine.observe(experiment, attempt, event)?;
        self.execute(commands, running, display)
    }

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
                    ..
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
    let verified = engine.verification();
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
    for prediction in &verified.ladder.predictions {
        if let Some(rank) = prediction.spearman {
            lines.push(format!(
                "{} → {}: Spearman's ρ {:+.2} over {} programs",
                prediction.from, prediction.to, rank.rho, rank.n
            ));
        }
    }
    for (role, stats) in engine.agent_stats() {
        lines.push(format!(
            "llm {role}: {} requests, {} errors, {} retries, {} downgrades, {} tokens",
            stats.requests,
            stats.errors,
            stats.retries,
            stats.downgrades,
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
