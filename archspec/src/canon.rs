//! Identity and similarity of programs: a canonical form (names, statement order, commutative
//! operand order and dead code do not matter), a structural hash, and a distance in [0, 1].

use crate::ir::{Graph, NodeId, Op};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

/// 64-bit FNV-1a: stable across Rust versions and platforms, unlike `std`'s hasher, so hashes
/// stored in a campaign's memory stay valid.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A structural hash per node: equal for equal subtrees, whatever the names.
fn subtree_hashes(graph: &Graph) -> Vec<u64> {
    let mut hashes: Vec<u64> = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let mut children: Vec<u64> = node.inputs.iter().map(|&id| hashes[id]).collect();
        if is_commutative(&node.op) {
            children.sort_unstable();
        }
        let mut key = format!("{}|{}", node.op.signature(), node.ty);
        for child in children {
            let _ = write!(key, "|{child:016x}");
        }
        hashes.push(fnv1a(key.as_bytes()));
    }
    hashes
}

fn is_commutative(op: &Op) -> bool {
    matches!(op, Op::Binary { op } if op.is_commutative())
}

/// Input order for emission: commutative operands sorted by their structure.
fn ordered_inputs(graph: &Graph, hashes: &[u64], id: NodeId) -> Vec<NodeId> {
    let node = &graph.nodes[id];
    let mut inputs = node.inputs.clone();
    if is_commutative(&node.op) {
        inputs.sort_by_key(|&input| hashes[input]);
    }
    inputs
}

/// The canonical program text: live nodes only, named `v1, v2, …` in a structural order,
/// hyperparameters replaced by their values. It parses and checks to the same graph.
pub fn canonical_text(graph: &Graph) -> String {
    let hashes = subtree_hashes(graph);
    let mut names: HashMap<NodeId, String> = HashMap::new();
    let mut lines: Vec<String> = Vec::new();
    // Iterative post-order walk (graphs can be deep).
    let mut stack: Vec<(NodeId, bool)> = vec![(graph.output, false)];
    while let Some((id, expanded)) = stack.pop() {
        if names.contains_key(&id) {
            continue;
        }
        if !expanded {
            stack.push((id, true));
            for input in ordered_inputs(graph, &hashes, id).into_iter().rev() {
                if !names.contains_key(&input) {
                    stack.push((input, false));
                }
            }
            continue;
        }
        let node = &graph.nodes[id];
        match &node.op {
            Op::Input => {
                names.insert(id, "x".into());
            }
            Op::Const { value } => {
                let text = if *value < 0.0 {
                    format!("-{:?}", -value)
                } else {
                    format!("{value:?}")
                };
                names.insert(id, text);
            }
            op => {
                let inputs: Vec<&str> = ordered_inputs(graph, &hashes, id)
                    .iter()
                    .map(|input| names.get(input).map_or("?", String::as_str))
                    .collect();
                let name = format!("v{}", lines.len() + 1);
                lines.push(format!("  {name} = {}", call_text(op, &inputs)));
                names.insert(id, name);
            }
        }
    }
    let output = names.get(&graph.output).map_or("x", String::as_str);
    let mut text = String::from("mixer canonical(d_model) {\n");
    for line in &lines {
        text.push_str(line);
        text.push('\n');
    }
    let _ = writeln!(text, "  return {output}");
    text.push_str("}\n");
    text
}

fn call_text(op: &Op, inputs: &[&str]) -> String {
    let all = inputs.join(", ");
    let first = inputs.first().copied().unwrap_or("x");
    match op {
        Op::Binary { op } => {
            let symbol = op.symbol();
            let rhs = inputs.get(1).copied().unwrap_or("x");
            // Parenthesise a negative constant operand so it reads as one number.
            let rhs = if rhs.starts_with('-') {
                format!("({rhs})")
            } else {
                rhs.to_string()
            };
            let lhs = if first.starts_with('-') {
                format!("({first})")
            } else {
                first.to_string()
            };
            format!("{lhs} {symbol} {rhs}")
        }
        Op::Neg => format!("-{first}"),
        Op::Linear { out, bias: true } => format!("linear({first}, {out}, bias = true)"),
        Op::Linear { out, bias: false } => format!("linear({first}, {out})"),
        Op::SplitHeads { heads } => format!("split_heads({first}, {heads})"),
        Op::GroupNorm { groups } => format!("groupnorm({first}, {groups})"),
        Op::Rope { base } => format!("rope({first}, base = {base:?})"),
        Op::RetnetDecay { heads } => format!("retnet_decay({heads})"),
        Op::HeadParam { heads, init } => {
            let init = if *init < 0.0 {
                format!("-{:?}", -init)
            } else {
                format!("{init:?}")
            };
            format!("head_param({heads}, init = {init})")
        }
        Op::ShortConv { width } => format!("short_conv({first}, {width})"),
        Op::TokenShift { shift } => format!("token_shift({first}, {shift})"),
        Op::WindowAttention { window } => format!("window_attention({all}, {window})"),
        Op::Activation { function } => format!("{}({first})", function.name()),
        Op::Norm { norm } => format!("{}({first})", norm.name()),
        Op::MergeHeads => format!("merge_heads({first})"),
        Op::FeatureSoftmax => format!("feature_softmax({first})"),
        Op::Route => format!("route({all})"),
        Op::SoftmaxAttention => format!("softmax_attention({all})"),
        Op::LinearAttention => format!("linear_attention({all})"),
        Op::DecayAttention => format!("decay_attention({all})"),
        Op::DeltaRule => format!("delta_rule({all})"),
        Op::GatedDeltaRule => format!("gated_delta_rule({all})"),
        Op::Input => "x".into(),
        Op::Const { value } => format!("{value:?}"),
    }
}

/// The structural hash: 16 hex digits of the canonical text's FNV-1a hash.
pub fn structural_hash(graph: &Graph) -> String {
    format!("{:016x}", fnv1a(canonical_text(graph).as_bytes()))
}

/// Structural features of a graph: each live operation alone and with its inputs' operations.
fn features(graph: &Graph) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for (_, node) in graph.live_nodes() {
        if matches!(node.op, Op::Input | Op::Const { .. }) {
            continue;
        }
        let signature = node.op.signature();
        let mut children: Vec<String> = node
            .inputs
            .iter()
            .map(|&id| graph.nodes[id].op.signature())
            .collect();
        if is_commutative(&node.op) {
            children.sort();
        }
        *counts
            .entry(format!("{signature}<-{}", children.join(",")))
            .or_insert(0) += 1;
        *counts.entry(signature).or_insert(0) += 1;
    }
    counts
}

/// What identity and distance need of a program, computed once from its graph and small enough
/// to keep with every attempt in memory: comparing two `Structure`s needs no re-check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Structure {
    /// [`structural_hash`] of the graph.
    pub hash: String,
    /// Feature multiset ([`distance`]): operation signatures, alone and with their inputs'.
    pub features: BTreeMap<String, u32>,
}

impl Structure {
    pub fn of(graph: &Graph) -> Structure {
        Structure {
            hash: structural_hash(graph),
            features: features(graph),
        }
    }

    /// Structural distance in [0, 1]: 0 for structurally identical programs, 1 when they share
    /// no operation. One minus the weighted Jaccard similarity of their feature multisets.
    pub fn distance(&self, other: &Structure) -> f64 {
        if self.hash == other.hash {
            return 0.0;
        }
        let (fa, fb) = (&self.features, &other.features);
        let mut intersection = 0u64;
        let mut union = 0u64;
        for (key, &count_a) in fa {
            let count_b = fb.get(key).copied().unwrap_or(0);
            intersection += u64::from(count_a.min(count_b));
            union += u64::from(count_a.max(count_b));
        }
        for (key, &count_b) in fb {
            if !fa.contains_key(key) {
                union += u64::from(count_b);
            }
        }
        if union == 0 {
            return 0.0;
        }
        // Different hashes with identical features (rare: differing wiring) still differ a
        // little.
        (1.0 - intersection as f64 / union as f64).max(f64::EPSILON)
    }
}

/// Structural distance of two graphs (see [`Structure::distance`]).
pub fn distance(a: &Graph, b: &Graph) -> f64 {
    Structure::of(a).distance(&Structure::of(b))
}
