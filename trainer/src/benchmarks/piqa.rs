//! PIQA (`piqa`): rows of `goal`, `sol1`, `sol2`, `label` (0 or 1), as published on the
//! Hugging Face hub. Prompt `Question: {goal}\nAnswer:`, choices the two solutions.

use super::rows::Row;
use super::{Doc, Layout, choice_doc};

pub struct Piqa;

impl Layout for Piqa {
    fn name(&self) -> &'static str {
        "piqa"
    }

    fn doc(&self, row: &Row) -> Result<Doc, String> {
        choice_doc(
            format!("Question: {}\nAnswer:", row.string("goal")?),
            vec![row.string("sol1")?.into(), row.string("sol2")?.into()],
            row.index("label")?,
        )
    }
}
