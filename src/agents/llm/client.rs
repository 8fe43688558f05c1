//! The HTTP client for OpenAI-compatible endpoints: chat completions and embeddings, retries
//! with exponential backoff and jitter on 429, 5xx, timeouts and refused connections
//! (`Retry-After` wins), replies checked for what real endpoints get wrong (empty content,
//! missing usage, extra fields), and requests, errors, tokens and latency counted per role.
//! The API key is only ever put in the `Authorization` header, and every body quoted in an
//! error is redacted of it (and of anything shaped like a credential) first.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, Instant};

/// An API key that cannot be printed by accident.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: String) -> ApiKey {
        ApiKey(key)
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// No usable reply after every retry (connection refused, timeouts, 429, 5xx).
    #[error("the endpoint is unreachable after {attempts} attempts: {last}")]
    Unreachable { attempts: u32, last: String },
    /// A 4xx other than 429: retrying will not help.
    #[error("the endpoint rejected the request ({status}): {body}")]
    Rejected { status: u16, body: String },
    /// The endpoint does not support the request's `response_format`, whatever status it
    /// chose to say so with (llama-cpp-python answers 500): ask in a simpler form, never retry.
    #[error("the endpoint does not support this response_format ({status}): {body}")]
    UnsupportedFormat { status: u16, body: String },
    /// A 200 whose body is not a chat completion, or whose content is empty.
    #[error("unusable reply: {0}")]
    BadReply(String),
    #[error("the reply never matched the schema after {reasks} re-asks: {last}")]
    Malformed { reasks: u32, last: String },
    #[error("the LLM token budget is spent ({used} of {limit})")]
    BudgetSpent { used: u64, limit: u64 },
    #[error("building the HTTP client: {0}")]
    Client(String),
}

impl LlmError {
    /// Whether the endpoint itself is the problem (the campaign may fall back).
    pub fn endpoint_down(&self) -> bool {
        matches!(
            self,
            LlmError::Unreachable { .. } | LlmError::BudgetSpent { .. }
        )
    }
}

/// Per-role counters, as the report shows them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleStats {
    pub requests: u64,
    pub errors: u64,
    pub retries: u64,
    /// Requests refused for their `response_format` and asked again more simply: the
    /// negotiation's cost, not an error.
    #[serde(default)]
    pub downgrades: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency_ms: u64,
}

impl RoleStats {
    pub fn tokens(&self) -> u64 {
        // Counts come from the endpoint: a server may report any u64.
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub backoff: Duration,
    /// Longest wait honoured from `Retry-After`.
    pub max_wait: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

/// One chat request.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub model: String,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    pub messages: Vec<Message>,
    pub response_format: Option<Value>,
}

pub struct Client {
    http: reqwest::blocking::Client,
    base_url: String,
    key: Option<ApiKey>,
    retry: RetryPolicy,
    pub stats: BTreeMap<&'static str, RoleStats>,
    jitter_state: u64,
}

/// The outcome of one HTTP exchange, before retry decisions.
enum Exchange {
    Ok(Value),
    Retry {
        reason: String,
        wait: Option<Duration>,
    },
    Fatal(LlmError),
}

impl Client {
    /// The client for a campaign's endpoint: its URL, timeout and retry settings.
    pub fn for_spec(
        spec: &crate::api::campaign::LlmSpec,
        key: Option<ApiKey>,
    ) -> Result<Client, LlmError> {
        Client::new(
            &spec.base_url,
            key,
            Duration::from_secs_f64(spec.timeout_seconds),
            RetryPolicy {
                max_retries: spec.max_retries,
                backoff: Duration::from_secs_f64(spec.backoff_seconds.max(0.0)),
                max_wait: Duration::from_secs(60),
            },
        )
    }

    pub fn new(
        base_url: &str,
        key: Option<ApiKey>,
        timeout: Duration,
        retry: RetryPolicy,
    ) -> Result<Client, LlmError> {
        // reqwest is built without a default crypto provider; install ring once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| LlmError::Client(e.to_string()))?;
        Ok(Client {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            key,
            retry,
            stats: BTreeMap::new(),
            jitter_state: 0x2545_F491_4F6C_DD1D,
        })
    }

    pub fn total_tokens(&self) -> u64 {
        self.stats
            .values()
            .map(RoleStats::tokens)
            .fold(0, u64::saturating_add)
    }

    /// Deterministic jitter in [0.5, 1.5): no clock or global RNG needed.
    fn jitter(&mut self) -> f64 {
        self.jitter_state ^= self.jitter_state << 13;
        self.jitter_state ^= self.jitter_state >> 7;
        self.jitter_state ^= self.jitter_state << 17;
        0.5 + (self.jitter_state >> 11) as f64 / (1u64 << 53) as f64
    }

    fn exchange(&self, path: &str, body: &Value) -> Exchange {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base_url))
            .json(body);
        if let Some(ApiKey(key)) = &self.key {
            request = request.bearer_auth(key);
        }
        let response = match request.send() {
            Ok(response) => response,
            Err(error) => {
                let kind = if error.is_timeout() {
                    "timed out"
                } else if error.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                };
                // reqwest's message names the URL, never headers: safe to keep.
                return Exchange::Retry {
                    reason: format!("{kind}: {error}"),
                    wait: None,
                };
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        let text = match read_reply(response) {
            Ok(text) => text,
            Err(ReplyError::TooLarge(message)) => {
                return Exchange::Fatal(LlmError::BadReply(message));
            }
            Err(ReplyError::Read(error)) => {
                return Exchange::Retry {
                    reason: format!("reading the reply: {error}"),
                    wait: None,
                };
            }
        };
        if body.get("response_format").is_some()
            && matches!(status.as_u16(), 400 | 422 | 500..=599)
            && names_response_format(&text)
        {
            return Exchange::Fatal(LlmError::UnsupportedFormat {
                status: status.as_u16(),
                body: self.snippet(&text),
            });
        }
        if status.as_u16() == 429 || status.is_server_error() {
            return Exchange::Retry {
                reason: format!("HTTP {}: {}", status.as_u16(), self.snippet(&text)),
                wait: retry_after,
            };
        }
        if !status.is_success() {
            return Exchange::Fatal(LlmError::Rejected {
                status: status.as_u16(),
                body: self.snippet(&text),
            });
        }
        match serde_json::from_str(&text) {
            Ok(value) => Exchange::Ok(value),
            Err(error) => Exchange::Fatal(LlmError::BadReply(format!(
                "not JSON ({error}): {}",
                self.snippet(&text)
            ))),
        }
    }

    /// POSTs with the retry policy; counts into `role`.
    fn post(&mut self, role: &'static str, path: &str, body: &Value) -> Result<Value, LlmError> {
        let started = Instant::now();
        let mut attempts = 0;
        let result = loop {
            attempts += 1;
            match self.exchange(path, body) {
                Exchange::Ok(value) => break Ok(value),
                Exchange::Fatal(error) => break Err(error),
                Exchange::Retry { reason, wait } => {
                    if attempts > self.retry.max_retries {
                        break Err(LlmError::Unreachable {
                            attempts,
                            last: reason,
                        });
                    }
                    let backoff = self
                        .retry
                        .backoff
                        .mul_f64(2f64.powi(attempts as i32 - 1) * self.jitter());
                    let wait = wait.map_or(backoff, |w| w.min(self.retry.max_wait));
                    tracing::warn!(role, attempt = attempts, %reason, wait_s = wait.as_secs_f64(), "retrying the endpoint");
                    self.stats.entry(role).or_default().retries += 1;
                    std::thread::sleep(wait);
                }
            }
        };
        let stats = self.stats.entry(role).or_default();
        stats.requests += 1;
        stats.latency_ms += started.elapsed().as_millis() as u64;
        match &result {
            Err(LlmError::UnsupportedFormat { .. }) => stats.downgrades += 1,
            Err(_) => stats.errors += 1,
            Ok(_) => {}
        }
        result
    }

    /// One chat completion: the reply's text content.
    pub fn chat(&mut self, role: &'static str, request: &ChatRequest) -> Result<String, LlmError> {
        let mut body = json!({
            "model": request.model,
            "messages": request.messages,
        });
        if let Some(t) = request.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(m) = request.max_tokens {
            body["max_tokens"] = json!(m);
        }
        if let Some(format) = &request.response_format {
            body["response_format"] = format.clone();
        }
        let prompt_chars: usize = request.messages.iter().map(|m| m.content.len()).sum();
        let reply = self.post(role, "/chat/completions", &body)?;
        let content = reply
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        // A missing `usage` is tolerated: estimate four characters a token.
        let (prompt_tokens, completion_tokens) = match reply.get("usage") {
            Some(usage) => (
                usage
                    .get("prompt_tokens")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
                usage
                    .get("completion_tokens")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
            ),
            None => ((prompt_chars / 4) as u64, (content.len() / 4) as u64),
        };
        let no_message = reply
            .pointer("/choices/0/message")
            .is_none()
            .then(|| self.snippet(&reply.to_string()));
        let stats = self.stats.entry(role).or_default();
        stats.prompt_tokens = stats.prompt_tokens.saturating_add(prompt_tokens);
        stats.completion_tokens = stats.completion_tokens.saturating_add(completion_tokens);
        if let Some(quoted) = no_message {
            stats.errors += 1;
            return Err(LlmError::BadReply(format!(
                "no choices[0].message in {quoted}"
            )));
        }
        if content.trim().is_empty() {
            stats.errors += 1;
            return Err(LlmError::BadReply(
                "empty content (a reasoning model may have spent every token thinking; raise maxTokens)".into(),
            ));
        }
        Ok(content)
    }

    /// Embeddings of `inputs`, in order.
    pub fn embed(&mut self, model: &str, inputs: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        let reply = self.post(
            "embeddings",
            "/embeddings",
            &json!({"model": model, "input": inputs}),
        )?;
        let data = reply
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| LlmError::BadReply("no `data` array in the embeddings reply".into()))?;
        let mut vectors = vec![Vec::new(); inputs.len()];
        for (position, item) in data.iter().enumerate() {
            let index = item
                .get("index")
                .and_then(Value::as_u64)
                .map_or(position, |i| i as usize);
            let vector: Vec<f32> = item
                .get("embedding")
                .and_then(Value::as_array)
                .map(|v| {
                    v.iter()
                        .filter_map(Value::as_f64)
                        .map(|x| x as f32)
                        .collect()
                })
                .unwrap_or_default();
            if let Some(slot) = vectors.get_mut(index) {
                *slot = vector;
            }
        }
        if vectors.iter().any(Vec::is_empty) {
            return Err(LlmError::BadReply(format!(
                "the embeddings reply has {} vectors for {} inputs",
                data.len(),
                inputs.len()
            )));
        }
        if let Some(tokens) = reply.pointer("/usage/total_tokens").and_then(Value::as_u64) {
            let stats = self.stats.entry("embeddings").or_default();
            stats.prompt_tokens = stats.prompt_tokens.saturating_add(tokens);
        }
        Ok(vectors)
    }
}

/// The most of a reply body read: a chat reply is KiBs, an embeddings reply for a few hundred
/// inputs a few MiB. A larger one is refused, and no more than this is ever held.
pub const MAX_REPLY_BYTES: usize = 16 << 20;

enum ReplyError {
    TooLarge(String),
    Read(std::io::Error),
}

/// The reply's body as text, read up to [`MAX_REPLY_BYTES`] (refused unread when its
/// `Content-Length` says more).
fn read_reply(response: reqwest::blocking::Response) -> Result<String, ReplyError> {
    let declared = response.content_length();
    if let Some(length) = declared.filter(|&length| length > MAX_REPLY_BYTES as u64) {
        return Err(ReplyError::TooLarge(format!(
            "the reply is {length} bytes, more than the {MAX_REPLY_BYTES} read from an endpoint"
        )));
    }
    let capacity = declared.map_or(64 << 10, |length| length as usize);
    let mut bytes = Vec::with_capacity(capacity.min(MAX_REPLY_BYTES));
    response
        .take(MAX_REPLY_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(ReplyError::Read)?;
    if bytes.len() > MAX_REPLY_BYTES {
        return Err(ReplyError::TooLarge(format!(
            "the reply is longer than the {MAX_REPLY_BYTES} bytes read from an endpoint"
        )));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Whether an error body is about the request's structured-output form. Servers say so in
/// their own words and with their own status: OpenAI and vLLM with 400, llama.cpp's server
/// with 400 or 500, llama-cpp-python with 500 and pydantic's `Input should be 'text' or
/// 'json_object'`. A body about something else (an outage, a context overflow) is not.
pub fn names_response_format(body: &str) -> bool {
    let body = body.to_ascii_lowercase();
    [
        "response_format",
        "response format",
        "json_schema",
        "json_object",
        "structured output",
    ]
    .iter()
    .any(|phrase| body.contains(phrase))
}

impl Client {
    /// The first 300 characters of a body, for error messages, redacted of the key and of
    /// credential-shaped words before it is cut (a key cut in half would leak its start).
    fn snippet(&self, text: &str) -> String {
        let key = self.key.as_ref().map(|ApiKey(key)| key.as_str());
        snippet(&super::redact::redact(text, key))
    }
}

/// The first 300 characters of `text`.
fn snippet(text: &str) -> String {
    let trimmed = text.trim();
    match trimmed.char_indices().nth(300) {
        Some((end, _)) => format!("{}…", &trimmed[..end]),
        None => trimmed.to_string(),
    }
}
