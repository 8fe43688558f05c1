//! Context and continuation tokens, split as lm-evaluation-harness splits them
//! (`TemplateLM.loglikelihood` and `_encode_pair`, v0.4): trailing whitespace of the context
//! moves to the continuation, the whole text is encoded once and the continuation is what
//! follows the context's own tokens; an empty context becomes the end-of-text token.

use crate::tokenizer::TextTokenizer;
use std::sync::Arc;

/// What turns benchmark text into the model's tokens.
#[derive(Debug, Clone)]
pub enum BenchTokenizer {
    Text(Arc<TextTokenizer>),
    /// A byte-level model: UTF-8 bytes; an empty context is the byte 0.
    Bytes,
}

/// One request's tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    pub context: Vec<u32>,
    pub continuation: Vec<u32>,
}

impl BenchTokenizer {
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        match self {
            BenchTokenizer::Text(tokenizer) => tokenizer.encode(text),
            BenchTokenizer::Bytes => Ok(text.bytes().map(u32::from).collect()),
        }
    }

    /// The token an empty context stands for (the harness's `prefix_token_id`).
    fn prefix_token(&self) -> u32 {
        match self {
            BenchTokenizer::Text(tokenizer) => tokenizer.end_of_text,
            BenchTokenizer::Bytes => 0,
        }
    }

    /// The harness's split of one `(context, continuation)` request.
    pub fn encode_pair(&self, context: &str, continuation: &str) -> Result<Tokenized, String> {
        if context.is_empty() {
            let continuation = self.encode(continuation)?;
            let prefix = self.prefix_token();
            return Ok(if continuation.first() == Some(&prefix) {
                Tokenized {
                    context: continuation[..1].to_vec(),
                    continuation: continuation[1..].to_vec(),
                }
            } else {
                Tokenized {
                    context: vec![prefix],
                    continuation,
                }
            });
        }
        let kept = context.trim_end_matches(is_python_space);
        let (context, continuation) = if kept.len() < context.len() {
            (kept, format!("{}{continuation}", &context[kept.len()..]))
        } else {
            (context, continuation.to_string())
        };
        let whole = self.encode(&format!("{context}{continuation}"))?;
        let context_tokens = self.encode(context)?;
        let continuation_tokens = whole.get(context_tokens.len()..).unwrap_or(&[]).to_vec();
        Ok(Tokenized {
            context: context_tokens,
            continuation: continuation_tokens,
        })
    }
}

/// Python's `str.isspace`, which `str.rstrip()` strips: Unicode White_Space and the four
/// information separators U+001C..U+001F.
pub(crate) fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_spaces_of_the_context_move_to_the_continuation() {
        let bytes = BenchTokenizer::Bytes;
        let pair = bytes.encode_pair("Answer: \u{1f}", "yes").expect("bytes");
        assert_eq!(pair.context, b"Answer:".map(u32::from).to_vec());
        assert_eq!(pair.continuation, b" \x1fyes".map(u32::from).to_vec());
        let empty = bytes.encode_pair("", " no").expect("bytes");
        assert_eq!(empty.context, vec![0]);
        assert_eq!(empty.continuation, b" no".map(u32::from).to_vec());
    }
}
