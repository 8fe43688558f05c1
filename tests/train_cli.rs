//! `archlab train` as a child process: JSON lines on stdout, the result file, and exit 1
//! before any training on a bad program or config.

#![allow(clippy::unwrap_used)] // Test set-up: failures should fail loudly.

use std::path::PathBuf;
use std::process::{Command, Output};

fn archlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_archlab"))
        .args(args)
        .output()
        .expect("archlab runs")
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("archlab-train-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const TINY: &str = "model: {d_model: 32, n_layers: 1}
data: {vocab_size: 16, seq_len: 16, tasks: [{kind: mqar, num_kv_pairs: 2}]}
steps: 6
batch_size: 4
eval_batches: 1
progress_every: 2
";

fn lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn train_prints_progress_then_one_result_and_writes_the_result_files() {
    let dir = temp_dir();
    let config = dir.join("tiny.yaml");
    std::fs::write(&config, TINY).unwrap();
    let program = concat!(env!("CARGO_MANIFEST_DIR"), "/archspec/library/gla.arch");
    let result_file = dir.join("result.json");
    let termination = dir.join("termination-log");
    let output = archlab(&[
        "train",
        "--program",
        program,
        "--config",
        config.to_str().unwrap(),
        "--result",
        result_file.to_str().unwrap(),
        "--termination-message",
        termination.to_str().unwrap(),
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events = lines(&output);
    let progress: Vec<_> = events.iter().filter(|e| e["event"] == "progress").collect();
    assert_eq!(progress.len(), 3);
    for (line, step) in progress.iter().zip([2, 4, 6]) {
        assert_eq!(line["step"], step);
        for field in ["loss", "lr", "tokens_per_s", "elapsed_s"] {
            assert!(line[field].as_f64().is_some(), "progress lacks {field}");
        }
        // Tokens seen: steps × batch_size 4 × seq_len 16.
        assert_eq!(line["tokens"], step * 4 * 16, "{line}");
    }
    let result = events.last().unwrap();
    assert_eq!(result["event"], "result");
    assert_eq!(result["status"], "ok");
    for field in [
        "val_loss",
        "params",
        "flops_per_token",
        "state_size",
        "tokens_per_s",
        "wall_s",
    ] {
        assert!(result[field].as_f64().is_some(), "result lacks {field}");
    }
    assert!(result["accuracy"]["mqar"].as_f64().is_some());
    assert_eq!(result["tokens"], 6 * 4 * 16, "{result}");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result_file).unwrap()).unwrap();
    assert_eq!(&written, result);
    let message = std::fs::read_to_string(&termination).unwrap();
    assert!(message.len() <= 4096 && message.contains("\"status\":\"ok\""));
}

#[test]
fn a_bad_program_or_config_exits_one_before_training() {
    let dir = temp_dir();
    let config = dir.join("ok.yaml");
    std::fs::write(&config, TINY).unwrap();
    let bad_program = dir.join("bad.arch");
    std::fs::write(
        &bad_program,
        "mixer m(d_model) {\n  return x |> token_shift(-1) |> linear(d_model)\n}\n",
    )
    .unwrap();
    let output = archlab(&[
        "train",
        "--program",
        bad_program.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("E0401") && stderr.contains("2:10"),
        "{stderr}"
    );
    let events = lines(&output);
    assert_eq!(events.len(), 1, "no progress before the error");
    assert_eq!(events[0]["status"], "error");

    let bad_config = dir.join("bad.yaml");
    std::fs::write(&bad_config, TINY.replace("steps: 6", "steps: 6\nepochs: 3")).unwrap();
    let program = concat!(env!("CARGO_MANIFEST_DIR"), "/archspec/library/gla.arch");
    let output = archlab(&[
        "train",
        "--program",
        program,
        "--config",
        bad_config.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("epochs"));
}
