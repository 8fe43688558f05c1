//! The Campaign's status as `kubectl get` and `kubectl describe` show it: a phase for the
//! printer column and conditions whose messages say what is happening and why — never
//! "Running" without an explanation. Pure: computed from memory, the ending and any error.

use crate::api::campaign::{CampaignPhase, CampaignStatus, Condition};
use crate::core::budget::Budget;
use crate::core::campaign::Ending;
use crate::core::lifecycle::{Experiment, Phase};

/// What the status is computed from.
pub struct CampaignView<'a> {
    pub experiments: &'a [Experiment],
    pub budget: &'a Budget,
    /// Verified discoveries whose claim stands.
    pub discoveries: u32,
    pub llm_tokens: u64,
    pub ending: Option<&'a Ending>,
    /// The engine stopped on an error (it is restarted from memory).
    pub error: Option<&'a str>,
    /// An edit of the spec that was refused, and why.
    pub refused_edit: Option<&'a str>,
    /// Why the agents or retrieval fell back, once they have.
    pub fallbacks: Vec<String>,
    /// The last generation the engine judged (accepted or refused).
    pub generation: Option<i64>,
    /// The spec the engine runs and the generation it was last accepted at.
    pub accepted: Option<(&'a crate::api::CampaignSpec, Option<i64>)>,
}

/// The new status; conditions keep their transition time while their status stays the same.
pub fn campaign_status(
    previous: Option<&CampaignStatus>,
    view: &CampaignView<'_>,
    now: &str,
) -> CampaignStatus {
    let experiments = view.experiments;
    let finished = experiments.iter().filter(|e| e.phase.is_terminal()).count();
    let training = experiments
        .iter()
        .filter(|e| e.phase == Phase::Training)
        .count();
    let succeeded = experiments
        .iter()
        .filter(|e| e.phase == Phase::Succeeded)
        .count();
    let best = experiments
        .iter()
        .filter(|e| e.phase == Phase::Succeeded)
        .filter_map(|e| e.fitness)
        .fold(None, |best: Option<f64>, f| {
            Some(best.map_or(f, |b| b.max(f)))
        });
    let verified = view.discoveries;
    let phase = match (view.ending, experiments.is_empty()) {
        (Some(Ending::BaselineFailed { .. }), _) => CampaignPhase::Failed,
        (Some(_), _) if training == 0 => CampaignPhase::Completed,
        (_, true) => CampaignPhase::Pending,
        _ => CampaignPhase::Running,
    };
    let activity = format!(
        "{training} trainer(s) running; {finished} of at most {} experiments finished ({succeeded} succeeded){}",
        view.budget.max_experiments,
        best.map_or_else(String::new, |b| format!("; best fitness {b:.3}"))
    );
    let mut conditions = Vec::new();
    let mut set = |type_: &str, status: bool, reason: &str, message: String| {
        conditions.push(Condition {
            type_: type_.into(),
            status: if status { "True" } else { "False" }.into(),
            reason: reason.into(),
            message,
            last_transition_time: now.into(),
            observed_generation: view.generation,
        });
    };
    match (phase, view.ending) {
        (CampaignPhase::Completed | CampaignPhase::Failed, Some(ending)) => {
            set("Progressing", false, "Ended", ending.describe());
            set(
                "Completed",
                phase == CampaignPhase::Completed,
                ending_reason(ending),
                format!("{}; {activity}", ending.describe()),
            );
        }
        (_, Some(ending)) => {
            set(
                "Progressing",
                true,
                "Finishing",
                format!(
                    "{}; waiting for the last trainers: {activity}",
                    ending.describe()
                ),
            );
            set("Completed", false, "Finishing", activity.clone());
        }
        (CampaignPhase::Pending, None) => {
            set(
                "Progressing",
                true,
                "Starting",
                "creating the seed experiments".into(),
            );
            set(
                "Completed",
                false,
                "Running",
                "no experiment has finished yet".into(),
            );
        }
        _ => {
            set(
                "Progressing",
                true,
                if training > 0 {
                    "Training"
                } else {
                    "WaitingForAgents"
                },
                activity.clone(),
            );
            set("Completed", false, "Running", activity.clone());
        }
    }
    match view.error {
        Some(error) => set(
            "Degraded",
            true,
            "EngineRestarting",
            format!("{error}; the engine restarts from the cluster's records"),
        ),
        None if !view.fallbacks.is_empty() => set(
            "Degraded",
            true,
            "AgentsFellBack",
            view.fallbacks.join("; "),
        ),
        None => set("Degraded", false, "Healthy", "no errors".into()),
    }
    match view.refused_edit {
        Some(reason) => set(
            "SpecAccepted",
            false,
            "SpecChangeRefused",
            reason.to_string(),
        ),
        None => set(
            "SpecAccepted",
            true,
            "Accepted",
            "the campaign runs the current spec".into(),
        ),
    }
    crate::api::conditions::keep_transition_times(
        &mut conditions,
        previous.map_or(&[][..], |p| &p.conditions),
    );
    CampaignStatus {
        phase: Some(phase),
        observed_generation: view.generation,
        conditions,
        usage: crate::core::campaign::usage(experiments, view.llm_tokens),
        progress: Some(format!("{finished}/{}", view.budget.max_experiments)),
        best_fitness: best,
        verified_discoveries: verified,
        llm_tokens: view.llm_tokens,
        agents: previous.and_then(|p| p.agents.clone()),
        accepted_spec: view
            .accepted
            .and_then(|(spec, _)| serde_json::to_value(spec).ok()),
        accepted_generation: view.accepted.and_then(|(_, generation)| generation),
    }
}

fn ending_reason(ending: &Ending) -> &'static str {
    match ending {
        Ending::Completed => "StagesCompleted",
        Ending::NothingToVerify => "NothingToVerify",
        Ending::NothingPromoted { .. } => "NothingPromoted",
        Ending::BudgetExhausted { .. } => "BudgetExhausted",
        Ending::BaselineFailed { .. } => "BaselineFailed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::budget::Exhausted;
    use crate::core::lifecycle::Stage;

    fn experiment(id: u64, phase: Phase, fitness: Option<f64>) -> Experiment {
        let mut e = Experiment::new(id, Stage::Exploration, None, vec![]);
        e.phase = phase;
        e.fitness = fitness;
        e
    }

    fn view<'a>(experiments: &'a [Experiment], budget: &'a Budget) -> CampaignView<'a> {
        CampaignView {
            experiments,
            budget,
            discoveries: 0,
            llm_tokens: 0,
            ending: None,
            error: None,
            refused_edit: None,
            fallbacks: Vec::new(),
            generation: Some(3),
            accepted: None,
        }
    }

    fn condition<'a>(status: &'a CampaignStatus, type_: &str) -> &'a Condition {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("no {type_} condition"))
    }

    fn budget() -> Budget {
        Budget {
            max_experiments: 10,
            max_compute_hours: None,
            max_llm_tokens: None,
        }
    }

    #[test]
    fn a_running_campaign_says_what_it_is_doing() {
        let experiments = [
            experiment(1, Phase::Succeeded, Some(0.5)),
            experiment(2, Phase::Succeeded, Some(0.7)),
            experiment(3, Phase::Training, None),
        ];
        let budget = budget();
        let status = campaign_status(None, &view(&experiments, &budget), "t1");
        assert_eq!(status.phase, Some(CampaignPhase::Running));
        assert_eq!(status.progress.as_deref(), Some("2/10"));
        assert_eq!(status.best_fitness, Some(0.7));
        assert_eq!(status.observed_generation, Some(3));
        let progressing = condition(&status, "Progressing");
        assert_eq!(
            (progressing.status.as_str(), progressing.reason.as_str()),
            ("True", "Training")
        );
        assert!(
            progressing.message.contains("1 trainer(s) running"),
            "{}",
            progressing.message
        );
        assert!(
            progressing.message.contains("best fitness 0.700"),
            "{}",
            progressing.message
        );
        assert_eq!(condition(&status, "Degraded").status, "False");
    }

    #[test]
    fn an_ended_campaign_is_completed_with_the_reason_only_when_trainers_stopped() {
        let budget = budget();
        let ending = Ending::BudgetExhausted {
            limit: Exhausted::Experiments,
        };
        let running = [
            experiment(1, Phase::Succeeded, Some(0.5)),
            experiment(2, Phase::Training, None),
        ];
        let mut v = view(&running, &budget);
        v.ending = Some(&ending);
        let status = campaign_status(None, &v, "t1");
        assert_eq!(
            status.phase,
            Some(CampaignPhase::Running),
            "a trainer still runs"
        );
        assert_eq!(condition(&status, "Progressing").reason, "Finishing");
        let done = [
            experiment(1, Phase::Succeeded, Some(0.5)),
            experiment(2, Phase::Failed, None),
        ];
        let mut v = view(&done, &budget);
        v.ending = Some(&ending);
        let status = campaign_status(None, &v, "t2");
        assert_eq!(status.phase, Some(CampaignPhase::Completed));
        let completed = condition(&status, "Completed");
        assert_eq!(
            (completed.status.as_str(), completed.reason.as_str()),
            ("True", "BudgetExhausted")
        );
        assert!(
            completed.message.contains("budget.maxExperiments"),
            "{}",
            completed.message
        );
    }

    #[test]
    fn a_failed_baseline_fails_the_campaign() {
        let budget = budget();
        let ending = Ending::BaselineFailed {
            stage: Stage::Exploration,
            rung: 0,
        };
        let experiments = [experiment(1, Phase::Failed, None)];
        let mut v = view(&experiments, &budget);
        v.ending = Some(&ending);
        let status = campaign_status(None, &v, "t");
        assert_eq!(status.phase, Some(CampaignPhase::Failed));
        assert_eq!(condition(&status, "Completed").status, "False");
        assert!(
            condition(&status, "Completed")
                .message
                .contains("baseline failed")
        );
    }

    #[test]
    fn errors_fallbacks_and_refused_edits_are_conditions_with_their_reasons() {
        let budget = budget();
        let experiments = [experiment(1, Phase::Training, None)];
        let mut v = view(&experiments, &budget);
        v.error = Some("Kubernetes API, writing Experiment x: connection refused");
        v.refused_edit =
            Some("only spec.budget may change while a campaign runs (changed: spec.baseline)");
        let status = campaign_status(None, &v, "t");
        let degraded = condition(&status, "Degraded");
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "EngineRestarting")
        );
        assert!(degraded.message.contains("connection refused"));
        let accepted = condition(&status, "SpecAccepted");
        assert_eq!(
            (accepted.status.as_str(), accepted.reason.as_str()),
            ("False", "SpecChangeRefused")
        );
        let mut v = view(&experiments, &budget);
        v.fallbacks = vec!["the LLM agents fell back: endpoint unreachable".into()];
        let status = campaign_status(None, &v, "t");
        assert_eq!(condition(&status, "Degraded").reason, "AgentsFellBack");
    }

    #[test]
    fn transition_times_move_only_when_a_condition_changes() {
        let budget = budget();
        let experiments = [experiment(1, Phase::Training, None)];
        let first = campaign_status(None, &view(&experiments, &budget), "t1");
        let same = campaign_status(Some(&first), &view(&experiments, &budget), "t2");
        assert_eq!(condition(&same, "Progressing").last_transition_time, "t1");
        let mut v = view(&experiments, &budget);
        v.error = Some("boom");
        let changed = campaign_status(Some(&same), &v, "t3");
        assert_eq!(condition(&changed, "Degraded").last_transition_time, "t3");
        assert_eq!(
            condition(&changed, "Progressing").last_transition_time,
            "t1"
        );
    }
}
