//! Retrieval through an OpenAI-compatible `/v1/embeddings` endpoint: every entry's trigger is
//! embedded once at start, each query on demand, and entries are ranked by cosine similarity.

use super::embedding::{TextEmbedder, cosine};
use super::{CognitionError, Entry, Retriever};
use crate::agents::llm::client::Client;
use std::sync::Mutex;

pub struct EndpointRetriever {
    client: Mutex<Client>,
    model: String,
    entries: Vec<Vec<f32>>,
}

fn failed(error: impl std::fmt::Display) -> CognitionError {
    CognitionError::Invalid {
        origin: "embeddings endpoint".into(),
        message: error.to_string(),
    }
}

impl EndpointRetriever {
    /// Embeds every entry's trigger (in batches of 32).
    pub fn new(
        mut client: Client,
        model: &str,
        entries: &[Entry],
    ) -> Result<EndpointRetriever, CognitionError> {
        let mut vectors: Vec<Vec<f32>> = Vec::with_capacity(entries.len());
        for batch in entries.chunks(32) {
            let texts: Vec<String> = batch.iter().map(|e| e.trigger.clone()).collect();
            let embedded = client.embed(model, &texts).map_err(failed)?;
            if embedded.len() != texts.len() {
                return Err(failed(format!(
                    "asked for {} embeddings, got {}",
                    texts.len(),
                    embedded.len()
                )));
            }
            vectors.extend(embedded);
        }
        let size = vectors.first().map_or(0, Vec::len);
        if let Some((index, vector)) = vectors
            .iter()
            .enumerate()
            .find(|(_, v)| v.len() != size || v.is_empty())
        {
            return Err(failed(format!(
                "embedding of entry `{}` has {} dimensions, the first has {size}",
                entries[index].id,
                vector.len()
            )));
        }
        Ok(EndpointRetriever {
            client: Mutex::new(client),
            model: model.to_string(),
            entries: vectors,
        })
    }
}

impl Retriever for EndpointRetriever {
    fn name(&self) -> &'static str {
        "endpoint"
    }

    fn scores(&self, query: &str) -> Result<Vec<f64>, CognitionError> {
        let mut client = self
            .client
            .lock()
            .map_err(|_| failed("the client lock is poisoned"))?;
        let query = client
            .embed(&self.model, &[query.to_string()])
            .map_err(failed)?
            .pop()
            .unwrap_or_default();
        let size = self.entries.first().map_or(0, Vec::len);
        if query.len() != size {
            return Err(failed(format!(
                "the query embedding has {} dimensions, the entries' have {size}",
                query.len()
            )));
        }
        Ok(self.entries.iter().map(|e| cosine(&query, e)).collect())
    }
}

/// Embeds texts through the endpoint (motivation novelty).
pub struct EndpointEmbedder {
    pub client: Client,
    pub model: String,
}

impl TextEmbedder for EndpointEmbedder {
    fn embed(&mut self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        self.client
            .embed(&self.model, texts)
            .map_err(|e| e.to_string())
    }
}
