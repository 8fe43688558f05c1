//! Benchmarks (not tests): training throughput per library architecture (the real training
//! loop, optimiser step included), and chunked versus
//! sequential kernels at T = 512. Run: `cargo bench -p trainer --bench throughput`.
//! With `--features tch` it also times the libtorch backend on CPU.

use archspec::{CheckConfig, ModelShape, check_source, library};
use burn::Tensor;
use burn::tensor::activation::{log_sigmoid, sigmoid};
use burn::tensor::{Device, TensorData};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;
use trainer::kernels::{delta, linear};
use trainer::{Event, TrainConfig};

fn main() {
    let devices: Vec<(&str, Device)> = {
        #[allow(unused_mut)]
        let mut devices = vec![("flex", trainer::device("cpu").expect("cpu"))];
        #[cfg(feature = "tch")]
        devices.push(("tch", trainer::device("tch-cpu").expect("tch")));
        devices
    };
    println!(
        "## Training throughput (d_model 128, 2 layers, batch 16, T 128: forward, backward, clipping and the AdamW step)"
    );
    println!("| architecture | backend | tokens/s |");
    println!("|---|---|---|");
    for (backend, device) in &devices {
        if std::env::var("SKIP_THROUGHPUT").is_ok() {
            break;
        }
        for entry in library::ENTRIES {
            let tokens_per_s = training_throughput(entry.source, device);
            println!("| {} | {backend} | {tokens_per_s:.0} |", entry.name);
        }
    }
    println!();
    println!(
        "## Data loading from token shards (llm.c layout, uint16, 8M tokens, page cache warm): batches the loader makes per second, in tokens"
    );
    println!("| batch × T | tokens/s |");
    println!("|---|---|");
    for (batch, seq_len) in [(16, 128), (16, 2048)] {
        println!(
            "| {batch} × {seq_len} | {:.0} |",
            loading_throughput(batch, seq_len)
        );
    }
    println!();
    match tokenizing_throughput() {
        Some((tokens_per_s, bytes_per_s)) => println!(
            "## Tokenizing text (byte-level BPE of 8192 tokens trained on Debian's licence texts, encode_batch on all cores): {tokens_per_s:.0} tokens/s, {:.1} MB/s\n",
            bytes_per_s / 1e6
        ),
        None => println!("## Tokenizing text: skipped (/usr/share/common-licenses is absent)\n"),
    }
    println!(
        "## Chunked vs sequential kernels (B 4, H 4, T 512, K = V = 32, chunk 32), forward + backward"
    );
    println!("| kernel | chunked ms | sequential ms | speed-up | max difference |");
    println!("|---|---|---|---|---|");
    for (name, run) in kernel_cases() {
        let device = Device::flex();
        let inputs = kernel_inputs(&device);
        let (chunked_ms, chunked) = time_kernel(|| run(&inputs, false));
        let (sequential_ms, sequential) = time_kernel(|| run(&inputs, true));
        let difference = (chunked - sequential).abs().max().into_scalar::<f32>();
        println!(
            "| {name} | {chunked_ms:.1} | {sequential_ms:.1} | {:.1}× | {difference:.2e} |",
            sequential_ms / chunked_ms
        );
    }
}

/// Tokens per second a corpus task (and `archlab data prepare`) tokenizes at: a tokenizer of
/// 8192 tokens trained on the licence texts, then 20 copies of them encoded.
fn tokenizing_throughput() -> Option<(f64, f64)> {
    let licences = std::path::Path::new("/usr/share/common-licenses");
    let documents: Vec<String> = std::fs::read_dir(licences)
        .ok()?
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .collect();
    let dir = std::env::temp_dir().join(format!("archlab-bench-tok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join("tokenizer.json");
    let tokenizer =
        trainer::tokenizer::train_byte_level_bpe(documents.clone().into_iter(), 8192, &path)
            .expect("tokenizer");
    let corpus: Vec<String> = (0..20).flat_map(|_| documents.clone()).collect();
    let bytes: usize = corpus.iter().map(String::len).sum();
    let started = Instant::now();
    let encoded = tokenizer.encode_documents(corpus).expect("encode");
    let seconds = started.elapsed().as_secs_f64();
    let tokens: usize = encoded.iter().map(Vec::len).sum();
    let _ = std::fs::remove_dir_all(&dir);
    Some((tokens as f64 / seconds, bytes as f64 / seconds))
}

/// Tokens per second `data::Stream` delivers from a shard (random windows, every token
/// checked against the vocabulary), to compare with training's tokens per second above.
fn loading_throughput(batch: usize, seq_len: usize) -> f64 {
    let dir = std::env::temp_dir().join(format!("archlab-bench-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (train, validation) = (dir.join("train.bin"), dir.join("val.bin"));
    let tokens: Vec<u32> = (0..8_000_000u32)
        .map(|i| i.wrapping_mul(2_654_435_761) % 50_257)
        .collect();
    let width = trainer::shards::TokenWidth::Uint16;
    trainer::shards::write_llmc(&train, &tokens, width).expect("write");
    trainer::shards::write_llmc(&validation, &tokens[..100_000], width).expect("write");
    let data: trainer::config::DataConfig = serde_yaml::from_str(&format!(
        "{{vocab_size: 50257, seq_len: {seq_len}, tasks: [{{kind: tokens, train: [{:?}], validation: [{:?}]}}]}}",
        train.display().to_string(),
        validation.display().to_string()
    ))
    .expect("config");
    let sources = trainer::data::Sources::open(&data).expect("sources");
    let mut stream = trainer::data::Stream::new(&data, &sources, trainer::data::Split::Train, 0)
        .expect("stream");
    stream.next_batch(batch).expect("batch"); // warm the page cache
    let rounds = 50;
    let started = Instant::now();
    for _ in 0..rounds {
        stream.next_batch(batch).expect("batch");
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    (rounds * batch * seq_len) as f64 / seconds
}

/// Tokens per second of the real training loop (`training::train_trial`: forward, backward,
/// gradient clipping and the AdamW step), timed from the end of the first step (which pays for
/// allocation and kernel set-up) to the end of the sixth.
fn training_throughput(source: &str, device: &Device) -> f64 {
    let (batch, seq_len) = (16, 128);
    let config = CheckConfig {
        d_model: 128,
        seq_len,
        ..CheckConfig::default()
    };
    let valid = check_source(source, &config).expect("library programs are valid");
    let shape = ModelShape {
        d_model: 128,
        n_layers: 2,
        vocab_size: 64,
        d_ff: 256,
        seq_len,
        tied_embeddings: false,
    };
    let train: TrainConfig = serde_yaml::from_str(
        "{model: {d_model: 128, n_layers: 2, d_ff: 256}, \
          data: {vocab_size: 64, seq_len: 128, tasks: [{kind: mqar, num_kv_pairs: 16}]}, \
          steps: 6, batch_size: 16, optim: {lr: 0.001, warmup_steps: 0}, \
          eval_batches: 1, progress_every: 1}",
    )
    .expect("train config");
    let mut elapsed = Vec::new();
    let sources = trainer::data::Sources::open(&train.data).expect("sources");
    trainer::training::train_trial(
        &valid.checked.graph,
        shape,
        &train,
        0.001,
        0,
        device,
        &sources,
        None,
        &std::sync::atomic::AtomicBool::new(false),
        &mut |event| {
            if let Event::Progress(progress) = event {
                elapsed.push(progress.elapsed_s);
            }
        },
    )
    .expect("training runs");
    let (first, last) = (elapsed[0], elapsed[elapsed.len() - 1]);
    ((elapsed.len() - 1) * batch * seq_len) as f64 / (last - first)
}

struct KernelInputs {
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    beta: Tensor<4>,
    g_key: Tensor<4>,
}

fn kernel_inputs(device: &Device) -> KernelInputs {
    let mut rng = SmallRng::seed_from_u64(1);
    let mut random = |shape: [usize; 4]| -> Tensor<4> {
        let count: usize = shape.iter().product();
        let values: Vec<f32> = (0..count).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    };
    let k = random([4, 4, 512, 32]);
    KernelInputs {
        q: random([4, 4, 512, 32]),
        k: k.clone() / (k.square().sum_dim(3) + 1e-6).sqrt(),
        v: random([4, 4, 512, 32]),
        beta: sigmoid(random([4, 4, 512, 1])),
        g_key: log_sigmoid(random([4, 4, 512, 32]) + 3.0),
    }
}

type KernelCase = fn(&KernelInputs, bool) -> Tensor<4>;

fn kernel_cases() -> Vec<(&'static str, KernelCase)> {
    vec![
        ("delta rule", |i, sequential| {
            let (q, k, v, beta) = track(i);
            if sequential {
                delta::delta_rule_reference(q, k, v, beta, None)
            } else {
                delta::delta_rule(q, k, v, beta, None, 32)
            }
        }),
        ("GLA (per-key decay)", |i, sequential| {
            let (q, k, v, _) = track(i);
            if sequential {
                linear::decay_attention_reference(q, k, v, Some(i.g_key.clone()))
            } else {
                linear::decay_attention(q, k, v, Some(i.g_key.clone()), 32)
            }
        }),
    ]
}

fn track(i: &KernelInputs) -> (Tensor<4>, Tensor<4>, Tensor<4>, Tensor<4>) {
    let leaf = |t: &Tensor<4>| t.clone().autodiff().require_grad();
    (leaf(&i.q), leaf(&i.k), leaf(&i.v), leaf(&i.beta))
}

/// Fastest of 5 runs of forward + backward, in milliseconds (the minimum is the figure least
/// disturbed by other work on the machine), and the (inner) output.
fn time_kernel(run: impl Fn() -> Tensor<4>) -> (f64, Tensor<4>) {
    let mut times = Vec::new();
    let mut output = None;
    for _ in 0..5 {
        let started = Instant::now();
        let out = run();
        let grads = out.clone().sum().backward();
        drop(grads);
        let out = out.inner();
        let _ = out.clone().sum().into_scalar::<f32>();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        output = Some(out);
    }
    times.sort_by(f64::total_cmp);
    (times[0], output.expect("ran"))
}
