//! End to end against a real Kubernetes API server: the CRDs from `crds/` and Campaigns applied
//! with `kubectl`, the real `archlab operator` binary, and `scripts/e2e/node_agent.py` standing
//! in for the kubelet (it runs pods as local processes and serves their logs); the real-node
//! scenario (`e2e/real_node.rs`) sends its pods to a real kubelet (`scripts/test-node.sh`).
//!
//! Runs when `KUBECONFIG` names a cluster (`eval "$(scripts/test-cluster.sh env)"` after
//! `scripts/test-cluster.sh start`); otherwise prints that it skipped, and fails instead when
//! `ARCHLAB_REQUIRE_CLUSTER=1`. The scenarios share one node, so they run in sequence inside
//! one test.

mod common;
#[path = "e2e/real_node.rs"]
mod real_node;
#[path = "e2e/undecodable.rs"]
mod undecodable;

use common::tool;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new("kubectl");
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if stdin.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command.spawn().expect("kubectl runs");
    if let Some(text) = stdin {
        use std::io::Write;
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("kubectl ends")
}

fn kubectl_ok(args: &[&str], stdin: Option<&str>) -> String {
    let output = kubectl(args, stdin);
    assert!(
        output.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn items(kind: &str, namespace: &str) -> Vec<Value> {
    let text = kubectl_ok(&["get", kind, "-n", namespace, "-o", "json"], None);
    serde_json::from_str::<Value>(&text).expect("JSON")["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Whether a cluster is there to test against.
fn cluster_available() -> bool {
    let configured = std::env::var_os("KUBECONFIG").is_some()
        && Command::new("kubectl")
            .args(["get", "--raw", "/readyz"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !configured {
        let message = "skipped: no Kubernetes cluster (start one with scripts/test-cluster.sh start and export its KUBECONFIG)";
        assert!(
            std::env::var("ARCHLAB_REQUIRE_CLUSTER").as_deref() != Ok("1"),
            "ARCHLAB_REQUIRE_CLUSTER=1 but {message}"
        );
        eprintln!("\n*** e2e {message} ***\n");
    }
    configured
}

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn work_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("archlab-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("work dir");
    dir
}

fn node_agent(work: &Path, injections: &[&str]) -> Running {
    let mut command = Command::new("python3");
    command
        .arg(Path::new(ROOT).join("scripts/e2e/node_agent.py"))
        .args([
            "--archlab",
            env!("CARGO_BIN_EXE_archlab"),
            "--gpus",
            "2",
            "--workdir",
        ])
        .arg(work.join("node"));
    for injection in injections {
        command.args(["--inject", injection]);
    }
    let log = std::fs::File::create(work.join("node-agent.log")).expect("log");
    command.stdout(log.try_clone().expect("log")).stderr(log);
    Running(command.spawn().expect("the node agent starts"))
}

fn operator(work: &Path, namespace: &str, instance: &str, leader_election: bool) -> Running {
    let mut command = operator_command(work, namespace, instance, leader_election);
    Running(command.spawn().expect("the operator starts"))
}

/// `archlab operator` for `namespace`, logging to `<work>/<instance>.log`.
fn operator_command(
    work: &Path,
    namespace: &str,
    instance: &str,
    leader_election: bool,
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_archlab"));
    command.args([
        "operator",
        "--namespace",
        namespace,
        "--poll-interval",
        "1",
        "--metrics-address",
        "127.0.0.1:0",
        "--instance",
        instance,
        "--lease-namespace",
        namespace,
    ]);
    if !leader_election {
        command.arg("--no-leader-election");
    }
    let log = std::fs::File::create(work.join(format!("{instance}.log"))).expect("log");
    command
        .env("ARCHLAB_LOG", "info,kube_client::client::builder=off")
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    command
}

/// A fresh namespace enforcing the restricted Pod Security profile (and warning by it, so that
/// a workload whose pods it would refuse says so when applied), as a shared cluster's would.
fn namespace(name: &str) {
    let _ = kubectl(
        &["delete", "namespace", name, "--wait=true", "--timeout=60s"],
        None,
    );
    kubectl_ok(&["create", "namespace", name], None);
    kubectl_ok(
        &[
            "label",
            "namespace",
            name,
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/warn=restricted",
        ],
        None,
    );
}

/// A pod the restricted profile forbids (privileged, as root), refused by the API server in a
/// namespace from `namespace`: its Pod Security admission is on.
fn assert_restricted_pods_only(namespace: &str) {
    let pod = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "privileged"},
        "spec": {"containers": [{"name": "c", "image": "busybox",
            "securityContext": {"privileged": true, "runAsUser": 0}}]}}"#;
    let output = kubectl(&["apply", "-n", namespace, "-f", "-"], Some(pod));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("violates PodSecurity \"restricted"),
        "a privileged pod was not refused: {stderr}"
    );
}

/// The small campaign of tests/run.rs, for pods on a CPU, under `name`.
fn campaign(name: &str, steps: u32) -> String {
    let text = std::fs::read_to_string(Path::new(ROOT).join("tests/fixtures/tiny_campaign.yaml"))
        .expect("fixture");
    text.replace("name: tiny", &format!("name: {name}"))
        .replace("steps: 40", &format!("steps: {steps}"))
        .replace(
            "  seed: 3",
            "  seed: 3\n  trainer: {device: cpu, image: archlab:e2e}",
        )
}

/// Prints a timing line, and appends it to the file `ARCHLAB_E2E_REPORT` names (CI prints that
/// file at its end: cargo shows a passing test's output only with `--nocapture`).
fn report(line: &str) {
    eprintln!("{line}");
    if let Ok(path) = std::env::var("ARCHLAB_E2E_REPORT") {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// What this machine takes per training step of the fixture's model, measured once with
/// `archlab train` (process start included). Waits for whole campaigns are derived from it and
/// from the work they ask for, so a slow machine waits longer and a stuck operator still fails.
#[derive(Debug, Clone, Copy)]
struct Pace {
    per_step: Duration,
}

/// Steps of the measuring run: long enough that the process start is a small part.
const PACE_STEPS: u32 = 300;

impl Pace {
    fn measure(work: &Path) -> Pace {
        let text =
            std::fs::read_to_string(Path::new(ROOT).join("tests/fixtures/tiny_campaign.yaml"))
                .expect("fixture");
        let mut config = archlab::api::parse_campaign(&text)
            .expect("fixture parses")
            .spec
            .stages
            .exploration
            .train;
        config.steps = PACE_STEPS as usize;
        let config_path = work.join("pace-config.json");
        std::fs::write(
            &config_path,
            serde_json::to_string(&config).expect("config"),
        )
        .expect("write");
        let program_path = work.join("pace.arch");
        let program = archspec::library::get("linear_attention")
            .expect("library")
            .source;
        std::fs::write(&program_path, program).expect("write");
        let started = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_archlab"))
            .args(["train", "--program"])
            .arg(&program_path)
            .arg("--config")
            .arg(&config_path)
            .stderr(Stdio::null())
            .output()
            .expect("archlab train");
        assert!(output.status.success(), "the pace run failed: {output:?}");
        let pace = Pace {
            per_step: started.elapsed() / PACE_STEPS,
        };
        report(&format!(
            "e2e pace: {:.1} ms per training step of the fixture's model",
            pace.per_step.as_secs_f64() * 1e3
        ));
        pace
    }

    /// The longest a campaign of `experiments` trainers of `steps` steps, `parallel` at once,
    /// may take to end: its training three times over (the operator, API server and node
    /// agent share the cores with the trainers), 10 s per experiment for its pod's start, log
    /// and writes, and a minute for the operator to start and pick the Campaign up.
    fn campaign(&self, experiments: u32, steps: u32, parallel: u32) -> Duration {
        let rounds = experiments.div_ceil(parallel.max(1));
        let training = self.per_step * steps * rounds;
        Duration::from_secs(60) + Duration::from_secs(10) * experiments + training * 3
    }
}

/// Waits for the Campaign's phase; the status when it came.
fn wait_for_phase(namespace: &str, name: &str, phase: &str, limit: Duration) -> Value {
    wait_for_one_of(namespace, name, &[phase], limit)
}

/// Waits for the Campaign to end (Completed or Failed); its status.
fn wait_for_end(namespace: &str, name: &str, limit: Duration) -> Value {
    wait_for_one_of(namespace, name, &["Completed", "Failed"], limit)
}

fn wait_for_one_of(namespace: &str, name: &str, phases: &[&str], limit: Duration) -> Value {
    eprintln!("waiting up to {limit:.0?} for campaign {namespace}/{name} to be {phases:?}");
    let deadline = Instant::now() + limit;
    loop {
        let output = kubectl(&["get", "camp", name, "-n", namespace, "-o", "json"], None);
        let value: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        if phases
            .iter()
            .any(|phase| value["status"]["phase"] == *phase)
        {
            return value["status"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "campaign {namespace}/{name} not {phases:?} within {limit:.0?} (progress {}, experiments: {}): {}",
            value["status"]["progress"],
            experiment_phases(namespace),
            value["status"]["conditions"]
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits until the Campaign object satisfies `ready`, which names what is awaited; the object.
fn wait_for_campaign(
    namespace: &str,
    name: &str,
    what: &str,
    limit: Duration,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    eprintln!("waiting up to {limit:.0?} for campaign {namespace}/{name}: {what}");
    let deadline = Instant::now() + limit;
    loop {
        let output = kubectl(&["get", "camp", name, "-n", namespace, "-o", "json"], None);
        let value: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        if ready(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "campaign {namespace}/{name}: not {what} within {limit:.0?}: {}",
            value["status"]
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn condition<'a>(campaign: &'a Value, type_: &str) -> &'a Value {
    campaign["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

/// An edit the running campaign refuses (a lowered compute budget: the API server lets it
/// through, the engine does not) stays refused when the operator
/// restarts: the new engine opens with `status.acceptedSpec`, not with the edited spec, and
/// `observedGeneration` follows every generation judged, accepted or not (so Argo CD and Flux
/// see the Campaign as reconciled).
fn a_refused_edit_survives_a_restart(work: &Path, pace: Pace) {
    namespace("e2e-edits");
    // Long enough trainers that the campaign still runs when edited and restarted.
    let steps = 1000;
    let first = operator(work, "e2e-edits", "edits-1", false);
    kubectl_ok(
        &["apply", "-n", "e2e-edits", "-f", "-"],
        Some(&campaign("edits", steps).replace(
            "budget: {maxExperiments: 18}",
            "budget: {maxExperiments: 18, maxComputeHours: 10}",
        )),
    );
    let started = wait_for_campaign(
        "e2e-edits",
        "edits",
        "running generation 1",
        pace.campaign(1, steps, 1),
        |c| c["status"]["acceptedGeneration"] == 1 && c["status"]["phase"] == "Running",
    );
    assert_eq!(
        started["status"]["acceptedSpec"]["budget"]["maxComputeHours"], 10.0,
        "{}",
        started["status"]
    );
    kubectl_ok(
        &[
            "patch",
            "camp",
            "edits",
            "-n",
            "e2e-edits",
            "--type=merge",
            "-p",
            r#"{"spec":{"budget":{"maxComputeHours":0.0001}}}"#,
        ],
        None,
    );
    let judged = |c: &Value| {
        c["metadata"]["generation"] == 2
            && c["status"]["observedGeneration"] == 2
            && condition(c, "SpecAccepted")["status"] == "False"
    };
    let refused = wait_for_campaign(
        "e2e-edits",
        "edits",
        "generation 2 judged and refused",
        Duration::from_secs(60),
        judged,
    );
    assert!(
        refused["status"]["phase"] == "Running",
        "edited while it ran: {}",
        refused["status"]
    );
    drop(first);
    let _second = operator(work, "e2e-edits", "edits-2", false);
    let ended = wait_for_end("e2e-edits", "edits", pace.campaign(18, steps, 2));
    let campaign: Value = serde_json::from_str(&kubectl_ok(
        &["get", "camp", "edits", "-n", "e2e-edits", "-o", "json"],
        None,
    ))
    .expect("JSON");
    assert_eq!(ended["phase"], "Completed", "{ended}");
    // Adopting the refused 0.36 s of compute would have ended it at once, out of budget.
    assert_eq!(
        condition(&campaign, "Completed")["reason"],
        "StagesCompleted",
        "the restarted operator ran the accepted budget: {ended}"
    );
    let experiments = items("exp", "e2e-edits");
    assert!(
        [12, 15, 18].contains(&experiments.len()),
        "{} experiments",
        experiments.len()
    );
    assert!(judged(&campaign), "{}", campaign["status"]);
    let message = condition(&campaign, "SpecAccepted")["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("cannot go down"), "{message}");
    assert_eq!(campaign["status"]["acceptedGeneration"], 1);
    assert_eq!(
        campaign["status"]["acceptedSpec"]["budget"]["maxComputeHours"],
        10.0
    );
    assert_eq!(campaign["spec"]["budget"]["maxComputeHours"], 0.0001);
}

/// Each Experiment's phase and training progress, for a wait that failed.
fn experiment_phases(namespace: &str) -> String {
    items("exp", namespace)
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e["metadata"]["name"].as_str().unwrap_or("?"),
                e["status"]["phase"].as_str().unwrap_or("?"),
                e["status"]["training"]["percent"]
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Pods each experiment should have had: one per attempt that reached training (a program
/// refused by the checks or as not novel never gets one), plus one per infrastructure rerun.
fn expected_pods(experiments: &[Value]) -> usize {
    let trained = |attempt: &&Value| {
        !matches!(
            attempt["outcome"]["kind"].as_str(),
            Some("invalid" | "not_novel" | "agent_failed")
        )
    };
    experiments
        .iter()
        .map(|e| {
            let attempts = e["status"]["attempts"]
                .as_array()
                .map_or(0, |a| a.iter().filter(trained).count());
            let reruns = e["status"]["infrastructureFailures"]
                .as_array()
                .map_or(0, Vec::len);
            attempts + reruns
        })
        .sum()
}

#[test]
fn the_operator_runs_campaigns_on_a_real_api_server() {
    if !cluster_available() {
        return;
    }
    let work = work_dir("cluster");
    // The CRDs as users install them, every CEL rule included (the server estimates each
    // rule's cost here and refuses the CRD when it is over budget).
    let crds = Path::new(ROOT).join("crds");
    kubectl_ok(
        &[
            "apply",
            "--server-side",
            "-f",
            crds.to_str().expect("utf-8"),
        ],
        None,
    );
    kubectl_ok(
        &[
            "wait",
            "--for=condition=Established",
            "crd/campaigns.archlab.dev",
            "crd/experiments.archlab.dev",
        ],
        None,
    );
    let _agent = node_agent(
        &work,
        &[
            "oom=faults-e00003-a1",
            "evict=faults-e00004-a1",
            "exit=faults-e00005-a1",
            "disrupt=faults-e00006-a1",
            "start-error=faults-e00002-a1",
            "sidecar=faults-e00001-a1",
            "silent=silent-e00002-a1",
        ],
    );
    // `ARCHLAB_E2E_ONLY=pod,deleted` runs only the scenarios whose names contain one of the
    // words (while working on one); CI runs them all.
    let only = std::env::var("ARCHLAB_E2E_ONLY").unwrap_or_default();
    let version: Value =
        serde_json::from_str(&kubectl_ok(&["version", "-o", "json"], None)).unwrap_or_default();
    report(&format!(
        "e2e API server: {}",
        version["serverVersion"]["gitVersion"]
            .as_str()
            .unwrap_or("?")
    ));
    let pace = Pace::measure(&work);
    let timed = |name: &str, scenario: &dyn Fn(&Path, Pace)| {
        if !only.is_empty() && !only.split(',').any(|word| name.contains(word.trim())) {
            eprintln!("scenario {name}: not selected by ARCHLAB_E2E_ONLY");
            return;
        }
        let started = Instant::now();
        scenario(&work, pace);
        report(&format!(
            "e2e scenario {name}: {:.0} s",
            started.elapsed().as_secs_f64()
        ));
    };
    timed("invalid campaigns refused", &|_, _| {
        invalid_campaigns_are_refused()
    });
    timed("cel rules", &|_, _| {
        the_cel_rules_are_enforced_by_the_server()
    });
    timed("whole campaign", &whole_campaign);
    timed("ladder", &a_ladder_campaign);
    timed(
        "two replicas, leader killed",
        &two_replicas_and_the_leader_killed,
    );
    timed(
        "refused edit, operator restarted",
        &a_refused_edit_survives_a_restart,
    );
    timed("pod failures", &pod_failures);
    timed("unschedulable pod", &unschedulable_pods);
    timed(
        "silent trainer",
        &a_silent_trainer_pod_is_stopped_and_charged,
    );
    timed(
        "resource quota",
        &a_resource_quota_refusal_is_infrastructure,
    );
    timed(
        "queue gate",
        &a_pod_held_by_a_queue_is_bounded_by_its_own_limit,
    );
    timed(
        "campaign deleted",
        &deleting_a_campaign_collects_its_objects,
    );
    timed(
        "undecodable objects",
        &undecodable::objects_this_version_cannot_read_are_reported_and_skipped,
    );
    timed("real kubelet", &real_node::trainer_pods_on_a_real_kubelet);
    timed(
        "deployed operator",
        &real_node::the_charts_operator_runs_on_the_node,
    );
    timed("helm chart", &the_helm_chart_installs_and_its_rbac_suffices);
    timed(
        "llm key from a secret",
        &the_llm_key_from_a_secret_stays_secret,
    );
}

/// The API server itself refuses Campaigns that break the CRD's schema and names the field.
fn invalid_campaigns_are_refused() {
    namespace("e2e-invalid");
    // Zero steps: a training config's ranges are declared on its Rust type, so the CRD
    // carries them.
    let bad = campaign("bad", 0)
        .replace("device: cpu", "device: tpu")
        .replace("maxExperiments: 18", "maxExperiments: -3")
        .replace("parallelism: 2", "parallelism: 4294967296");
    let output = kubectl(&["apply", "-n", "e2e-invalid", "-f", "-"], Some(&bad));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "refused: {message}");
    for field in [
        "spec.trainer.device: Unsupported value: \"tpu\"",
        "spec.budget.maxExperiments: Invalid value: -3",
        // One past the Rust type (u32): stored, it would fail every typed list of Campaigns.
        "spec.parallelism: Invalid value: 4294967296",
        "spec.stages.exploration.train.steps: Invalid value: 0",
    ] {
        assert!(message.contains(field), "no `{field}` in:\n{message}");
    }
    // A wrong type: kubectl refuses it from the schema the server publishes (or, while the
    // server has not yet published the new CRD's schema, the server does); with
    // `--validate=false` the server must refuse it itself.
    let mistyped = campaign("bad", 40).replace("batch_size: 8", "batch_size: eight");
    let output = kubectl(&["apply", "-n", "e2e-invalid", "-f", "-"], Some(&mistyped));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && message.contains("spec.stages.exploration.train.batch_size"),
        "{message}"
    );
    let output = kubectl(
        &["apply", "--validate=false", "-n", "e2e-invalid", "-f", "-"],
        Some(&mistyped),
    );
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && message
                .contains("spec.stages.exploration.train.batch_size: Invalid value: \"string\""),
        "{message}"
    );
    let missing = campaign("bad", 40).replace("  baseline: linear_attention\n", "");
    let output = kubectl(
        &["apply", "--validate=false", "-n", "e2e-invalid", "-f", "-"],
        Some(&missing),
    );
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && message.contains("spec.baseline: Required value"),
        "{message}"
    );
    assert!(items("camp", "e2e-invalid").is_empty());
    // The bundled examples are applyable as they are.
    for example in [
        "examples/quickstart.yaml",
        "examples/llm.yaml",
        "examples/cluster/gpu-campaign.yaml",
    ] {
        let path = Path::new(ROOT).join(example);
        kubectl_ok(
            &[
                "apply",
                "--dry-run=server",
                "-n",
                "e2e-invalid",
                "-f",
                path.to_str().expect("utf-8"),
            ],
            None,
        );
    }
    eprintln!("kubectl apply of an invalid Campaign:\n{message}");
}

/// `kubectl apply` of `manifest` in `namespace` is refused, and the server's message says
/// `expected`; returns the message.
fn refused(namespace: &str, manifest: &str, expected: &str) -> String {
    let output = kubectl(&["apply", "-n", namespace, "-f", "-"], Some(manifest));
    let message = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(
        !output.status.success() && message.contains(expected),
        "expected a refusal saying `{expected}`, got: {message}"
    );
    message
}

/// Each CEL rule and each size bound of the Campaign CRD, judged by the API server: a
/// violation is refused with the rule's message, the same Campaign within the rules passes.
fn the_cel_rules_are_enforced_by_the_server() {
    let ns = "e2e-cel";
    namespace(ns);
    // Creation: the baseline must be a seed.
    refused(
        ns,
        &campaign("rules", 40).replace("baseline: linear_attention", "baseline: mamba"),
        "baseline must be the name of one of the seeds",
    );
    // Sizes: a list past maxItems, a string past maxLength.
    let many_seeds: String = (0..=archlab::api::limits::SEEDS)
        .map(|i| format!("    - {{name: s{i}, library: retnet}}\n"))
        .collect();
    refused(
        ns,
        &campaign("rules", 40).replace("  seeds:\n", &format!("  seeds:\n{many_seeds}")),
        "spec.seeds: Too many",
    );
    let long_name = "n".repeat(archlab::api::limits::SEED_NAME + 1);
    refused(
        ns,
        &campaign("rules", 40).replace("{name: retnet,", &format!("{{name: {long_name},")),
        "spec.seeds[1].name: Too long",
    );
    // Updates of a stored Campaign (no operator watches this namespace: nothing else changes).
    let original = campaign("rules", 40);
    kubectl_ok(&["apply", "-n", ns, "-f", "-"], Some(&original));
    let edits = [
        (
            "budget: {maxExperiments: 18}",
            "budget: {maxExperiments: 6}",
            "a running campaign's budget can only be raised",
        ),
        (
            "{name: retnet, library: retnet}",
            "{name: retnet, library: gla}",
            "seeds cannot change while the campaign exists",
        ),
        (
            "baseline: linear_attention",
            "baseline: retnet",
            "baseline cannot change while the campaign exists",
        ),
        (
            "      promote: 1",
            "      promote: 2",
            "stages cannot change while the campaign exists",
        ),
        (
            "  baseline: linear_attention\n",
            "  baseline: linear_attention\n  constraints: {maxParams: 1000}\n",
            "constraints cannot change while the campaign exists",
        ),
    ];
    let mut last = String::new();
    for (from, to, message) in edits {
        assert!(original.contains(from), "{from}");
        last = refused(ns, &original.replacen(from, to, 1), message);
    }
    // What the rules allow goes through: a raised budget.
    kubectl_ok(
        &["apply", "-n", ns, "-f", "-"],
        Some(&original.replace("maxExperiments: 18", "maxExperiments: 26")),
    );
    let stored = kubectl_ok(
        &[
            "get",
            "camp",
            "rules",
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.budget.maxExperiments}",
        ],
        None,
    );
    assert_eq!(stored.trim(), "26");
    kubectl_ok(&["delete", "camp", "rules", "-n", ns], None);
    eprintln!("kubectl apply refused by a CEL rule:\n{last}");
}

/// A campaign runs to the end: experiments, one pod per attempt, printer columns with values.
fn whole_campaign(work: &Path, pace: Pace) {
    namespace("e2e-run");
    assert_restricted_pods_only("e2e-run");
    let _operator = operator(work, "e2e-run", "run", false);
    // With a volume of `spec.trainer.volumes`: the restricted profile admits the pods, and
    // each attempt saves its model under the checkpoints volume.
    let with_volume = campaign("tiny", 40).replace(
        "image: archlab:e2e}",
        "image: archlab:e2e, checkpoints: scratch, volumes: [{name: scratch, mountPath: /scratch, readOnly: false, emptyDir: {sizeLimit: 1Gi}}]}",
    );
    kubectl_ok(&["apply", "-n", "e2e-run", "-f", "-"], Some(&with_volume));
    let status = wait_for_phase("e2e-run", "tiny", "Completed", pace.campaign(18, 40, 2));
    let experiments = items("exp", "e2e-run");
    // 6 explore; verification retrains the baseline and the promoted program, and the other
    // seed and the program's parent unless they are the baseline: 3 seeds each.
    assert!(
        [12, 15, 18].contains(&experiments.len()),
        "{} experiments",
        experiments.len()
    );
    let progress = format!("{}/18", experiments.len());
    assert_eq!(status["progress"], progress.as_str(), "{status}");
    let phases: Vec<&str> = experiments
        .iter()
        .map(|e| e["status"]["phase"].as_str().unwrap_or("none"))
        .collect();
    assert!(
        phases.iter().all(|p| *p == "succeeded" || *p == "failed"),
        "every experiment ended: {phases:?}"
    );
    assert!(
        experiments
            .iter()
            .filter(|e| e["spec"]["stage"] == "verification")
            .all(|e| e["status"]["phase"] == "succeeded"),
        "verification ran: {phases:?}"
    );
    let pods = items("pods", "e2e-run");
    assert_eq!(pods.len(), expected_pods(&experiments));
    let volumes = work.join("node/volumes");
    let saved: Vec<PathBuf> = pods
        .iter()
        .filter(|pod| pod["status"]["phase"] == "Succeeded")
        .filter_map(|pod| {
            let uid = pod["metadata"]["uid"].as_str()?;
            let experiment = pod["metadata"]["labels"]["archlab.dev/experiment"].as_str()?;
            let attempt = pod["metadata"]["labels"]["archlab.dev/attempt"].as_str()?;
            let name = format!("tiny-e{:05}", experiment.parse::<u32>().ok()?);
            Some(
                volumes
                    .join(uid)
                    .join("scratch/tiny")
                    .join(name)
                    .join(format!("a{attempt}/model.json")),
            )
        })
        .collect();
    assert!(!saved.is_empty(), "some trainer pod succeeded");
    for model in &saved {
        assert!(model.is_file(), "the trainer saved {}", model.display());
    }
    for pod in &pods {
        let volumes = &pod["spec"]["volumes"];
        assert!(
            volumes.as_array().is_some_and(|v| v
                .iter()
                .any(|v| v["name"] == "scratch" && v["emptyDir"]["sizeLimit"] == "1Gi")),
            "{volumes}"
        );
    }
    let table = kubectl_ok(&["get", "camp,exp", "-n", "e2e-run"], None);
    assert!(
        table.contains("Completed") && table.contains(&progress),
        "{table}"
    );
    assert!(
        table.contains("tiny-e00012") && table.contains("verification"),
        "{table}"
    );
    eprintln!("{table}");
}

/// A Campaign with a rung between exploration and verification: the operator creates the
/// rung's Experiments (`stage: screening`, `rung: 1`) after exploration and verifies the rung's
/// best.
fn a_ladder_campaign(work: &Path, pace: Pace) {
    namespace("e2e-ladder");
    // Ended pods are kept 2 s here (an hour by default): the Experiments keep what they need.
    let mut command = operator_command(work, "e2e-ladder", "ladder", false);
    command.args(["--finished-pod-ttl", "2"]);
    let _operator = Running(command.spawn().expect("the operator starts"));
    let manifest = std::fs::read_to_string(Path::new(ROOT).join("tests/fixtures/tiny_ladder.yaml"))
        .expect("fixture")
        .replace(
            "  seed: 3",
            "  seed: 3\n  trainer: {device: cpu, image: archlab:e2e}",
        );
    kubectl_ok(&["apply", "-n", "e2e-ladder", "-f", "-"], Some(&manifest));
    let status = wait_for_one_of(
        "e2e-ladder",
        "ladder",
        &["Completed"],
        pace.campaign(40, 100, 1),
    );
    let experiments = items("exp", "e2e-ladder");
    let rung: Vec<&Value> = experiments
        .iter()
        .filter(|e| e["spec"]["stage"] == "screening")
        .collect();
    assert!(
        (2..=4).contains(&rung.len()) && rung.iter().all(|e| e["spec"]["rung"] == 1),
        "{} screening experiments: {status}",
        rung.len()
    );
    let first_screening = rung
        .iter()
        .filter_map(|e| e["spec"]["id"].as_u64())
        .min()
        .unwrap_or(0);
    assert!(
        experiments
            .iter()
            .filter(|e| e["spec"]["stage"] == "exploration")
            .all(|e| e["spec"]["id"].as_u64().unwrap_or(u64::MAX) < first_screening),
        "the rung starts after exploration"
    );
    assert!(
        experiments
            .iter()
            .all(|e| matches!(e["status"]["phase"].as_str(), Some("succeeded" | "failed"))),
        "every experiment ended"
    );
    eprintln!(
        "{}",
        kubectl_ok(&["get", "camp,exp", "-n", "e2e-ladder"], None)
    );
    // Every ended pod goes once past its TTL; the results stay in the Experiments.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = items("pods", "e2e-ladder").len();
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} ended pods still there a minute after the campaign ended"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let succeeded: Vec<Value> = items("exp", "e2e-ladder")
        .into_iter()
        .filter(|e| e["status"]["phase"] == "succeeded")
        .collect();
    assert!(!succeeded.is_empty());
    assert!(
        succeeded
            .iter()
            .all(|e| e["status"]["attempts"].to_string().contains("val_loss")),
        "each result is kept in its Experiment"
    );
}

/// The instance named by the Lease, if any.
fn lease_holder(namespace: &str) -> Option<String> {
    let output = kubectl(
        &[
            "get",
            "lease",
            "archlab-operator",
            "-n",
            namespace,
            "-o",
            "json",
        ],
        None,
    );
    let value: Value = serde_json::from_slice(&output.stdout).ok()?;
    value["spec"]["holderIdentity"].as_str().map(str::to_string)
}

fn wait_for_holder(namespace: &str, instance: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while lease_holder(namespace).as_deref() != Some(instance) {
        assert!(
            Instant::now() < deadline,
            "{instance} does not hold the Lease within {limit:?} (holder: {:?})",
            lease_holder(namespace)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The operator instances that reported the namespace's Events (`reportingInstance`).
fn reporting_instances(namespace: &str) -> std::collections::BTreeSet<String> {
    items("events.events.k8s.io", namespace)
        .iter()
        .filter(|e| e["reportingController"] == "archlab")
        .filter_map(|e| e["reportingInstance"].as_str().map(str::to_string))
        .collect()
}

/// Two replicas under leader election: only the Lease holder acts. The holder is SIGKILLed
/// while trainers run (no lease release, no clean-up); the standby takes over, adopts the
/// running pods and finishes with nothing duplicated, while the killed one, restarted, waits.
fn two_replicas_and_the_leader_killed(work: &Path, pace: Pace) {
    namespace("e2e-replicas");
    let first = operator(work, "e2e-replicas", "first", true);
    wait_for_holder("e2e-replicas", "first", Duration::from_secs(30));
    let _standby = operator(work, "e2e-replicas", "standby", true);
    // 15 experiments at most: 3 explore (the two seeds and one proposal), then the baseline,
    // the best seed and the promoted proposal with its parent — often the same seed — verify.
    let slow = campaign("slow", 1500).replace("maxExperiments: 18", "maxExperiments: 15");
    kubectl_ok(&["apply", "-n", "e2e-replicas", "-f", "-"], Some(&slow));
    // Two experiments done and a third training: a campaign of three, as far as time goes.
    let limit = pace.campaign(3, 1500, 2);
    let deadline = Instant::now() + limit;
    loop {
        let experiments = items("exp", "e2e-replicas");
        let count = |phase: &str| {
            experiments
                .iter()
                .filter(|e| e["status"]["phase"] == phase)
                .count()
        };
        if count("training") > 0 && count("succeeded") >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "two experiments not trained within {limit:.0?}: {}",
            experiment_phases("e2e-replicas")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(lease_holder("e2e-replicas").as_deref(), Some("first"));
    assert_eq!(
        reporting_instances("e2e-replicas"),
        ["first".to_string()].into(),
        "only the leader acts"
    );
    let standby_log = std::fs::read_to_string(work.join("standby.log")).unwrap_or_default();
    assert!(
        standby_log.contains("standby waits for the Lease") && !standby_log.contains("leads"),
        "{standby_log}"
    );
    drop(first); // SIGKILL
    wait_for_holder("e2e-replicas", "standby", Duration::from_secs(60));
    // The killed replica comes back (as its Deployment would restart it) and waits.
    let _restarted = operator(work, "e2e-replicas", "restarted", true);
    let status = wait_for_phase(
        "e2e-replicas",
        "slow",
        "Completed",
        pace.campaign(15, 1500, 2),
    );
    assert_eq!(lease_holder("e2e-replicas").as_deref(), Some("standby"));
    assert!(
        !reporting_instances("e2e-replicas").contains("restarted"),
        "the restarted replica stayed standby"
    );
    let experiments = items("exp", "e2e-replicas");
    let ids: Vec<u64> = experiments
        .iter()
        .filter_map(|e| e["spec"]["id"].as_u64())
        .collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "no experiment twice"
    );
    assert!(ids.len() <= 15, "the budget held: {status}");
    assert_eq!(
        items("pods", "e2e-replicas").len(),
        expected_pods(&experiments),
        "no pod twice"
    );
}

/// OOMKilled, eviction and a failing exit end with the right reason and Event; the eviction is
/// rerun, not charged as a revision.
fn pod_failures(work: &Path, pace: Pace) {
    namespace("e2e-faults");
    let _operator = operator(work, "e2e-faults", "faults", false);
    // One trainer at a time: the proposals, and so the pods the failures are injected into,
    // are the same on every run.
    let faults = campaign("faults", 40).replace("parallelism: 2", "parallelism: 1");
    kubectl_ok(&["apply", "-n", "e2e-faults", "-f", "-"], Some(&faults));
    // 18 experiments at most and the evicted pod's rerun, one at a time.
    wait_for_phase(
        "e2e-faults",
        "faults",
        "Completed",
        pace.campaign(19, 40, 1),
    );
    let experiments = items("exp", "e2e-faults");
    let find = |id: u64| {
        experiments
            .iter()
            .find(|e| e["spec"]["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("experiment {id}"))
    };
    let oom = find(3);
    assert_eq!(oom["status"]["attempts"][0]["outcome"]["kind"], "crashed");
    let message = oom["status"]["attempts"][0]["outcome"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("OOMKilled"), "{message}");
    assert!(
        oom["status"]["attempts"].as_array().map_or(0, Vec::len) >= 2,
        "revised: {}",
        oom["status"]["attempts"]
    );
    let evicted = find(4);
    assert_eq!(
        evicted["status"]["attempts"].as_array().map_or(0, Vec::len),
        1,
        "not charged: {}",
        evicted["status"]["infrastructureFailures"]
    );
    assert_eq!(
        evicted["status"]["infrastructureFailures"]
            .as_array()
            .map_or(0, Vec::len),
        1
    );
    let failed = find(5);
    let message = failed["status"]["attempts"][0]["outcome"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("ARCHLAB_INJECTED_MISSING"),
        "the trainer's own error: {message}"
    );
    // Preempted (its trainer killed, exit 137) and a runtime that could not start the trainer
    // (StartError): the cluster's doing, rerun once without a revision.
    for (id, expected) in [
        (6, "the cluster took the pod away (PreemptionByScheduler)"),
        (
            2,
            "the container runtime could not start the trainer (StartError)",
        ),
    ] {
        let experiment = find(id);
        let status = &experiment["status"];
        assert_eq!(status["phase"], "succeeded", "{status}");
        assert_eq!(
            status["attempts"].as_array().map_or(0, Vec::len),
            1,
            "not charged: {status}"
        );
        let failures = status["infrastructureFailures"].to_string();
        assert!(failures.contains(expected), "{failures}");
    }
    // The baseline's pod stayed Running behind its sidecar after the trainer finished: its
    // result counts, and the pod was deleted rather than left holding its node.
    let baseline = find(1);
    assert_eq!(
        baseline["status"]["phase"], "succeeded",
        "{}",
        baseline["status"]
    );
    assert!(
        items("pods", "e2e-faults")
            .iter()
            .all(|p| p["metadata"]["name"] != "faults-e00001-a1"),
        "the finished pod held by its sidecar was deleted"
    );
    let events = kubectl_ok(&["get", "events", "-n", "e2e-faults"], None);
    for reason in [
        "TrainerOOMKilled",
        "TrainerEvicted",
        "TrainerFailed",
        "TrainerSucceeded",
        "TrainerDisrupted",
        "TrainerStartFailed",
    ] {
        assert!(events.contains(reason), "no {reason} event:\n{events}");
    }
    assert_eq!(
        items("pods", "e2e-faults").len(),
        expected_pods(&experiments) - 1,
        "every pod but the one held by a sidecar, which was deleted"
    );
    let described = kubectl_ok(
        &["describe", "exp", "faults-e00003", "-n", "e2e-faults"],
        None,
    );
    assert!(described.contains("TrainerOOMKilled"), "{described}");
    eprintln!("{described}");
}

/// A trainer pod that prints nothing (the stand-in runs `sleep` in its place) is stopped at
/// `qa.silenceSeconds`, deleted, and recorded as the program's failure with the watchdog's
/// reason, as a local trainer is; the campaign goes on.
fn a_silent_trainer_pod_is_stopped_and_charged(work: &Path, pace: Pace) {
    namespace("e2e-silent");
    let _operator = operator(work, "e2e-silent", "silent", false);
    // The two seeds only; every other pod prints its first line within a second or two.
    let silent = campaign("silent", 40)
        .replace(
            "qa: {slowFactor: 1000}",
            "qa: {slowFactor: 1000, silenceSeconds: 10}",
        )
        .replace("maxExperiments: 18", "maxExperiments: 2");
    kubectl_ok(&["apply", "-n", "e2e-silent", "-f", "-"], Some(&silent));
    let started = Instant::now();
    let campaign = wait_for_end(
        "e2e-silent",
        "silent",
        pace.campaign(2, 40, 2) + Duration::from_secs(60),
    );
    let experiments = items("exp", "e2e-silent");
    let hung = experiments
        .iter()
        .find(|e| e["spec"]["id"] == 2)
        .unwrap_or_else(|| panic!("no experiment 2: {campaign}"));
    let attempt = &hung["status"]["attempts"][0];
    assert_eq!(attempt["outcome"]["kind"], "crashed", "{attempt}");
    let message = attempt["outcome"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("printed nothing for") && message.contains("limit 10 s"),
        "{message}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "stopped before its silence limit"
    );
    let baseline = experiments.iter().find(|e| e["spec"]["id"] == 1);
    assert_eq!(
        baseline.map(|b| b["status"]["phase"].clone()),
        Some(Value::from("succeeded")),
        "the baseline trained beside it"
    );
    // The hung pod was deleted, not left holding its node.
    assert!(
        items("pods", "e2e-silent")
            .iter()
            .all(|p| p["metadata"]["name"] != "silent-e00002-a1"),
        "the silent pod is gone"
    );
    let events = kubectl_ok(&["get", "events", "-n", "e2e-silent"], None);
    assert!(events.contains("TrainerSilent"), "{events}");
}

/// Trainers asking for more GPUs than the node has stay Pending (the real scheduler says
/// why); past `qa.maxPendingSeconds` each run is an infrastructure failure, rerun once, then
/// the experiment fails as `InfrastructureFailed`, with no revision charged.
fn unschedulable_pods(work: &Path, _: Pace) {
    namespace("e2e-unschedulable");
    let _operator = operator(work, "e2e-unschedulable", "unschedulable", false);
    let greedy = campaign("greedy", 40)
        .replace(
            "image: archlab:e2e}",
            "image: archlab:e2e, resources: {limits: {nvidia.com/gpu: \"4\"}}}",
        )
        .replace(
            "qa: {slowFactor: 1000}",
            "qa: {slowFactor: 1000, maxPendingSeconds: 2, maxInfrastructureRetries: 1}",
        )
        .replace("maxExperiments: 18", "maxExperiments: 2");
    kubectl_ok(
        &["apply", "-n", "e2e-unschedulable", "-f", "-"],
        Some(&greedy),
    );
    // The baseline cannot train, so no fitness can be computed: the campaign fails saying so.
    let campaign = wait_for_end("e2e-unschedulable", "greedy", Duration::from_secs(120));
    assert_eq!(campaign["phase"], "Failed", "{campaign}");
    assert!(
        campaign["conditions"]
            .to_string()
            .contains("BaselineFailed"),
        "{campaign}"
    );
    let experiments = items("exp", "e2e-unschedulable");
    assert!(
        experiments.iter().any(|e| e["spec"]["id"] == 1),
        "the baseline ran"
    );
    for experiment in experiments
        .iter()
        .filter(|e| e["status"]["phase"] == "failed")
    {
        let status = &experiment["status"];
        assert_eq!(status["phase"], "failed", "{status}");
        assert_eq!(
            status["attempts"].as_array().map_or(0, Vec::len),
            1,
            "{status}"
        );
        assert_eq!(status["attempts"][0]["outcome"]["kind"], "infrastructure");
        assert_eq!(
            status["infrastructureFailures"]
                .as_array()
                .map_or(0, Vec::len),
            2,
            "lost, rerun once, lost again: {status}"
        );
        let succeeded = status["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Succeeded"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(succeeded["reason"], "InfrastructureFailed", "{succeeded}");
        let message = succeeded["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("Insufficient nvidia.com/gpu"),
            "the scheduler's reason: {message}"
        );
    }
    // Every run given up on was deleted before its rerun: none is left to start training,
    // unwatched, once a node with GPUs appears.
    let left: Vec<String> = items("pods", "e2e-unschedulable")
        .iter()
        .map(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(left.is_empty(), "pods given up on remain: {left:?}");
    let events = kubectl_ok(&["get", "events", "-n", "e2e-unschedulable"], None);
    assert!(events.contains("TrainerUnschedulable"), "{events}");
    let described = kubectl_ok(
        &[
            "describe",
            "exp",
            "greedy-e00001",
            "-n",
            "e2e-unschedulable",
        ],
        None,
    );
    eprintln!("{described}");
}

/// A namespace whose ResourceQuota admits no pod: the API server refuses each trainer pod, and
/// that is the cluster's doing — rerun, never charged as a revision, then the experiment fails
/// as `InfrastructureFailed` quoting the quota.
fn a_resource_quota_refusal_is_infrastructure(work: &Path, _: Pace) {
    namespace("e2e-quota");
    kubectl_ok(
        &[
            "create",
            "quota",
            "no-pods",
            "--hard=pods=0",
            "-n",
            "e2e-quota",
        ],
        None,
    );
    // The quota admits nothing only once the controller has counted the namespace.
    let deadline = Instant::now() + Duration::from_secs(30);
    while kubectl_ok(
        &[
            "get",
            "quota",
            "no-pods",
            "-n",
            "e2e-quota",
            "-o",
            "jsonpath={.status.hard.pods}",
        ],
        None,
    ) != "0"
    {
        assert!(Instant::now() < deadline, "the quota was never counted");
        std::thread::sleep(Duration::from_millis(250));
    }
    let _operator = operator(work, "e2e-quota", "quota", false);
    let refused = campaign("quota", 40)
        .replace(
            "qa: {slowFactor: 1000}",
            "qa: {slowFactor: 1000, maxInfrastructureRetries: 1}",
        )
        .replace("maxExperiments: 18", "maxExperiments: 2");
    kubectl_ok(&["apply", "-n", "e2e-quota", "-f", "-"], Some(&refused));
    let campaign = wait_for_end("e2e-quota", "quota", Duration::from_secs(120));
    assert_eq!(campaign["phase"], "Failed", "{campaign}");
    let baseline = items("exp", "e2e-quota")
        .into_iter()
        .find(|e| e["spec"]["id"] == 1)
        .expect("the baseline");
    let status = &baseline["status"];
    assert_eq!(status["phase"], "failed", "{status}");
    assert_eq!(
        status["attempts"].as_array().map_or(0, Vec::len),
        1,
        "{status}"
    );
    assert_eq!(
        status["attempts"][0]["outcome"]["kind"], "infrastructure",
        "{status}"
    );
    let failures = status["infrastructureFailures"].to_string();
    assert!(failures.contains("exceeded quota"), "{failures}");
    assert!(items("pods", "e2e-quota").is_empty());
}

/// What Kueue's pod webhook does, done by a MutatingAdmissionPolicy: a pod labelled with a
/// queue gets the scheduling gate `kueue.x-k8s.io/admission`. A Campaign naming a queue gets
/// that label; gated pods are queued, not unschedulable, bounded by `qa.maxQueuedSeconds`
/// (infrastructure, never a revision), and each is deleted before its rerun.
fn a_pod_held_by_a_queue_is_bounded_by_its_own_limit(work: &Path, _: Pace) {
    namespace("e2e-queue");
    let gate = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: e2e-kueue-gate}
spec:
  failurePolicy: Fail
  reinvocationPolicy: Never
  matchConstraints:
    resourceRules:
      - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}
  matchConditions:
    - name: queued
      expression: "has(object.metadata.labels) && 'kueue.x-k8s.io/queue-name' in object.metadata.labels"
  mutations:
    - patchType: ApplyConfiguration
      applyConfiguration:
        expression: >-
          Object{spec: Object.spec{schedulingGates: [Object.spec.schedulingGates{name: "kueue.x-k8s.io/admission"}]}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: e2e-kueue-gate}
spec:
  policyName: e2e-kueue-gate
  matchResources:
    namespaceSelector:
      matchLabels: {kubernetes.io/metadata.name: e2e-queue}
"#;
    kubectl_ok(&["apply", "-f", "-"], Some(gate));
    // The server mutates pods once it has read the policy: probe until a labelled pod is gated.
    let probe = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe",
        "labels": {"kueue.x-k8s.io/queue-name": "team-a"}},
        "spec": {"containers": [{"name": "c", "image": "busybox",
            "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true,
                "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}}]}}"#;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let output = kubectl(
            &[
                "create",
                "--dry-run=server",
                "-n",
                "e2e-queue",
                "-o",
                "json",
                "-f",
                "-",
            ],
            Some(probe),
        );
        let pod: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        if pod["spec"]["schedulingGates"][0]["name"] == "kueue.x-k8s.io/admission" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gate never applied: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let _operator = operator(work, "e2e-queue", "queue", false);
    let queued = campaign("queued", 40)
        .replace(
            "image: archlab:e2e}",
            "image: archlab:e2e, queueName: team-a}",
        )
        .replace(
            "qa: {slowFactor: 1000}",
            "qa: {slowFactor: 1000, maxPendingSeconds: 600, maxQueuedSeconds: 2, maxInfrastructureRetries: 1}",
        )
        .replace("maxExperiments: 18", "maxExperiments: 2");
    kubectl_ok(&["apply", "-n", "e2e-queue", "-f", "-"], Some(&queued));
    let campaign = wait_for_end("e2e-queue", "queued", Duration::from_secs(120));
    let _ = kubectl(&["delete", "-f", "-"], Some(gate));
    assert_eq!(campaign["phase"], "Failed", "{campaign}");
    let baseline = items("exp", "e2e-queue")
        .into_iter()
        .find(|e| e["spec"]["id"] == 1)
        .expect("the baseline");
    let status = &baseline["status"];
    assert_eq!(
        status["attempts"].as_array().map_or(0, Vec::len),
        1,
        "{status}"
    );
    let failures = status["infrastructureFailures"].to_string();
    assert!(
        failures.contains(
            "the pod stayed queued longer than qa.maxQueuedSeconds (scheduling gates: kueue.x-k8s.io/admission)"
        ),
        "{failures}"
    );
    assert!(!failures.contains("no node could run"), "{failures}");
    let events = kubectl_ok(&["get", "events", "-n", "e2e-queue"], None);
    assert!(events.contains("TrainerQueuedTooLong"), "{events}");
    assert!(
        items("pods", "e2e-queue").is_empty(),
        "every gated pod was deleted before its rerun"
    );
}

/// Deleting a Campaign mid-run: the real garbage collector removes its Experiments and their
/// pods (owner references), and the operator's engine stops without re-creating anything.
fn deleting_a_campaign_collects_its_objects(work: &Path, _: Pace) {
    namespace("e2e-delete");
    let _operator = operator(work, "e2e-delete", "delete", false);
    kubectl_ok(
        &["apply", "-n", "e2e-delete", "-f", "-"],
        Some(&campaign("doomed", 1500)),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while !items("pods", "e2e-delete")
        .iter()
        .any(|p| p["status"]["phase"] == "Running")
    {
        assert!(Instant::now() < deadline, "no trainer ran within 2 minutes");
        std::thread::sleep(Duration::from_millis(200));
    }
    kubectl_ok(&["delete", "camp", "doomed", "-n", "e2e-delete"], None);
    let collected = || {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let left = items("exp", "e2e-delete").len() + items("pods", "e2e-delete").len();
            if left == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{left} Experiments and pods left 90 s after the Campaign was deleted"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    // The operator's watch sees the deletion and stops the engine (not its 15 s idle look,
    // which says "the Campaign is gone"); whatever the engine wrote meanwhile is owned by the
    // deleted Campaign and is collected too, and then nothing comes back.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(work.join("delete.log")).unwrap_or_default();
        if log.contains("the Campaign was deleted; its engine stops") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the watch did not stop the engine: {log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    collected();
    std::thread::sleep(Duration::from_secs(3));
    assert!(items("exp", "e2e-delete").is_empty() && items("pods", "e2e-delete").is_empty());
}

const SECRET: &str = "sk-e2e-7c6b5a49-DO-NOT-LEAK";

/// A campaign whose agents are an LLM (a scripted endpoint on 127.0.0.1) with the API key in a
/// Secret: the operator reads it and sends it, and it appears in no object, Event or log.
fn the_llm_key_from_a_secret_stays_secret(work: &Path, pace: Pace) {
    namespace("e2e-llm");
    let server = common::llm_server::serve(common::llm_server::good_endpoint());
    kubectl_ok(
        &[
            "create",
            "secret",
            "generic",
            "llm",
            "-n",
            "e2e-llm",
            &format!("--from-literal=apiKey={SECRET}"),
        ],
        None,
    );
    let _operator = operator(work, "e2e-llm", "llm", false);
    let manifest = campaign("thinking", 40).replace(
        "  parallelism: 2\n",
        &format!(
            "  parallelism: 2\n  agents:\n    backend: llm\n    llm:\n      baseUrl: {}\n      apiKeySecretRef: {{name: llm, key: apiKey}}\n      model: scripted\n      timeoutSeconds: 5\n      maxRetries: 1\n      backoffSeconds: 0.01\n",
            server.url
        ),
    );
    kubectl_ok(&["apply", "-n", "e2e-llm", "-f", "-"], Some(&manifest));
    let status = wait_for_phase("e2e-llm", "thinking", "Completed", pace.campaign(18, 40, 2));
    assert!(
        status["agents"]["roles"]["researcher"]["requests"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "the LLM agents proposed: {status}"
    );
    let seen = server.seen.lock().expect("requests").clone();
    assert!(
        seen.iter().any(|s| s.body["messages"][0]["content"]
            .as_str()
            .is_some_and(|c| c.contains("You are the Researcher"))),
        "the Researcher was asked"
    );
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some(&format!("Bearer {SECRET}") as &str)),
        "every request carried the key from the Secret"
    );
    // An endpoint that quotes the credentials it refused in its 401: the operator records the
    // agents' failures (Experiments, conditions, Events) with the body redacted.
    let echo = common::llm_server::serve(Box::new(|seen, _| {
        common::llm_server::status(
            401,
            &format!(
                r#"{{"error": {{"message": "invalid credentials: {}"}}}}"#,
                seen.authorization.clone().unwrap_or_default()
            ),
        )
    }));
    let echoing = manifest
        .replace("name: thinking", "name: echo")
        .replace(&server.url, &echo.url)
        .replace(
            "maxRetries: 1",
            "maxRetries: 1\n      fallbackToEvolutionary: false",
        );
    kubectl_ok(&["apply", "-n", "e2e-llm", "-f", "-"], Some(&echoing));
    wait_for_phase("e2e-llm", "echo", "Completed", pace.campaign(18, 40, 2));
    assert!(
        echo.seen
            .lock()
            .expect("requests")
            .iter()
            .any(|s| s.authorization.as_deref() == Some(&format!("Bearer {SECRET}") as &str)),
        "the key was sent to the echoing endpoint"
    );
    let everything = kubectl_ok(
        &[
            "get",
            "campaigns,experiments,pods,events,events.events.k8s.io,leases,configmaps",
            "-n",
            "e2e-llm",
            "-o",
            "yaml",
        ],
        None,
    );
    assert!(
        everything.contains("thinking-e00001"),
        "the objects were read"
    );
    assert!(
        everything.contains("invalid credentials: Bearer [redacted]"),
        "the 401's body was recorded, redacted"
    );
    assert!(!everything.contains(SECRET), "the key is in an object");
    let log = std::fs::read_to_string(work.join("llm.log")).expect("operator log");
    assert!(!log.contains(SECRET), "the key is in the operator's log");
    let node_log = std::fs::read_to_string(work.join("node-agent.log")).unwrap_or_default();
    assert!(!node_log.contains(SECRET), "the key reached a trainer pod");
}

/// The port the operator logged serving `/metrics` on.
fn metrics_port(log: &str) -> Option<u16> {
    let line = log.lines().find(|l| l.contains("serving /metrics"))?;
    let after = &line[line.rfind("127.0.0.1:")? + "127.0.0.1:".len()..];
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

/// `helm install` of the chart (CRDs already applied without their CEL rules), every
/// optional object of the chart accepted by the API server (`--dry-run=server`), and the
/// operator run under the chart's ServiceAccount (impersonated): its RBAC suffices for a whole
/// campaign and its trainer defaults reach the pods. Its `/metrics` pass `promtool check
/// metrics`.
fn the_helm_chart_installs_and_its_rbac_suffices(work: &Path, pace: Pace) {
    let Some(helm) = tool("helm") else { return };
    let chart = Path::new(ROOT).join("charts/archlab");
    let chart = chart.display().to_string();
    let _ = Command::new(&helm)
        .args(["uninstall", "archlab", "-n", "e2e-helm"])
        .output();
    namespace("e2e-helm");
    // A Campaign from before the policy: it asks for the operator's own account.
    let legacy =
        campaign("legacy", 40).replace(", image: archlab:e2e}", ", serviceAccountName: archlab}");
    kubectl_ok(&["apply", "-n", "e2e-helm", "-f", "-"], Some(&legacy));
    let install = Command::new(&helm)
        .args([
            "install",
            "archlab",
            &chart,
            "-n",
            "e2e-helm",
            "--skip-crds",
            "--set",
            "replicaCount=0",
            "--set",
            "llm.secretName=llm",
            "--set",
            "llm.endpoints={http://llm.e2e.svc:8000/v1}",
            "--set",
            "policy.volumeSources={persistentVolumeClaim}",
        ])
        .output()
        .expect("helm runs");
    assert!(
        install.status.success(),
        "helm install: {}",
        String::from_utf8_lossy(&install.stderr)
    );
    // Every optional part, checked by the server (the prometheus-operator kinds aside: their
    // CRDs are not in this cluster; tests/chart.rs checks them).
    let rendered = Command::new(&helm)
        .args(["template", "archlab", &chart, "-n", "e2e-helm", "-f"])
        .arg(Path::new(ROOT).join("charts/archlab/ci/all-enabled-values.yaml"))
        .output()
        .expect("helm runs");
    let documents: Vec<String> = String::from_utf8_lossy(&rendered.stdout)
        .split("\n---")
        .filter(|d| !d.contains("apiVersion: monitoring.coreos.com/v1") && d.contains("kind:"))
        .map(str::to_string)
        .collect();
    // Twelve optional objects and the PodDisruptionBudget (three replicas).
    assert_eq!(documents.len(), 13, "{documents:?}");
    let applied = kubectl(
        &["apply", "--dry-run=server", "-n", "e2e-helm", "-f", "-"],
        Some(&documents.join("\n---\n")),
    );
    let warnings = String::from_utf8_lossy(&applied.stderr);
    assert!(applied.status.success(), "{warnings}");
    // The Deployment's pods would be admitted by the namespace's restricted profile.
    assert!(!warnings.contains("PodSecurity"), "{warnings}");
    let accepted = String::from_utf8_lossy(&applied.stdout);
    assert!(
        accepted.contains("clusterrole.rbac.authorization.k8s.io/archlab"),
        "{accepted}"
    );
    assert!(
        accepted.contains("networkpolicy.networking.k8s.io"),
        "{accepted}"
    );

    // The API server refuses what the policy forbids, with the policy's message. The policy
    // takes effect once the server has read it: the first refusal may take a moment.
    let refusals = [
        (
            campaign("borrower", 40).replace(", image: archlab:e2e}", ", serviceAccountName: archlab}"),
            "spec.trainer.serviceAccountName: archlab is not allowed by the archlab policy (allowed: archlab-trainer)",
        ),
        (
            campaign("miner", 40).replace("image: archlab:e2e}", "image: 'evil.example/miner:1'}"),
            "spec.trainer.image: evil.example/miner:1 is not allowed by the archlab policy (allowed: ghcr.io/archlab/archlab)",
        ),
        (
            campaign("exfiltrator", 40).replace(", image: archlab:e2e", "").replace(
                "  parallelism: 2\n",
                "  parallelism: 2\n  agents:\n    backend: llm\n    llm: {baseUrl: 'http://evil.example/v1', model: m, apiKeySecretRef: {name: llm, key: apiKey}}\n",
            ),
            "spec.agents.llm.baseUrl: http://evil.example/v1 is not allowed by the archlab policy (allowed: http://llm.e2e.svc:8000/v1)",
        ),
        (
            campaign("tokened", 40).replace(", image: archlab:e2e}", ", mountServiceAccountToken: true}"),
            "spec.trainer.mountServiceAccountToken: the archlab policy does not allow trainer pods a service-account token",
        ),
        (
            campaign("vip", 40).replace(", image: archlab:e2e}", ", priorityClassName: system-cluster-critical}"),
            "spec.trainer.priorityClassName: system-cluster-critical is not allowed by the archlab policy (allowed: none)",
        ),
        (
            campaign("kata", 40).replace(", image: archlab:e2e}", ", runtimeClassName: kata}"),
            "spec.trainer.runtimeClassName: kata is not allowed by the archlab policy (allowed: none)",
        ),
        (
            campaign("everywhere", 40).replace(", image: archlab:e2e}", ", tolerations: [{operator: Exists}]}"),
            "spec.trainer.tolerations: the archlab policy allows tolerating only the taint keys none",
        ),
        (
            campaign("scratch", 40).replace(
                ", image: archlab:e2e}",
                ", volumes: [{name: s, mountPath: /s, readOnly: false, emptyDir: {}}]}",
            ),
            "spec.trainer.volumes: the archlab policy allows only persistentVolumeClaim volumes",
        ),
        (
            // Nine trainers of one GPU (the chart's default for a cuda trainer).
            campaign("greedy", 40)
                .replace("{device: cpu, image: archlab:e2e}", "{}")
                .replace("  parallelism: 2\n", "  parallelism: 9\n"),
            "spec.parallelism: the archlab policy allows 8 GPUs per Campaign at once",
        ),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    for (manifest, expected) in &refusals {
        loop {
            let output = kubectl(&["apply", "-n", "e2e-helm", "-f", "-"], Some(manifest));
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            if !output.status.success() {
                assert!(
                    stderr.contains(expected),
                    "expected `{expected}` in: {stderr}"
                );
                eprintln!("refused by the admission policy: {stderr}");
                break;
            }
            // Accepted before the policy was active: take it back and try again.
            let name = manifest
                .lines()
                .find_map(|l| l.trim().strip_prefix("name: "))
                .unwrap_or_default()
                .to_string();
            let _ = kubectl(
                &["delete", "camp", &name, "-n", "e2e-helm", "--wait=true"],
                None,
            );
            assert!(
                Instant::now() < deadline,
                "the admission policy never refused: {expected}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    // What the policy allows passes it: an endpoint path below the allowed one, 8 GPUs.
    let allowed = campaign("allowed", 40)
        .replace("{device: cpu, image: archlab:e2e}", "{}")
        .replace(
            "  parallelism: 2\n",
            "  parallelism: 8\n  agents:\n    backend: llm\n    llm: {baseUrl: 'http://llm.e2e.svc:8000/v1/', model: m}\n",
        );
    kubectl_ok(
        &["apply", "--dry-run=server", "-n", "e2e-helm", "-f", "-"],
        Some(&allowed),
    );

    // The operator as the chart's ServiceAccount.
    let kubeconfig_path = std::env::var("KUBECONFIG").expect("KUBECONFIG");
    let mut kubeconfig: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&kubeconfig_path).expect("kubeconfig"))
            .expect("kubeconfig YAML");
    for user in kubeconfig["users"].as_sequence_mut().expect("users") {
        user["user"]["as"] = "system:serviceaccount:e2e-helm:archlab".into();
        user["user"]["as-groups"] = serde_yaml::to_value([
            "system:serviceaccounts",
            "system:serviceaccounts:e2e-helm",
            "system:authenticated",
        ])
        .expect("groups");
    }
    let impersonating = work.join("kubeconfig-chart");
    std::fs::write(
        &impersonating,
        serde_yaml::to_string(&kubeconfig).expect("YAML"),
    )
    .expect("write kubeconfig");
    let denied = kubectl(
        &[
            "--kubeconfig",
            impersonating.to_str().expect("utf-8"),
            "get",
            "secrets",
            "-n",
            "e2e-helm",
        ],
        None,
    );
    assert!(
        !denied.status.success(),
        "the chart's account may not list Secrets"
    );
    let defaults = kubectl_ok(
        &[
            "get",
            "configmap",
            "archlab-trainer-defaults",
            "-n",
            "e2e-helm",
            "-o",
            "jsonpath={.data.trainer-defaults\\.yaml}",
        ],
        None,
    );
    let defaults_path = work.join("trainer-defaults.yaml");
    std::fs::write(&defaults_path, &defaults).expect("write defaults");
    // The default trainer pod (a cuda trainer that names no resources), as the operator builds
    // it from the chart's defaults: the server gives it a QoS class above BestEffort.
    let chart_defaults: archlab::api::trainer::TrainerDefaults =
        serde_yaml::from_str(&defaults).expect("the chart's trainer defaults");
    let config = archlab::api::parse_campaign(&campaign("qos", 40))
        .expect("fixture")
        .spec
        .stages
        .exploration
        .train;
    let default_pod = archlab::operator::pod::trainer_pod(
        &archlab::operator::pod::TrainerRun {
            campaign: "qos",
            experiment_name: "qos-e00001",
            experiment_id: 1,
            attempt: 1,
            retry: 0,
            program: "mixer m(d_model) {\n  return x |> linear(d_model)\n}\n",
            config: &config,
        },
        &chart_defaults.apply(&archlab::api::trainer::TrainerSpec::default()),
        3600,
        "e2e-helm",
        Default::default(),
    )
    .expect("the default pod");
    let mut default_pod = serde_json::to_value(&default_pod).expect("JSON");
    default_pod["apiVersion"] = "v1".into();
    default_pod["kind"] = "Pod".into();
    if let Some(meta) = default_pod["metadata"].as_object_mut() {
        meta.remove("ownerReferences");
    }
    let created: Value = serde_json::from_str(&kubectl_ok(
        &[
            "create",
            "--dry-run=server",
            "-n",
            "e2e-helm",
            "-o",
            "json",
            "-f",
            "-",
        ],
        Some(&default_pod.to_string()),
    ))
    .expect("JSON");
    assert_eq!(created["status"]["qosClass"], "Burstable", "{created}");
    assert_eq!(created["spec"]["serviceAccountName"], "archlab-trainer");

    // The policy ConfigMap as the chart mounts it: a file per key.
    let policy: Value = serde_json::from_str(&kubectl_ok(
        &[
            "get",
            "configmap",
            "archlab-policy",
            "-n",
            "e2e-helm",
            "-o",
            "json",
        ],
        None,
    ))
    .expect("JSON");
    let policy_dir = work.join("policy");
    std::fs::create_dir_all(&policy_dir).expect("policy dir");
    for (key, value) in policy["data"].as_object().expect("data") {
        std::fs::write(policy_dir.join(key), value.as_str().unwrap_or_default()).expect("write");
    }
    let mut command = operator_command(work, "e2e-helm", "charted", true);
    command
        .env("KUBECONFIG", &impersonating)
        .arg("--trainer-defaults")
        .arg(&defaults_path)
        .arg("--policy-dir")
        .arg(&policy_dir);
    let _operator = Running(command.spawn().expect("the operator starts"));
    let charted = campaign("charted", 40).replace(", image: archlab:e2e", "");
    kubectl_ok(&["apply", "-n", "e2e-helm", "-f", "-"], Some(&charted));
    wait_for_phase("e2e-helm", "charted", "Completed", pace.campaign(18, 40, 2));
    let log = std::fs::read_to_string(work.join("charted.log")).expect("log");
    assert!(!log.to_lowercase().contains("forbidden"), "{log}");
    let images: Vec<String> = items("pods", "e2e-helm")
        .iter()
        .filter_map(|p| {
            p["spec"]["containers"][0]["image"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert!(!images.is_empty());
    assert!(
        images
            .iter()
            .all(|i| i == archlab::api::trainer::DEFAULT_IMAGE),
        "the chart's trainer image: {images:?}"
    );
    // No pod ever ran under the operator's account: every one under the trainer account,
    // without a token; the Campaign from before the policy got none at all.
    for pod in items("pods", "e2e-helm") {
        assert_eq!(
            pod["spec"]["serviceAccountName"], "archlab-trainer",
            "{pod}"
        );
        assert_ne!(pod["status"]["qosClass"], "BestEffort", "{pod}");
        assert_eq!(pod["spec"]["automountServiceAccountToken"], false, "{pod}");
        assert_ne!(pod["metadata"]["labels"]["archlab.dev/campaign"], "legacy");
    }
    let legacy = wait_for_campaign(
        "e2e-helm",
        "legacy",
        "refused by the operator's policy",
        Duration::from_secs(30),
        |c| condition(c, "SpecAccepted")["reason"] == "PolicyViolation",
    );
    let message = condition(&legacy, "SpecAccepted")["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains(
            "spec.trainer.serviceAccountName: archlab is not allowed by the archlab policy"
        ),
        "{message}"
    );
    assert!(
        items("exp", "e2e-helm")
            .iter()
            .all(|e| e["spec"]["campaign"] != "legacy")
    );

    // The real scrape passes promtool's lint.
    let port = metrics_port(&log).expect("the metrics port in the log");
    let metrics = http_get(port, "/metrics");
    assert!(
        metrics.contains(r#"archlab_campaign_running{campaign="charted",namespace="e2e-helm"} 0"#),
        "{metrics}"
    );
    if let Some(promtool) = tool("promtool") {
        let mut check = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool runs");
        {
            use std::io::Write;
            let mut input = check.stdin.take().expect("stdin");
            input.write_all(metrics.as_bytes()).expect("write");
        }
        let output = check.wait_with_output().expect("promtool ends");
        assert!(
            output.status.success(),
            "promtool check metrics:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
