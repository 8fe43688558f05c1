//! Every way a trainer pod can end, read from its status, and the lifecycle event each one is.
//! Pure: tested on pod objects without a cluster. The program is charged only for what the
//! program did (a crash, running out of memory, its deadline); what the cluster did to the pod
//! (eviction, a lost node, no node to run on, an image that cannot be pulled, a deletion by
//! someone) is an infrastructure failure, which the core retries without a revision.

use crate::core::lifecycle::Event;
use crate::core::trainer_output;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use k8s_openapi::jiff::Timestamp;

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
    /// `activeDeadlineSeconds` passed.
    DeadlineExceeded,
    Evicted {
        message: String,
    },
    NodeLost {
        message: String,
    },
    /// No node could take it for longer than the limit: the scheduler's message says why.
    Unschedulable {
        message: String,
    },
    ImagePullFailed {
        reason: String,
        message: String,
    },
    /// Deleted (by someone, or its node's garbage collection) before it finished.
    Deleted,
}

/// Container waiting reasons that mean the image will not come.
const IMAGE_PULL_REASONS: [&str; 5] = [
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
];

/// Classifies `pod` at time `now`; `max_pending_seconds` bounds the wait for a node.
pub fn classify(pod: &Pod, now: Timestamp, max_pending_seconds: u64) -> PodOutcome {
    let Some(status) = &pod.status else {
        return deleted_or_running(pod);
    };
    let phase = status.phase.as_deref().unwrap_or("Pending");
    let reason = status.reason.clone().unwrap_or_default();
    let message = status.message.clone().unwrap_or_default();
    let terminated = trainer_terminated(pod);
    match phase {
        "Succeeded" => {
            return PodOutcome::Succeeded {
                message: terminated
                    .and_then(|t| t.message.clone())
                    .unwrap_or_default(),
            };
        }
        "Failed" => {
            if reason == "DeadlineExceeded" {
                return PodOutcome::DeadlineExceeded;
            }
            if reason == "Evicted" || reason == "Preempting" || reason == "Terminated" {
                return PodOutcome::Evicted {
                    message: non_empty(message, "the pod was evicted"),
                };
            }
            if reason == "NodeLost"
                || reason == "UnexpectedAdmissionError"
                || reason == "NodeShutdown"
            {
                return PodOutcome::NodeLost {
                    message: non_empty(message, "the node running the pod was lost"),
                };
            }
            if let Some(t) = terminated {
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
            return PodOutcome::NodeLost {
                message: non_empty(message, "the pod failed before its trainer ran"),
            };
        }
        _ => {}
    }
    if phase == "Unknown" || reason == "NodeLost" {
        return PodOutcome::NodeLost {
            message: non_empty(message, "the node running the pod stopped reporting"),
        };
    }
    if let Some(t) = terminated
        && t.reason.as_deref() == Some("OOMKilled")
    {
        return PodOutcome::OomKilled {
            limit: memory_limit(pod),
        };
    }
    // Waiting containers: an image that will not come.
    for container in status.container_statuses.iter().flatten() {
        if let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let why = waiting.reason.clone().unwrap_or_default();
            if IMAGE_PULL_REASONS.contains(&why.as_str()) && why != "ErrImagePull" {
                return PodOutcome::ImagePullFailed {
                    reason: why,
                    message: waiting.message.clone().unwrap_or_default(),
                };
            }
        }
    }
    // Not scheduled for too long.
    let unschedulable = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    });
    if let Some(condition) = unschedulable {
        let since = condition
            .last_transition_time
            .as_ref()
            .map(|t| t.0)
            .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0));
        let waited = since.map_or(0, |since| (now.as_second() - since.as_second()).max(0));
        if waited as u64 > max_pending_seconds {
            return PodOutcome::Unschedulable {
                message: non_empty(
                    condition.message.clone().unwrap_or_default(),
                    "no node can run the pod",
                ),
            };
        }
    }
    deleted_or_running(pod)
}

fn deleted_or_running(pod: &Pod) -> PodOutcome {
    if pod.metadata.deletion_timestamp.is_some() {
        PodOutcome::Deleted
    } else {
        PodOutcome::Running
    }
}

fn trainer_terminated(pod: &Pod) -> Option<&ContainerStateTerminated> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == "trainer")?
        .state
        .as_ref()?
        .terminated
        .as_ref()
}

fn memory_limit(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()?
        .containers
        .first()?
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
        PodOutcome::DeadlineExceeded => Some(Event::Crashed {
            message: format!(
                "the trainer ran past its deadline of {max_attempt_seconds} s (qa.maxAttemptSeconds)"
            ),
            log_tail: log_tail.to_string(),
        }),
        PodOutcome::Evicted { message } => {
            infrastructure(format!("the pod was evicted: {message}"))
        }
        PodOutcome::NodeLost { message } => infrastructure(format!("the node was lost: {message}")),
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

    fn event(pod: &Pod, log: &str) -> Option<Event> {
        to_event(&classify(pod, now(), 600), log, 7200)
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
    fn pending_and_running_pods_have_no_event() {
        for status in [
            json!({}),
            json!({"phase": "Pending"}),
            json!({"phase": "Running"}),
        ] {
            assert_eq!(event(&pod(status), ""), None);
        }
    }
}
