//! End to end against a real Kubernetes API server: the CRDs from `crds/` and Campaigns applied
//! with `kubectl`, the real `archlab operator` binary, and `scripts/e2e/node_agent.py` standing
//! in for the kubelet (it runs pods as local processes and serves their logs).
//!
//! Runs when `KUBECONFIG` names a cluster (`eval "$(scripts/test-cluster.sh env)"` after
//! `scripts/test-cluster.sh start`); otherwise prints that it skipped, and fails instead when
//! `ARCHLAB_REQUIRE_CLUSTER=1`. The scenarios share one node, so they run in sequence inside
//! one test.

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
    Running(command.spawn().expect("the operator starts"))
}

fn namespace(name: &str) {
    let _ = kubectl(
        &["delete", "namespace", name, "--wait=true", "--timeout=60s"],
        None,
    );
    kubectl_ok(&["create", "namespace", name], None);
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

/// Waits for the Campaign's phase; the status when it came.
fn wait_for_phase(namespace: &str, name: &str, phase: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let output = kubectl(&["get", "camp", name, "-n", namespace, "-o", "json"], None);
        let value: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        if value["status"]["phase"] == phase {
            return value["status"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "campaign {namespace}/{name} not {phase} within {limit:?}: {}",
            value["status"]["conditions"]
        );
        std::thread::sleep(Duration::from_millis(500));
    }
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
    let crds = std::process::Command::new(env!("CARGO_BIN_EXE_archlab"))
        .args(["crd", "--no-cel"])
        .output()
        .expect("archlab crd");
    kubectl_ok(
        &["apply", "-f", "-"],
        Some(&String::from_utf8_lossy(&crds.stdout)),
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
        ],
    );
    whole_campaign(&work);
    operator_killed_mid_campaign(&work);
    pod_failures(&work);
}

/// A campaign runs to the end: experiments, one pod per attempt, printer columns with values.
fn whole_campaign(work: &Path) {
    let started = Instant::now();
    namespace("e2e-run");
    let _operator = operator(work, "e2e-run", "run", false);
    kubectl_ok(
        &["apply", "-n", "e2e-run", "-f", "-"],
        Some(&campaign("tiny", 40)),
    );
    let status = wait_for_phase("e2e-run", "tiny", "Completed", Duration::from_secs(300));
    assert_eq!(status["progress"], "12/12", "{status}");
    let experiments = items("exp", "e2e-run");
    assert_eq!(experiments.len(), 12);
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
    assert_eq!(items("pods", "e2e-run").len(), expected_pods(&experiments));
    let table = kubectl_ok(&["get", "camp,exp", "-n", "e2e-run"], None);
    assert!(
        table.contains("Completed") && table.contains("12/12"),
        "{table}"
    );
    assert!(
        table.contains("tiny-e00012") && table.contains("verification"),
        "{table}"
    );
    eprintln!(
        "{table}\nwhole campaign: {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

/// The operator is SIGKILLed while trainers run; a new one (through the Lease) adopts the pods
/// and finishes with nothing duplicated.
fn operator_killed_mid_campaign(work: &Path) {
    let started = Instant::now();
    namespace("e2e-restart");
    let first = operator(work, "e2e-restart", "first", true);
    kubectl_ok(
        &["apply", "-n", "e2e-restart", "-f", "-"],
        Some(&campaign("slow", 1500)),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let training = items("exp", "e2e-restart")
            .iter()
            .filter(|e| e["status"]["phase"] == "training")
            .count();
        let finished = items("exp", "e2e-restart")
            .iter()
            .filter(|e| e["status"]["phase"] == "succeeded")
            .count();
        if training > 0 && finished >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nothing trained within 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(first); // SIGKILL: no lease release, no clean-up
    let _second = operator(work, "e2e-restart", "second", true);
    let status = wait_for_phase("e2e-restart", "slow", "Completed", Duration::from_secs(400));
    let experiments = items("exp", "e2e-restart");
    let ids: Vec<u64> = experiments
        .iter()
        .filter_map(|e| e["spec"]["id"].as_u64())
        .collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "no experiment twice"
    );
    assert!(ids.len() <= 12, "the budget held: {status}");
    assert_eq!(
        items("pods", "e2e-restart").len(),
        expected_pods(&experiments),
        "no pod twice"
    );
    eprintln!(
        "operator killed and replaced: {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

/// OOMKilled, eviction and a failing exit end with the right reason and Event; the eviction is
/// rerun, not charged as a revision.
fn pod_failures(work: &Path) {
    let started = Instant::now();
    namespace("e2e-faults");
    let _operator = operator(work, "e2e-faults", "faults", false);
    // One trainer at a time: the proposals, and so the pods the failures are injected into,
    // are the same on every run.
    let faults = campaign("faults", 40).replace("parallelism: 2", "parallelism: 1");
    kubectl_ok(&["apply", "-n", "e2e-faults", "-f", "-"], Some(&faults));
    wait_for_phase(
        "e2e-faults",
        "faults",
        "Completed",
        Duration::from_secs(300),
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
    let events = kubectl_ok(&["get", "events", "-n", "e2e-faults"], None);
    for reason in [
        "TrainerOOMKilled",
        "TrainerEvicted",
        "TrainerFailed",
        "TrainerSucceeded",
    ] {
        assert!(events.contains(reason), "no {reason} event:\n{events}");
    }
    assert_eq!(
        items("pods", "e2e-faults").len(),
        expected_pods(&experiments)
    );
    eprintln!("pod failures: {:.0} s", started.elapsed().as_secs_f64());
}
