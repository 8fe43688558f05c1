//! The cognition base: one YAML entry per paper, retrieved by the similarity of an Analyst's
//! problem summary to each entry's `trigger`. Entries ship inside the binary; campaigns add
//! their own from directories (a ConfigMap mount in the cluster).

pub mod embedding;
pub mod endpoint;
pub mod lexical;
pub mod minilm;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod bundled {
    include!(concat!(env!("OUT_DIR"), "/cognition_entries.rs"));
}

/// One entry. Every field is required (`arxiv` and `archspec` may be null).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub id: String,
    pub title: String,
    pub year: u16,
    pub venue: String,
    pub arxiv: Option<String>,
    /// Symptoms that call for this idea: the retrieval key.
    pub trigger: String,
    pub algorithm: String,
    /// A sketch in archspec, checked by the test suite.
    pub archspec: Option<String>,
    pub history: String,
    pub guidance: String,
    pub tags: Vec<String>,
}

/// Where an entry came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    BuiltIn(&'static str),
    File(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::BuiltIn(name) => write!(f, "cognition/{name} (built in)"),
            Origin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CognitionError {
    #[error("reading cognition entries in {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("duplicate cognition id `{id}` in {first} and {second}")]
    Duplicate {
        id: String,
        first: String,
        second: String,
    },
}

/// The loaded entries and where each came from.
#[derive(Debug, Clone)]
pub struct Base {
    pub entries: Vec<Entry>,
    pub origins: Vec<Origin>,
}

/// A retrieved entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub id: String,
    pub title: String,
    pub arxiv: Option<String>,
    pub score: f64,
}

impl Base {
    /// The built-in entries plus every `*.yaml` in `extra_dirs`.
    pub fn load(extra_dirs: &[PathBuf]) -> Result<Base, CognitionError> {
        let mut base = Base {
            entries: Vec::new(),
            origins: Vec::new(),
        };
        for (name, text) in bundled::BUILT_IN {
            base.add(
                parse_entry(text, &Origin::BuiltIn(name))?,
                Origin::BuiltIn(name),
            )?;
        }
        for dir in extra_dirs {
            for path in yaml_files(dir)? {
                let text =
                    std::fs::read_to_string(&path).map_err(|source| CognitionError::Read {
                        path: path.clone(),
                        source,
                    })?;
                let origin = Origin::File(path);
                base.add(parse_entry(&text, &origin)?, origin)?;
            }
        }
        Ok(base)
    }

    fn add(&mut self, entry: Entry, origin: Origin) -> Result<(), CognitionError> {
        if let Some(index) = self.entries.iter().position(|e| e.id == entry.id) {
            return Err(CognitionError::Duplicate {
                id: entry.id,
                first: self.origins[index].to_string(),
                second: origin.to_string(),
            });
        }
        self.entries.push(entry);
        self.origins.push(origin);
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// Ids of entries by arXiv id, to find duplicates.
    pub fn arxiv_ids(&self) -> HashMap<&str, Vec<&str>> {
        let mut ids: HashMap<&str, Vec<&str>> = HashMap::new();
        for entry in &self.entries {
            if let Some(arxiv) = &entry.arxiv {
                ids.entry(arxiv.as_str())
                    .or_default()
                    .push(entry.id.as_str());
            }
        }
        ids
    }
}

/// Parses one entry and checks its id and fields.
pub fn parse_entry(text: &str, origin: &Origin) -> Result<Entry, CognitionError> {
    let invalid = |message: String| CognitionError::Invalid {
        origin: origin.to_string(),
        message,
    };
    let entry: Entry = serde_yaml::from_str(text).map_err(|error| invalid(error.to_string()))?;
    if entry.id.is_empty()
        || !entry
            .id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(invalid(format!(
            "id `{}` must be lowercase letters, digits and hyphens",
            entry.id
        )));
    }
    let file_stem = match origin {
        Origin::BuiltIn(name) => Path::new(name)
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string),
        Origin::File(path) => path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string),
    };
    if file_stem.as_deref() != Some(entry.id.as_str()) {
        return Err(invalid(format!(
            "id `{}` must equal the file name",
            entry.id
        )));
    }
    for (field, value) in [
        ("title", &entry.title),
        ("venue", &entry.venue),
        ("trigger", &entry.trigger),
        ("algorithm", &entry.algorithm),
        ("history", &entry.history),
        ("guidance", &entry.guidance),
    ] {
        if value.trim().is_empty() {
            return Err(invalid(format!("field `{field}` is empty")));
        }
    }
    if entry.tags.is_empty() {
        return Err(invalid("field `tags` is empty".into()));
    }
    Ok(entry)
}

fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, CognitionError> {
    let read_error = |source| CognitionError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_error)?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Scores every entry of a base against a query, higher is more similar, in [0, 1].
pub trait Retriever {
    /// A short name for reports (`lexical`, `minilm`, `endpoint`).
    fn name(&self) -> &'static str;
    /// One score per entry, in the base's order.
    fn scores(&self, query: &str) -> Result<Vec<f64>, CognitionError>;
}

impl Retriever for lexical::LexicalIndex {
    fn name(&self) -> &'static str {
        "lexical"
    }

    fn scores(&self, query: &str) -> Result<Vec<f64>, CognitionError> {
        Ok(lexical::LexicalIndex::scores(self, query))
    }
}

impl Base {
    /// The built-in lexical retriever over this base.
    pub fn lexical(&self) -> lexical::LexicalIndex {
        lexical::LexicalIndex::build(&self.entries)
    }

    /// The `k` best entries scoring at least `min_score`, best first (ties by id).
    pub fn search(
        &self,
        retriever: &dyn Retriever,
        query: &str,
        k: usize,
        min_score: f64,
    ) -> Result<Vec<Hit>, CognitionError> {
        let scores = retriever.scores(query)?;
        if scores.len() != self.entries.len() {
            return Err(CognitionError::Invalid {
                origin: format!("{} retriever", retriever.name()),
                message: format!(
                    "returned {} scores for {} entries",
                    scores.len(),
                    self.entries.len()
                ),
            });
        }
        let mut ranked: Vec<(usize, f64)> = scores
            .into_iter()
            .enumerate()
            .filter(|(_, s)| *s >= min_score && s.is_finite())
            .collect();
        ranked.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then_with(|| self.entries[a.0].id.cmp(&self.entries[b.0].id))
        });
        Ok(ranked
            .into_iter()
            .take(k)
            .map(|(index, score)| {
                let entry = &self.entries[index];
                Hit {
                    id: entry.id.clone(),
                    title: entry.title.clone(),
                    arxiv: entry.arxiv.clone(),
                    score,
                }
            })
            .collect())
    }
}
