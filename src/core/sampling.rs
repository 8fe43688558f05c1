//! Two-tier sampling of what the next proposal builds on: one parent from the top ranks by
//! fitness (exploitation), references from the ranks below (diversity). Before any experiment
//! has a fitness, the campaign's seeds are the population.

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SamplingConfig {
    /// The parent is drawn from ranks 1..=parent_top_k.
    #[serde(default = "parent_top_k")]
    #[schemars(range(max = 1_000_000))]
    pub parent_top_k: usize,
    /// References are drawn from ranks reference_from..=reference_to.
    #[serde(default = "reference_from")]
    #[schemars(range(max = 1_000_000))]
    pub reference_from: usize,
    #[serde(default = "reference_to")]
    #[schemars(range(max = 1_000_000))]
    pub reference_to: usize,
    /// How many references each proposal sees.
    #[serde(default = "references")]
    #[schemars(range(max = MAX_REFERENCES))]
    pub references: usize,
}

/// Most references a proposal may see (each is described in the agents' prompt).
pub const MAX_REFERENCES: usize = 16;

fn parent_top_k() -> usize {
    10
}
fn reference_from() -> usize {
    11
}
fn reference_to() -> usize {
    50
}
fn references() -> usize {
    2
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            parent_top_k: parent_top_k(),
            reference_from: reference_from(),
            reference_to: reference_to(),
            references: references(),
        }
    }
}

/// A finished experiment that can be built on.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked<Id> {
    pub id: Id,
    pub fitness: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample<Id> {
    pub parent: Id,
    pub references: Vec<Id>,
}

/// Draws a parent and references. `population` holds experiments with a fitness; `seeds` is
/// used while the population is empty. `None` when both are empty.
pub fn sample<Id: Clone + PartialEq>(
    population: &[Ranked<Id>],
    seeds: &[Id],
    config: &SamplingConfig,
    rng: &mut impl Rng,
) -> Option<Sample<Id>> {
    if population.is_empty() {
        let parent = seeds.choose(rng)?.clone();
        let mut others: Vec<Id> = seeds.iter().filter(|s| **s != parent).cloned().collect();
        others.shuffle(rng);
        others.truncate(config.references);
        return Some(Sample {
            parent,
            references: others,
        });
    }
    let mut ranked: Vec<&Ranked<Id>> = population
        .iter()
        .filter(|r| r.fitness.is_finite())
        .collect();
    // Best first; the sort is stable, so ties keep their (creation) order and runs reproduce.
    ranked.sort_by(|a, b| b.fitness.total_cmp(&a.fitness));
    if ranked.is_empty() {
        return seeds.choose(rng).map(|parent| Sample {
            parent: parent.clone(),
            references: Vec::new(),
        });
    }
    let top = config.parent_top_k.clamp(1, ranked.len());
    let parent = ranked[rng.random_range(0..top)].id.clone();
    let lower_start = (config.reference_from.max(1) - 1).min(ranked.len());
    let lower_end = config.reference_to.min(ranked.len());
    let mut pool: Vec<Id> = ranked[lower_start..lower_end.max(lower_start)]
        .iter()
        .map(|r| r.id.clone())
        .collect();
    if pool.is_empty() {
        // A young population: the rest of the top ranks stand in for the lower tier.
        pool = ranked
            .iter()
            .map(|r| r.id.clone())
            .filter(|id| *id != parent)
            .collect();
    }
    pool.shuffle(rng);
    pool.truncate(config.references);
    Some(Sample {
        parent,
        references: pool,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn population(n: usize) -> Vec<Ranked<usize>> {
        (0..n)
            .map(|id| Ranked {
                id,
                fitness: id as f64,
            })
            .collect()
    }

    #[test]
    fn parents_come_from_the_top_ten_and_references_from_ranks_eleven_to_fifty() {
        let population = population(100); // fitness = id, so rank r has id 100 - r
        let mut rng = SmallRng::seed_from_u64(1);
        for _ in 0..500 {
            let sample = sample(&population, &[], &SamplingConfig::default(), &mut rng).unwrap();
            assert!(sample.parent >= 90, "parent {}", sample.parent);
            assert_eq!(sample.references.len(), 2);
            for reference in sample.references {
                assert!((50..=89).contains(&reference), "reference {reference}");
            }
        }
    }

    #[test]
    fn seeds_are_the_population_before_any_fitness_exists() {
        let mut rng = SmallRng::seed_from_u64(2);
        let seeds = ["deltanet", "gla", "retnet"];
        let sample = sample::<&str>(&[], &seeds, &SamplingConfig::default(), &mut rng).unwrap();
        assert!(seeds.contains(&sample.parent));
        assert_eq!(sample.references.len(), 2);
        assert!(!sample.references.contains(&sample.parent));
        assert_eq!(
            super::sample::<&str>(&[], &[], &SamplingConfig::default(), &mut rng),
            None
        );
    }

    #[test]
    fn a_small_population_still_yields_references() {
        let mut rng = SmallRng::seed_from_u64(3);
        let sample = sample(&population(4), &[], &SamplingConfig::default(), &mut rng).unwrap();
        assert_eq!(sample.references.len(), 2);
        assert!(!sample.references.contains(&sample.parent));
    }

    #[test]
    fn the_same_rng_seed_gives_the_same_sample() {
        let population = population(60);
        let draw = |seed| {
            sample(
                &population,
                &[],
                &SamplingConfig::default(),
                &mut SmallRng::seed_from_u64(seed),
            )
        };
        assert_eq!(draw(9), draw(9));
    }

    #[test]
    fn references_come_from_exactly_the_configured_ranks() {
        // Fitness = id, so rank 1 is id 6, rank 2 id 5, rank 3 id 4.
        let population: Vec<Ranked<u64>> = (1..=6)
            .map(|id| Ranked {
                id,
                fitness: id as f64,
            })
            .collect();
        let config = SamplingConfig {
            parent_top_k: 1,
            reference_from: 2,
            reference_to: 3,
            references: 2,
        };
        for seed in 0..8 {
            let drawn = sample(
                &population,
                &[],
                &config,
                &mut SmallRng::seed_from_u64(seed),
            )
            .unwrap_or_else(|| panic!("a population gives a sample"));
            assert_eq!(drawn.parent, 6);
            let mut references = drawn.references;
            references.sort_unstable();
            assert_eq!(references, vec![4, 5], "seed {seed}");
        }
    }
}
