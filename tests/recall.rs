//! Associative recall through `archlab train`, the way a user runs it, on
//! `examples/train/mqar.yaml` (Zoology's MQAR, vocabulary 128, 8 pairs): softmax attention
//! and DeltaNet must learn it, plain linear attention must not. This is the test that
//! catches a trainer that cannot train a Transformer: with the token embedding initialised
//! U(±1/√vocab) instead of N(0, 1) softmax attention reaches 0.20 here instead of 1.00.
//! (About five minutes on two cores; the three programs train in parallel.)

#![allow(clippy::unwrap_used)] // Test set-up: failures should fail loudly.

use std::process::Command;

/// MQAR accuracy of a library program trained on the example config.
fn recall(program: &str) -> f64 {
    let root = env!("CARGO_MANIFEST_DIR");
    let output = Command::new(env!("CARGO_BIN_EXE_archlab"))
        .args([
            "train",
            "--program",
            &format!("{root}/archspec/library/{program}.arch"),
            "--config",
            &format!("{root}/examples/train/mqar.yaml"),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{program}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["event"] == "result")
        .unwrap_or_else(|| panic!("{program}: no result line in {stdout}"));
    assert_eq!(result["status"], "ok", "{program}: {result}");
    let accuracy = result["accuracy"]["mqar"].as_f64().unwrap();
    println!(
        "{program}: mqar accuracy {accuracy:.3} in {:.0} s",
        result["wall_s"].as_f64().unwrap_or_default()
    );
    accuracy
}

#[test]
fn softmax_attention_learns_recall() {
    let accuracy = recall("softmax_rope");
    assert!(
        accuracy >= 0.95,
        "softmax attention reached only {accuracy:.3}"
    );
}

#[test]
fn deltanet_learns_recall() {
    let accuracy = recall("deltanet");
    assert!(accuracy >= 0.95, "DeltaNet reached only {accuracy:.3}");
}

#[test]
fn linear_attention_does_not() {
    // Its state only accumulates, so distractors and earlier pairs blur every key: a score
    // near the others' would mean the task leaks its answers.
    let accuracy = recall("linear_attention");
    assert!(accuracy < 0.7, "linear attention reached {accuracy:.3}");
}
