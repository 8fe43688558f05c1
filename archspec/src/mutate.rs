//! Variation operators for the LLM-free search: mutations and crossover on programs. Each
//! returns a program that passes the checks, or the reason it could not.

use crate::ast::{BinOp, Expr, ExprKind, Param, Program};
use crate::check::CheckConfig;
use crate::diagnostic::render;
use crate::ir::{Graph, Type};
use crate::ops::SEQUENCE_MIXERS;
use crate::{Valid, check_program, parse, print};
use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};
use std::collections::{HashMap, HashSet};

/// The kinds of mutation, each a small, plausible edit a researcher would try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MutationKind {
    /// Replace one activation by another (`silu` → `gelu`).
    SwapActivation,
    /// Change the feature map applied to queries and keys.
    SwapFeatureMap,
    /// Add a short causal convolution after an input projection, or remove one.
    ToggleShortConv,
    /// Change how the decay of a decayed recurrence is parameterised.
    ChangeDecay,
    /// Multiply the output by a learned, input-dependent gate.
    AddOutputGate,
    /// Add a normalisation after a time mixer, or remove a norm.
    ToggleNorm,
    /// Replace the time mixer by another (linear attention → delta rule).
    ReplaceTimeMixer,
    /// Route each token between the existing time mixer and a new one.
    AddRoutedPath,
    /// Double or halve the number of heads.
    ChangeHeadLayout,
}

impl MutationKind {
    pub const ALL: [MutationKind; 9] = [
        MutationKind::SwapActivation,
        MutationKind::SwapFeatureMap,
        MutationKind::ToggleShortConv,
        MutationKind::ChangeDecay,
        MutationKind::AddOutputGate,
        MutationKind::ToggleNorm,
        MutationKind::ReplaceTimeMixer,
        MutationKind::AddRoutedPath,
        MutationKind::ChangeHeadLayout,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MutationKind::SwapActivation => "swap_activation",
            MutationKind::SwapFeatureMap => "swap_feature_map",
            MutationKind::ToggleShortConv => "toggle_short_conv",
            MutationKind::ChangeDecay => "change_decay",
            MutationKind::AddOutputGate => "add_output_gate",
            MutationKind::ToggleNorm => "toggle_norm",
            MutationKind::ReplaceTimeMixer => "replace_time_mixer",
            MutationKind::AddRoutedPath => "add_routed_path",
            MutationKind::ChangeHeadLayout => "change_head_layout",
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MutationError {
    /// The program has nothing this operator can change.
    #[error("{operator} does not apply: {reason}")]
    NotApplicable {
        operator: &'static str,
        reason: String,
    },
    /// The edited program fails the checks.
    #[error("{operator} produced an invalid program:\n{diagnostics}")]
    Invalid {
        operator: &'static str,
        diagnostics: String,
    },
}

type Result<T, E = MutationError> = std::result::Result<T, E>;

const ACTIVATIONS: &[&str] = &["silu", "gelu", "relu", "sigmoid", "tanh", "elu1"];
const FEATURE_MAPS: &[&str] = &["elu1", "relu", "silu", "sigmoid", "feature_softmax"];
const NORMS: &[&str] = &["rmsnorm", "layernorm", "l2norm", "groupnorm"];

/// Applies one mutation of the given kind.
pub fn mutate(
    program: &Program,
    kind: MutationKind,
    rng: &mut impl Rng,
    config: &CheckConfig,
) -> Result<Valid> {
    let operator = kind.name();
    let base = Base::new(program, config, operator)?;
    let mut edited = base.program.clone();
    let not_applicable = |reason: &str| MutationError::NotApplicable {
        operator,
        reason: reason.to_string(),
    };
    match kind {
        MutationKind::SwapActivation => {
            let is_activation = |e: &Expr| call_name(e).is_some_and(|f| ACTIVATIONS.contains(&f));
            let found = find_all(&edited, &is_activation);
            let index = pick_index(rng, found.len())
                .ok_or_else(|| not_applicable("no activation to swap"))?;
            let current = call_name(&found[index]).unwrap_or("");
            let replacement = pick_other(rng, ACTIVATIONS, current);
            replace_nth(&mut edited, &is_activation, index, &mut |e| {
                rename_call(e, replacement)
            });
        }
        MutationKind::SwapFeatureMap => {
            let mixers = find_all(&edited, &is_sequence_mixer);
            let index = pick_index(rng, mixers.len())
                .ok_or_else(|| not_applicable("no attention-like operation"))?;
            let replacement = *FEATURE_MAPS.choose(rng).unwrap_or(&"elu1");
            let mut query_key: Vec<String> = Vec::new();
            for arg in call_args(&mixers[index]).iter().take(2) {
                if let ExprKind::Name(name) = &arg.kind
                    && !query_key.contains(name)
                {
                    query_key.push(name.clone());
                }
            }
            let mut changed = false;
            for statement in &mut edited.body {
                if query_key.contains(&statement.name.name) {
                    changed |= set_feature_map(&mut statement.value, replacement);
                }
            }
            if !changed {
                return Err(not_applicable("queries and keys are not named statements"));
            }
        }
        MutationKind::ToggleShortConv => {
            let is_input_projection = |e: &Expr| {
                call_name(e) == Some("linear")
                    && call_args(e).first().is_some_and(|a| is_name(a, "x"))
            };
            let is_conv = |e: &Expr| call_name(e) == Some("short_conv");
            let projections = find_all(&edited, &is_input_projection).len();
            let convs = find_all(&edited, &is_conv).len();
            let choice = pick_index(rng, projections + convs)
                .ok_or_else(|| not_applicable("no projection of x"))?;
            if choice < projections {
                let width = *[2i64, 3, 4].choose(rng).unwrap_or(&4);
                replace_nth(&mut edited, &is_input_projection, choice, &mut |e| {
                    Expr::call("short_conv", vec![e, Expr::int(width)], true)
                });
            } else {
                replace_nth(
                    &mut edited,
                    &is_conv,
                    choice - projections,
                    &mut first_argument,
                );
            }
        }
        MutationKind::ChangeDecay => {
            let is_decayed =
                |e: &Expr| matches!(call_name(e), Some("decay_attention" | "gated_delta_rule"));
            let found = find_all(&edited, &is_decayed);
            let index = pick_index(rng, found.len())
                .ok_or_else(|| not_applicable("no decayed recurrence"))?;
            let (heads, key_dim) = base
                .query_shape(&found[index])
                .ok_or_else(|| not_applicable("unknown shape"))?;
            let per_key_allowed = call_name(&found[index]) == Some("decay_attention");
            let current = call_args(&found[index])
                .last()
                .map(crate::printer::print_expr)
                .unwrap_or_default();
            let mut options = vec![
                base.decay(DecayForm::Logsigmoid, heads, key_dim),
                base.decay(DecayForm::Mamba, heads, key_dim),
                base.decay(DecayForm::Fixed, heads, key_dim),
            ];
            if per_key_allowed {
                options.push(base.decay(DecayForm::PerKey, heads, key_dim));
            }
            options.retain(|option| crate::printer::print_expr(option) != current);
            let decay = options
                .choose(rng)
                .cloned()
                .ok_or_else(|| not_applicable("no other decay form"))?;
            replace_nth(&mut edited, &is_decayed, index, &mut |mut e| {
                if let ExprKind::Call { args, .. } = &mut e.kind
                    && let Some(last) = args.last_mut()
                {
                    last.value = decay.clone();
                }
                e
            });
        }
        MutationKind::AddOutputGate => {
            let ret = edited.ret.clone();
            let gated = match (call_name(&ret), call_args(&ret).first()) {
                (Some("linear"), Some(inner)) => match base.type_of(inner) {
                    Some(Type::Seq { d }) => {
                        let gate = Expr::call(
                            "silu",
                            vec![Expr::call(
                                "linear",
                                vec![Expr::name("x"), base.int_expr(d as i64)],
                                true,
                            )],
                            true,
                        );
                        let mut new_ret = ret.clone();
                        if let ExprKind::Call { args, .. } = &mut new_ret.kind {
                            args[0].value = Expr::binary(BinOp::Mul, inner.clone(), gate);
                        }
                        new_ret
                    }
                    _ => {
                        return Err(not_applicable(
                            "the output projection's input is not [B,T,D]",
                        ));
                    }
                },
                _ => {
                    let gate = Expr::call(
                        "sigmoid",
                        vec![Expr::call(
                            "linear",
                            vec![Expr::name("x"), Expr::name("d_model")],
                            true,
                        )],
                        true,
                    );
                    Expr::binary(BinOp::Mul, ret, gate)
                }
            };
            edited.ret = gated;
        }
        MutationKind::ToggleNorm => {
            let is_norm = |e: &Expr| call_name(e).is_some_and(|f| NORMS.contains(&f));
            let mixers = find_all(&edited, &is_sequence_mixer).len();
            let norms = find_all(&edited, &is_norm).len();
            let choice = pick_index(rng, mixers + norms)
                .ok_or_else(|| not_applicable("nothing to normalise"))?;
            if choice < mixers {
                let norm = *["rmsnorm", "layernorm"].choose(rng).unwrap_or(&"rmsnorm");
                replace_nth(&mut edited, &is_sequence_mixer, choice, &mut |e| {
                    Expr::call(norm, vec![e], true)
                });
            } else {
                replace_nth(&mut edited, &is_norm, choice - mixers, &mut first_argument);
            }
        }
        MutationKind::ReplaceTimeMixer | MutationKind::AddRoutedPath => {
            let mixers = find_all(&edited, &is_sequence_mixer);
            let index = pick_index(rng, mixers.len())
                .ok_or_else(|| not_applicable("no attention-like operation"))?;
            let current = call_name(&mixers[index]).unwrap_or("");
            let allowed: Vec<&str> = SEQUENCE_MIXERS
                .iter()
                .copied()
                .filter(|name| *name != current && base.allows(name))
                .collect();
            let new_mixer = *allowed
                .choose(rng)
                .ok_or_else(|| not_applicable("no other mixer is allowed"))?;
            let (heads, key_dim) = base
                .query_shape(&mixers[index])
                .ok_or_else(|| not_applicable("unknown shape"))?;
            let replacement = base.sequence_mixer(new_mixer, &mixers[index], heads, key_dim);
            let route = kind == MutationKind::AddRoutedPath;
            replace_nth(&mut edited, &is_sequence_mixer, index, &mut |old| {
                if route {
                    let weights = Expr::call("linear", vec![Expr::name("x"), Expr::int(2)], true);
                    Expr::call("route", vec![weights, old, replacement.clone()], false)
                } else {
                    replacement.clone()
                }
            });
        }
        MutationKind::ChangeHeadLayout => {
            let (position, value) = base
                .program
                .params
                .iter()
                .position(|p| p.name.name == "heads")
                .and_then(|position| base.hyperparameter("heads").map(|value| (position, value)))
                .ok_or_else(|| not_applicable("no `heads` hyperparameter"))?;
            let halved = (value % 2 == 0 && value > 1).then_some(value / 2);
            let doubled = (value * 2 <= 64).then_some(value * 2);
            let options: Vec<i64> = [halved, doubled].into_iter().flatten().collect();
            let new_value = *options
                .choose(rng)
                .ok_or_else(|| not_applicable("heads cannot change"))?;
            edited.params[position].default = Some(Expr::int(new_value));
        }
    }
    finish(edited, config, operator)
}

/// Applies a mutation of a random kind, trying other kinds when one does not apply.
pub fn mutate_random(
    program: &Program,
    rng: &mut impl Rng,
    config: &CheckConfig,
) -> Result<(MutationKind, Valid)> {
    let mut kinds = MutationKind::ALL;
    kinds.shuffle(rng);
    let mut last_error = None;
    for kind in kinds {
        match mutate(program, kind, rng, config) {
            Ok(valid) => return Ok((kind, valid)),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or(MutationError::NotApplicable {
        operator: "mutate",
        reason: "no mutation applies".into(),
    }))
}

/// Crossover: the first program with one of its time mixers replaced by one of the second's,
/// bringing along every statement and hyperparameter that mixer needs (renamed `b_…`).
pub fn crossover(
    a: &Program,
    b: &Program,
    rng: &mut impl Rng,
    config: &CheckConfig,
) -> Result<Valid> {
    let operator = "crossover";
    let not_applicable = |reason: &str| MutationError::NotApplicable {
        operator,
        reason: reason.to_string(),
    };
    let base_a = Base::new(a, config, operator)?;
    let base_b = Base::new(b, config, operator)?;
    let mixers_a = find_all(&base_a.program, &is_sequence_mixer);
    let mixers_b = find_all(&base_b.program, &is_sequence_mixer);
    let index_a = pick_index(rng, mixers_a.len())
        .ok_or_else(|| not_applicable("the first parent has no time mixer"))?;
    let donor = mixers_b
        .choose(rng)
        .cloned()
        .ok_or_else(|| not_applicable("the second parent has no time mixer"))?;
    let mut edited = base_a.program.clone();
    // Statements and hyperparameters of B that the donor mixer needs.
    let statements_b: HashMap<&str, &Expr> = base_b
        .program
        .body
        .iter()
        .map(|s| (s.name.name.as_str(), &s.value))
        .collect();
    let params_b: HashMap<&str, &Param> = base_b
        .program
        .params
        .iter()
        .map(|p| (p.name.name.as_str(), p))
        .collect();
    let mut needed: HashSet<String> = HashSet::new();
    let mut queue: Vec<String> = donor.names().into_iter().map(str::to_string).collect();
    while let Some(name) = queue.pop() {
        if name == "x" || name == "d_model" || !needed.insert(name.clone()) {
            continue;
        }
        if let Some(expr) = statements_b.get(name.as_str()) {
            queue.extend(expr.names().into_iter().map(str::to_string));
        } else if let Some(Some(default)) = params_b.get(name.as_str()).map(|p| &p.default) {
            queue.extend(default.names().into_iter().map(str::to_string));
        }
    }
    let mut renames: HashMap<String, String> = HashMap::new();
    for name in base_b.program.defined_names() {
        if needed.contains(name) {
            let fresh = fresh_name_avoiding(&edited, &renames, &format!("b_{name}"));
            renames.insert(name.to_string(), fresh);
        }
    }
    for param in &base_b.program.params {
        if needed.contains(&param.name.name) {
            let mut param = param.clone();
            param.name.name = renames[&param.name.name].clone();
            if let Some(default) = &mut param.default {
                rename_names(default, &renames);
            }
            edited.params.push(param);
        }
    }
    let imported: Vec<_> = base_b
        .program
        .body
        .iter()
        .filter(|s| needed.contains(&s.name.name))
        .map(|s| {
            let mut s = s.clone();
            s.name.name = renames[&s.name.name].clone();
            rename_names(&mut s.value, &renames);
            s
        })
        .collect();
    edited.body.splice(0..0, imported);
    let mut donor = donor;
    rename_names(&mut donor, &renames);
    replace_nth(&mut edited, &is_sequence_mixer, index_a, &mut |_| {
        donor.clone()
    });
    finish(edited, config, operator)
}

/// A program normalised by printing and re-parsing (fresh spans), with its checked graph.
struct Base {
    program: Program,
    graph: Graph,
    hyperparameters: Vec<(String, i64)>,
    config: CheckConfig,
}

#[derive(Clone, Copy)]
enum DecayForm {
    Logsigmoid,
    Mamba,
    Fixed,
    PerKey,
}

impl Base {
    fn new(program: &Program, config: &CheckConfig, operator: &'static str) -> Result<Base> {
        let valid = reparse_and_check(program, config, operator)?;
        Ok(Base {
            program: valid.program,
            graph: valid.checked.graph,
            hyperparameters: valid.checked.hyperparameters,
            config: config.clone(),
        })
    }

    fn hyperparameter(&self, name: &str) -> Option<i64> {
        self.hyperparameters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    /// A hyperparameter name with this value when one exists (so later head changes follow), else a literal.
    fn int_expr(&self, value: i64) -> Expr {
        let preferred = ["heads", "d_head", "d_model"];
        preferred
            .iter()
            .find(|name| self.hyperparameter(name) == Some(value))
            .map(|name| Expr::name(name))
            .or_else(|| {
                self.hyperparameters
                    .iter()
                    .find(|(_, v)| *v == value)
                    .map(|(name, _)| Expr::name(name))
            })
            .unwrap_or_else(|| Expr::int(value))
    }

    /// The type of a parsed expression, found through the graph node built at its span.
    fn type_of(&self, expr: &Expr) -> Option<Type> {
        match &expr.kind {
            ExprKind::Name(name) if name == "x" => Some(Type::Seq {
                d: self.config.d_model,
            }),
            ExprKind::Name(name) => self
                .program
                .body
                .iter()
                .find(|s| &s.name.name == name)
                .and_then(|s| self.type_of(&s.value)),
            _ => self
                .graph
                .nodes
                .iter()
                .rev()
                .find(|node| node.span == expr.span && node.ty != Type::Scalar)
                .map(|node| node.ty),
        }
    }

    /// Heads and key size of an attention-like call's queries.
    fn query_shape(&self, call: &Expr) -> Option<(usize, usize)> {
        match self.type_of(call_args(call).first()?)? {
            Type::Heads { h, k } => Some((h, k)),
            _ => None,
        }
    }

    fn allows(&self, mixer: &str) -> bool {
        let complexity = match mixer {
            "softmax_attention" => crate::Complexity::Quadratic,
            "window_attention" => crate::Complexity::Window,
            _ => crate::Complexity::Linear,
        };
        self.config
            .max_complexity
            .is_none_or(|limit| complexity <= limit)
    }

    fn per_head(&self, heads: usize, activation: &str) -> Expr {
        let h = self.int_expr(heads as i64);
        let projected = Expr::call("linear", vec![Expr::name("x"), h.clone()], true);
        Expr::call(
            "split_heads",
            vec![Expr::call(activation, vec![projected], true), h],
            true,
        )
    }

    fn decay(&self, form: DecayForm, heads: usize, key_dim: usize) -> Expr {
        let h = self.int_expr(heads as i64);
        match form {
            DecayForm::Logsigmoid => self.per_head(heads, "logsigmoid"),
            DecayForm::Mamba => {
                let rate = Expr::call(
                    "exp",
                    vec![Expr::synthetic(ExprKind::Call {
                        func: crate::ast::Ident {
                            name: "head_param".into(),
                            span: Default::default(),
                        },
                        args: vec![
                            crate::ast::Arg {
                                name: None,
                                value: h,
                            },
                            crate::ast::Arg {
                                name: Some(crate::ast::Ident {
                                    name: "init".into(),
                                    span: Default::default(),
                                }),
                                value: Expr::synthetic(ExprKind::Neg(Box::new(Expr::synthetic(
                                    ExprKind::Float(1.0),
                                )))),
                            },
                        ],
                        piped: false,
                    })],
                    false,
                );
                let negated = Expr::synthetic(ExprKind::Neg(Box::new(rate)));
                Expr::binary(BinOp::Mul, negated, self.per_head(heads, "softplus"))
            }
            DecayForm::Fixed => Expr::call("retnet_decay", vec![h], false),
            DecayForm::PerKey => {
                let low_rank = Expr::call("linear", vec![Expr::name("x"), Expr::int(16)], true);
                let total = self.int_expr((heads * key_dim) as i64);
                let full = Expr::call("linear", vec![low_rank, total], true);
                let gated = Expr::call("logsigmoid", vec![full], true);
                let split = Expr::call("split_heads", vec![gated, h], true);
                Expr::binary(BinOp::Div, split, Expr::int(16))
            }
        }
    }

    /// A call of `mixer` reusing the queries, keys and values of `old`.
    fn sequence_mixer(&self, mixer: &str, old: &Expr, heads: usize, key_dim: usize) -> Expr {
        let args = call_args(old);
        let (mut q, mut k, v) = (args[0].clone(), args[1].clone(), args[2].clone());
        let mut extra: Vec<Expr> = Vec::new();
        match mixer {
            "window_attention" => extra.push(Expr::int(64)),
            "decay_attention" => extra.push(self.decay(DecayForm::Logsigmoid, heads, key_dim)),
            "delta_rule" | "gated_delta_rule" => {
                // The delta rule is stable only with unit-norm keys.
                q = ensure_l2norm(q);
                k = ensure_l2norm(k);
                extra.push(self.per_head(heads, "sigmoid"));
                if mixer == "gated_delta_rule" {
                    extra.push(self.decay(DecayForm::Mamba, heads, key_dim));
                }
            }
            _ => {}
        }
        let mut all = vec![q, k, v];
        all.extend(extra);
        Expr::call(mixer, all, false)
    }
}

fn ensure_l2norm(expr: Expr) -> Expr {
    if call_name(&expr) == Some("l2norm") {
        expr
    } else {
        Expr::call("l2norm", vec![expr], true)
    }
}

fn reparse_and_check(
    program: &Program,
    config: &CheckConfig,
    operator: &'static str,
) -> Result<Valid> {
    let text = print(program);
    let (parsed, diagnostics) = parse(&text);
    let Some(parsed) = parsed else {
        return Err(MutationError::Invalid {
            operator,
            diagnostics: render(&text, &diagnostics),
        });
    };
    check_program(parsed, config).map_err(|diagnostics| MutationError::Invalid {
        operator,
        diagnostics: render(&text, &diagnostics),
    })
}

fn finish(mut program: Program, config: &CheckConfig, operator: &'static str) -> Result<Valid> {
    program.remove_dead_statements();
    reparse_and_check(&program, config, operator)
}

fn call_name(expr: &Expr) -> Option<&str> {
    match &expr.kind {
        ExprKind::Call { func, .. } => Some(func.name.as_str()),
        _ => None,
    }
}

fn call_args(expr: &Expr) -> Vec<Expr> {
    match &expr.kind {
        ExprKind::Call { args, .. } => args.iter().map(|a| a.value.clone()).collect(),
        _ => Vec::new(),
    }
}

fn is_name(expr: &Expr, name: &str) -> bool {
    matches!(&expr.kind, ExprKind::Name(n) if n == name)
}

fn is_sequence_mixer(expr: &Expr) -> bool {
    call_name(expr).is_some_and(|f| SEQUENCE_MIXERS.contains(&f))
}

fn rename_call(mut expr: Expr, name: &str) -> Expr {
    if let ExprKind::Call { func, .. } = &mut expr.kind {
        func.name = name.to_string();
    }
    expr
}

fn first_argument(expr: Expr) -> Expr {
    match expr.kind {
        ExprKind::Call { mut args, .. } if !args.is_empty() => args.swap_remove(0).value,
        _ => expr,
    }
}

fn pick_index(rng: &mut impl Rng, len: usize) -> Option<usize> {
    (len > 0).then(|| rng.random_range(0..len))
}

fn pick_other<'a>(rng: &mut impl Rng, options: &[&'a str], current: &str) -> &'a str {
    let others: Vec<&'a str> = options.iter().copied().filter(|o| *o != current).collect();
    others.choose(rng).copied().unwrap_or(options[0])
}

/// Replaces the feature map on the spine of `expr` (the chain of first arguments), or applies
/// one on top when there is none. Returns whether the expression changed.
fn set_feature_map(expr: &mut Expr, map: &str) -> bool {
    let mut cursor: &mut Expr = expr;
    loop {
        let is_map = call_name(cursor).is_some_and(|f| FEATURE_MAPS.contains(&f) || f == "exp");
        if is_map {
            if call_name(cursor) == Some(map) {
                return false;
            }
            if let ExprKind::Call { func, .. } = &mut cursor.kind {
                func.name = map.to_string();
            }
            return true;
        }
        match &mut cursor.kind {
            ExprKind::Call { func, args, .. } if !args.is_empty() && func.name != "linear" => {
                cursor = &mut args[0].value;
            }
            _ => break,
        }
    }
    let old = std::mem::replace(expr, Expr::int(0));
    *expr = Expr::call(map, vec![old], true);
    true
}

/// Every expression matching `pred`, in pre-order over the statements and then `return`.
fn find_all(program: &Program, pred: &dyn Fn(&Expr) -> bool) -> Vec<Expr> {
    let mut found = Vec::new();
    for expr in program
        .body
        .iter()
        .map(|s| &s.value)
        .chain(std::iter::once(&program.ret))
    {
        expr.walk(&mut |e| {
            if pred(e) {
                found.push(e.clone());
            }
        });
    }
    found
}

/// Replaces the `n`-th match of `pred` (in `find_all`'s order) by `f(match)`.
fn replace_nth(
    program: &mut Program,
    pred: &dyn Fn(&Expr) -> bool,
    n: usize,
    f: &mut dyn FnMut(Expr) -> Expr,
) {
    let mut count = 0;
    let mut done = false;
    let exprs = program
        .body
        .iter_mut()
        .map(|s| &mut s.value)
        .chain(std::iter::once(&mut program.ret));
    for expr in exprs {
        replace_in(expr, pred, n, f, &mut count, &mut done);
    }
}

fn replace_in(
    expr: &mut Expr,
    pred: &dyn Fn(&Expr) -> bool,
    n: usize,
    f: &mut dyn FnMut(Expr) -> Expr,
    count: &mut usize,
    done: &mut bool,
) {
    if *done {
        return;
    }
    if pred(expr) {
        if *count == n {
            let old = std::mem::replace(expr, Expr::int(0));
            *expr = f(old);
            *done = true;
            return;
        }
        *count += 1;
    }
    match &mut expr.kind {
        ExprKind::Call { args, .. } => {
            for arg in args {
                replace_in(&mut arg.value, pred, n, f, count, done);
            }
        }
        ExprKind::Binary { lhs, rhs, .. } => {
            replace_in(lhs, pred, n, f, count, done);
            replace_in(rhs, pred, n, f, count, done);
        }
        ExprKind::Neg(inner) => replace_in(inner, pred, n, f, count, done),
        ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Bool(_) | ExprKind::Name(_) => {}
    }
}

fn rename_names(expr: &mut Expr, renames: &HashMap<String, String>) {
    if let ExprKind::Name(name) = &mut expr.kind
        && let Some(new_name) = renames.get(name)
    {
        *name = new_name.clone();
    }
    match &mut expr.kind {
        ExprKind::Call { args, .. } => args
            .iter_mut()
            .for_each(|a| rename_names(&mut a.value, renames)),
        ExprKind::Binary { lhs, rhs, .. } => {
            rename_names(lhs, renames);
            rename_names(rhs, renames);
        }
        ExprKind::Neg(inner) => rename_names(inner, renames),
        _ => {}
    }
}

fn fresh_name_avoiding(program: &Program, taken: &HashMap<String, String>, base: &str) -> String {
    let used: HashSet<&str> = taken.values().map(String::as_str).collect();
    let mut candidate = program.fresh_name(base);
    let mut n = 2;
    while used.contains(candidate.as_str()) {
        candidate = program.fresh_name(&format!("{base}_{n}"));
        n += 1;
    }
    candidate
}
