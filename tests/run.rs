//! `archlab run` and `archlab report` through the real binary: a whole campaign with real
//! trainer children and real SQLite, a SIGKILL mid-training followed by a resume, and bad
//! manifests rejected with the field path.

#![allow(clippy::unwrap_used)] // Test set-up: failures should fail loudly.

mod common;

use common::campaign::{
    TINY, archlab, check_memory, experiments_in_db, processes_mentioning, report_json, run_quietly,
    temp_dir, write_manifest,
};

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_campaign_runs_to_completion_and_the_report_shows_it() {
    let dir = temp_dir("complete");
    let manifest = write_manifest(&dir, TINY);
    let state = dir.join("state");
    let output = run_quietly(&manifest, &state);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("exploration and verification completed"),
        "{stderr}"
    );

    let report = report_json(&state);
    check_memory(&report, 18);
    let experiments = report["experiments"].as_array().unwrap();
    let by_stage = |stage: &str, origin: &str| {
        experiments
            .iter()
            .filter(|e| e["stage"] == stage && e["origin"] == origin)
            .count()
    };
    assert_eq!(by_stage("exploration", "seed"), 2);
    assert_eq!(by_stage("exploration", "proposal"), 4);
    // The baseline (and the other seed when it explored better, or is the promoted
    // program's parent); the promoted program (and its parent when that is a proposal):
    // three training seeds each.
    let seeds = by_stage("verification", "seed");
    let programs = by_stage("verification", "verification");
    assert!(seeds == 3 || seeds == 6, "{seeds} seed runs");
    assert!(programs == 3 || programs == 6, "{programs} program runs");
    for proposal in experiments.iter().filter(|e| e["origin"] == "proposal") {
        assert!(proposal["parent"].is_u64(), "{proposal}");
        assert!(!proposal["motivation"].as_str().unwrap().is_empty());
        assert!(
            !proposal["retrieved"].as_array().unwrap().is_empty(),
            "every proposal records the cognition entries it drew on: {proposal}"
        );
    }
    let leaderboard = report["leaderboard"].as_array().unwrap();
    assert!(!leaderboard.is_empty());
    let fitness: Vec<f64> = leaderboard
        .iter()
        .map(|r| r["fitness"].as_f64().unwrap())
        .collect();
    assert!(
        fitness.windows(2).all(|w| w[0] >= w[1]),
        "sorted: {fitness:?}"
    );
    let verified = &report["verification"];
    assert_eq!(verified["programs"].as_array().unwrap().len(), 1);
    let program = &verified["programs"][0];
    assert_eq!(program["runs"].as_u64(), Some(3));
    assert!(verified["baseline"]["half_width"].as_f64().is_some());
    assert!(verified["noise_floor"]["val_loss_sd"].as_f64().is_some());
    // The claim is a test against each comparator: n, Δ, its interval and p, and the
    // Holm-adjusted p; a status, with the reason when it is not claimed.
    let comparisons = program["comparisons"].as_array().unwrap();
    assert!(!comparisons.is_empty());
    for comparison in comparisons {
        let test = &comparison["fitness"];
        assert_eq!(test["n"].as_u64(), Some(3), "{comparison}");
        for field in ["delta", "low", "high", "p", "wilcoxon_p"] {
            assert!(test[field].as_f64().is_some(), "{field}: {comparison}");
        }
        assert!(
            comparison["roles"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        );
    }
    assert!(program["adjusted_p"].as_f64().is_some(), "{program}");
    let status = program["claim"]["status"].as_str().unwrap();
    assert!(
        status == "claimed" || program["claim"]["reason"].as_str().is_some(),
        "{program}"
    );
    assert_eq!(
        program["state_of_the_art"].as_bool(),
        Some(status == "claimed")
    );

    // Text, figures and the HTML page.
    let html = dir.join("report.html");
    let output = archlab(&[
        "report",
        "--state",
        state.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    for heading in [
        "LEADERBOARD",
        "VERIFICATION",
        "noise floor",
        "CLAIMS",
        "LINEAGE",
        "FAILED ATTEMPTS",
    ] {
        assert!(text.contains(heading), "{text}");
    }
    for figure in ["discovery.svg", "fitness.svg", "loss.svg"] {
        let svg = std::fs::read_to_string(state.join("report").join(figure)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("</svg>"),
            "{figure}"
        );
    }
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<svg") && page.contains("Leaderboard") && page.contains("linear_attention")
    );
    // Each claim with its comparisons: in the text as lines, on the page as a table.
    assert!(text.contains("\n    vs linear_attention ("), "{text}");
    assert!(
        page.contains("<h2>Claims</h2>") && page.contains("Δ fitness [95% interval]"),
        "{page}"
    );
    assert!(
        !page.contains("\nCLAIMS ("),
        "the page's text does not repeat its table"
    );

    // Running it again finds the campaign complete and starts nothing.
    let again = run_quietly(&manifest, &state);
    assert!(again.status.success());
    assert_eq!(
        report_json(&state)["experiments"].as_array().unwrap().len(),
        experiments.len()
    );
}

/// Processes whose command line mentions `needle` (Linux /proc).
#[test]
fn a_three_rung_campaign_climbs_its_ladder_and_reports_how_each_rung_predicted_the_next() {
    let dir = temp_dir("ladder");
    let manifest = write_manifest(&dir, include_str!("fixtures/tiny_ladder.yaml"));
    let state = dir.join("state");
    let output = run_quietly(&manifest, &state);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report = report_json(&state);
    check_memory(&report, 40);
    let experiments = report["experiments"].as_array().unwrap();
    let fitness_of = |id: u64| {
        experiments
            .iter()
            .find(|e| e["id"] == id && e["stage"] == "exploration")
            .and_then(|e| e["fitness"].as_f64())
    };
    // The rung: the baseline, and exploration's best three proposals above the baseline.
    let rung: Vec<&Value> = experiments
        .iter()
        .filter(|e| e["stage"] == "screening")
        .collect();
    assert!(rung.iter().all(|e| e["rung"] == 1), "{rung:?}");
    assert_eq!(
        rung.iter().filter(|e| e["origin"] == "seed").count(),
        1,
        "the baseline at the rung"
    );
    let entered: Vec<u64> = rung
        .iter()
        .filter(|e| e["origin"] == "verification")
        .map(|e| e["parent"].as_u64().unwrap())
        .collect();
    let mut above: Vec<(u64, f64)> = experiments
        .iter()
        .filter(|e| e["stage"] == "exploration" && e["origin"] == "proposal")
        .filter_map(|e| Some((e["id"].as_u64()?, e["fitness"].as_f64()?)))
        .filter(|(_, f)| *f > 0.0)
        .collect();
    above.sort_by(|a, b| b.1.total_cmp(&a.1));
    let best: Vec<u64> = above.iter().take(3).map(|(id, _)| *id).collect();
    assert_eq!(entered, best, "exploration fitness: {above:?}");
    // The program verified is the rung's best, not necessarily exploration's.
    let ladder = &report["verification"]["ladder"];
    let programs = ladder["rungs"][0]["programs"].as_array().unwrap();
    let promoted: Vec<&Value> = programs.iter().filter(|p| p["promoted"] == true).collect();
    let verified = report["verification"]["programs"].as_array().unwrap();
    if let Some(top) = promoted.first() {
        assert_eq!(promoted.len(), 1, "{programs:?}");
        assert_eq!(
            top["subject"]["id"], programs[0]["subject"]["id"],
            "{programs:?}"
        );
        assert_eq!(verified.len(), 1);
        assert_eq!(verified[0]["subject"], top["subject"]);
        assert!(fitness_of(top["subject"]["id"].as_u64().unwrap()).is_some());
    } else {
        // Nothing beat the baseline at the rung: nothing was verified, and the run said why.
        assert!(verified.is_empty());
        assert!(stderr.contains("at rung 1"), "{stderr}");
    }
    // How each level predicted the next, over the programs that ran at both.
    let predictions = ladder["predictions"].as_array().unwrap();
    assert_eq!(predictions[0]["from"], "exploration");
    assert_eq!(predictions[0]["to"], "rung 1");
    assert_eq!(
        predictions[0]["programs"],
        entered.len() + 1,
        "{predictions:?}"
    );
    let rho = predictions[0]["spearman"]["rho"].as_f64().unwrap();
    assert!((-1.0..=1.0).contains(&rho), "{predictions:?}");
    let text = archlab(&["report", "--state", state.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("LADDER"), "{text}");
    assert!(
        text.contains("exploration → rung 1: Spearman's ρ"),
        "{text}"
    );
    eprintln!(
        "{}",
        text.lines()
            .filter(|l| l.contains('→'))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn sigkill_mid_training_loses_and_duplicates_nothing_on_resume() {
    let dir = temp_dir("sigkill");
    // Longer runs, so the kill lands while trainers are mid-way.
    let manifest = write_manifest(&dir, &TINY.replace("steps: 40", "steps: 1500"));
    let state = dir.join("state");
    let state_arg = state.to_str().unwrap().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_archlab"))
        // Every progress line saved at once, so the wait below sees training however fast
        // this machine trains.
        .args(["run", &manifest, "--state", &state_arg, "--quiet"])
        .args(["--progress-interval", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // Wait until a proposal (after the seeds) is training with progress recorded.
    loop {
        let rows = experiments_in_db(&state);
        if rows.iter().any(|(id, phase, with_progress)| {
            *id >= 3 && phase.contains("training") && *with_progress > 0
        }) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "never saw a proposal training: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = experiments_in_db(&state);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // Trainers notice their driver is gone (stdin closes) and exit instead of running on.
    let runs = state.join("runs").display().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_mentioning(&runs).is_empty() {
        assert!(
            Instant::now() < deadline,
            "orphaned trainers: {:?}",
            processes_mentioning(&runs)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let output = archlab(&["run", &manifest, "--state", &state_arg, "--quiet"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("resuming"), "{stderr}");
    // The killed run's lock died with it: the resume takes it over and says whose it was.
    assert!(
        stderr.contains(&format!("took over the lock of pid {}", child.id())),
        "{stderr}"
    );
    let report = report_json(&state);
    check_memory(&report, 18);
    let experiments: BTreeMap<u64, &Value> = report["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["id"].as_u64().unwrap(), e))
        .collect();
    // Everything that existed at the kill is still there, under the same id and name.
    for (id, _, _) in &before {
        assert!(
            experiments.contains_key(&(*id as u64)),
            "experiment {id} was lost"
        );
    }
    // The interrupted runs restarted as the same attempt, not as new experiments or attempts:
    // attempt numbers stay dense, and the killed attempt ended normally.
    for (id, phase, _) in &before {
        if phase.contains("training") {
            let attempts = experiments[&(*id as u64)]["attempts"].as_array().unwrap();
            let numbers: Vec<u64> = attempts
                .iter()
                .map(|a| a["number"].as_u64().unwrap())
                .collect();
            assert_eq!(
                numbers,
                (1..=numbers.len() as u64).collect::<Vec<_>>(),
                "experiment {id}"
            );
            assert_ne!(
                attempts[0]["outcome"], "crashed",
                "experiment {id}: {attempts:?}"
            );
        }
    }
}

#[test]
fn a_second_run_on_a_locked_state_exits_at_once_naming_the_holder_and_the_first_finishes() {
    let dir = temp_dir("locked");
    let manifest = write_manifest(&dir, &TINY.replace("steps: 40", "steps: 400"));
    let state = dir.join("state");
    let state_arg = state.to_str().unwrap().to_string();
    let first = Command::new(env!("CARGO_BIN_EXE_archlab"))
        .args(["run", &manifest, "--state", &state_arg, "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The lock names its holder once the first run has it.
    let lock = state.join("archlab.lock");
    let started = Instant::now();
    while !std::fs::read_to_string(&lock).is_ok_and(|text| text.contains("pid")) {
        assert!(started.elapsed() < Duration::from_secs(60), "no lock taken");
        std::thread::sleep(Duration::from_millis(20));
    }
    let asked = Instant::now();
    let second = run_quietly(&manifest, &state);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("in use by another archlab (pid {}", first.id())),
        "{stderr}"
    );
    // At once: it neither waited for the lock nor touched the campaign.
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    // A report only reads, and reads beside a running campaign (once it has experiments).
    while experiments_in_db(&state).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no experiment"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let reading = archlab(&["report", "--state", &state_arg]);
    assert!(
        reading.status.success(),
        "{}",
        String::from_utf8_lossy(&reading.stderr)
    );
    let output = first.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("took over"), "{stderr}");
    check_memory(&report_json(&state), 18);
    // A clean end leaves the lock free and unlabelled.
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), "");
}

/// A stand-in for `archlab train` that misbehaves on the first attempt of three experiments
/// and is the real trainer everywhere else.
fn misbehaving_trainer(dir: &Path) -> PathBuf {
    let path = dir.join("trainer.sh");
    let progress = r#"{"event":"progress","step":1,"loss":2.0,"lr":0.01,"tokens_per_s":1.0,"tokens":8,"elapsed_s":0.1,"trial":0}"#;
    let script = format!(
        "#!/bin/sh\n\
         case \"$*\" in\n\
         */e00003/a1/*) echo '{progress}'; exec sleep 6171 ;;\n\
         */e00004/a1/*) printf 'not text: \\377\\376\\n'; exec sleep 6171 ;;\n\
         */e00005/a1/*) echo '{progress}'; exec sleep 6171 >&- ;;\n\
         esac\n\
         exec {} \"$@\"\n",
        env!("CARGO_BIN_EXE_archlab")
    );
    std::fs::write(&path, script).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&path, mode).unwrap();
    path
}

#[test]
fn a_silent_a_garbled_and_a_lingering_trainer_are_stopped_and_recorded_and_the_run_finishes() {
    let dir = temp_dir("hung");
    // A silence limit of seconds: the real trainers here print every few milliseconds.
    let manifest = write_manifest(
        &dir,
        &TINY.replace(
            "qa: {slowFactor: 1000}",
            "qa: {slowFactor: 1000, silenceSeconds: 15}",
        ),
    );
    let state = dir.join("state");
    let trainer = misbehaving_trainer(&dir);
    let output = archlab(&[
        "run",
        &manifest,
        "--state",
        state.to_str().unwrap(),
        "--quiet",
        "--trainer-exe",
        trainer.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report = report_json(&state);
    check_memory(&report, 18);
    let reason = |id: u64| -> String {
        let experiment = report["experiments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id)
            .unwrap_or_else(|| panic!("no experiment {id}"));
        experiment["attempts"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let silent = reason(3);
    assert!(silent.contains("printed nothing for"), "{silent}");
    assert!(silent.contains("limit 15 s"), "{silent}");
    let garbled = reason(4);
    assert!(
        garbled.contains("line 1 of the trainer's output is not UTF-8"),
        "{garbled}"
    );
    let lingering = reason(5);
    assert!(
        lingering.contains("closed its output but kept running"),
        "{lingering}"
    );
    // Every stand-in was killed with its process group: no `sleep` of theirs is left.
    assert!(
        processes_mentioning("sleep\u{0}6171").is_empty(),
        "{:?}",
        processes_mentioning("sleep\u{0}6171")
    );
}

#[test]
fn ctrl_c_stops_cleanly_and_the_same_command_resumes() {
    let dir = temp_dir("interrupt");
    let manifest = write_manifest(&dir, &TINY.replace("steps: 40", "steps: 1500"));
    let state = dir.join("state");
    let state_arg = state.to_str().unwrap().to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_archlab"))
        // Every progress line saved at once, so the wait below sees training however fast
        // this machine trains.
        .args(["run", &manifest, "--state", &state_arg, "--quiet"])
        .args(["--progress-interval", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !experiments_in_db(&state)
        .iter()
        .any(|(_, phase, with_progress)| phase.contains("training") && *with_progress > 0)
    {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "never saw training"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    // The interrupted runs are not recorded as crashes: they are still training, to restart.
    let rows = experiments_in_db(&state);
    assert!(
        rows.iter().any(|(_, phase, _)| phase.contains("training")),
        "{rows:?}"
    );
    let resumed = run_quietly(&manifest, &state);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let report = report_json(&state);
    check_memory(&report, 18);
    for e in report["experiments"].as_array().unwrap() {
        for attempt in e["attempts"].as_array().unwrap() {
            assert_ne!(
                attempt["outcome"], "crashed",
                "an interrupted run became a crash: {e}"
            );
        }
    }
}

/// What must repeat exactly on a rerun: everything but wall-clock figures (compute time, and
/// the analysis, which quotes training seconds).
fn reproducible_part(report: &Value) -> Value {
    fn strip(value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(key, _)| {
                        !matches!(
                            key.as_str(),
                            "compute_s" | "compute_hours" | "compute_hours_at" | "analysis"
                        )
                    })
                    .map(|(key, value)| (key.clone(), strip(value)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    strip(&serde_json::json!({
        "experiments": report["experiments"],
        "leaderboard": report["leaderboard"],
        "verification": report["verification"],
        "seed": report["seed"],
    }))
}

#[test]
fn one_trainer_at_a_time_the_same_manifest_and_seed_give_the_same_campaign() {
    let dir = temp_dir("reproducible");
    let manifest = write_manifest(&dir, &TINY.replace("parallelism: 2", "parallelism: 1"));
    let mut reports = Vec::new();
    for run in ["first", "second"] {
        let state = dir.join(run);
        let output = run_quietly(&manifest, &state);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        reports.push(report_json(&state));
    }
    assert_eq!(reports[0]["seed"], 3);
    assert_eq!(reports[0]["archlab_version"], env!("CARGO_PKG_VERSION"));
    assert!(reports[0]["experiments"].as_array().unwrap().len() >= 6);
    let (first, second) = (
        reproducible_part(&reports[0]),
        reproducible_part(&reports[1]),
    );
    assert!(
        first == second,
        "the rerun differs:\nfirst:  {first}\nsecond: {second}"
    );
    // A different seed is a different campaign (the comparison is not vacuous).
    let reseeded = write_manifest(
        &dir,
        &TINY
            .replace("parallelism: 2", "parallelism: 1")
            .replace("  seed: 3", "  seed: 4"),
    );
    let state = dir.join("reseeded");
    assert!(run_quietly(&reseeded, &state).status.success());
    let other = report_json(&state);
    assert_eq!(other["seed"], 4);
    assert!(reproducible_part(&other)["experiments"] != first["experiments"]);
}

#[test]
fn malformed_manifests_are_rejected_with_the_field_path() {
    let dir = temp_dir("malformed");
    let state = dir.join("state");
    for (broken, expected) in [
        (
            TINY.replace("steps: 40", "steps: many"),
            "spec.stages.exploration.train.steps",
        ),
        (
            TINY.replace("maxExperiments: 18", "maxExperimentz: 18"),
            "spec.budget",
        ),
        (
            TINY.replace("baseline: linear_attention", "baseline: nope"),
            "spec.baseline",
        ),
        (
            TINY.replace("library: retnet", "library: retnett"),
            "spec.seeds[1].library",
        ),
        (
            TINY.replace("seeds: 3", "seeds: 1"),
            "spec.stages.verification.seeds",
        ),
    ] {
        let manifest = write_manifest(&dir, &broken);
        let output = run_quietly(&manifest, &state);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(expected),
            "expected `{expected}` in: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let output = archlab(&["report", "--state", dir.join("nothing").to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no archlab memory"));
}

/// The promoted program is the best proposal under another name — entered into memory as if
/// the Researcher had proposed it, past the novelty check that would refuse it. Retrained under
/// the same training seeds beside its original, it must not be claimed.
#[test]
fn the_best_program_promoted_again_under_another_name_is_not_claimed() {
    use archlab::core::lifecycle::{Origin, Phase, Stage};
    use archlab::memory::Store;
    use archlab::memory::sqlite::SqliteStore;

    let dir = temp_dir("twin");
    // Two promotions: (2 × 2 + 2) × 3 runs reserved, 6 explore.
    let text = TINY
        .replace("promote: 1", "promote: 2")
        .replace("maxExperiments: 18", "maxExperiments: 24");
    let manifest = write_manifest(&dir, &text);
    let state = dir.join("state");
    let first = run_quietly(&manifest, &state);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );

    let mut store = SqliteStore::open(&state).unwrap();
    let experiments = store.experiments("tiny").unwrap();
    let best = experiments
        .iter()
        .filter(|e| e.stage == Stage::Exploration && e.origin == Origin::Proposal)
        .filter(|e| e.phase == Phase::Succeeded && e.fitness.is_some_and(|f| f > 0.0))
        .max_by(|a, b| a.fitness.unwrap().total_cmp(&b.fitness.unwrap()))
        .expect("a proposal beat the baseline")
        .clone();
    let mut twin = best.clone();
    twin.id = store.next_experiment_id("tiny").unwrap();
    twin.name = format!("{}-renamed", best.name);
    twin.parent = Some(best.id);
    twin.references.clear();
    store.save_experiment("tiny", &twin).unwrap();
    drop(store);

    // Room for the twin's three verification runs (the first run may have left it).
    let total = experiments.len() + 1;
    let limit = (total + 3).max(24);
    let raised = text.replace("maxExperiments: 24", &format!("maxExperiments: {limit}"));
    let manifest = write_manifest(&dir, &raised);
    let second = run_quietly(&manifest, &state);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let report = report_json(&state);
    check_memory(&report, limit);
    // Exploration had ended: the raised budget paid for the twin's verification alone.
    assert_eq!(report["experiments"].as_array().unwrap().len(), total + 3);
    let programs = report["verification"]["programs"].as_array().unwrap();
    let verified = |id: u64| {
        programs
            .iter()
            .find(|p| p["source"] == id)
            .unwrap_or_else(|| panic!("e{id} not verified: {programs:#?}"))
    };
    let (original, renamed) = (verified(best.id), verified(twin.id));
    assert_eq!(renamed["runs"].as_u64(), Some(3), "{renamed}");
    assert_eq!(renamed["state_of_the_art"], false, "{renamed:#}");
    assert_eq!(renamed["claim"]["status"], "not_claimed", "{renamed:#}");
    // Against its original (its parent, and the current best if that claim stands), the
    // same program under the same seeds is no better.
    let against_original = renamed["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["subject"]["id"] == best.id)
        .unwrap_or_else(|| panic!("{renamed:#}"));
    let test = &against_original["fitness"];
    assert!(test["delta"].as_f64().unwrap().abs() < 1e-6, "{test}");
    assert!(test["p"].as_f64().unwrap() > 0.05, "{test}");
    assert_eq!(
        original["val_loss"]["mean"], renamed["val_loss"]["mean"],
        "the same program under the same seeds"
    );
}
