//! The `archlab` binary as a user runs it: real child processes, real files.

#![allow(clippy::unwrap_used)] // Test helpers: a failed set-up should fail the test loudly.

use std::path::PathBuf;
use std::process::{Command, Output};

fn archlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_archlab"))
        .args(args)
        .output()
        .expect("archlab runs")
}

fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("archlab-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

#[test]
fn check_json_reports_the_analyses_of_a_valid_program() {
    let source = archspec::library::get("deltanet").unwrap().source;
    let path = temp_file("deltanet.arch", source.as_bytes());
    let output = archlab(&["check", "--json", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    let report = json(&output);
    assert_eq!(report["valid"], true);
    assert_eq!(report["causal"], true);
    assert_eq!(report["complexity"], "linear");
    assert!(report["errors"].as_array().unwrap().is_empty());
    for field in ["params", "flops_per_token", "state_size"] {
        assert!(report[field].as_u64().unwrap() > 0, "{field}");
    }
}

#[test]
fn check_rejects_a_program_that_reads_the_future_with_line_and_column() {
    let path = temp_file(
        "future.arch",
        b"mixer peek(d_model) {\n  ahead = x |> token_shift(-1)\n  return ahead |> linear(d_model)\n}\n",
    );
    let output = archlab(&["check", "--json", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let report = json(&output);
    assert_eq!(report["valid"], false);
    assert_eq!(report["causal"], false);
    let error = &report["errors"][0];
    assert_eq!(
        (error["line"].as_u64(), error["column"].as_u64()),
        (Some(2), Some(11))
    );
    assert!(error["message"].as_str().unwrap().contains("not causal"));

    let text = archlab(&["check", path.to_str().unwrap()]);
    assert_eq!(text.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&text.stderr).contains("error[E0401] at 2:11"));
}

#[test]
fn complexity_limits_and_overrides_come_from_flags() {
    let source = archspec::library::get("softmax_rope").unwrap().source;
    let path = temp_file("softmax.arch", source.as_bytes());
    let path = path.to_str().unwrap();
    let limited = archlab(&["check", "--json", "--max-complexity", "linear", path]);
    assert_eq!(limited.status.code(), Some(1));
    let report = json(&archlab(&["check", "--json", "--set", "heads=8", path]));
    assert_eq!(report["hyperparameters"]["heads"], 8);
    assert_eq!(report["complexity"], "quadratic");
}

#[test]
fn any_input_exits_zero_or_one_never_a_panic() {
    let inputs: [&[u8]; 6] = [
        b"",
        b"\xff\xfe\x00binary\x01",
        b"mixer",
        b"mixer m(d_model) { return x }",
        b"mixer m(d_model) {\n return ((((((((((((((((((((x\n}",
        b"}}}}{{{{ |> |> |> 1e999999 -------",
    ];
    for (index, contents) in inputs.iter().enumerate() {
        let path = temp_file(&format!("input{index}.arch"), contents);
        let output = archlab(&["check", path.to_str().unwrap()]);
        let code = output.status.code();
        assert!(
            code == Some(0) || code == Some(1),
            "input {index} exited {code:?}"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "input {index}: {stderr}");
        if code == Some(1) {
            assert!(stderr.contains("error"), "input {index} gave no message");
        }
    }
    let missing = archlab(&["check", "/nonexistent/program.arch"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/program.arch"));
}

#[test]
fn library_list_and_show() {
    let listing = archlab(&["library", "list", "--json"]);
    assert_eq!(listing.status.code(), Some(0));
    let entries = json(&listing);
    let names: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for name in [
        "softmax_rope",
        "sliding_window",
        "linear_attention",
        "retnet",
        "gla",
        "mamba2_ssd",
        "deltanet",
        "gated_deltanet",
        "routed_hybrid",
    ] {
        assert!(names.contains(&name), "{name} missing");
    }
    let shown = archlab(&["library", "show", "gla"]);
    assert_eq!(shown.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&shown.stdout).contains("mixer gla("));
    let unknown = archlab(&["library", "show", "nope"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("available: softmax_rope"));
}

#[test]
fn cognition_search_json_lists_hits_with_scores() {
    let output = archlab(&[
        "cognition",
        "search",
        "recall fails because the state cannot overwrite old keys",
        "-k",
        "3",
        "--json",
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = json(&output);
    assert_eq!(report["embedder"], "lexical");
    let hits = report["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 3);
    for hit in hits {
        assert!(hit["id"].as_str().is_some() && hit["title"].as_str().is_some());
        assert!(hit.get("arxiv").is_some());
        let score = hit["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score));
    }
    let shown = archlab(&["cognition", "show", hits[0]["id"].as_str().unwrap()]);
    assert_eq!(shown.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&shown.stdout).contains("trigger:"));
    let missing = archlab(&["cognition", "show", "no-such-entry"]);
    assert_eq!(missing.status.code(), Some(1));
}
