//! The built-in lexical embedding: TF-IDF vectors (sublinear term frequency, unigrams and
//! bigrams of lightly stemmed words, stop words dropped) compared by cosine similarity.
//! Needs no files; scores are in [0, 1], so a similarity threshold means the same for any query.

use super::Entry;
use std::collections::HashMap;

/// Words too common in this domain's prose to discriminate between entries.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "does", "for", "from",
    "has", "have", "how", "if", "in", "into", "is", "it", "its", "no", "not", "of", "on", "or",
    "so", "such", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this",
    "those", "to", "too", "was", "were", "what", "when", "where", "which", "while", "with",
    "without", "would", "you", "your", "we", "our", "one", "two", "more", "most", "very", "only",
    "also", "even", "after", "before", "over", "under", "about", "each", "other", "any", "all",
    "some", "model", "models", "layer", "layers",
];

/// Lowercased, stemmed content words.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .map(|w| stem(&w))
        .collect()
}

/// A light suffix stripper: enough to match "forgets"/"forgetting", "keys"/"key".
fn stem(word: &str) -> String {
    let strip = |word: &str, suffix: &str, min_stem: usize| -> Option<String> {
        word.strip_suffix(suffix)
            .filter(|stem| stem.len() >= min_stem)
            .map(str::to_string)
    };
    strip(word, "ies", 3)
        .map(|s| s + "y")
        .or_else(|| strip(word, "ing", 4))
        .or_else(|| strip(word, "ed", 4))
        .or_else(|| strip(word, "es", 4).filter(|s| s.ends_with(['s', 'x', 'h'])))
        .or_else(|| {
            if word.ends_with("ss") {
                None
            } else {
                strip(word, "s", 3)
            }
        })
        .unwrap_or_else(|| word.to_string())
}

/// Unigrams and adjacent-word bigrams.
fn terms(text: &str) -> Vec<String> {
    let words = words(text);
    let mut terms = words.clone();
    terms.extend(
        words
            .windows(2)
            .map(|pair| format!("{} {}", pair[0], pair[1])),
    );
    terms
}

/// The text an entry is indexed by: its trigger, tags and title.
pub fn indexed_text(entry: &Entry) -> String {
    format!(
        "{} {} {}",
        entry.trigger,
        entry.tags.join(" ").replace('-', " "),
        entry.title
    )
}

#[derive(Debug, Clone)]
pub struct LexicalIndex {
    idf: HashMap<String, f64>,
    documents: Vec<HashMap<String, f64>>,
}

impl LexicalIndex {
    pub fn build(entries: &[Entry]) -> LexicalIndex {
        let texts: Vec<String> = entries.iter().map(indexed_text).collect();
        LexicalIndex::from_texts(&texts)
    }

    /// An index over arbitrary documents (motivations, summaries).
    pub fn from_texts(texts: &[String]) -> LexicalIndex {
        let counts: Vec<HashMap<String, usize>> =
            texts.iter().map(|text| term_counts(text)).collect();
        let n = counts.len() as f64;
        let mut document_frequency: HashMap<String, usize> = HashMap::new();
        for document in &counts {
            for term in document.keys() {
                *document_frequency.entry(term.clone()).or_insert(0) += 1;
            }
        }
        let idf: HashMap<String, f64> = document_frequency
            .into_iter()
            .map(|(term, df)| (term, ((1.0 + n) / (1.0 + df as f64)).ln() + 1.0))
            .collect();
        let documents = counts
            .iter()
            .map(|document| weigh(document, &idf))
            .collect();
        LexicalIndex { idf, documents }
    }

    /// Cosine similarity of the query to every document, in document order.
    pub fn scores(&self, query: &str) -> Vec<f64> {
        let query = weigh(&term_counts(query), &self.idf);
        self.documents
            .iter()
            .map(|document| {
                query
                    .iter()
                    .map(|(term, weight)| weight * document.get(term).copied().unwrap_or(0.0))
                    .sum()
            })
            .collect()
    }
}

fn term_counts(text: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for term in terms(text) {
        *counts.entry(term).or_insert(0) += 1;
    }
    counts
}

/// Unit-length TF-IDF vector with sublinear term frequency; unknown terms are dropped.
fn weigh(counts: &HashMap<String, usize>, idf: &HashMap<String, f64>) -> HashMap<String, f64> {
    let mut vector: HashMap<String, f64> = counts
        .iter()
        .filter_map(|(term, &count)| {
            idf.get(term)
                .map(|idf| (term.clone(), (1.0 + (count as f64).ln()) * idf))
        })
        .collect();
    let norm = vector.values().map(|w| w * w).sum::<f64>().sqrt();
    if norm > 0.0 {
        vector.values_mut().for_each(|w| *w /= norm);
    }
    vector
}
