//! WinoGrande (`winogrande`): rows of `sentence` (with one `_`), `option1`, `option2` and
//! `answer` (`"1"` or `"2"`), as `allenai/winogrande` publishes them. Partial scoring, as the
//! harness does: each option fills the blank to make a context, and the part of the sentence
//! after the blank is the continuation scored under both. Only `acc`.

use super::rows::Row;
use super::{Doc, Layout, Request, check_choices};

pub struct Winogrande;

impl Layout for Winogrande {
    fn name(&self) -> &'static str {
        "winogrande"
    }

    fn acc_norm(&self) -> bool {
        false
    }

    fn doc(&self, row: &Row) -> Result<Doc, String> {
        let sentence = row.string("sentence")?;
        let blank = sentence
            .find('_')
            .ok_or("field `sentence` has no blank `_`")?;
        let gold = match row.string("answer")? {
            "1" => 0,
            "2" => 1,
            other => {
                return Err(format!(
                    "field `answer` is `{other}`, expected \"1\" or \"2\""
                ));
            }
        };
        let options = [row.string("option1")?, row.string("option2")?];
        let contexts: Vec<String> = options
            .iter()
            .map(|option| format!("{}{option}", &sentence[..blank]))
            .collect();
        check_choices(
            &options.iter().map(|o| o.to_string()).collect::<Vec<_>>(),
            gold,
        )?;
        let target = sentence[blank + 1..].trim_matches(super::encode::is_python_space);
        Ok(Doc::Choice {
            lengths: contexts.iter().map(|c| c.chars().count()).collect(),
            requests: contexts
                .into_iter()
                .map(|context| Request {
                    context,
                    continuation: format!(" {target}"),
                })
                .collect(),
            gold,
        })
    }
}
