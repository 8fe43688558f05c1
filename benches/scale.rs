//! The core at scale (`cargo bench --bench scale`): memories of 1,000 and 10,000 experiments,
//! and what a proposal, opening the memory and building the report cost at each size.
//!
//! The memories are made the way a campaign makes them: the engine with the offline
//! evolutionary agents (Researcher, Engineer, Analyst) on `examples/quickstart.yaml`'s
//! campaign, and a trainer stand-in that prints what a trainer prints (a progress line every
//! 20 steps, then a result whose loss depends on the program; one run in ten crashes), so the
//! records hold real programs, their mutations and repairs, attempts, analyses and loss
//! curves. They are kept in `target/tmp/scale-bench/` and reused by later runs
//! (`SCALE_BENCH_FRESH=1` makes them again; `SCALE_BENCH_SIZES=1000` picks the sizes).
//!
//! Per size it prints: the time to open the SQLite memory and the engine on it, the time per
//! proposal (`Engine::fill(1)`: planning, parent sampling, cognition retrieval, the
//! Researcher, the checks, structural and motivation novelty, the QA context, the save; the
//! mean, median and 90th percentile of 40 proposals, each trained by the stand-in before the next),
//! and the time to build `archlab report --json` and `--html` (with its figures).

#![allow(clippy::unwrap_used)] // A benchmark: failures should fail loudly.

use archlab::agents::{Offline, SearchStrategy};
use archlab::api::{CampaignSpec, parse_campaign};
use archlab::cognition::Base;
use archlab::core::lifecycle::{Event, TrainSummary};
use archlab::core::qa::ProgressPoint;
use archlab::engine::{Cognition, Command, Engine};
use archlab::memory::Store;
use archlab::memory::sqlite::{DATABASE, SqliteStore};
use archlab::report::{Report, html, plots};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CAMPAIGN: &str = "quickstart";
const PROPOSALS_TIMED: usize = 40;

fn spec() -> CampaignSpec {
    let manifest = include_str!("../examples/quickstart.yaml")
        .replace("maxExperiments: 30", "maxExperiments: 1000000")
        .replace("maxComputeHours: 0.5", "maxComputeHours: 1000000");
    parse_campaign(&manifest).unwrap().spec
}

fn open_engine(dir: &Path) -> Engine<SqliteStore> {
    let base = Base::load(&[]).unwrap();
    let cognition = Cognition {
        retriever: Box::new(base.lexical()),
        base,
        top_k: 3,
        min_score: 0.0,
    };
    let agents = Offline {
        strategy: SearchStrategy::Evolutionary,
    };
    let store = SqliteStore::open(dir).unwrap();
    Engine::open(CAMPAIGN, spec(), store, Box::new(agents), cognition).unwrap()
}

/// 64-bit FNV-1a, for outcomes that depend on the program alone.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What a trainer would print for `command`, fed back to the engine; returns the commands
/// that follow (a repaired program's start).
fn train(engine: &mut Engine<SqliteStore>, command: Command) -> Vec<Command> {
    let Command::Start {
        experiment,
        attempt,
        program,
        config,
        ..
    } = command
    else {
        return Vec::new();
    };
    let draw = fnv(&program);
    let unit = |shift: u32| ((draw >> shift) & 0xffff) as f64 / 65535.0;
    let final_loss = 0.6 + 0.9 * unit(0);
    let every = config.progress_every.max(1);
    let mut commands = Vec::new();
    for step in (every..=config.steps).step_by(every) {
        let fraction = step as f64 / config.steps as f64;
        let loss = final_loss + (3.5 - final_loss) * (-4.0 * fraction).exp();
        let point = ProgressPoint {
            step,
            loss,
            elapsed_s: 0.05 * step as f64,
            trial: 0,
        };
        commands.extend(
            engine
                .observe(experiment, attempt, Event::Progress(point))
                .unwrap(),
        );
        if !commands.is_empty() {
            return commands; // QA stopped it.
        }
    }
    let event = if unit(16) < 0.1 {
        Event::Crashed {
            message: "exit status 101".into(),
            log_tail: "thread 'main' panicked: shape mismatch".into(),
        }
    } else {
        Event::Finished(TrainSummary {
            val_loss: final_loss,
            accuracy: BTreeMap::from([("mqar".into(), (1.6 - final_loss).clamp(0.0, 1.0))]),
            wall_s: 0.05 * config.steps as f64,
            params: 20_000 + (draw >> 32) % 10_000,
            benchmarks: BTreeMap::new(),
        })
    };
    engine.observe(experiment, attempt, event).unwrap()
}

/// One proposal (timed) and the training it starts (not timed).
fn propose_and_train(engine: &mut Engine<SqliteStore>) -> Duration {
    let started = Instant::now();
    let (commands, ending) = engine.fill(1).unwrap();
    let elapsed = started.elapsed();
    assert!(ending.is_none(), "the campaign ended: {ending:?}");
    let mut queue: VecDeque<Command> = commands.into();
    while let Some(command) = queue.pop_front() {
        queue.extend(train(engine, command));
    }
    elapsed
}

/// The memory of `size` experiments, made once and kept.
fn memory(size: usize) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("scale-bench")
        .join(size.to_string());
    let fresh = std::env::var_os("SCALE_BENCH_FRESH").is_some();
    if !fresh && dir.join(DATABASE).exists() {
        let count = SqliteStore::open(&dir)
            .unwrap()
            .experiments(CAMPAIGN)
            .unwrap()
            .len();
        if count >= size {
            return dir;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let started = Instant::now();
    let mut engine = open_engine(&dir);
    let mut next_report = 500;
    while engine.experiments().len() < size {
        propose_and_train(&mut engine);
        let made = engine.experiments().len();
        if made >= next_report {
            next_report += 500;
            eprintln!(
                "  made {made}/{size} experiments ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    eprintln!(
        "  memory of {size} experiments made in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    dir
}

/// A copy to time proposals on, so the kept memory stays as made.
fn scratch_copy(dir: &Path) -> PathBuf {
    let copy = dir.with_extension("scratch");
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy).unwrap();
    // Opening and dropping a store checkpoints the WAL into the main file.
    drop(SqliteStore::open(dir).unwrap());
    std::fs::copy(dir.join(DATABASE), copy.join(DATABASE)).unwrap();
    copy
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Figures {
    experiments: usize,
    attempts: usize,
    open: Duration,
    proposal_mean: Duration,
    proposal_median: Duration,
    proposal_p90: Duration,
    report_json: Duration,
    report_html: Duration,
}

fn measure(size: usize) -> Figures {
    let kept = memory(size);
    let dir = scratch_copy(&kept);

    let started = Instant::now();
    let mut engine = open_engine(&dir);
    let open = started.elapsed();
    let experiments = engine.experiments().len();
    let attempts = engine.experiments().iter().map(|e| e.attempts.len()).sum();

    let mut times: Vec<Duration> = (0..PROPOSALS_TIMED)
        .map(|_| propose_and_train(&mut engine))
        .collect();
    times.sort();
    drop(engine);

    // As `archlab report` does it: open, read, build; then the JSON or the page.
    let started = Instant::now();
    let store = SqliteStore::open(&dir).unwrap();
    let records = store.experiments(CAMPAIGN).unwrap();
    let usage = archlab::core::campaign::usage(&records, 0);
    let report = Report::build(
        CAMPAIGN,
        &archlab::core::verification::Rules::with_baseline("linear_attention"),
        &records,
        usage,
    );
    let json = serde_json::to_string_pretty(&report).unwrap();
    let report_json = started.elapsed();
    let started = Instant::now();
    let figures = plots::all(&report).unwrap();
    let page = html::render(&report, &figures);
    let report_html = report_json + started.elapsed();
    assert!(json.len() > experiments && page.len() > experiments);
    let _ = std::fs::remove_dir_all(&dir);

    Figures {
        experiments,
        attempts,
        open,
        proposal_mean: times.iter().sum::<Duration>() / times.len() as u32,
        proposal_median: percentile(&times, 0.5),
        proposal_p90: percentile(&times, 0.9),
        report_json,
        report_html,
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::var("SCALE_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').map(|n| n.trim().parse().unwrap()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000]);
    let mut rows = Vec::new();
    for size in sizes {
        eprintln!("memory of {size} experiments");
        rows.push(measure(size));
    }
    println!(
        "| experiments | attempts | open memory + engine | proposal (mean) | proposal (median) | proposal (p90) | report --json | report --html |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for f in &rows {
        println!(
            "| {} | {} | {:.0} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.0} ms | {:.0} ms |",
            f.experiments,
            f.attempts,
            ms(f.open),
            ms(f.proposal_mean),
            ms(f.proposal_median),
            ms(f.proposal_p90),
            ms(f.report_json),
            ms(f.report_html),
        );
    }
}
