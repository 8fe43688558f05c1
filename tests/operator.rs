//! The operator without a cluster: `archlab operator` fails fast with one line when no API
//! server answers, and its memory and body send the requests Kubernetes expects, checked
//! against kube's mock service (tower-test) — server-side applies with one field manager,
//! owner references, identical bodies when repeated, running pods adopted rather than restarted.
//! The same code runs against a real API server in the end-to-end tests.

use archlab::api::experiment::Experiment as ExperimentResource;
use archlab::core::lifecycle::{Attempt, Event, Experiment, Outcome, Phase, Stage, TrainSummary};
use archlab::engine::Command;
use archlab::memory::Store;
use archlab::operator::actor::ToEngine;
use archlab::operator::body::{Body, BodyConfig};
use archlab::operator::store::KubeStore;
use http::{Request, Response};
use kube::client::Body as KubeBody;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::Command as Process;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// `archlab operator` with no cluster

fn operator_without_cluster(kubeconfig: Option<&str>, extra: &[&str]) -> (i32, String, Duration) {
    let home = tempdir("home");
    let mut command = Process::new(env!("CARGO_BIN_EXE_archlab"));
    command
        .arg("operator")
        .args(["--metrics-address", "127.0.0.1:0"])
        .args(extra)
        .env("HOME", &home)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("ARCHLAB_LOG");
    match kubeconfig {
        Some(text) => {
            let path = home.join("kubeconfig");
            std::fs::write(&path, text).expect("write kubeconfig");
            command.env("KUBECONFIG", path);
        }
        None => {
            command.env_remove("KUBECONFIG");
        }
    }
    let started = Instant::now();
    let output = command.output().expect("archlab runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        started.elapsed(),
    )
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("archlab-operator-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn kubeconfig(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"{server}\"}}\nusers:\n- name: u\n  user: {{token: not-a-real-token}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
    )
}

fn assert_one_clear_line(code: i32, stderr: &str, elapsed: Duration, expected: &str) {
    assert_eq!(code, 1, "{stderr}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(
        lines[0].contains(expected),
        "expected `{expected}` in: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !stderr.contains("not-a-real-token"),
        "the token leaked: {stderr}"
    );
}

#[test]
fn without_any_cluster_configured_the_operator_says_so_in_one_line() {
    let (code, stderr, elapsed) = operator_without_cluster(None, &[]);
    assert_one_clear_line(code, &stderr, elapsed, "no Kubernetes cluster configured");
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let home = tempdir("plain-logs");
    let output = Process::new(env!("CARGO_BIN_EXE_archlab"))
        .args(["operator", "--metrics-address", "127.0.0.1:0"])
        .env("HOME", &home)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("ARCHLAB_LOG", "info")
        .output()
        .expect("archlab runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("serving /metrics"),
        "an info line: {stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "ANSI codes in a piped log: {stderr:?}"
    );
}

#[test]
fn bad_trainer_defaults_are_one_line_naming_the_file_and_the_field() {
    let dir = tempdir("defaults");
    let missing = dir.join("absent.yaml");
    let (code, stderr, elapsed) = operator_without_cluster(
        None,
        &["--trainer-defaults", missing.to_str().expect("utf-8")],
    );
    assert_one_clear_line(code, &stderr, elapsed, "absent.yaml");
    let wrong = dir.join("defaults.yaml");
    std::fs::write(&wrong, "image: registry/archlab:1\ngpusPerTrainer: two\n").expect("write");
    let (code, stderr, elapsed) = operator_without_cluster(
        None,
        &["--trainer-defaults", wrong.to_str().expect("utf-8")],
    );
    assert_one_clear_line(code, &stderr, elapsed, "defaults.yaml");
    assert!(stderr.contains("gpusPerTrainer"), "{stderr}");
}

#[test]
fn a_refused_connection_is_one_line_naming_the_server() {
    // A port nothing listens on: bind one, then free it.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let server = format!("https://127.0.0.1:{port}");
    let (code, stderr, elapsed) = operator_without_cluster(Some(&kubeconfig(&server)), &[]);
    assert_one_clear_line(
        code,
        &stderr,
        elapsed,
        &format!("cannot reach the Kubernetes API server at {server}"),
    );
    assert!(stderr.contains("refused"), "{stderr}");
}

#[test]
fn a_server_that_never_answers_times_out_within_the_limit() {
    // Accepts connections and says nothing (a hung API server or a black-holed route).
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().map(|a| a.port()).expect("port");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let server = format!("https://127.0.0.1:{port}");
    let (code, stderr, elapsed) =
        operator_without_cluster(Some(&kubeconfig(&server)), &["--connect-timeout", "2"]);
    assert_one_clear_line(code, &stderr, elapsed, "no answer within 2 s");
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
}

/// `GET path` over plain HTTP/1.0: (status code, body).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Some((code, body))
}

#[test]
fn health_readiness_and_metrics_are_served_while_the_api_server_is_awaited() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().map(|a| a.port()).expect("port");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let metrics_port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let home = tempdir("metrics");
    let config = home.join("kubeconfig");
    std::fs::write(&config, kubeconfig(&format!("https://127.0.0.1:{port}"))).expect("kubeconfig");
    let mut child = Process::new(env!("CARGO_BIN_EXE_archlab"))
        .args(["operator", "--connect-timeout", "6", "--metrics-address"])
        .arg(format!("127.0.0.1:{metrics_port}"))
        .env("KUBECONFIG", &config)
        .env("HOME", &home)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("archlab runs");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut health = None;
    while health.is_none() && Instant::now() < deadline {
        health = http_get(metrics_port, "/healthz");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ready = http_get(metrics_port, "/readyz");
    let metrics = http_get(metrics_port, "/metrics");
    let missing = http_get(metrics_port, "/nothing");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(health.map(|h| h.0), Some(200));
    let (code, body) = ready.expect("readyz answers");
    assert_eq!(code, 503, "not ready before the API server answers: {body}");
    let (code, body) = metrics.expect("metrics answer");
    assert_eq!(code, 200);
    assert!(body.lines().any(|l| l == "archlab_leader 0"), "{body}");
    assert_eq!(missing.map(|m| m.0), Some(404));
}

// ---------------------------------------------------------------------------------------------
// A scripted API server on kube's mock service

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    /// Path and query.
    uri: String,
    content_type: String,
    body: Value,
    raw: Vec<u8>,
}

type Responder = Box<dyn FnMut(&Recorded) -> (u16, Vec<u8>) + Send>;

/// Answers every request with `respond` and records it.
fn api_server(
    runtime: &tokio::runtime::Runtime,
    mut respond: Responder,
) -> (kube::Client, Arc<Mutex<Vec<Recorded>>>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<KubeBody>, Response<KubeBody>>();
    let log = Arc::new(Mutex::new(Vec::new()));
    let recorded = log.clone();
    runtime.spawn(async move {
        while let Some((request, reply)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let raw = body
                .collect_bytes()
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default();
            let entry = Recorded {
                method: parts.method.to_string(),
                uri: parts.uri.to_string(),
                content_type: parts
                    .headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string(),
                body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
                raw,
            };
            let (status, bytes) = respond(&entry);
            let watch = entry.uri.contains("watch=true");
            recorded.lock().expect("log").push(entry);
            let response = Response::builder()
                .status(status)
                .body(KubeBody::from(bytes))
                .expect("response");
            if watch {
                // A watch answered with one event and ended is opened again at once: paced
                // like a server that holds it open, and the other requests go on meanwhile.
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    reply.send_response(response);
                });
            } else {
                reply.send_response(response);
            }
        }
    });
    let client = runtime.block_on(async { kube::Client::new(service, "lab") });
    (client, log)
}

fn json_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn not_found() -> (u16, Vec<u8>) {
    (
        404,
        json_bytes(
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
        ),
    )
}

fn campaign_object() -> Value {
    json!({
        "apiVersion": "archlab.dev/v1alpha1", "kind": "Campaign",
        "metadata": {"name": "quick", "namespace": "lab", "uid": "campaign-uid-1"},
        "spec": serde_json::to_value(quickstart_spec()).unwrap_or_default(),
    })
}

fn quickstart_spec() -> archlab::api::CampaignSpec {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/quickstart.yaml"
    ))
    .expect("example");
    archlab::api::parse_campaign(&text).expect("valid").spec
}

fn record() -> Experiment {
    let mut experiment = Experiment::new(12, Stage::Exploration, Some(3), vec![1, 2]);
    experiment.name = "gla-conv".into();
    experiment.motivation = "a short convolution before the gate".into();
    experiment.phase = Phase::Analysing;
    experiment.fitness = Some(0.61);
    experiment.attempts.push(Attempt {
        number: 1,
        program: "mixer m(d_model) {\n  return x |> linear(d_model)\n}\n".into(),
        outcome: Some(Outcome::Finished {
            summary: TrainSummary {
                val_loss: 1.5,
                accuracy: BTreeMap::from([("mqar".into(), 0.4)]),
                wall_s: 12.0,
                params: 4096,
                benchmarks: BTreeMap::new(),
            },
        }),
        progress: Vec::new(),
        structure: None,
    });
    experiment
}

/// A server-side apply as the fake server keeps it: top-level fields replaced.
fn apply_to(objects: &mut BTreeMap<String, Value>, request: &Recorded) -> Value {
    let path = request.uri.split('?').next().unwrap_or_default();
    let name = path
        .trim_end_matches("/status")
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let object = objects.entry(name.to_string()).or_insert_with(|| json!({}));
    for (key, value) in request.body.as_object().into_iter().flatten() {
        object[key] = value.clone();
    }
    object.clone()
}

fn apply(objects: &Mutex<BTreeMap<String, Value>>, request: &Recorded) -> Value {
    apply_to(&mut objects.lock().expect("objects"), request)
}

#[test]
fn memory_writes_an_experiment_by_server_side_apply_and_repeats_only_what_changed() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let objects = Arc::new(Mutex::new(BTreeMap::<String, Value>::new()));
    let (client, log) = api_server(
        &runtime,
        Box::new(
            move |request| match (request.method.as_str(), request.uri.as_str()) {
                ("GET", uri)
                    if uri.starts_with(
                        "/apis/archlab.dev/v1alpha1/namespaces/lab/campaigns/quick",
                    ) =>
                {
                    (200, json_bytes(&campaign_object()))
                }
                ("PATCH", _) => (200, json_bytes(&apply(&objects, request))),
                _ => not_found(),
            },
        ),
    );
    let mut store = KubeStore::new(runtime.handle().clone(), client, "lab");
    store.save_experiment("quick", &record()).expect("saved");
    store
        .save_experiment("quick", &record())
        .expect("saved again");
    let log = log.lock().expect("log").clone();
    let patches: Vec<&Recorded> = log.iter().filter(|r| r.method == "PATCH").collect();
    // The second save changed nothing of the main resource: only the status is applied again.
    assert_eq!(patches.len(), 3, "{log:#?}");
    let (main, status) = (patches[0], patches[1]);
    assert!(
        main.uri
            .starts_with("/apis/archlab.dev/v1alpha1/namespaces/lab/experiments/quick-e00012?"),
        "{}",
        main.uri
    );
    assert!(
        status.uri.starts_with(
            "/apis/archlab.dev/v1alpha1/namespaces/lab/experiments/quick-e00012/status?"
        ),
        "{}",
        status.uri
    );
    for patch in [main, status] {
        assert!(patch.uri.contains("fieldManager=archlab"), "{}", patch.uri);
        assert!(patch.uri.contains("force=true"), "{}", patch.uri);
        assert_eq!(patch.content_type, "application/apply-patch+yaml");
    }
    for patch in [main, status] {
        assert_eq!(
            patch.body["apiVersion"], "archlab.dev/v1alpha1",
            "an apply names its type"
        );
        assert_eq!(patch.body["kind"], "Experiment");
    }
    assert_eq!(main.body["spec"]["id"], 12);
    assert_eq!(main.body["spec"]["parent"], 3);
    assert_eq!(
        main.body["metadata"]["labels"]["archlab.dev/campaign"],
        "quick"
    );
    let owner = &main.body["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["uid"].as_str()),
        (Some("Campaign"), Some("campaign-uid-1"))
    );
    assert!(
        main.body.get("status").is_none_or(Value::is_null),
        "the status goes to /status"
    );
    assert_eq!(status.body["status"]["phase"], "analysing");
    assert_eq!(status.body["status"]["attemptCount"], 1);
    // The owner was read once; the second save sent a byte-identical status apply.
    assert_eq!(
        log.iter().filter(|r| r.method == "GET").count(),
        1,
        "{log:#?}"
    );
    assert_eq!(patches[2].raw, status.raw);
}

#[test]
fn memory_creates_again_an_experiment_deleted_since_its_last_write() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let objects = Arc::new(Mutex::new(BTreeMap::<String, Value>::new()));
    let kept = objects.clone();
    let (client, log) = api_server(
        &runtime,
        Box::new(move |request| {
            let mut objects = kept.lock().expect("objects");
            match (request.method.as_str(), request.uri.as_str()) {
                ("GET", uri) if uri.contains("/campaigns/quick") => {
                    (200, json_bytes(&campaign_object()))
                }
                // The status of a missing object cannot be applied: the server says 404.
                ("PATCH", uri) if uri.contains("/status?") && objects.is_empty() => not_found(),
                ("PATCH", _) => (200, json_bytes(&apply_to(&mut objects, request))),
                _ => not_found(),
            }
        }),
    );
    let mut store = KubeStore::new(runtime.handle().clone(), client, "lab");
    store.save_experiment("quick", &record()).expect("saved");
    objects.lock().expect("objects").clear(); // kubectl delete exp quick-e00012
    store
        .save_experiment("quick", &record())
        .expect("saved again");
    let log = log.lock().expect("log").clone();
    let patches: Vec<&str> = log
        .iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| {
            if r.uri.contains("/status?") {
                "status"
            } else {
                "main"
            }
        })
        .collect();
    assert_eq!(
        patches,
        ["main", "status", "status", "main", "status"],
        "{log:#?}"
    );
    assert!(
        objects
            .lock()
            .expect("objects")
            .contains_key("quick-e00012")
    );
}

#[test]
fn memory_rides_out_a_busy_or_failing_api_server_and_stops_at_a_refusal() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let objects = Arc::new(Mutex::new(BTreeMap::<String, Value>::new()));
    let kept = objects.clone();
    let mut failures = vec![(503, "ServiceUnavailable"), (429, "TooManyRequests")];
    let status = |code: u16, reason: &str| {
        (
            code,
            json_bytes(
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": reason}),
            ),
        )
    };
    let (client, log) = api_server(
        &runtime,
        Box::new(move |request| {
            let mut objects = kept.lock().expect("objects");
            match (request.method.as_str(), request.uri.as_str()) {
                ("GET", uri) if uri.contains("/campaigns/quick") => {
                    (200, json_bytes(&campaign_object()))
                }
                // The first two writes meet a failing, then a busy server.
                ("PATCH", _) if !failures.is_empty() => {
                    let (code, reason) = failures.remove(0);
                    status(code, reason)
                }
                ("PATCH", uri) if uri.contains("quick-e00099") => status(422, "Invalid"),
                ("PATCH", _) => (200, json_bytes(&apply_to(&mut objects, request))),
                _ => not_found(),
            }
        }),
    );
    let mut store = KubeStore::new(runtime.handle().clone(), client, "lab");
    let started = Instant::now();
    store
        .save_experiment("quick", &record())
        .expect("saved after the server recovered");
    assert!(
        objects
            .lock()
            .expect("objects")
            .contains_key("quick-e00012")
    );
    let patches = |log: &Arc<Mutex<Vec<Recorded>>>| {
        log.lock()
            .expect("log")
            .iter()
            .filter(|r| r.method == "PATCH")
            .count()
    };
    // main (503, 429, 200) and status (200).
    assert_eq!(patches(&log), 4);
    // Two waits, the first of 0.25–0.75 s and the second of 0.5–1.5 s.
    assert!(
        started.elapsed() >= Duration::from_millis(750),
        "{:?}",
        started.elapsed()
    );
    // A refusal is the caller's at once: one request, no retry.
    let mut refused = record();
    refused.id = 99;
    let before = patches(&log);
    assert!(store.save_experiment("quick", &refused).is_err());
    assert_eq!(patches(&log) - before, 1);
}

/// An API server that keeps what is applied to it and lists it back (what an engine needs).
fn keeping_api_server(
    runtime: &tokio::runtime::Runtime,
) -> (kube::Client, Arc<Mutex<Vec<Recorded>>>) {
    let objects = Arc::new(Mutex::new(BTreeMap::<String, Value>::new()));
    api_server(
        runtime,
        Box::new(move |request| {
            let mut objects = objects.lock().expect("objects");
            match (request.method.as_str(), request.uri.as_str()) {
                ("GET", uri) if uri.contains("/campaigns/quick") => {
                    (200, json_bytes(&campaign_object()))
                }
                ("PATCH", uri) if uri.contains("/campaigns/") => {
                    (200, json_bytes(&campaign_object()))
                }
                ("PATCH", _) => (200, json_bytes(&apply_to(&mut objects, request))),
                ("GET", uri) if uri.contains("/experiments?") => {
                    let items: Vec<Value> = objects.values().cloned().collect();
                    let list = json!({"apiVersion": "archlab.dev/v1alpha1", "kind": "ExperimentList", "metadata": {}, "items": items});
                    (200, json_bytes(&list))
                }
                _ => not_found(),
            }
        }),
    )
}

/// Feeds one trainer's 300 progress lines (every 5 of 1,500 steps, as fast as the engine takes
/// them) and its result to an engine over `KubeStore`; the Experiment writes each part caused.
fn experiment_writes_of_one_pod(interval: Option<Duration>) -> (usize, usize, Duration) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (client, log) = keeping_api_server(&runtime);
    let campaign = campaign_resource(|_| {});
    let store =
        KubeStore::new(runtime.handle().clone(), client, "lab").with_spec(campaign.spec.clone());
    let agents = archlab::setup::agents(&campaign, None, 0, None).expect("agents");
    let cognition = archlab::setup::cognition(&campaign, None).expect("cognition");
    let mut engine =
        archlab::engine::Engine::open("quick", campaign.spec.clone(), store, agents, cognition)
            .expect("engine");
    if let Some(interval) = interval {
        engine = engine.with_progress_interval(interval);
    }
    let (commands, _) = engine.fill(1).expect("the baseline starts");
    let Some(Command::Start {
        experiment,
        attempt,
        ..
    }) = commands.first().cloned()
    else {
        panic!("no Start: {commands:?}");
    };
    let experiment_writes = || {
        log.lock()
            .expect("log")
            .iter()
            .filter(|r| r.method == "PATCH" && r.uri.contains("/experiments/"))
            .count()
    };
    let before = experiment_writes();
    let started = Instant::now();
    for step in (5..=1500).step_by(5) {
        let point = archlab::core::qa::ProgressPoint {
            step,
            loss: 3.0 - step as f64 / 1000.0,
            elapsed_s: step as f64 * 0.012,
            trial: 0,
        };
        engine
            .observe(experiment, attempt, Event::Progress(point))
            .expect("progress");
        engine.write_due().expect("due writes");
    }
    let took = started.elapsed();
    let progress = experiment_writes() - before;
    let summary = TrainSummary {
        val_loss: 1.5,
        accuracy: BTreeMap::from([("mqar".into(), 0.4)]),
        wall_s: 18.0,
        params: 4096,
        benchmarks: BTreeMap::new(),
    };
    engine
        .observe(experiment, attempt, Event::Finished(summary))
        .expect("the result");
    let ending = experiment_writes() - before - progress;
    let stored = &engine.experiments()[0];
    assert_eq!(
        stored.attempts[0].progress.len(),
        300,
        "every point is kept for QA"
    );
    (progress, ending, took)
}

#[test]
fn a_pods_progress_lines_cost_a_bounded_number_of_writes_and_its_ending_is_written_at_once() {
    let (progress, ending, took) = experiment_writes_of_one_pod(None);
    // One write per 5 s interval at most, however fast the lines come.
    let allowed = 1 + took.as_secs() as usize / 5;
    assert!(
        progress <= allowed,
        "{progress} writes for 300 progress lines in {took:?} (allowed {allowed})"
    );
    assert!(ending >= 1, "the ending is written at once");
    // Without the bound every line is a write (the status only: the spec is unchanged).
    let (unbounded, _, _) = experiment_writes_of_one_pod(Some(Duration::ZERO));
    assert_eq!(unbounded, 300);
    eprintln!(
        "writes for 300 progress lines: {progress} bounded, {unbounded} unbounded (before this bound: 600)"
    );
}

#[test]
fn memory_reads_back_what_it_wrote_and_numbers_the_next_experiment() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let stored = Arc::new(Mutex::new(BTreeMap::<String, Value>::new()));
    let objects = stored.clone();
    let (client, log) = api_server(
        &runtime,
        Box::new(move |request| {
            let mut objects = objects.lock().expect("objects");
            let objects = &mut *objects;
            match (request.method.as_str(), request.uri.as_str()) {
                ("GET", uri) if uri.contains("/campaigns/quick") => {
                    (200, json_bytes(&campaign_object()))
                }
                ("PATCH", _) => (200, json_bytes(&apply_to(objects, request))),
                ("GET", uri)
                    if uri
                        .starts_with("/apis/archlab.dev/v1alpha1/namespaces/lab/experiments?") =>
                {
                    let items: Vec<Value> = objects.values().cloned().collect();
                    (
                        200,
                        json_bytes(
                            &json!({"apiVersion": "archlab.dev/v1alpha1", "kind": "ExperimentList", "metadata": {}, "items": items}),
                        ),
                    )
                }
                _ => not_found(),
            }
        }),
    );
    let mut store = KubeStore::new(runtime.handle().clone(), client.clone(), "lab");
    let mut first = record();
    first.id = 3;
    let second = record();
    store.save_experiment("quick", &first).expect("saved");
    store.save_experiment("quick", &second).expect("saved");
    // A new operator (a fresh store) finds both, in order, and continues the numbering.
    let fresh = KubeStore::new(runtime.handle().clone(), client, "lab");
    assert_eq!(
        fresh.experiments("quick").expect("listed"),
        vec![first, second]
    );
    assert_eq!(fresh.next_experiment_id("quick").expect("next"), 13);
    let list = log
        .lock()
        .expect("log")
        .iter()
        .find(|r| r.method == "GET" && r.uri.contains("/experiments?"))
        .cloned();
    let list = list.expect("a list request");
    assert!(
        list.uri
            .contains("labelSelector=archlab.dev%2Fcampaign%3Dquick"),
        "{}",
        list.uri
    );
    // The records survive the YAML/JSON of the API: the resource parses as the CRD's type.
    let parsed: Vec<ExperimentResource> = stored
        .lock()
        .expect("objects")
        .values()
        .map(|v| serde_json::from_value(v.clone()).expect("an Experiment"))
        .collect();
    assert_eq!(parsed.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// The body: pods

/// A scripted API server answering what every pod test needs (the Experiment, pod applies,
/// Events, deletions) and handing the rest to `pods`.
/// The pod a request addresses by name (`/api/v1/namespaces/lab/pods/<name>[?…]`), not a
/// subresource such as its log.
fn addressed_pod(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix("/api/v1/namespaces/lab/pods/")?;
    let end = rest.find(['?', '/']).unwrap_or(rest.len());
    (!rest[end..].starts_with('/')).then_some(&rest[..end])
}

/// The pod a request watches or lists by a field selector on its name.
fn watched_pod(uri: &str) -> Option<&str> {
    let query = uri.strip_prefix("/api/v1/namespaces/lab/pods?")?;
    let rest = &query[query.find("fieldSelector=metadata.name%3D")? + 30..];
    Some(&rest[..rest.find('&').unwrap_or(rest.len())])
}

/// A mock API server for a body's requests: the Experiment exists; the pods in `existing` exist
/// from the start and every other pod from its apply on (before it, reading it finds nothing);
/// what else `pods` answers.
fn pod_api(
    runtime: &tokio::runtime::Runtime,
    existing: &[&str],
    mut pods: Responder,
) -> (kube::Client, Arc<Mutex<Vec<Recorded>>>) {
    let mut present: std::collections::BTreeSet<String> =
        existing.iter().map(|name| name.to_string()).collect();
    api_server(
        runtime,
        Box::new(
            move |request| match (request.method.as_str(), request.uri.as_str()) {
                ("GET", uri)
                    if uri.starts_with(
                        "/apis/archlab.dev/v1alpha1/namespaces/lab/experiments/quick-e00012",
                    ) =>
                {
                    (200, json_bytes(&experiment_object()))
                }
                ("PATCH", uri) if uri.starts_with("/api/v1/namespaces/lab/pods/") => {
                    if let Some(name) = addressed_pod(uri) {
                        present.insert(name.to_string());
                    }
                    (200, json_bytes(&request.body))
                }
                ("GET", uri) if addressed_pod(uri).is_some_and(|name| !present.contains(name)) => {
                    not_found()
                }
                // The monitor's watch of one pod (a field selector on its name): its list is
                // the pod as `pods` answers a read of it, each watch one MODIFIED event of it;
                // a pod gone ends the watch as expired, so the watcher lists again.
                ("GET", uri) if watched_pod(uri).is_some() => {
                    let name = watched_pod(uri).unwrap_or_default().to_string();
                    let read = Recorded {
                        method: "GET".into(),
                        uri: format!("/api/v1/namespaces/lab/pods/{name}"),
                        ..request.clone()
                    };
                    let pod = if present.contains(&name) {
                        match pods(&read) {
                            (200, bytes) => serde_json::from_slice::<Value>(&bytes).ok(),
                            _ => None,
                        }
                    } else {
                        None
                    };
                    match (uri.contains("watch=true"), pod) {
                        (false, pod) => (
                            200,
                            json_bytes(&json!({"apiVersion": "v1", "kind": "PodList",
                                "metadata": {"resourceVersion": "1"},
                                "items": pod.into_iter().collect::<Vec<_>>()})),
                        ),
                        (true, Some(pod)) => (
                            200,
                            format!("{}\n", json!({"type": "MODIFIED", "object": pod}))
                                .into_bytes(),
                        ),
                        (true, None) => (
                            200,
                            format!(
                                "{}\n",
                                json!({"type": "ERROR", "object": {"kind": "Status",
                                    "apiVersion": "v1", "status": "Failure", "reason": "Expired",
                                    "code": 410, "message": "too old resource version"}})
                            )
                            .into_bytes(),
                        ),
                    }
                }
                ("POST" | "PATCH", uri) if uri.contains("/events") => {
                    (201, json_bytes(&request.body))
                }
                _ => pods(request),
            },
        ),
    )
}

const RESULT: &str = r#"{"event":"result","status":"ok","val_loss":1.25,"accuracy":{"mqar":0.5},"wall_s":3.0,"params":100}"#;

fn progress_line(step: usize) -> String {
    format!(r#"{{"event":"progress","step":{step},"loss":2.5,"elapsed_s":{step}.0}}"#)
}

fn pod_object(name: &str, phase: &str, state: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "lab", "uid": "pod-uid"},
        "spec": {"containers": [{"name": "trainer", "image": "archlab"}], "nodeName": "gpu-1"},
        "status": {"phase": phase, "containerStatuses": [{
            "name": "trainer", "image": "archlab", "imageID": "", "ready": phase == "Running", "restartCount": 0,
            "state": state}]},
    })
}

fn experiment_object() -> Value {
    json!({
        "apiVersion": "archlab.dev/v1alpha1", "kind": "Experiment",
        "metadata": {"name": "quick-e00012", "namespace": "lab", "uid": "experiment-uid-12"},
        "spec": {"campaign": "quick", "id": 12, "stage": "exploration", "origin": "proposal"},
    })
}

fn start_command() -> Command {
    let spec = quickstart_spec();
    Command::Start {
        experiment: 12,
        name: "gla-conv".into(),
        attempt: 2,
        retry: 0,
        program: "mixer m(d_model) {\n  return x |> linear(d_model)\n}\n".into(),
        config: Box::new(spec.stages.exploration.train.clone()),
    }
}

/// The first rerun of `start_command`'s attempt after an infrastructure failure.
fn rerun_command() -> Command {
    match start_command() {
        Command::Start {
            experiment,
            name,
            attempt,
            program,
            config,
            ..
        } => Command::Start {
            experiment,
            name,
            attempt,
            retry: 1,
            program,
            config,
        },
        other => other,
    }
}

fn body_config() -> BodyConfig {
    BodyConfig {
        campaign: "quick".into(),
        namespace: "lab".into(),
        trainer: Default::default(),
        qa: Default::default(),
        poll: Duration::from_millis(20),
        finished_pod_ttl: None,
        metrics: Default::default(),
        fence: Arc::new(std::sync::atomic::AtomicBool::new(true)),
    }
}

/// Observations until `done` says stop (or 10 s pass).
fn observe_until(
    inbox: &std::sync::mpsc::Receiver<ToEngine>,
    done: impl Fn(&Event) -> bool,
) -> Vec<Event> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut events = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match inbox.recv_timeout(left) {
            Ok(ToEngine::Observed {
                experiment: 12,
                attempt: 2,
                event,
            }) => {
                let stop = done(&event);
                events.push(event);
                if stop {
                    break;
                }
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => break,
        }
    }
    events
}

/// A body for `client` and the channel its observations arrive on.
fn new_body(
    client: &kube::Client,
    config: BodyConfig,
) -> (Body, std::sync::mpsc::Receiver<ToEngine>) {
    let (observations, inbox) = std::sync::mpsc::channel();
    let body = Body::new(
        client.clone(),
        config,
        events_recorder(client),
        observations,
    );
    (body, inbox)
}

fn events_recorder(client: &kube::Client) -> kube::runtime::events::Recorder {
    kube::runtime::events::Recorder::new(
        client.clone(),
        kube::runtime::events::Reporter {
            controller: "archlab".into(),
            instance: Some("test".into()),
        },
    )
}

#[test]
fn a_start_applies_one_owned_hardened_pod_and_its_result_finishes_the_attempt() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (client, log) = pod_api(
        &runtime,
        &[],
        Box::new(
            |request| match (request.method.as_str(), request.uri.as_str()) {
                ("GET", "/api/v1/namespaces/lab/pods/quick-e00012-a2") => (
                    200,
                    json_bytes(&pod_object(
                        "quick-e00012-a2",
                        "Succeeded",
                        json!({"terminated": {"exitCode": 0, "reason": "Completed", "message": RESULT}}),
                    )),
                ),
                ("GET", uri)
                    if uri.starts_with("/api/v1/namespaces/lab/pods/quick-e00012-a2/log") =>
                {
                    (
                        200,
                        format!("{}\n{}\n{RESULT}\n", progress_line(10), progress_line(20))
                            .into_bytes(),
                    )
                }
                _ => not_found(),
            },
        ),
    );
    let (mut body, inbox) = new_body(&client, body_config());
    runtime.block_on(body.execute(start_command()));
    let events = observe_until(&inbox, |e| matches!(e, Event::Finished(_)));
    let steps: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::Progress(p) => Some(p.step),
            _ => None,
        })
        .collect();
    assert_eq!(steps, [10, 20], "progress from the log: {events:?}");
    assert!(
        matches!(events.last(), Some(Event::Finished(s)) if s.val_loss == 1.25),
        "{events:?}"
    );
    // The same start again adopts the pod it created: it is read, never applied again (the
    // Campaign's trainer spec may have changed meanwhile; a new image would restart it).
    runtime.block_on(body.execute(start_command()));
    std::thread::sleep(Duration::from_millis(200));
    let log = log.lock().expect("log").clone();
    let applies: Vec<&Recorded> = log
        .iter()
        .filter(|r| r.method == "PATCH" && r.uri.starts_with("/api/v1/namespaces/lab/pods/"))
        .collect();
    assert_eq!(applies.len(), 1, "{log:#?}");
    assert!(
        log.iter()
            .all(|r| r.method != "POST" || r.uri.contains("/events")),
        "no create besides events"
    );
    let apply = applies[0];
    assert!(
        apply
            .uri
            .starts_with("/api/v1/namespaces/lab/pods/quick-e00012-a2?"),
        "{}",
        apply.uri
    );
    assert!(apply.uri.contains("fieldManager=archlab") && apply.uri.contains("force=true"));
    let pod = &apply.body;
    assert_eq!(
        pod["metadata"]["ownerReferences"][0]["uid"],
        "experiment-uid-12"
    );
    assert_eq!(pod["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(pod["metadata"]["labels"]["archlab.dev/attempt"], "2");
    let spec = &pod["spec"];
    assert_eq!(spec["restartPolicy"], "Never");
    assert_eq!(spec["automountServiceAccountToken"], false);
    assert_eq!(spec["activeDeadlineSeconds"], 86_400);
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        spec["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &spec["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"][0],
        "ALL"
    );
    assert_eq!(container["resources"]["limits"]["nvidia.com/gpu"], "1");
    assert_eq!(
        container["terminationMessagePolicy"],
        "FallbackToLogsOnError"
    );
    let env: BTreeMap<&str, &str> = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["name"].as_str()?, e["value"].as_str()?)))
        .collect();
    assert!(env["ARCHLAB_PROGRAM"].starts_with("mixer m(d_model)"));
    let config: trainer::TrainConfig =
        serde_json::from_str(env["ARCHLAB_CONFIG"]).expect("the config travels as JSON");
    assert_eq!(config, quickstart_spec().stages.exploration.train);
    // The Experiment got an Event saying how the trainer ended.
    let event = log
        .iter()
        .find(|r| r.method == "POST" && r.uri.contains("/events"))
        .expect("an event");
    assert_eq!(event.body["reason"], "TrainerSucceeded");
}

#[test]
fn a_restarted_operator_adopts_the_running_pod_and_follows_it_to_the_end() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let looks = Arc::new(Mutex::new(0_u32));
    let counter = looks.clone();
    let (client, log) = pod_api(
        &runtime,
        &["quick-e00012-a2"],
        Box::new(
            move |request| match (request.method.as_str(), request.uri.as_str()) {
                ("GET", "/api/v1/namespaces/lab/pods/quick-e00012-a2") => {
                    let mut looks = counter.lock().expect("looks");
                    *looks += 1;
                    let pod = if *looks < 4 {
                        pod_object(
                            "quick-e00012-a2",
                            "Running",
                            json!({"running": {"startedAt": "2026-11-29T10:00:00Z"}}),
                        )
                    } else {
                        pod_object(
                            "quick-e00012-a2",
                            "Succeeded",
                            json!({"terminated": {"exitCode": 0, "reason": "Completed", "message": RESULT}}),
                        )
                    };
                    (200, json_bytes(&pod))
                }
                ("GET", uri)
                    if uri.starts_with("/api/v1/namespaces/lab/pods/quick-e00012-a2/log") =>
                {
                    assert!(
                        uri.contains("follow=true"),
                        "a running pod's log is followed: {uri}"
                    );
                    (
                        200,
                        format!(
                            "{}\n{}\n{}\n",
                            progress_line(100),
                            progress_line(120),
                            RESULT
                        )
                        .into_bytes(),
                    )
                }
                _ => not_found(),
            },
        ),
    );
    let (mut body, inbox) = new_body(&client, body_config());
    runtime.block_on(body.execute(start_command()));
    let events = observe_until(&inbox, |e| matches!(e, Event::Finished(_)));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Progress(p) if p.step == 120)),
        "{events:?}"
    );
    assert!(
        matches!(events.last(), Some(Event::Finished(_))),
        "{events:?}"
    );
    let log = log.lock().expect("log").clone();
    assert!(
        log.iter().all(|r| r.method != "DELETE"),
        "an adopted pod is not restarted: {log:#?}"
    );
    assert_eq!(
        log.iter()
            .filter(|r| r.method == "PATCH" && r.uri.contains("/pods/"))
            .count(),
        0,
        "an adopted pod is never applied again: its spec stays as it was created"
    );
}

#[test]
fn a_stop_deletes_the_attempts_pods_and_a_vanished_pod_is_an_infrastructure_failure() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (client, log) = pod_api(
        &runtime,
        &[],
        Box::new(
            |request| match (request.method.as_str(), request.uri.as_str()) {
                // Someone deleted the pod: it is gone.
                ("GET", "/api/v1/namespaces/lab/pods/quick-e00012-a2") => not_found(),
                ("DELETE", uri) if uri.starts_with("/api/v1/namespaces/lab/pods?") => (
                    200,
                    json_bytes(
                        &json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []}),
                    ),
                ),
                _ => not_found(),
            },
        ),
    );
    let (mut body, inbox) = new_body(&client, body_config());
    runtime.block_on(body.execute(start_command()));
    let events = observe_until(&inbox, |e| matches!(e, Event::InfrastructureFailed { .. }));
    assert!(
        matches!(events.last(), Some(Event::InfrastructureFailed { reason }) if reason.contains("deleted")),
        "{events:?}"
    );
    runtime.block_on(body.execute(Command::Stop {
        experiment: 12,
        attempt: 2,
        reason: "quality assurance: the loss diverged".into(),
    }));
    let log = log.lock().expect("log").clone();
    let delete = log.iter().find(|r| r.method == "DELETE").expect("a delete");
    assert!(
        delete.uri.contains("labelSelector=archlab.dev%2Fcampaign%3Dquick%2Carchlab.dev%2Fexperiment%3D12%2Carchlab.dev%2Fattempt%3D2"),
        "{}",
        delete.uri
    );
    let stopped = log
        .iter()
        .find(|r| r.method == "POST" && r.body["reason"] == "TrainerStopped")
        .expect("a stop event");
    assert!(
        stopped.body["note"]
            .as_str()
            .unwrap_or_default()
            .contains("diverged")
    );
}

#[test]
fn a_rerun_after_an_infrastructure_failure_gets_its_own_pod() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (client, log) = pod_api(
        &runtime,
        &[],
        Box::new(
            |request| match (request.method.as_str(), request.uri.as_str()) {
                ("GET", "/api/v1/namespaces/lab/pods/quick-e00012-a2-r1") => (
                    200,
                    json_bytes(&pod_object(
                        "quick-e00012-a2-r1",
                        "Succeeded",
                        json!({"terminated": {"exitCode": 0, "reason": "Completed", "message": RESULT}}),
                    )),
                ),
                _ => not_found(),
            },
        ),
    );
    let (mut body, inbox) = new_body(&client, body_config());
    runtime.block_on(body.execute(rerun_command()));
    let events = observe_until(&inbox, |e| matches!(e, Event::Finished(_)));
    assert!(
        matches!(events.last(), Some(Event::Finished(_))),
        "{events:?}"
    );
    let log = log.lock().expect("log").clone();
    let apply = log.iter().find(|r| r.method == "PATCH").expect("an apply");
    assert!(
        apply
            .uri
            .starts_with("/api/v1/namespaces/lab/pods/quick-e00012-a2-r1?"),
        "{}",
        apply.uri
    );
    assert_eq!(apply.body["metadata"]["labels"]["archlab.dev/retry"], "1");
}

fn pod_list(items: Vec<Value>) -> (u16, Vec<u8>) {
    (
        200,
        json_bytes(&json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})),
    )
}

#[test]
fn a_rerun_deletes_the_unfinished_pod_it_replaces_and_waits_until_it_is_gone() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // The first run's pod is stuck pulling; it takes one more look to go after the delete.
    let lists_after_delete = Arc::new(Mutex::new(None::<u32>));
    let state = lists_after_delete.clone();
    let stuck = pod_object(
        "quick-e00012-a2",
        "Pending",
        json!({"waiting": {"reason": "ImagePullBackOff"}}),
    );
    let (client, log) = pod_api(
        &runtime,
        &[],
        Box::new(
            move |request| match (request.method.as_str(), request.uri.as_str()) {
                ("GET", uri) if uri.starts_with("/api/v1/namespaces/lab/pods?") => {
                    let mut after = state.lock().expect("state");
                    match *after {
                        None => pod_list(vec![stuck.clone()]),
                        Some(0) => {
                            *after = Some(1);
                            pod_list(vec![stuck.clone()])
                        }
                        Some(_) => pod_list(vec![]),
                    }
                }
                ("DELETE", uri) if uri.starts_with("/api/v1/namespaces/lab/pods?") => {
                    *state.lock().expect("state") = Some(0);
                    pod_list(vec![])
                }
                ("GET", "/api/v1/namespaces/lab/pods/quick-e00012-a2-r1") => (
                    200,
                    json_bytes(&pod_object(
                        "quick-e00012-a2-r1",
                        "Succeeded",
                        json!({"terminated": {"exitCode": 0, "reason": "Completed", "message": RESULT}}),
                    )),
                ),
                _ => not_found(),
            },
        ),
    );
    let (mut body, inbox) = new_body(&client, body_config());
    runtime.block_on(body.execute(rerun_command()));
    let events = observe_until(&inbox, |e| matches!(e, Event::Finished(_)));
    assert!(
        matches!(events.last(), Some(Event::Finished(_))),
        "{events:?}"
    );
    let log = log.lock().expect("log").clone();
    let position = |method: &str, prefix: &str| {
        log.iter()
            .position(|r| r.method == method && r.uri.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {method} {prefix}: {log:#?}"))
    };
    let delete = position("DELETE", "/api/v1/namespaces/lab/pods?");
    let apply = position("PATCH", "/api/v1/namespaces/lab/pods/quick-e00012-a2-r1?");
    // The rerun's looks at the pods it replaces (the new pod's monitor lists and watches it by
    // name after).
    let last_look = log
        .iter()
        .rposition(|r| {
            r.method == "GET"
                && r.uri.starts_with("/api/v1/namespaces/lab/pods?")
                && watched_pod(&r.uri).is_none()
        })
        .expect("a list");
    assert!(
        delete < last_look && last_look < apply,
        "deleted, seen gone, then the rerun applied: {log:#?}"
    );
    let selector = &log[delete].uri;
    assert!(
        selector.contains("archlab.dev%2Fattempt%3D2%2Carchlab.dev%2Fretry%21%3D1"),
        "only this attempt's other runs: {selector}"
    );
    assert!(
        selector.contains("status.phase%21%3DSucceeded%2Cstatus.phase%21%3DFailed"),
        "ended pods stay for their logs: {selector}"
    );
}

#[test]
fn a_pod_given_up_on_is_deleted_and_gone_before_its_ending_is_reported() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let deleted = Arc::new(Mutex::new(false));
    let flag = deleted.clone();
    let (client, log) = pod_api(
        &runtime,
        &[],
        Box::new(
            move |request| match (request.method.as_str(), request.uri.as_str()) {
                ("DELETE", uri)
                    if uri.starts_with("/api/v1/namespaces/lab/pods/quick-e00012-a2") =>
                {
                    *flag.lock().expect("flag") = true;
                    (
                        200,
                        json_bytes(&pod_object("quick-e00012-a2", "Pending", json!({}))),
                    )
                }
                ("GET", "/api/v1/namespaces/lab/pods/quick-e00012-a2")
                    if *flag.lock().expect("flag") =>
                {
                    not_found()
                }
                ("GET", "/api/v1/namespaces/lab/pods/quick-e00012-a2") => (
                    200,
                    json_bytes(&pod_object(
                        "quick-e00012-a2",
                        "Pending",
                        json!({"waiting": {"reason": "ImagePullBackOff", "message": "manifest unknown"}}),
                    )),
                ),
                _ => not_found(),
            },
        ),
    );
    let (mut body, inbox) = new_body(&client, body_config());
    runtime.block_on(body.execute(start_command()));
    let events = observe_until(&inbox, |e| matches!(e, Event::InfrastructureFailed { .. }));
    assert!(
        matches!(events.last(), Some(Event::InfrastructureFailed { reason }) if reason.contains("could not be pulled")),
        "{events:?}"
    );
    assert!(*deleted.lock().expect("flag"), "the stuck pod was deleted");
    let log = log.lock().expect("log").clone();
    let delete = log.iter().find(|r| r.method == "DELETE").expect("a delete");
    assert_eq!(
        delete.body["preconditions"]["uid"], "pod-uid",
        "only the pod that was given up on"
    );
}

#[test]
fn ended_pods_past_their_ttl_are_deleted_and_recent_or_running_ones_kept() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let ended = |name: &str, uid: &str, phase: &str, finished: &str| {
        let mut pod = pod_object(
            name,
            phase,
            json!({"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": finished}}),
        );
        pod["metadata"]["uid"] = uid.into();
        pod
    };
    let recent = k8s_openapi::jiff::Timestamp::now().to_string();
    let old = ended(
        "quick-e00001-a1",
        "uid-old",
        "Succeeded",
        "2026-01-01T00:00:00Z",
    );
    let fresh = ended("quick-e00002-a1", "uid-fresh", "Failed", &recent);
    let (client, log) = pod_api(
        &runtime,
        &[],
        Box::new(
            move |request| match (request.method.as_str(), request.uri.as_str()) {
                ("GET", uri) if uri.starts_with("/api/v1/namespaces/lab/pods?") => {
                    pod_list(vec![old.clone(), fresh.clone()])
                }
                ("DELETE", uri) if uri.starts_with("/api/v1/namespaces/lab/pods/") => (
                    200,
                    json_bytes(&json!({"kind": "Status", "status": "Success"})),
                ),
                _ => not_found(),
            },
        ),
    );
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client, "lab");
    let sweeper = runtime.spawn(archlab::operator::body::sweep_finished_pods(
        pods,
        Arc::new(body_config()),
        Duration::from_secs(1),
    ));
    std::thread::sleep(Duration::from_millis(1500));
    sweeper.abort();
    let log = log.lock().expect("log").clone();
    let list = log
        .iter()
        .find(|r| r.method == "GET" && r.uri.starts_with("/api/v1/namespaces/lab/pods?"))
        .expect("a list");
    assert!(
        list.uri.contains("archlab.dev%2Fcampaign%3Dquick"),
        "this campaign's pods only: {}",
        list.uri
    );
    let deletes: Vec<&Recorded> = log.iter().filter(|r| r.method == "DELETE").collect();
    assert!(!deletes.is_empty(), "{log:#?}");
    assert!(
        deletes.iter().all(|d| d
            .uri
            .starts_with("/api/v1/namespaces/lab/pods/quick-e00001-a1")
            && d.body["preconditions"]["uid"] == "uid-old"),
        "only the pod over its TTL: {deletes:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The Campaign controller

fn controller_context(
    client: kube::Client,
    runtime: &tokio::runtime::Runtime,
) -> Arc<archlab::operator::controller::Context> {
    Arc::new(archlab::operator::controller::Context::new(
        client,
        runtime.handle().clone(),
        kube::runtime::events::Reporter {
            controller: "archlab".into(),
            instance: Some("test".into()),
        },
        Duration::from_millis(20),
        Default::default(),
        Arc::new(std::sync::atomic::AtomicBool::new(true)),
    ))
}

fn campaign_resource(edit: impl FnOnce(&mut Value)) -> archlab::api::Campaign {
    let mut value = campaign_object();
    value["metadata"]["generation"] = json!(1);
    edit(&mut value);
    serde_json::from_value(value).expect("a Campaign")
}

#[test]
fn an_invalid_campaign_is_refused_with_a_condition_and_an_event_and_no_engine() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (client, log) = api_server(
        &runtime,
        Box::new(
            |request| match (request.method.as_str(), request.uri.as_str()) {
                ("PATCH", uri) if uri.contains("/campaigns/quick/status") => {
                    (200, json_bytes(&campaign_object()))
                }
                ("POST", uri) if uri.contains("/events") => (201, json_bytes(&request.body)),
                _ => not_found(),
            },
        ),
    );
    let context = controller_context(client, &runtime);
    // A baseline that is no seed: older API servers without CEL let it through.
    let campaign = campaign_resource(|c| c["spec"]["baseline"] = json!("transformer"));
    let action = runtime
        .block_on(archlab::operator::controller::reconcile(
            Arc::new(campaign),
            context.clone(),
        ))
        .expect("reconciled");
    assert_eq!(action, kube::runtime::controller::Action::await_change());
    assert_eq!(context.running(), 0, "no engine for an invalid spec");
    let log = log.lock().expect("log").clone();
    let patch = log
        .iter()
        .find(|r| r.method == "PATCH")
        .expect("a status patch");
    assert_eq!(patch.content_type, "application/merge-patch+json");
    assert_eq!(patch.body["status"]["phase"], "Failed");
    let condition = &patch.body["status"]["conditions"][0];
    assert_eq!(
        (
            condition["type"].as_str(),
            condition["status"].as_str(),
            condition["reason"].as_str()
        ),
        (Some("SpecAccepted"), Some("False"), Some("InvalidSpec"))
    );
    let message = condition["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("spec.baseline:"), "{message}");
    let event = log.iter().find(|r| r.method == "POST").expect("an event");
    assert_eq!(
        (event.body["reason"].as_str(), event.body["type"].as_str()),
        (Some("InvalidSpec"), Some("Warning"))
    );
    let metrics = context.metrics.render();
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"archlab_reconcile_total{controller="campaign",result="success"} 1"#),
        "{metrics}"
    );
}

#[test]
fn a_missing_key_secret_is_a_condition_and_a_retry_not_a_crash() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (client, log) = api_server(
        &runtime,
        Box::new(
            |request| match (request.method.as_str(), request.uri.as_str()) {
                ("GET", uri) if uri.starts_with("/api/v1/namespaces/lab/secrets/llm-key") => {
                    not_found()
                }
                ("PATCH", uri) if uri.contains("/campaigns/quick/status") => {
                    (200, json_bytes(&campaign_object()))
                }
                ("POST", uri) if uri.contains("/events") => (201, json_bytes(&request.body)),
                _ => not_found(),
            },
        ),
    );
    let context = controller_context(client, &runtime);
    let campaign = campaign_resource(|c| {
        c["spec"]["agents"] = json!({"backend": "llm", "llm": {
            "baseUrl": "http://127.0.0.1:9/v1", "model": "m",
            "apiKeySecretRef": {"name": "llm-key", "key": "api-key"}}});
    });
    let action = runtime
        .block_on(archlab::operator::controller::reconcile(
            Arc::new(campaign),
            context.clone(),
        ))
        .expect("reconciled");
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(Duration::from_secs(30))
    );
    assert_eq!(context.running(), 0);
    let log = log.lock().expect("log").clone();
    let patch = log
        .iter()
        .find(|r| r.method == "PATCH")
        .expect("a status patch");
    let condition = &patch.body["status"]["conditions"][0];
    assert_eq!(
        (condition["type"].as_str(), condition["reason"].as_str()),
        (Some("Degraded"), Some("SecretUnavailable"))
    );
    let message = condition["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spec.agents.llm.apiKeySecretRef") && message.contains("lab/llm-key"),
        "{message}"
    );
}

#[test]
fn a_replica_that_lost_the_lease_writes_nothing() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (client, log) = api_server(
        &runtime,
        Box::new(|_| (200, json_bytes(&campaign_object()))),
    );
    let leader = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut store =
        KubeStore::new(runtime.handle().clone(), client.clone(), "lab").with_fence(leader.clone());
    let error = store
        .save_experiment("quick", &record())
        .expect_err("fenced");
    assert!(
        error.to_string().contains("no longer the leader"),
        "{error}"
    );
    assert!(
        log.lock().expect("log").is_empty(),
        "no request left the fenced store"
    );
    // The body creates no pod either: the attempt is reported lost, to be rerun by the leader.
    let mut config = body_config();
    config.fence = leader;
    let (mut body, inbox) = new_body(&client, config);
    runtime.block_on(body.execute(start_command()));
    let events = observe_until(&inbox, |e| matches!(e, Event::InfrastructureFailed { .. }));
    assert!(
        matches!(events.last(), Some(Event::InfrastructureFailed { reason }) if reason.contains("no longer the leader")),
        "{events:?}"
    );
    assert!(log.lock().expect("log").is_empty(), "no pod was created");
}
