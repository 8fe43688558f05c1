//! Objects this operator version cannot read, as a rollback leaves them: a newer version's CRD
//! allowed one more enum value, objects were written with it, and the CRD went back. The API
//! server serves them; a typed list would fail on them and stall every Campaign. The good
//! Campaign beside them completes; the bad Campaign and Experiment are reported on themselves
//! and in a metric, and the Experiment's record and id are left alone.

use crate::{
    Pace, ROOT, campaign, http_get, kubectl, kubectl_ok, metrics_port, namespace, operator,
    wait_for_phase,
};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const NAMESPACE: &str = "e2e-undecodable";
const SPEC: &str = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties";

/// Adds `value` to the enum at `path` of the CRD `crd`, as a newer version's CRD would.
fn widen(crd: &str, path: &str, value: &str) {
    let patch = format!(r#"[{{"op": "add", "path": "{path}/enum/-", "value": "{value}"}}]"#);
    kubectl_ok(&["patch", "crd", crd, "--type=json", "-p", &patch], None);
}

/// Applies `manifest` once the server's schema takes it (a changed CRD is published within
/// seconds, not at once).
fn apply_when_accepted(manifest: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let output = kubectl(&["apply", "-n", NAMESPACE, "-f", "-"], Some(manifest));
        if output.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the widened CRD never took {manifest}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

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
            "custom-columns=REASON:.reason,MESSAGE:.message",
        ],
        None,
    )
}

pub fn objects_this_version_cannot_read_are_reported_and_skipped(work: &Path, pace: Pace) {
    namespace(NAMESPACE);
    widen(
        "campaigns.archlab.dev",
        &format!("{SPEC}/agents/properties/backend"),
        "oracle",
    );
    widen(
        "experiments.archlab.dev",
        &format!("{SPEC}/stage"),
        "distillation",
    );
    let newer =
        campaign("newer", 40).replace("  seed: 3\n", "  seed: 3\n  agents: {backend: oracle}\n");
    apply_when_accepted(&newer);
    // An Experiment of the good Campaign from the newer version, with the next ids' place.
    let experiment = r#"{"apiVersion": "archlab.dev/v1alpha1", "kind": "Experiment",
        "metadata": {"name": "good-e00007", "labels": {"archlab.dev/campaign": "good"}},
        "spec": {"campaign": "good", "id": 7, "stage": "distillation", "origin": "proposal"}}"#;
    apply_when_accepted(experiment);
    // The rollback: the CRDs as this version installs them.
    kubectl_ok(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            Path::new(ROOT).join("crds").to_str().expect("utf-8"),
        ],
        None,
    );

    let _operator = operator(work, NAMESPACE, "undecodable", false);
    kubectl_ok(
        &["apply", "-n", NAMESPACE, "-f", "-"],
        Some(&campaign("good", 40)),
    );
    let status = wait_for_phase(NAMESPACE, "good", "Completed", pace.campaign(18, 40, 2));
    assert_eq!(status["phase"], "Completed", "{status}");

    // The Campaign it cannot read: marked, with an Event, and no engine ran it.
    let newer: Value = serde_json::from_str(&kubectl_ok(
        &["get", "camp", "newer", "-n", NAMESPACE, "-o", "json"],
        None,
    ))
    .expect("json");
    let accepted = newer["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "SpecAccepted")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(accepted["status"], "False", "{newer}");
    assert_eq!(accepted["reason"], "Undecodable", "{newer}");
    assert!(
        accepted["message"]
            .as_str()
            .is_some_and(|m| m.contains("oracle")),
        "{accepted}"
    );
    assert!(events_of("newer").contains("Undecodable"));
    let experiments = kubectl_ok(
        &[
            "get",
            "exp",
            "-n",
            NAMESPACE,
            "-l",
            "archlab.dev/campaign=newer",
            "-o",
            "name",
        ],
        None,
    );
    assert!(experiments.trim().is_empty(), "{experiments}");

    // The Experiment it cannot read: left as it was, its id never reused, an Event on it.
    let kept = kubectl_ok(
        &[
            "get",
            "exp",
            "good-e00007",
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={.spec.stage}",
        ],
        None,
    );
    assert_eq!(kept, "distillation");
    assert!(events_of("good-e00007").contains("Unreadable"));

    let log = std::fs::read_to_string(work.join("undecodable.log")).expect("operator log");
    let port = metrics_port(&log).expect("the operator serves metrics");
    let metrics = http_get(port, "/metrics");
    for kind in ["Campaign", "Experiment"] {
        let counted = metrics.lines().any(|line| {
            line.starts_with("archlab_undecodable_objects_total{")
                && line.contains(&format!("kind=\"{kind}\""))
                && line.contains(&format!("namespace=\"{NAMESPACE}\""))
        });
        assert!(counted, "no {kind} counted in:\n{metrics}");
    }
    crate::report(&format!(
        "e2e undecodable: Campaign {} skipped and marked; Experiment good-e00007 left out, id kept",
        newer["metadata"]["name"]
    ));
}
