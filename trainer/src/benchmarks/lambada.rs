//! LAMBADA (`lambada_openai`): rows of `text`, as `EleutherAI/lambada_openai` publishes them.
//! The context is every word but the last (split on single spaces), the continuation a space
//! and the last word; `acc` asks whether greedy decoding gives it, and perplexity is
//! `exp(-mean log-likelihood)`.

use super::rows::Row;
use super::{Doc, Layout, Request};

pub struct Lambada;

impl Layout for Lambada {
    fn name(&self) -> &'static str {
        "lambada_openai"
    }

    fn acc_norm(&self) -> bool {
        false
    }

    fn doc(&self, row: &Row) -> Result<Doc, String> {
        let text = row.string("text")?;
        let Some((context, last)) = text.rsplit_once(' ') else {
            return Err("field `text` is one word; LAMBADA needs a context and a last word".into());
        };
        if context.is_empty() || last.is_empty() {
            return Err(
                "field `text` needs words before the last, and a last word after a single space"
                    .into(),
            );
        }
        Ok(Doc::Continuation(Request {
            context: context.to_string(),
            continuation: format!(" {last}"),
        }))
    }
}
