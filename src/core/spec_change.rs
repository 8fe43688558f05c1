//! Which edits a running campaign accepts. Raising the budget continues it (more experiments,
//! hours or tokens); anything else would change the meaning of what memory already holds —
//! other seeds, another baseline, other training configs make old and new results
//! incomparable — so it is refused with a reason, and the campaign goes on as it was.

use crate::api::CampaignSpec;

#[derive(Debug, Clone, PartialEq)]
pub enum SpecChange {
    Unchanged,
    /// Only the budget changed, and no limit went down.
    BudgetRaised,
    Refused {
        reason: String,
    },
}

pub fn judge(running: &CampaignSpec, edited: &CampaignSpec) -> SpecChange {
    if running == edited {
        return SpecChange::Unchanged;
    }
    let same_but_budget = CampaignSpec {
        budget: running.budget.clone(),
        ..edited.clone()
    };
    if same_but_budget != *running {
        return SpecChange::Refused {
            reason: format!(
                "only spec.budget may change while a campaign runs (changed: {}); create a new Campaign for other settings",
                changed_fields(running, edited).join(", ")
            ),
        };
    }
    let (old, new) = (&running.budget, &edited.budget);
    let lowered = |name: &str, old: Option<f64>, new: Option<f64>| match (old, new) {
        (None, Some(_)) => Some(format!("{name} cannot gain a limit it did not have")),
        (Some(old), Some(new)) if new < old => {
            Some(format!("{name} cannot go down ({old} → {new})"))
        }
        _ => None,
    };
    let problems: Vec<String> = [
        lowered(
            "spec.budget.maxExperiments",
            Some(f64::from(old.max_experiments)),
            Some(f64::from(new.max_experiments)),
        ),
        lowered(
            "spec.budget.maxComputeHours",
            old.max_compute_hours,
            new.max_compute_hours,
        ),
        lowered(
            "spec.budget.maxLlmTokens",
            old.max_llm_tokens.map(|t| t as f64),
            new.max_llm_tokens.map(|t| t as f64),
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    if problems.is_empty() {
        SpecChange::BudgetRaised
    } else {
        SpecChange::Refused {
            reason: format!(
                "a running campaign's budget can only be raised: {}",
                problems.join("; ")
            ),
        }
    }
}

/// Top-level spec fields that differ, by their manifest names.
fn changed_fields(a: &CampaignSpec, b: &CampaignSpec) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(a), serde_json::to_value(b))
    else {
        return vec!["spec".into()];
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| k.as_str() != "budget" && a.get(*k) != b.get(*k))
        .map(|k| format!("spec.{k}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CampaignSpec {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/quickstart.yaml"
        ))
        .unwrap_or_default();
        crate::api::parse_campaign(&text)
            .map(|c| c.spec)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn raising_any_limit_continues_the_campaign() {
        let running = spec();
        assert_eq!(judge(&running, &running.clone()), SpecChange::Unchanged);
        let mut more = running.clone();
        more.budget.max_experiments += 20;
        more.budget.max_compute_hours = Some(2.0);
        more.budget.max_llm_tokens = None;
        assert_eq!(judge(&running, &more), SpecChange::BudgetRaised);
        // One limit raised, the others kept as they were (equal is not lower).
        let mut one = running.clone();
        one.budget.max_experiments += 1;
        assert!(running.budget.max_compute_hours.is_some());
        assert_eq!(judge(&running, &one), SpecChange::BudgetRaised);
    }

    #[test]
    fn lowering_a_limit_is_refused_naming_it() {
        let running = spec();
        let mut less = running.clone();
        less.budget.max_experiments = 5;
        let SpecChange::Refused { reason } = judge(&running, &less) else {
            panic!("lowering must be refused");
        };
        assert!(
            reason.contains("spec.budget.maxExperiments cannot go down (40 → 5)"),
            "{reason}"
        );
        let mut capped = running.clone();
        capped.budget.max_llm_tokens = Some(10);
        let SpecChange::Refused { reason } = judge(&running, &capped) else {
            panic!("a new limit must be refused");
        };
        assert!(
            reason.contains("maxLlmTokens cannot gain a limit"),
            "{reason}"
        );
    }

    #[test]
    fn any_other_edit_is_refused_naming_the_fields() {
        let running = spec();
        let mut edited = running.clone();
        edited.baseline = "retnet".into();
        edited.parallelism = 4;
        edited.budget.max_experiments += 1;
        let SpecChange::Refused { reason } = judge(&running, &edited) else {
            panic!("must be refused");
        };
        assert!(
            reason.contains("(changed: spec.baseline, spec.parallelism)"),
            "the budget is not listed among the changes: {reason}"
        );
    }
}
