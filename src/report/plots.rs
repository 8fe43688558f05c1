//! The report's figures as SVG (plotters): the discovery curve (cumulative verified
//! state-of-the-art count against trainer hours), fitness of every exploration in the order it
//! ran with the running best, and training-loss curves of the best explorations and the
//! baseline. SVG text needs no font files, so this works on any machine.

use super::Report;
use crate::core::lifecycle::{Origin, Stage};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::ops::Range;

type PlotResult<T> = Result<T, String>;
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

const SIZE: (u32, u32) = (760, 420);

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// One axis of a figure: its range, its description, and whether it counts things (then only
/// whole numbers are labelled: an experiment id or a number of discoveries is never 0.5).
struct Axis<'a> {
    range: Range<f64>,
    desc: &'a str,
    counts: bool,
}

impl<'a> Axis<'a> {
    fn values(range: Range<f64>, desc: &'a str) -> Self {
        Self {
            range,
            desc,
            counts: false,
        }
    }

    fn counts(range: Range<f64>, desc: &'a str) -> Self {
        Self {
            range,
            desc,
            counts: true,
        }
    }

    /// A tick's label: whole numbers without decimals on a count axis, nothing between them.
    fn label(&self, value: f64) -> String {
        if !self.counts {
            return format!("{}", (value * 1e6).round() / 1e6);
        }
        if (value - value.round()).abs() < 1e-9 {
            format!("{}", value.round() as i64)
        } else {
            String::new()
        }
    }
}

/// The frame every figure shares: caption, axes with descriptions, series drawn by `draw`,
/// and a legend when `legend` is set.
fn figure(
    caption: &str,
    x: Axis<'_>,
    y: Axis<'_>,
    legend: bool,
    draw: impl FnOnce(&mut Chart<'_, '_>) -> PlotResult<()>,
) -> PlotResult<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(x.range.clone(), y.range.clone())
            .map_err(err)?;
        let (x_label, y_label) = (|v: &f64| x.label(*v), |v: &f64| y.label(*v));
        chart
            .configure_mesh()
            .x_desc(x.desc)
            .y_desc(y.desc)
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .draw()
            .map_err(err)?;
        draw(&mut chart)?;
        if legend {
            chart
                .configure_series_labels()
                .border_style(BLACK)
                .background_style(WHITE.mix(0.8))
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Cumulative verified discoveries against compute, as a step curve.
pub fn discovery_curve(report: &Report) -> PlotResult<String> {
    let curve = &report.verification.curve;
    let mut steps: Vec<(f64, f64)> = Vec::new();
    for point in curve {
        if let Some(&(_, last)) = steps.last() {
            steps.push((point.compute_hours, last));
        }
        steps.push((point.compute_hours, f64::from(point.discoveries)));
    }
    let x_max = steps.iter().map(|p| p.0).fold(0.0, f64::max).max(1e-3) * 1.05;
    let y_max = steps.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0) + 0.5;
    figure(
        "Discovery curve: verified state of the art vs compute",
        Axis::values(0.0..x_max, "trainer hours spent"),
        Axis::counts(0.0..y_max, "verified discoveries"),
        false,
        |chart| {
            chart
                .draw_series(LineSeries::new(steps, BLUE.stroke_width(2)))
                .map_err(err)?;
            chart
                .draw_series(curve.iter().map(|p| {
                    Circle::new(
                        (p.compute_hours, f64::from(p.discoveries)),
                        3,
                        BLUE.filled(),
                    )
                }))
                .map_err(err)?;
            Ok(())
        },
    )
}

/// The fitness axis: every point and the baseline's 0, with a margin (fitness is unbounded).
fn fitness_range(points: &[(f64, f64, bool)]) -> std::ops::Range<f64> {
    let (low, high) = points.iter().fold(
        (
            crate::core::fitness::BASELINE,
            crate::core::fitness::BASELINE,
        ),
        |(low, high), p| (low.min(p.1), high.max(p.1)),
    );
    let margin = ((high - low) * 0.05).max(0.05);
    (low - margin)..(high + margin)
}

/// Exploration fitness in run order, with the running best.
pub fn fitness_progress(report: &Report) -> PlotResult<String> {
    let points: Vec<(f64, f64, bool)> = report
        .experiments
        .iter()
        .filter(|e| e.stage == Stage::Exploration)
        .filter_map(|e| {
            e.fitness
                .map(|f| (e.id as f64, f, e.origin == Origin::Seed))
        })
        .collect();
    let x_max = points.iter().map(|p| p.0).fold(1.0, f64::max) + 1.0;
    let mut best = f64::NEG_INFINITY;
    let running: Vec<(f64, f64)> = points
        .iter()
        .map(|p| {
            best = best.max(p.1);
            (p.0, best)
        })
        .collect();
    figure(
        "Exploration fitness by experiment (seeds in red)",
        Axis::counts(0.0..x_max, "experiment id"),
        Axis::values(fitness_range(&points), "fitness (0 = baseline)"),
        true,
        |chart| {
            chart
                .draw_series(LineSeries::new(running, BLACK.stroke_width(1)))
                .map_err(err)?
                .label("best so far")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
            chart
                .draw_series(points.iter().map(|&(x, y, seed)| {
                    Circle::new((x, y), 4, if seed { RED.filled() } else { BLUE.filled() })
                }))
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new(
                    vec![(0.0, 0.5), (x_max, 0.5)],
                    RGBColor(160, 160, 160),
                ))
                .map_err(err)?;
            Ok(())
        },
    )
}

/// Training loss of the top explorations and the baseline.
pub fn loss_curves(report: &Report, top: usize) -> PlotResult<String> {
    let mut ids: Vec<u64> = report.leaderboard.iter().take(top).map(|r| r.id).collect();
    if let Some(baseline) = report.experiments.iter().find(|e| {
        e.stage == Stage::Exploration && e.origin == Origin::Seed && e.name == report.baseline
    }) && !ids.contains(&baseline.id)
    {
        ids.push(baseline.id);
    }
    let series: Vec<(String, Vec<(f64, f64)>)> = ids
        .iter()
        .filter_map(|id| report.experiment(*id))
        .map(|e| {
            let points = e
                .loss_curve
                .iter()
                .filter(|(_, l)| l.is_finite())
                .map(|&(s, l)| (s as f64, l))
                .collect::<Vec<_>>();
            (e.name.clone(), points)
        })
        .filter(|(_, points)| !points.is_empty())
        .collect();
    let all = series.iter().flat_map(|(_, p)| p.iter());
    let x_max = all.clone().map(|q| q.0).fold(1.0, f64::max);
    let y_max = all.map(|q| q.1).fold(0.1, f64::max) * 1.05;
    figure(
        "Training loss: best explorations and the baseline",
        Axis::counts(0.0..x_max, "step"),
        Axis::values(0.0..y_max, "training loss"),
        true,
        |chart| {
            for (index, (name, points)) in series.into_iter().enumerate() {
                let color = Palette99::pick(index).to_rgba();
                chart
                    .draw_series(LineSeries::new(points, color.stroke_width(2)))
                    .map_err(err)?
                    .label(name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
            }
            Ok(())
        },
    )
}

/// Every figure by file name.
/// The explorations that no other beats on both loss and FLOPs per token, cheapest first:
/// `(flops, loss)` of each, from `points` of `(flops, loss, …)`.
fn pareto_front(points: &[(f64, f64, bool)]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.1)).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut front: Vec<(f64, f64)> = Vec::new();
    for point in sorted {
        if front.last().is_none_or(|last| point.1 < last.1) {
            front.push(point);
        }
    }
    front
}

/// Quality against cost: each exploration's validation loss against its mixer's FLOPs per
/// token (at the verification scale), the Pareto front joined.
pub fn quality_against_cost(report: &Report) -> PlotResult<String> {
    let points: Vec<(f64, f64, bool)> = report
        .leaderboard
        .iter()
        .filter_map(|row| {
            let cost = row.cost?;
            let loss = row.val_loss.filter(|l| l.is_finite())?;
            Some((
                cost.flops_per_token as f64,
                loss,
                row.origin == Origin::Seed,
            ))
        })
        .collect();
    let front = pareto_front(&points);
    let span = |values: &mut dyn Iterator<Item = f64>| {
        let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(v), h.max(v))
        });
        if low.is_finite() {
            let margin = ((high - low) * 0.05).max(high.abs() * 0.01).max(1e-3);
            (low - margin)..(high + margin)
        } else {
            0.0..1.0
        }
    };
    let x = span(&mut points.iter().map(|p| p.0));
    let y = span(&mut points.iter().map(|p| p.1));
    figure(
        "Validation loss against mixer FLOPs per token (seeds in red; Pareto front joined)",
        Axis::values(x, "mixer FLOPs per token (verification scale)"),
        Axis::values(y, "validation loss (exploration)"),
        true,
        |chart| {
            chart
                .draw_series(LineSeries::new(front, BLACK.stroke_width(1)))
                .map_err(err)?
                .label("Pareto front")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
            chart
                .draw_series(points.iter().map(|&(x, y, seed)| {
                    Circle::new((x, y), 4, if seed { RED.filled() } else { BLUE.filled() })
                }))
                .map_err(err)?;
            Ok(())
        },
    )
}

pub fn all(report: &Report) -> PlotResult<Vec<(&'static str, String)>> {
    Ok(vec![
        ("discovery.svg", discovery_curve(report)?),
        ("fitness.svg", fitness_progress(report)?),
        ("loss.svg", loss_curves(report, 5)?),
        ("pareto.svg", quality_against_cost(report)?),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::lifecycle::{Experiment, Phase};
    use crate::core::verification::Rules;

    /// The text of every `<text>` element of an SVG.
    fn labels(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|piece| {
                let start = piece.find('>')? + 1;
                let end = piece.find("</text>")?;
                Some(piece[start..end].trim().to_string())
            })
            .collect()
    }

    #[test]
    fn count_axes_label_whole_numbers_only() {
        let counts = Axis::counts(0.0..5.0, "experiment id");
        assert_eq!(counts.label(3.0), "3");
        assert_eq!(counts.label(0.5), "");
        let values = Axis::values(0.0..1.0, "fitness");
        assert_eq!(values.label(0.1 + 0.2), "0.3");

        // The figures: experiment ids and discoveries are whole numbers on the page.
        let mut experiments = Vec::new();
        for id in 1..=3 {
            let mut e = Experiment::new(id, Stage::Exploration, None, vec![]);
            e.name = format!("e{id}");
            e.phase = Phase::Succeeded;
            e.fitness = Some(0.25 * id as f64);
            experiments.push(e);
        }
        let usage = crate::core::campaign::usage(&experiments, 0);
        let report = Report::build("c", &Rules::with_baseline("e1"), &experiments, usage);
        let fitness = labels(&fitness_progress(&report).unwrap());
        let numbers: Vec<f64> = fitness.iter().filter_map(|l| l.parse().ok()).collect();
        assert!(numbers.contains(&3.0), "{fitness:?}");
        // Fitness stays within 0..1, so a label above 1 is an id and must be whole.
        assert!(
            fitness
                .iter()
                .filter(|l| l.parse::<f64>().is_ok_and(|v| v > 1.0))
                .all(|l| !l.contains('.')),
            "{fitness:?}"
        );
        let discoveries = labels(&discovery_curve(&report).unwrap());
        assert!(discoveries.iter().any(|l| l == "1"), "{discoveries:?}");
    }

    #[test]
    fn the_fitness_axis_covers_every_value_and_the_baseline() {
        let range = fitness_range(&[(1.0, 2.5, true), (2.0, 4.0, false)]);
        assert!(range.start < 0.0 && range.end > 4.0, "{range:?}");
        let below = fitness_range(&[(1.0, -3.0, false)]);
        assert!(below.start < -3.0 && below.end > 0.0, "{below:?}");
        let empty = fitness_range(&[]);
        assert!(empty.start < 0.0 && empty.end > 0.0, "{empty:?}");
    }

    #[test]
    fn the_pareto_front_keeps_what_nothing_beats_on_both_loss_and_cost() {
        // (flops, loss): (1, 3) and (2, 1) are on the front; (3, 2) is beaten by (2, 1) and
        // (1, 4) by (1, 3).
        let points = [
            (3.0, 2.0, false),
            (1.0, 4.0, false),
            (2.0, 1.0, true),
            (1.0, 3.0, false),
        ];
        assert_eq!(pareto_front(&points), vec![(1.0, 3.0), (2.0, 1.0)]);
        assert!(pareto_front(&[]).is_empty());
    }
}
