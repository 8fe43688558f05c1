//! Novelty: a proposal must differ in structure from everything in memory and must not repeat
//! a motivation already tried. Structure uses archspec's canonical hash and distance;
//! motivations use the built-in lexical embedding (TF-IDF cosine).

use crate::cognition::lexical::LexicalIndex;
use archspec::canon::Structure;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NoveltyConfig {
    /// Reject a program whose structural distance to one in memory is below this (0 = only
    /// identical structures are rejected).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1e6))]
    pub min_distance: f64,
    /// Reject a motivation whose similarity to one already tried is at least this.
    #[serde(default = "max_motivation_similarity")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_motivation_similarity: f64,
}

fn max_motivation_similarity() -> f64 {
    0.9
}

impl Default for NoveltyConfig {
    fn default() -> Self {
        NoveltyConfig {
            min_distance: 0.0,
            max_motivation_similarity: max_motivation_similarity(),
        }
    }
}

/// A program already in memory.
#[derive(Clone)]
pub struct Known<'a, Id> {
    pub id: Id,
    /// Its structure, as stored with its attempt.
    pub structure: &'a Structure,
    pub motivation: &'a str,
    /// This proposal's motivation similarity to `motivation`, when an external embedder (an
    /// embeddings endpoint) computed it; otherwise the built-in lexical embedding is used.
    pub motivation_similarity: Option<f64>,
}

/// Why a proposal is not novel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NotNovel<Id> {
    SameStructure { of: Id },
    TooClose { of: Id, distance: f64 },
    RepeatedMotivation { of: Id, similarity: f64 },
}

impl<Id: std::fmt::Display> NotNovel<Id> {
    /// A sentence for the agent that must propose again.
    pub fn describe(&self) -> String {
        match self {
            NotNovel::SameStructure { of } => format!(
                "the program is structurally identical to experiment {of}; change the architecture, not names or order"
            ),
            NotNovel::TooClose { of, distance } => format!(
                "the program is too close to experiment {of} (distance {distance:.3}); make a larger change"
            ),
            NotNovel::RepeatedMotivation { of, similarity } => {
                format!(
                    "the motivation repeats that of experiment {of} (similarity {similarity:.2}); pursue a different idea"
                )
            }
        }
    }
}

/// Checks a proposal against memory.
pub fn check<Id: Clone>(
    structure: &Structure,
    motivation: &str,
    known: &[Known<'_, Id>],
    config: &NoveltyConfig,
) -> Result<(), NotNovel<Id>> {
    if let Some(same) = known.iter().find(|k| k.structure.hash == structure.hash) {
        return Err(NotNovel::SameStructure {
            of: same.id.clone(),
        });
    }
    if config.min_distance > 0.0 {
        for other in known {
            let distance = structure.distance(other.structure);
            if distance < config.min_distance {
                return Err(NotNovel::TooClose {
                    of: other.id.clone(),
                    distance,
                });
            }
        }
    }
    if !motivation.trim().is_empty() && !known.is_empty() {
        let external: Option<Vec<f64>> = known.iter().map(|k| k.motivation_similarity).collect();
        let scores = external.unwrap_or_else(|| {
            let mut texts: Vec<String> = known.iter().map(|k| k.motivation.to_string()).collect();
            texts.push(motivation.to_string());
            LexicalIndex::from_texts(&texts).scores(motivation)
        });
        if let Some((position, similarity)) = scores[..known.len()]
            .iter()
            .copied()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            && similarity >= config.max_motivation_similarity
        {
            return Err(NotNovel::RepeatedMotivation {
                of: known[position].id.clone(),
                similarity,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use archspec::{CheckConfig, check_source, library};

    fn structure(name: &str) -> Structure {
        check_source(library::get(name).unwrap().source, &CheckConfig::default())
            .unwrap()
            .structure()
    }

    #[test]
    fn similarities_from_an_external_embedder_replace_the_lexical_ones() {
        let deltanet = structure("deltanet");
        let gla = structure("gla");
        let mut known = [Known {
            id: 3,
            structure: &deltanet,
            motivation: "completely different words",
            motivation_similarity: Some(0.97),
        }];
        let config = NoveltyConfig::default();
        // Lexically unrelated, but the embedder says they mean the same.
        assert!(matches!(
            check(&gla, "paraphrase of it", &known, &config),
            Err(NotNovel::RepeatedMotivation { of: 3, .. })
        ));
        known[0].motivation_similarity = Some(0.2);
        assert_eq!(check(&gla, "paraphrase of it", &known, &config), Ok(()));
    }

    #[test]
    fn identical_structure_and_repeated_motivations_are_rejected() {
        let deltanet = structure("deltanet");
        let gla = structure("gla");
        let known = [Known {
            id: 7,
            structure: &deltanet,
            motivation: "overwrite stale associations with an error-correcting write to fix recall",
            motivation_similarity: None,
        }];
        let config = NoveltyConfig::default();
        assert_eq!(
            check(&deltanet, "anything", &known, &config),
            Err(NotNovel::SameStructure { of: 7 })
        );
        let repeated = check(
            &gla,
            "Overwrite stale associations with an error-correcting write to fix recall.",
            &known,
            &config,
        );
        assert!(
            matches!(repeated, Err(NotNovel::RepeatedMotivation { of: 7, .. })),
            "{repeated:?}"
        );
        let fresh = check(
            &gla,
            "add a data-dependent per-key forget gate",
            &known,
            &config,
        );
        assert_eq!(fresh, Ok(()));
    }

    #[test]
    fn a_distance_threshold_rejects_near_copies() {
        let deltanet = structure("deltanet");
        let gated = structure("gated_deltanet");
        let known = [Known {
            id: 1,
            structure: &deltanet,
            motivation: "",
            motivation_similarity: None,
        }];
        let strict = NoveltyConfig {
            min_distance: 0.9,
            ..NoveltyConfig::default()
        };
        assert!(matches!(
            check(&gated, "", &known, &strict),
            Err(NotNovel::TooClose { of: 1, .. })
        ));
        assert_eq!(check(&gated, "", &known, &NoveltyConfig::default()), Ok(()));
    }

    #[test]
    fn a_program_exactly_at_the_minimum_distance_is_novel() {
        let deltanet = structure("deltanet");
        let gated = structure("gated_deltanet");
        let distance = gated.distance(&deltanet);
        assert!(distance > 0.0 && distance < 1.0, "{distance}");
        let known = [Known {
            id: 4,
            structure: &deltanet,
            motivation: "",
            motivation_similarity: None,
        }];
        let at = |min_distance| NoveltyConfig {
            min_distance,
            ..NoveltyConfig::default()
        };
        // "below this" rejects: the threshold itself is far enough.
        assert_eq!(check(&gated, "", &known, &at(distance)), Ok(()));
        assert_eq!(
            check(&gated, "", &known, &at(distance + 1e-9)),
            Err(NotNovel::TooClose { of: 4, distance })
        );
    }
}
