//! The synthetic tasks' definitions, checked example by example, and the initial parameter
//! distributions that make them learnable (PyTorch's defaults).

use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::collections::{BTreeSet, HashMap};
use trainer::data::{mqar, mqar_answered};
use trainer::params::{Init, ParamStore};

const VOCAB: usize = 256;
const SEQ_LEN: usize = 64;
const PAIRS: usize = 8;

#[test]
fn zoology_mqar_queries_each_key_alone_among_random_distractors() {
    let mut rng = SmallRng::seed_from_u64(7);
    let mut filler = BTreeSet::new();
    for _ in 0..200 {
        let example = mqar(&mut rng, VOCAB, SEQ_LEN, PAIRS, 0.01);
        let (inputs, targets, mask) = (&example.inputs, &example.targets, &example.mask);
        assert_eq!(inputs.len(), SEQ_LEN);
        assert_eq!(targets.len(), SEQ_LEN);
        let context = 2 * PAIRS;
        let keys: Vec<i64> = inputs[..context].iter().step_by(2).copied().collect();
        let values: Vec<i64> = inputs[1..context].iter().step_by(2).copied().collect();
        assert!(keys.iter().all(|&k| (1..VOCAB as i64 / 2).contains(&k)));
        assert!(
            values
                .iter()
                .all(|&v| (VOCAB as i64 / 2..VOCAB as i64).contains(&v))
        );
        assert_eq!(
            keys.iter().collect::<BTreeSet<_>>().len(),
            PAIRS,
            "keys distinct"
        );
        assert_eq!(
            values.iter().collect::<BTreeSet<_>>().len(),
            PAIRS,
            "values distinct"
        );
        let answer: HashMap<i64, i64> = keys.iter().copied().zip(values.iter().copied()).collect();

        let scored: Vec<usize> = (0..SEQ_LEN).filter(|&p| mask[p] == 1.0).collect();
        assert_eq!(scored.len(), PAIRS, "every key is queried once");
        let mut queried = BTreeSet::new();
        for &position in &scored {
            assert!(position >= context && (position - context).is_multiple_of(2));
            let key = inputs[position];
            assert_eq!(
                targets[position], answer[&key],
                "the target is the key's value"
            );
            queried.insert(key);
        }
        assert_eq!(queried.len(), PAIRS);
        // Everything after the context that is not a query is a distractor, drawn from the
        // whole vocabulary; the answer is never written after its query.
        for position in context..SEQ_LEN {
            if mask[position] == 0.0 {
                filler.insert(inputs[position]);
            }
        }
    }
    assert!(
        filler.len() > VOCAB * 9 / 10,
        "distractors cover the vocabulary: {} distinct tokens",
        filler.len()
    );
    assert!(filler.contains(&0), "token 0 is a possible distractor too");
}

#[test]
fn zoology_mqar_never_echoes_the_answer_after_its_query() {
    // With random distractors the token after a query equals its answer only by chance (1/256).
    let mut rng = SmallRng::seed_from_u64(3);
    let (mut echoed, mut queries) = (0, 0);
    for _ in 0..500 {
        let example = mqar(&mut rng, VOCAB, SEQ_LEN, PAIRS, 0.01);
        for position in (0..SEQ_LEN - 1).filter(|&p| example.mask[p] == 1.0) {
            queries += 1;
            if example.inputs[position + 1] == example.targets[position] {
                echoed += 1;
            }
        }
    }
    assert!(
        echoed * 50 < queries,
        "{echoed} of {queries} answers echoed"
    );
}

#[test]
fn the_answered_variant_is_the_easier_layout() {
    let mut rng = SmallRng::seed_from_u64(5);
    for _ in 0..100 {
        let example = mqar_answered(&mut rng, 64, 32, 4, 0.01);
        for position in (0..31).filter(|&p| example.mask[p] == 1.0) {
            assert_eq!(example.inputs[position + 1], example.targets[position]);
        }
        let unused = (8..32)
            .filter(|&p| example.inputs[p] == 0 && example.mask[p] == 0.0)
            .count();
        assert!(unused > 0, "no distractors: unused positions stay 0");
    }
}

#[test]
fn mqar_config_defaults_to_zoology_and_the_answered_layout_is_explicit() {
    let config = |extra: &str| {
        trainer::TrainConfig::from_yaml(&format!(
            "model: {{d_model: 8, n_layers: 1}}\ndata: {{vocab_size: 64, seq_len: 32, tasks: [{{kind: mqar, num_kv_pairs: 8{extra}}}]}}\nsteps: 1\nbatch_size: 1\n"
        ))
    };
    let zoology = config("").expect("valid");
    assert!(matches!(
        zoology.data.tasks[0],
        trainer::config::TaskConfig::Mqar {
            variant: trainer::config::MqarVariant::Zoology,
            ..
        }
    ));
    let answered = config(", variant: answered").expect("valid");
    assert!(matches!(
        answered.data.tasks[0],
        trainer::config::TaskConfig::Mqar {
            variant: trainer::config::MqarVariant::Answered,
            ..
        }
    ));
    let error = config(", variant: easy").expect_err("unknown variant");
    assert!(error.contains("variant"), "{error}");
    // Zoology's bound: the pairs and one query slot per pair fit in the sequence.
    let error = trainer::TrainConfig::from_yaml(
        "model: {d_model: 8, n_layers: 1}\ndata: {vocab_size: 64, seq_len: 31, tasks: [{kind: mqar, num_kv_pairs: 8}]}\nsteps: 1\nbatch_size: 1\n",
    )
    .expect_err("8 pairs need 32 positions");
    assert!(error.contains("data.tasks[0].num_kv_pairs"), "{error}");
}

fn moments(values: &[f32]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let variance = values
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, variance.sqrt())
}

fn drawn(init: Init, shape: [usize; 2]) -> Vec<f32> {
    let mut store = ParamStore::new();
    let mut rng = SmallRng::seed_from_u64(11);
    let device = trainer::device("cpu").expect("cpu");
    let id = store.add("p", shape, init, true, &mut rng, &device);
    store.values[id]
        .clone()
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 values")
}

#[test]
fn inits_match_pytorch_defaults() {
    // nn.Embedding: N(0, 1).
    let (mean, std) = moments(&drawn(Init::Normal(1.0), [256, 64]));
    assert!(
        mean.abs() < 0.02 && (std - 1.0).abs() < 0.02,
        "{mean} {std}"
    );
    // nn.Linear: U(±1/√fan_in), std = bound/√3.
    let values = drawn(Init::UniformFanIn, [64, 256]);
    let bound = 1.0 / 8.0;
    assert!(values.iter().all(|v| v.abs() <= bound));
    let (_, std) = moments(&values);
    assert!((std - bound as f64 / 3f64.sqrt()).abs() < 0.003, "{std}");
}

#[test]
fn the_model_embedding_has_unit_variance() {
    let config = trainer::TrainConfig::from_yaml(
        "model: {d_model: 64, n_layers: 1}\ndata: {vocab_size: 256, seq_len: 32, tasks: [{kind: mqar, num_kv_pairs: 8}]}\nsteps: 1\nbatch_size: 1\n",
    )
    .expect("valid");
    let source = archspec::library::get("softmax_rope")
        .expect("library")
        .source;
    let prepared = trainer::prepare(source, config).expect("valid");
    let device = trainer::device("cpu").expect("cpu");
    let mut store = ParamStore::new();
    trainer::model::LanguageModel::init(
        &prepared.program.checked.graph,
        prepared.shape,
        16,
        &mut store,
        &mut SmallRng::seed_from_u64(0),
        &device,
    );
    let index = store
        .infos
        .iter()
        .position(|info| info.name == "embedding")
        .expect("an embedding parameter");
    let values = store.values[index]
        .clone()
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32");
    let (_, std) = moments(&values);
    assert!((std - 1.0).abs() < 0.05, "embedding std {std}");
}
