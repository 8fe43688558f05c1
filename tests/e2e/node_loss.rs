//! The real node lost mid-training, as the control plane sees it: its kubelet dies (the
//! container runs on, unseen), the node lifecycle controller marks the node `Unknown` once its
//! heartbeats stop and taints it `unreachable:NoExecute`; the taint eviction controller deletes
//! the trainer pod past the toleration the Campaign gave it, marking it a `DisruptionTarget`.
//! The operator charges the cluster, not the program; when the kubelet returns it confirms the
//! deletion and the rerun trains on the node.

use super::super::{Pace, ROOT, kubectl, kubectl_ok, report};
use super::{NAMESPACE, NODE, experiment, on_the_node, watch_until_end};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn test_node(command: &str) {
    let output = Command::new("bash")
        .arg(Path::new(ROOT).join("scripts/test-node.sh"))
        .arg(command)
        .output()
        .expect("test-node.sh runs");
    assert!(
        output.status.success(),
        "test-node.sh {command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn node_ready_condition() -> Value {
    let node: Value = serde_json::from_str(&kubectl_ok(&["get", "node", NODE, "-o", "json"], None))
        .expect("node json");
    node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits until the pod `name` carries a true `DisruptionTarget` condition; the pod then.
fn wait_for_disruption(name: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let pod = kubectl(&["get", "pod", name, "-n", NAMESPACE, "-o", "json"], None);
        let value: Value = serde_json::from_slice(&pod.stdout).unwrap_or(Value::Null);
        let marked = value["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "DisruptionTarget" && c["status"] == "True");
        if marked {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "pod {name} was not taken away within {limit:.0?}; node Ready: {}",
            node_ready_condition()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

pub fn a_lost_node_is_the_clusters_failure_and_the_rerun_runs_when_it_returns(pace: Pace) {
    // Long enough (about 10 s here) that the kubelet dies mid-training.
    let steps = (Duration::from_secs(10).as_secs_f64() / pace.per_step.as_secs_f64().max(1e-4))
        .clamp(2_000.0, 50_000.0) as u32;
    // Tolerating an unreachable node for a second, not the 300 s admission would give: a
    // training job fails over fast rather than wait for a node that may not return.
    let manifest = on_the_node(
        "lost",
        1,
        "image: ghcr.io/archlab/archlab:0.1.0-cpu, \
         resources: {requests: {cpu: 500m, memory: 256Mi}, limits: {memory: 1Gi}}",
    )
    .replace(
        "tolerations: [{key: archlab.dev/test-node, operator: Exists, effect: NoSchedule}]",
        "tolerations: [{key: archlab.dev/test-node, operator: Exists, effect: NoSchedule}, \
         {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, \
         tolerationSeconds: 1}]",
    )
    .replace("steps: 40", &format!("steps: {steps}"))
    .replace("progress_every: 5", "progress_every: 50");
    assert!(manifest.contains("tolerationSeconds: 1"), "{manifest}");
    kubectl_ok(&["apply", "-n", NAMESPACE, "-f", "-"], Some(&manifest));
    let pod = "lost-e00001-a1";
    super::eviction::wait_until_training(pod, pace.campaign(1, steps, 1));

    let killed = Instant::now();
    test_node("kubelet-stop");
    // The node monitor's grace (30 s in the test cluster), its period, the toleration.
    let marked = wait_for_disruption(pod, Duration::from_secs(120));
    let detected = killed.elapsed();
    let ready = node_ready_condition();
    assert_eq!(ready["status"], "Unknown", "{ready}");
    assert_eq!(ready["reason"], "NodeStatusUnknown", "{ready}");
    let disruption = marked["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "DisruptionTarget")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(
        disruption["reason"], "DeletionByTaintManager",
        "{disruption}"
    );
    // Without its kubelet the pod cannot be confirmed gone; the operator waits for that before
    // the rerun, so no two trainers of one attempt ever run. The kubelet returns.
    test_node("kubelet-start");

    let (status, _) = watch_until_end(NAMESPACE, "lost", pace.campaign(2, steps, 1));
    assert_eq!(status["phase"], "Completed", "{status}");
    let lost = experiment("lost-e00001");
    let experiment_status = &lost["status"];
    assert_eq!(
        experiment_status["attempts"].as_array().map_or(0, Vec::len),
        1,
        "not charged to the program: {experiment_status}"
    );
    let failures = experiment_status["infrastructureFailures"].to_string();
    assert!(
        failures.contains("the cluster took the pod away (DeletionByTaintManager)"),
        "{failures}"
    );
    report(&format!(
        "e2e node loss: kubelet killed; pod taken away {:.0} s later (node {}: {}); the rerun completed",
        detected.as_secs_f64(),
        ready["status"].as_str().unwrap_or("?"),
        ready["message"].as_str().unwrap_or("?")
    ));
}
