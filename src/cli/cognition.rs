//! `archlab cognition search|show|list`: the cognition base from the command line.

use super::{EXIT_FAILURE, EXIT_OK, exit};
use crate::cognition::{Base, Retriever, minilm};
use anyhow::Result;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Serialize)]
struct SearchOutput<'a> {
    query: &'a str,
    embedder: &'static str,
    hits: Vec<crate::cognition::Hit>,
}

/// Which embedding ranks the entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedderChoice {
    Lexical,
    Minilm,
}

pub struct SearchOptions<'a> {
    pub query: &'a str,
    pub k: usize,
    pub min_score: f64,
    pub json: bool,
    pub embedder: EmbedderChoice,
    pub minilm_dir: Option<PathBuf>,
}

pub fn search(options: &SearchOptions<'_>, extra_dirs: &[PathBuf]) -> Result<ExitCode> {
    let (query, k, min_score, json) = (options.query, options.k, options.min_score, options.json);
    let base = Base::load(extra_dirs)?;
    let retriever: Box<dyn Retriever> = match options.embedder {
        EmbedderChoice::Lexical => Box::new(base.lexical()),
        EmbedderChoice::Minilm => {
            let dir = options
                .minilm_dir
                .clone()
                .unwrap_or_else(minilm::default_dir);
            let model = minilm::MiniLm::load(&dir, &base.entries).map_err(|error| {
                anyhow::anyhow!(
                    "{error}; fetch the model with scripts/fetch-minilm.sh or pass --minilm-dir"
                )
            })?;
            Box::new(model)
        }
    };
    let hits = base.search(retriever.as_ref(), query, k, min_score)?;
    let mut stdout = std::io::stdout().lock();
    if json {
        let output = SearchOutput {
            query,
            embedder: retriever.name(),
            hits,
        };
        serde_json::to_writer_pretty(&mut stdout, &output)?;
        writeln!(stdout)?;
    } else if hits.is_empty() {
        writeln!(stdout, "no entry scores at least {min_score}")?;
    } else {
        for hit in hits {
            let arxiv = hit
                .arxiv
                .map(|a| format!(" (arXiv {a})"))
                .unwrap_or_default();
            writeln!(
                stdout,
                "{:.3}  {:<32} {}{arxiv}",
                hit.score, hit.id, hit.title
            )?;
        }
    }
    Ok(exit(EXIT_OK))
}

pub fn show(id: &str, extra_dirs: &[PathBuf]) -> Result<ExitCode> {
    let base = Base::load(extra_dirs)?;
    match base.get(id) {
        Some(entry) => {
            print!("{}", serde_yaml::to_string(entry)?);
            Ok(exit(EXIT_OK))
        }
        None => {
            eprintln!("no cognition entry `{id}`; `archlab cognition list` shows them all");
            Ok(exit(EXIT_FAILURE))
        }
    }
}

pub fn list(json: bool, extra_dirs: &[PathBuf]) -> Result<ExitCode> {
    let base = Base::load(extra_dirs)?;
    let mut stdout = std::io::stdout().lock();
    if json {
        let rows: Vec<_> = base
            .entries
            .iter()
            .map(|e| serde_json::json!({"id": e.id, "title": e.title, "year": e.year, "arxiv": e.arxiv, "tags": e.tags}))
            .collect();
        serde_json::to_writer_pretty(&mut stdout, &rows)?;
        writeln!(stdout)?;
    } else {
        for entry in &base.entries {
            writeln!(stdout, "{:<32} {}  {}", entry.id, entry.year, entry.title)?;
        }
    }
    Ok(exit(EXIT_OK))
}
