//! The rule-based Engineer: repairs a failed attempt from the kind of its error.
//!
//! | failure | repair |
//! |---|---|
//! | not novel | one more mutation of the (valid) program |
//! | fails the checks: peeks at future tokens | flip negative `token_shift` offsets, else as below |
//! | fails the checks (shape, complexity, size) | a different edit of the parent's program |
//! | NaN, divergence | add a normalisation, else a bounded feature map |
//! | too slow | a cheap edit of the parent (no new paths or mixers), else fewer heads |
//! | crash | the same program once (crashes can be transient), then a different edit |
//! | suspected leakage | give up: no edit makes such a number trustworthy |

use super::evolutionary::{Operator, apply, valid};
use super::{Repair, RepairRequest};
use crate::core::lifecycle::{Attempt, Outcome};
use crate::core::qa::QaVerdict;
use archspec::mutate::MutationKind;
use archspec::{Program, Valid};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::collections::HashSet;

const MUTATIONS: [MutationKind; 9] = MutationKind::ALL;
/// Edits that add little or no compute.
const CHEAP: [MutationKind; 6] = [
    MutationKind::SwapActivation,
    MutationKind::SwapFeatureMap,
    MutationKind::ToggleShortConv,
    MutationKind::ChangeDecay,
    MutationKind::ToggleNorm,
    MutationKind::ChangeHeadLayout,
];

pub fn repair(request: &RepairRequest<'_>) -> Repair {
    let Some(last) = request.experiment.attempts.last() else {
        return abandon("there is no attempt to repair");
    };
    let mut rng = SmallRng::seed_from_u64(request.seed);
    let tried: HashSet<String> = request
        .experiment
        .attempts
        .iter()
        .filter_map(|a| valid(&a.program, request.check).map(|v| v.hash()))
        .collect();
    let is_new = |candidate: &Valid| {
        let hash = candidate.hash();
        !tried.contains(&hash) && !request.known_hashes.contains(&hash)
    };
    let current = valid(&last.program, request.check);
    let parent = request
        .parent
        .and_then(|p| p.program())
        .and_then(|source| valid(source, request.check));
    let mut edit = |base: &Option<Valid>, kinds: &[MutationKind], note: &str| -> Option<Repair> {
        let base = base.as_ref()?;
        for _ in 0..4 {
            for kind in kinds {
                if let Some(child) = apply(
                    Operator::Mutate(*kind),
                    &base.program,
                    &[],
                    &mut rng,
                    request.check,
                ) && is_new(&child)
                {
                    return Some(revised(&child.program, note));
                }
            }
        }
        None
    };
    let Some(outcome) = &last.outcome else {
        return abandon("the last attempt has no outcome");
    };
    let repaired = match outcome {
        Outcome::NotNovel { .. } => edit(&current, &MUTATIONS, "one more change, for novelty"),
        Outcome::Invalid { diagnostics } => {
            let flipped = diagnostics
                .contains("E04")
                .then(|| flip_negative_shifts(&last.program))
                .flatten()
                .and_then(|source| valid(&source, request.check))
                .filter(|v| is_new(v))
                .map(|v| revised(&v.program, "made every token_shift look back, not ahead"));
            flipped.or_else(|| {
                edit(
                    &parent,
                    &MUTATIONS,
                    "the edit broke the checks; a different edit of the parent",
                )
            })
        }
        Outcome::Diverged
        | Outcome::Stopped {
            verdict: QaVerdict::NotFinite { .. } | QaVerdict::Diverging { .. },
        } => edit(
            &current,
            &[MutationKind::ToggleNorm],
            "added a normalisation to stabilise training",
        )
        .or_else(|| {
            edit(
                &current,
                &[MutationKind::SwapFeatureMap],
                "a different feature map to keep the state bounded",
            )
        }),
        // The edit made the program slow: go back to the parent and make a cheap edit instead.
        Outcome::Stopped {
            verdict: QaVerdict::TooSlow { .. },
        } => edit(
            &parent,
            &CHEAP,
            "the edit was too slow; a cheap edit of the parent instead",
        )
        .or_else(|| {
            edit(
                &current,
                &[MutationKind::ChangeHeadLayout],
                "a different head layout to run faster",
            )
        }),
        // It learns too slowly: a different edit of the parent.
        Outcome::Stopped {
            verdict: QaVerdict::BehindPeers { .. },
        } => edit(
            &parent,
            &MUTATIONS,
            "the edit learned far more slowly than its peers; a different edit of the parent",
        ),
        Outcome::Stopped {
            verdict: QaVerdict::SuspectedLeakage { loss, best_known },
        } => {
            return abandon(&format!(
                "the loss {loss:.4} is implausibly far below the best known {best_known:.4} (suspected leakage); no edit makes that trustworthy"
            ));
        }
        // The core never hands these to the Engineer; nothing in the program to repair.
        Outcome::Infrastructure { reason } => {
            return abandon(&format!(
                "the infrastructure failed, not the program: {reason}"
            ));
        }
        Outcome::Crashed { .. } => {
            if crashes(&request.experiment.attempts) == 1 && current.is_some() {
                return Repair::Revised {
                    program: last.program.clone(),
                    note: "retrying the same program once: crashes can be transient".into(),
                };
            }
            edit(
                &parent,
                &MUTATIONS,
                "the program keeps crashing; a different edit of the parent",
            )
        }
        Outcome::AgentFailed { message } => return abandon(message),
        Outcome::Finished { .. } => return abandon("the last attempt finished; nothing to repair"),
    };
    repaired.unwrap_or_else(|| abandon("no rule produced a new valid program"))
}

fn crashes(attempts: &[Attempt]) -> usize {
    attempts
        .iter()
        .filter(|a| matches!(a.outcome, Some(Outcome::Crashed { .. })))
        .count()
}

fn revised(program: &Program, note: &str) -> Repair {
    Repair::Revised {
        program: archspec::print(program),
        note: note.to_string(),
    }
}

fn abandon(reason: &str) -> Repair {
    Repair::Abandoned {
        reason: format!("engineer: {reason}"),
    }
}

/// `token_shift(-k)` peeks k tokens ahead; `token_shift(k)` is the causal version.
fn flip_negative_shifts(source: &str) -> Option<String> {
    let fixed = source.replace("token_shift(-", "token_shift(");
    (fixed != source).then_some(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::lifecycle::{Experiment, Stage};

    fn failed_with(program: &str, outcome: Outcome) -> Experiment {
        let mut experiment = Experiment::new(2, Stage::Exploration, Some(1), vec![]);
        experiment.attempts.push(Attempt {
            number: 1,
            program: program.into(),
            outcome: Some(outcome),
            progress: vec![],
            structure: None,
        });
        experiment
    }

    fn request<'a>(
        experiment: &'a Experiment,
        parent: Option<&'a Experiment>,
        known: &'a HashSet<String>,
        check: &'a archspec::CheckConfig,
    ) -> RepairRequest<'a> {
        RepairRequest {
            seed: 7,
            experiment,
            parent,
            error: "",
            known_hashes: known,
            check,
        }
    }

    #[test]
    fn a_peeking_program_is_made_causal() {
        let check = archspec::CheckConfig::default();
        let peeking =
            "mixer peek(d_model) {\n  return x |> token_shift(-1) |> linear(d_model)\n}\n";
        let diagnostics = match archspec::check_source(peeking, &check) {
            Err(d) => archspec::diagnostic::render(peeking, &d),
            Ok(_) => panic!("the program should not check"),
        };
        let experiment = failed_with(peeking, Outcome::Invalid { diagnostics });
        let known = HashSet::new();
        match repair(&request(&experiment, None, &known, &check)) {
            Repair::Revised { program, .. } => {
                assert!(program.contains("token_shift(1)"), "{program}");
                assert!(archspec::check_source(&program, &check).is_ok());
            }
            other => panic!("expected a repair, got {other:?}"),
        }
    }

    #[test]
    fn divergence_adds_a_norm_and_leakage_is_not_repaired() {
        let check = archspec::CheckConfig::default();
        let source = archspec::library::get("linear_attention")
            .map(|e| e.source)
            .unwrap_or_default();
        let known = HashSet::new();
        let diverged = failed_with(source, Outcome::Diverged);
        match repair(&request(&diverged, None, &known, &check)) {
            Repair::Revised { program, note } => {
                assert_ne!(program, source);
                assert!(
                    note.contains("normalisation") || note.contains("feature map"),
                    "{note}"
                );
                assert!(archspec::check_source(&program, &check).is_ok());
            }
            other => panic!("expected a repair, got {other:?}"),
        }
        let leaked = failed_with(
            source,
            Outcome::Stopped {
                verdict: QaVerdict::SuspectedLeakage {
                    loss: 0.01,
                    best_known: 1.0,
                },
            },
        );
        assert!(matches!(
            repair(&request(&leaked, None, &known, &check)),
            Repair::Abandoned { .. }
        ));
    }
    fn library(name: &str) -> &'static str {
        archspec::library::get(name)
            .map(|e| e.source)
            .unwrap_or_default()
    }

    fn seed_experiment(program: &str) -> Experiment {
        let mut parent = Experiment::new(1, Stage::Exploration, None, vec![]);
        parent.attempts.push(Attempt {
            number: 1,
            program: program.into(),
            outcome: None,
            progress: vec![],
            structure: None,
        });
        parent
    }

    fn hash(program: &str, check: &archspec::CheckConfig) -> String {
        archspec::check_source(program, check)
            .map(|v| v.hash())
            .unwrap_or_else(|d| panic!("{program}: {d:?}"))
    }

    fn count(program: &str, needle: &str) -> usize {
        program.matches(needle).count()
    }

    #[test]
    fn a_program_that_is_not_novel_gets_one_more_change() {
        let check = archspec::CheckConfig::default();
        let source = library("deltanet");
        let experiment = failed_with(
            source,
            Outcome::NotNovel {
                reason: "same structure as experiment 1".into(),
                repairable: true,
            },
        );
        let known = HashSet::from([hash(source, &check)]);
        match repair(&request(&experiment, None, &known, &check)) {
            Repair::Revised { program, note } => {
                let new = hash(&program, &check);
                assert!(!known.contains(&new), "the repair is itself known");
                assert!(note.contains("novelty"), "{note}");
            }
            other => panic!("expected a repair, got {other:?}"),
        }
    }

    #[test]
    fn an_invalid_program_that_does_not_peek_is_replaced_by_another_edit_of_the_parent() {
        let check = archspec::CheckConfig::default();
        let broken = "mixer broken(d_model) {\n  return x |> linear(d_model + 1)\n}\n";
        let diagnostics = match archspec::check_source(broken, &check) {
            Err(d) => archspec::diagnostic::render(broken, &d),
            Ok(_) => panic!("the program should not check"),
        };
        assert!(!diagnostics.contains("E04"), "{diagnostics}");
        let experiment = failed_with(broken, Outcome::Invalid { diagnostics });
        let parent = seed_experiment(library("gla"));
        let known = HashSet::new();
        match repair(&request(&experiment, Some(&parent), &known, &check)) {
            Repair::Revised { program, note } => {
                assert!(note.contains("parent"), "{note}");
                let distance = archspec::canon::distance(
                    &archspec::check_source(&program, &check)
                        .expect("valid")
                        .checked
                        .graph,
                    &archspec::check_source(library("gla"), &check)
                        .expect("valid")
                        .checked
                        .graph,
                );
                assert!(
                    distance > 0.0 && distance < 0.5,
                    "an edit of gla: {distance}"
                );
            }
            other => panic!("expected a repair, got {other:?}"),
        }
        // Without a parent there is nothing sound to edit.
        assert!(matches!(
            repair(&request(&experiment, None, &known, &check)),
            Repair::Abandoned { .. }
        ));
    }

    #[test]
    fn a_slow_program_is_replaced_by_a_cheap_edit_of_its_parent() {
        let check = archspec::CheckConfig::default();
        let parent_source = library("linear_attention");
        let slow_source = library("routed_hybrid");
        let parent = seed_experiment(parent_source);
        let known = HashSet::new();
        let mixers =
            |p: &str| count(p, "attention(") + count(p, "delta_rule(") + count(p, "route(");
        for seed in 0..12 {
            let mut experiment = failed_with(
                slow_source,
                Outcome::Stopped {
                    verdict: QaVerdict::TooSlow {
                        projected_s: 40.0,
                        peer_median_s: 9.0,
                    },
                },
            );
            experiment.id = 2 + seed;
            let mut req = request(&experiment, Some(&parent), &known, &check);
            req.seed = seed;
            match repair(&req) {
                Repair::Revised { program, note } => {
                    assert!(note.contains("cheap"), "{note}");
                    assert_ne!(hash(&program, &check), hash(parent_source, &check));
                    assert_eq!(count(&program, "route("), 0, "seed {seed}: {program}");
                    assert!(
                        mixers(&program) <= mixers(parent_source),
                        "seed {seed}: a new mixer is not cheap: {program}"
                    );
                }
                other => panic!("seed {seed}: expected a repair, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_crash_is_retried_once_then_the_parent_is_edited() {
        let check = archspec::CheckConfig::default();
        let source = library("retnet");
        let parent = seed_experiment(library("linear_attention"));
        let known = HashSet::new();
        let crash = || Outcome::Crashed {
            message: "exit 137".into(),
            log_tail: String::new(),
        };
        let mut experiment = failed_with(source, crash());
        match repair(&request(&experiment, Some(&parent), &known, &check)) {
            Repair::Revised { program, note } => {
                assert_eq!(program, source);
                assert!(note.contains("once"), "{note}");
            }
            other => panic!("expected a retry, got {other:?}"),
        }
        experiment.attempts.push(Attempt {
            number: 2,
            program: source.into(),
            outcome: Some(crash()),
            progress: vec![],
            structure: None,
        });
        match repair(&request(&experiment, Some(&parent), &known, &check)) {
            Repair::Revised { program, note } => {
                assert!(note.contains("keeps crashing"), "{note}");
                assert_ne!(hash(&program, &check), hash(source, &check));
            }
            other => panic!("expected an edit, got {other:?}"),
        }
    }

    #[test]
    fn an_agent_failure_and_a_finished_attempt_are_not_repaired() {
        let check = archspec::CheckConfig::default();
        let known = HashSet::new();
        let failed = failed_with(
            "",
            Outcome::AgentFailed {
                message: "the Researcher's reply was not JSON".into(),
            },
        );
        match repair(&request(&failed, None, &known, &check)) {
            Repair::Abandoned { reason } => assert!(reason.contains("not JSON"), "{reason}"),
            other => panic!("{other:?}"),
        }
        let mut empty = failed_with("", Outcome::Diverged);
        empty.attempts.clear();
        assert!(matches!(
            repair(&request(&empty, None, &known, &check)),
            Repair::Abandoned { .. }
        ));
    }
    #[test]
    fn a_repair_never_repeats_a_structure_already_in_memory() {
        let check = archspec::CheckConfig::default();
        let source = library("deltanet");
        let experiment = failed_with(source, Outcome::Diverged);
        let empty = HashSet::new();
        let first = match repair(&request(&experiment, None, &empty, &check)) {
            Repair::Revised { program, .. } => program,
            other => panic!("{other:?}"),
        };
        // The same request, but that program is already known to the campaign.
        let known = HashSet::from([hash(&first, &check)]);
        match repair(&request(&experiment, None, &known, &check)) {
            Repair::Revised { program, .. } => {
                assert!(!known.contains(&hash(&program, &check)), "{program}")
            }
            Repair::Abandoned { .. } => {}
        }
    }
}
