//! The Helm chart (`charts/archlab`) and its alerts, with the real tools: `helm lint --strict`
//! and `helm template` with the default values and with every optional part enabled, the
//! rendered objects read back, and the alerts through `promtool check rules` and
//! `promtool test rules` (`tests/alerts/archlab.test.yaml`: every alert fires once and stays
//! silent once). The rendered objects against a real API server (`--dry-run=server`, the
//! operator under the chart's own RBAC) are in `tests/e2e.rs`.
//!
//! Without `helm` or `promtool` on the PATH these tests say so and skip; CI installs both and
//! sets `ARCHLAB_REQUIRE_TOOLS=1`, which makes a missing tool a failure.

mod common;

use common::tool;
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn chart() -> PathBuf {
    Path::new(ROOT).join("charts/archlab")
}

fn run(program: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .output()
        .expect("the tool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn all_enabled() -> String {
    chart()
        .join("ci/all-enabled-values.yaml")
        .display()
        .to_string()
}

/// `helm template` of the chart as release `archlab`, one JSON value per object.
fn render(helm: &Path, extra: &[&str]) -> Vec<Value> {
    let chart = chart().display().to_string();
    let mut args = vec!["template", "archlab", &chart, "--namespace", "research"];
    args.extend_from_slice(extra);
    let (ok, text) = run(helm, &args);
    assert!(ok, "helm template {extra:?}:\n{text}");
    serde_yaml::Deserializer::from_str(&text)
        .filter_map(|document| Value::deserialize(document).ok())
        .filter(|value| !value.is_null())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

fn kinds(objects: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = objects
        .iter()
        .filter_map(|o| o["kind"].as_str().map(str::to_string))
        .collect();
    kinds.sort();
    kinds
}

#[test]
fn the_chart_lints_strictly_with_default_and_all_enabled_values() {
    let Some(helm) = tool("helm") else { return };
    let chart = chart().display().to_string();
    let values = all_enabled();
    for args in [
        vec!["lint", "--strict", &chart],
        vec!["lint", "--strict", &chart, "-f", &values],
    ] {
        let (ok, text) = run(&helm, &args);
        assert!(ok && text.contains("0 chart(s) failed"), "{text}");
    }
}

#[test]
fn values_outside_the_schema_are_refused() {
    let Some(helm) = tool("helm") else { return };
    let chart = chart().display().to_string();
    for (set, expected) in [
        ("replicaCount=two", "/replicaCount"),
        ("trainer.gpuResorce=amd.com/gpu", "gpuResorce"),
        ("prometheusRule.thresholds.failureRatio=2", "failureRatio"),
        ("serviceMonitor.interval=often", "interval"),
    ] {
        let (ok, text) = run(&helm, &["template", "archlab", &chart, "--set", set]);
        assert!(!ok, "--set {set} was accepted");
        assert!(text.contains(expected), "--set {set}: {text}");
    }
}

#[test]
fn the_default_install_is_namespaced_hardened_and_leader_elected() {
    let Some(helm) = tool("helm") else { return };
    let objects = render(&helm, &[]);
    assert_eq!(
        kinds(&objects),
        [
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServiceAccount",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding"
        ],
        "optional parts are off by default; the policy is on"
    );
    let deployment = find(&objects, "Deployment", "archlab").expect("the operator Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    // Two replicas: a drain may take one at a time, and the budget selects exactly them.
    let budget = find(&objects, "PodDisruptionBudget", "archlab").expect("a budget");
    assert_eq!(budget["spec"]["maxUnavailable"], 1);
    assert_eq!(
        budget["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    let single = render(&helm, &["--set", "replicaCount=1"]);
    assert!(find(&single, "PodDisruptionBudget", "archlab").is_none());
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["serviceAccountName"], "archlab");
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"--lease-name=archlab-operator"), "{args:?}");
    assert!(!args.contains(&"--no-leader-election"), "{args:?}");
    let env = container["env"].to_string();
    assert!(
        env.contains("ARCHLAB_NAMESPACE"),
        "watches its namespace: {env}"
    );

    // Least privilege: no cluster-scoped rule, no Secret access unless a Secret is named, and
    // the operator never writes a Campaign's spec.
    let role = find(&objects, "Role", "archlab").expect("the namespaced Role");
    assert_eq!(role["metadata"]["namespace"], "research");
    let rules = role["rules"].as_array().expect("rules");
    for rule in rules {
        assert!(
            rule["resources"] != serde_json::json!(["campaigns"])
                || !rule["verbs"].to_string().contains("patch"),
            "the operator writes only a Campaign's status: {rule}"
        );
    }
    let local = find(&objects, "Role", "archlab-local").expect("the lease Role");
    assert!(
        !local.to_string().contains("secrets"),
        "no Secret access without llm.secretName: {local}"
    );
    assert!(!kinds(&objects).iter().any(|k| k.starts_with("Cluster")));

    // Trainer pods run under an account of their own, bound to nothing, token never mounted.
    let trainer = find(&objects, "ServiceAccount", "archlab-trainer").expect("the trainer account");
    assert_eq!(trainer["automountServiceAccountToken"], false);
    assert!(
        objects
            .iter()
            .filter(|o| o["kind"].as_str().is_some_and(|k| k.ends_with("Binding")))
            .all(|b| !b["subjects"].to_string().contains("archlab-trainer")),
        "the trainer account has no permissions"
    );
    let defaults = trainer_defaults(&objects);
    assert_eq!(
        defaults.service_account_name.as_deref(),
        Some("archlab-trainer")
    );

    // The policy ConfigMap is what `archlab operator --policy-dir` reads, mounted.
    let policy = read_policy(&objects);
    assert_eq!(policy.images, ["ghcr.io/archlab/archlab"]);
    assert_eq!(policy.trainer_service_account, "archlab-trainer");
    assert_eq!(policy.operator_service_account, "archlab");
    assert!(policy.service_accounts.is_empty());
    assert!(
        policy.llm_endpoints.is_empty(),
        "no endpoint until one is listed"
    );
    assert!(!policy.allow_service_account_token);
    assert_eq!(policy.max_gpus_per_campaign, Some(8));
    let binding = find(
        &objects,
        "ValidatingAdmissionPolicyBinding",
        "archlab.research.archlab.dev",
    )
    .expect("the binding");
    assert_eq!(binding["spec"]["paramRef"]["name"], "archlab-policy");
    assert_eq!(
        binding["spec"]["matchResources"]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "research",
        "a namespaced release polices its own namespace"
    );
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("--policy-dir=/etc/archlab-policy"), "{args}");
    assert!(args.contains("--finished-pod-ttl=3600"), "{args}");
}

/// The trainer defaults the rendered ConfigMap gives `archlab operator --trainer-defaults`.
fn trainer_defaults(objects: &[Value]) -> archlab::api::trainer::TrainerDefaults {
    let config = find(objects, "ConfigMap", "archlab-trainer-defaults").expect("ConfigMap");
    serde_yaml::from_str(
        config["data"]["trainer-defaults.yaml"]
            .as_str()
            .expect("text"),
    )
    .expect("defaults")
}

/// The rendered policy ConfigMap, written out as Kubernetes mounts it and read by the operator.
fn read_policy(objects: &[Value]) -> archlab::api::policy::Policy {
    let config = find(objects, "ConfigMap", "archlab-policy").expect("the policy ConfigMap");
    let dir = std::env::temp_dir().join(format!("archlab-chart-policy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    for (key, value) in config["data"].as_object().expect("data") {
        std::fs::write(dir.join(key), value.as_str().expect("a string")).expect("write");
    }
    let policy = archlab::api::policy::Policy::from_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&dir);
    policy
}

#[test]
fn every_optional_part_renders_and_the_trainer_defaults_reach_the_operator() {
    let Some(helm) = tool("helm") else { return };
    let values = all_enabled();
    let objects = render(&helm, &["-f", &values]);
    for kind in [
        "ClusterRole",
        "ClusterRoleBinding",
        "NetworkPolicy",
        "PrometheusRule",
        "ServiceMonitor",
    ] {
        assert!(kinds(&objects).iter().any(|k| k == kind), "no {kind}");
    }
    let monitor = find(&objects, "ServiceMonitor", "archlab").expect("ServiceMonitor");
    assert_eq!(
        monitor["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["honorLabels"], true);
    let rule = find(&objects, "PrometheusRule", "archlab").expect("PrometheusRule");
    assert_eq!(
        rule["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );

    // The one Secret, by name, in the Campaign's namespace: any namespace, so the ClusterRole.
    let local = find(&objects, "Role", "archlab-local").expect("the lease Role");
    assert!(!local.to_string().contains("secrets"), "{local}");
    let cluster = find(&objects, "ClusterRole", "archlab").expect("the ClusterRole");
    let secret_rule = cluster["rules"]
        .as_array()
        .and_then(|rules| {
            rules
                .iter()
                .find(|r| r["resources"] == serde_json::json!(["secrets"]))
        })
        .expect("a Secret rule");
    assert_eq!(
        secret_rule["resourceNames"],
        serde_json::json!(["llm-credentials"])
    );
    assert_eq!(secret_rule["verbs"], serde_json::json!(["get"]));

    // Trainer pods may reach nothing.
    let policy = objects
        .iter()
        .find(|o| o["kind"] == "NetworkPolicy")
        .expect("NetworkPolicy");
    assert_eq!(policy["spec"]["policyTypes"], serde_json::json!(["Egress"]));
    assert_eq!(policy["spec"]["egress"], serde_json::json!([]));

    // The ConfigMap is what `archlab operator --trainer-defaults` reads.
    let config = find(&objects, "ConfigMap", "archlab-trainer-defaults").expect("ConfigMap");
    let text = config["data"]["trainer-defaults.yaml"]
        .as_str()
        .expect("trainer-defaults.yaml");
    let defaults: archlab::api::trainer::TrainerDefaults =
        serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    assert_eq!(
        defaults.image.as_deref(),
        Some("registry.example/archlab:0.1.0-cuda")
    );
    assert_eq!(defaults.gpus_per_trainer, 2);
    assert_eq!(defaults.node_selector["accelerator"], "h100");
    assert_eq!(
        defaults.priority_class_name.as_deref(),
        Some("research-batch")
    );
    assert_eq!(defaults.tolerations.len(), 1);
    let pod = defaults.apply(&archlab::api::trainer::TrainerSpec::default());
    assert_eq!(pod.effective_resources().limits["nvidia.com/gpu"], "2");
    assert_eq!(pod.effective_resources().requests["cpu"], "8");
    assert_eq!(pod.effective_resources().requests["memory"], "64Gi");
    assert_eq!(pod.runtime_class_name.as_deref(), Some("nvidia"));
    assert_eq!(pod.pod_labels["team"], "research");
    assert_eq!(pod.pod_annotations["karpenter.sh/do-not-disrupt"], "true");
    assert_eq!(pod.effective_resources().requests["cpu"], "8");
    assert_eq!(pod.effective_resources().requests["memory"], "64Gi");
    assert_eq!(pod.runtime_class_name.as_deref(), Some("nvidia"));
    assert_eq!(pod.pod_labels["team"], "research");
    assert_eq!(pod.pod_annotations["karpenter.sh/do-not-disrupt"], "true");
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("default"),
        "all namespaces: each namespace's default account (the chart's exists in one)"
    );
    let policy = read_policy(&objects);
    assert_eq!(
        policy.images,
        ["registry.example/archlab", "registry.example/"]
    );
    assert_eq!(policy.service_accounts, ["dataset-reader"]);
    assert_eq!(
        policy.priority_classes,
        ["research-interactive", "research-batch"]
    );
    assert_eq!(policy.toleration_keys, ["nvidia.com/gpu"]);
    assert_eq!(policy.runtime_classes, ["nvidia"]);
    assert_eq!(policy.runtime_classes, ["nvidia"]);
    assert_eq!(policy.llm_endpoints, ["http://vllm.research.svc:8000/v1"]);
    assert_eq!(policy.gpus_per_trainer, 2);
    assert_eq!(policy.max_gpus_per_campaign, Some(16));
    let binding = objects
        .iter()
        .find(|o| o["kind"] == "ValidatingAdmissionPolicyBinding")
        .expect("the binding");
    assert!(
        binding["spec"]["matchResources"].is_null(),
        "every namespace: {binding}"
    );

    // The default values give the released trainer image.
    let objects = render(&helm, &[]);
    let defaults = trainer_defaults(&objects);
    assert_eq!(
        defaults.image.as_deref(),
        Some(archlab::api::trainer::DEFAULT_IMAGE)
    );
}

/// The chart's alert names, from the rendered PrometheusRule, and its groups as a rules file.
fn rules(helm: &Path) -> (Vec<String>, String) {
    let objects = render(
        helm,
        &[
            "--set",
            "prometheusRule.enabled=true",
            "--show-only",
            "templates/prometheusrule.yaml",
        ],
    );
    let rule = &objects[0];
    let names = rule["spec"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["alert"].as_str().map(str::to_string))
        .collect();
    let file = serde_yaml::to_string(&serde_json::json!({"groups": rule["spec"]["groups"]}))
        .expect("YAML");
    (names, file)
}

#[test]
fn every_alert_is_tested_by_promtool_and_has_a_runbook() {
    let Some(helm) = tool("helm") else { return };
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let (names, file) = rules(&helm);
    assert_eq!(names.len(), 10, "{names:?}");
    let dir = std::env::temp_dir().join(format!("archlab-alerts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("rules.yaml"), &file).expect("rules");
    let tests = std::fs::read_to_string(Path::new(ROOT).join("tests/alerts/archlab.test.yaml"))
        .expect("tests");
    std::fs::write(dir.join("archlab.test.yaml"), &tests).expect("tests");
    let rules_path = dir.join("rules.yaml").display().to_string();
    let (ok, text) = run(&promtool, &["check", "rules", &rules_path]);
    assert!(ok && text.contains("10 rules found"), "{text}");
    let tests_path = dir.join("archlab.test.yaml").display().to_string();
    let (ok, text) = run(&promtool, &["test", "rules", &tests_path]);
    assert!(ok && text.contains("SUCCESS"), "{text}");

    // Each alert is asserted both firing and silent, and has its runbook section.
    let parsed: Value = serde_yaml::from_str(&tests).expect("test YAML");
    let cases: Vec<(String, bool)> = parsed["tests"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["alert_rule_test"].as_array().cloned().unwrap_or_default())
        .map(|case| {
            let fires = case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty());
            (
                case["alertname"].as_str().unwrap_or_default().to_string(),
                fires,
            )
        })
        .collect();
    let runbooks =
        std::fs::read_to_string(Path::new(ROOT).join("docs/runbooks.md")).expect("runbooks");
    for name in &names {
        for fires in [true, false] {
            assert!(
                cases.contains(&(name.clone(), fires)),
                "{name} has no promtool case where it {}",
                if fires { "fires" } else { "stays silent" }
            );
        }
        assert!(
            runbooks.contains(&format!("\n## {name}\n")),
            "no runbook for {name}"
        );
        assert!(name.starts_with("Archlab"), "{name}");
    }
}

#[test]
fn a_changed_threshold_changes_what_fires() {
    // The promtool cases are not vacuous: with the failure-ratio threshold raised past the
    // test's 67 %, the case that expects ArchlabFailureRatioHigh to fire fails.
    let Some(helm) = tool("helm") else { return };
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let objects = render(
        &helm,
        &[
            "--set",
            "prometheusRule.enabled=true",
            // `--set` would pass 0.9 as a string (Helm converts only integers).
            "--set-json",
            "prometheusRule.thresholds.failureRatio=0.9",
            "--show-only",
            "templates/prometheusrule.yaml",
        ],
    );
    let file = serde_yaml::to_string(&serde_json::json!({"groups": objects[0]["spec"]["groups"]}))
        .expect("YAML");
    let dir = std::env::temp_dir().join(format!("archlab-alerts-raised-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("rules.yaml"), file).expect("rules");
    std::fs::copy(
        Path::new(ROOT).join("tests/alerts/archlab.test.yaml"),
        dir.join("archlab.test.yaml"),
    )
    .expect("tests");
    let tests_path = dir.join("archlab.test.yaml").display().to_string();
    let (ok, text) = run(&promtool, &["test", "rules", &tests_path]);
    assert!(!ok, "{text}");
    assert!(text.contains("ArchlabFailureRatioHigh"), "{text}");
}

/// The oldest Kubernetes the chart supports (`Chart.yaml`'s `kubeVersion`) accepts both CRDs
/// and every object the chart renders (default and all-enabled values) by that release's
/// published schemas (`kubernetes-validate --strict`: unknown fields refused too). The
/// Prometheus operator's kinds have no schema there and are only warned about.
#[test]
fn the_crds_and_the_rendered_chart_validate_against_the_oldest_supported_kubernetes() {
    let (Some(helm), Some(validate)) = (tool("helm"), tool("kubernetes-validate")) else {
        return;
    };
    let chart_yaml = std::fs::read_to_string(chart().join("Chart.yaml")).expect("Chart.yaml");
    let oldest = chart_yaml
        .lines()
        .find_map(|line| line.strip_prefix("kubeVersion:"))
        .and_then(|range| range.trim().trim_matches('"').strip_prefix(">="))
        .map(|version| version.trim_end_matches("-0").to_string())
        .expect("kubeVersion: \">=1.N.0-0\"");
    let work = std::env::temp_dir().join(format!("archlab-validate-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("temp dir");
    let chart_dir = chart().display().to_string();
    let values = all_enabled();
    let mut files = vec![Path::new(ROOT).join("crds/archlab.yaml")];
    for (name, extra) in [("default", vec![]), ("all-enabled", vec!["-f", &values])] {
        let mut args = vec!["template", "archlab", &chart_dir, "--namespace", "research"];
        args.extend(["--kube-version", &oldest]);
        args.extend(extra);
        let (ok, text) = run(&helm, &args);
        assert!(ok, "helm template ({name}):\n{text}");
        let file = work.join(format!("{name}.yaml"));
        std::fs::write(&file, text).expect("write");
        files.push(file);
    }
    let validate_files = |files: &[PathBuf]| {
        let mut args = vec!["-k".to_string(), oldest.clone(), "--strict".into()];
        args.extend(files.iter().map(|f| f.display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&validate, &args)
    };
    let (ok, text) = validate_files(&files);
    assert!(ok, "{text}");
    assert!(
        text.contains("customresourcedefinition/campaigns.archlab.dev")
            && text.contains(&format!(
                "deployment/archlab against version {}",
                &oldest[..4]
            )),
        "{text}"
    );
    // The validator does refuse: a Deployment with a field of the wrong type.
    let broken = work.join("broken.yaml");
    let deployment = std::fs::read_to_string(&files[1])
        .expect("rendered")
        .replacen("  replicas: ", "  replicas: x", 1);
    std::fs::write(&broken, deployment).expect("write");
    let (ok, text) = validate_files(&[broken]);
    assert!(!ok && text.contains("replicas"), "{text}");
    let _ = std::fs::remove_dir_all(&work);
}
