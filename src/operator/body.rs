//! The engine's body in the cluster: a `Start` becomes a trainer pod (server-side applied, so
//! starting an attempt that already has its pod adopts it), a `Stop` deletes it. One monitor
//! task per pod follows its log for progress and watches its status until it ends, then hands the
//! engine the lifecycle event its outcome is. Nothing here decides: the core does.

use super::actor::ToEngine;
use super::outcome::{self, PodOutcome};
use super::pod::{
    self, LABEL_ATTEMPT, LABEL_CAMPAIGN, LABEL_EXPERIMENT, LABEL_MANAGED_BY, LABEL_RETRY, MANAGER,
    TrainerRun,
};
use super::pod_watch::{PodState, PodWatch};
use crate::api::experiment::{Experiment, resource_name};
use crate::api::trainer::TrainerSpec;
use crate::core::lifecycle::{Event, ExperimentId};
use crate::core::qa::QaLimits;
use crate::core::trainer_output;
use crate::core::watchdog::{self, Overdue};
use crate::engine::Command;
use crate::output_clock::OutputClock;
use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder};
use kube::{Api, Client, Resource};
use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Lines of a trainer's log kept for the Engineer when it fails.
const LOG_TAIL_LINES: usize = 40;
/// Tries to create a pod before the attempt counts as lost to the infrastructure.
const APPLY_TRIES: u32 = 3;
/// How long a replaced pod may take to go (its grace period and the kubelet's confirmation)
/// before its attempt runs again anyway, with a warning: a pod on a lost node can stay
/// terminating until the node is removed.
const REPLACED_POD_WAIT: Duration = Duration::from_secs(120);

/// What every pod of one campaign shares.
#[derive(Clone)]
pub struct BodyConfig {
    pub campaign: String,
    pub namespace: String,
    pub trainer: TrainerSpec,
    pub qa: QaLimits,
    /// How often a pod's clocks are checked between the changes its watch brings.
    pub poll: Duration,
    /// How long an ended pod is kept before it is deleted (none: until its Experiment goes).
    pub finished_pod_ttl: Option<Duration>,
    pub metrics: Arc<super::metrics::Metrics>,
    /// Set while this replica is the leader; no pod is created without it.
    pub fence: Arc<std::sync::atomic::AtomicBool>,
}

pub struct Body {
    config: Arc<BodyConfig>,
    pods: Api<Pod>,
    experiments: Api<Experiment>,
    recorder: Recorder,
    observations: Sender<ToEngine>,
    /// Monitors by pod name, with the attempt they watch.
    monitors: BTreeMap<String, ((ExperimentId, u32), JoinHandle<()>)>,
}

impl Body {
    pub fn new(
        client: Client,
        config: BodyConfig,
        recorder: Recorder,
        observations: Sender<ToEngine>,
    ) -> Body {
        Body {
            pods: Api::namespaced(client.clone(), &config.namespace),
            experiments: Api::namespaced(client, &config.namespace),
            config: Arc::new(config),
            recorder,
            observations,
            monitors: BTreeMap::new(),
        }
    }

    /// Carries out commands until the engine's side of the channel closes, then stops
    /// following pods (they keep running: a restarted operator adopts them).
    pub async fn run(mut self, mut commands: tokio::sync::mpsc::UnboundedReceiver<Command>) {
        let sweeper = self.config.finished_pod_ttl.map(|ttl| {
            tokio::spawn(sweep_finished_pods(
                self.pods.clone(),
                self.config.clone(),
                ttl,
            ))
        });
        while let Some(command) = commands.recv().await {
            self.execute(command).await;
        }
        if let Some(sweeper) = sweeper {
            sweeper.abort();
        }
        for (_, (_, monitor)) in std::mem::take(&mut self.monitors) {
            monitor.abort();
        }
    }

    pub async fn execute(&mut self, command: Command) {
        self.monitors
            .retain(|_, (_, monitor)| !monitor.is_finished());
        match command {
            Command::Start {
                experiment,
                attempt,
                retry,
                program,
                config,
                ..
            } => {
                let experiment_name = resource_name(&self.config.campaign, experiment);
                let run = TrainerRun {
                    campaign: &self.config.campaign,
                    experiment_name: &experiment_name,
                    experiment_id: experiment,
                    attempt,
                    retry,
                    program: &program,
                    config: &config,
                };
                let name = pod::pod_name(&experiment_name, attempt, retry);
                if retry > 0 {
                    self.remove_replaced(experiment, attempt, retry).await;
                }
                match self.apply(&run).await {
                    Ok(reference) => {
                        if !self.monitors.contains_key(&name) {
                            let monitor = tokio::spawn(monitor(
                                self.pods.clone(),
                                self.config.clone(),
                                name.clone(),
                                (experiment, attempt),
                                reference,
                                self.recorder.clone(),
                                self.observations.clone(),
                            ));
                            self.monitors.insert(name, ((experiment, attempt), monitor));
                        }
                    }
                    Err(reason) => {
                        tracing::warn!(pod = %name, %reason, "the trainer pod could not be created");
                        let _ = self.observations.send(ToEngine::Observed {
                            experiment,
                            attempt,
                            event: Event::InfrastructureFailed { reason },
                        });
                    }
                }
            }
            Command::Stop {
                experiment,
                attempt,
                reason,
            } => {
                let stopped: Vec<String> = self
                    .monitors
                    .iter()
                    .filter(|(_, (key, _))| *key == (experiment, attempt))
                    .map(|(name, _)| name.clone())
                    .collect();
                for name in stopped {
                    if let Some((_, monitor)) = self.monitors.remove(&name) {
                        monitor.abort();
                    }
                }
                let selector = format!(
                    "{LABEL_CAMPAIGN}={},{LABEL_EXPERIMENT}={experiment},{LABEL_ATTEMPT}={attempt}",
                    pod::label_value(&self.config.campaign)
                );
                if let Err(error) = self
                    .pods
                    .delete_collection(
                        &DeleteParams::background(),
                        &ListParams::default().labels(&selector),
                    )
                    .await
                {
                    tracing::warn!(%error, experiment, attempt, "deleting a stopped trainer pod");
                }
                if let Ok(Some(resource)) = self
                    .experiments
                    .get_opt(&resource_name(&self.config.campaign, experiment))
                    .await
                {
                    publish(
                        &self.recorder,
                        &resource.object_ref(&()),
                        EventType::Warning,
                        "TrainerStopped",
                        format!("attempt {attempt} stopped: {reason}"),
                    )
                    .await;
                }
            }
        }
    }

    /// Deletes the pods of earlier runs of this attempt (a rerun after the infrastructure lost
    /// one) that have not ended, and waits until they are gone, so a pod stuck pending or pulling can never start
    /// training unwatched once capacity appears. The monitor deletes the pod it gave up on;
    /// this also covers a pod left by a replica that stopped before it could.
    async fn remove_replaced(&self, experiment: ExperimentId, attempt: u32, retry: u32) {
        let selector = format!(
            "{LABEL_CAMPAIGN}={},{LABEL_EXPERIMENT}={experiment},{LABEL_ATTEMPT}={attempt},{LABEL_RETRY}!={retry}",
            pod::label_value(&self.config.campaign)
        );
        // Ended pods stay (until their Experiment goes) for `kubectl logs` and `describe`.
        let params = ListParams::default()
            .labels(&selector)
            .fields("status.phase!=Succeeded,status.phase!=Failed");
        let deadline = tokio::time::Instant::now() + REPLACED_POD_WAIT;
        let mut deleted = false;
        loop {
            let remaining = match self.pods.list_metadata(&params).await {
                Ok(list) => list.items.len(),
                Err(error) => {
                    tracing::warn!(%error, experiment, attempt, "listing the pods a rerun replaces");
                    return;
                }
            };
            if remaining == 0 {
                return;
            }
            if !deleted {
                if let Err(error) = self
                    .pods
                    .delete_collection(&DeleteParams::background(), &params)
                    .await
                {
                    tracing::warn!(%error, experiment, attempt, "deleting the pods a rerun replaces");
                }
                deleted = true;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    experiment,
                    attempt,
                    remaining,
                    "pods this rerun replaces are still terminating; starting the rerun anyway"
                );
                return;
            }
            tokio::time::sleep(self.config.poll).await;
        }
    }

    /// Applies the pod of `run`, owned by its Experiment; returns the Experiment's reference
    /// for events. A pod that already exists is adopted as it is, never re-applied: the
    /// Campaign's trainer spec may have changed since it was created, and changing a running
    /// pod's image would restart its trainer. A refusal after a few tries is returned as the
    /// reason.
    async fn apply(&self, run: &TrainerRun<'_>) -> Result<ObjectReference, String> {
        if !self.config.fence.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("this replica is no longer the leader".into());
        }
        let name = pod::pod_name(run.experiment_name, run.attempt, run.retry);
        let mut last_error = String::new();
        for try_number in 0..APPLY_TRIES {
            if try_number > 0 {
                tokio::time::sleep(Duration::from_secs(1 << try_number)).await;
            }
            let resource = match self.experiments.get(run.experiment_name).await {
                Ok(resource) => resource,
                Err(error) => {
                    last_error = format!("reading Experiment {}: {error}", run.experiment_name);
                    continue;
                }
            };
            match self.pods.get_metadata_opt(&name).await {
                Ok(Some(_)) => return Ok(resource.object_ref(&())),
                Ok(None) => {}
                Err(error) => {
                    last_error = format!("reading the trainer pod {name}: {error}");
                    continue;
                }
            }
            let owner = OwnerReference {
                api_version: Experiment::api_version(&()).into_owned(),
                kind: Experiment::kind(&()).into_owned(),
                name: run.experiment_name.to_string(),
                uid: resource.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            };
            let pod = pod::trainer_pod(
                run,
                &self.config.trainer,
                self.config.qa.max_attempt_seconds,
                &self.config.namespace,
                owner,
            )
            .map_err(|e| format!("building the trainer pod: {e}"))?;
            match self
                .pods
                .patch(
                    &name,
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(&pod),
                )
                .await
            {
                Ok(_) => return Ok(resource.object_ref(&())),
                Err(error) => {
                    last_error = format!("the trainer pod {name} could not be created: {error}")
                }
            }
        }
        Err(last_error)
    }
}

/// Follows one pod until it ends and reports each progress line and the ending.
async fn monitor(
    pods: Api<Pod>,
    config: Arc<BodyConfig>,
    name: String,
    (experiment, attempt): (ExperimentId, u32),
    reference: ObjectReference,
    recorder: Recorder,
    observations: Sender<ToEngine>,
) {
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    // Started when the trainer container is first seen running; ticked by each log line.
    let mut clock: Option<Arc<OutputClock>> = None;
    let mut follower: Option<JoinHandle<()>> = None;
    let mut announced = false;
    let mut last_seen: Option<Pod> = None;
    // The watch brings every change of the pod; the tick re-reads the clocks (the silence
    // rule, the deadlines) between changes.
    let mut watch = PodWatch::new(pods.clone(), &name);
    let mut current: Option<Box<Pod>> = None;
    let mut tick = tokio::time::interval(config.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ending = loop {
        tokio::select! {
            state = watch.next() => match state {
                PodState::Present(pod) => current = Some(pod),
                PodState::Gone { last } => {
                    break outcome::classify_gone(last.as_deref(), Timestamp::now(), &config.qa);
                }
            },
            _ = tick.tick() => {}
        }
        // Not listed yet: nothing to judge.
        let Some(pod) = current.as_deref() else {
            continue;
        };
        let ended = outcome::classify(pod, Timestamp::now(), &config.qa);
        if ended != PodOutcome::Running {
            last_seen = Some(pod.clone());
            break ended;
        }
        // A trainer silent too long is hung (the deadline is the kubelet's, above).
        if let Some(clock) = &clock {
            let (liveness, now) = clock.liveness();
            if let Some(Overdue::Silent { silent_s, limit_s }) =
                watchdog::overdue(&config.qa, &liveness, now)
            {
                last_seen = Some(pod.clone());
                break PodOutcome::Silent { silent_s, limit_s };
            }
        }
        if follower.is_none() && container_started(pod) {
            if !announced {
                let node = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default();
                publish(
                    &recorder,
                    &reference,
                    EventType::Normal,
                    "TrainerRunning",
                    format!("attempt {attempt} trains in pod {name} on node {node}"),
                )
                .await;
                announced = true;
            }
            let ticks = clock
                .get_or_insert_with(|| Arc::new(OutputClock::start()))
                .clone();
            follower = Some(tokio::spawn(follow_log(
                pods.clone(),
                name.clone(),
                (experiment, attempt),
                (tail.clone(), ticks),
                observations.clone(),
            )));
        }
        if follower.as_ref().is_some_and(JoinHandle::is_finished) {
            // The stream ended early (a dropped connection): follow again; replays are ignored.
            follower = None;
        }
    };
    match follower {
        // Let the follower read the last lines (bounded: a stuck stream must not hold the result).
        Some(follower) => {
            let _ = tokio::time::timeout(Duration::from_secs(10), follower).await;
        }
        // The pod ended between two looks: read its whole log once.
        None if ending != PodOutcome::Deleted => {
            let params = LogParams {
                container: Some(outcome::TRAINER_CONTAINER.into()),
                ..LogParams::default()
            };
            if let Ok(log) = pods.logs(&name, &params).await {
                for line in log.lines() {
                    take_line(line, (experiment, attempt), &tail, &observations);
                }
            }
        }
        None => {}
    }
    // A pod given up on before it reached a terminal phase (stuck pulling, queued, past its
    // deadline, held running by a sidecar, being drained) goes before the engine hears of
    // its ending, so no rerun ever runs beside it.
    if let Some(pod) = last_seen.filter(outcome::still_active) {
        remove_pod(&pods, &name, pod.metadata.uid.as_deref(), config.poll).await;
    }
    let log_tail = tail
        .lock()
        .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
        .unwrap_or_default();
    let Some(event) = outcome::to_event(&ending, &log_tail, config.qa.max_attempt_seconds) else {
        return;
    };
    let (type_, reason, note) = describe(&ending, &event, &name);
    config
        .metrics
        .pod_ended(&config.namespace, &config.campaign, reason);
    publish(&recorder, &reference, type_, reason, note).await;
    let _ = observations.send(ToEngine::Observed {
        experiment,
        attempt,
        event,
    });
}

/// Deletes this campaign's ended trainer pods once they have been over for `ttl`, looking
/// every `ttl` (at most a minute apart). The Experiment holds what it needs of a pod (outcome,
/// result, log tail), and the look is by labels and phase, so a restarted operator cleans up
/// what an earlier one left. Only the leader deletes.
pub async fn sweep_finished_pods(pods: Api<Pod>, config: Arc<BodyConfig>, ttl: Duration) {
    let selector = format!(
        "{LABEL_CAMPAIGN}={},{LABEL_MANAGED_BY}={MANAGER}",
        pod::label_value(&config.campaign)
    );
    let params = ListParams::default()
        .labels(&selector)
        .fields("status.phase!=Pending,status.phase!=Running,status.phase!=Unknown");
    let every = ttl.min(Duration::from_secs(60));
    loop {
        tokio::time::sleep(every).await;
        if !config.fence.load(std::sync::atomic::Ordering::SeqCst) {
            continue;
        }
        let list = match pods.list(&params).await {
            Ok(list) => list,
            Err(error) => {
                tracing::debug!(%error, "listing ended trainer pods");
                continue;
            }
        };
        let now = Timestamp::now();
        for pod in list.items {
            if !outcome::ended_longer_than(&pod, now, ttl) {
                continue;
            }
            let name = pod.metadata.name.clone().unwrap_or_default();
            let params = DeleteParams {
                preconditions: pod
                    .metadata
                    .uid
                    .clone()
                    .map(|uid| kube::api::Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                ..DeleteParams::background()
            };
            match pods.delete(&name, &params).await {
                Ok(_) => tracing::debug!(pod = %name, "deleted an ended trainer pod past its TTL"),
                Err(error) => tracing::debug!(%error, pod = %name, "deleting an ended trainer pod"),
            }
        }
    }
}

/// Deletes the pod `name` (only the one with `uid`: a rerun may reuse no name, but a stale
/// monitor must never delete a newer pod) and waits, bounded, until it is gone.
async fn remove_pod(pods: &Api<Pod>, name: &str, uid: Option<&str>, poll: Duration) {
    let params = DeleteParams {
        preconditions: uid.map(|uid| kube::api::Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    if let Err(error) = pods.delete(name, &params).await {
        tracing::debug!(%error, pod = %name, "deleting a trainer pod given up on");
    }
    let deadline = tokio::time::Instant::now() + REPLACED_POD_WAIT;
    while tokio::time::Instant::now() < deadline {
        match pods.get_metadata_opt(name).await {
            Ok(None) => return,
            Ok(Some(meta)) if meta.metadata.uid.as_deref() != uid => return,
            _ => tokio::time::sleep(poll).await,
        }
    }
    tracing::warn!(pod = %name, "a trainer pod given up on is still terminating");
}

/// Whether the trainer container has started (its log can be read); sidecars do not count.
fn container_started(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.name == outcome::TRAINER_CONTAINER)
        .any(|c| {
            c.state
                .as_ref()
                .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
        })
}

async fn follow_log(
    pods: Api<Pod>,
    name: String,
    key: (ExperimentId, u32),
    (tail, clock): (Arc<Mutex<VecDeque<String>>>, Arc<OutputClock>),
    observations: Sender<ToEngine>,
) {
    let params = LogParams {
        container: Some(outcome::TRAINER_CONTAINER.into()),
        follow: true,
        ..LogParams::default()
    };
    let stream = match pods.log_stream(&name, &params).await {
        Ok(stream) => stream,
        Err(error) => {
            tracing::debug!(%error, pod = %name, "following a trainer log");
            return;
        }
    };
    let mut lines = stream.lines();
    while let Ok(Some(line)) = lines.try_next().await {
        clock.tick();
        take_line(&line, key, &tail, &observations);
    }
}

/// Keeps `line` in the tail and forwards progress to the engine. Results are not forwarded:
/// they come from the pod's termination, once.
fn take_line(
    line: &str,
    (experiment, attempt): (ExperimentId, u32),
    tail: &Mutex<VecDeque<String>>,
    observations: &Sender<ToEngine>,
) {
    if let Ok(mut tail) = tail.lock() {
        tail.push_back(line.to_string());
        while tail.len() > LOG_TAIL_LINES {
            tail.pop_front();
        }
    }
    if let Some(event @ Event::Progress(_)) = trainer_output::parse_line(line) {
        let _ = observations.send(ToEngine::Observed {
            experiment,
            attempt,
            event,
        });
    }
}

/// The Kubernetes Event for an ended pod.
fn describe(outcome: &PodOutcome, event: &Event, pod: &str) -> (EventType, &'static str, String) {
    let what = match event {
        Event::Finished(summary) => format!("validation loss {:.4}", summary.val_loss),
        Event::Diverged => "training diverged".into(),
        Event::Crashed { message, .. } => message.clone(),
        Event::InfrastructureFailed { reason } => reason.clone(),
        _ => String::new(),
    };
    let reason = match outcome {
        // Exited 0 without a usable result: the program failed.
        PodOutcome::Succeeded { .. } if !matches!(event, Event::Finished(_)) => "TrainerFailed",
        other => other.event_reason(),
    };
    let type_ = if reason == "TrainerSucceeded" {
        EventType::Normal
    } else {
        EventType::Warning
    };
    (type_, reason, format!("pod {pod}: {what}"))
}

pub(super) async fn publish(
    recorder: &Recorder,
    reference: &ObjectReference,
    type_: EventType,
    reason: &str,
    note: String,
) {
    // Events are at most 1 kB of note.
    let mut note = note;
    if note.len() > 1000 {
        let mut end = 1000;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
    }
    let event = KubeEvent {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: reason.to_string(),
        secondary: None,
    };
    if let Err(error) = recorder.publish(&event, reference).await {
        tracing::debug!(%error, reason, "publishing an event");
    }
}
