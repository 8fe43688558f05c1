//! Every program the checker accepts is causal, measured: the dynamic probe
//! (`trainer::causality`) over the library, every cognition sketch, and over a thousand
//! programs made by the search's own mutation and crossover operators. A program accepted and
//! refused by the probe would be a hole in the static check.

use archspec::mutate::{crossover, mutate_random};
use archspec::{CheckConfig, Program, Valid, check_source, library, parse};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use trainer::causality::{ProbeShape, probe};

/// Programs made by the operators and accepted by the checker.
const MUTATED: usize = 3000;

fn config(shape: ProbeShape) -> CheckConfig {
    CheckConfig {
        d_model: shape.d_model,
        seq_len: shape.seq_len,
        ..CheckConfig::default()
    }
}

/// Probes each program; the names and reasons of those that leak.
fn leaks<'a>(
    shape: ProbeShape,
    programs: impl IntoIterator<Item = (String, &'a Valid)>,
) -> (usize, Vec<String>, f32) {
    let (mut probed, mut leaking, mut largest) = (0, Vec::new(), 0.0f32);
    for (index, (name, valid)) in programs.into_iter().enumerate() {
        probed += 1;
        // A panic of the interpreter on an accepted program is a finding too, named.
        let probed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            probe(&valid.checked.graph, shape, index as u64)
        }));
        match probed {
            Ok(Ok(change)) => largest = largest.max(change),
            Ok(Err(error)) => leaking.push(format!(
                "{name}: {error}\n{}",
                archspec::print(&valid.program)
            )),
            Err(_) => leaking.push(format!(
                "{name}: the interpreter panicked (above)\n{}",
                archspec::print(&valid.program)
            )),
        }
    }
    (probed, leaking, largest)
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
    let (probed, leaking, largest) = leaks(shape, programs.iter().map(|(n, v)| (n.clone(), v)));
    eprintln!(
        "causality probe: {probed} library programs and sketches, {} leaking, largest change before a cut {largest:.1e}",
        leaking.len()
    );
    assert!(leaking.is_empty(), "{}", leaking.join("\n\n"));
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
    let (probed, leaking, largest) = leaks(shape, accepted.iter().map(|(n, v)| (n.clone(), v)));
    eprintln!(
        "causality probe: {probed} distinct programs from mutation and crossover, {} leaking, largest change before a cut {largest:.1e}",
        leaking.len()
    );
    assert!(probed >= MUTATED);
    assert!(leaking.is_empty(), "{}", leaking.join("\n\n"));
}
