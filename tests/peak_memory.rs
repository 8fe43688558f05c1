//! The static peak-memory estimate (`archlab check`, README "Peak memory") against what a real
//! `archlab train` uses: the child's peak resident memory, from the kernel (getrusage). One
//! test in its own process, so that no other child's peak is counted.

#![allow(clippy::unwrap_used)] // Test set-up: failures should fail loudly.

use std::process::Command;

#[test]
fn the_estimate_is_within_a_quarter_of_the_measured_peak_of_a_real_training_run() {
    let dir = std::env::temp_dir().join(format!("archlab-peak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("train.yaml");
    // Full attention at length 512: the T×T scores dominate, as they would on a device.
    std::fs::write(
        &config,
        "model: {d_model: 128, n_layers: 2}
data: {vocab_size: 256, seq_len: 512, tasks: [{kind: mqar, num_kv_pairs: 4}]}
steps: 3
batch_size: 8
optim: {lr: 0.001, warmup_steps: 1}
eval_batches: 1
progress_every: 1
chunk_size: 16
",
    )
    .unwrap();
    let program = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/archspec/library/softmax_rope.arch"
    );
    let check = Command::new(env!("CARGO_BIN_EXE_archlab"))
        .args([
            "check",
            program,
            "--json",
            "--d-model",
            "128",
            "--seq-len",
            "512",
        ])
        .args([
            "--layers",
            "2",
            "--vocab",
            "256",
            "--batch-size",
            "8",
            "--chunk-size",
            "16",
        ])
        .output()
        .unwrap();
    assert!(check.status.success());
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    let estimate = report["training_memory_bytes"].as_u64().unwrap();

    let train = Command::new(env!("CARGO_BIN_EXE_archlab"))
        .args(["train", "--program", program, "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        train.status.success(),
        "{}",
        String::from_utf8_lossy(&train.stderr)
    );
    let usage =
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    // Linux reports ru_maxrss in KiB; the check above is the smaller child.
    let measured = usage.max_rss() as u64 * 1024;
    let ratio = measured as f64 / estimate as f64;
    eprintln!(
        "peak memory: measured {:.1} MiB, estimated {:.1} MiB (ratio {ratio:.2})",
        measured as f64 / f64::from(1 << 20),
        estimate as f64 / f64::from(1 << 20)
    );
    assert!(estimate > 200 << 20, "too small a run to judge: {estimate}");
    assert!((0.75..=1.25).contains(&ratio), "ratio {ratio:.2}");
    let _ = std::fs::remove_dir_all(&dir);
}
