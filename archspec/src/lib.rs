//! archspec: a small typed language for token-mixing layers, with exact static checks.
//!
//! A program is parsed ([`parse`]), checked against a config ([`check`]) into a dataflow
//! [`Graph`], then analysed ([`analyse`]), identified ([`canon`]) and varied ([`mutate`]).
//! See `GRAMMAR.md` for the language.

pub mod analysis;
pub mod ast;
pub mod canon;
pub mod check;
pub mod diagnostic;
pub mod ir;
pub mod lexer;
pub mod library;
pub mod limits;
pub mod mutate;
pub mod ops;
pub mod parser;
pub mod printer;

pub use analysis::{Analysis, ModelShape, analyse};
pub use ast::Program;
pub use check::{CheckConfig, Checked, check};
pub use diagnostic::{Code, Diagnostic, Located, Span};
pub use ir::{Complexity, Graph, Op, Type};
pub use parser::parse;
pub use printer::print;

/// The language reference, as pasted into LLM prompts.
pub const GRAMMAR: &str = include_str!("../GRAMMAR.md");

/// A program that parsed and passed every check, with its analyses.
#[derive(Debug, Clone)]
pub struct Valid {
    pub program: Program,
    pub checked: Checked,
    pub analysis: Analysis,
}

impl Valid {
    pub fn hash(&self) -> String {
        canon::structural_hash(&self.checked.graph)
    }

    /// The program's hash and distance features, to keep with it.
    pub fn structure(&self) -> canon::Structure {
        canon::Structure::of(&self.checked.graph)
    }
}

/// Parses and checks source text in one step.
pub fn check_source(source: &str, config: &CheckConfig) -> Result<Valid, Vec<Diagnostic>> {
    let (program, diagnostics) = parse(source);
    let Some(program) = program else {
        return Err(diagnostics);
    };
    check_program(program, config)
}

/// Checks an already parsed program.
pub fn check_program(program: Program, config: &CheckConfig) -> Result<Valid, Vec<Diagnostic>> {
    let checked = check(&program, config)?;
    let analysis = analyse(&checked.graph, config.seq_len);
    Ok(Valid {
        program,
        checked,
        analysis,
    })
}
