//! The operator as users run it: the chart's Deployment, its container started by the real
//! kubelet from the operator image, authenticated by its ServiceAccount's projected token,
//! holding the leader Lease, running a campaign whose trainer pods get the chart's defaults.
//!
//! The test cluster has no kube-proxy, so a pod cannot reach the API server's Service; the
//! operator pod uses the node's network (`hostNetwork`) and `extraEnv` points the in-cluster
//! config at the address the API server listens on, as on a cluster without a Service proxy.

use super::{NODE, Seen, watch_until_end};
use crate::{Pace, kubectl, kubectl_ok, namespace};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const NAMESPACE: &str = "e2e-deployed";
const RELEASE: &str = "deployed";
/// The chart's full name for this release, which names the Deployment and the Lease's holder.
const DEPLOYMENT: &str = "deployed-archlab";

pub fn the_charts_operator_runs_on_the_node(work: &Path, pace: Pace) {
    if !super::node_available() {
        eprintln!("scenario deployed operator: skipped, node {NODE} is not up");
        return;
    }
    let Some(helm) = crate::tool("helm") else {
        return;
    };
    let uninstall = || {
        let _ = Command::new(&helm)
            .args(["uninstall", RELEASE, "-n", NAMESPACE, "--wait"])
            .output();
    };
    uninstall();
    namespace(NAMESPACE);
    // The node's network is a host namespace, which Pod Security's baseline and restricted
    // profiles forbid: this namespace enforces none (it still warns). The trainer pods keep
    // their restricted context; the real-kubelet scenario runs them under enforcement.
    kubectl_ok(
        &[
            "label",
            "namespace",
            NAMESPACE,
            "--overwrite",
            "pod-security.kubernetes.io/enforce=privileged",
        ],
        None,
    );
    let server = kubectl_ok(
        &[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ],
        None,
    );
    let (host, port) = server
        .trim()
        .trim_start_matches("https://")
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("an API server address with a port: {server}"));
    let on_the_node = "nodeSelector: {archlab.dev/test-node: kubelet}\n  \
        tolerations: [{key: archlab.dev/test-node, operator: Exists, effect: NoSchedule}]";
    let values = format!(
        "replicaCount: 1\n\
         image: {{pullPolicy: Never}}\n\
         hostNetwork: true\n\
         extraEnv:\n\
         - {{name: KUBERNETES_SERVICE_HOST, value: '{host}'}}\n\
         - {{name: KUBERNETES_SERVICE_PORT, value: '{port}'}}\n\
         metrics: {{port: 18081}}\n\
         pollIntervalSeconds: 1\n\
         nodeSelector: {{archlab.dev/test-node: kubelet}}\n\
         tolerations: [{{key: archlab.dev/test-node, operator: Exists, effect: NoSchedule}}]\n\
         trainer:\n  \
         image: {{repository: ghcr.io/archlab/archlab, tag: 0.1.0-cpu, pullPolicy: Never}}\n  \
         requests: {{cpu: 100m, memory: 256Mi}}\n  \
         {on_the_node}\n"
    );
    let values_path = work.join("deployed-values.yaml");
    std::fs::write(&values_path, &values).expect("write the values");
    let chart = Path::new(crate::ROOT).join("charts/archlab");
    let install = Command::new(&helm)
        .args(["install", RELEASE])
        .arg(&chart)
        .args(["-n", NAMESPACE, "--skip-crds", "-f"])
        .arg(&values_path)
        .output()
        .expect("helm runs");
    assert!(
        install.status.success(),
        "helm install: {}",
        String::from_utf8_lossy(&install.stderr)
    );
    let rollout = kubectl(
        &[
            "rollout",
            "status",
            &format!("deployment/{DEPLOYMENT}"),
            "-n",
            NAMESPACE,
            "--timeout=120s",
        ],
        None,
    );
    if !rollout.status.success() {
        let described = kubectl(&["describe", "pods", "-n", NAMESPACE], None);
        let logs = kubectl(
            &["logs", "-n", NAMESPACE, &format!("deployment/{DEPLOYMENT}")],
            None,
        );
        panic!(
            "the chart's operator did not become ready: {}\n{}\n{}",
            String::from_utf8_lossy(&rollout.stderr),
            String::from_utf8_lossy(&described.stdout),
            String::from_utf8_lossy(&logs.stdout)
        );
    }
    let operator_pod = operator_pod();
    let operator_name = operator_pod["metadata"]["name"]
        .as_str()
        .expect("a pod name")
        .to_string();
    assert_eq!(operator_pod["spec"]["nodeName"], NODE, "{operator_pod}");
    let container = &operator_pod["status"]["containerStatuses"][0];
    assert!(
        container["containerID"]
            .as_str()
            .is_some_and(|id| id.starts_with("containerd://")),
        "{container}"
    );
    assert_eq!(
        container["image"], "ghcr.io/archlab/archlab-operator:0.1.0",
        "{container}"
    );
    // The Lease names the pod the kubelet started: the operator authenticated with its
    // ServiceAccount's projected token and won the election.
    let holder = wait_for_holder(Duration::from_secs(60));
    assert_eq!(holder, operator_name);

    // A campaign with no trainer settings but the device: the chart's defaults put its pods on
    // the node, from the CPU image.
    let campaign = crate::campaign("deployed", 40)
        .replace(
            "trainer: {device: cpu, image: archlab:e2e}",
            "trainer: {device: cpu}",
        )
        .replace("promote: 1", "promote: 0")
        .replace("maxExperiments: 18", "maxExperiments: 3");
    kubectl_ok(&["apply", "-n", NAMESPACE, "-f", "-"], Some(&campaign));
    let (status, seen) = watch_until_end(NAMESPACE, "deployed", pace.campaign(3, 40, 2));
    assert_eq!(status["phase"], "Completed", "{status}");
    assert_trainers_ran_on_the_node(&seen);
    // The operator's own log, served by the kubelet, tells of the campaign.
    let log = kubectl_ok(&["logs", "-n", NAMESPACE, &operator_name], None);
    assert!(log.contains("deployed"), "the operator's log:\n{log}");
    crate::report(&format!(
        "e2e deployed operator: pod {operator_name} on {NODE} led and completed a campaign of {} trainer pods",
        seen.pods.len()
    ));
    uninstall();
}

fn operator_pod() -> Value {
    let pods = crate::items("pods", NAMESPACE);
    pods.into_iter()
        .find(|pod| {
            pod["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
                && pod["metadata"]["deletionTimestamp"].is_null()
        })
        .expect("the operator pod")
}

fn wait_for_holder(limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let lease = kubectl(
            &[
                "get",
                "lease",
                "archlab-operator",
                "-n",
                NAMESPACE,
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
            None,
        );
        let holder = String::from_utf8_lossy(&lease.stdout).trim().to_string();
        if lease.status.success() && !holder.is_empty() {
            return holder;
        }
        assert!(
            Instant::now() < deadline,
            "no leader within {limit:?}: {}",
            String::from_utf8_lossy(&lease.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn assert_trainers_ran_on_the_node(seen: &Seen) {
    assert!(!seen.pods.is_empty(), "the campaign made pods");
    for (name, pod) in &seen.pods {
        assert_eq!(pod["spec"]["nodeName"], NODE, "{name}");
        assert_eq!(
            pod["spec"]["containers"][0]["image"], "ghcr.io/archlab/archlab:0.1.0-cpu",
            "{name}"
        );
        assert_eq!(
            pod["status"]["phase"], "Succeeded",
            "{name}: {}",
            pod["status"]
        );
    }
}
