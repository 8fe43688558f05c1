//! One engine per Campaign, on its own thread: the engine blocks on LLM calls and on the API
//! writes of its memory, and the controllers must never wait for either. Observations arrive
//! on a channel from the pod monitors; Start and Stop commands leave on another to the body.
//! An error ends the thread; the controller restarts it, and the new engine rebuilds everything
//! from the cluster's records and adopts the running pods (crash-only: nothing to repair).

use super::status::{CampaignView, campaign_status};
use super::store::KubeStore;
use crate::agents::llm::client::ApiKey;
use crate::api::campaign::CampaignStatus;
use crate::api::experiment::{Experiment, resource_name};
use crate::api::{Campaign, CampaignSpec};
use crate::core::campaign::Ending;
use crate::core::lifecycle::{Event, ExperimentId, Phase};
use crate::core::spec_change::{self, SpecChange};
use crate::engine::{Command, Engine, Resume};
use crate::memory::{Quarantined, Store};
use crate::setup;
use anyhow::Result;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{EventType, Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// What the engine thread is told.
#[derive(Debug)]
pub enum ToEngine {
    /// A trainer observation (progress, or how its pod ended).
    Observed {
        experiment: ExperimentId,
        attempt: u32,
        event: Event,
    },
    /// The Campaign's spec as it now is (an edit).
    Spec {
        spec: Box<CampaignSpec>,
        generation: Option<i64>,
    },
    Stop,
}

pub struct ActorSetup {
    /// The Campaign with the spec the engine runs (its accepted spec; see
    /// [`super::controller::running_campaign`]).
    pub campaign: Campaign,
    /// The generation that spec was accepted at.
    pub accepted_generation: Option<i64>,
    /// The Campaign's current spec and generation when they differ from the accepted one: an
    /// edit made while no engine ran, judged before anything else.
    pub pending_edit: Option<(Box<CampaignSpec>, Option<i64>)>,
    pub namespace: String,
    pub api_key: Option<ApiKey>,
    pub client: Client,
    pub runtime: tokio::runtime::Handle,
    pub commands: UnboundedSender<Command>,
    pub metrics: std::sync::Arc<super::metrics::Metrics>,
    pub fence: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Status is rewritten at least this often while anything changes (usage grows with progress).
const STATUS_INTERVAL: Duration = Duration::from_secs(15);

/// Runs the campaign's engine until told to stop; an error is the reason it stopped. A write
/// that failed because the Campaign was deleted meanwhile (its Experiments go with it) is the
/// end of the campaign, not an error.
pub fn run(setup: ActorSetup, inbox: Receiver<ToEngine>) -> Result<()> {
    let name = setup.campaign.name_any();
    let uid = setup.campaign.metadata.uid.clone();
    let campaigns: Api<Campaign> = Api::namespaced(setup.client.clone(), &setup.namespace);
    let runtime = setup.runtime.clone();
    let (metrics, namespace) = (setup.metrics.clone(), setup.namespace.clone());
    let result = run_engine(setup, inbox);
    if let Err(error) = &result {
        if campaign_gone(&runtime, &campaigns, &name, uid.as_deref()).unwrap_or(false) {
            stopped_by_deletion(&metrics, &namespace, &name);
            return Ok(());
        }
        tracing::warn!(campaign = %name, error = %format!("{error:#}"), "the campaign's engine stopped");
    }
    result
}

/// Whether the Campaign an engine runs no longer exists (deleted, or replaced by another of
/// the same name: a new uid).
fn campaign_gone(
    runtime: &tokio::runtime::Handle,
    campaigns: &Api<Campaign>,
    name: &str,
    uid: Option<&str>,
) -> Result<bool> {
    let current = runtime.block_on(campaigns.get_opt(name))?;
    Ok(current.is_none_or(|c| c.metadata.uid.as_deref() != uid))
}

fn stopped_by_deletion(metrics: &super::metrics::Metrics, namespace: &str, name: &str) {
    tracing::info!(campaign = %name, "the Campaign is gone; its engine stops");
    metrics.forget_campaign(namespace, name);
}

/// Experiments the engine could not read back (written by a newer version, or damaged): it
/// leaves them out and keeps their ids taken; a metric and an Event on each say so, for
/// `kubectl describe` and alerts.
fn report_unreadable(setup: &ActorSetup, campaign: &str, unreadable: &[Quarantined]) {
    if unreadable.is_empty() {
        return;
    }
    let recorder = Recorder::new(
        setup.client.clone(),
        Reporter {
            controller: "archlab".into(),
            instance: None,
        },
    );
    for entry in unreadable {
        setup.metrics.undecodable(&setup.namespace, "Experiment");
        let reference = ObjectReference {
            api_version: Some(Experiment::api_version(&()).into_owned()),
            kind: Some(Experiment::kind(&()).into_owned()),
            name: Some(resource_name(campaign, entry.id)),
            namespace: Some(setup.namespace.clone()),
            ..ObjectReference::default()
        };
        setup.runtime.block_on(super::body::publish(
            &recorder,
            &reference,
            EventType::Warning,
            "Unreadable",
            format!(
                "left out of the campaign, its record kept as it is: {}",
                entry.reason
            ),
        ));
    }
}

fn run_engine(setup: ActorSetup, inbox: Receiver<ToEngine>) -> Result<()> {
    let name = setup.campaign.name_any();
    let store = KubeStore::new(
        setup.runtime.clone(),
        setup.client.clone(),
        &setup.namespace,
    )
    .with_fence(setup.fence.clone())
    .with_spec(setup.campaign.spec.clone());
    let tokens_before = store.usage(&name)?.llm_tokens;
    let agents = setup::agents(&setup.campaign, None, tokens_before, setup.api_key.clone())?;
    let cognition = setup::cognition(&setup.campaign, setup.api_key.clone())?;
    let mut engine = Engine::open(&name, setup.campaign.spec.clone(), store, agents, cognition)?;
    report_unreadable(&setup, &name, engine.quarantined());
    if let Some(embedder) = setup::motivation_embedder(&setup.campaign, setup.api_key.clone())? {
        engine = engine.with_motivation_embedder(embedder);
    }
    let mut status = StatusWriter {
        campaigns: Api::namespaced(setup.client.clone(), &setup.namespace),
        runtime: setup.runtime.clone(),
        name: name.clone(),
        last: setup.campaign.status.clone(),
        written: None,
    };
    let mut edits = Edits {
        judged: setup.accepted_generation,
        accepted: setup.accepted_generation,
        refused: None,
    };
    let mut ending: Option<Ending> = None;
    if let Some((spec, generation)) = &setup.pending_edit {
        edits.judge(&mut engine.spec, &mut ending, spec, *generation, &name);
    }
    let send = |commands: Vec<Command>| {
        for command in commands {
            // The body is gone only when the operator shuts down.
            let _ = setup.commands.send(command);
        }
    };
    send(engine.resume_with(Resume::Adopt)?);
    loop {
        engine.write_due()?;
        let training = engine
            .experiments()
            .iter()
            .filter(|e| e.phase == Phase::Training)
            .count();
        let parallelism = engine.spec.parallelism.max(1) as usize;
        if ending.is_none() && training < parallelism {
            let (commands, done) = engine.fill(parallelism - training)?;
            send(commands);
            ending = done;
        }
        // Claims are recomputed from memory once a turn, for the status and the metrics alike.
        let discoveries = engine.verification().discoveries();
        status.write(&engine, discoveries, ending.as_ref(), &edits)?;
        // Only while leading: the gauges of a replica that lost the lease were removed.
        if setup.fence.load(std::sync::atomic::Ordering::SeqCst) {
            setup.metrics.observe_campaign(
                &setup.namespace,
                &name,
                engine.experiments(),
                discoveries,
                &engine.agent_stats(),
            );
            setup.metrics.observe_budget(
                &setup.namespace,
                &name,
                &engine.spec.budget,
                &engine.usage(),
                ending.is_none(),
            );
        }
        let wait = engine
            .next_write_in()
            .map_or(STATUS_INTERVAL, |due| due.min(STATUS_INTERVAL));
        let message = match inbox.recv_timeout(wait) {
            Ok(message) => message,
            // A Campaign deleted without the operator noticing (no finalizer) ends its engine;
            // so does one created again under the same name (a new uid: a new engine).
            Err(RecvTimeoutError::Timeout)
                if wait == STATUS_INTERVAL
                    && campaign_gone(
                        &status.runtime,
                        &status.campaigns,
                        &name,
                        setup.campaign.metadata.uid.as_deref(),
                    )? =>
            {
                stopped_by_deletion(&setup.metrics, &setup.namespace, &name);
                return Ok(());
            }
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return Ok(engine.write_all()?),
        };
        match message {
            ToEngine::Observed {
                experiment,
                attempt,
                event,
            } => send(engine.observe(experiment, attempt, event)?),
            ToEngine::Spec { spec, generation } => {
                edits.judge(&mut engine.spec, &mut ending, &spec, generation, &name)
            }
            ToEngine::Stop => return Ok(engine.write_all()?),
        }
    }
}

/// What the engine made of the edits of its Campaign's spec.
struct Edits {
    /// The last generation judged, accepted or refused (`observedGeneration`).
    judged: Option<i64>,
    /// The last generation whose spec the engine took.
    accepted: Option<i64>,
    /// Why the current spec was refused, while it is.
    refused: Option<String>,
}

impl Edits {
    /// Judges `edited` (generation `generation`) against the spec the engine runs, and takes
    /// what the core's rule accepts: a raised budget, which also reopens an ended campaign.
    fn judge(
        &mut self,
        running: &mut CampaignSpec,
        ending: &mut Option<Ending>,
        edited: &CampaignSpec,
        generation: Option<i64>,
        campaign: &str,
    ) {
        self.judged = generation;
        match spec_change::judge(running, edited) {
            SpecChange::Unchanged => {
                self.accepted = generation;
                self.refused = None;
            }
            SpecChange::BudgetRaised => {
                tracing::info!(%campaign, "budget raised; the campaign continues");
                running.budget = edited.budget.clone();
                self.accepted = generation;
                self.refused = None;
                *ending = None;
            }
            SpecChange::Refused { reason } => {
                tracing::info!(%campaign, %reason, "an edit of the spec was refused");
                self.refused = Some(reason);
            }
        }
    }
}

/// Writes the Campaign's status when it changed (and at least every `STATUS_INTERVAL` while
/// usage grows), leaving the fields memory owns (`llmTokens`, `agents`) to the store.
struct StatusWriter {
    campaigns: Api<Campaign>,
    runtime: tokio::runtime::Handle,
    name: String,
    last: Option<CampaignStatus>,
    written: Option<Instant>,
}

impl StatusWriter {
    fn write<S: Store>(
        &mut self,
        engine: &Engine<S>,
        discoveries: u32,
        ending: Option<&Ending>,
        edits: &Edits,
    ) -> Result<()> {
        let fallbacks = [engine.agents_fallback(), engine.retrieval_fallback()]
            .into_iter()
            .flatten()
            .map(str::to_string)
            .collect();
        let view = CampaignView {
            experiments: engine.experiments(),
            budget: &engine.spec.budget,
            discoveries,
            llm_tokens: engine.usage().llm_tokens,
            ending,
            error: None,
            refused_edit: edits.refused.as_deref(),
            fallbacks,
            generation: edits.judged,
            accepted: Some((&engine.spec, edits.accepted)),
        };
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let status = campaign_status(self.last.as_ref(), &view, &now);
        let due = self
            .written
            .is_none_or(|at| at.elapsed() >= STATUS_INTERVAL);
        let changed = self.last.as_ref().is_none_or(|last| {
            let mut last = last.clone();
            last.usage = status.usage;
            last.llm_tokens = status.llm_tokens;
            last.agents = status.agents.clone();
            last != status
        });
        let usage_grew = due && self.last.as_ref().is_some_and(|l| l.usage != status.usage);
        if !(changed || usage_grew) {
            return Ok(());
        }
        let mut value = serde_json::to_value(&status)?;
        if let Some(object) = value.as_object_mut() {
            object.remove("llmTokens");
            object.remove("agents");
        }
        self.runtime.block_on(self.campaigns.patch_status(
            &self.name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "status": value })),
        ))?;
        self.last = Some(status);
        self.written = Some(Instant::now());
        Ok(())
    }
}
