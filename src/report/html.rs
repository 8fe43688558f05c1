//! One self-contained HTML page: figures inlined as SVG, leaderboard, verification, lineage
//! and every experiment with all its attempts. Everything from memory is escaped: names,
//! motivations and programs may come from an LLM.

use super::{Report, text};
use crate::core::verification::Claim;
use std::fmt::Write;

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn opt(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{v:.3}"))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left}
th{background:#f4f4f4}.sota{color:#b8860b;font-weight:bold}.failed{color:#a00}pre{background:#f8f8f8;padding:8px;overflow-x:auto;font-size:12px}
details{margin:4px 0}figure{display:inline-block;margin:0 1em 1em 0}";

/// The leaderboard's zero-shot scores, value ± standard error as the harness prints them.
fn render_benchmarks(report: &Report, page: &mut String) {
    if !report.has_benchmarks() {
        return;
    }
    page.push_str("<h2>Benchmarks</h2><p>Zero-shot, scored as lm-evaluation-harness scores them.</p><table><tr><th>rank</th><th>id</th><th>name</th><th>benchmark</th><th>task</th><th>n</th><th>acc</th><th>acc_norm</th><th>perplexity</th></tr>\n");
    let with_error = |value, error| super::with_error(value, error).unwrap_or_else(|| "–".into());
    for row in &report.leaderboard {
        for (name, score) in &row.benchmarks {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td><a href=\"#e{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                row.rank,
                escape(&row.name),
                escape(name),
                escape(&score.task),
                score.n,
                with_error(Some(score.acc), score.acc_stderr),
                with_error(score.acc_norm, score.acc_norm_stderr),
                score
                    .perplexity
                    .map_or_else(|| "–".into(), |p| format!("{p:.2}")),
                id = row.id,
            );
        }
    }
    page.push_str("</table>\n");
}

/// The claims table: one row per comparison of each promoted program, as a paper's table of
/// paired results reads.
fn render_claims(report: &Report, page: &mut String) {
    let verification = &report.verification;
    if verification.programs.is_empty() {
        return;
    }
    let _ = writeln!(
        page,
        "<h2>Claims</h2><p>Paired over shared training seeds: a claim needs a higher fitness than each comparator with a two-sided paired t-test p ≤ α (the 95% interval of the difference above 0), and Holm's correction over {} tested; α = {}. Wilcoxon's signed-rank p is shown beside it (two-sided, with n seeds it cannot fall below 2<sup>1−n</sup>).</p><table><tr><th>program</th><th>claim</th><th>Holm-adjusted p</th><th>against</th><th>n</th><th>Δ fitness [95% interval]</th><th>d<sub>z</sub></th><th>p (t)</th><th>p (Wilcoxon)</th><th>Δ val loss [95% interval]</th></tr>",
        super::count(
            verification
                .programs
                .iter()
                .filter(|p| p.adjusted_p.is_some())
                .count() as u64,
            "program",
            "programs"
        ),
        verification.alpha
    );
    for program in &verification.programs {
        let claim = match &program.claim {
            Claim::Claimed => "<span class=\"sota\">★ claimed</span>".to_string(),
            Claim::Withdrawn { reason } => format!("withdrawn: {}", escape(reason)),
            Claim::NotClaimed { reason } => format!("not claimed: {}", escape(reason)),
            Claim::Comparator => "comparator".to_string(),
        };
        let rows = program.comparisons.len().max(1);
        let _ = write!(
            page,
            "<tr><td rowspan=\"{rows}\"><a href=\"#e{id}\">{name}</a></td><td rowspan=\"{rows}\">{claim}</td><td rowspan=\"{rows}\">{adjusted}</td>",
            id = program.source,
            name = escape(&program.name),
            adjusted = program
                .adjusted_p
                .map_or_else(|| "–".to_string(), text::pvalue),
        );
        if program.comparisons.is_empty() {
            page.push_str("<td colspan=\"7\">no comparison</td></tr>\n");
        }
        for (index, comparison) in program.comparisons.iter().enumerate() {
            if index > 0 {
                page.push_str("<tr>");
            }
            let against = format!(
                "{} ({})",
                escape(&comparison.against),
                escape(&comparison.describe_roles())
            );
            match (&comparison.problem, comparison.fitness) {
                (None, Some(test)) => {
                    let _ = writeln!(
                        page,
                        "<td>{against}</td><td>{}</td><td>{:+.3} [{:+.3}, {:+.3}]</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        test.n,
                        test.delta,
                        test.low,
                        test.high,
                        test.effect_size
                            .map_or_else(|| "–".to_string(), |d| format!("{d:.1}")),
                        text::pvalue(test.p),
                        text::pvalue(test.wilcoxon_p),
                        comparison.val_loss.map_or_else(
                            || "–".to_string(),
                            |l| format!("{:+.4} [{:+.4}, {:+.4}]", l.delta, l.low, l.high)
                        ),
                    );
                }
                (problem, _) => {
                    let _ = writeln!(
                        page,
                        "<td>{against}</td><td colspan=\"6\">no test: {}</td></tr>",
                        escape(problem.as_deref().unwrap_or("no fitness"))
                    );
                }
            }
        }
    }
    page.push_str("</table>\n");
}

/// The page, with `figures` (file name, SVG text) inlined.
pub fn render(report: &Report, figures: &[(&str, String)]) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>archlab report: {name}</title><style>{STYLE}</style></head><body>\n<h1>Campaign {name}</h1>\n<p>{n}, {m:.1} trainer-minutes, baseline <code>{baseline}</code>, {wins}; campaign seed {seed}, report by archlab {version}.</p>\n",
        name = escape(&report.campaign),
        n = super::count(report.usage.experiments as u64, "experiment", "experiments"),
        m = report.usage.compute_seconds / 60.0,
        baseline = escape(&report.baseline),
        wins = super::count(
            report.verification.discoveries() as u64,
            "verified discovery",
            "verified discoveries"
        ),
        seed = report.seed.map_or("unset".to_string(), |s| s.to_string()),
        version = escape(&report.archlab_version),
    );
    for (name, svg) in figures {
        let _ = writeln!(
            page,
            "<figure>{svg}<figcaption>{}</figcaption></figure>",
            escape(name)
        );
    }
    page.push_str("<h2>Leaderboard</h2><table><tr><th>rank</th><th>id</th><th>name</th><th>fitness</th><th>val loss</th><th>accuracy</th><th>params</th><th>mixer FLOPs/token</th><th>cost in T</th><th>verified val loss</th></tr>\n");
    for row in &report.leaderboard {
        let accuracy: Vec<String> = row
            .accuracy
            .iter()
            .map(|(t, a)| format!("{} {a:.3}", escape(t)))
            .collect();
        let verified = row.verified.map_or_else(String::new, |v| {
            format!(
                "{:.3} ± {:.3}{}",
                v.mean,
                v.half_width,
                if row.state_of_the_art {
                    " <span class=\"sota\">★ new state of the art</span>"
                } else {
                    ""
                }
            )
        });
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td><a href=\"#e{id}\">{id}</a></td><td>{}</td><td>{:.3}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{verified}</td></tr>",
            row.rank,
            escape(&row.name),
            row.fitness,
            opt(row.val_loss),
            accuracy.join(", "),
            row.params.map_or_else(|| "–".into(), |p| p.to_string()),
            row.cost
                .map_or_else(|| "–".into(), |c| c.flops_per_token.to_string()),
            escape(row.complexity.as_deref().unwrap_or("–")),
            id = row.id,
        );
    }
    page.push_str("</table>\n");
    render_benchmarks(report, &mut page);
    render_claims(report, &mut page);
    // The tables above are not repeated: the text gives what has no table here.
    page.push_str("<h2>Verification, lineage and failed attempts</h2><pre>");
    page.push_str(&escape(&text::details(report, false)));
    page.push_str("</pre>\n<h2>Experiments</h2>\n");
    for e in &report.experiments {
        let class = if e.phase == crate::core::lifecycle::Phase::Failed {
            " class=\"failed\""
        } else {
            ""
        };
        let _ = write!(
            page,
            "<details id=\"e{id}\"><summary{class}>e{id} {name} — {stage:?}, {phase:?}, fitness {fitness}, {attempts}</summary>\n<p><b>Parent</b> {parent} · <b>operator</b> {operator} · <b>retrieved</b> {retrieved}</p><p><b>Motivation</b> {motivation}</p><p><b>Analysis</b> {analysis}</p><p><b>Problem</b> {problem}</p>\n<ol>",
            id = e.id,
            name = escape(&e.name),
            stage = e.stage,
            phase = e.phase,
            fitness = opt(e.fitness),
            attempts = super::count(e.attempts.len() as u64, "attempt", "attempts"),
            parent = e
                .parent
                .map_or_else(|| "–".into(), |p| format!("<a href=\"#e{p}\">e{p}</a>")),
            operator = escape(e.operator.as_deref().unwrap_or("–")),
            retrieved = escape(&e.retrieved.join(", ")),
            motivation = escape(&e.motivation),
            analysis = escape(e.analysis.as_deref().unwrap_or("–")),
            problem = escape(e.problem_summary.as_deref().unwrap_or("–")),
        );
        for attempt in &e.attempts {
            let _ = write!(
                page,
                "<li>{} {}{}</li>",
                escape(&attempt.outcome),
                attempt
                    .val_loss
                    .map_or_else(String::new, |v| format!("(val loss {v:.3})")),
                if attempt.reason.is_empty() {
                    String::new()
                } else {
                    format!("<pre>{}</pre>", escape(&attempt.reason))
                }
            );
        }
        let _ = writeln!(page, "</ol><pre>{}</pre></details>", escape(&e.program));
    }
    page.push_str("</body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::lifecycle::{Attempt, Experiment, Outcome, Phase, Stage, TrainSummary};
    use std::collections::BTreeMap;

    const HOSTILE: &str = "<script>alert('x')</script>&\"";

    #[test]
    fn every_text_from_memory_is_escaped() {
        let mut e = Experiment::new(1, Stage::Exploration, None, vec![]);
        e.name = format!("name{HOSTILE}");
        e.motivation = format!("motivation{HOSTILE}");
        e.analysis = Some(format!("analysis{HOSTILE}"));
        e.problem_summary = Some(format!("problem{HOSTILE}"));
        e.operator = Some(format!("operator{HOSTILE}"));
        e.retrieved = vec![format!("entry{HOSTILE}")];
        e.phase = Phase::Succeeded;
        e.fitness = Some(0.6);
        e.attempts.push(Attempt {
            number: 1,
            program: format!("# program{HOSTILE}\nmixer m(d_model) {{ return x }}"),
            outcome: Some(Outcome::Crashed {
                message: format!("crash{HOSTILE}"),
                log_tail: String::new(),
            }),
            progress: vec![],
            structure: None,
        });
        e.attempts.push(Attempt {
            number: 2,
            program: format!("# program{HOSTILE}\nmixer m(d_model) {{ return x }}"),
            outcome: Some(Outcome::Finished {
                summary: TrainSummary {
                    val_loss: 1.0,
                    accuracy: BTreeMap::from([(format!("task{HOSTILE}"), 0.5)]),
                    wall_s: 1.0,
                    params: 10,
                    benchmarks: BTreeMap::from([(
                        format!("bench{HOSTILE}"),
                        trainer::BenchmarkScore {
                            task: "piqa".into(),
                            n: 4,
                            acc: 0.5,
                            acc_stderr: Some(0.25),
                            acc_norm: None,
                            acc_norm_stderr: None,
                            perplexity: None,
                        },
                    )]),
                },
            }),
            progress: vec![],
            structure: None,
        });
        let experiments = vec![e];
        let usage = crate::core::campaign::usage(&experiments, 0);
        let report = Report::build(
            &format!("campaign{HOSTILE}"),
            &crate::core::verification::Rules::with_baseline(&format!("baseline{HOSTILE}")),
            &experiments,
            usage,
        );
        let page = render(
            &report,
            &[(&format!("figure{HOSTILE}.svg"), "<svg></svg>".into())],
        );
        assert!(page.contains("<h2>Benchmarks</h2>"), "no benchmark table");
        // The tables are not repeated as text below them.
        assert!(page.contains("VERIFICATION (validation loss"));
        assert!(!page.contains("LEADERBOARD") && !page.contains("BENCHMARKS"));
        assert!(!page.contains("<script"), "raw markup reached the page");
        assert!(
            !page.contains("alert('x')"),
            "an unescaped quote reached the page"
        );
        for field in [
            "campaign",
            "baseline",
            "name",
            "motivation",
            "analysis",
            "problem",
            "operator",
            "entry",
            "program",
            "crash",
            "task",
            "figure",
            "bench",
        ] {
            assert!(
                page.contains(&format!(
                    "{field}&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
                )),
                "{field} is not shown escaped"
            );
        }
    }
}
