//! Whole campaigns through the real binary: running it, reading its report and its memory,
//! and the invariants every finished campaign holds. Shared by tests/run.rs and
//! tests/faults.rs.

#![allow(clippy::unwrap_used)] // Test set-up: failures should fail loudly.

use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The smallest complete campaign (18 runs of about a second each).
pub const TINY: &str = include_str!("../fixtures/tiny_campaign.yaml");

pub fn archlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_archlab"))
        .args(args)
        .output()
        .expect("archlab runs")
}

/// `archlab run MANIFEST --state STATE --quiet`.
pub fn run_quietly(manifest: &str, state: &Path) -> Output {
    archlab(&[
        "run",
        manifest,
        "--state",
        state.to_str().unwrap(),
        "--quiet",
    ])
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("archlab-run-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn write_manifest(dir: &Path, text: &str) -> String {
    let path = dir.join("campaign.yaml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

pub fn report_json(state: &Path) -> Value {
    let output = archlab(&["report", "--state", state.to_str().unwrap(), "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Invariants every finished campaign holds, whatever happened on the way.
pub fn check_memory(report: &Value, max_experiments: usize) {
    let experiments = report["experiments"].as_array().unwrap();
    assert!(
        experiments.len() <= max_experiments,
        "budget exceeded: {}",
        experiments.len()
    );
    let ids: Vec<u64> = experiments
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=ids.len() as u64).collect();
    assert_eq!(ids, expected, "ids are dense and unique");
    // Each seed once per stage and training seed; each promoted program once per seed.
    let mut seen = HashSet::new();
    for e in experiments {
        for field in [
            "id", "name", "parent", "stage", "phase", "fitness", "attempts",
        ] {
            assert!(e.get(field).is_some(), "experiment lacks `{field}`: {e}");
        }
        let phase = e["phase"].as_str().unwrap();
        assert!(
            phase == "succeeded" || phase == "failed",
            "not terminal: {e}"
        );
        let origin = e["origin"].as_str().unwrap();
        if origin != "proposal" {
            let key = (
                e["name"].to_string(),
                e["stage"].to_string(),
                e["replica"].as_u64(),
            );
            assert!(seen.insert(key), "duplicated: {e}");
        }
        let attempts = e["attempts"].as_array().unwrap();
        assert!(!attempts.is_empty(), "no attempt recorded: {e}");
        for attempt in attempts {
            let outcome = attempt["outcome"].as_str().unwrap();
            if outcome != "finished" {
                assert!(
                    !attempt["reason"].as_str().unwrap().is_empty(),
                    "a failed attempt without its reason: {e}"
                );
            }
        }
        if phase == "failed" {
            assert_ne!(attempts.last().unwrap()["outcome"], "finished");
        }
    }
}

pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

pub fn experiments_in_db(state: &Path) -> Vec<(i64, String, i64)> {
    let Ok(connection) = rusqlite::Connection::open_with_flags(
        state.join("archlab.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return Vec::new();
    };
    let Ok(mut statement) = connection.prepare(
        "SELECT e.id, e.phase, (SELECT COUNT(*) FROM attempts a WHERE a.campaign = e.campaign AND a.experiment = e.id AND a.progress_json != '[]') FROM experiments e",
    ) else {
        return Vec::new();
    };
    statement
        .query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })
        .map(|rows| rows.filter_map(|r| r.ok()).collect())
        .unwrap_or_default()
}
