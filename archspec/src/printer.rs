//! Pretty-printer: `parse(print(p))` gives back `p` (up to source positions).

use crate::ast::{Arg, Expr, ExprKind, Program};
use std::fmt::Write;

/// Binding strength of an expression's outermost construct.
const PIPE: u8 = 0;
const ATOM: u8 = 3;

/// Prints a program in the canonical layout: two-space indent, one statement per line.
pub fn print(program: &Program) -> String {
    let mut out = String::new();
    for line in &program.doc {
        let _ = writeln!(out, "# {line}");
    }
    let params: Vec<String> = program
        .params
        .iter()
        .map(|param| match &param.default {
            Some(default) => format!("{} = {}", param.name.name, print_expr(default)),
            None => param.name.name.clone(),
        })
        .collect();
    let _ = writeln!(out, "mixer {}({}) {{", program.name.name, params.join(", "));
    for statement in &program.body {
        let _ = writeln!(
            out,
            "  {} = {}",
            statement.name.name,
            print_expr(&statement.value)
        );
    }
    let _ = writeln!(out, "  return {}", print_expr(&program.ret));
    out.push_str("}\n");
    out
}

/// Prints one expression with the fewest parentheses that keep its structure.
pub fn print_expr(expr: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, expr, PIPE);
    out
}

fn precedence(expr: &Expr) -> u8 {
    match &expr.kind {
        ExprKind::Call { piped: true, .. } => PIPE,
        ExprKind::Binary { op, .. } => op.precedence(),
        _ => ATOM,
    }
}

fn write_expr(out: &mut String, expr: &Expr, min_precedence: u8) {
    let needs_parens = precedence(expr) < min_precedence;
    if needs_parens {
        out.push('(');
    }
    match &expr.kind {
        ExprKind::Int(value) => {
            let _ = write!(out, "{value}");
        }
        ExprKind::Float(value) => {
            let _ = write!(out, "{value:?}");
        }
        ExprKind::Bool(value) => {
            let _ = write!(out, "{value}");
        }
        ExprKind::Name(name) => out.push_str(name),
        ExprKind::Call {
            func,
            args,
            piped: true,
        } if !args.is_empty() && args[0].name.is_none() => {
            write_expr(out, &args[0].value, PIPE);
            out.push_str(" |> ");
            out.push_str(&func.name);
            if args.len() > 1 {
                write_args(out, &args[1..]);
            }
        }
        ExprKind::Call { func, args, .. } => {
            out.push_str(&func.name);
            write_args(out, args);
        }
        ExprKind::Binary { op, lhs, rhs } => {
            write_expr(out, lhs, op.precedence());
            let _ = write!(out, " {} ", op.symbol());
            write_expr(out, rhs, op.precedence() + 1);
        }
        ExprKind::Neg(inner) => {
            out.push('-');
            write_expr(out, inner, ATOM);
        }
    }
    if needs_parens {
        out.push(')');
    }
}

fn write_args(out: &mut String, args: &[Arg]) {
    out.push('(');
    for (index, arg) in args.iter().enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        if let Some(name) = &arg.name {
            let _ = write!(out, "{} = ", name.name);
        }
        write_expr(out, &arg.value, PIPE);
    }
    out.push(')');
}
