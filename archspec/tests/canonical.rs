//! Identity: names, statement order, commutative operand order and dead code do not change a
//! program's hash; structure does. Distance is 0 for the same structure and grows with change.

use archspec::{CheckConfig, Valid, canon, check_source, library};

fn valid(source: &str) -> Valid {
    check_source(source, &CheckConfig::default())
        .unwrap_or_else(|d| panic!("invalid: {d:?}\n{source}"))
}

const GATED: &str = "mixer a(d_model, heads = 4) {
  q = x |> linear(d_model) |> split_heads(heads)
  k = x |> linear(d_model) |> split_heads(heads)
  v = x |> linear(d_model) |> split_heads(heads)
  o = linear_attention(q, k, v) |> merge_heads
  gate = x |> linear(d_model) |> silu
  return o * gate |> linear(d_model)
}";

#[test]
fn renaming_reordering_commuting_and_dead_code_keep_the_hash() {
    let variant = "mixer renamed(d_model, h = 4) {
  unused = x |> linear(7) |> gelu
  g = x |> linear(d_model) |> silu
  values = x |> linear(d_model) |> split_heads(h)
  keys = x |> linear(d_model) |> split_heads(h)
  queries = x |> linear(d_model) |> split_heads(h)
  out = merge_heads(linear_attention(queries, keys, values))
  return (g * out) |> linear(d_model)
}";
    assert_eq!(valid(GATED).hash(), valid(variant).hash());
    assert_eq!(
        archspec::canon::distance(&valid(GATED).checked.graph, &valid(variant).checked.graph),
        0.0
    );
}

#[test]
fn swapping_structurally_identical_queries_and_keys_is_the_same_program() {
    let swapped = GATED.replace("linear_attention(q, k, v)", "linear_attention(k, q, v)");
    assert_eq!(valid(&swapped).hash(), valid(GATED).hash());
}

#[test]
fn structural_changes_change_the_hash() {
    let different_activation = GATED.replace("silu", "gelu");
    let different_operator = GATED.replace("o * gate", "o + gate");
    let different_heads = GATED.replace("heads = 4", "heads = 8");
    let base = valid(GATED).hash();
    for changed in [different_activation, different_operator, different_heads] {
        assert_ne!(valid(&changed).hash(), base, "{changed}");
    }
}

#[test]
fn canonical_text_is_itself_a_program_with_the_same_hash() {
    for entry in library::ENTRIES {
        let original = valid(entry.source);
        let text = canon::canonical_text(&original.checked.graph);
        let reparsed = valid(&text);
        assert_eq!(reparsed.hash(), original.hash(), "{}:\n{text}", entry.name);
        assert_eq!(reparsed.analysis, original.analysis, "{}", entry.name);
    }
}

#[test]
fn distance_is_a_symmetric_dissimilarity_in_zero_one() {
    let graphs: Vec<_> = library::ENTRIES
        .iter()
        .map(|e| valid(e.source).checked.graph)
        .collect();
    for a in &graphs {
        assert_eq!(canon::distance(a, a), 0.0);
        for b in &graphs {
            let d = canon::distance(a, b);
            assert!((0.0..=1.0).contains(&d));
            assert_eq!(d, canon::distance(b, a));
        }
    }
    // DeltaNet is closer to Gated DeltaNet than to softmax attention.
    let get = |name: &str| valid(library::get(name).unwrap().source).checked.graph;
    let (deltanet, gated, softmax) = (get("deltanet"), get("gated_deltanet"), get("softmax_rope"));
    assert!(canon::distance(&deltanet, &gated) < canon::distance(&deltanet, &softmax));
    assert!(canon::distance(&deltanet, &gated) > 0.0);
}
