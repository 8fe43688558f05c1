//! Every program the checker accepts is causal, measured: the dynamic probe
//! (`trainer::causality`) over the library, every cognition sketch, and over a thousand
//! programs made by the search's own mutation and crossover operators and by the fuzzer
//! (`fuzz/`). A program accepted and
//! refused by the probe would be a hole in the static check.

use archspec::mutate::{crossover, mutate_random};
use archspec::{CheckConfig, Program, Valid, check_source, library, parse};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use trainer::causality::{ProbeError, ProbeShape, probe};

/// Programs made by the operators and accepted by the checker.
const MUTATED: usize = 3000;

fn config(shape: ProbeShape) -> CheckConfig {
    CheckConfig {
        d_model: shape.d_model,
        seq_len: shape.seq_len,
        ..CheckConfig::default()
    }
}

/// What probing a set of programs found.
struct Probed {
    /// Programs probed.
    count: usize,
    /// The names and reasons of those that leak (or crashed the interpreter).
    leaking: Vec<String>,
    /// Programs whose unperturbed output is not finite: nothing to measure.
    unmeasurable: Vec<String>,
    /// The largest relative change seen before a cut.
    largest: f32,
}

/// Probes each program.
fn leaks<'a>(shape: ProbeShape, programs: impl IntoIterator<Item = (String, &'a Valid)>) -> Probed {
    let mut found = Probed {
        count: 0,
        leaking: Vec::new(),
        unmeasurable: Vec::new(),
        largest: 0.0,
    };
    for (index, (name, valid)) in programs.into_iter().enumerate() {
        found.count += 1;
        // A panic of the interpreter on an accepted program is a finding too, named.
        let probed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            probe(&valid.checked.graph, shape, index as u64)
        }));
        let program = archspec::print(&valid.program);
        match probed {
            Ok(Ok(change)) => found.largest = found.largest.max(change),
            Ok(Err(error @ ProbeError::NonFinite { .. })) => {
                found
                    .unmeasurable
                    .push(format!("{name}: {error}\n{program}"));
            }
            Ok(Err(error)) => found.leaking.push(format!("{name}: {error}\n{program}")),
            Err(_) => found.leaking.push(format!(
                "{name}: the interpreter panicked (above)\n{program}"
            )),
        }
    }
    found
}

#[test]
fn the_library_and_every_cognition_sketch_are_causal_when_probed() {
    // The width the cognition base's own tests check its sketches at (some divide it by 64).
    let shape = ProbeShape {
        d_model: CheckConfig::default().d_model,
        ..ProbeShape::default()
    };
    let mut programs: Vec<(String, Valid)> = library::ENTRIES
        .iter()
        .map(|entry| {
            let valid = check_source(entry.source, &config(shape))
                .unwrap_or_else(|d| panic!("{}: {d:?}", entry.name));
            (entry.name.to_string(), valid)
        })
        .collect();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../cognition");
    let mut sketches = 0;
    for file in std::fs::read_dir(dir).expect("the cognition base") {
        let path = file.expect("a cognition entry").path();
        let text = std::fs::read_to_string(&path).expect("readable entry");
        let entry: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML entry");
        let Some(sketch) = entry.get("archspec").and_then(serde_yaml::Value::as_str) else {
            continue;
        };
        sketches += 1;
        let valid = check_source(sketch, &config(shape))
            .unwrap_or_else(|d| panic!("{}: {d:?}", path.display()));
        programs.push((path.display().to_string(), valid));
    }
    assert!(sketches >= 50, "only {sketches} sketches found in {dir}");
    let found = leaks(shape, programs.iter().map(|(n, v)| (n.clone(), v)));
    eprintln!(
        "causality probe: {} library programs and sketches, {} leaking, largest change before a cut {:.1e}",
        found.count,
        found.leaking.len(),
        found.largest
    );
    assert!(found.leaking.is_empty(), "{}", found.leaking.join("\n\n"));
    // Every one of them is measurable: finite at its initial parameters.
    assert!(
        found.unmeasurable.is_empty(),
        "{}",
        found.unmeasurable.join("\n\n")
    );
}

#[test]
fn a_thousand_mutated_and_crossed_programs_the_checker_accepts_are_causal_when_probed() {
    let shape = ProbeShape::default();
    let config = config(shape);
    let seeds: Vec<Program> = library::ENTRIES
        .iter()
        .map(|entry| parse(entry.source).0.expect("library programs parse"))
        .collect();
    let mut rng = SmallRng::seed_from_u64(7);
    let mut pool: Vec<Program> = seeds.clone();
    let mut accepted: Vec<(String, Valid)> = Vec::new();
    let mut seen = HashSet::new();
    let mut tries = 0;
    while accepted.len() < MUTATED {
        tries += 1;
        assert!(
            tries < 50 * MUTATED,
            "only {} programs in {tries} tries",
            accepted.len()
        );
        let parent = &pool[rng.random_range(0..pool.len())];
        // Mostly mutations of anything made so far (chains of edits), sometimes a crossover.
        let (operator, made) = if rng.random_bool(0.25) {
            let other = &pool[rng.random_range(0..pool.len())];
            (
                "crossover".to_string(),
                crossover(parent, other, &mut rng, &config),
            )
        } else {
            match mutate_random(parent, &mut rng, &config) {
                Ok((kind, valid)) => (kind.name().to_string(), Ok(valid)),
                Err(error) => ("mutation".to_string(), Err(error)),
            }
        };
        let Ok(valid) = made else { continue };
        if !seen.insert(valid.hash()) {
            continue;
        }
        pool.push(valid.program.clone());
        accepted.push((format!("#{} ({operator})", accepted.len()), valid));
    }
    let found = leaks(shape, accepted.iter().map(|(n, v)| (n.clone(), v)));
    eprintln!(
        "causality probe: {} distinct programs from mutation and crossover, {} leaking, {} not finite before any change, largest change before a cut {:.1e}",
        found.count,
        found.leaking.len(),
        found.unmeasurable.len(),
        found.largest
    );
    assert!(found.count - found.unmeasurable.len() >= MUTATED - MUTATED / 100);
    assert!(found.leaking.is_empty(), "{}", found.leaking.join("\n\n"));
}

#[test]
fn the_programs_the_fuzzer_made_that_the_checker_accepts_are_causal_when_probed() {
    // Distinct structures the coverage-guided fuzzer found in its archspec_check corpus,
    // collected by scripts/fuzzed-programs.sh at the fuzz target's width.
    let shape = ProbeShape {
        d_model: 64,
        ..ProbeShape::default()
    };
    let text = include_str!("data/fuzzed-programs.jsonl");
    let mut accepted = Vec::new();
    for (line, json) in text.lines().enumerate() {
        let source: String = serde_json::from_str(json).expect("one JSON string per line");
        // The checker may since have grown stricter; what it accepts now must be causal.
        if let Ok(valid) = check_source(&source, &config(shape)) {
            accepted.push((format!("fuzzed program on line {}", line + 1), valid));
        }
    }
    let found = leaks(shape, accepted.iter().map(|(n, v)| (n.clone(), v)));
    eprintln!(
        "causality probe: {} programs made by the fuzzer, {} leaking, {} not finite before any change, largest change before a cut {:.1e}",
        found.count,
        found.leaking.len(),
        found.unmeasurable.len(),
        found.largest
    );
    assert!(found.count - found.unmeasurable.len() >= 100);
    assert!(found.leaking.is_empty(), "{}", found.leaking.join("\n\n"));
}
