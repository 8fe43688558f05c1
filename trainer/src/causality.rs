//! The dynamic causality probe: the static check proves a program causal from each operation's
//! time kernel; this measures it. The mixer is built with random parameters, run on a random
//! sequence, then run again with every position after `t` changed; no output at or before `t`
//! may move, at several `t`, in both the chunked and the sequential (reference) forms. A program
//! the checker accepts and the probe refuses is a checker bug.

use archspec::Graph;
use burn::Tensor;
use burn::tensor::{Device, TensorData};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::mixer::Mixer;
use crate::params::ParamStore;

/// How far an output at or before `t` may move when only later inputs changed, relative to
/// the largest output (at least 1): float32 rounding of reordered sums, nothing more. A real
/// leak moves outputs by the size of the change (here, inputs move by up to 1).
pub const TOLERANCE: f32 = 1e-5;

/// The sizes the probe runs at.
#[derive(Debug, Clone, Copy)]
pub struct ProbeShape {
    pub d_model: usize,
    pub seq_len: usize,
    /// The chunk length of the chunked kernels (smaller than `seq_len`, so chunks are crossed).
    pub chunk_size: usize,
}

impl Default for ProbeShape {
    fn default() -> Self {
        ProbeShape {
            d_model: 32,
            seq_len: 24,
            chunk_size: 8,
        }
    }
}

/// An output that moved when only later inputs did.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// The last unchanged input position; outputs up to it moved.
    pub cut: usize,
    /// The first output position that moved.
    pub position: usize,
    /// How far it moved, relative to the output scale.
    pub change: f32,
    /// In the sequential reference form (else the chunked one).
    pub reference: bool,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "changing the inputs after position {} moved the output at position {} by {:.3e} (relative) in the {} form",
            self.cut,
            self.position,
            self.change,
            if self.reference {
                "sequential"
            } else {
                "chunked"
            }
        )
    }
}

/// The positions after which inputs are changed: the first, around a chunk boundary, the
/// middle and the one before last.
pub fn cuts(shape: ProbeShape) -> Vec<usize> {
    let last = shape.seq_len.saturating_sub(2);
    let mut cuts = vec![
        0,
        shape.chunk_size.saturating_sub(1).min(last),
        shape.seq_len / 2,
        last,
    ];
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// Why a probe failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeError {
    Leak(Violation),
    /// The mixer's output was not `[1, seq_len, d_model]` floats.
    Output(String),
    /// The unperturbed output is already infinite or NaN (a program that divides by zero at
    /// its initial parameters): no change can be measured, so causality is neither shown nor
    /// refuted. Training such a program diverges, and is recorded so.
    NonFinite {
        position: usize,
        reference: bool,
    },
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Leak(violation) => violation.fmt(f),
            ProbeError::Output(message) => f.write_str(message),
            ProbeError::NonFinite {
                position,
                reference,
            } => write!(
                f,
                "the output at position {position} is not finite before any change ({} form): nothing to measure",
                if *reference { "sequential" } else { "chunked" }
            ),
        }
    }
}

/// Probes `graph` (checked at `shape`'s width); `Ok` with the largest relative change seen at
/// or before a cut.
pub fn probe(graph: &Graph, shape: ProbeShape, seed: u64) -> Result<f32, ProbeError> {
    let device = Device::flex();
    let mut store = ParamStore::new();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mixer = Mixer::init(graph, "m", shape.chunk_size, &mut store, &mut rng, &device);
    let (time, width) = (shape.seq_len, shape.d_model);
    probe_forward(shape, &mut rng, |input, reference| {
        let x = Tensor::<3>::from_data(TensorData::new(input.to_vec(), [1, time, width]), &device);
        let output = mixer.forward(&store.values, x, reference);
        let dims = output.dims();
        output.into_data().try_to_vec().map_err(|e| {
            ProbeError::Output(format!("the mixer's output {dims:?} is not f32: {e:?}"))
        })
    })
}

/// The probe over any sequence map `forward(input, reference)` of `[seq_len × d_model]`
/// row-major values, in both forms.
pub fn probe_forward(
    shape: ProbeShape,
    rng: &mut SmallRng,
    mut forward: impl FnMut(&[f32], bool) -> Result<Vec<f32>, ProbeError>,
) -> Result<f32, ProbeError> {
    let (time, width) = (shape.seq_len, shape.d_model);
    let mut random =
        |count: usize| -> Vec<f32> { (0..count).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
    let x = random(time * width);
    let changed = random(time * width);
    let mut run = |input: &[f32], reference: bool| -> Result<Vec<f32>, ProbeError> {
        let output = forward(input, reference)?;
        if output.len() != time * width {
            return Err(ProbeError::Output(format!(
                "the mixer gave {} values, expected {time} × {width}",
                output.len()
            )));
        }
        Ok(output)
    };
    let mut largest = 0.0f32;
    for reference in [false, true] {
        let before = run(&x, reference)?;
        if let Some(index) = before.iter().position(|v| !v.is_finite()) {
            return Err(ProbeError::NonFinite {
                position: index / width,
                reference,
            });
        }
        let scale = before.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for cut in cuts(shape) {
            // Positions 0..=cut keep their inputs; every later one gets another.
            let split = (cut + 1) * width;
            let mut perturbed = x[..split].to_vec();
            perturbed.extend_from_slice(&changed[split..]);
            let after = run(&perturbed, reference)?;
            for position in 0..=cut {
                let range = position * width..(position + 1) * width;
                let moved = before[range.clone()]
                    .iter()
                    .zip(&after[range])
                    .map(|(a, b)| (a - b).abs() / scale)
                    // NaN counts as moved: a leak may show as one.
                    .fold(
                        0.0f32,
                        |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
                    );
                if moved > TOLERANCE {
                    return Err(ProbeError::Leak(Violation {
                        cut,
                        position,
                        change: moved,
                        reference,
                    }));
                }
                largest = largest.max(moved);
            }
        }
    }
    Ok(largest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Output `t` is input `t + 1` in the chunked form only: a leak of one position.
    fn peeks_ahead(input: &[f32], reference: bool, width: usize) -> Vec<f32> {
        if reference {
            return input.to_vec();
        }
        let mut output = input[width..].to_vec();
        output.extend(std::iter::repeat_n(0.0, width));
        output
    }

    #[test]
    fn a_map_that_reads_one_position_ahead_is_caught_at_the_first_cut() {
        let shape = ProbeShape::default();
        let mut rng = SmallRng::seed_from_u64(0);
        let width = shape.d_model;
        let found = probe_forward(shape, &mut rng, |input, reference| {
            Ok(peeks_ahead(input, reference, width))
        });
        match found {
            Err(ProbeError::Leak(violation)) => {
                assert_eq!((violation.cut, violation.position), (0, 0), "{violation}");
                assert!(!violation.reference);
                assert!(violation.change > 1e-2, "{violation}");
            }
            other => panic!("the leak was missed: {other:?}"),
        }
        // The same map without the peek (the identity) passes, with no change at all.
        let mut rng = SmallRng::seed_from_u64(0);
        let found = probe_forward(shape, &mut rng, |input, _| Ok(input.to_vec()));
        assert_eq!(found, Ok(0.0));
    }

    #[test]
    fn an_output_of_the_wrong_size_is_an_error_not_a_pass() {
        let shape = ProbeShape::default();
        let mut rng = SmallRng::seed_from_u64(0);
        let found = probe_forward(shape, &mut rng, |_, _| Ok(Vec::new()));
        assert!(matches!(found, Err(ProbeError::Output(_))), "{found:?}");
    }

    #[test]
    fn an_output_already_not_finite_is_unmeasurable_and_a_nan_after_a_change_is_a_leak() {
        let shape = ProbeShape::default();
        let width = shape.d_model;
        let mut rng = SmallRng::seed_from_u64(0);
        let found = probe_forward(shape, &mut rng, |input, _| {
            let mut output = input.to_vec();
            output[3 * width + 1] = f32::INFINITY;
            Ok(output)
        });
        assert_eq!(
            found,
            Err(ProbeError::NonFinite {
                position: 3,
                reference: false
            })
        );
        // Finite before, NaN at position 0 once later inputs change: that is movement.
        let mut rng = SmallRng::seed_from_u64(0);
        let mut calls = 0;
        let found = probe_forward(shape, &mut rng, |input, _| {
            calls += 1;
            let mut output = input.to_vec();
            if calls > 1 {
                output[0] = f32::NAN;
            }
            Ok(output)
        });
        assert!(
            matches!(found, Err(ProbeError::Leak(Violation { position: 0, .. }))),
            "{found:?}"
        );
    }
}
