//! Evolutionary against random search on the same budget (`cargo bench --bench search`).
//!
//! Runs examples/bench/search.yaml with each strategy under campaign seeds 1–5 (the random
//! control also draws parents uniformly: `parentTopK: 1000`) and reports, per strategy, the
//! median number of proposals needed to beat the best seed's fitness and the median best
//! fitness reached. Takes ~25 minutes on 2 cores. `SEARCH_BENCH_SEEDS=3` runs fewer seeds.

#![allow(clippy::unwrap_used)] // A benchmark: failures should fail loudly.

use std::path::Path;
use std::process::Command;

const MANIFEST: &str = include_str!("../examples/bench/search.yaml");

struct Outcome {
    /// Proposals made until one beat the best seed (`None`: none did within the budget).
    needed: Option<usize>,
    best: f64,
    proposals: usize,
}

fn run_campaign(dir: &Path, strategy: &str, seed: u64) -> Outcome {
    let mut manifest = MANIFEST.replace("seed: 1\n", &format!("seed: {seed}\n"));
    if strategy == "random" {
        manifest = manifest.replace(
            "  parallelism: 2\n",
            "  parallelism: 2\n  search: {sampling: {parentTopK: 1000}}\n",
        );
    }
    let path = dir.join(format!("{strategy}-{seed}.yaml"));
    std::fs::write(&path, manifest).unwrap();
    let state = dir.join(format!("{strategy}-{seed}"));
    let _ = std::fs::remove_dir_all(&state);
    let exe = env!("CARGO_BIN_EXE_archlab");
    let status = Command::new(exe)
        .args([
            "run",
            path.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            "--quiet",
            "--strategy",
            strategy,
        ])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{strategy} seed {seed} failed");
    let output = Command::new(exe)
        .args(["report", "--json", "--state", state.to_str().unwrap()])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let experiments = report["experiments"].as_array().unwrap();
    let best_seed = experiments
        .iter()
        .filter(|e| e["origin"] == "seed")
        .filter_map(|e| e["fitness"].as_f64())
        .fold(f64::NEG_INFINITY, f64::max);
    let proposals: Vec<&serde_json::Value> = experiments
        .iter()
        .filter(|e| e["origin"] == "proposal")
        .collect();
    let needed = proposals
        .iter()
        .position(|e| e["fitness"].as_f64().is_some_and(|f| f > best_seed))
        .map(|i| i + 1);
    let best = proposals
        .iter()
        .filter_map(|e| e["fitness"].as_f64())
        .fold(best_seed, f64::max);
    Outcome {
        needed,
        best,
        proposals: proposals.len(),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn main() {
    let seeds: u64 = std::env::var("SEARCH_BENCH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let dir = std::env::temp_dir().join(format!("archlab-search-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "| strategy | proposals to beat the best seed, per seed | median | median best fitness |"
    );
    println!("|---|---|---|---|");
    for strategy in ["evolutionary", "random"] {
        let outcomes: Vec<Outcome> = (1..=seeds)
            .map(|seed| run_campaign(&dir, strategy, seed))
            .collect();
        // A campaign that never beat the best seed counts as budget + 1 (censored).
        let needed: Vec<f64> = outcomes
            .iter()
            .map(|o| o.needed.map_or(o.proposals as f64 + 1.0, |n| n as f64))
            .collect();
        let per_seed: Vec<String> = outcomes
            .iter()
            .map(|o| {
                o.needed
                    .map_or_else(|| format!(">{}", o.proposals), |n| n.to_string())
            })
            .collect();
        println!(
            "| {strategy} | {} | {} | {:.3} |",
            per_seed.join(", "),
            median(needed),
            median(outcomes.iter().map(|o| o.best).collect())
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
