//! The interpreted model: parameter counts equal archspec's static counts, whole mixers are
//! causal whatever operations they use, and gradients are finite.

use archspec::{CheckConfig, ModelShape, check_source, library};
use burn::Tensor;
use burn::tensor::{Device, Int, TensorData};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use trainer::mixer::Mixer;
use trainer::model::LanguageModel;
use trainer::params::ParamStore;

const D_MODEL: usize = 32;

/// A program that uses every operation of the language at least once.
const EVERY_OPERATION: &str = "
mixer everything(d_model, heads = 2, d_head = d_model / heads) {
  h = x |> layernorm |> token_shift(2) |> short_conv(3) |> gelu
  q = h |> linear(heads * d_head, bias = true) |> split_heads(heads) |> rope
  k = h |> linear(heads * d_head) |> split_heads(heads) |> rope |> l2norm
  v = h |> linear(heads * d_head) |> relu |> split_heads(heads)
  beta = x |> linear(heads) |> sigmoid |> split_heads(heads)
  g = x |> linear(heads) |> logsigmoid |> split_heads(heads)
  gk = x |> linear(heads * d_head) |> softplus |> split_heads(heads)
  a = softmax_attention(q, k, v)
  b = window_attention(q, k, v, 4)
  c = linear_attention(q |> elu1, k |> elu1, v)
  d = decay_attention(q, k, v, retnet_decay(heads))
  e = decay_attention(q, k, v, -gk)
  f = delta_rule(q, k, v, beta)
  gd = gated_delta_rule(q, k, v, beta, -exp(head_param(heads, init = -1.0)) * (1 - g))
  mixed = route(x |> linear(7), a, b, c, d, e, f, gd)
  y = mixed |> feature_softmax |> merge_heads |> groupnorm(heads) |> tanh
  return (y * (x |> linear(d_model) |> silu) - y / 2 + 1) |> rmsnorm |> linear(d_model)
}
";

fn programs() -> Vec<(String, String)> {
    let mut programs: Vec<(String, String)> = library::ENTRIES
        .iter()
        .map(|entry| (entry.name.to_string(), entry.source.to_string()))
        .collect();
    programs.push(("everything".into(), EVERY_OPERATION.into()));
    programs
}

fn config() -> CheckConfig {
    CheckConfig {
        d_model: D_MODEL,
        seq_len: 24,
        ..CheckConfig::default()
    }
}

fn random_sequence(batch: usize, time: usize, seed: u64) -> Tensor<3> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let values: Vec<f32> = (0..batch * time * D_MODEL)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    Tensor::from_data(
        TensorData::new(values, [batch, time, D_MODEL]),
        &Device::flex(),
    )
}

#[test]
fn parameter_count_equals_the_static_count() {
    for (name, source) in programs() {
        let valid = check_source(&source, &config()).unwrap_or_else(|d| panic!("{name}: {d:?}"));
        let shape = ModelShape {
            d_model: D_MODEL,
            n_layers: 2,
            vocab_size: 50,
            d_ff: 48,
            seq_len: 24,
            tied_embeddings: false,
        };
        let mut store = ParamStore::new();
        let mut rng = SmallRng::seed_from_u64(0);
        LanguageModel::init(
            &valid.checked.graph,
            shape,
            8,
            &mut store,
            &mut rng,
            &Device::flex(),
        );
        assert_eq!(store.count(), shape.params(valid.analysis.params), "{name}");
    }
}

/// A program's mixer with parameters drawn from `seed`, in chunks of 8.
fn mixer_of(valid: &archspec::Valid, seed: u64) -> (Mixer, ParamStore) {
    let mut store = ParamStore::new();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mixer = Mixer::init(
        &valid.checked.graph,
        "m",
        8,
        &mut store,
        &mut rng,
        &Device::flex(),
    );
    (mixer, store)
}

#[test]
fn every_mixer_is_causal_in_both_forms() {
    let (time, cut) = (24, 13);
    for (name, source) in programs() {
        let valid = check_source(&source, &config()).unwrap_or_else(|d| panic!("{name}: {d:?}"));
        let (mixer, store) = mixer_of(&valid, 1);
        let x = random_sequence(2, time, 2);
        let noise = random_sequence(2, time - cut, 3);
        let perturbed = Tensor::cat(
            vec![
                x.clone().narrow(1, 0, cut),
                x.clone().narrow(1, cut, time - cut) + noise,
            ],
            1,
        );
        for reference in [false, true] {
            let before = mixer.forward(&store.values, x.clone(), reference);
            let after = mixer.forward(&store.values, perturbed.clone(), reference);
            let past = (before.clone().narrow(1, 0, cut) - after.clone().narrow(1, 0, cut))
                .abs()
                .max()
                .into_scalar::<f32>();
            assert!(
                past < 1e-5,
                "{name} (reference: {reference}): earlier outputs moved by {past}"
            );
            let future = (before - after).abs().max().into_scalar::<f32>();
            assert!(future > 1e-4, "{name}: later outputs ignored the change");
        }
        // Chunked and sequential forms agree on the whole mixer.
        let fast = mixer.forward(&store.values, x.clone(), false);
        let slow = mixer.forward(&store.values, x, true);
        let difference = (fast - slow).abs().max().into_scalar::<f32>();
        assert!(
            difference < 1e-4,
            "{name}: chunked and sequential mixers differ by {difference}"
        );
    }
}

/// Found by the causality probe over the cognition sketches: a per-head constant as the query
/// of a recurrence panicked in the sequential form and gave one position in the chunked one.
#[test]
fn a_per_head_constant_as_query_key_or_value_is_read_at_every_position() {
    let source = "
mixer m(d_model, heads = 4) {
  g = x |> linear(heads) |> logsigmoid |> split_heads(heads)
  k = x |> linear(heads) |> sigmoid |> split_heads(heads)
  v = x |> linear(heads) |> split_heads(heads)
  q = head_param(heads, init = 1.0)
  one = head_param(heads) * 0 + 1
  h = decay_attention(q, k, v, g) + linear_attention(k, k, one)
  return h |> merge_heads |> linear(d_model)
}
";
    let valid = check_source(source, &config()).unwrap_or_else(|d| panic!("{d:?}"));
    let (mixer, store) = mixer_of(&valid, 5);
    let x = random_sequence(2, 24, 6);
    let fast = mixer.forward(&store.values, x.clone(), false);
    let slow = mixer.forward(&store.values, x, true);
    assert_eq!(fast.dims(), [2, 24, D_MODEL]);
    assert_eq!(slow.dims(), [2, 24, D_MODEL]);
    let difference = (fast - slow).abs().max().into_scalar::<f32>();
    assert!(
        difference < 1e-4,
        "chunked and sequential differ by {difference}"
    );
}

#[test]
fn gradients_are_finite_for_every_program() {
    for (name, source) in programs() {
        let valid = check_source(&source, &config()).unwrap_or_else(|d| panic!("{name}: {d:?}"));
        let shape = ModelShape {
            d_model: D_MODEL,
            n_layers: 1,
            vocab_size: 20,
            d_ff: 32,
            seq_len: 24,
            tied_embeddings: false,
        };
        let mut store = ParamStore::new();
        let mut rng = SmallRng::seed_from_u64(4);
        let model = LanguageModel::init(
            &valid.checked.graph,
            shape,
            8,
            &mut store,
            &mut rng,
            &Device::flex(),
        );
        let tokens: Vec<i64> = (0..2 * 24).map(|_| rng.random_range(0..20)).collect();
        let tokens: Tensor<2, Int> =
            Tensor::from_data(TensorData::new(tokens, [2, 24]), &Device::flex());
        let tracked = store.tracked();
        let loss = model.forward(&tracked, tokens, false).square().mean();
        let grads = loss.backward();
        for (param, info) in tracked.iter().zip(&store.infos) {
            let grad = param
                .grad(&grads)
                .unwrap_or_else(|| panic!("{name}: no gradient for {}", info.name));
            assert!(
                grad.is_finite().all().into_scalar::<bool>(),
                "{name}: non-finite gradient for {}",
                info.name
            );
        }
    }
}
