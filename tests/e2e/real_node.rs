//! Trainer pods on a real kubelet (`scripts/test-node.sh`): containers started by containerd
//! under the pod's restricted security context (read-only root, user 65532), their logs served
//! by the kubelet through the API server, an out-of-memory kill by the kernel's memory cgroup
//! that the kubelet reports as `OOMKilled`, an image the node does not have
//! (`ErrImageNeverPull`) and an image without the trainer (`StartError`, exit 128) classified as
//! the cluster's failure, not the program's, and an eviction
//! through the Eviction subresource (`eviction.rs`), and the node lost (`node_loss.rs`).

#[path = "deployed.rs"]
mod deployed;
#[path = "eviction.rs"]
mod eviction;
#[path = "node_loss.rs"]
mod node_loss;

pub use deployed::the_charts_operator_runs_on_the_node;

use super::{Pace, items, kubectl, kubectl_ok, namespace, operator};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// The node `scripts/test-node.sh start` registers, and the label and taint it carries.
const NODE: &str = "archlab-node-0";
const NAMESPACE: &str = "e2e-kubelet";

/// Whether the real node is up. Absent: the scenario is skipped, or fails under
/// `ARCHLAB_REQUIRE_NODE=1` (CI).
pub fn node_available() -> bool {
    let ready = kubectl(
        &[
            "get",
            "node",
            NODE,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
        None,
    );
    let up = ready.status.success() && String::from_utf8_lossy(&ready.stdout) == "True";
    if !up && std::env::var("ARCHLAB_REQUIRE_NODE").as_deref() == Ok("1") {
        panic!(
            "ARCHLAB_REQUIRE_NODE=1 but node {NODE} is not Ready (scripts/test-node.sh start): {}",
            String::from_utf8_lossy(&ready.stderr)
        );
    }
    up
}

/// The tiny campaign `name` with `trainer` (YAML flow mapping entries) for pods sent to the real
/// node, `experiments` of them, nothing promoted.
fn on_the_node(name: &str, experiments: u32, trainer: &str) -> String {
    super::campaign(name, 40)
        .replace(
            "trainer: {device: cpu, image: archlab:e2e}",
            &format!(
                "trainer: {{device: cpu, imagePullPolicy: Never, \
                 nodeSelector: {{archlab.dev/test-node: kubelet}}, \
                 tolerations: [{{key: archlab.dev/test-node, operator: Exists, effect: NoSchedule}}], \
                 {trainer}}}"
            ),
        )
        .replace("promote: 1", "promote: 0")
        .replace(
            "maxExperiments: 18",
            &format!("maxExperiments: {experiments}"),
        )
}

/// What was seen of the campaign's pods while it ran (the operator deletes them when it ends):
/// each pod's last state, and the log of the first that succeeded, read while it existed.
#[derive(Default)]
struct Seen {
    pods: BTreeMap<String, Value>,
    log: Option<String>,
}

/// Waits for the campaign `name` to end, watching its pods; its status and what was seen.
fn watch_until_end(namespace: &str, name: &str, limit: Duration) -> (Value, Seen) {
    let deadline = Instant::now() + limit;
    let mut seen = Seen::default();
    loop {
        for pod in items("pods", namespace) {
            if pod["metadata"]["labels"]["archlab.dev/campaign"].as_str() != Some(name) {
                continue;
            }
            let pod_name = pod["metadata"]["name"].as_str().unwrap_or("?").to_string();
            if seen.log.is_none() && pod["status"]["phase"] == "Succeeded" {
                let log = kubectl(&["logs", "-n", namespace, &pod_name], None);
                if log.status.success() {
                    seen.log = Some(String::from_utf8_lossy(&log.stdout).into_owned());
                }
            }
            seen.pods.insert(pod_name, pod);
        }
        let campaign = kubectl(&["get", "camp", name, "-n", namespace, "-o", "json"], None);
        let value: Value = serde_json::from_slice(&campaign.stdout).unwrap_or(Value::Null);
        if value["status"]["phase"] == "Completed" || value["status"]["phase"] == "Failed" {
            return (value["status"].clone(), seen);
        }
        assert!(
            Instant::now() < deadline,
            "campaign {name} did not end within {limit:.0?}: {}",
            value["status"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The experiment `name`, with its status.
fn experiment(name: &str) -> Value {
    serde_json::from_str(&kubectl_ok(
        &["get", "exp", name, "-n", NAMESPACE, "-o", "json"],
        None,
    ))
    .expect("experiment json")
}

/// The events about the object `name`, as `reason: message` lines, with their source.
fn events_of(name: &str) -> String {
    kubectl_ok(
        &[
            "get",
            "events",
            "-n",
            NAMESPACE,
            "--field-selector",
            &format!("involvedObject.name={name}"),
            "-o",
            "custom-columns=REASON:.reason,FROM:.source.component,MESSAGE:.message",
        ],
        None,
    )
}

pub fn trainer_pods_on_a_real_kubelet(work: &Path, pace: Pace) {
    if !node_available() {
        eprintln!(
            "scenario real kubelet: skipped, node {NODE} is not up (scripts/test-node.sh start)"
        );
        return;
    }
    namespace(NAMESPACE);
    let _operator = operator(work, NAMESPACE, "kubelet", false);
    let campaigns = [
        on_the_node(
            "real",
            4,
            // The CPU trainer image as docker/trainer.Dockerfile tags it (test-node.sh imports
            // it under that name).
            "image: ghcr.io/archlab/archlab:0.1.0-cpu, \
             resources: {requests: {cpu: 500m, memory: 256Mi}, limits: {memory: 1Gi}}",
        ),
        // A model whose activations (batch 64 × 1024 positions × width 256, a few hundred MB)
        // cannot fit the 96Mi the container may use: the kernel kills it, the kubelet says so.
        on_the_node(
            "oom",
            1,
            "image: ghcr.io/archlab/archlab:0.1.0-cpu, \
             resources: {requests: {cpu: 100m, memory: 96Mi}, limits: {memory: 96Mi}}",
        )
        .replace("d_model: 16", "d_model: 256")
        .replace(
            "vocab_size: 16, seq_len: 16",
            "vocab_size: 256, seq_len: 1024",
        )
        .replace("batch_size: 8", "batch_size: 64"),
        on_the_node(
            "absent",
            1,
            "image: archlab.test/absent:0, resources: {requests: {cpu: 100m, memory: 64Mi}}",
        ),
    ];
    // One at a time: the operator deletes a campaign's pods when it ends, so each is watched
    // from its start.
    let apply = |manifest: &str| kubectl_ok(&["apply", "-n", NAMESPACE, "-f", "-"], Some(manifest));

    // Real containers: every pod ran on the kubelet's node, its container started by
    // containerd, under the restricted context, and the campaign completed from their results.
    apply(&campaigns[0]);
    let (status, seen) = watch_until_end(NAMESPACE, "real", pace.campaign(4, 40, 2));
    assert_eq!(status["phase"], "Completed", "{status}");
    assert!(!seen.pods.is_empty(), "the campaign made pods");
    for (name, pod) in &seen.pods {
        assert_eq!(pod["spec"]["nodeName"], NODE, "{name}");
        let container = &pod["status"]["containerStatuses"][0];
        assert!(
            container["containerID"]
                .as_str()
                .is_some_and(|id| id.starts_with("containerd://")),
            "{name}: {container}"
        );
        assert_eq!(
            pod["status"]["phase"], "Succeeded",
            "{name}: {}",
            pod["status"]
        );
        assert_eq!(
            container["state"]["terminated"]["reason"], "Completed",
            "{name}: {container}"
        );
    }
    let first = seen.pods.keys().next().expect("a pod");
    // The log came from the kubelet (the API server proxies it from the node's port).
    let log = seen.log.unwrap_or_default();
    assert!(log.contains("step"), "a trainer's log:\n{log}");
    let events = events_of(first);
    assert!(
        events.contains("Started") && events.contains("kubelet"),
        "the kubelet started {first}:\n{events}"
    );
    // Out of memory: the kernel killed the trainer at its limit; the kubelet's reason, charged
    // to the program.
    apply(&campaigns[1]);
    let (status, seen) = watch_until_end(NAMESPACE, "oom", pace.campaign(3, 40, 1));
    eprintln!("oom campaign: {}", status["phase"]);
    let oom = experiment("oom-e00001");
    let outcome = &oom["status"]["attempts"][0]["outcome"];
    assert_eq!(outcome["kind"], "crashed", "{}", oom["status"]);
    let message = outcome["message"].as_str().unwrap_or_default();
    assert!(message.contains("OOMKilled at the 96Mi limit"), "{message}");
    let killed = seen.pods.values().next().expect("an oom pod");
    let terminated = &killed["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(terminated["reason"], "OOMKilled", "{terminated}");
    assert_eq!(terminated["exitCode"], 137, "{terminated}");
    let events = kubectl_ok(&["describe", "exp", "oom-e00001", "-n", NAMESPACE], None);
    assert!(events.contains("TrainerOOMKilled"), "{events}");

    // No such image on the node and a policy that forbids pulling: the kubelet's
    // ErrImageNeverPull is the cluster's failure (rerun once, then given up on), no revision.
    apply(&campaigns[2]);
    let (status, _) = watch_until_end(NAMESPACE, "absent", pace.campaign(2, 40, 1));
    eprintln!("absent campaign: {}", status["phase"]);
    let absent = experiment("absent-e00001");
    let absent_status = &absent["status"];
    assert_eq!(
        absent_status["attempts"].as_array().map_or(0, Vec::len),
        1,
        "not charged to the program: {absent_status}"
    );
    let failures = absent_status["infrastructureFailures"].to_string();
    assert!(failures.contains("ErrImageNeverPull"), "{failures}");
    let kubelet_said = kubectl_ok(
        &[
            "get",
            "events",
            "-n",
            NAMESPACE,
            "--field-selector",
            "reason=ErrImageNeverPull",
            "-o",
            "custom-columns=OBJECT:.involvedObject.name,FROM:.source.component,MESSAGE:.message",
        ],
        None,
    );
    assert!(
        kubelet_said.contains("absent-e00001") && kubelet_said.contains("kubelet"),
        "{kubelet_said}"
    );
    let events = kubectl_ok(&["describe", "exp", "absent-e00001", "-n", NAMESPACE], None);
    assert!(events.contains("TrainerImagePullFailed"), "{events}");

    // An image without the trainer (the node's pause image): the runtime cannot start the
    // container, which the kubelet reports as StartError, exit 128, as it does for a node
    // without the NVIDIA runtime. The cluster's failure, not the program's.
    apply(&on_the_node(
        "nostart",
        1,
        "image: registry.k8s.io/pause:3.10.2, resources: {requests: {cpu: 100m, memory: 64Mi}}",
    ));
    let (status, seen) = watch_until_end(NAMESPACE, "nostart", pace.campaign(2, 40, 1));
    eprintln!("nostart campaign: {}", status["phase"]);
    let never_ran = seen.pods.values().next().expect("a nostart pod");
    let terminated = &never_ran["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(terminated["reason"], "StartError", "{terminated}");
    assert_eq!(terminated["exitCode"], 128, "{terminated}");
    let nostart = experiment("nostart-e00001");
    let nostart_status = &nostart["status"];
    assert_eq!(
        nostart_status["attempts"].as_array().map_or(0, Vec::len),
        1,
        "not charged to the program: {nostart_status}"
    );
    let failures = nostart_status["infrastructureFailures"].to_string();
    assert!(
        failures.contains("the container runtime could not start the trainer (StartError)")
            && failures.contains("executable file not found"),
        "{failures}"
    );

    a_long_error_fits_the_kubelets_termination_message(pace);

    eviction::an_evicted_trainer_saves_its_step_and_the_rerun_resumes(pace);
    node_loss::a_lost_node_is_the_clusters_failure_and_the_rerun_runs_when_it_returns(pace);
}

/// A trainer error longer than the 4096 bytes the kubelet keeps of a termination message (it
/// keeps the last 4096, which would be the end of a JSON line), in multibyte text: the message
/// the kubelet reports is a whole result line within the limit, its error cut in the middle,
/// and the operator charges the program with the trainer's own words.
fn a_long_error_fits_the_kubelets_termination_message(pace: Pace) {
    // A data file that is not there, under a path of about 4,000 bytes of CJK and Cyrillic.
    let path = format!(
        "/data/{}/{}/корпус.txt",
        vec!["数据".repeat(40); 16].join("/"),
        "数据".repeat(20)
    );
    // Within the 4096 bytes a config path may have; its error line is longer.
    assert!(path.len() > 3_990 && path.len() <= 4_096, "{}", path.len());
    let campaign = on_the_node(
        "longerror",
        1,
        "image: ghcr.io/archlab/archlab:0.1.0-cpu, \
         resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {memory: 1Gi}}",
    )
    .replacen(
        "data: {vocab_size: 16, seq_len: 16, tasks: [{kind: mqar, num_kv_pairs: 2}]}",
        &format!(
            "data: {{vocab_size: 256, seq_len: 16, tasks: [{{kind: text, paths: ['{path}']}}]}}"
        ),
        1,
    );
    kubectl_ok(&["apply", "-n", NAMESPACE, "-f", "-"], Some(&campaign));
    let (status, seen) = watch_until_end(NAMESPACE, "longerror", pace.campaign(3, 40, 1));
    eprintln!("longerror campaign: {}", status["phase"]);
    let first = seen.pods.values().next().expect("a longerror pod");
    let terminated = &first["status"]["containerStatuses"][0]["state"]["terminated"];
    let message = terminated["message"].as_str().unwrap_or_default();
    assert!(
        message.len() <= 4096 && message.len() > 4000,
        "{} bytes: {message}",
        message.len()
    );
    let result: Value = serde_json::from_str(message).unwrap_or_else(|e| {
        panic!("the termination message is a whole JSON line ({e}): {message}")
    });
    let error = result["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("reading text file /data/数据") && error.contains(" … "),
        "{error}"
    );
    let experiment = experiment("longerror-e00001");
    let outcome = &experiment["status"]["attempts"][0]["outcome"];
    assert_eq!(outcome["kind"], "crashed", "{}", experiment["status"]);
    let charged = outcome["message"].as_str().unwrap_or_default();
    assert!(
        charged.contains("/корпус.txt: No such file or directory"),
        "{charged}"
    );
}
