//! ARC-Easy and ARC-Challenge (`arc_easy`, `arc_challenge`): rows of `question`,
//! `choices: {text: [...], label: [...]}` and `answerKey` (one of the labels), as
//! `allenai/ai2_arc` publishes them. Prompt `Question: {question}\nAnswer:`.

use super::rows::Row;
use super::{Doc, Layout, choice_doc};

pub struct Arc {
    name: &'static str,
}

impl Arc {
    pub const EASY: Arc = Arc { name: "arc_easy" };
    pub const CHALLENGE: Arc = Arc {
        name: "arc_challenge",
    };
}

impl Layout for Arc {
    fn name(&self) -> &'static str {
        self.name
    }

    fn doc(&self, row: &Row) -> Result<Doc, String> {
        let labels = row.strings("choices.label")?;
        let answer = row.string("answerKey")?;
        let gold = labels
            .iter()
            .position(|label| label == answer)
            .ok_or_else(|| {
                format!("answerKey `{answer}` is not one of choices.label {labels:?}")
            })?;
        let choices = row.strings("choices.text")?;
        if choices.len() != labels.len() {
            return Err(format!(
                "choices.text has {} entries but choices.label {}",
                choices.len(),
                labels.len()
            ));
        }
        choice_doc(
            format!("Question: {}\nAnswer:", row.string("question")?),
            choices,
            gold,
        )
    }
}
