//! A trainer evicted from the real node through the Eviction subresource, as a drain or the
//! descheduler does it: the API server marks the pod a `DisruptionTarget` and deletes it with
//! its grace period; the kubelet sends the trainer SIGTERM, which saves the step it reached to
//! the checkpoint volume and exits 143 well before SIGKILL; the pod reaches its terminal phase
//! and is removed; the operator charges the cluster, not the program, and the rerun resumes at
//! the saved step.

use super::super::{Pace, kubectl, kubectl_ok, report};
use super::{NAMESPACE, NODE, experiment, on_the_node, watch_until_end};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The checkpoint volume: a PersistentVolume on the node's disk, as an administrator would
/// offer one (a Campaign may not name a hostPath itself), and the claim the Campaign names.
const VOLUME: &str = "e2e-kubelet-checkpoints";

fn checkpoint_volume() -> std::path::PathBuf {
    // Under /tmp, not the work directory: the trainer (user 65532) must reach it.
    let dir = std::env::temp_dir().join(VOLUME);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("checkpoint volume");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
        .expect("chmod the checkpoint volume");
    let _ = kubectl(
        &[
            "delete",
            "pv",
            VOLUME,
            "--ignore-not-found",
            "--timeout=60s",
        ],
        None,
    );
    let manifest = format!(
        "apiVersion: v1
kind: PersistentVolume
metadata: {{name: {VOLUME}}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ''
  claimRef: {{namespace: {NAMESPACE}, name: checkpoints}}
  hostPath: {{path: {}, type: Directory}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: checkpoints, namespace: {NAMESPACE}}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: ''
  volumeName: {VOLUME}
  resources: {{requests: {{storage: 1Gi}}}}
",
        dir.display()
    );
    kubectl_ok(&["apply", "-f", "-"], Some(&manifest));
    dir
}

/// Every state the pod `name` passes through, from a watch, until it is deleted.
fn watch_pod(name: &str) -> std::sync::mpsc::Receiver<(String, Value)> {
    let mut child = Command::new("kubectl")
        .args([
            "get",
            "pod",
            name,
            "-n",
            NAMESPACE,
            "--watch",
            "--output-watch-events",
            "-o",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get --watch");
    let stdout = child.stdout.take().expect("piped");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let events = serde_json::Deserializer::from_reader(std::io::BufReader::new(stdout))
            .into_iter::<Value>();
        for event in events.map_while(Result::ok) {
            let kind = event["type"].as_str().unwrap_or_default().to_string();
            let deleted = kind == "DELETED";
            if sender.send((kind, event["object"].clone())).is_err() || deleted {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    });
    receiver
}

/// Waits until the trainer in pod `name` has reported a training step through the kubelet.
pub fn wait_until_training(name: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let log = kubectl(&["logs", "-n", NAMESPACE, name], None);
        if log.status.success() && String::from_utf8_lossy(&log.stdout).contains("\"step\":") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pod {name} did not train within {limit:.0?}: {}",
            String::from_utf8_lossy(&log.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn an_evicted_trainer_saves_its_step_and_the_rerun_resumes(pace: Pace) {
    let volume = checkpoint_volume();
    // Long enough (about 20 s here) that the eviction lands mid-training.
    let steps = (Duration::from_secs(20).as_secs_f64() / pace.per_step.as_secs_f64().max(1e-4))
        .clamp(2_000.0, 50_000.0) as u32;
    let manifest = on_the_node(
        "evict",
        1,
        "image: ghcr.io/archlab/archlab:0.1.0-cpu, checkpoints: ckpt, \
         volumes: [{name: ckpt, mountPath: /checkpoints, readOnly: false, \
         persistentVolumeClaim: {claimName: checkpoints}}], \
         resources: {requests: {cpu: 500m, memory: 256Mi}, limits: {memory: 1Gi}}",
    )
    .replace("steps: 40", &format!("steps: {steps}"))
    .replace("progress_every: 5", "progress_every: 50");
    kubectl_ok(&["apply", "-n", NAMESPACE, "-f", "-"], Some(&manifest));
    let pod = "evict-e00001-a1";
    let limit = pace.campaign(2, steps, 1);
    let deadline = Instant::now() + limit;
    while kubectl(&["get", "pod", pod, "-n", NAMESPACE], None)
        .status
        .code()
        != Some(0)
    {
        assert!(Instant::now() < deadline, "no pod {pod}");
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_until_training(pod, limit);
    let states = watch_pod(pod);
    let eviction = format!(
        r#"{{"apiVersion":"policy/v1","kind":"Eviction","metadata":{{"name":"{pod}","namespace":"{NAMESPACE}"}}}}"#
    );
    kubectl_ok(
        &[
            "create",
            "--raw",
            &format!("/api/v1/namespaces/{NAMESPACE}/pods/{pod}/eviction"),
            "-f",
            "-",
        ],
        Some(&eviction),
    );

    // What the pod went through, as the watch saw it.
    let mut seen = Vec::new();
    while let Ok((kind, object)) = states.recv_timeout(Duration::from_secs(120)) {
        let deleted = kind == "DELETED";
        seen.push((kind, object));
        if deleted {
            break;
        }
    }
    let described: Vec<String> = seen
        .iter()
        .map(|(kind, pod)| format!("{kind} {} {}", pod["status"]["phase"], pod["status"]))
        .collect();
    let described = described.join("\n");
    assert_eq!(
        seen.last().map(|(kind, _)| kind.as_str()),
        Some("DELETED"),
        "the evicted pod is removed:\n{described}"
    );
    let marked = seen
        .iter()
        .map(|(_, pod)| pod)
        .find(|pod| !pod["metadata"]["deletionTimestamp"].is_null())
        .unwrap_or_else(|| panic!("never seen deleting:\n{described}"));
    assert_eq!(marked["spec"]["nodeName"], NODE);
    assert_eq!(
        marked["metadata"]["deletionGracePeriodSeconds"], 30,
        "deleted with the pod's grace period:\n{described}"
    );
    let disruption = marked["status"]["conditions"]
        .as_array()
        .and_then(|conditions| {
            conditions
                .iter()
                .find(|c| c["type"] == "DisruptionTarget" && c["status"] == "True")
        })
        .unwrap_or_else(|| panic!("no DisruptionTarget condition:\n{described}"));
    assert_eq!(
        disruption["reason"], "EvictionByEvictionAPI",
        "{disruption}"
    );
    // The kubelet's terminal phase before the pod goes, with the trainer's own exit status:
    // 143 (it handled SIGTERM), not 137 (SIGKILL when the grace period ran out).
    let terminal = seen
        .iter()
        .map(|(_, pod)| pod)
        .find(|pod| pod["status"]["phase"] == "Failed")
        .unwrap_or_else(|| panic!("no terminal phase before deletion:\n{described}"));
    let terminated = &terminal["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(terminated["exitCode"], 143, "{terminated}");
    let message = terminated["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("stopped by SIGTERM after step"),
        "the termination message says where it stopped: {message}"
    );
    let saved = std::fs::read_dir(volume.join("evict/evict-e00001/a1/trials/0"))
        .map(|entries| entries.flatten().count())
        .unwrap_or(0);
    assert!(
        saved > 0 || volume.join("evict/evict-e00001/a1/model.json").exists(),
        "the stopped step is on the volume: {message}"
    );

    // The cluster's doing: no revision, one rerun, and the rerun resumed at the saved step.
    let (status, seen) = watch_until_end(NAMESPACE, "evict", limit);
    eprintln!("evict campaign: {}", status["phase"]);
    let evicted = experiment("evict-e00001");
    let experiment_status = &evicted["status"];
    assert_eq!(
        experiment_status["phase"], "succeeded",
        "{experiment_status}"
    );
    assert_eq!(
        experiment_status["attempts"].as_array().map_or(0, Vec::len),
        1,
        "not charged to the program: {experiment_status}"
    );
    // The operator watches its pods, so it sees the mark the Eviction API set even when the
    // trainer exits within a second of SIGTERM and the pod is gone at once.
    let failures = experiment_status["infrastructureFailures"].to_string();
    assert!(
        failures.contains("the cluster took the pod away (EvictionByEvictionAPI)"),
        "{failures}"
    );
    let log = seen.log.unwrap_or_default();
    let step = message
        .split("stopped by SIGTERM after step ")
        .nth(1)
        .and_then(|tail| tail.split(' ').next())
        .unwrap_or("?");
    assert!(
        log.lines()
            .any(|line| line.contains(&format!("resuming trial 0 at step {step} "))),
        "the rerun resumes at step {step}:\n{}",
        log.lines().take(5).collect::<Vec<_>>().join("\n")
    );
    let events = kubectl_ok(&["describe", "exp", "evict-e00001", "-n", NAMESPACE], None);
    assert!(events.contains("TrainerDisrupted"), "{events}");
    report(&format!(
        "e2e eviction: the trainer exited {} at {}; SIGKILL was due at {}: {message}",
        terminated["exitCode"], terminated["finishedAt"], marked["metadata"]["deletionTimestamp"]
    ));
}
