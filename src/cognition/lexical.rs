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

/// A TF-IDF index that grows (and revises) one keyed document at a time, for texts that keep
/// coming: a campaign's motivations. Terms are interned and document frequencies kept, so a
/// query costs one pass over the stored term weights, with no string hashing per document.
/// Scores equal those of [`LexicalIndex::from_texts`] over the documents plus the query (the
/// query is one of the documents its IDF is computed over).
#[derive(Debug, Default, Clone)]
pub struct GrowingIndex {
    term_ids: HashMap<String, u32>,
    /// Documents containing each term.
    document_frequency: Vec<u32>,
    /// Per document: its term ids (ascending) with their sublinear term frequencies.
    documents: Vec<Vec<(u32, f64)>>,
    /// Per document: the text indexed (an unchanged text is not indexed again).
    texts: Vec<String>,
    /// Document position per key.
    positions: HashMap<u64, usize>,
}

fn sublinear(count: usize) -> f64 {
    1.0 + (count as f64).ln()
}

impl GrowingIndex {
    /// Indexes `text` under `key`, replacing what `key` held.
    pub fn upsert(&mut self, key: u64, text: &str) {
        if let Some(&position) = self.positions.get(&key)
            && self.texts[position] == text
        {
            return;
        }
        let mut terms: Vec<(u32, f64)> = term_counts(text)
            .into_iter()
            .map(|(term, count)| {
                let next = self.term_ids.len() as u32;
                let id = *self.term_ids.entry(term).or_insert(next);
                if id as usize == self.document_frequency.len() {
                    self.document_frequency.push(0);
                }
                (id, sublinear(count))
            })
            .collect();
        terms.sort_unstable_by_key(|&(id, _)| id);
        for &(id, _) in &terms {
            self.document_frequency[id as usize] += 1;
        }
        match self.positions.get(&key) {
            Some(&position) => {
                let old = std::mem::replace(&mut self.documents[position], terms);
                for (id, _) in old {
                    self.document_frequency[id as usize] -= 1;
                }
                self.texts[position] = text.to_string();
            }
            None => {
                self.positions.insert(key, self.documents.len());
                self.documents.push(terms);
                self.texts.push(text.to_string());
            }
        }
    }

    /// Cosine similarity of `query` to the document of each of `keys` (0 for a key not
    /// indexed), with IDF over every indexed document but `except`'s, plus the query.
    pub fn scores(&self, query: &str, keys: &[u64], except: Option<u64>) -> Vec<f64> {
        let excluded = except.and_then(|key| self.positions.get(&key).copied());
        let mut frequency: Vec<i64> = self
            .document_frequency
            .iter()
            .map(|&df| i64::from(df))
            .collect();
        if let Some(position) = excluded {
            for &(id, _) in &self.documents[position] {
                frequency[id as usize] -= 1;
            }
        }
        let mut only_in_query = Vec::new();
        let mut query_terms = Vec::new();
        for (term, count) in term_counts(query) {
            match self.term_ids.get(&term) {
                Some(&id) => {
                    frequency[id as usize] += 1;
                    query_terms.push((id as usize, sublinear(count)));
                }
                None => only_in_query.push(sublinear(count)),
            }
        }
        let n = (self.documents.len() - usize::from(excluded.is_some()) + 1) as f64;
        let idf_of = |df: i64| ((1.0 + n) / (1.0 + df as f64)).ln() + 1.0;
        // Once per query and term, not per document term: the logarithms dominate otherwise.
        let idf: Vec<f64> = frequency.iter().map(|&df| idf_of(df)).collect();
        // The query's vector, dense over the indexed terms; terms only the query has
        // (document frequency 1) count towards its norm.
        let mut query_weights = vec![0.0; frequency.len()];
        let mut norm: f64 = only_in_query
            .iter()
            .map(|tf| (tf * idf_of(1)).powi(2))
            .sum();
        for &(id, tf) in &query_terms {
            let weight = tf * idf[id];
            query_weights[id] = weight;
            norm += weight * weight;
        }
        let norm = norm.sqrt();
        let similarity = |position: usize| {
            let (mut dot, mut document_norm) = (0.0, 0.0);
            for &(id, tf) in &self.documents[position] {
                let weight = tf * idf[id as usize];
                dot += weight * query_weights[id as usize];
                document_norm += weight * weight;
            }
            if norm == 0.0 || dot == 0.0 {
                0.0
            } else {
                dot / (norm * document_norm.sqrt())
            }
        };
        // Memory lists one key per attempt: each document is scored once.
        let mut scored: Vec<Option<f64>> = vec![None; self.documents.len()];
        keys.iter()
            .map(|key| match self.positions.get(key) {
                Some(&position) => *scored[position].get_or_insert_with(|| similarity(position)),
                None => 0.0,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXTS: [&str; 4] = [
        "overwrite stale associations with an error-correcting write to fix recall",
        "a data-dependent per-key forget gate keeps recent keys",
        "add a short convolution before the keys to sharpen recall of recent tokens",
        "overwrite stale keys with the delta rule",
    ];

    #[test]
    fn a_growing_index_scores_as_an_index_built_over_the_same_texts_and_the_query() {
        let query = "Overwrite stale associations with an error-correcting write to fix recall.";
        let mut texts: Vec<String> = TEXTS.iter().map(|t| t.to_string()).collect();
        texts.push(query.to_string());
        let expected = LexicalIndex::from_texts(&texts).scores(query);

        let mut index = GrowingIndex::default();
        // Key 9 first holds another text, then is revised: its old terms must not count.
        index.upsert(9, "unrelated words about mixture routing");
        for (key, text) in TEXTS.iter().enumerate() {
            index.upsert(key as u64, text);
        }
        index.upsert(9, "a motivation being proposed now");
        let scores = index.scores(query, &[0, 1, 2, 3, 42], Some(9));
        for (got, want) in scores.iter().zip(&expected[..4]) {
            assert!((got - want).abs() < 1e-12, "{scores:?} vs {expected:?}");
        }
        assert!(scores[0] > 0.99, "the same words: {scores:?}");
        assert_eq!(scores[4], 0.0, "a key never indexed");
        // Without the exclusion, key 9's document changes the IDF, and so the scores.
        let with_nine = index.scores(query, &[3], None);
        assert!(
            (with_nine[0] - scores[3]).abs() > 1e-9,
            "{with_nine:?} {scores:?}"
        );
    }
}
