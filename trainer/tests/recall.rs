//! The recall benchmark config of `examples/train/mqar.yaml`, trained for real: softmax
//! attention with RoPE and DeltaNet learn associative recall; plain linear attention, whose
//! state only accumulates, scores clearly lower. (About four minutes on two cores.)

use trainer::{Status, TrainConfig};

fn recall(program: &str) -> f64 {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/train/mqar.yaml"
    ))
    .expect("example config");
    let config = TrainConfig::from_yaml(&text).expect("example config is valid");
    let source = archspec::library::get(program)
        .expect("library program")
        .source;
    let prepared = trainer::prepare(source, config).expect("valid program");
    let result = trainer::run(
        &prepared,
        &trainer::device("cpu").expect("cpu"),
        &mut |_| {},
    );
    assert_eq!(result.status, Status::Ok, "{program}: {:?}", result.error);
    let accuracy = result.accuracy["mqar"];
    println!(
        "{program}: mqar accuracy {accuracy:.3} in {:.0} s",
        result.wall_s
    );
    accuracy
}

#[test]
fn softmax_and_deltanet_learn_recall_and_linear_attention_does_not() {
    let softmax = recall("softmax_rope");
    let deltanet = recall("deltanet");
    let linear = recall("linear_attention");
    assert!(
        softmax >= 0.9,
        "softmax attention reached only {softmax:.3}"
    );
    assert!(deltanet >= 0.9, "DeltaNet reached only {deltanet:.3}");
    assert!(
        linear < 0.8 && linear < softmax.min(deltanet) - 0.2,
        "linear attention reached {linear:.3}"
    );
}
