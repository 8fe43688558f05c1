//! The numeric Analyst: compares a finished experiment with its parent, siblings and the
//! baseline, describes its loss curve, and writes the problem summary in symptom words (the
//! vocabulary of the cognition base's triggers), never paper names.

use super::{Analysis, AnalysisRequest};
use crate::core::lifecycle::{Experiment, TrainSummary};
use crate::core::qa::ProgressPoint;

fn mean_accuracy(summary: &TrainSummary) -> Option<f64> {
    (!summary.accuracy.is_empty())
        .then(|| summary.accuracy.values().sum::<f64>() / summary.accuracy.len() as f64)
}

fn relative(value: f64, reference: f64) -> String {
    if reference.abs() < 1e-12 {
        return "n/a".into();
    }
    let change = (value - reference) / reference * 100.0;
    if change <= 0.0 {
        format!("{:.1}% lower", -change)
    } else {
        format!("{change:.1}% higher")
    }
}

fn compare(label: &str, other: &Experiment, summary: &TrainSummary) -> Option<String> {
    let theirs = other.summary()?;
    Some(format!(
        "{label} {} {:.3} ({} than ours {:.3})",
        other.name,
        theirs.val_loss,
        relative(theirs.val_loss, summary.val_loss),
        summary.val_loss
    ))
}

/// Where the curve stands: how far it fell and whether it was still falling at the end.
pub fn curve_shape(progress: &[ProgressPoint]) -> Option<(String, bool)> {
    let finite: Vec<&ProgressPoint> = progress.iter().filter(|p| p.loss.is_finite()).collect();
    let (first, last) = (finite.first()?, finite.last()?);
    let drop = first.loss - last.loss;
    let tail_start = finite.len() * 4 / 5;
    let tail = &finite[tail_start.min(finite.len().saturating_sub(2))..];
    let still_falling = tail.len() >= 2 && drop > 0.0 && (tail[0].loss - last.loss) > 0.1 * drop;
    let ninety = finite
        .iter()
        .find(|p| first.loss - p.loss >= 0.9 * drop)
        .map_or(last.step, |p| p.step);
    Some((
        format!(
            "training loss fell from {:.3} to {:.3}, 90% of the drop by step {ninety} of {}{}",
            first.loss,
            last.loss,
            last.step,
            if still_falling {
                ", still falling at the end"
            } else {
                ""
            }
        ),
        still_falling,
    ))
}

pub fn analyse(request: &AnalysisRequest<'_>) -> Analysis {
    let experiment = request.experiment;
    let Some(summary) = experiment.summary() else {
        return Analysis {
            analysis: "no finished run to analyse".into(),
            problem_summary: "training did not finish; the architecture fails to train".into(),
        };
    };
    let mut parts = vec![format!(
        "validation loss {:.3}, fitness {}",
        summary.val_loss,
        experiment
            .fitness
            .map_or_else(|| "n/a".to_string(), |f| format!("{f:.3}"))
    )];
    for (task, accuracy) in &summary.accuracy {
        parts.push(format!("{task} accuracy {accuracy:.3}"));
    }
    if let Some(text) = request.parent.and_then(|p| compare("parent", p, summary)) {
        parts.push(text);
    }
    if let Some(text) = request
        .baseline
        .and_then(|b| compare("baseline", b, summary))
        && request.baseline.map(|b| b.id) != Some(experiment.id)
    {
        parts.push(text);
    }
    let best_sibling = request
        .siblings
        .iter()
        .filter(|s| s.id != experiment.id)
        .filter_map(|s| s.summary().map(|sum| (s, sum.val_loss)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((sibling, _)) = best_sibling
        && let Some(text) = compare("best sibling", sibling, summary)
    {
        parts.push(text);
    }
    let mut losses: Vec<f64> = request
        .peers
        .iter()
        .filter_map(|p| p.summary().map(|s| s.val_loss))
        .collect();
    losses.push(summary.val_loss);
    losses.sort_by(f64::total_cmp);
    let rank = losses
        .iter()
        .position(|l| *l >= summary.val_loss)
        .unwrap_or(0)
        + 1;
    parts.push(format!(
        "rank {rank} of {} at this stage by validation loss",
        losses.len()
    ));
    let curve = experiment
        .current()
        .and_then(|attempt| curve_shape(&attempt.progress));
    if let Some((text, _)) = &curve {
        parts.push(text.clone());
    }
    parts.push(format!("{:.1} s of training", summary.wall_s));

    let mut symptoms = Vec::new();
    match mean_accuracy(summary) {
        Some(a) if a < 0.5 => symptoms.push(
            "associative recall is poor: the model cannot retrieve the value of a queried key, as if the fixed-size recurrent state blurs or overwrites stored key-value associations",
        ),
        Some(a) if a < 0.9 => symptoms.push(
            "recall is partial: some key-value pairs are retrieved but interference between stored associations limits memory capacity",
        ),
        Some(_) => symptoms.push(
            "recall is solved at this scale; remaining gains are in efficiency, stability and length generalisation",
        ),
        None => {}
    }
    if curve.as_ref().is_some_and(|(_, falling)| *falling) {
        symptoms.push(
            "the loss is still falling at the end of training: optimisation is slow to converge",
        );
    }
    let worse_than_parent = request
        .parent
        .and_then(Experiment::summary)
        .is_some_and(|p| summary.val_loss > p.val_loss * 1.02);
    if worse_than_parent {
        symptoms.push("the last change hurt compared with its parent");
    }
    if experiment.attempts.len() > 1 {
        symptoms.push(
            "earlier attempts failed and needed repair, a sign of fragile or unstable training",
        );
    }
    Analysis {
        analysis: parts.join("; ") + ".",
        problem_summary: symptoms.join(". ") + ".",
    }
}
