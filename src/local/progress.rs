//! What `archlab run` shows: a campaign bar (experiments ended of the budget, best fitness),
//! one bar per running trainer (step, loss), and a line per ended experiment. Without a
//! terminal the bars are hidden and the lines go to stderr alone.

use crate::core::lifecycle::{Experiment, ExperimentId, Outcome, Phase};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;

pub struct Display {
    multi: MultiProgress,
    campaign: ProgressBar,
    runs: BTreeMap<(ExperimentId, u32), ProgressBar>,
    reported: HashSet<ExperimentId>,
    notices: HashSet<String>,
    visible: bool,
}

impl Display {
    pub fn new(budget: u32, quiet: bool) -> Display {
        let visible = !quiet && std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let campaign = multi.add(ProgressBar::new(u64::from(budget)));
        campaign.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} experiments  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        campaign.set_prefix("campaign");
        Display {
            multi,
            campaign,
            runs: BTreeMap::new(),
            reported: HashSet::new(),
            notices: HashSet::new(),
            visible,
        }
    }

    /// A line above the bars (or on stderr when they are hidden).
    pub fn line(&self, text: &str) {
        if self.visible {
            let _ = self.multi.println(text);
        } else {
            eprintln!("{text}");
        }
    }

    /// A line shown once however often it is raised.
    pub fn notice_once(&mut self, text: &str) {
        if self.notices.insert(text.to_string()) {
            self.line(text);
        }
    }

    pub fn start_run(&mut self, experiment: ExperimentId, attempt: u32, name: &str, steps: usize) {
        let bar = self.multi.add(ProgressBar::new(steps as u64));
        bar.set_style(
            ProgressStyle::with_template(
                "  {prefix:32} {bar:24.green/white} step {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let mut label = format!("e{experiment} {name} #{attempt}");
        label.truncate(32);
        bar.set_prefix(label);
        self.runs.insert((experiment, attempt), bar);
    }

    pub fn progress(&self, experiment: ExperimentId, attempt: u32, step: usize, loss: f64) {
        if let Some(bar) = self.runs.get(&(experiment, attempt)) {
            bar.set_position(step as u64);
            bar.set_message(format!("loss {loss:.3}"));
        }
    }

    pub fn end_run(&mut self, experiment: ExperimentId, attempt: u32) {
        if let Some(bar) = self.runs.remove(&(experiment, attempt)) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }

    /// Updates the campaign bar and prints a line for each experiment that ended since the
    /// last call.
    pub fn update(&mut self, experiments: &[Experiment], discoveries: u32) {
        let ended = experiments.iter().filter(|e| e.phase.is_terminal()).count();
        self.campaign.set_position(ended as u64);
        let best = experiments
            .iter()
            .filter_map(|e| e.fitness)
            .max_by(f64::total_cmp);
        self.campaign.set_message(format!(
            "best fitness {}  verified wins {discoveries}",
            best.map_or_else(|| "-".into(), |b| format!("{b:.3}"))
        ));
        for experiment in experiments.iter().filter(|e| e.phase.is_terminal()) {
            if self.reported.insert(experiment.id) {
                self.line(&describe(experiment));
            }
        }
    }

    /// Marks experiments that had already ended before this run as reported.
    pub fn skip_existing(&mut self, experiments: &[Experiment]) {
        for experiment in experiments.iter().filter(|e| e.phase.is_terminal()) {
            self.reported.insert(experiment.id);
        }
    }

    pub fn finish(&self) {
        self.campaign.finish_and_clear();
    }
}

/// One line for an ended experiment.
pub fn describe(experiment: &Experiment) -> String {
    let attempts = experiment.attempts.len();
    let retries = if attempts > 1 {
        format!(" after {attempts} attempts")
    } else {
        String::new()
    };
    match (experiment.phase, experiment.summary()) {
        (Phase::Succeeded, Some(summary)) => {
            let accuracy: Vec<String> = summary
                .accuracy
                .iter()
                .map(|(task, a)| format!("{task} {a:.3}"))
                .collect();
            format!(
                "✓ e{} {:<28} fitness {}  val loss {:.3}  {}{retries}",
                experiment.id,
                experiment.name,
                experiment
                    .fitness
                    .map_or_else(|| "-".into(), |f| format!("{f:.3}")),
                summary.val_loss,
                accuracy.join(" ")
            )
        }
        _ => {
            let reason = experiment
                .attempts
                .last()
                .and_then(|a| a.outcome.as_ref())
                .map(Outcome::describe)
                .unwrap_or_else(|| "no attempt".into());
            let first_line = reason.lines().next().unwrap_or_default().to_string();
            format!(
                "✗ e{} {:<28} failed{retries}: {first_line}",
                experiment.id, experiment.name
            )
        }
    }
}
