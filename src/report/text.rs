//! The report as terminal text: leaderboard, verification, lineage tree, failed attempts.

use super::Report;
use crate::core::lifecycle::{ExperimentId, Stage};
use std::collections::BTreeMap;
use std::fmt::Write;

fn fmt_opt(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

/// The leaderboard's benchmark scores as the harness prints them: value ± standard error.
fn render_benchmarks(report: &Report, out: &mut String) {
    if !report.has_benchmarks() {
        return;
    }
    let _ = writeln!(
        out,
        "\nBENCHMARKS (zero-shot, lm-evaluation-harness metrics: value ± standard error)"
    );
    let _ = writeln!(
        out,
        "{:>4} {:>5}  {:<28} {:<16} {:>5} {:>16} {:>16} {:>10}",
        "rank", "id", "name", "benchmark", "n", "acc", "acc_norm", "perplexity"
    );
    let with_error = |value, error| super::with_error(value, error).unwrap_or_else(|| "-".into());
    for row in &report.leaderboard {
        for (name, score) in &row.benchmarks {
            let _ = writeln!(
                out,
                "{:>4} {:>5}  {:<28} {:<16} {:>5} {:>16} {:>16} {:>10}",
                row.rank,
                row.id,
                truncate(&row.name, 28),
                truncate(name, 16),
                score.n,
                with_error(Some(score.acc), score.acc_stderr),
                with_error(score.acc_norm, score.acc_norm_stderr),
                fmt_opt(score.perplexity, 2)
            );
        }
    }
}

fn accuracy(values: &BTreeMap<String, f64>) -> String {
    if values.is_empty() {
        return "-".into();
    }
    values
        .iter()
        .map(|(task, a)| format!("{task} {a:.3}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let usage = &report.usage;
    let _ = writeln!(
        out,
        "campaign `{}` — {}, {:.1} trainer-minutes, baseline `{}`, seed {}, archlab {}\n",
        report.campaign,
        super::count(usage.experiments, "experiment", "experiments"),
        usage.compute_seconds / 60.0,
        report.baseline,
        report.seed.map_or("unset".to_string(), |s| s.to_string()),
        report.archlab_version
    );
    let _ = writeln!(out, "LEADERBOARD (exploration, by fitness)");
    let _ = writeln!(
        out,
        "{:>4} {:>5}  {:<28} {:>7} {:>8}  {:<14} {:>8} {:<10} verified val loss",
        "rank", "id", "name", "fitness", "val loss", "accuracy", "params", "cost in T"
    );
    for row in &report.leaderboard {
        let verified = row.verified.map_or_else(String::new, |v| {
            format!(
                "{:.3} ± {:.3}{}",
                v.mean,
                v.half_width,
                if row.state_of_the_art {
                    "  ★ new SOTA"
                } else {
                    ""
                }
            )
        });
        let _ = writeln!(
            out,
            "{:>4} {:>5}  {:<28} {:>7.3} {:>8}  {:<14} {:>8} {:<10} {}",
            row.rank,
            row.id,
            truncate(&row.name, 28),
            row.fitness,
            fmt_opt(row.val_loss, 3),
            accuracy(&row.accuracy),
            row.params.map_or_else(|| "-".into(), |p| p.to_string()),
            row.complexity.as_deref().unwrap_or("-"),
            verified
        );
    }
    render_benchmarks(report, &mut out);
    out.push('\n');
    out.push_str(&details(report));
    out
}

/// Everything after the leaderboard and its benchmarks: verification, lineage, the agents and
/// the failed attempts (the HTML page shows these as text under its own tables).
pub fn details(report: &Report) -> String {
    let mut out = String::new();
    let verification = &report.verification;
    let _ = writeln!(
        out,
        "VERIFICATION (validation loss, mean ± 95% interval over seeds)"
    );
    match verification.baseline {
        Some(b) => {
            let _ = writeln!(
                out,
                "  baseline {:<24} {:.3} ± {:.3} ({} runs){}",
                report.baseline,
                b.mean,
                b.half_width,
                b.runs,
                shortfall_note(verification.baseline_shortfall, verification.required_runs)
            );
        }
        None => {
            let _ = writeln!(out, "  (no verification yet)");
        }
    }
    for program in &verification.programs {
        let _ = writeln!(
            out,
            "  {:<33} {:.3} ± {:.3} ({} of {} runs){}{}",
            truncate(&program.name, 33),
            program.val_loss.mean,
            program.val_loss.half_width,
            program.runs,
            program.tried,
            shortfall_note(program.shortfall, verification.required_runs),
            if program.state_of_the_art {
                "  ★ new state of the art"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        out,
        "  verified discoveries: {}",
        verification.discoveries()
    );

    let _ = writeln!(out, "\nLINEAGE (exploration)");
    let exploration: Vec<_> = report
        .experiments
        .iter()
        .filter(|e| e.stage == Stage::Exploration)
        .collect();
    let mut children: BTreeMap<Option<ExperimentId>, Vec<ExperimentId>> = BTreeMap::new();
    for e in &exploration {
        children.entry(e.parent).or_default().push(e.id);
    }
    let mut stack: Vec<(ExperimentId, usize)> = children
        .get(&None)
        .map(|roots| roots.iter().rev().map(|id| (*id, 0)).collect())
        .unwrap_or_default();
    while let Some((id, depth)) = stack.pop() {
        if let Some(e) = report.experiment(id) {
            let _ = writeln!(
                out,
                "  {}{} e{} {}  {}{}",
                "  ".repeat(depth),
                if depth == 0 { "●" } else { "└" },
                e.id,
                e.name,
                e.fitness.map_or_else(
                    || format!("{:?}", e.phase).to_lowercase(),
                    |f| format!("fitness {f:.3}")
                ),
                e.operator
                    .as_deref()
                    .map_or_else(String::new, |o| format!("  ({o})"))
            );
        }
        if depth < 64
            && let Some(kids) = children.get(&Some(id))
        {
            stack.extend(kids.iter().rev().map(|k| (*k, depth + 1)));
        }
    }

    if let Some(agents) = &report.agents {
        let _ = writeln!(out, "\nLLM AGENTS");
        let _ = writeln!(
            out,
            "  {:<12} {:>8} {:>7} {:>8} {:>10} {:>10} {:>10} {:>12}",
            "role",
            "requests",
            "errors",
            "retries",
            "downgrades",
            "prompt tok",
            "reply tok",
            "latency s"
        );
        for (role, stats) in &agents.roles {
            let _ = writeln!(
                out,
                "  {:<12} {:>8} {:>7} {:>8} {:>10} {:>10} {:>10} {:>12.1}",
                role,
                stats.requests,
                stats.errors,
                stats.retries,
                stats.downgrades,
                stats.prompt_tokens,
                stats.completion_tokens,
                stats.latency_ms as f64 / 1000.0
            );
        }
        for (endpoint_model, mode) in &agents.negotiated {
            let _ = writeln!(out, "  structured output for {endpoint_model}: {mode}");
        }
        if let Some(reason) = &agents.fallback {
            let _ = writeln!(out, "  fell back to the evolutionary agents: {reason}");
        }
        if let Some(reason) = &agents.retrieval_fallback {
            let _ = writeln!(out, "  cognition retrieval: {reason}");
        }
    }

    let failed: Vec<_> = report
        .experiments
        .iter()
        .flat_map(|e| e.attempts.iter().map(move |a| (e, a)))
        .filter(|(_, a)| a.outcome != "finished" && a.outcome != "running")
        .collect();
    let _ = writeln!(out, "\nFAILED ATTEMPTS ({})", failed.len());
    for (e, attempt) in failed {
        let reason = attempt.reason.lines().next().unwrap_or_default();
        let _ = writeln!(
            out,
            "  e{} {} #{}: {} — {}",
            e.id,
            e.name,
            attempt.number,
            attempt.outcome,
            truncate(reason, 110)
        );
    }
    out
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// Why a verification result cannot back a claim, if it cannot.
fn shortfall_note(shortfall: usize, required: usize) -> String {
    if shortfall == 0 {
        String::new()
    } else {
        format!("  — {shortfall} run(s) short of the {required} a claim needs: no claim")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::lifecycle::{Attempt, Experiment, Outcome, Phase, TrainSummary};

    #[test]
    fn benchmark_scores_reach_the_leaderboard_the_text_and_the_json() {
        let mut e = Experiment::new(1, Stage::Exploration, None, vec![]);
        e.name = "deltanet".into();
        e.phase = Phase::Succeeded;
        e.fitness = Some(0.6);
        let piqa = trainer::BenchmarkScore {
            task: "piqa".into(),
            n: 500,
            acc: 0.61,
            acc_stderr: Some(0.0218),
            acc_norm: Some(0.6),
            acc_norm_stderr: Some(0.0219),
            perplexity: None,
        };
        e.attempts.push(Attempt {
            number: 1,
            program: "mixer m(d_model) { return x }".into(),
            outcome: Some(Outcome::Finished {
                summary: TrainSummary {
                    val_loss: 1.0,
                    accuracy: BTreeMap::from([("piqa".into(), 0.61)]),
                    wall_s: 1.0,
                    params: 10,
                    benchmarks: BTreeMap::from([("piqa".into(), piqa)]),
                },
            }),
            progress: vec![],
            structure: None,
        });
        let experiments = vec![e];
        let usage = crate::core::campaign::usage(&experiments, 0);
        let report = Report::build("c", "deltanet", 3, &experiments, usage);
        let text = render(&report);
        let line = text
            .lines()
            .skip_while(|line| !line.starts_with("BENCHMARKS"))
            .find(|line| line.contains("piqa"))
            .unwrap_or_else(|| panic!("no piqa row under BENCHMARKS:\n{text}"));
        assert!(
            line.contains("0.6100 ± 0.0218") && line.contains("0.6000 ± 0.0219"),
            "{line}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["leaderboard"][0]["benchmarks"]["piqa"]["acc"], 0.61);
        assert_eq!(
            json["experiments"][0]["benchmarks"]["piqa"]["acc_stderr"],
            0.0218
        );
    }
}
