//! A generic multiple-choice layout (`multiple_choice`): rows of `context`, `choices` (strings)
//! and `label` (the answer's index), scored like any harness multiple-choice task: each
//! choice after `context` and a space.

use super::rows::Row;
use super::{Doc, Layout, choice_doc};

pub struct MultipleChoice;

impl Layout for MultipleChoice {
    fn name(&self) -> &'static str {
        "multiple_choice"
    }

    fn doc(&self, row: &Row) -> Result<Doc, String> {
        choice_doc(
            row.string("context")?.to_string(),
            row.strings("choices")?,
            row.index("label")?,
        )
    }
}
