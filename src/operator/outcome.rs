//! Every way a trainer pod can end, read from its status, and the lifecycle event each one is.
//! Pure: tested on pod objects without a cluster. The program is charged only for what the
//! program did (a crash, running out of memory, its deadline); what the cluster did to the pod
//! (a deletion, a drain or preemption, eviction, a lost node, no node to run on, a queue that
//! never admits it, an image that cannot be pulled, a container the runtime could not start)
//! is an infrastructure failure, which the core retries without a revision.
//!
//! The ending is read from the `trainer` container, not the pod's phase: an injected sidecar
//! keeps a finished pod `Running`, and a drained pod's trainer exits non-zero because it was
//! killed, not because the program failed.

use crate::core::lifecycle::Event;
use crate::core::qa::QaLimits;
use crate::core::trainer_output;
use crate::core::watchdog::Overdue;
use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, Pod};
use k8s_openapi::jiff::Timestamp;

/// The trainer's container in a trainer pod.
pub const TRAINER_CONTAINER: &str = "trainer";

/// What a pod's status says about its run.
#[derive(Debug, Clone, PartialEq)]
pub enum PodOutcome {
    /// Still waiting for a node, pulling, or training.
    Running,
    /// The trainer exited 0; its termination message holds the result line.
    Succeeded {
        message: String,
    },
    /// The trainer exited non-zero.
    Failed {
        exit_code: i32,
        reason: String,
        message: String,
    },
    OomKilled {
        limit: Option<String>,
    },
    /// `activeDeadlineSeconds` passed, or the trainer has run longer than that since the pod's
    /// `status.startTime` without the kubelet stopping it.
    DeadlineExceeded,
    Evicted {
        message: String,
    },
    /// The cluster is taking the pod away (`DisruptionTarget`: a drain, preemption, taint
    /// eviction, node shutdown, garbage collection).
    Disrupted {
        reason: String,
        message: String,
    },
    NodeLost {
        message: String,
    },
    /// No node could take it for longer than the limit: the scheduler's message says why.
    Unschedulable {
        message: String,
    },
    /// Held by a scheduling gate (a queue such as Kueue) for longer than `qa.maxQueuedSeconds`.
    QueuedTooLong {
        gates: Vec<String>,
    },
    ImagePullFailed {
        reason: String,
        message: String,
    },
    /// The container runtime could not create or start the trainer (`StartError`, exit 128:
    /// for example no NVIDIA runtime on the node; a missing Secret; `CrashLoopBackOff`).
    StartFailed {
        reason: String,
        message: String,
    },
    /// Deleted (by someone, or its node's garbage collection) before it finished.
    Deleted,
    /// Its trainer printed nothing for longer than the watchdog allows (`qa.silenceSeconds`,
    /// `qa.silenceFactor`): hung, and stopped by the operator.
    Silent {
        silent_s: f64,
        limit_s: f64,
    },
}

impl PodOutcome {
    /// The reason of the Kubernetes Event and the metric's `class` label for this ending.
    pub fn event_reason(&self) -> &'static str {
        match self {
            PodOutcome::Running => "TrainerRunning",
            PodOutcome::Succeeded { .. } => "TrainerSucceeded",
            PodOutcome::Failed { .. } => "TrainerFailed",
            PodOutcome::OomKilled { .. } => "TrainerOOMKilled",
            PodOutcome::DeadlineExceeded => "TrainerDeadlineExceeded",
            PodOutcome::Evicted { .. } => "TrainerEvicted",
            PodOutcome::Disrupted { .. } => "TrainerDisrupted",
            PodOutcome::NodeLost { .. } => "TrainerNodeLost",
            PodOutcome::Unschedulable { .. } => "TrainerUnschedulable",
            PodOutcome::QueuedTooLong { .. } => "TrainerQueuedTooLong",
            PodOutcome::ImagePullFailed { .. } => "TrainerImagePullFailed",
            PodOutcome::StartFailed { .. } => "TrainerStartFailed",
            PodOutcome::Deleted => "TrainerDeleted",
            PodOutcome::Silent { .. } => "TrainerSilent",
        }
    }
}

/// Container waiting reasons that mean the image will not come. (`ErrImagePull` is the first
/// failure, which the kubelet retries itself.)
const IMAGE_PULL_REASONS: [&str; 4] = [
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
];

/// Container waiting reasons that mean the runtime cannot create or start the container.
const START_FAILURE_REASONS: [&str; 5] = [
    "CreateContainerError",
    "CreateContainerConfigError",
    "RunContainerError",
    "CrashLoopBackOff",
    "PreCreateHookError",
];

/// Terminated reasons that mean the trainer's process never ran.
const NEVER_RAN_REASONS: [&str; 2] = ["StartError", "ContainerCannotRun"];

/// The exit code a runtime reports when it could not start the process.
const START_FAILURE_EXIT_CODE: i32 = 128;

/// Pod-level reasons of a failed pod that are the cluster's doing.
const EVICTION_REASONS: [&str; 3] = ["Evicted", "Preempting", "Terminated"];
const NODE_LOSS_REASONS: [&str; 3] = ["NodeLost", "UnexpectedAdmissionError", "NodeShutdown"];

/// Seconds past `qa.maxAttemptSeconds` (from `status.startTime`) before the operator calls the
/// deadline itself: the kubelet enforces `activeDeadlineSeconds` first where it runs.
const DEADLINE_GRACE_SECONDS: i64 = 60;

/// The ending of a pod that is gone, read from its final state when the watch saw the deletion:
/// an eviction's mark or a trainer that had finished still says what happened. Without a final
/// state, or one that says nothing more, it was deleted before it finished.
pub fn classify_gone(last: Option<&Pod>, now: Timestamp, qa: &QaLimits) -> PodOutcome {
    match last.map(|pod| classify(pod, now, qa)) {
        None | Some(PodOutcome::Running) => PodOutcome::Deleted,
        Some(outcome) => outcome,
    }
}

/// Classifies `pod` at time `now` under the bounds of `qa` (the waits for a node and for a
/// queue, the attempt's deadline). The order matters: a complete result wins; then what the
/// cluster did to the pod; then what the trainer container did; then how long it has waited.
pub fn classify(pod: &Pod, now: Timestamp, qa: &QaLimits) -> PodOutcome {
    let terminated = trainer_terminated(pod);
    // A trainer that exited 0 has finished, whatever its sidecars or a later deletion do.
    if let Some(t) = terminated
        && t.exit_code == 0
        && !never_ran(t)
    {
        return PodOutcome::Succeeded {
            message: t.message.clone().unwrap_or_default(),
        };
    }
    // Before the deletion: an eviction marks the pod a disruption target and deletes it in one
    // request, and the condition says who took it and why.
    if let Some(disruption) = pod
        .status
        .iter()
        .flat_map(|status| status.conditions.iter().flatten())
        .find(|c| c.type_ == "DisruptionTarget" && c.status == "True")
    {
        return PodOutcome::Disrupted {
            reason: disruption.reason.clone().unwrap_or_default(),
            message: non_empty(
                disruption.message.clone().unwrap_or_default(),
                "the cluster is removing the pod",
            ),
        };
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return PodOutcome::Deleted;
    }
    let Some(status) = &pod.status else {
        return PodOutcome::Running;
    };
    let phase = status.phase.as_deref().unwrap_or("Pending");
    let reason = status.reason.as_deref().unwrap_or_default();
    let message = status.message.clone().unwrap_or_default();
    if reason == "DeadlineExceeded" {
        return PodOutcome::DeadlineExceeded;
    }
    if EVICTION_REASONS.contains(&reason) && phase == "Failed" {
        return PodOutcome::Evicted {
            message: non_empty(message, "the pod was evicted"),
        };
    }
    if NODE_LOSS_REASONS.contains(&reason) || phase == "Unknown" {
        return PodOutcome::NodeLost {
            message: non_empty(message, "the node running the pod was lost"),
        };
    }
    if let Some(t) = terminated {
        if never_ran(t) {
            return PodOutcome::StartFailed {
                reason: t.reason.clone().unwrap_or_else(|| "StartError".into()),
                message: t.message.clone().unwrap_or_default(),
            };
        }
        if t.reason.as_deref() == Some("OOMKilled") {
            return PodOutcome::OomKilled {
                limit: memory_limit(pod),
            };
        }
        return PodOutcome::Failed {
            exit_code: t.exit_code,
            reason: t.reason.clone().unwrap_or_default(),
            message: t.message.clone().unwrap_or_default(),
        };
    }
    if phase == "Succeeded" {
        // No trainer status to read (a node agent that reports only the phase).
        return PodOutcome::Succeeded {
            message: String::new(),
        };
    }
    if phase == "Failed" {
        return PodOutcome::NodeLost {
            message: non_empty(message, "the pod ended before its trainer ran"),
        };
    }
    if let Some(waiting) = trainer_state(pod).and_then(|s| s.waiting.as_ref()) {
        let why = waiting.reason.clone().unwrap_or_default();
        let message = waiting.message.clone().unwrap_or_default();
        if IMAGE_PULL_REASONS.contains(&why.as_str()) {
            return PodOutcome::ImagePullFailed {
                reason: why,
                message,
            };
        }
        if START_FAILURE_REASONS.contains(&why.as_str()) {
            return PodOutcome::StartFailed {
                reason: why,
                message,
            };
        }
    }
    // Past its deadline without the kubelet stopping it (a node agent that does not enforce
    // `activeDeadlineSeconds`): the deadline counts from when the pod started, not from when
    // it was created, so time spent queued or unscheduled is not charged to the program.
    if let Some(started) = status.start_time.as_ref().map(|t| t.0)
        && seconds_between(started, now)
            > i64::try_from(qa.max_attempt_seconds)
                .unwrap_or(i64::MAX)
                .saturating_add(DEADLINE_GRACE_SECONDS)
    {
        return PodOutcome::DeadlineExceeded;
    }
    let gates: Vec<String> = pod
        .spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .into_iter()
        .flatten()
        .map(|g| g.name.clone())
        .collect();
    let scheduled_condition = |why: &str| {
        status.conditions.iter().flatten().find(|c| {
            c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some(why)
        })
    };
    let waited_since = |condition: Option<&k8s_openapi::api::core::v1::PodCondition>| {
        let since = condition
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0)
            .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0));
        since.map_or(0, |since| seconds_between(since, now))
    };
    // Held by a queue: bounded by its own limit, never counted as unschedulable.
    if !gates.is_empty() || scheduled_condition("SchedulingGated").is_some() {
        if waited_since(scheduled_condition("SchedulingGated")) as u64 > qa.max_queued_seconds {
            return PodOutcome::QueuedTooLong { gates };
        }
        return PodOutcome::Running;
    }
    if let Some(condition) = scheduled_condition("Unschedulable")
        && waited_since(Some(condition)) as u64 > qa.max_pending_seconds
    {
        return PodOutcome::Unschedulable {
            message: non_empty(
                condition.message.clone().unwrap_or_default(),
                "no node can run the pod",
            ),
        };
    }
    PodOutcome::Running
}

/// Whether the pod object still holds a container or a sandbox that could run: a pod whose
/// outcome was decided before it reached a terminal phase (a stuck image pull, a queue, a
/// sidecar that keeps it running) must be deleted before its attempt runs again.
pub fn still_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed"))
}

/// Whether `pod` ended (a terminal phase) more than `ttl` before `now`: its trainer's
/// `finishedAt`, else its last condition's transition, else its start.
pub fn ended_longer_than(pod: &Pod, now: Timestamp, ttl: std::time::Duration) -> bool {
    if still_active(pod) {
        return false;
    }
    let status = pod.status.as_ref();
    let ended = trainer_terminated(pod)
        .and_then(|t| t.finished_at.as_ref())
        .map(|t| t.0)
        .or_else(|| {
            status?
                .conditions
                .as_ref()?
                .iter()
                .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
                .max()
        })
        .or_else(|| status?.start_time.as_ref().map(|t| t.0));
    ended.is_some_and(|ended| {
        seconds_between(ended, now) > i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)
    })
}

fn seconds_between(since: Timestamp, now: Timestamp) -> i64 {
    (now.as_second() - since.as_second()).max(0)
}

fn never_ran(terminated: &ContainerStateTerminated) -> bool {
    NEVER_RAN_REASONS.contains(&terminated.reason.as_deref().unwrap_or_default())
        || terminated.exit_code == START_FAILURE_EXIT_CODE && terminated.started_at.is_none()
}

fn trainer_state(pod: &Pod) -> Option<&ContainerState> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == TRAINER_CONTAINER)?
        .state
        .as_ref()
}

fn trainer_terminated(pod: &Pod) -> Option<&ContainerStateTerminated> {
    trainer_state(pod)?.terminated.as_ref()
}

fn memory_limit(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == TRAINER_CONTAINER)?
        .resources
        .as_ref()?
        .limits
        .as_ref()?
        .get("memory")
        .map(|q| q.0.clone())
}

fn non_empty(text: String, fallback: &str) -> String {
    if text.trim().is_empty() {
        fallback.to_string()
    } else {
        text
    }
}

/// The lifecycle event for an ended pod (`None` while it runs). `log_tail` is the end of its
/// log, for the Engineer and for a result the termination message lost.
pub fn to_event(outcome: &PodOutcome, log_tail: &str, max_attempt_seconds: u64) -> Option<Event> {
    let infrastructure = |reason: String| Some(Event::InfrastructureFailed { reason });
    match outcome {
        PodOutcome::Running => None,
        PodOutcome::Succeeded { message } => Some(result_event(message, log_tail).unwrap_or_else(
            || Event::Crashed {
                message: "the trainer exited 0 without a result line".into(),
                log_tail: log_tail.to_string(),
            },
        )),
        PodOutcome::Failed {
            exit_code,
            reason,
            message,
        } => Some(
            // A failed pod's result counts only as the error it reports: numbers from a run
            // that then exited non-zero are not trusted.
            result_event(message, log_tail)
                .filter(|event| matches!(event, Event::Crashed { .. }))
                .unwrap_or_else(|| Event::Crashed {
                    message: if reason.is_empty() || reason == "Error" {
                        format!("the trainer exited with code {exit_code}")
                    } else {
                        format!("the trainer exited with code {exit_code} ({reason})")
                    },
                    log_tail: if log_tail.is_empty() {
                        message.clone()
                    } else {
                        log_tail.to_string()
                    },
                }),
        ),
        PodOutcome::OomKilled { limit } => Some(Event::Crashed {
            message: match limit {
                Some(limit) => {
                    format!("the trainer ran out of memory (OOMKilled at the {limit} limit)")
                }
                None => "the trainer ran out of memory (OOMKilled)".into(),
            },
            log_tail: log_tail.to_string(),
        }),
        PodOutcome::DeadlineExceeded => Some(
            Overdue::Deadline {
                limit_s: max_attempt_seconds,
            }
            .event(log_tail),
        ),
        PodOutcome::Silent { silent_s, limit_s } => Some(
            Overdue::Silent {
                silent_s: *silent_s,
                limit_s: *limit_s,
            }
            .event(log_tail),
        ),
        PodOutcome::Evicted { message } => {
            infrastructure(format!("the pod was evicted: {message}"))
        }
        PodOutcome::Disrupted { reason, message } => infrastructure(if reason.is_empty() {
            format!("the cluster took the pod away: {message}")
        } else {
            format!("the cluster took the pod away ({reason}): {message}")
        }),
        PodOutcome::NodeLost { message } => infrastructure(format!("the node was lost: {message}")),
        PodOutcome::QueuedTooLong { gates } => infrastructure(if gates.is_empty() {
            "the pod stayed queued longer than qa.maxQueuedSeconds".into()
        } else {
            format!(
                "the pod stayed queued longer than qa.maxQueuedSeconds (scheduling gates: {})",
                gates.join(", ")
            )
        }),
        PodOutcome::StartFailed { reason, message } => infrastructure(format!(
            "the container runtime could not start the trainer ({reason}): {message}"
        )),
        PodOutcome::Unschedulable { message } => {
            infrastructure(format!("no node could run the pod: {message}"))
        }
        PodOutcome::ImagePullFailed { reason, message } => infrastructure(format!(
            "the trainer image could not be pulled ({reason}): {message}"
        )),
        PodOutcome::Deleted => infrastructure("the pod was deleted before it finished".into()),
    }
}

/// The trainer's result: from the termination message, else from the last result line of the
/// log (a termination message may have been cut at 4096 bytes).
fn result_event(message: &str, log_tail: &str) -> Option<Event> {
    // With `FallbackToLogsOnError` the message may itself be the log's last lines.
    let is_result = |event: &Event| !matches!(event, Event::Progress(_));
    message
        .lines()
        .rev()
        .chain(log_tail.lines().rev())
        .filter_map(trainer_output::parse_line)
        .find(is_result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RESULT: &str = r#"{"event":"result","status":"ok","val_loss":1.25,"accuracy":{"mqar":0.5},"wall_s":3.0,"params":100}"#;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn ago(seconds: i64) -> String {
        Timestamp::from_second(1_800_000_000 - seconds)
            .unwrap_or(Timestamp::UNIX_EPOCH)
            .to_string()
    }

    fn pod(status: serde_json::Value) -> Pod {
        let value = json!({
            "metadata": {"name": "camp-e00001-a1", "creationTimestamp": ago(3600)},
            "spec": {"containers": [{"name": "trainer", "image": "archlab",
                "resources": {"limits": {"memory": "2Gi"}}}]},
            "status": status,
        });
        serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"))
    }

    fn terminated(phase: &str, exit_code: i32, reason: &str, message: &str) -> Pod {
        pod(json!({"phase": phase, "containerStatuses": [{
            "name": "trainer", "image": "archlab", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": exit_code, "reason": reason, "message": message}}
        }]}))
    }

    fn limits() -> QaLimits {
        QaLimits {
            max_pending_seconds: 600,
            max_attempt_seconds: 7200,
            max_queued_seconds: 3600,
            ..QaLimits::default()
        }
    }

    fn event(pod: &Pod, log: &str) -> Option<Event> {
        to_event(&classify(pod, now(), &limits()), log, 7200)
    }

    fn container_status(name: &str, state: serde_json::Value) -> serde_json::Value {
        json!({"name": name, "image": "archlab", "imageID": "", "ready": false,
            "restartCount": 0, "state": state})
    }

    fn infrastructure_reason(event: Option<Event>) -> String {
        match event {
            Some(Event::InfrastructureFailed { reason }) => reason,
            other => panic!("expected an infrastructure failure, got {other:?}"),
        }
    }

    fn crash_message(event: Option<Event>) -> String {
        match event {
            Some(Event::Crashed { message, .. }) => message,
            other => panic!("expected a crash, got {other:?}"),
        }
    }

    #[test]
    fn a_succeeded_pod_finishes_with_the_result_of_its_termination_message() {
        let pod = terminated("Succeeded", 0, "Completed", RESULT);
        let Some(Event::Finished(summary)) = event(&pod, "") else {
            panic!("{:?}", event(&pod, ""));
        };
        assert_eq!(summary.val_loss, 1.25);
        assert_eq!(summary.params, 100);
    }

    #[test]
    fn a_lost_termination_message_falls_back_to_the_logs_last_result() {
        let pod = terminated("Succeeded", 0, "Completed", "");
        let log = format!(
            "{{\"event\":\"progress\",\"step\":1,\"loss\":2.0,\"elapsed_s\":0.1}}\n{RESULT}\n"
        );
        assert!(matches!(event(&pod, &log), Some(Event::Finished(_))));
        let message = crash_message(event(&pod, "no result here"));
        assert!(message.contains("without a result line"), "{message}");
    }

    #[test]
    fn a_diverged_result_is_divergence_not_a_crash() {
        let pod = terminated(
            "Succeeded",
            0,
            "Completed",
            r#"{"event":"result","status":"diverged"}"#,
        );
        assert_eq!(event(&pod, ""), Some(Event::Diverged));
    }

    #[test]
    fn a_nonzero_exit_is_a_crash_with_its_code_or_the_trainers_error() {
        let pod = terminated("Failed", 101, "Error", "thread 'main' panicked");
        let Some(Event::Crashed { message, log_tail }) = event(&pod, "") else {
            panic!()
        };
        assert_eq!(message, "the trainer exited with code 101");
        assert_eq!(
            log_tail, "thread 'main' panicked",
            "the message is the log's tail"
        );
        let error = terminated(
            "Failed",
            1,
            "Error",
            r#"{"event":"result","status":"error","error":"d_model must be even"}"#,
        );
        assert_eq!(crash_message(event(&error, "")), "d_model must be even");
    }

    #[test]
    fn out_of_memory_is_charged_to_the_program_with_the_limit() {
        let pod = terminated("Failed", 137, "OOMKilled", "");
        let message = crash_message(event(&pod, ""));
        assert!(message.contains("OOMKilled at the 2Gi limit"), "{message}");
    }

    #[test]
    fn the_deadline_is_charged_to_the_program_and_names_the_setting() {
        let pod = pod(json!({"phase": "Failed", "reason": "DeadlineExceeded",
            "message": "Pod was active on the node longer than the specified deadline"}));
        let message = crash_message(event(&pod, ""));
        assert!(
            message.contains("7200 s (qa.maxAttemptSeconds)"),
            "{message}"
        );
    }

    #[test]
    fn a_silent_trainer_is_charged_to_the_program_with_the_watchdogs_reason() {
        let silent = PodOutcome::Silent {
            silent_s: 31.0,
            limit_s: 30.0,
        };
        assert_eq!(silent.event_reason(), "TrainerSilent");
        let message = crash_message(to_event(&silent, "last line", 7200));
        assert!(
            message.contains("printed nothing for 31 s (limit 30 s: qa.silenceSeconds"),
            "{message}"
        );
    }

    #[test]
    fn eviction_is_an_infrastructure_failure_with_the_kubelets_message() {
        let pod = pod(json!({"phase": "Failed", "reason": "Evicted",
            "message": "The node was low on resource: memory."}));
        let reason = infrastructure_reason(event(&pod, ""));
        assert_eq!(
            reason,
            "the pod was evicted: The node was low on resource: memory."
        );
    }

    #[test]
    fn a_lost_node_is_an_infrastructure_failure() {
        for status in [
            json!({"phase": "Unknown"}),
            json!({"phase": "Running", "reason": "NodeLost", "message": "node n1 which was running pod is unresponsive"}),
            json!({"phase": "Failed", "reason": "NodeShutdown"}),
        ] {
            let reason = infrastructure_reason(event(&pod(status), ""));
            assert!(reason.starts_with("the node was lost"), "{reason}");
        }
    }

    #[test]
    fn unschedulable_counts_only_after_the_limit_and_quotes_the_scheduler() {
        let message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.";
        let waiting = |seconds| {
            pod(
                json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": message, "lastTransitionTime": ago(seconds)}]}),
            )
        };
        assert_eq!(event(&waiting(30), ""), None, "a short wait is normal");
        let reason = infrastructure_reason(event(&waiting(601), ""));
        assert_eq!(reason, format!("no node could run the pod: {message}"));
    }

    #[test]
    fn an_image_that_cannot_be_pulled_is_an_infrastructure_failure() {
        let waiting = |reason: &str| {
            pod(json!({"phase": "Pending", "containerStatuses": [{
                "name": "trainer", "image": "archlab", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": reason, "message": "manifest unknown"}}}]}))
        };
        // The first failure is retried by the kubelet itself.
        assert_eq!(event(&waiting("ErrImagePull"), ""), None);
        assert_eq!(event(&waiting("ContainerCreating"), ""), None);
        let reason = infrastructure_reason(event(&waiting("ImagePullBackOff"), ""));
        assert_eq!(
            reason,
            "the trainer image could not be pulled (ImagePullBackOff): manifest unknown"
        );
    }

    #[test]
    fn a_pod_deleted_before_it_finished_is_an_infrastructure_failure() {
        let mut running = pod(json!({"phase": "Running"}));
        assert_eq!(event(&running, ""), None);
        running.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        let reason = infrastructure_reason(event(&running, ""));
        assert!(reason.contains("deleted"), "{reason}");
    }

    #[test]
    fn a_gone_pod_ends_as_its_final_state_says_or_as_deleted() {
        let gone = |last: Option<&Pod>| classify_gone(last, now(), &limits());
        assert_eq!(gone(None), PodOutcome::Deleted);
        // Force-deleted while still pending: nothing in the final state says more.
        assert_eq!(
            gone(Some(&pod(json!({"phase": "Pending"})))),
            PodOutcome::Deleted
        );
        // The final state of an evicted pod carries the mark the API server set.
        let mut evicted = pod(
            json!({"phase": "Failed", "conditions": [{"type": "DisruptionTarget",
            "status": "True", "reason": "EvictionByEvictionAPI",
            "message": "Eviction API: evicting"}],
            "containerStatuses": [container_status("trainer",
                json!({"terminated": {"exitCode": 143, "reason": "Error"}}))]}),
        );
        evicted.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        assert!(
            matches!(gone(Some(&evicted)), PodOutcome::Disrupted { reason, .. }
            if reason == "EvictionByEvictionAPI")
        );
        // A trainer that finished before the pod went still finished.
        let finished = terminated("Succeeded", 0, "Completed", RESULT);
        assert!(matches!(
            gone(Some(&finished)),
            PodOutcome::Succeeded { .. }
        ));
    }

    #[test]
    fn pending_and_running_pods_have_no_event() {
        for status in [
            json!({}),
            json!({"phase": "Pending"}),
            json!({"phase": "Running"}),
        ] {
            assert_eq!(event(&pod(status), ""), None);
        }
    }

    #[test]
    fn a_drained_or_preempted_pod_is_the_clusters_doing_even_when_its_trainer_exited_non_zero() {
        // A drain: the kubelet killed the trainer (143) after marking the pod a disruption target.
        let drained = pod(
            json!({"phase": "Failed", "conditions": [{"type": "DisruptionTarget",
            "status": "True", "reason": "EvictionByEvictionAPI",
            "message": "Eviction API: evicting"}],
            "containerStatuses": [container_status("trainer",
                json!({"terminated": {"exitCode": 143, "reason": "Error"}}))]}),
        );
        let reason = infrastructure_reason(event(&drained, ""));
        assert_eq!(
            reason,
            "the cluster took the pod away (EvictionByEvictionAPI): Eviction API: evicting"
        );
        // The Eviction API sets the condition and deletes the pod in one request: the pod is
        // seen deleted, still running, and the condition still says why.
        let mut evicted = pod(
            json!({"phase": "Running", "conditions": [{"type": "DisruptionTarget",
            "status": "True", "reason": "EvictionByEvictionAPI",
            "message": "Eviction API: evicting"}]}),
        );
        evicted.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        assert_eq!(infrastructure_reason(event(&evicted, "")), reason);
        // Karpenter or a scale-down deletes the pod: the trainer is killed before the phase says
        // anything.
        let mut deleted = terminated("Failed", 137, "Error", "");
        deleted.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        assert!(infrastructure_reason(event(&deleted, "")).contains("deleted"));
        // A condition that is not true says nothing.
        let not_yet = pod(
            json!({"phase": "Running", "conditions": [{"type": "DisruptionTarget",
            "status": "False"}]}),
        );
        assert_eq!(event(&not_yet, ""), None);
    }

    #[test]
    fn a_complete_result_survives_a_later_deletion() {
        let mut finished = terminated("Succeeded", 0, "Completed", RESULT);
        finished.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        assert!(matches!(event(&finished, ""), Some(Event::Finished(_))));
    }

    #[test]
    fn a_trainer_the_runtime_could_not_start_is_an_infrastructure_failure() {
        // containerd without the NVIDIA runtime: StartError, exit 128.
        let start_error = terminated(
            "Failed",
            128,
            "StartError",
            "failed to create containerd task: nvidia-container-cli: initialization error",
        );
        let reason = infrastructure_reason(event(&start_error, ""));
        assert!(
            reason.starts_with("the container runtime could not start the trainer (StartError)"),
            "{reason}"
        );
        assert!(reason.contains("nvidia-container-cli"), "{reason}");
        // Exit 128 from a process that did run is the program's own exit code.
        let ran = pod(
            json!({"phase": "Failed", "containerStatuses": [container_status("trainer",
            json!({"terminated": {"exitCode": 128, "reason": "Error",
                "startedAt": ago(30)}}))]}),
        );
        assert_eq!(
            crash_message(event(&ran, "")),
            "the trainer exited with code 128"
        );
        for reason in [
            "CreateContainerConfigError",
            "CreateContainerError",
            "CrashLoopBackOff",
        ] {
            let waiting = pod(json!({"phase": "Pending", "containerStatuses": [
                container_status("trainer", json!({"waiting": {"reason": reason,
                    "message": "secret \"data\" not found"}}))]}));
            let got = infrastructure_reason(event(&waiting, ""));
            assert!(got.contains(reason), "{got}");
        }
    }

    #[test]
    fn a_sidecar_neither_hides_a_finished_trainer_nor_counts_as_the_trainer() {
        // An injected proxy keeps the pod Running after the trainer exited 0.
        let with_sidecar = pod(json!({"phase": "Running", "containerStatuses": [
            container_status("istio-proxy", json!({"running": {"startedAt": ago(60)}})),
            container_status("trainer", json!({"terminated": {"exitCode": 0,
                "reason": "Completed", "message": RESULT}}))]}));
        assert!(matches!(event(&with_sidecar, ""), Some(Event::Finished(_))));
        assert!(
            still_active(&with_sidecar),
            "the pod must be deleted, or the sidecar holds its node"
        );
        // A sidecar that failed to pull is not the trainer's image.
        let sidecar_pulling = pod(json!({"phase": "Pending", "containerStatuses": [
            container_status("istio-proxy", json!({"waiting": {"reason": "ImagePullBackOff"}})),
            container_status("trainer", json!({"waiting": {"reason": "PodInitializing"}}))]}));
        assert_eq!(event(&sidecar_pulling, ""), None);
        assert!(!still_active(&terminated(
            "Succeeded",
            0,
            "Completed",
            RESULT
        )));
    }

    #[test]
    fn the_memory_limit_is_the_trainers_whichever_container_comes_first() {
        let value = json!({
            "metadata": {"name": "camp-e00001-a1"},
            "spec": {"containers": [
                {"name": "istio-proxy", "image": "proxy", "resources": {"limits": {"memory": "128Mi"}}},
                {"name": "trainer", "image": "archlab", "resources": {"limits": {"memory": "40Gi"}}}]},
            "status": {"phase": "Failed", "containerStatuses": [container_status("trainer",
                json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}}))]},
        });
        let pod: Pod = serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"));
        let message = crash_message(event(&pod, ""));
        assert!(message.contains("40Gi"), "{message}");
    }

    #[test]
    fn a_pod_held_by_a_scheduling_gate_is_queued_with_its_own_bound_never_unschedulable() {
        let gated = |seconds| {
            let value = json!({
                "metadata": {"name": "camp-e00001-a1", "creationTimestamp": ago(seconds)},
                "spec": {"containers": [{"name": "trainer", "image": "archlab"}],
                    "schedulingGates": [{"name": "kueue.x-k8s.io/admission"}]},
                "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled",
                    "status": "False", "reason": "SchedulingGated",
                    "message": "Scheduling is blocked due to non-empty scheduling gates",
                    "lastTransitionTime": ago(seconds)}]},
            });
            serde_json::from_value::<Pod>(value).unwrap_or_else(|e| panic!("{e}"))
        };
        // Past the wait for a node (600 s) but within the queue's bound (3600 s).
        assert_eq!(event(&gated(1200), ""), None);
        let reason = infrastructure_reason(event(&gated(3601), ""));
        assert_eq!(
            reason,
            "the pod stayed queued longer than qa.maxQueuedSeconds (scheduling gates: kueue.x-k8s.io/admission)"
        );
    }

    #[test]
    fn the_deadline_counts_from_the_pods_start_not_its_creation() {
        let running = |started_ago| {
            let value = json!({
                "metadata": {"name": "camp-e00001-a1", "creationTimestamp": ago(20_000)},
                "spec": {"containers": [{"name": "trainer", "image": "archlab"}]},
                "status": {"phase": "Running", "startTime": ago(started_ago),
                    "containerStatuses": [container_status("trainer",
                        json!({"running": {"startedAt": ago(started_ago)}}))]},
            });
            serde_json::from_value::<Pod>(value).unwrap_or_else(|e| panic!("{e}"))
        };
        // Created long ago (queued, then scheduled), started recently: no deadline yet.
        assert_eq!(event(&running(10), ""), None);
        assert_eq!(event(&running(7200 + 60), ""), None, "the kubelet's grace");
        let message = crash_message(event(&running(7200 + 61), ""));
        assert!(
            message.contains("7200 s (qa.maxAttemptSeconds)"),
            "{message}"
        );
    }

    #[test]
    fn an_ended_pod_is_past_its_ttl_from_when_its_trainer_finished() {
        let ended = |phase: &str, finished: i64| {
            pod(json!({"phase": phase, "startTime": ago(finished + 100),
                "containerStatuses": [container_status("trainer", json!({"terminated": {
                    "exitCode": 0, "reason": "Completed", "finishedAt": ago(finished)}}))]}))
        };
        let ttl = std::time::Duration::from_secs(3600);
        assert!(ended_longer_than(&ended("Succeeded", 3601), now(), ttl));
        assert!(!ended_longer_than(&ended("Succeeded", 3599), now(), ttl));
        assert!(ended_longer_than(&ended("Failed", 7200), now(), ttl));
        // Still running behind a sidecar, or never ended: never swept.
        assert!(!ended_longer_than(&ended("Running", 7200), now(), ttl));
        assert!(!ended_longer_than(
            &pod(json!({"phase": "Failed"})),
            now(),
            ttl
        ));
    }
}
