//! The engine with real SQLite memory and scripted agents, trainers simulated by feeding the
//! events a trainer would print: a failed check is repaired and both attempts are remembered;
//! an agent failure ends in a recorded failure; a QA stop asks the driver to kill the run.

#![allow(clippy::unwrap_used)] // Test set-up: failures should fail loudly.

use archlab::agents::{
    AgentError, Agents, Analysis, AnalysisRequest, Proposal, ProposalRequest, Repair, RepairRequest,
};
use archlab::api::parse_campaign;
use archlab::cognition::Base;
use archlab::core::lifecycle::{Event, Outcome, Phase, TrainSummary};
use archlab::core::qa::ProgressPoint;
use archlab::engine::{Cognition, Command, Engine};
use archlab::memory::Store;
use archlab::memory::sqlite::SqliteStore;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

const PEEKING: &str =
    "mixer peek(d_model) {\n  return x |> token_shift(-1) |> linear(d_model)\n}\n";
const GOOD: &str = "mixer good(d_model) {\n  return x |> linear(d_model) |> short_conv(4) |> silu |> linear(d_model)\n}\n";

/// Agents that answer from a script.
struct Scripted {
    proposals: VecDeque<Result<String, String>>,
    repairs: VecDeque<String>,
}

impl Agents for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn propose(&mut self, request: &ProposalRequest<'_>) -> Result<Proposal, AgentError> {
        match self.proposals.pop_front() {
            Some(Ok(program)) => Ok(Proposal {
                name: format!("scripted-{}", request.experiment),
                motivation: format!("scripted proposal {}", request.experiment),
                program,
                operator: Some("llm".into()),
            }),
            Some(Err(message)) => Err(AgentError::Failed {
                role: "researcher",
                message,
            }),
            None => Err(AgentError::Failed {
                role: "researcher",
                message: "script exhausted".into(),
            }),
        }
    }
    fn repair(&mut self, _: &RepairRequest<'_>) -> Result<Repair, AgentError> {
        Ok(match self.repairs.pop_front() {
            Some(program) => Repair::Revised {
                program,
                note: "scripted".into(),
            },
            None => Repair::Abandoned {
                reason: "nothing left".into(),
            },
        })
    }
    fn analyse(&mut self, _: &AnalysisRequest<'_>) -> Result<Analysis, AgentError> {
        Ok(Analysis {
            analysis: "scripted analysis".into(),
            problem_summary: "associative recall is poor".into(),
        })
    }
}

fn state_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("archlab-engine-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn engine(name: &str, agents: Scripted) -> (Engine<SqliteStore>, PathBuf) {
    engine_with(name, agents, |_| {})
}

fn engine_with(
    name: &str,
    agents: Scripted,
    adjust: impl FnOnce(&mut archlab::api::CampaignSpec),
) -> (Engine<SqliteStore>, PathBuf) {
    let mut spec = parse_campaign(include_str!("fixtures/tiny_campaign.yaml"))
        .unwrap()
        .spec;
    adjust(&mut spec);
    let dir = state_dir(name);
    let store = SqliteStore::open(&dir).unwrap();
    (
        Engine::open("tiny", spec, store, Box::new(agents), cognition()).unwrap(),
        dir,
    )
}

/// Lexical retrieval over an empty base.
fn cognition() -> Cognition {
    let base = Base::load(&[]).unwrap();
    Cognition {
        retriever: Box::new(base.lexical()),
        base,
        top_k: 3,
        min_score: 0.0,
    }
}

#[test]
fn a_raised_budget_continues_a_stored_campaign_and_other_edits_are_refused_by_name() {
    let spec = parse_campaign(include_str!("fixtures/tiny_campaign.yaml"))
        .unwrap()
        .spec;
    let dir = state_dir("spec-edit");
    let open = |spec: &archlab::api::CampaignSpec| {
        let agents = Scripted {
            proposals: VecDeque::new(),
            repairs: VecDeque::new(),
        };
        let store = SqliteStore::open(&dir).unwrap();
        Engine::open("tiny", spec.clone(), store, Box::new(agents), cognition()).map(|_| ())
    };
    let stored = || -> archlab::api::CampaignSpec {
        let json = SqliteStore::open(&dir)
            .unwrap()
            .campaign_spec("tiny")
            .unwrap()
            .unwrap();
        serde_json::from_str(&json).unwrap()
    };
    open(&spec).unwrap();
    let mut raised = spec.clone();
    raised.budget.max_experiments += 8;
    open(&raised).unwrap();
    assert_eq!(
        stored(),
        raised,
        "the raised budget is the campaign's from now on"
    );

    // Lowering it back, or any other edit, is refused with the field named, and memory keeps
    // the accepted spec.
    let error = open(&spec).unwrap_err().to_string();
    assert!(
        error.contains("spec.budget.maxExperiments cannot go down (26 → 18)"),
        "{error}"
    );
    let mut other_baseline = raised.clone();
    other_baseline.baseline = "retnet".into();
    let error = open(&other_baseline).unwrap_err().to_string();
    assert!(
        error.contains("changed: spec.baseline") && error.contains("use a new state directory"),
        "{error}"
    );
    assert_eq!(stored(), raised);
}

fn finish(engine: &mut Engine<SqliteStore>, command: &Command, loss: f64) -> Vec<Command> {
    let Command::Start {
        experiment,
        attempt,
        ..
    } = command
    else {
        panic!("expected a start, got {command:?}");
    };
    engine
        .observe(
            *experiment,
            *attempt,
            Event::Finished(TrainSummary {
                val_loss: loss,
                accuracy: BTreeMap::from([("mqar".into(), 0.5)]),
                wall_s: 1.0,
                params: 100,
                benchmarks: BTreeMap::new(),
            }),
        )
        .unwrap()
}

/// Runs both seeds to completion; returns the engine ready for proposals.
fn past_the_seeds(engine: &mut Engine<SqliteStore>) {
    let (commands, _) = engine.fill(1).unwrap();
    assert_eq!(commands.len(), 1, "the baseline alone starts first");
    assert!(finish(engine, &commands[0], 2.0).is_empty());
    let (commands, _) = engine.fill(1).unwrap();
    assert!(finish(engine, &commands[0], 2.2).is_empty());
}

#[test]
fn a_failed_check_is_repaired_and_every_attempt_is_remembered() {
    let (mut engine, dir) = engine(
        "repair",
        Scripted {
            proposals: VecDeque::from([Ok(PEEKING.to_string())]),
            repairs: VecDeque::from([GOOD.to_string()]),
        },
    );
    past_the_seeds(&mut engine);
    let (commands, _) = engine.fill(1).unwrap();
    match &commands[..] {
        [
            Command::Start {
                attempt: 2,
                program,
                ..
            },
        ] => assert_eq!(program, GOOD),
        other => panic!("expected the repaired program to start: {other:?}"),
    }
    assert!(finish(&mut engine, &commands[0], 1.5).is_empty());
    drop(engine);
    // What a fresh process reads back from the file.
    let store = SqliteStore::open(&dir).unwrap();
    let experiments = store.experiments("tiny").unwrap();
    let proposal = experiments.iter().find(|e| e.id == 3).unwrap();
    assert_eq!(proposal.phase, Phase::Succeeded);
    assert_eq!(proposal.attempts.len(), 2);
    match &proposal.attempts[0].outcome {
        Some(Outcome::Invalid { diagnostics }) => {
            assert!(diagnostics.contains("E0401"), "{diagnostics}")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !proposal.retrieved.is_empty(),
        "retrieval ran for the proposal"
    );
    assert_eq!(proposal.operator.as_deref(), Some("llm"));
    assert!(
        proposal.fitness.unwrap() > archlab::core::fitness::BASELINE,
        "beat the baseline's 2.0"
    );
}

#[test]
fn an_agent_failure_is_a_recorded_failure_and_the_campaign_goes_on() {
    let (mut engine, _dir) = engine(
        "agent-failure",
        Scripted {
            proposals: VecDeque::from([
                Err("the endpoint returned garbage".to_string()),
                Ok(GOOD.to_string()),
            ]),
            repairs: VecDeque::new(),
        },
    );
    past_the_seeds(&mut engine);
    let (commands, _) = engine.fill(1).unwrap();
    assert_eq!(
        commands.len(),
        1,
        "the next proposal started after the failed one"
    );
    let failed = engine.experiments().iter().find(|e| e.id == 3).unwrap();
    assert_eq!(failed.phase, Phase::Failed);
    assert!(matches!(
        &failed.attempts[0].outcome,
        Some(Outcome::AgentFailed { message }) if message.contains("garbage")
    ));
}

#[test]
fn qa_stops_a_nan_run_and_late_lines_of_the_stopped_attempt_are_ignored() {
    let (mut engine, _dir) = engine(
        "qa",
        Scripted {
            proposals: VecDeque::from([Ok(GOOD.to_string())]),
            repairs: VecDeque::new(),
        },
    );
    past_the_seeds(&mut engine);
    let (started, _) = engine.fill(1).unwrap();
    assert_eq!(started.len(), 1);
    let nan = Event::Progress(ProgressPoint {
        step: 5,
        loss: f64::NAN,
        elapsed_s: 0.1,
        trial: 0,
    });
    let commands = engine.observe(3, 1, nan).unwrap();
    assert!(
        matches!(
            &commands[0],
            Command::Stop {
                experiment: 3,
                attempt: 1,
                ..
            }
        ),
        "{commands:?}"
    );
    // The scripted Engineer has nothing: the experiment fails with both reasons kept.
    let experiment = engine
        .experiments()
        .iter()
        .find(|e| e.id == 3)
        .unwrap()
        .clone();
    assert_eq!(experiment.phase, Phase::Failed);
    assert!(experiment.analysis.unwrap().contains("nothing left"));
    // A result line that arrives after the stop changes nothing.
    let config = Box::new(engine.spec.stages.exploration.train.clone());
    let late = finish(
        &mut engine,
        &Command::Start {
            experiment: 3,
            name: String::new(),
            attempt: 1,
            retry: 0,
            program: String::new(),
            config,
        },
        0.1,
    );
    assert!(late.is_empty());
    assert_eq!(
        engine
            .experiments()
            .iter()
            .find(|e| e.id == 3)
            .unwrap()
            .phase,
        Phase::Failed
    );
}

fn progress(engine: &mut Engine<SqliteStore>, id: u64, step: usize, loss: f64) -> Vec<Command> {
    let point = ProgressPoint {
        step,
        loss,
        elapsed_s: step as f64 * 0.01,
        trial: 0,
    };
    engine.observe(id, 1, Event::Progress(point)).unwrap()
}

/// Seeds at validation loss 2.0 and 2.2 and one proposal at `third`: three finished peers, so
/// the leakage rule may judge the next proposal. QA's grace is shortened so that its window
/// (the first quarter of the fixture's 40 steps) is reachable.
fn leakage_setting(name: &str, third: f64) -> Engine<SqliteStore> {
    let (mut engine, _dir) = engine_with(
        name,
        Scripted {
            proposals: VecDeque::from([Ok(GOOD.to_string()), Ok(GOOD.replace("silu", "gelu"))]),
            repairs: VecDeque::new(),
        },
        |spec| spec.qa.grace_steps = 5,
    );
    past_the_seeds(&mut engine);
    let (commands, _) = engine.fill(1).unwrap();
    assert!(finish(&mut engine, &commands[0], third).is_empty());
    let (commands, _) = engine.fill(1).unwrap();
    assert!(
        matches!(commands[..], [Command::Start { experiment: 4, .. }]),
        "{commands:?}"
    );
    engine
}

#[test]
fn a_collapse_far_below_every_peer_early_in_training_is_stopped_as_leakage() {
    let mut engine = leakage_setting("leak", 1.8);
    assert!(progress(&mut engine, 4, 5, 2.5).is_empty());
    // 0.3 < 0.25 × 1.8 at step 10 of 40: within the window.
    let commands = progress(&mut engine, 4, 10, 0.3);
    assert!(
        matches!(&commands[..], [Command::Stop { experiment: 4, reason, .. }] if reason.contains("implausibly")),
        "{commands:?}"
    );
    let experiment = engine.experiments().iter().find(|e| e.id == 4).unwrap();
    assert!(matches!(
        &experiment.attempts[0].outcome,
        Some(Outcome::Stopped {
            verdict: archlab::core::qa::QaVerdict::SuspectedLeakage { .. }
        })
    ));
}

#[test]
fn a_solved_task_is_not_mistaken_for_leakage() {
    // The best known loss 0.05 is below QA's floor: the task is solved, near-zero is honest.
    let mut engine = leakage_setting("solved", 0.05);
    assert!(progress(&mut engine, 4, 5, 2.5).is_empty());
    assert!(progress(&mut engine, 4, 10, 0.001).is_empty());
    // And the same collapse after the window is honest learning, whatever the peers did.
    let mut engine = leakage_setting("late", 1.8);
    assert!(progress(&mut engine, 4, 5, 2.5).is_empty());
    assert!(progress(&mut engine, 4, 11, 0.3).is_empty());
}

#[test]
fn a_memory_from_before_stored_structures_gets_them_once_and_novelty_uses_them() {
    let (mut engine, dir) = engine(
        "structures",
        Scripted {
            proposals: VecDeque::from([Ok(GOOD.to_string())]),
            repairs: VecDeque::new(),
        },
    );
    past_the_seeds(&mut engine);
    let (commands, _) = engine.fill(1).unwrap();
    assert!(finish(&mut engine, &commands[0], 1.5).is_empty());
    drop(engine);
    // What an older archlab left: attempts without their structure.
    let connection = rusqlite::Connection::open(dir.join("archlab.db")).unwrap();
    let cleared = connection
        .execute("UPDATE attempts SET structure_json = NULL", [])
        .unwrap();
    assert_eq!(cleared, 3, "two seeds and one proposal");
    drop(connection);

    // Opening fills them in and saves them; the same program proposed again is caught.
    let spec = parse_campaign(include_str!("fixtures/tiny_campaign.yaml"))
        .unwrap()
        .spec;
    let base = Base::load(&[]).unwrap();
    let cognition = Cognition {
        retriever: Box::new(base.lexical()),
        base,
        top_k: 3,
        min_score: 0.0,
    };
    let agents = Scripted {
        proposals: VecDeque::from([Ok(GOOD.to_string())]),
        repairs: VecDeque::new(),
    };
    let mut engine = Engine::open(
        "tiny",
        spec,
        SqliteStore::open(&dir).unwrap(),
        Box::new(agents),
        cognition,
    )
    .unwrap();
    let stored = SqliteStore::open(&dir)
        .unwrap()
        .experiments("tiny")
        .unwrap();
    let good_hash = stored[2].attempts[0]
        .structure
        .as_ref()
        .unwrap()
        .hash
        .clone();
    for experiment in &stored {
        assert!(
            experiment.attempts.iter().all(|a| a.structure.is_some()),
            "experiment {} was not filled in",
            experiment.id
        );
    }
    assert_ne!(
        stored[0].attempts[0].structure.as_ref().unwrap().hash,
        good_hash
    );
    // (The planner goes on past the failed repeat, to what comes next.)
    engine.fill(1).unwrap();
    let repeat = engine.experiments().iter().find(|e| e.id == 4).unwrap();
    assert_eq!(repeat.phase, Phase::Failed);
    match &repeat.attempts[0].outcome {
        Some(Outcome::NotNovel { reason, .. }) => {
            assert!(reason.contains("experiment 3"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        repeat.attempts[0].structure.as_ref().map(|s| &s.hash),
        Some(&good_hash)
    );
}
