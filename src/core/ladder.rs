//! The ladder of scales: exploration, any number of screening rungs (`stages.rungs`), then
//! verification. Each level above exploration retrains, under its own training config and
//! seeds, the baseline and the best programs of the level below — at exploration the best
//! `promote` proposals that beat the baseline, at a rung the best by mean fitness over the
//! rung's seeds, again only those above the baseline (successive halving: cheap runs decide
//! which programs earn expensive ones). A rung's ranking is decided once all of its runs have
//! ended. How well each level predicted the next is Spearman's rank correlation of the fitness
//! of the programs that ran at both.

use super::fitness::{self, Scores};
use super::lifecycle::{Experiment, ExperimentId, Level, Origin, Phase, Stage};
use super::stats::{self, MeanInterval};
use super::verification::{self, Rules, Subject};
use serde::Serialize;
use std::collections::BTreeMap;

/// One screening rung, as the claim rules need it.
#[derive(Debug, Clone, PartialEq)]
pub struct RungRule {
    /// Programs of the level below retrained here.
    pub promote: usize,
    pub seeds: u32,
    /// The rung's width and length (for the mixers' costs).
    pub check: archspec::CheckConfig,
}

/// The levels above exploration, bottom up: the screening rungs, then verification.
pub fn levels_above(rules: &Rules) -> Vec<Level> {
    (1..=rules.ladder.len() as u32)
        .map(Level::screening)
        .chain([Level::VERIFICATION])
        .collect()
}

/// How many programs enter each level above exploration.
fn entering(rules: &Rules) -> Vec<usize> {
    rules
        .ladder
        .iter()
        .map(|rung| rung.promote)
        .chain([rules.promote])
        .collect()
}

/// The programs entering each level above exploration, as far as the ladder has been decided:
/// the first list enters the first rung (verification when there are none); a level's list is
/// known once every run of the level below, the baseline's included, has ended.
pub fn entrants(rules: &Rules, experiments: &[Experiment]) -> Vec<Vec<ExperimentId>> {
    let counts = entering(rules);
    let mut decided = vec![super::campaign::promoted_of(experiments, counts[0])];
    for (index, count) in counts.iter().enumerate().skip(1) {
        let level = Level::screening(index as u32);
        let Some(ranked) = ranked(rules, experiments, level, &decided[index - 1]) else {
            break;
        };
        decided.push(ranked.into_iter().take(*count).collect());
    }
    decided
}

/// The explorations promoted to verification: empty until the last rung has ended.
pub fn promoted(rules: &Rules, experiments: &[Experiment]) -> Vec<ExperimentId> {
    let mut decided = entrants(rules, experiments);
    if decided.len() == rules.ladder.len() + 1 {
        decided.pop().unwrap_or_default()
    } else {
        Vec::new()
    }
}

/// The baseline's mean scores at `level`, and whether all of its runs there have ended.
fn reference(rules: &Rules, experiments: &[Experiment], level: Level) -> (Option<Scores>, bool) {
    let baseline = Subject::Seed {
        name: rules.baseline.clone(),
    };
    let measured = verification::measure_at(baseline, experiments, level, None, rules);
    (
        verification::mean_scores(&measured, rules),
        measured.complete(),
    )
}

/// `candidates` at `level` above the baseline, best mean fitness first; `None` until every
/// run there (the baseline's too) has ended.
fn ranked(
    rules: &Rules,
    experiments: &[Experiment],
    level: Level,
    candidates: &[ExperimentId],
) -> Option<Vec<ExperimentId>> {
    let (baseline, complete) = reference(rules, experiments, level);
    if !complete {
        return None;
    }
    let mut scored = Vec::new();
    for id in candidates {
        let subject = Subject::Explored { id: *id };
        let measured =
            verification::measure_at(subject, experiments, level, baseline.as_ref(), rules);
        if !measured.complete() {
            return None;
        }
        if let Some(mean) = measured.fitness().map(|f| f.mean) {
            scored.push((*id, mean));
        }
    }
    scored.retain(|(_, mean)| *mean > fitness::BASELINE);
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    Some(scored.into_iter().map(|(id, _)| id).collect())
}

/// Every program with a run at `level`, its own way of being named.
fn subjects_at(experiments: &[Experiment], level: Level) -> Vec<Subject> {
    let mut subjects: Vec<Subject> = experiments
        .iter()
        .filter(|e| e.level() == level)
        .filter_map(|e| match e.origin {
            Origin::Seed => Some(Subject::Seed {
                name: e.name.clone(),
            }),
            Origin::Verification => e.parent.map(|id| Subject::Explored { id }),
            Origin::Proposal => None,
        })
        .collect();
    subjects.sort();
    subjects.dedup();
    subjects
}

/// What one rung measured of a program.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RungProgram {
    pub subject: Subject,
    pub name: String,
    /// Runs finished, of those tried.
    pub runs: usize,
    pub tried: usize,
    /// Fitness of each run against the baseline's mean at this rung.
    pub fitness: Option<MeanInterval>,
    pub val_loss: Option<MeanInterval>,
    /// Retrained at the next level up.
    pub promoted: bool,
}

/// One screening rung's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RungSummary {
    /// 1 for the first rung above exploration.
    pub rung: u32,
    pub seeds: u32,
    /// Every run at this rung has ended.
    pub complete: bool,
    /// Best first, then those without a fitness.
    pub programs: Vec<RungProgram>,
}

/// How well one level's fitness ordered the programs that the next level retrained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RungPrediction {
    pub from: String,
    pub to: String,
    /// Programs with a fitness at both levels (the baseline among them).
    pub programs: usize,
    /// `None` below three programs, or when one level gave them all the same fitness.
    pub spearman: Option<stats::RankCorrelation>,
}

/// The ladder's rungs and how well each level predicted the next.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct LadderSummary {
    pub rungs: Vec<RungSummary>,
    pub predictions: Vec<RungPrediction>,
}

/// Each program's mean fitness at `level`: its stored fitness at exploration (what the search
/// ranked by), else the mean of its runs against the baseline's mean there.
fn fitness_at(
    rules: &Rules,
    experiments: &[Experiment],
    level: Level,
) -> BTreeMap<Subject, (f64, RungProgram)> {
    if level == Level::EXPLORATION {
        return experiments
            .iter()
            .filter(|e| e.stage == Stage::Exploration && e.phase == Phase::Succeeded)
            .filter_map(|e| {
                let value = e.fitness.filter(|f| f.is_finite())?;
                let subject = Subject::of(e);
                let program = RungProgram {
                    subject: subject.clone(),
                    name: e.name.clone(),
                    runs: 1,
                    tried: 1,
                    fitness: None,
                    val_loss: None,
                    promoted: false,
                };
                Some((subject, (value, program)))
            })
            .collect();
    }
    let (baseline, _) = reference(rules, experiments, level);
    subjects_at(experiments, level)
        .into_iter()
        .map(|subject| {
            let measured = verification::measure_at(
                subject.clone(),
                experiments,
                level,
                baseline.as_ref(),
                rules,
            );
            let fitness = measured.fitness();
            // A program still training has no fitness at this level yet.
            let value = fitness
                .filter(|_| measured.complete())
                .map_or(f64::NAN, |f| f.mean);
            let program = RungProgram {
                name: subject.name(experiments),
                subject: subject.clone(),
                runs: measured.val_loss().map_or(0, |v| v.runs),
                tried: measured.runs.len(),
                fitness,
                val_loss: measured.val_loss(),
                promoted: false,
            };
            (subject, (value, program))
        })
        .collect()
}

/// The rungs' results and the rank correlations between consecutive levels.
pub fn summarise(rules: &Rules, experiments: &[Experiment]) -> LadderSummary {
    let decided = entrants(rules, experiments);
    let levels: Vec<Level> = std::iter::once(Level::EXPLORATION)
        .chain(levels_above(rules))
        .collect();
    let by_level: Vec<BTreeMap<Subject, (f64, RungProgram)>> = levels
        .iter()
        .map(|level| fitness_at(rules, experiments, *level))
        .collect();
    let mut rungs = Vec::new();
    for (index, rung) in rules.ladder.iter().enumerate() {
        let level = Level::screening(index as u32 + 1);
        let at = &by_level[index + 1];
        if at.is_empty() {
            continue;
        }
        // Who went up: the entrants of the next rung, or verification's whole field (the
        // baseline is at every level and so is never "promoted").
        let next_up: Vec<Subject> = match decided.get(index + 1) {
            Some(ids) => ids.iter().map(|id| Subject::Explored { id: *id }).collect(),
            None => Vec::new(),
        };
        let mut programs: Vec<RungProgram> = at
            .values()
            .map(|(_, program)| RungProgram {
                promoted: next_up.contains(&program.subject),
                ..program.clone()
            })
            .collect();
        programs.sort_by(|a, b| {
            let key = |p: &RungProgram| p.fitness.map_or(f64::NEG_INFINITY, |f| f.mean);
            key(b).total_cmp(&key(a)).then(a.subject.cmp(&b.subject))
        });
        rungs.push(RungSummary {
            rung: level.rung,
            seeds: rung.seeds,
            complete: experiments
                .iter()
                .filter(|e| e.level() == level)
                .all(|e| e.phase.is_terminal()),
            programs,
        });
    }
    let predictions = levels
        .windows(2)
        .zip(by_level.windows(2))
        .filter(|(_, maps)| !maps[1].is_empty())
        .map(|(pair, maps)| {
            let pairs: Vec<(f64, f64)> = maps[1]
                .iter()
                .filter_map(|(subject, (upper, _))| {
                    let (lower, _) = maps[0].get(subject)?;
                    Some((*lower, *upper)).filter(|(a, b)| a.is_finite() && b.is_finite())
                })
                .collect();
            RungPrediction {
                from: pair[0].describe(),
                to: pair[1].describe(),
                programs: pairs.len(),
                spearman: stats::spearman(&pairs),
            }
        })
        .collect();
    LadderSummary { rungs, predictions }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::lifecycle::{Attempt, TrainSummary};

    const BASE: u64 = 1;

    fn rules() -> Rules {
        let mut rules = Rules::with_baseline("base");
        rules.promote = 1;
        rules.ladder = vec![RungRule {
            promote: 3,
            seeds: 1,
            check: archspec::CheckConfig::default(),
        }];
        rules
    }

    fn finished(mut e: Experiment, val_loss: f64) -> Experiment {
        e.phase = Phase::Succeeded;
        let summary = TrainSummary {
            val_loss,
            accuracy: BTreeMap::new(),
            wall_s: 1.0,
            params: 10,
            benchmarks: BTreeMap::new(),
        };
        e.attempts
            .push(Attempt::finished(1, String::new(), summary));
        e
    }

    fn explored(id: u64, origin: Origin, name: &str, fitness: f64) -> Experiment {
        let mut e = Experiment::new(id, Stage::Exploration, Some(BASE), vec![]);
        if origin == Origin::Seed {
            e.parent = None;
        }
        e.origin = origin;
        e.name = name.into();
        e.fitness = Some(fitness);
        finished(e, 2.0 / fitness.exp())
    }

    /// A run of `source` (an exploration id, or the baseline for `None`) at `level`.
    fn retrained(
        id: u64,
        level: Level,
        source: Option<u64>,
        replica: u32,
        val_loss: f64,
    ) -> Experiment {
        let mut e = Experiment::new(id, level.stage, source, vec![]);
        e.rung = level.rung;
        e.replica = replica;
        match source {
            Some(_) => e.origin = Origin::Verification,
            None => {
                e.origin = Origin::Seed;
                e.name = "base".into();
            }
        }
        // The engine stores each run's fitness against its own stage's baseline (2.0 here);
        // a rung must not mistake it for the exploration fitness the search ranked by.
        e.fitness = Some((2.0 / val_loss).ln());
        finished(e, val_loss)
    }

    /// The baseline, and proposals 3–6 of exploration fitness 1.0, 0.8, 0.5 and −0.2.
    fn explorations() -> Vec<Experiment> {
        vec![
            explored(BASE, Origin::Seed, "base", 0.0),
            explored(3, Origin::Proposal, "p3", 1.0),
            explored(4, Origin::Proposal, "p4", 0.8),
            explored(5, Origin::Proposal, "p5", 0.5),
            explored(6, Origin::Proposal, "p6", -0.2),
        ]
    }

    #[test]
    fn each_rung_sends_up_its_best_above_the_baseline_once_it_has_ended() {
        let rules = rules();
        let mut experiments = explorations();
        // Exploration's best three above the baseline enter the rung; p6 is below it.
        assert_eq!(entrants(&rules, &experiments), vec![vec![3, 4, 5]]);
        assert!(promoted(&rules, &experiments).is_empty());
        let rung = Level::screening(1);
        experiments.extend([
            retrained(10, rung, None, 0, 2.0),
            retrained(11, rung, Some(3), 0, 1.9),
            retrained(12, rung, Some(4), 0, 1.0),
        ]);
        let mut running = retrained(13, rung, Some(5), 0, 2.5);
        running.phase = Phase::Training;
        running.attempts[0].outcome = None;
        experiments.push(running);
        // A rung still running decides nothing.
        assert_eq!(entrants(&rules, &experiments).len(), 1);
        assert!(promoted(&rules, &experiments).is_empty());
        experiments.pop();
        experiments.push(retrained(13, rung, Some(5), 0, 2.0));
        // The rung reorders them: p4 halves the baseline's loss, p3 barely beats it, p5 only
        // matches the baseline and cannot go up whatever the count.
        assert_eq!(entrants(&rules, &experiments), vec![vec![3, 4, 5], vec![4]]);
        assert_eq!(promoted(&rules, &experiments), vec![4]);
        let mut wider = rules.clone();
        wider.promote = 3;
        assert_eq!(promoted(&wider, &experiments), vec![4, 3]);
        // Verification's subjects follow the rung, not exploration: p4 and its parent (the
        // baseline), never p3, which exploration ranked first.
        let subjects = verification::subjects(&rules, &experiments);
        assert!(subjects.contains(&Subject::Explored { id: 4 }));
        assert!(!subjects.contains(&Subject::Explored { id: 3 }));
    }

    #[test]
    fn the_summary_ranks_each_rung_and_measures_how_each_level_predicted_the_next() {
        let rules = rules();
        let rung = Level::screening(1);
        let mut experiments = explorations();
        experiments.extend([
            retrained(10, rung, None, 0, 2.0),
            retrained(11, rung, Some(3), 0, 1.9),
            retrained(12, rung, Some(4), 0, 1.0),
            retrained(13, rung, Some(5), 0, 2.5),
        ]);
        let summary = summarise(&rules, &experiments);
        assert_eq!(summary.rungs.len(), 1);
        let names: Vec<&str> = summary.rungs[0]
            .programs
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["p4", "p3", "base", "p5"]);
        let promoted: Vec<bool> = summary.rungs[0]
            .programs
            .iter()
            .map(|p| p.promoted)
            .collect();
        assert_eq!(promoted, [true, false, false, false]);
        assert_eq!(summary.rungs[0].rung, 1);
        assert!(summary.rungs[0].complete);
        // While p5's run trains the rung is incomplete and p5 has no rung fitness to correlate.
        let mut training = experiments.clone();
        let p5 = training
            .iter_mut()
            .find(|e| e.id == 13)
            .expect("p5's rung run");
        p5.phase = Phase::Training;
        p5.attempts[0].outcome = None;
        let partial = summarise(&rules, &training);
        assert!(!partial.rungs[0].complete);
        assert_eq!(partial.predictions[0].programs, 3);
        // Exploration ranks base < p5 < p4 < p3, the rung p5 < base < p3 < p4: Σd² = 4 over
        // four programs, ρ = 1 − 6·4/(4·15) = 0.6.
        let first = &summary.predictions[0];
        assert_eq!(
            (first.from.as_str(), first.to.as_str()),
            ("exploration", "rung 1")
        );
        assert_eq!(first.programs, 4);
        let rho = first.spearman.map(|s| s.rho).unwrap_or(f64::NAN);
        assert!((rho - 0.6).abs() < 1e-12, "{first:?}");
        // No verification yet: nothing to say about rung 1 → verification.
        assert_eq!(summary.predictions.len(), 1);
        // Verification of the baseline and p4 under three seeds: two programs at both levels
        // are too few for a rank correlation, and the report says so.
        for replica in 0..3 {
            experiments.push(retrained(
                20 + u64::from(replica),
                Level::VERIFICATION,
                None,
                replica,
                2.0,
            ));
            experiments.push(retrained(
                30 + u64::from(replica),
                Level::VERIFICATION,
                Some(4),
                replica,
                1.1,
            ));
        }
        let summary = summarise(&rules, &experiments);
        let last = &summary.predictions[1];
        assert_eq!(
            (last.from.as_str(), last.to.as_str()),
            ("rung 1", "verification")
        );
        assert_eq!((last.programs, last.spearman), (2, None));
    }

    #[test]
    fn without_rungs_exploration_predicts_verification_directly() {
        let mut rules = rules();
        rules.ladder.clear();
        rules.promote = 2;
        let mut experiments = explorations();
        assert_eq!(promoted(&rules, &experiments), vec![3, 4]);
        for replica in 0..3 {
            let id = 20 + 10 * u64::from(replica);
            experiments.push(retrained(id, Level::VERIFICATION, None, replica, 2.0));
            experiments.push(retrained(
                id + 1,
                Level::VERIFICATION,
                Some(3),
                replica,
                1.5,
            ));
            experiments.push(retrained(
                id + 2,
                Level::VERIFICATION,
                Some(4),
                replica,
                1.2,
            ));
        }
        let summary = summarise(&rules, &experiments);
        assert!(summary.rungs.is_empty());
        assert_eq!(summary.predictions.len(), 1);
        let only = &summary.predictions[0];
        assert_eq!(
            (only.from.as_str(), only.to.as_str()),
            ("exploration", "verification")
        );
        // base < p4 < p3 at exploration, base < p3 < p4 at verification: ρ = 0.5.
        assert_eq!(only.programs, 3);
        assert!((only.spearman.map_or(f64::NAN, |s| s.rho) - 0.5).abs() < 1e-12);
    }
}
