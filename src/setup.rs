//! What both bodies build from a Campaign before an engine can run: the agents, the cognition
//! retriever and the motivation embedder. The API key arrives from the caller (an environment
//! variable locally, a Secret in the cluster) and goes only into the endpoint clients.

use crate::agents::llm::LlmAgents;
use crate::agents::llm::client::{ApiKey, Client};
use crate::agents::{Agents, Offline, SearchStrategy};
use crate::api::Campaign;
use crate::api::campaign::{AgentBackend, EmbedderKind, LlmSpec};
use crate::cognition::embedding::TextEmbedder;
use crate::cognition::endpoint::{EndpointEmbedder, EndpointRetriever};
use crate::cognition::{Base, Retriever, minilm};
use crate::engine::Cognition;
use anyhow::{Result, bail};
use std::path::PathBuf;

/// The endpoint client shared by agents and embeddings.
pub fn llm_client(llm: &LlmSpec, key: Option<ApiKey>) -> Result<Client> {
    Client::for_spec(llm, key).map_err(|e| anyhow::anyhow!("spec.agents.llm: {e}"))
}

/// The cognition base and retriever the campaign configures.
pub fn cognition(campaign: &Campaign, key: Option<ApiKey>) -> Result<Cognition> {
    let spec = &campaign.spec.cognition;
    let dirs: Vec<PathBuf> = spec.extra_dirs.iter().map(PathBuf::from).collect();
    let base = Base::load(&dirs)?;
    let retriever: Box<dyn Retriever> = match spec.embedder {
        EmbedderKind::Lexical => Box::new(base.lexical()),
        EmbedderKind::Minilm => {
            let dir = minilm::default_dir();
            Box::new(minilm::MiniLm::load(&dir, &base.entries).map_err(|e| {
                anyhow::anyhow!(
                    "spec.cognition.embedder: minilm: {e}; fetch it with scripts/fetch-minilm.sh"
                )
            })?)
        }
        EmbedderKind::Endpoint => {
            let llm = campaign.spec.agents.llm.as_ref().ok_or_else(|| {
                anyhow::anyhow!("spec.cognition.embedder: `endpoint` needs spec.agents.llm")
            })?;
            let model = llm.embeddings_model.as_deref().unwrap_or_default();
            Box::new(
                EndpointRetriever::new(llm_client(llm, key)?, model, &base.entries)
                    .map_err(|e| anyhow::anyhow!("spec.cognition.embedder: {e}"))?,
            )
        }
    };
    Ok(Cognition {
        base,
        retriever,
        top_k: spec.top_k,
        min_score: spec.min_score,
    })
}

/// The campaign's constraints in words, for LLM prompts.
fn constraints_text(campaign: &Campaign) -> String {
    let spec = &campaign.spec;
    let train = &spec.stages.exploration.train;
    format!(
        "- cost in the sequence length at most `{:?}` (linear < window < quadratic)\n- d_model {} and sequence length {} at exploration\n- at most {} parameters per mixer\n",
        spec.constraints.max_complexity,
        train.model.d_model,
        train.data.seq_len,
        spec.constraints.max_params_or_default()
    )
}

/// The agents the campaign configures (`strategy` overrides them with an offline search).
pub fn agents(
    campaign: &Campaign,
    strategy: Option<SearchStrategy>,
    tokens_before: u64,
    key: Option<ApiKey>,
) -> Result<Box<dyn Agents>> {
    if let Some(strategy) = strategy {
        return Ok(Box::new(Offline { strategy }));
    }
    match campaign.spec.agents.backend {
        AgentBackend::Evolutionary => Ok(Box::new(Offline {
            strategy: SearchStrategy::Evolutionary,
        })),
        AgentBackend::Llm => {
            let Some(llm) = &campaign.spec.agents.llm else {
                bail!("spec.agents.llm: `backend: llm` needs an `llm` block");
            };
            let agents = LlmAgents::new(
                llm,
                key,
                campaign.spec.budget.max_llm_tokens,
                tokens_before,
                constraints_text(campaign),
            )
            .map_err(|e| anyhow::anyhow!("spec.agents.llm: {e}"))?;
            Ok(Box::new(agents))
        }
    }
}

/// The endpoint embedder for the motivation-novelty check, when the LLM agents name an
/// embeddings model.
pub fn motivation_embedder(
    campaign: &Campaign,
    key: Option<ApiKey>,
) -> Result<Option<Box<dyn TextEmbedder>>> {
    match &campaign.spec.agents.llm {
        Some(llm) if campaign.spec.agents.backend == AgentBackend::Llm => {
            match &llm.embeddings_model {
                Some(model) => Ok(Some(Box::new(EndpointEmbedder {
                    client: llm_client(llm, key)?,
                    model: model.clone(),
                }))),
                None => Ok(None),
            }
        }
        _ => Ok(None),
    }
}
