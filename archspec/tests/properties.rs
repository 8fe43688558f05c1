//! Property tests: printing round-trips, mutation chains stay valid, and no corruption of a
//! valid program makes the checker panic or hang.

use archspec::mutate::{MutationKind, crossover, mutate, mutate_random};
use archspec::{CheckConfig, Program, canon, check_source, library, parse, print};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn library_programs() -> Vec<Program> {
    library::ENTRIES
        .iter()
        .map(|entry| parse(entry.source).0.expect("library programs parse"))
        .collect()
}

fn assert_round_trips(program: &Program) {
    let text = print(program);
    let (reparsed, diagnostics) = parse(&text);
    assert!(
        diagnostics.is_empty(),
        "printed program does not parse:\n{text}\n{diagnostics:?}"
    );
    assert_eq!(
        reparsed.expect("parsed").without_spans(),
        program.without_spans(),
        "print/parse changed the program:\n{text}"
    );
}

#[test]
fn print_then_parse_gives_back_every_library_program() {
    for program in library_programs() {
        assert_round_trips(&program);
    }
}

#[test]
fn random_mutation_chains_stay_valid_and_round_trip() {
    let config = CheckConfig::default();
    let mut successes = 0;
    for (seed, start) in library_programs().into_iter().enumerate() {
        for chain in 0..6u64 {
            let mut rng = SmallRng::seed_from_u64(seed as u64 * 100 + chain);
            let mut program = start.clone();
            for _ in 0..12 {
                let Ok((kind, valid)) = mutate_random(&program, &mut rng, &config) else {
                    continue;
                };
                successes += 1;
                assert_round_trips(&valid.program);
                // The mutant checks on its own, from its printed text.
                let text = print(&valid.program);
                let rechecked = check_source(&text, &config)
                    .unwrap_or_else(|d| panic!("{kind:?} gave an invalid program:\n{text}\n{d:?}"));
                assert_eq!(rechecked.hash(), valid.hash());
                program = valid.program;
            }
        }
    }
    assert!(successes > 400, "only {successes} mutations succeeded");
}

#[test]
fn every_mutation_kind_applies_to_some_library_program() {
    let config = CheckConfig::default();
    let programs = library_programs();
    for kind in MutationKind::ALL {
        let applied = programs.iter().enumerate().any(|(seed, program)| {
            let mut rng = SmallRng::seed_from_u64(seed as u64);
            (0..4).any(|_| {
                mutate(program, kind, &mut rng, &config).is_ok_and(|valid| {
                    canon::structural_hash(&valid.checked.graph) != hash_of(program, &config)
                })
            })
        });
        assert!(applied, "{kind:?} never produced a different valid program");
    }
}

fn hash_of(program: &Program, config: &CheckConfig) -> String {
    check_source(&print(program), config).expect("valid").hash()
}

#[test]
fn crossover_combines_parents_into_valid_children() {
    let config = CheckConfig::default();
    let programs = library_programs();
    let mut rng = SmallRng::seed_from_u64(7);
    let mut children = 0;
    for a in &programs {
        for b in &programs {
            if let Ok(child) = crossover(a, b, &mut rng, &config) {
                assert_round_trips(&child.program);
                children += 1;
            }
        }
    }
    assert!(
        children >= programs.len() * programs.len() / 2,
        "only {children} crossovers succeeded"
    );
}

#[test]
fn mutations_respect_the_complexity_limit() {
    let config = CheckConfig {
        max_complexity: Some(archspec::Complexity::Linear),
        ..CheckConfig::default()
    };
    let mut rng = SmallRng::seed_from_u64(3);
    let deltanet = parse(library::get("deltanet").unwrap().source).0.unwrap();
    let mut applied = 0;
    for _ in 0..200 {
        if let Ok(valid) = mutate(&deltanet, MutationKind::ReplaceTimeMixer, &mut rng, &config) {
            assert_eq!(valid.analysis.complexity, archspec::Complexity::Linear);
            applied += 1;
        }
    }
    // Counted, so a mutation that always fails cannot pass this test.
    assert!(applied >= 50, "only {applied} of 200 replacements applied");
}

const CORRUPTIONS: usize = 10_000;

/// Corrupts source text at the byte or token level.
fn corrupt(source: &str, rng: &mut SmallRng) -> String {
    let mut bytes = source.as_bytes().to_vec();
    let edits = rng.random_range(1..=4);
    for _ in 0..edits {
        if bytes.is_empty() {
            break;
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..7) {
            0 => bytes[at] = rng.random(),
            1 => {
                bytes.remove(at);
            }
            2 => bytes.insert(
                at,
                *b"(){}|>=,-+*/#\n0.e_"
                    .get(rng.random_range(0..19))
                    .unwrap_or(&b'x'),
            ),
            3 => {
                // Duplicate a slice (repeats statements, arguments, nesting).
                let end = (at + rng.random_range(1..40)).min(bytes.len());
                let slice = bytes[at..end].to_vec();
                let to = rng.random_range(0..bytes.len());
                bytes.splice(to..to, slice);
            }
            4 => bytes.truncate(at),
            5 => {
                // Swap a token for another meaningful one.
                let words: [&[u8]; 10] = [
                    b"-1",
                    b"0",
                    b"99999999",
                    b"x",
                    b"merge_heads",
                    b"split_heads(3)",
                    b"token_shift(x, -2)",
                    b"softmax_attention",
                    b"((((",
                    b"1e308",
                ];
                let word = words[rng.random_range(0..words.len())];
                let end = (at + rng.random_range(0..8)).min(bytes.len());
                bytes.splice(at..end, word.iter().copied());
            }
            _ => {
                let end = (at + rng.random_range(1..20)).min(bytes.len());
                bytes.drain(at..end);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn ten_thousand_corruptions_give_diagnostics_never_panics() {
    let config = CheckConfig::default();
    let mut rng = SmallRng::seed_from_u64(2024);
    let mut rejected = 0;
    for index in 0..CORRUPTIONS {
        let entry = &library::ENTRIES[index % library::ENTRIES.len()];
        let source = corrupt(entry.source, &mut rng);
        match check_source(&source, &config) {
            Ok(valid) => assert!(valid.analysis.params > 0),
            Err(diagnostics) => {
                assert!(
                    !diagnostics.is_empty(),
                    "rejected without a reason:\n{source}"
                );
                for diagnostic in &diagnostics {
                    let located = diagnostic.locate(&source);
                    assert!(located.line >= 1 && located.column >= 1);
                    assert!(!located.message.is_empty());
                }
                rejected += 1;
            }
        }
    }
    assert!(
        rejected > CORRUPTIONS / 2,
        "only {rejected} corruptions were rejected"
    );
}

#[test]
fn hostile_inputs_are_rejected_quickly() {
    let config = CheckConfig::default();
    let deep = format!(
        "mixer m(d_model) {{\n  return {}x{}\n}}",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    let long_chain = format!("mixer m(d_model) {{\n  return x{}\n}}", " + x".repeat(5000));
    let long_pipe = format!(
        "mixer m(d_model) {{\n  return x{}\n}}",
        " |> silu".repeat(5000)
    );
    let many_statements: String = (0..300).map(|i| format!("  a{i} = x\n")).collect();
    let many = format!("mixer m(d_model) {{\n{many_statements}  return x\n}}");
    let huge = "#".repeat(100_000);
    let negatives = format!("mixer m(d_model) {{\n  return {}x\n}}", "-".repeat(5000));
    for source in [deep, long_chain, long_pipe, many, huge, negatives] {
        let diagnostics = check_source(&source, &config).expect_err("hostile program rejected");
        assert!(!diagnostics.is_empty());
    }
}
