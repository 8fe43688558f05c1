//! The report as terminal text: leaderboard, verification, lineage tree, failed attempts.

use super::Report;
use crate::core::lifecycle::{ExperimentId, Stage};
use crate::core::verification::{Claim, Comparison};
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
    if !report.quarantined.is_empty() {
        let _ = writeln!(
            out,
            "DAMAGED RECORDS: {} left out of this report (their rows are kept as they are)",
            super::count(
                report.quarantined.len() as u32,
                "experiment is",
                "experiments are"
            )
        );
        for damaged in &report.quarantined {
            let _ = writeln!(out, "  experiment {}: {}", damaged.id, damaged.reason);
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "LEADERBOARD (exploration, by fitness)");
    let _ = writeln!(
        out,
        "{:>4} {:>5}  {:<28} {:>7} {:>8}  {:<14} {:>8} {:>10} {:<10} verified val loss",
        "rank", "id", "name", "fitness", "val loss", "accuracy", "params", "FLOPs/tok", "cost in T"
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
            "{:>4} {:>5}  {:<28} {:>7.3} {:>8}  {:<14} {:>8} {:>10} {:<10} {}",
            row.rank,
            row.id,
            truncate(&row.name, 28),
            row.fitness,
            fmt_opt(row.val_loss, 3),
            accuracy(&row.accuracy),
            row.params.map_or_else(|| "-".into(), |p| p.to_string()),
            row.cost
                .map_or_else(|| "-".into(), |c| c.flops_per_token.to_string()),
            row.complexity.as_deref().unwrap_or("-"),
            verified
        );
    }
    render_benchmarks(report, &mut out);
    out.push('\n');
    out.push_str(&details(report, true));
    out
}

/// Everything after the leaderboard and its benchmarks: verification, the claims (unless the
/// page shows them as a table), lineage, the agents and the failed attempts (the HTML page
/// shows these as text under its own tables).
pub fn details(report: &Report, with_claims: bool) -> String {
    let mut out = String::new();
    render_ladder(report, &mut out);
    render_verification(report, &mut out);
    if with_claims {
        render_claims(report, &mut out);
    }
    render_false_claims(report, &mut out);
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
        format!(
            "  — {} short of the {required} a claim needs",
            super::count(shortfall as u64, "run", "runs")
        )
    }
}

/// The rungs between exploration and verification, and how well each level's fitness ranked
/// the programs the next one retrained.
fn render_ladder(report: &Report, out: &mut String) {
    let ladder = &report.verification.ladder;
    if ladder.rungs.is_empty() && ladder.predictions.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "LADDER (each rung retrains the best programs of the one below, and the baseline; fitness against the baseline's mean at the rung)"
    );
    for rung in &ladder.rungs {
        let _ = writeln!(
            out,
            "  rung {} ({} per program{}): {}",
            rung.rung,
            super::count(rung.seeds, "seed", "seeds"),
            if rung.complete { "" } else { ", still running" },
            super::count(rung.programs.len() as u64, "program", "programs"),
        );
        for program in &rung.programs {
            let fitness = program.fitness.map_or_else(
                || "-".to_string(),
                |f| format!("{:+.3} ± {:.3}", f.mean, f.half_width),
            );
            let val_loss = program.val_loss.map_or_else(
                || "-".to_string(),
                |v| format!("{:.3} ± {:.3}", v.mean, v.half_width),
            );
            let _ = writeln!(
                out,
                "    {:<28} fitness {:<18} val loss {:<16} ({} of {} runs){}",
                truncate(&program.name, 28),
                fitness,
                val_loss,
                program.runs,
                program.tried,
                if program.promoted {
                    "  ↑ promoted"
                } else {
                    ""
                }
            );
        }
    }
    for prediction in &ladder.predictions {
        let verdict = match &prediction.spearman {
            Some(rank) => format!(
                "Spearman's ρ {:+.2} over {} (p {})",
                rank.rho,
                super::count(rank.n as u64, "program", "programs"),
                pvalue(rank.p)
            ),
            None => format!(
                "no rank correlation ({} at both; it needs 3 with different fitness)",
                super::count(prediction.programs as u64, "program", "programs")
            ),
        };
        let _ = writeln!(out, "  {} → {}: {verdict}", prediction.from, prediction.to);
    }
    out.push('\n');
}

/// The baseline, the campaign's noise floor and the comparators retrained beside the claims.
fn render_verification(report: &Report, out: &mut String) {
    let verification = &report.verification;
    let _ = writeln!(
        out,
        "VERIFICATION (validation loss, mean ± 95% interval over the training seeds)"
    );
    let Some(b) = verification.baseline else {
        let _ = writeln!(out, "  (no verification yet)");
        return;
    };
    let _ = writeln!(
        out,
        "  baseline    {:<28} {:.3} ± {:.3} ({}){}",
        truncate(&report.baseline, 28),
        b.mean,
        b.half_width,
        super::count(b.runs as u64, "run", "runs"),
        shortfall_note(verification.baseline_shortfall, verification.required_runs)
    );
    if let Some(floor) = verification.noise_floor {
        let _ = writeln!(
            out,
            "  noise floor: over {} the baseline's validation loss varies by sd {:.4} ({:.1}% of its mean), its fitness by sd {:.4}",
            super::count(floor.runs as u64, "seed", "seeds"),
            floor.val_loss_sd,
            100.0 * floor.val_loss_cv,
            floor.fitness_sd
        );
    }
    for comparator in &verification.comparators {
        let _ = writeln!(
            out,
            "  comparator  {:<28} {:.3} ± {:.3} ({} of {} runs)",
            truncate(&comparator.name, 28),
            comparator.val_loss.mean,
            comparator.val_loss.half_width,
            comparator.runs,
            comparator.tried,
        );
    }
}

/// Each promoted program's claim: its comparisons with n, Δ, interval, effect size and p, its
/// Holm-adjusted p, and why an unclaimed program was not claimed.
fn render_claims(report: &Report, out: &mut String) {
    let verification = &report.verification;
    if verification.baseline.is_none() {
        return;
    }
    let tested = verification
        .programs
        .iter()
        .filter(|p| p.adjusted_p.is_some())
        .count();
    let _ = writeln!(
        out,
        "\nCLAIMS (paired over shared training seeds: two-sided t-test of fitness against every comparator, Holm over {} tested, α = {})",
        super::count(tested as u64, "program", "programs"),
        verification.alpha
    );
    if verification.programs.is_empty() {
        let _ = writeln!(out, "  (no promoted program verified yet)");
    }
    for program in &verification.programs {
        let status = match &program.claim {
            Claim::Claimed => "★ claimed: new state of the art".to_string(),
            Claim::Withdrawn { reason } => format!("withdrawn: {reason}"),
            Claim::NotClaimed { reason } => format!("not claimed: {reason}"),
            Claim::Comparator => "comparator".to_string(),
        };
        let p = match (program.p, program.adjusted_p) {
            (Some(p), Some(adjusted)) => {
                format!("p {}, Holm-adjusted p {}", pvalue(p), pvalue(adjusted))
            }
            _ => "untested".to_string(),
        };
        let _ = writeln!(
            out,
            "  {:<40} {:.3} ± {:.3} ({} of {} runs); {p}",
            truncate(&program.name, 40),
            program.val_loss.mean,
            program.val_loss.half_width,
            program.runs,
            program.tried,
        );
        let _ = writeln!(out, "    {status}");
        for comparison in &program.comparisons {
            let _ = writeln!(
                out,
                "    vs {} ({}): {}",
                comparison.against,
                comparison.describe_roles(),
                describe_comparison(comparison)
            );
        }
    }
    let _ = writeln!(
        out,
        "  {}",
        super::count(
            verification.discoveries(),
            "verified discovery",
            "verified discoveries"
        )
    );
}

/// "n 3, Δ fitness +0.412 [+0.300, +0.524], d_z 9.1, p 0.0040, Wilcoxon p 0.125; Δ val loss
/// −0.120 [−0.15, −0.09]; Δ mqar +0.050 […]".
pub fn describe_comparison(comparison: &Comparison) -> String {
    if let Some(problem) = &comparison.problem {
        return format!("no test: {problem}");
    }
    let mut parts = Vec::new();
    if let Some(test) = comparison.fitness {
        parts.push(format!(
            "n {}, Δ fitness {:+.3} [{:+.3}, {:+.3}], d_z {}, p {}, Wilcoxon p {}",
            test.n,
            test.delta,
            test.low,
            test.high,
            test.effect_size
                .map_or_else(|| "—".to_string(), |d| format!("{d:.1}")),
            pvalue(test.p),
            pvalue(test.wilcoxon_p)
        ));
    }
    if let Some(test) = comparison.val_loss {
        parts.push(format!(
            "Δ val loss {:+.4} [{:+.4}, {:+.4}]",
            test.delta, test.low, test.high
        ));
    }
    for (task, test) in &comparison.accuracy {
        parts.push(format!(
            "Δ {task} {:+.3} [{:+.3}, {:+.3}]",
            test.delta, test.low, test.high
        ));
    }
    parts.join("; ")
}

/// The simulated false-claim rates, when the report was asked for them.
fn render_false_claims(report: &Report, out: &mut String) {
    let Some(simulated) = &report.false_claims else {
        return;
    };
    let _ = writeln!(
        out,
        "\nFALSE CLAIMS (simulated: the best program promoted again under another name, under this campaign's noise: {} of ln(val loss), sd {:.4})",
        super::count(simulated.residuals as u64, "residual", "residuals"),
        simulated.log_loss_sd
    );
    if simulated.degenerate {
        let _ = writeln!(
            out,
            "  every residual is zero: identical programs tie and are never claimed, which says nothing of noisier hardware"
        );
    }
    let _ = writeln!(
        out,
        "  {:<8} {:>7} {:>8} {:>13} {:>9} {:>18}",
        "twin", "shared", "trials", "false claims", "rate", "95% interval"
    );
    for rate in &simulated.rates {
        let _ = writeln!(
            out,
            "  {:<8} {:>7.1} {:>8} {:>13} {:>8.2}% {:>7.2}%–{:.2}%",
            format!("{:?}", rate.lineage).to_lowercase(),
            rate.shared,
            rate.trials,
            rate.false_claims,
            100.0 * rate.rate,
            100.0 * rate.low,
            100.0 * rate.high
        );
    }
}

/// A p-value with the precision that matters: four decimals, or "< 0.0001".
pub fn pvalue(p: f64) -> String {
    if p < 1e-4 {
        "< 0.0001".to_string()
    } else {
        format!("{p:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::lifecycle::{Attempt, Experiment, Outcome, Phase, TrainSummary};
    use crate::core::verification::Rules;

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
        let report = Report::build("c", &Rules::with_baseline("deltanet"), &experiments, usage);
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
