//! Budget accounting: experiments, compute hours and LLM tokens spent against the campaign's
//! limits. The driver adds usage as it happens; the core stops proposing when a limit is hit.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Budget {
    /// Most experiments (exploration and verification together).
    pub max_experiments: u32,
    /// Most trainer wall-clock hours (GPU-hours in the cluster), summed over attempts.
    #[serde(default)]
    pub max_compute_hours: Option<f64>,
    /// Most LLM tokens (prompt and completion) over all agents.
    #[serde(default)]
    pub max_llm_tokens: Option<u64>,
}

/// What has been spent so far.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub experiments: u32,
    pub compute_seconds: f64,
    pub llm_tokens: u64,
}

/// The limit that ended a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exhausted {
    Experiments,
    ComputeHours,
    LlmTokens,
}

impl Exhausted {
    /// The limit in words, for the run's summary and the report.
    pub fn describe(self) -> &'static str {
        match self {
            Exhausted::Experiments => "the experiment limit (budget.maxExperiments) was reached",
            Exhausted::ComputeHours => "the compute limit (budget.maxComputeHours) was reached",
            Exhausted::LlmTokens => "the LLM token limit (budget.maxLlmTokens) was reached",
        }
    }
}

impl Budget {
    /// The first limit reached, if any.
    pub fn exhausted(&self, usage: &Usage) -> Option<Exhausted> {
        if usage.experiments >= self.max_experiments {
            return Some(Exhausted::Experiments);
        }
        if self
            .max_compute_hours
            .is_some_and(|hours| usage.compute_seconds >= hours * 3600.0)
        {
            return Some(Exhausted::ComputeHours);
        }
        if self
            .max_llm_tokens
            .is_some_and(|tokens| usage.llm_tokens >= tokens)
        {
            return Some(Exhausted::LlmTokens);
        }
        None
    }

    /// The fraction of each set limit spent (`experiments`, `compute_hours`, `llm_tokens`);
    /// 1 or more once a limit is reached. A limit of zero counts as spent.
    pub fn spent_fractions(&self, usage: &Usage) -> Vec<(&'static str, f64)> {
        let fraction = |used: f64, limit: f64| if limit > 0.0 { used / limit } else { 1.0 };
        let mut fractions = vec![(
            "experiments",
            fraction(
                f64::from(usage.experiments),
                f64::from(self.max_experiments),
            ),
        )];
        if let Some(hours) = self.max_compute_hours {
            fractions.push((
                "compute_hours",
                fraction(usage.compute_seconds / 3600.0, hours),
            ));
        }
        if let Some(tokens) = self.max_llm_tokens {
            fractions.push((
                "llm_tokens",
                fraction(usage.llm_tokens as f64, tokens as f64),
            ));
        }
        fractions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_ends_the_budget() {
        let budget = Budget {
            max_experiments: 3,
            max_compute_hours: Some(1.0),
            max_llm_tokens: Some(1000),
        };
        let mut usage = Usage::default();
        assert_eq!(budget.exhausted(&usage), None);
        usage.experiments = 3;
        assert_eq!(budget.exhausted(&usage), Some(Exhausted::Experiments));
        usage.experiments = 1;
        usage.compute_seconds = 3600.0;
        assert_eq!(budget.exhausted(&usage), Some(Exhausted::ComputeHours));
        usage.compute_seconds = 0.0;
        usage.llm_tokens = 1000;
        assert_eq!(budget.exhausted(&usage), Some(Exhausted::LlmTokens));
    }

    #[test]
    fn spent_fractions_cover_the_set_limits() {
        let budget = Budget {
            max_experiments: 4,
            max_compute_hours: Some(2.0),
            max_llm_tokens: None,
        };
        let usage = Usage {
            experiments: 3,
            compute_seconds: 1800.0,
            llm_tokens: 5,
        };
        assert_eq!(
            budget.spent_fractions(&usage),
            vec![("experiments", 0.75), ("compute_hours", 0.25)]
        );
        let nothing = Budget {
            max_experiments: 0,
            max_compute_hours: None,
            max_llm_tokens: Some(0),
        };
        assert_eq!(
            nothing.spent_fractions(&Usage::default()),
            vec![("experiments", 1.0), ("llm_tokens", 1.0)]
        );
    }

    #[test]
    fn absent_limits_never_bind() {
        let budget = Budget {
            max_experiments: 10,
            max_compute_hours: None,
            max_llm_tokens: None,
        };
        let usage = Usage {
            experiments: 2,
            compute_seconds: 1e9,
            llm_tokens: u64::MAX,
        };
        assert_eq!(budget.exhausted(&usage), None);
    }
}
