//! The evolutionary Researcher: variation of the sampled parent, steered three ways.
//!
//! 1. **What worked before**: each operator (nine mutation kinds, crossover with a reference,
//!    crossover with a retrieved paper's archspec sketch) is weighted by the posterior mean of
//!    its success rate in this campaign, `(wins + 1) / (tries + 2)`, where a win is a child
//!    fitter than its parent.
//! 2. **The parent's analysis**: symptoms in the problem summary (poor recall, instability,
//!    slowness) boost the operators that address them.
//! 3. **The literature**: tags of the retrieved cognition entries boost matching operators,
//!    and an entry's archspec sketch can be grafted into the parent.
//!
//! Candidates whose structure is already in memory are redrawn, so the novelty check rarely
//! has to reject one.

use super::{AgentError, Proposal, ProposalRequest};
use archspec::mutate::{self, MutationKind};
use archspec::{CheckConfig, Graph, Program, Valid};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashSet};

/// A way to make a child program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Mutate(MutationKind),
    /// Graft a time mixer of a reference program.
    Crossover,
    /// Graft a time mixer of a retrieved cognition entry's sketch.
    Literature,
}

impl Operator {
    pub const ALL: [Operator; 11] = [
        Operator::Mutate(MutationKind::SwapActivation),
        Operator::Mutate(MutationKind::SwapFeatureMap),
        Operator::Mutate(MutationKind::ToggleShortConv),
        Operator::Mutate(MutationKind::ChangeDecay),
        Operator::Mutate(MutationKind::AddOutputGate),
        Operator::Mutate(MutationKind::ToggleNorm),
        Operator::Mutate(MutationKind::ReplaceTimeMixer),
        Operator::Mutate(MutationKind::AddRoutedPath),
        Operator::Mutate(MutationKind::ChangeHeadLayout),
        Operator::Crossover,
        Operator::Literature,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operator::Mutate(kind) => kind.name(),
            Operator::Crossover => "crossover",
            Operator::Literature => "literature",
        }
    }

    /// A short label for experiment names.
    fn label(self) -> &'static str {
        match self {
            Operator::Mutate(MutationKind::SwapActivation) => "act",
            Operator::Mutate(MutationKind::SwapFeatureMap) => "fmap",
            Operator::Mutate(MutationKind::ToggleShortConv) => "conv",
            Operator::Mutate(MutationKind::ChangeDecay) => "decay",
            Operator::Mutate(MutationKind::AddOutputGate) => "gate",
            Operator::Mutate(MutationKind::ToggleNorm) => "norm",
            Operator::Mutate(MutationKind::ReplaceTimeMixer) => "mixer",
            Operator::Mutate(MutationKind::AddRoutedPath) => "route",
            Operator::Mutate(MutationKind::ChangeHeadLayout) => "heads",
            Operator::Crossover => "cross",
            Operator::Literature => "paper",
        }
    }

    fn purpose(self) -> &'static str {
        match self {
            Operator::Mutate(MutationKind::SwapActivation) => "a different nonlinearity",
            Operator::Mutate(MutationKind::SwapFeatureMap) => {
                "a different query/key feature map, changing how sharply keys are separated"
            }
            Operator::Mutate(MutationKind::ToggleShortConv) => {
                "a short causal convolution, which gives each token its neighbours before the recurrence"
            }
            Operator::Mutate(MutationKind::ChangeDecay) => {
                "a different decay parameterisation, changing what the state forgets"
            }
            Operator::Mutate(MutationKind::AddOutputGate) => {
                "an input-dependent output gate, letting tokens suppress what they read"
            }
            Operator::Mutate(MutationKind::ToggleNorm) => {
                "a normalisation change around the time mixer, for stability"
            }
            Operator::Mutate(MutationKind::ReplaceTimeMixer) => {
                "a different state update rule for the time mixer"
            }
            Operator::Mutate(MutationKind::AddRoutedPath) => {
                "a routed second path, letting tokens choose between two mixers"
            }
            Operator::Mutate(MutationKind::ChangeHeadLayout) => {
                "a different number of heads, trading head width for head count"
            }
            Operator::Crossover => "a time mixer taken from a reference program",
            Operator::Literature => "a time mixer taken from the retrieved literature",
        }
    }

    fn from_name(name: &str) -> Option<Operator> {
        Operator::ALL.into_iter().find(|op| op.name() == name)
    }
}

/// Operator weights from the campaign's history: `(wins + 1) / (tries + 2)`, scaled so an
/// untried operator weighs 1.
pub fn history_weights(
    history: &[crate::core::lifecycle::Experiment],
) -> BTreeMap<&'static str, f64> {
    // Memory is in id order (the engine's mirror and the store's reads are), so a parent is
    // found by bisection instead of a map built over every experiment per proposal.
    let sorted = history.is_sorted_by_key(|e| e.id);
    let by_id: BTreeMap<u64, f64> = if sorted {
        BTreeMap::new()
    } else {
        history
            .iter()
            .filter_map(|e| e.fitness.map(|f| (e.id, f)))
            .collect()
    };
    let fitness_of = |id: u64| -> Option<f64> {
        if sorted {
            // Ids usually count from 1 without gaps: try that slot before bisecting.
            let guess = usize::try_from(id).ok()?.checked_sub(1);
            if let Some(e) = guess.and_then(|i| history.get(i)).filter(|e| e.id == id) {
                return e.fitness;
            }
            let index = history.binary_search_by_key(&id, |e| e.id).ok()?;
            history[index].fitness
        } else {
            by_id.get(&id).copied()
        }
    };
    let mut tallies: BTreeMap<&'static str, (f64, f64)> = BTreeMap::new();
    for experiment in history.iter().filter(|e| e.phase.is_terminal()) {
        let Some(op) = experiment.operator.as_deref().and_then(Operator::from_name) else {
            continue;
        };
        let parent_fitness = experiment.parent.and_then(fitness_of);
        let won = matches!((experiment.fitness, parent_fitness), (Some(child), Some(parent)) if child > parent);
        let tally = tallies.entry(op.name()).or_default();
        tally.1 += 1.0;
        if won {
            tally.0 += 1.0;
        }
    }
    Operator::ALL
        .iter()
        .map(|op| {
            let (wins, tries) = tallies.get(op.name()).copied().unwrap_or_default();
            (op.name(), 2.0 * (wins + 1.0) / (tries + 2.0))
        })
        .collect()
}

/// Boosts from words of the parent's problem summary and the retrieved entries' tags.
fn steering(text: &str, tags: &[String]) -> BTreeMap<&'static str, f64> {
    let mut boost: BTreeMap<&'static str, f64> = BTreeMap::new();
    let mut add = |names: &[&'static str], amount: f64| {
        for name in names {
            *boost.entry(name).or_insert(1.0) *= amount;
        }
    };
    let text = text.to_lowercase();
    if text.contains("recall") || text.contains("retriev") || text.contains("overwrite") {
        add(
            &[
                "replace_time_mixer",
                "toggle_short_conv",
                "literature",
                "crossover",
            ],
            1.8,
        );
    }
    if text.contains("unstable") || text.contains("diverg") || text.contains("spike") {
        add(&["toggle_norm", "swap_feature_map"], 2.0);
    }
    if text.contains("slow") || text.contains("throughput") {
        add(&["change_head_layout", "toggle_short_conv"], 1.5);
    }
    if text.contains("forget") || text.contains("decay") {
        add(&["change_decay", "add_output_gate"], 1.6);
    }
    for tag in tags {
        let tag: String = tag.chars().filter(|c| c.is_alphanumeric()).collect();
        let names: &[&'static str] = match tag.as_str() {
            t if t.contains("delta") || t.contains("recall") || t.contains("memory") => {
                &["replace_time_mixer", "literature"]
            }
            t if t.contains("gating") || t.contains("decay") || t.contains("forget") => {
                &["change_decay", "add_output_gate"]
            }
            t if t.contains("conv") || t.contains("tokenshift") || t.contains("local") => {
                &["toggle_short_conv"]
            }
            t if t.contains("featuremap")
                || t.contains("linearattention")
                || t.contains("kernel") =>
            {
                &["swap_feature_map"]
            }
            t if t.contains("normali") || t.contains("stability") => &["toggle_norm"],
            t if t.contains("hybrid") || t.contains("routing") || t.contains("mixture") => {
                &["add_routed_path", "crossover"]
            }
            _ => &[],
        };
        add(names, 1.25);
    }
    boost
}

/// Parses and checks a stored program.
pub(crate) fn valid(source: &str, check: &CheckConfig) -> Option<Valid> {
    archspec::check_source(source, check).ok()
}

/// Applies one operator to `parent`; `donors` feed crossover and literature grafts.
pub(crate) fn apply(
    op: Operator,
    parent: &Program,
    donors: &[Program],
    rng: &mut SmallRng,
    check: &CheckConfig,
) -> Option<Valid> {
    match op {
        Operator::Mutate(kind) => mutate::mutate(parent, kind, rng, check).ok(),
        Operator::Crossover | Operator::Literature => {
            if donors.is_empty() {
                return None;
            }
            let donor = &donors[rng.random_range(0..donors.len())];
            mutate::crossover(parent, donor, rng, check).ok()
        }
    }
}

/// Operation names added and removed between two graphs, e.g. `adds short_conv`.
pub(crate) fn describe_change(before: &Graph, after: &Graph) -> String {
    let count = |graph: &Graph| {
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for (_, node) in graph.live_nodes() {
            let signature = node.op.signature();
            let name = signature.split('(').next().unwrap_or("").to_string();
            *counts.entry(name).or_default() += 1;
        }
        counts
    };
    let (a, b) = (count(before), count(after));
    let names: HashSet<&String> = a.keys().chain(b.keys()).collect();
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let mut names: Vec<&String> = names.into_iter().collect();
    names.sort();
    for name in names {
        let delta = b.get(name).copied().unwrap_or(0) - a.get(name).copied().unwrap_or(0);
        if delta > 0 {
            added.push(name.as_str());
        } else if delta < 0 {
            removed.push(name.as_str());
        }
    }
    match (added.is_empty(), removed.is_empty()) {
        (true, true) => "changes only hyperparameters".into(),
        (false, true) => format!("adds {}", added.join(", ")),
        (true, false) => format!("removes {}", removed.join(", ")),
        (false, false) => format!("adds {}; removes {}", added.join(", "), removed.join(", ")),
    }
}

/// The root of a lineage name (`gla-conv-7` → `gla`).
pub(crate) fn root_name(name: &str) -> &str {
    name.split('-').next().unwrap_or(name)
}

/// Draws an index with probability proportional to `weights`.
fn draw(weights: &[f64], rng: &mut SmallRng) -> Option<usize> {
    let total: f64 = weights.iter().filter(|w| w.is_finite() && **w > 0.0).sum();
    if total <= 0.0 {
        return None;
    }
    let mut target = rng.random::<f64>() * total;
    for (index, weight) in weights.iter().enumerate() {
        if !(weight.is_finite() && *weight > 0.0) {
            continue;
        }
        if target < *weight {
            return Some(index);
        }
        target -= weight;
    }
    weights.iter().rposition(|w| *w > 0.0)
}

/// Tries operators (drawn by `weights`, each at most once per round) until one yields a
/// program not yet in memory.
pub(crate) fn search_child(
    parent: &Program,
    donors_for: &dyn Fn(Operator) -> Vec<Program>,
    weights: &[f64],
    known: &HashSet<String>,
    rng: &mut SmallRng,
    check: &CheckConfig,
) -> Option<(Operator, Valid)> {
    for _round in 0..4 {
        let mut remaining = weights.to_vec();
        while let Some(index) = draw(&remaining, rng) {
            remaining[index] = 0.0;
            let op = Operator::ALL[index];
            let donors = donors_for(op);
            // A few draws per operator: mutations pick their site and replacement at random.
            for _ in 0..3 {
                if let Some(child) = apply(op, parent, &donors, rng, check)
                    && !known.contains(&child.hash())
                {
                    return Some((op, child));
                }
            }
        }
    }
    None
}

pub fn propose(request: &ProposalRequest<'_>) -> Result<Proposal, AgentError> {
    propose_with(request, true)
}

/// The Researcher with (`steered`) or without history, analysis and literature steering.
pub(crate) fn propose_with(
    request: &ProposalRequest<'_>,
    steered: bool,
) -> Result<Proposal, AgentError> {
    let failed = |message: String| AgentError::Failed {
        role: "researcher",
        message,
    };
    let mut rng = SmallRng::seed_from_u64(request.seed);
    let parent_source = request
        .parent
        .program()
        .ok_or_else(|| failed(format!("parent {} has no program", request.parent.name)))?;
    let parent = valid(parent_source, request.check).ok_or_else(|| {
        failed(format!(
            "parent {} does not check at this stage's config",
            request.parent.name
        ))
    })?;
    let references: Vec<Program> = request
        .references
        .iter()
        .filter_map(|e| e.program())
        .filter_map(|source| valid(source, request.check))
        .map(|v| v.program)
        .collect();
    let literature: Vec<Program> = request
        .cognition
        .iter()
        .filter_map(|entry| entry.archspec.as_deref())
        .filter_map(|source| valid(source, request.check))
        .map(|v| v.program)
        .collect();
    let history = history_weights(request.history);
    let tags: Vec<String> = request
        .cognition
        .iter()
        .flat_map(|entry| entry.tags.iter().cloned())
        .collect();
    let summary = request
        .parent
        .problem_summary
        .as_deref()
        .unwrap_or_default();
    let boosts = steering(summary, &tags);
    let weights: Vec<f64> = Operator::ALL
        .iter()
        .map(|op| {
            let available = match op {
                Operator::Crossover => !references.is_empty(),
                // The control keeps every operator, grafts included: only the choice is blind.
                Operator::Literature => !literature.is_empty(),
                Operator::Mutate(_) => true,
            };
            if !available {
                return 0.0;
            }
            if !steered {
                return 1.0;
            }
            history.get(op.name()).copied().unwrap_or(1.0)
                * boosts.get(op.name()).copied().unwrap_or(1.0)
        })
        .collect();
    let donors_for = |op: Operator| match op {
        Operator::Crossover => references.clone(),
        Operator::Literature => literature.clone(),
        Operator::Mutate(_) => Vec::new(),
    };
    let (op, child) = search_child(
        &parent.program,
        &donors_for,
        &weights,
        request.known_hashes,
        &mut rng,
        request.check,
    )
    .ok_or_else(|| {
        failed(format!(
            "no operator gave a new program from {}",
            request.parent.name
        ))
    })?;
    let change = describe_change(&parent.checked.graph, &child.checked.graph);
    let source_note = match op {
        Operator::Literature => request
            .cognition
            .iter()
            .find(|entry| entry.archspec.is_some())
            .map(|entry| format!(" Drawing on {} ({}).", entry.title, entry.id))
            .unwrap_or_default(),
        _ => request
            .cognition
            .first()
            .map(|entry| format!(" Retrieved for the parent's problem: {}.", entry.title))
            .unwrap_or_default(),
    };
    let parent_result = match (request.parent.fitness, request.parent.summary()) {
        (Some(fitness), Some(summary)) => {
            format!(
                " (fitness {fitness:.3}, validation loss {:.3})",
                summary.val_loss
            )
        }
        _ => String::new(),
    };
    let motivation = format!(
        "{parent}{parent_result}: {problem} Try {purpose}: the child {change}.{source_note}",
        parent = request.parent.name,
        problem = if summary.is_empty() {
            "no analysis yet.".to_string()
        } else {
            summary.to_string()
        },
        purpose = op.purpose(),
    );
    Ok(Proposal {
        name: format!(
            "{}-{}-{}",
            root_name(&request.parent.name),
            op.label(),
            request.experiment
        ),
        motivation,
        program: archspec::print(&child.program),
        operator: Some(op.name().to_string()),
    })
}
