//! HellaSwag (`hellaswag`): rows of `activity_label`, `ctx_a`, `ctx_b`, `endings` (four
//! strings) and `label`, as `Rowan/hellaswag` publishes them, with the harness's
//! preprocessing: the context is `activity_label: ctx_a Ctx_b` (`ctx_b` capitalised as
//! Python's `str.capitalize` does), and both it and each ending lose WikiHow's bracketed
//! artifacts.

use super::encode::is_python_space;
use super::rows::Row;
use super::{Doc, Layout, choice_doc};

pub struct Hellaswag;

impl Layout for Hellaswag {
    fn name(&self) -> &'static str {
        "hellaswag"
    }

    fn doc(&self, row: &Row) -> Result<Doc, String> {
        let context = format!(
            "{} {}",
            row.string("ctx_a")?,
            capitalize(row.string("ctx_b")?)
        );
        let query = preprocess(&format!("{}: {context}", row.string("activity_label")?));
        let endings = row.strings("endings")?;
        choice_doc(
            query,
            endings.iter().map(|ending| preprocess(ending)).collect(),
            row.index("label")?,
        )
    }
}

/// The harness's `preprocess`: strip, `" [title]"` → `". "`, drop `[...]` (not across a
/// line), then `"  "` → `" "` once over.
fn preprocess(text: &str) -> String {
    let text = text.trim_matches(is_python_space).replace(" [title]", ". ");
    drop_brackets(&text).replace("  ", " ")
}

/// `re.sub("\\[.*?\\]", "", text)`: each `[` up to the nearest `]` on the same line.
fn drop_brackets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find([']', '\n']) {
            Some(close) if after.as_bytes()[close] == b']' => rest = &after[close + 1..],
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Python's `str.capitalize`: the first character upper case, the rest lower case.
fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.as_str().to_lowercase().chars())
            .collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preprocessing_is_the_harness_s() {
        // Values from Python: preprocess(" Making tea [title] Boil water. [step] Pour  it. ")
        assert_eq!(
            preprocess(" Making tea [title] Boil water. [step] Pour  it. "),
            "Making tea. Boil water. Pour it."
        );
        assert_eq!(drop_brackets("a [b\n] c [d] e"), "a [b\n] c  e");
        assert_eq!(capitalize("tHE man"), "The man");
        assert_eq!(capitalize(""), "");
    }
}
