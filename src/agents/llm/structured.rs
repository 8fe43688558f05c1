//! Structured replies: ask for JSON in the strongest form the endpoint supports
//! (`response_format` json_schema, then json_object carrying the schema, then plain
//! json_object, then plain text), pull the JSON out of whatever comes back, validate it with
//! serde, and re-ask with the validation error — a bounded number of times. The form that
//! worked is the caller's to remember (per endpoint and model, across resumes).

use super::client::{ChatRequest, Client, LlmError, Message};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::json;

/// How the endpoint is asked for JSON, strongest first; downgraded when it refuses a form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// `{"type": "json_schema", "json_schema": {...}}`: OpenAI, vLLM, llama.cpp's server.
    JsonSchema,
    /// `{"type": "json_object", "schema": {...}}`: llama-cpp-python and llama.cpp's server
    /// constrain the reply to the schema this way.
    JsonObjectSchema,
    /// `{"type": "json_object"}`: JSON, shape not enforced.
    JsonObject,
    /// No `response_format`: the JSON is found in the text.
    Text,
}

impl Mode {
    pub const ALL: [Mode; 4] = [
        Mode::JsonSchema,
        Mode::JsonObjectSchema,
        Mode::JsonObject,
        Mode::Text,
    ];

    fn downgrade(self) -> Mode {
        match self {
            Mode::JsonSchema => Mode::JsonObjectSchema,
            Mode::JsonObjectSchema => Mode::JsonObject,
            Mode::JsonObject | Mode::Text => Mode::Text,
        }
    }

    /// The name stored in memory and shown in the report.
    pub fn name(self) -> &'static str {
        match self {
            Mode::JsonSchema => "json_schema",
            Mode::JsonObjectSchema => "json_object+schema",
            Mode::JsonObject => "json_object",
            Mode::Text => "text",
        }
    }

    pub fn from_name(name: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|mode| mode.name() == name)
    }

    fn response_format(self, role: &str, schema: &serde_json::Value) -> Option<serde_json::Value> {
        match self {
            Mode::JsonSchema => Some(json!({
                "type": "json_schema",
                "json_schema": {"name": role, "schema": schema, "strict": false}
            })),
            Mode::JsonObjectSchema => Some(json!({"type": "json_object", "schema": schema})),
            Mode::JsonObject => Some(json!({"type": "json_object"})),
            Mode::Text => None,
        }
    }
}

/// Model settings of one request.
pub struct Settings<'a> {
    pub model: &'a str,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    pub max_reasks: u32,
}

/// Asks `role` and returns its reply as `T`.
pub fn ask<T: DeserializeOwned + JsonSchema>(
    client: &mut Client,
    role: &'static str,
    settings: &Settings<'_>,
    mode: &mut Mode,
    prompt: String,
) -> Result<T, LlmError> {
    let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default();
    let mut messages = vec![Message {
        role: "user",
        content: format!(
            "{prompt}\n\nReply with only one JSON object matching this JSON Schema:\n{schema}"
        ),
    }];
    let mut reasks = 0;
    loop {
        let response_format = mode.response_format(role, &schema);
        let request = ChatRequest {
            model: settings.model.to_string(),
            temperature: settings.temperature,
            max_tokens: settings.max_tokens,
            messages: messages.clone(),
            response_format,
        };
        let problem = match client.chat(role, &request) {
            Ok(content) => match parse::<T>(&content) {
                Ok(value) => return Ok(value),
                Err(problem) => {
                    messages.push(Message {
                        role: "assistant",
                        content,
                    });
                    problem
                }
            },
            // The client recognises a refusal of the form by its body, whatever the status; a
            // bare 400 or 422 to a request with a form is most likely the form, too.
            Err(
                error @ (LlmError::UnsupportedFormat { .. }
                | LlmError::Rejected {
                    status: 400 | 422, ..
                }),
            ) if *mode != Mode::Text => {
                let refused = mode.name();
                *mode = mode.downgrade();
                if let LlmError::Rejected { .. } = error {
                    // Counted as an error by the client; it is the negotiation's cost.
                    let stats = client.stats.entry(role).or_default();
                    stats.errors = stats.errors.saturating_sub(1);
                    stats.downgrades += 1;
                }
                tracing::warn!(role, model = settings.model, refused, next = mode.name(), %error, "the endpoint refused the structured-output form; asking more simply");
                continue;
            }
            Err(LlmError::BadReply(problem)) => problem,
            Err(other) => return Err(other),
        };
        if reasks >= settings.max_reasks {
            return Err(LlmError::Malformed {
                reasks,
                last: problem,
            });
        }
        reasks += 1;
        messages.push(Message {
            role: "user",
            content: format!(
                "That reply is not usable: {problem}. Reply again with only the JSON object, every required field present."
            ),
        });
    }
}

/// The JSON object in `content` (bare, fenced, or surrounded by prose) as `T`, or why not.
pub fn parse<T: DeserializeOwned>(content: &str) -> Result<T, String> {
    let trimmed = content.trim();
    let candidate = match (trimmed.find('{'), trimmed.rfind('}')) {
        (Some(start), Some(end)) if start < end => &trimmed[start..=end],
        _ => return Err("no JSON object in the reply".into()),
    };
    let mut deserializer = serde_json::Deserializer::from_str(candidate);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        if path == "." {
            format!("invalid JSON: {}", error.into_inner())
        } else {
            format!("field `{path}`: {}", error.into_inner())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, JsonSchema, PartialEq)]
    struct Reply {
        name: String,
        score: f64,
    }

    #[test]
    fn json_is_found_bare_fenced_or_in_prose() {
        let expected = Reply {
            name: "a".into(),
            score: 2.0,
        };
        for text in [
            r#"{"name": "a", "score": 2}"#,
            "```json\n{\"name\": \"a\", \"score\": 2}\n```",
            "Here is my answer: {\"name\": \"a\", \"score\": 2, \"extra\": true} Hope it helps.",
        ] {
            assert_eq!(parse::<Reply>(text), Ok(expected.clone_like()), "{text}");
        }
        assert!(
            parse::<Reply>("no json here")
                .unwrap_err()
                .contains("no JSON")
        );
        assert!(
            parse::<Reply>(r#"{"name": "a"}"#)
                .unwrap_err()
                .contains("score")
        );
        assert!(
            parse::<Reply>(r#"{"name": 3, "score": 1}"#)
                .unwrap_err()
                .contains("name")
        );
    }

    impl Reply {
        fn clone_like(&self) -> Reply {
            Reply {
                name: self.name.clone(),
                score: self.score,
            }
        }
    }
}
