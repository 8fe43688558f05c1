//! Every chunked kernel equals its sequential reference (outputs and gradients, within 1e-4),
//! and no kernel lets an earlier position see a later one.

use burn::Tensor;
use burn::tensor::activation::{log_sigmoid, sigmoid};
use burn::tensor::{Device, TensorData};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use trainer::kernels::{attention, delta, linear, local};

const TOLERANCE: f32 = 1e-4;

fn device() -> Device {
    Device::flex()
}

fn random<const D: usize>(shape: [usize; D], rng: &mut SmallRng) -> Tensor<D> {
    let count: usize = shape.iter().product();
    let values: Vec<f32> = (0..count).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_data(TensorData::new(values, shape), &device())
}

fn max_difference<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

fn l2_normalise(t: Tensor<4>) -> Tensor<4> {
    t.clone() / (t.square().sum_dim(3) + 1e-6).sqrt()
}

/// Inputs of one kernel call: q, k, v, beta (sigmoid), scalar and per-key log decays.
struct Inputs {
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    beta: Tensor<4>,
    g_head: Tensor<4>,
    g_key: Tensor<4>,
}

const B: usize = 2;
const H: usize = 2;
const T: usize = 37; // not a multiple of the chunk size
const K: usize = 8;
const V: usize = 6;
const CHUNK: usize = 8;

fn inputs(seed: u64) -> Inputs {
    let mut rng = SmallRng::seed_from_u64(seed);
    Inputs {
        q: random([B, H, T, K], &mut rng),
        k: l2_normalise(random([B, H, T, K], &mut rng)),
        v: random([B, H, T, V], &mut rng),
        beta: sigmoid(random([B, H, T, 1], &mut rng)),
        g_head: log_sigmoid(random([B, H, T, 1], &mut rng) * 3.0 + 2.0),
        g_key: log_sigmoid(random([B, H, T, K], &mut rng) * 3.0 + 2.0),
    }
}

/// Inputs whose log decays are strong, about −25 a step (a cumulative −200 over a chunk of 8):
/// a kernel that took `exp` of a positive log-decay difference would overflow f32 here.
fn strongly_decayed_inputs(seed: u64) -> Inputs {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mild = inputs(seed);
    Inputs {
        g_head: log_sigmoid(random([B, H, T, 1], &mut rng) * 3.0 - 25.0),
        g_key: log_sigmoid(random([B, H, T, K], &mut rng) * 3.0 - 25.0),
        ..mild
    }
}

/// Every input as a leaf that records gradients, in field order, and the inputs built from them.
fn tracked(base: &Inputs) -> (Vec<Tensor<4>>, Inputs) {
    let leaves: Vec<Tensor<4>> = [
        &base.q,
        &base.k,
        &base.v,
        &base.beta,
        &base.g_head,
        &base.g_key,
    ]
    .into_iter()
    .map(|t| t.clone().autodiff().require_grad())
    .collect();
    let inputs = Inputs {
        q: leaves[0].clone(),
        k: leaves[1].clone(),
        v: leaves[2].clone(),
        beta: leaves[3].clone(),
        g_head: leaves[4].clone(),
        g_key: leaves[5].clone(),
    };
    (leaves, inputs)
}

type Kernel = fn(&Inputs, bool) -> Tensor<4>;

fn kernels() -> Vec<(&'static str, Kernel)> {
    vec![
        ("linear_attention", |i, reference| {
            if reference {
                linear::decay_attention_reference(i.q.clone(), i.k.clone(), i.v.clone(), None)
            } else {
                linear::decay_attention(i.q.clone(), i.k.clone(), i.v.clone(), None, CHUNK)
            }
        }),
        ("decay_attention per head", |i, reference| {
            if reference {
                linear::decay_attention_reference(
                    i.q.clone(),
                    i.k.clone(),
                    i.v.clone(),
                    Some(i.g_head.clone()),
                )
            } else {
                linear::decay_attention(
                    i.q.clone(),
                    i.k.clone(),
                    i.v.clone(),
                    Some(i.g_head.clone()),
                    CHUNK,
                )
            }
        }),
        ("decay_attention per key", |i, reference| {
            if reference {
                linear::decay_attention_reference(
                    i.q.clone(),
                    i.k.clone(),
                    i.v.clone(),
                    Some(i.g_key.clone()),
                )
            } else {
                linear::decay_attention(
                    i.q.clone(),
                    i.k.clone(),
                    i.v.clone(),
                    Some(i.g_key.clone()),
                    CHUNK,
                )
            }
        }),
        (
            "decay_attention per key, two-level chunks",
            |i, reference| {
                if reference {
                    linear::decay_attention_reference(
                        i.q.clone(),
                        i.k.clone(),
                        i.v.clone(),
                        Some(i.g_key.clone()),
                    )
                } else {
                    linear::decay_attention(
                        i.q.clone(),
                        i.k.clone(),
                        i.v.clone(),
                        Some(i.g_key.clone()),
                        32,
                    )
                }
            },
        ),
        ("delta_rule", |i, reference| {
            if reference {
                delta::delta_rule_reference(
                    i.q.clone(),
                    i.k.clone(),
                    i.v.clone(),
                    i.beta.clone(),
                    None,
                )
            } else {
                delta::delta_rule(
                    i.q.clone(),
                    i.k.clone(),
                    i.v.clone(),
                    i.beta.clone(),
                    None,
                    CHUNK,
                )
            }
        }),
        ("gated_delta_rule", |i, reference| {
            if reference {
                delta::delta_rule_reference(
                    i.q.clone(),
                    i.k.clone(),
                    i.v.clone(),
                    i.beta.clone(),
                    Some(i.g_head.clone()),
                )
            } else {
                delta::delta_rule(
                    i.q.clone(),
                    i.k.clone(),
                    i.v.clone(),
                    i.beta.clone(),
                    Some(i.g_head.clone()),
                    CHUNK,
                )
            }
        }),
        ("softmax_attention", |i, reference| {
            if reference {
                attention::softmax_attention_reference(i.q.clone(), i.k.clone(), i.v.clone(), None)
            } else {
                attention::softmax_attention(i.q.clone(), i.k.clone(), i.v.clone(), None)
            }
        }),
        ("window_attention", |i, reference| {
            if reference {
                attention::softmax_attention_reference(
                    i.q.clone(),
                    i.k.clone(),
                    i.v.clone(),
                    Some(5),
                )
            } else {
                attention::softmax_attention(i.q.clone(), i.k.clone(), i.v.clone(), Some(5))
            }
        }),
    ]
}

#[test]
fn chunked_kernels_equal_their_sequential_references() {
    let inputs = inputs(1);
    for (name, kernel) in kernels() {
        let difference = max_difference(kernel(&inputs, false), kernel(&inputs, true));
        assert!(
            difference < TOLERANCE,
            "{name}: chunked and sequential differ by {difference}"
        );
    }
}

#[test]
fn strong_decays_neither_overflow_nor_change_the_result() {
    let inputs = strongly_decayed_inputs(3);
    let g: Vec<f32> = inputs
        .g_key
        .clone()
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32");
    assert!(g.iter().all(|&x| x < -15.0), "the decays are strong");
    for (name, kernel) in kernels() {
        let (leaves, tracked) = tracked(&inputs);
        let chunked = kernel(&tracked, false);
        assert!(
            chunked.clone().is_finite().all().into_scalar::<bool>(),
            "{name}: non-finite output under strong decay"
        );
        let difference = max_difference(chunked.clone(), kernel(&inputs, true));
        assert!(difference < TOLERANCE, "{name}: differs by {difference}");
        let grads = chunked.sum().backward();
        for leaf in &leaves {
            if let Some(grad) = leaf.grad(&grads) {
                assert!(
                    grad.is_finite().all().into_scalar::<bool>(),
                    "{name}: non-finite gradient under strong decay"
                );
            }
        }
    }
}

#[test]
fn chunked_kernels_have_the_gradients_of_their_references() {
    for (name, kernel) in kernels() {
        let mut gradients: Vec<Vec<Tensor<4>>> = Vec::new();
        for reference in [false, true] {
            let (leaves, tracked) = tracked(&inputs(2));
            let output = kernel(&tracked, reference);
            let weights = random(output.dims(), &mut SmallRng::seed_from_u64(9));
            let grads = (output * weights).sum().backward();
            gradients.push(
                leaves
                    .iter()
                    .map(|leaf| {
                        leaf.grad(&grads)
                            .unwrap_or_else(|| leaf.clone().inner().zeros_like())
                    })
                    .collect(),
            );
        }
        for (index, (chunked, sequential)) in gradients[0].iter().zip(&gradients[1]).enumerate() {
            let difference = max_difference(chunked.clone(), sequential.clone());
            assert!(
                difference < TOLERANCE,
                "{name}: gradient of input {index} differs by {difference}"
            );
            assert!(
                chunked.clone().is_finite().all().into_scalar::<bool>(),
                "{name}: non-finite gradient"
            );
        }
    }
}

/// Changing inputs at positions ≥ `cut` must leave outputs at positions < `cut` unchanged.
#[test]
fn no_kernel_reads_the_future() {
    let cut = 20;
    for (name, kernel) in kernels() {
        for reference in [false, true] {
            let original = inputs(3);
            let mut perturbed = inputs(3);
            let mut rng = SmallRng::seed_from_u64(4);
            let future = |t: Tensor<4>, rng: &mut SmallRng| {
                let dims = t.dims();
                let noise = random([dims[0], dims[1], T - cut, dims[3]], rng);
                let past = t.clone().narrow(2, 0, cut);
                Tensor::cat(vec![past, t.narrow(2, cut, T - cut) + noise], 2)
            };
            perturbed.q = future(perturbed.q, &mut rng);
            perturbed.k = future(perturbed.k, &mut rng);
            perturbed.v = future(perturbed.v, &mut rng);
            perturbed.beta = future(perturbed.beta, &mut rng).clamp(0.01, 0.99);
            perturbed.g_head = future(perturbed.g_head, &mut rng).clamp_max(0.0);
            perturbed.g_key = future(perturbed.g_key, &mut rng).clamp_max(0.0);
            let before = kernel(&original, reference).narrow(2, 0, cut);
            let after = kernel(&perturbed, reference).narrow(2, 0, cut);
            let per_position: Vec<f32> = (0..cut)
                .map(|p| {
                    max_difference(
                        before.clone().narrow(2, p, 1),
                        after.clone().narrow(2, p, 1),
                    )
                })
                .collect();
            let moved = per_position.iter().copied().fold(0.0f32, f32::max);
            assert!(
                moved < 1e-6,
                "{name} (reference: {reference}) reads the future: {per_position:?}"
            );
            let later_changed =
                max_difference(kernel(&original, reference), kernel(&perturbed, reference));
            assert!(
                later_changed > 1e-3,
                "{name}: perturbing the future changed nothing at all"
            );
        }
    }
}

#[test]
fn short_convolution_equals_its_reference_and_is_causal() {
    let mut rng = SmallRng::seed_from_u64(5);
    let x: Tensor<3> = random([2, 19, 6], &mut rng);
    let weight: Tensor<2> = random([6, 4], &mut rng);
    let fast = local::short_conv(x.clone(), weight.clone());
    let slow = local::short_conv_reference(x.clone(), weight.clone());
    assert!(max_difference(fast.clone(), slow) < TOLERANCE);
    let changed = Tensor::cat(
        vec![x.clone().narrow(1, 0, 10), x.narrow(1, 10, 9) * 3.0],
        1,
    );
    let after = local::short_conv(changed, weight);
    assert!(max_difference(fast.narrow(1, 0, 10), after.narrow(1, 0, 10)) < 1e-6);
}

#[test]
fn token_shift_moves_values_to_later_positions() {
    let x: Tensor<3> = Tensor::from_data(
        TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 4, 1]),
        &device(),
    );
    let shifted = local::token_shift(x, 2, 1);
    let values = shifted.into_data();
    assert_eq!(values.as_slice::<f32>().unwrap(), &[0.0, 0.0, 1.0, 2.0]);
}
