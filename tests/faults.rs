//! `archlab run` meeting damage and faults, through the real binary and real SQLite: a damaged
//! record quarantines its experiment (the campaign goes on), the process killed inside a
//! store transaction at chosen points resumes with nothing lost or duplicated, and a full disk
//! (a small tmpfs as the state directory) stops the run cleanly and the same command resumes
//! once there is space.

#![allow(clippy::unwrap_used)] // Test set-up: failures should fail loudly.

mod common;

use common::campaign::{
    TINY, archlab, check_memory, processes_mentioning, report_json, run_quietly, temp_dir,
    write_manifest,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Each stored experiment's id and record, as the database holds them.
fn rows(state: &Path) -> BTreeMap<i64, String> {
    let connection = rusqlite::Connection::open_with_flags(
        state.join("archlab.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut statement = connection
        .prepare("SELECT id, record_json FROM experiments")
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn integrity(state: &Path) -> String {
    rusqlite::Connection::open(state.join("archlab.db"))
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap()
}

/// Waits until no trainer of `state` runs (they exit when their driver is gone).
fn no_orphans(state: &Path) {
    let runs = state.join("runs").display().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_mentioning(&runs).is_empty() {
        assert!(Instant::now() < deadline, "orphaned trainers");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn damaged_records_are_quarantined_reported_and_kept_and_the_campaign_goes_on() {
    let dir = temp_dir("quarantine");
    let manifest = write_manifest(&dir, TINY);
    let state = dir.join("state");
    let first = run_quietly(&manifest, &state);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let stored = rows(&state).len();
    // A record cut short and an attempt whose progress is not JSON.
    let connection = rusqlite::Connection::open(state.join("archlab.db")).unwrap();
    connection
        .execute_batch(
            "UPDATE experiments SET record_json = substr(record_json, 1, 30) WHERE id = 2;
             UPDATE attempts SET progress_json = '[{' WHERE experiment = 4;",
        )
        .unwrap();
    drop(connection);
    let damaged = rows(&state);

    // A raised budget continues the campaign around them.
    let raised = TINY.replace("maxExperiments: 18", "maxExperiments: 24");
    let manifest = write_manifest(&dir, &raised);
    let output = run_quietly(&manifest, &state);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    for id in [2, 4] {
        assert!(
            stderr.contains(&format!("experiment {id} cannot be read back")),
            "{stderr}"
        );
    }
    let after = rows(&state);
    // Kept as found, their ids never given again, and counted by the budget.
    for id in [2, 4] {
        assert_eq!(after[&id], damaged[&id], "experiment {id} was rewritten");
    }
    assert!(after.len() > stored, "the campaign did not go on");
    assert!(after.len() <= 24, "budget exceeded: {}", after.len());
    let ids: Vec<i64> = after.keys().copied().collect();
    assert_eq!(ids, (1..=after.len() as i64).collect::<Vec<_>>());

    let report = report_json(&state);
    let quarantined: Vec<(u64, String)> = report["quarantined"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["id"].as_u64().unwrap(),
                q["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(quarantined.iter().map(|q| q.0).collect::<Vec<_>>(), [2, 4]);
    assert!(quarantined[1].1.contains("experiment 4"), "{quarantined:?}");
    let readable: Vec<u64> = report["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=after.len() as u64)
        .filter(|id| ![2, 4].contains(id))
        .collect();
    assert_eq!(readable, expected);
    let text = archlab(&["report", "--state", state.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("DAMAGED RECORDS: 2 experiments are left out"),
        "{text}"
    );
}

#[test]
fn a_kill_inside_a_store_transaction_loses_and_duplicates_nothing_on_resume() {
    // Inside the write of one experiment (between its row and its attempts'), just before its
    // commit, and just after it (before the run acts on what it saved).
    for (point, pass) in [
        ("save_experiment.between_rows", 5),
        ("save_experiment.before_commit", 11),
        ("save_experiment.after_commit", 17),
    ] {
        let dir = temp_dir(&format!("fault-{pass}"));
        let manifest = write_manifest(&dir, TINY);
        let state = dir.join("state");
        let state_arg = state.to_str().unwrap();
        let killed = Command::new(env!("CARGO_BIN_EXE_archlab"))
            .args(["run", &manifest, "--state", state_arg, "--quiet"])
            .args(["--progress-interval", "0"])
            .env("ARCHLAB_FAULT", format!("{point}:{pass}"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&killed.stderr);
        assert_eq!(killed.status.signal(), Some(6), "{point}: {stderr}");
        assert!(stderr.contains("injected fault"), "{stderr}");
        no_orphans(&state);
        assert_eq!(integrity(&state), "ok", "{point}");
        let before = rows(&state);
        assert!(
            !before.is_empty(),
            "{point}: nothing was stored before the fault"
        );

        let output = run_quietly(&manifest, &state);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{point}: {stderr}");
        let report = report_json(&state);
        check_memory(&report, 18);
        let after: BTreeMap<u64, &Value> = report["experiments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["id"].as_u64().unwrap(), e))
            .collect();
        for (id, record) in &before {
            let stored: Value = serde_json::from_str(record).unwrap();
            let resumed = after
                .get(&(*id as u64))
                .unwrap_or_else(|| panic!("{point}: experiment {id} was lost"));
            assert_eq!(resumed["name"], stored["name"], "{point}: experiment {id}");
        }
    }
}

/// A tmpfs of a given size mounted at a directory, unmounted when dropped.
struct SmallDisk {
    at: std::path::PathBuf,
}

impl SmallDisk {
    /// `None` where this process may not mount (not root): the test then skips, loudly,
    /// unless `ARCHLAB_REQUIRE_TOOLS=1` (CI) makes that a failure.
    fn mount(at: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .is_ok_and(|output| output.status.success());
        if !mounted {
            assert_ne!(
                std::env::var("ARCHLAB_REQUIRE_TOOLS").as_deref(),
                Ok("1"),
                "cannot mount a tmpfs (root is needed) and ARCHLAB_REQUIRE_TOOLS=1"
            );
            eprintln!("\n*** skipped: cannot mount a tmpfs here (root is needed) ***\n");
            return None;
        }
        Some(SmallDisk {
            at: at.to_path_buf(),
        })
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.at)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.at).status();
    }
}

/// Every failed attempt's reason in the state's memory.
fn failure_reasons(state: &Path) -> Vec<String> {
    report_json(state)["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["attempts"].as_array().unwrap().clone())
        .filter(|a| a["outcome"] != "finished")
        .map(|a| a["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_full_disk_stops_the_run_cleanly_and_the_same_command_resumes_once_there_is_room() {
    // The whole campaign needs about 500 KB here: these sizes fill up while a trainer saves
    // its first checkpoint, while memory is written, and later in the campaign.
    for size in ["150k", "260k", "400k"] {
        let dir = temp_dir(&format!("full-{size}"));
        let manifest = write_manifest(&dir, TINY);
        let state = dir.join("state");
        let Some(disk) = SmallDisk::mount(&state, size) else {
            return;
        };
        let full = run_quietly(&manifest, &state);
        let stderr = String::from_utf8_lossy(&full.stderr);
        assert_eq!(full.status.code(), Some(1), "{size}: {stderr}");
        assert!(
            stderr.contains("is full") && stderr.contains("run the same command"),
            "{size}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{size}: {stderr}");
        no_orphans(&state);
        assert_eq!(integrity(&state), "ok", "{size}");
        let before = rows(&state);

        disk.resize("16m");
        let output = run_quietly(&manifest, &state);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{size}: {stderr}");
        let report = report_json(&state);
        check_memory(&report, 18);
        let after: Vec<u64> = report["experiments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_u64().unwrap())
            .collect();
        for id in before.keys() {
            assert!(
                after.contains(&(*id as u64)),
                "{size}: experiment {id} was lost"
            );
        }
        // Nothing was charged to a program for the machine's full disk.
        for reason in failure_reasons(&state) {
            assert!(
                !reason.contains("No space") && !reason.contains("full"),
                "{size}: {reason}"
            );
        }
    }
}
