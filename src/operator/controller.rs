//! The Campaign controller: keeps one engine thread (and its body) per Campaign, forwards
//! spec edits to it, restarts it when it stopped on an error, and stops it when the Campaign
//! is deleted (owner references then delete its Experiments and pods). It decides nothing
//! about experiments.

use super::actor::{self, ActorSetup, ToEngine};
use super::body::{Body, BodyConfig};
use crate::agents::llm::client::ApiKey;
use crate::api::Campaign;
use crate::api::campaign::{CampaignPhase, Condition};
use crate::api::manifest;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, DynamicObject};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::BTreeMap;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    #[error("serialising a status: {0}")]
    Json(#[from] serde_json::Error),
}

/// How often a running Campaign is looked at even without a change (to notice a stopped engine).
const RESYNC: Duration = Duration::from_secs(30);

pub struct Context {
    pub client: Client,
    pub runtime: tokio::runtime::Handle,
    pub reporter: Reporter,
    /// How often a trainer pod's clocks are checked between the changes its watch brings.
    pub poll: Duration,
    pub metrics: Arc<super::metrics::Metrics>,
    /// Set while this replica holds the leader lease.
    pub fence: Arc<std::sync::atomic::AtomicBool>,
    /// What trainer pods get when a Campaign leaves it out.
    pub trainer_defaults: crate::api::trainer::TrainerDefaults,
    /// What a Campaign may ask of the cluster.
    pub policy: Option<crate::api::policy::Policy>,
    /// How long an ended trainer pod is kept.
    pub finished_pod_ttl: Option<Duration>,
    engines: Mutex<BTreeMap<(String, String), EngineThread>>,
}

struct EngineThread {
    /// The Campaign's uid: a Campaign deleted and created again under the same name is a new
    /// campaign and gets a new engine.
    uid: Option<String>,
    inbox: Sender<ToEngine>,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
    generation: Option<i64>,
}

impl Context {
    pub fn new(
        client: Client,
        runtime: tokio::runtime::Handle,
        reporter: Reporter,
        poll: Duration,
        metrics: Arc<super::metrics::Metrics>,
        fence: Arc<std::sync::atomic::AtomicBool>,
    ) -> Context {
        Context {
            client,
            runtime,
            reporter,
            poll,
            metrics,
            fence,
            trainer_defaults: Default::default(),
            policy: None,
            finished_pod_ttl: None,
            engines: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn with_trainer_defaults(mut self, defaults: crate::api::trainer::TrainerDefaults) -> Self {
        self.trainer_defaults = defaults;
        self
    }

    pub fn with_policy(mut self, policy: Option<crate::api::policy::Policy>) -> Self {
        self.policy = policy;
        self
    }

    pub fn with_finished_pod_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.finished_pod_ttl = ttl;
        self
    }

    /// Stops every engine (losing leadership, shutting down). Pods keep running for the next
    /// leader to adopt.
    pub fn stop_all(&self) {
        let engines = self
            .engines
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default();
        // Its gauges go with it: a replica that lost the lease must not report campaigns the
        // new leader runs, or alerts that sum over replicas count them twice.
        for ((namespace, name), engine) in engines {
            let _ = engine.inbox.send(ToEngine::Stop);
            self.metrics.forget_campaign(&namespace, &name);
        }
    }

    /// Stops the engine of a Campaign the watch saw deleted, at once: left running until its
    /// next failing write or idle look, it could create Experiments and pods that the garbage
    /// collector only removes again. A watch can miss a deletion (while it reconnects); the
    /// engine's own idle look is the backstop. The metadata is all a deletion needs, so a
    /// Campaign this version cannot decode is stopped too.
    pub fn campaign_deleted(&self, meta: &ObjectMeta) {
        let key = (
            meta.namespace.clone().unwrap_or_else(|| "default".into()),
            meta.name.clone().unwrap_or_default(),
        );
        let stopped = {
            let mut engines = self.engines.lock().unwrap_or_else(|e| e.into_inner());
            match engines.get(&key) {
                Some(engine) if engine.uid == meta.uid => engines.remove(&key),
                _ => None,
            }
        };
        if let Some(engine) = stopped {
            tracing::info!(campaign = %key.1, "the Campaign was deleted; its engine stops");
            let _ = engine.inbox.send(ToEngine::Stop);
            self.metrics.forget_campaign(&key.0, &key.1);
        }
    }

    /// Campaigns with a running engine.
    pub fn running(&self) -> usize {
        self.engines.lock().map(|e| e.len()).unwrap_or(0)
    }
}

/// Reconciles one Campaign, counted and timed in the metrics.
/// Reconciles one Campaign as the API server stored it, decoded here one object at a time: a
/// Campaign this version cannot read (written under a newer CRD before a rollback) is
/// reported on itself and skipped, where a typed watch would fail the whole list and stall
/// every Campaign.
pub async fn reconcile_stored(
    object: Arc<DynamicObject>,
    ctx: Arc<Context>,
) -> Result<Action, ControllerError> {
    let decoded = serde_json::to_value(object.as_ref()).and_then(serde_json::from_value);
    match decoded {
        Ok(campaign) => reconcile(Arc::new(campaign), ctx).await,
        Err(error) => {
            report_undecodable(&object, &error, &ctx).await;
            Ok(Action::await_change())
        }
    }
}

/// A Campaign that cannot be decoded: a metric always, an Event and a `SpecAccepted=False`
/// condition on it when the API server takes them. No engine runs it.
async fn report_undecodable(object: &DynamicObject, error: &serde_json::Error, ctx: &Context) {
    let namespace = object.namespace().unwrap_or_else(|| "default".into());
    let name = object.name_any();
    ctx.metrics.undecodable(&namespace, "Campaign");
    tracing::warn!(%namespace, campaign = %name, %error, "a Campaign this version cannot read is skipped");
    let message = format!("this operator version cannot read the Campaign: {error}");
    let resource = ApiResource::erase::<Campaign>(&());
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    publish(
        &recorder,
        &object.object_ref(&resource),
        EventType::Warning,
        "Undecodable",
        message.clone(),
    )
    .await;
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &namespace, &resource);
    let condition = Condition {
        type_: "SpecAccepted".into(),
        status: "False".into(),
        reason: "Undecodable".into(),
        message,
        last_transition_time: k8s_openapi::jiff::Timestamp::now().to_string(),
        observed_generation: object.metadata.generation,
    };
    let patch = serde_json::json!({ "status": { "conditions": [condition] } });
    if let Err(error) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::debug!(%error, campaign = %name, "marking an undecodable Campaign");
    }
}

pub async fn reconcile(
    campaign: Arc<Campaign>,
    ctx: Arc<Context>,
) -> Result<Action, ControllerError> {
    let started = std::time::Instant::now();
    let result = reconcile_campaign(campaign, ctx.clone()).await;
    ctx.metrics
        .reconciled(started.elapsed().as_secs_f64(), result.is_ok());
    result
}

async fn reconcile_campaign(
    campaign: Arc<Campaign>,
    ctx: Arc<Context>,
) -> Result<Action, ControllerError> {
    let namespace = campaign.namespace().unwrap_or_else(|| "default".into());
    let name = campaign.name_any();
    let key = (namespace.clone(), name.clone());
    let api: Api<Campaign> = Api::namespaced(ctx.client.clone(), &namespace);
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    let reference = campaign.object_ref(&());
    if campaign.meta().deletion_timestamp.is_some() {
        stop(&ctx, &key);
        return Ok(Action::await_change());
    }
    if let Err(error) = manifest::validate(&campaign) {
        stop(&ctx, &key);
        set_condition(
            &api,
            &campaign,
            Some(CampaignPhase::Failed),
            "SpecAccepted",
            false,
            "InvalidSpec",
            &error.to_string(),
        )
        .await?;
        publish(
            &recorder,
            &reference,
            EventType::Warning,
            "InvalidSpec",
            error.to_string(),
        )
        .await;
        return Ok(Action::await_change());
    }
    // The administrator's policy, on the spec an engine would run: a Campaign created before
    // the policy (or where admission policies do not run) starts no pod; pods already running
    // finish, unwatched, and a later engine adopts them if the policy allows it again.
    if let Some(policy) = &ctx.policy {
        let violations = policy.violations(&running_campaign(&campaign).campaign.spec);
        if !violations.is_empty() {
            stop(&ctx, &key);
            let message = violations.join("; ");
            let already = campaign.status.as_ref().is_some_and(|s| {
                s.conditions.iter().any(|c| {
                    c.type_ == "SpecAccepted"
                        && c.reason == "PolicyViolation"
                        && c.message == message
                })
            });
            set_condition(
                &api,
                &campaign,
                None,
                "SpecAccepted",
                false,
                "PolicyViolation",
                &message,
            )
            .await?;
            if !already {
                publish(
                    &recorder,
                    &reference,
                    EventType::Warning,
                    "PolicyViolation",
                    message,
                )
                .await;
            }
            // Looked at again: an engine stopping now may still write its last status.
            return Ok(Action::requeue(RESYNC));
        }
    }
    // An engine that stopped on an error is restarted from the cluster's records.
    let stopped = {
        let mut engines = ctx.engines.lock().unwrap_or_else(|e| e.into_inner());
        match engines.get(&key) {
            Some(engine) if engine.thread.is_finished() => engines.remove(&key),
            _ => None,
        }
    };
    if let Some(engine) = stopped {
        let reason = match engine.thread.join() {
            Ok(Ok(())) => "the engine stopped".to_string(),
            Ok(Err(error)) => format!("{error:#}"),
            Err(_) => "the engine thread panicked".to_string(),
        };
        tracing::warn!(campaign = %name, %reason, "restarting the campaign's engine");
        set_condition(
            &api,
            &campaign,
            None,
            "Degraded",
            true,
            "EngineRestarting",
            &format!("{reason}; the engine restarts from the cluster's records"),
        )
        .await?;
        publish(
            &recorder,
            &reference,
            EventType::Warning,
            "EngineRestarting",
            reason,
        )
        .await;
    }
    let replaced = {
        let mut engines = ctx.engines.lock().unwrap_or_else(|e| e.into_inner());
        match engines.get(&key) {
            Some(engine) if engine.uid != campaign.metadata.uid => engines.remove(&key),
            _ => None,
        }
    };
    if let Some(engine) = replaced {
        let _ = engine.inbox.send(ToEngine::Stop);
    }
    let running_generation = ctx
        .engines
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .map(|e| e.generation);
    match running_generation {
        Some(generation) if generation != campaign.metadata.generation => {
            let mut engines = ctx.engines.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(engine) = engines.get_mut(&key) {
                let _ = engine.inbox.send(ToEngine::Spec {
                    spec: Box::new(campaign.spec.clone()),
                    generation: campaign.metadata.generation,
                });
                engine.generation = campaign.metadata.generation;
            }
        }
        Some(_) => {}
        None => {
            let running = running_campaign(&campaign);
            let api_key = match read_api_key(&ctx.client, &namespace, &running.campaign).await {
                Ok(key) => key,
                Err(message) => {
                    set_condition(
                        &api,
                        &campaign,
                        Some(CampaignPhase::Pending),
                        "Degraded",
                        true,
                        "SecretUnavailable",
                        &message,
                    )
                    .await?;
                    publish(
                        &recorder,
                        &reference,
                        EventType::Warning,
                        "SecretUnavailable",
                        message,
                    )
                    .await;
                    return Ok(Action::requeue(RESYNC));
                }
            };
            start(&ctx, running, &campaign, &namespace, api_key, recorder);
        }
    }
    Ok(Action::requeue(RESYNC))
}

pub fn error_policy(
    campaign: Arc<DynamicObject>,
    error: &ControllerError,
    _ctx: Arc<Context>,
) -> Action {
    tracing::warn!(campaign = %campaign.name_any(), %error, "reconcile failed");
    // Jittered, so Campaigns that failed together in one outage are not retried together.
    Action::requeue(Duration::from_secs(10).mul_f64(super::retry::jitter()))
}

/// The Campaign as its engine must run it, with the spec it accepted before.
pub struct RunningCampaign {
    /// The Campaign with its accepted spec in place of the current one.
    pub campaign: Campaign,
    pub accepted_generation: Option<i64>,
}

/// The Campaign with the spec its engine accepted, as recorded in `status.acceptedSpec`: an
/// engine always opens with it, so an edit refused while the campaign ran is not adopted by
/// a restart or a failover. A Campaign never run yet (or whose record no longer reads, which
/// is logged) runs its current spec.
pub fn running_campaign(campaign: &Campaign) -> RunningCampaign {
    let status = campaign.status.as_ref();
    let recorded = status
        .and_then(|s| s.accepted_spec.clone())
        .and_then(|value| {
            serde_json::from_value::<crate::api::CampaignSpec>(value)
                .map_err(|error| {
                    tracing::warn!(
                        campaign = %campaign.name_any(),
                        %error,
                        "status.acceptedSpec does not read; the engine opens with the current spec"
                    );
                })
                .ok()
        });
    match recorded {
        Some(spec) => {
            let mut running = campaign.clone();
            running.spec = spec;
            RunningCampaign {
                campaign: running,
                accepted_generation: status.and_then(|s| s.accepted_generation),
            }
        }
        None => RunningCampaign {
            campaign: campaign.clone(),
            accepted_generation: campaign.metadata.generation,
        },
    }
}

/// Starts the engine of `running` (the accepted spec); `current` is the Campaign as it is now,
/// whose spec the engine judges first when it differs.
fn start(
    ctx: &Context,
    running: RunningCampaign,
    current: &Campaign,
    namespace: &str,
    api_key: Option<ApiKey>,
    recorder: Recorder,
) {
    let RunningCampaign {
        campaign,
        accepted_generation,
    } = running;
    let campaign = &campaign;
    let (commands, command_inbox) = tokio::sync::mpsc::unbounded_channel();
    let (inbox, engine_inbox) = std::sync::mpsc::channel();
    let body = Body::new(
        ctx.client.clone(),
        BodyConfig {
            campaign: campaign.name_any(),
            namespace: namespace.to_string(),
            trainer: ctx.trainer_defaults.apply(&campaign.spec.trainer),
            qa: campaign.spec.qa.clone(),
            poll: ctx.poll,
            finished_pod_ttl: ctx.finished_pod_ttl,
            metrics: ctx.metrics.clone(),
            fence: ctx.fence.clone(),
        },
        recorder,
        inbox.clone(),
    );
    ctx.runtime.spawn(body.run(command_inbox));
    let pending_edit = (current.spec != campaign.spec)
        .then(|| (Box::new(current.spec.clone()), current.metadata.generation));
    let setup = ActorSetup {
        campaign: campaign.clone(),
        accepted_generation,
        pending_edit,
        namespace: namespace.to_string(),
        api_key,
        client: ctx.client.clone(),
        runtime: ctx.runtime.clone(),
        commands,
        metrics: ctx.metrics.clone(),
        fence: ctx.fence.clone(),
    };
    let name = campaign.name_any();
    let thread = std::thread::Builder::new()
        .name(format!("engine-{name}"))
        .spawn(move || actor::run(setup, engine_inbox));
    match thread {
        Ok(thread) => {
            let mut engines = ctx.engines.lock().unwrap_or_else(|e| e.into_inner());
            engines.insert(
                (namespace.to_string(), name),
                EngineThread {
                    uid: campaign.metadata.uid.clone(),
                    inbox,
                    thread,
                    generation: current.metadata.generation,
                },
            );
        }
        Err(error) => tracing::error!(%error, campaign = %name, "starting the engine thread"),
    }
}

fn stop(ctx: &Context, key: &(String, String)) {
    let engine = ctx
        .engines
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(key);
    if let Some(engine) = engine {
        let _ = engine.inbox.send(ToEngine::Stop);
    }
}

/// The LLM API key from `spec.agents.llm.apiKeySecretRef`, if the campaign names one. The key
/// goes to the agents' client only.
async fn read_api_key(
    client: &Client,
    namespace: &str,
    campaign: &Campaign,
) -> Result<Option<ApiKey>, String> {
    let Some(reference) = campaign
        .spec
        .agents
        .llm
        .as_ref()
        .and_then(|llm| llm.api_key_secret_ref.as_ref())
    else {
        return Ok(None);
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets.get(&reference.name).await.map_err(|e| {
        format!(
            "spec.agents.llm.apiKeySecretRef: reading Secret {namespace}/{}: {e}",
            reference.name
        )
    })?;
    let value = secret
        .data
        .as_ref()
        .and_then(|data| data.get(&reference.key))
        .map(|bytes| String::from_utf8_lossy(&bytes.0).trim().to_string())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|data| data.get(&reference.key))
                .cloned()
        });
    match value {
        Some(key) if !key.is_empty() => Ok(Some(ApiKey::new(key))),
        _ => Err(format!(
            "spec.agents.llm.apiKeySecretRef: Secret {namespace}/{} has no key `{}`",
            reference.name, reference.key
        )),
    }
}

/// Sets one condition (and optionally the phase) on a Campaign whose engine is not running.
async fn set_condition(
    api: &Api<Campaign>,
    campaign: &Campaign,
    phase: Option<CampaignPhase>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
) -> Result<(), ControllerError> {
    let status_text = if status { "True" } else { "False" };
    let mut conditions: Vec<Condition> = campaign
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing)
            if existing.status == status_text
                && existing.reason == reason
                && existing.message == message =>
        {
            return Ok(());
        }
        Some(existing) => {
            if existing.status != status_text {
                existing.last_transition_time = now;
            }
            existing.status = status_text.into();
            existing.reason = reason.into();
            existing.message = message.into();
            existing.observed_generation = campaign.metadata.generation;
        }
        None => conditions.push(Condition {
            type_: type_.into(),
            status: status_text.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: now,
            observed_generation: campaign.metadata.generation,
        }),
    }
    let mut patch = serde_json::json!({ "status": { "conditions": conditions } });
    if let Some(phase) = phase {
        patch["status"]["phase"] = serde_json::to_value(phase)?;
    }
    api.patch_status(
        &campaign.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await?;
    Ok(())
}

async fn publish(
    recorder: &Recorder,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = KubeEvent {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: reason.into(),
        secondary: None,
    };
    if let Err(error) = recorder.publish(&event, reference).await {
        tracing::debug!(%error, reason, "publishing an event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::campaign::CampaignStatus;

    fn campaign(generation: i64) -> Campaign {
        let mut campaign =
            crate::api::parse_campaign(include_str!("../../tests/fixtures/tiny_campaign.yaml"))
                .unwrap_or_else(|e| panic!("{e}"));
        campaign.metadata.generation = Some(generation);
        campaign
    }

    #[test]
    fn an_engine_opens_with_the_accepted_spec_not_a_refused_edit() {
        let accepted = campaign(1).spec;
        let mut edited = campaign(2);
        edited.spec.budget.max_compute_hours = Some(0.0001);
        edited.status = Some(CampaignStatus {
            accepted_spec: serde_json::to_value(&accepted).ok(),
            accepted_generation: Some(1),
            observed_generation: Some(2),
            ..CampaignStatus::default()
        });
        let running = running_campaign(&edited);
        assert_eq!(running.campaign.spec, accepted);
        assert_eq!(running.accepted_generation, Some(1));
        assert_eq!(running.campaign.metadata.generation, Some(2));
    }

    #[test]
    fn a_campaign_without_a_readable_record_runs_its_current_spec() {
        let fresh = campaign(1);
        let running = running_campaign(&fresh);
        assert_eq!(running.campaign.spec, fresh.spec);
        assert_eq!(running.accepted_generation, Some(1));
        let mut garbled = campaign(3);
        garbled.status = Some(CampaignStatus {
            accepted_spec: Some(serde_json::json!({"seeds": "not a list"})),
            accepted_generation: Some(1),
            ..CampaignStatus::default()
        });
        let running = running_campaign(&garbled);
        assert_eq!(running.campaign.spec, garbled.spec);
        assert_eq!(running.accepted_generation, Some(3));
    }
}
