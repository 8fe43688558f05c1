//! The LLM backend: Researcher, Engineer, Analyst and judge over an OpenAI-compatible endpoint.
//! Prompts are templates in `prompts/*.md`; replies are validated JSON (see [`structured`]).
//! When the endpoint stays unreachable or the token budget is spent, and the spec allows it,
//! every later call goes to the evolutionary agents and the reason is reported.

pub mod client;
pub mod redact;
pub mod structured;

use super::{
    AgentError, Agents, Analysis, AnalysisRequest, JudgeRequest, Offline, Proposal,
    ProposalRequest, Repair, RepairRequest, SearchStrategy,
};
use crate::api::campaign::{LlmSpec, RoleSpec};
use client::{ApiKey, Client, LlmError, RoleStats};
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use structured::{Mode, Settings, ask};

const RESEARCHER: &str = include_str!("../../../prompts/researcher.md");
const ENGINEER: &str = include_str!("../../../prompts/engineer.md");
const ANALYST: &str = include_str!("../../../prompts/analyst.md");
const JUDGE: &str = include_str!("../../../prompts/judge.md");

/// Judge weights: performance counts most, then innovation, then simplicity.
pub const JUDGE_WEIGHTS: [f64; 3] = [0.5, 0.3, 0.2];

/// Fills `{{key}}` placeholders in one pass over the template: a value is never scanned again,
/// so an analysis or a program that contains `{{parent_program}}` stays as it was written. A
/// placeholder without a value is left as it is.
pub fn render(template: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let filled = after.find("}}").and_then(|end| {
            let key = &after[..end];
            let (_, value) = values.iter().find(|(name, _)| *name == key)?;
            Some((value, end))
        });
        match filled {
            Some((value, end)) => {
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[derive(Debug, Deserialize, JsonSchema)]
struct ResearcherReply {
    name: String,
    motivation: String,
    program: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct EngineerReply {
    program: String,
    explanation: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct AnalystReply {
    analysis: String,
    problem_summary: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct JudgeReply {
    performance: f64,
    innovation: f64,
    complexity: f64,
    #[allow(dead_code)] // Asked for so the scores are reasoned; not stored.
    rationale: String,
}

pub struct LlmAgents {
    client: Client,
    spec: LlmSpec,
    /// The structured-output form each model on this endpoint settled on, keyed
    /// "<base URL> <model>": an unsupported form is asked once per campaign, not per call.
    modes: BTreeMap<String, Mode>,
    offline: Offline,
    token_limit: Option<u64>,
    /// Tokens spent by earlier runs of this campaign (from memory).
    tokens_before: u64,
    /// Why the campaign fell back to the evolutionary agents, once it has.
    fallback: Option<String>,
    constraints: String,
}

impl LlmAgents {
    /// `key` comes from the environment variable the spec names (locally) or a Secret (cluster).
    pub fn new(
        spec: &LlmSpec,
        key: Option<ApiKey>,
        token_limit: Option<u64>,
        tokens_before: u64,
        constraints: String,
    ) -> Result<LlmAgents, LlmError> {
        let client = Client::for_spec(spec, key)?;
        Ok(LlmAgents {
            client,
            spec: spec.clone(),
            modes: BTreeMap::new(),
            offline: Offline {
                strategy: SearchStrategy::Evolutionary,
            },
            token_limit,
            tokens_before,
            fallback: None,
            constraints,
        })
    }

    fn check_budget(&self) -> Result<(), LlmError> {
        let used = self.tokens_before + self.client.total_tokens();
        match self.token_limit {
            Some(limit) if used >= limit => Err(LlmError::BudgetSpent { used, limit }),
            _ => Ok(()),
        }
    }

    /// Asks `role`; `None` means: use the evolutionary agents for this call.
    fn call<T: serde::de::DeserializeOwned + JsonSchema>(
        &mut self,
        role: &'static str,
        role_spec: &RoleSpec,
        prompt: String,
    ) -> Result<Option<T>, AgentError> {
        if self.fallback.is_some() {
            return Ok(None);
        }
        let model = role_spec
            .model
            .clone()
            .unwrap_or_else(|| self.spec.model.clone());
        let settings = Settings {
            model: &model,
            temperature: role_spec.temperature,
            max_tokens: role_spec.max_tokens,
            max_reasks: self.spec.max_reasks,
        };
        let key = format!("{} {model}", self.spec.base_url);
        let result = self.check_budget().and_then(|()| {
            let before = self.modes.get(&key).copied().unwrap_or(Mode::JsonSchema);
            let mut mode = before;
            let reply = ask::<T>(&mut self.client, role, &settings, &mut mode, prompt);
            if mode != before {
                tracing::info!(model = %model, mode = mode.name(), "structured output negotiated; kept for the rest of the campaign");
            }
            self.modes.insert(key, mode);
            reply
        });
        match result {
            Ok(value) => Ok(Some(value)),
            Err(error) if error.endpoint_down() && self.spec.fallback_to_evolutionary => {
                let reason = format!("{role}: {error}");
                tracing::warn!(%reason, "falling back to the evolutionary agents");
                self.fallback = Some(reason);
                Ok(None)
            }
            Err(error) => Err(AgentError::Failed {
                role,
                message: error.to_string(),
            }),
        }
    }
}

fn or_dash(text: Option<&str>) -> String {
    text.filter(|t| !t.trim().is_empty())
        .unwrap_or("–")
        .to_string()
}

impl Agents for LlmAgents {
    fn name(&self) -> &'static str {
        "llm"
    }

    fn propose(&mut self, request: &ProposalRequest<'_>) -> Result<Proposal, AgentError> {
        let parent = request.parent;
        let references: Vec<String> = request
            .references
            .iter()
            .map(|r| {
                format!(
                    "{} (fitness {}):\n```\n{}\n```",
                    r.name,
                    or_dash(r.fitness.map(|f| format!("{f:.3}")).as_deref()),
                    r.program().unwrap_or_default()
                )
            })
            .collect();
        let cognition: Vec<String> = request
            .cognition
            .iter()
            .map(|e| {
                format!(
                    "- {} ({}): {}\n  Guidance: {}{}",
                    e.title,
                    e.id,
                    e.algorithm.trim(),
                    e.guidance.trim(),
                    e.archspec
                        .as_deref()
                        .map(|s| format!("\n  Sketch:\n```\n{s}\n```"))
                        .unwrap_or_default()
                )
            })
            .collect();
        let tried: Vec<String> = request
            .history
            .iter()
            .filter(|e| !e.motivation.is_empty())
            .rev()
            .take(20)
            .map(|e| format!("- {}", e.motivation.lines().next().unwrap_or_default()))
            .collect();
        let prompt = render(
            RESEARCHER,
            &[
                ("grammar", archspec::GRAMMAR.to_string()),
                ("constraints", self.constraints.clone()),
                ("parent_name", parent.name.clone()),
                (
                    "parent_fitness",
                    or_dash(parent.fitness.map(|f| format!("{f:.3}")).as_deref()),
                ),
                ("parent_analysis", or_dash(parent.analysis.as_deref())),
                ("parent_problem", or_dash(parent.problem_summary.as_deref())),
                (
                    "parent_program",
                    parent.program().unwrap_or_default().to_string(),
                ),
                (
                    "references",
                    if references.is_empty() {
                        "–".into()
                    } else {
                        references.join("\n")
                    },
                ),
                (
                    "cognition",
                    if cognition.is_empty() {
                        "–".into()
                    } else {
                        cognition.join("\n")
                    },
                ),
                (
                    "tried",
                    if tried.is_empty() {
                        "–".into()
                    } else {
                        tried.join("\n")
                    },
                ),
            ],
        );
        let role = self.spec.researcher.clone();
        match self.call::<ResearcherReply>("researcher", &role, prompt)? {
            Some(reply) => {
                let name: String = reply
                    .name
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                            c.to_ascii_lowercase()
                        } else {
                            '-'
                        }
                    })
                    .take(48)
                    .collect();
                Ok(Proposal {
                    name: if name.trim_matches('-').is_empty() {
                        format!("llm-{}", request.experiment)
                    } else {
                        format!("{name}-{}", request.experiment)
                    },
                    motivation: reply.motivation,
                    program: reply.program,
                    operator: Some("llm".into()),
                })
            }
            None => self.offline.propose(request),
        }
    }

    fn repair(&mut self, request: &RepairRequest<'_>) -> Result<Repair, AgentError> {
        let last = request.experiment.attempts.last();
        let prompt = render(
            ENGINEER,
            &[
                ("grammar", archspec::GRAMMAR.to_string()),
                ("constraints", self.constraints.clone()),
                ("attempt", last.map_or(0, |a| a.number).to_string()),
                (
                    "program",
                    last.map(|a| a.program.clone()).unwrap_or_default(),
                ),
                ("error", request.error.to_string()),
            ],
        );
        let role = self.spec.engineer.clone();
        match self.call::<EngineerReply>("engineer", &role, prompt)? {
            Some(reply) => Ok(Repair::Revised {
                program: reply.program,
                note: reply.explanation,
            }),
            None => self.offline.repair(request),
        }
    }

    fn analyse(&mut self, request: &AnalysisRequest<'_>) -> Result<Analysis, AgentError> {
        // The numeric Analyst's text gives the model the numbers it must not invent.
        let numbers = super::analyst::analyse(request);
        let experiment = request.experiment;
        let comparisons: Vec<String> = request
            .parent
            .iter()
            .map(|p| {
                format!(
                    "parent {}: fitness {}",
                    p.name,
                    or_dash(p.fitness.map(|f| format!("{f:.3}")).as_deref())
                )
            })
            .chain(request.siblings.iter().map(|s| {
                format!(
                    "sibling {}: fitness {}",
                    s.name,
                    or_dash(s.fitness.map(|f| format!("{f:.3}")).as_deref())
                )
            }))
            .collect();
        let prompt = render(
            ANALYST,
            &[
                (
                    "experiment",
                    format!("{}: {}", experiment.name, experiment.motivation),
                ),
                (
                    "comparisons",
                    if comparisons.is_empty() {
                        "–".into()
                    } else {
                        comparisons.join("\n")
                    },
                ),
                ("numbers", numbers.analysis.clone()),
            ],
        );
        let role = self.spec.analyst.clone();
        match self.call::<AnalystReply>("analyst", &role, prompt)? {
            Some(reply) => Ok(Analysis {
                analysis: reply.analysis,
                problem_summary: reply.problem_summary,
            }),
            None => Ok(numbers),
        }
    }

    fn judge(&mut self, request: &JudgeRequest<'_>) -> Option<f64> {
        if !self.spec.use_judge {
            return None;
        }
        let experiment = request.experiment;
        let prompt = render(
            JUDGE,
            // The program and its results only: not the proposer's name or motivation, which
            // could argue their own case to the judge.
            &[
                (
                    "program",
                    experiment.program().unwrap_or_default().to_string(),
                ),
                ("numbers", request.numbers.to_string()),
            ],
        );
        let role = self.spec.judge.clone();
        let reply = self
            .call::<JudgeReply>("judge", &role, prompt)
            .ok()
            .flatten()?;
        let scores = [reply.performance, reply.innovation, reply.complexity];
        if scores.iter().any(|s| !s.is_finite()) {
            return None;
        }
        Some(
            scores
                .iter()
                .zip(JUDGE_WEIGHTS)
                .map(|(s, w)| s.clamp(1.0, 10.0) * w)
                .sum(),
        )
    }

    fn tokens_used(&self) -> u64 {
        self.client.total_tokens()
    }

    fn stats(&self) -> BTreeMap<String, RoleStats> {
        self.client
            .stats
            .iter()
            .map(|(role, stats)| (role.to_string(), stats.clone()))
            .collect()
    }

    fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    fn negotiated(&self) -> BTreeMap<String, String> {
        self.modes
            .iter()
            .map(|(key, mode)| (key.clone(), mode.name().to_string()))
            .collect()
    }

    fn restore_negotiated(&mut self, negotiated: &BTreeMap<String, String>) {
        // Only this endpoint's entries: a resumed campaign pointed elsewhere starts afresh.
        let prefix = format!("{} ", self.spec.base_url);
        for (key, name) in negotiated {
            if let (true, Some(mode)) = (key.starts_with(&prefix), Mode::from_name(name)) {
                self.modes.insert(key.clone(), mode);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn placeholders_are_filled_once_and_a_value_is_never_expanded() {
        let template = "parent {{parent_program}}; analysis {{analysis}}; again {{analysis}}";
        let text = render(
            template,
            &[
                ("analysis", "it said {{parent_program}} {{".into()),
                ("parent_program", "SECRET-PARENT".into()),
            ],
        );
        assert_eq!(
            text,
            "parent SECRET-PARENT; analysis it said {{parent_program}} {{; again it said {{parent_program}} {{"
        );
        // Unknown or unclosed placeholders stay as written.
        assert_eq!(render("{{nope}} {{open", &[]), "{{nope}} {{open");
    }
}
