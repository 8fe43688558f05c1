//! Campaign manifests: the bundled example parses, and malformed manifests are rejected with
//! the field path and what was expected.

use archlab::api::{ManifestError, parse_campaign};

fn quickstart() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/quickstart.yaml"
    ))
    .expect("example exists")
}

fn rejected(text: &str) -> ManifestError {
    parse_campaign(text).expect_err("manifest should be rejected")
}

#[test]
fn the_quickstart_manifest_is_a_valid_campaign() {
    let campaign = parse_campaign(&quickstart()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(campaign.metadata.name.as_deref(), Some("quickstart"));
    assert_eq!(campaign.spec.seeds.len(), 4);
    assert_eq!(campaign.spec.baseline, "linear_attention");
    assert_eq!(campaign.spec.stages.verification.seeds, 3);
    assert_eq!(
        campaign.spec.search.sampling.parent_top_k, 10,
        "defaults fill what the manifest leaves out"
    );
}

#[test]
fn type_errors_and_unknown_fields_name_the_field_path() {
    let wrong_type = rejected(&quickstart().replace("steps: 400", "steps: many"));
    assert_eq!(wrong_type.path, "spec.stages.exploration.train.steps");
    let unknown =
        rejected(&quickstart().replace("maxRevisions: 2", "maxRevisions: 2\n    temperature: 3"));
    assert_eq!(unknown.path, "spec.search.temperature");
    assert!(
        unknown.message.contains("temperature"),
        "{}",
        unknown.message
    );
    let missing = rejected(&quickstart().replace("  baseline: linear_attention\n", ""));
    assert!(missing.message.contains("baseline"), "{missing}");
}

#[test]
fn semantic_errors_name_the_field_and_what_was_expected() {
    let unknown_seed = rejected(&quickstart().replace("library: gla", "library: glaa"));
    assert_eq!(unknown_seed.path, "spec.seeds[2].library");
    assert!(unknown_seed.message.contains("expected one of"));
    let baseline =
        rejected(&quickstart().replace("baseline: linear_attention", "baseline: transformer"));
    assert_eq!(baseline.path, "spec.baseline");
    let range = rejected(&quickstart().replace(
        "num_kv_pairs: 4}]\n        steps: 400",
        "num_kv_pairs: 40}]\n        steps: 400",
    ));
    assert_eq!(
        range.path,
        "spec.stages.exploration.train.data.tasks[0].num_kv_pairs"
    );
    let inline = rejected(&quickstart().replace(
        "    - name: retnet\n      library: retnet\n",
        "    - name: peek\n      program: \"mixer p(d_model) {\\n  return x |> token_shift(-1) |> linear(d_model)\\n}\"\n",
    ));
    assert_eq!(inline.path, "spec.seeds[1].program");
    assert!(inline.message.contains("E0401"), "{}", inline.message);
    let kind = rejected(&quickstart().replace("kind: Campaign", "kind: Experiment"));
    assert_eq!(kind.path, "apiVersion/kind");
}

#[test]
fn seeds_budgets_and_parallelism_are_checked() {
    const SEEDS: &str = "  seeds:\n    - name: linear_attention\n      library: linear_attention\n    - name: retnet\n      library: retnet\n    - name: gla\n      library: gla\n    - name: mamba2_ssd\n      library: mamba2_ssd\n";
    assert!(quickstart().contains(SEEDS));
    let cases: [(&str, &str, &str, &str); 9] = [
        (SEEDS, "  seeds: []\n", "spec.seeds", "at least one seed"),
        (
            "    - name: gla\n",
            "    - name: retnet\n",
            "spec.seeds[2].name",
            "used twice",
        ),
        (
            "      library: gla\n",
            "      library: gla\n      program: \"mixer m(d_model) {\\n  return x\\n}\"\n",
            "spec.seeds[2]",
            "exactly one of",
        ),
        (
            "      library: gla\n",
            "",
            "spec.seeds[2]",
            "exactly one of",
        ),
        (
            "maxExperiments: 40",
            "maxExperiments: 0",
            "spec.budget.maxExperiments",
            "at least 1",
        ),
        (
            "maxComputeHours: 0.5",
            "maxComputeHours: 0",
            "spec.budget.maxComputeHours",
            "positive",
        ),
        (
            "maxComputeHours: 0.5",
            "maxComputeHours: -1",
            "spec.budget.maxComputeHours",
            "positive",
        ),
        (
            "maxComputeHours: 0.5",
            "maxComputeHours: 0.5\n    maxLlmTokens: 0",
            "spec.budget.maxLlmTokens",
            "at least 1",
        ),
        (
            "parallelism: 2",
            "parallelism: 0",
            "spec.parallelism",
            "at least 1",
        ),
    ];
    for (from, to, path, words) in cases {
        let manifest = quickstart().replacen(from, to, 1);
        assert_ne!(manifest, quickstart(), "{from:?} not found");
        let error = rejected(&manifest);
        assert_eq!(error.path, path, "{to:?}: {error}");
        assert!(error.message.contains(words), "{to:?}: {error}");
    }
}

/// The CRD's size bounds, as the API server refuses them (`kubectl apply`), refused here too.
#[test]
fn sizes_past_the_crd_s_bounds_are_refused_with_the_field_path() {
    let limits = |n: usize| n.to_string();
    let many_seeds: String = (0..=archlab::api::limits::SEEDS)
        .map(|i| format!("    - name: s{i}\n      library: gla\n"))
        .collect();
    let long_name = "n".repeat(archlab::api::limits::SEED_NAME + 1);
    let long_program = "x".repeat(archlab::api::limits::PROGRAM + 1);
    let cases = [
        (
            "  seeds:\n".to_string(),
            format!("  seeds:\n{many_seeds}"),
            "spec.seeds".to_string(),
            format!("at most {} items", limits(archlab::api::limits::SEEDS)),
        ),
        (
            "    - name: gla\n".into(),
            format!("    - name: {long_name}\n"),
            "spec.seeds[2].name".into(),
            format!("at most {} characters", archlab::api::limits::SEED_NAME),
        ),
        (
            "      library: gla\n".into(),
            format!("      program: {long_program}\n"),
            "spec.seeds[2].program".into(),
            format!("at most {} characters", archlab::api::limits::PROGRAM),
        ),
        (
            "parallelism: 2".into(),
            "parallelism: 4294967296".into(),
            "spec.parallelism".into(),
            "at most 4294967295".into(),
        ),
    ];
    for (from, to, path, words) in cases {
        let manifest = quickstart().replacen(&from, &to, 1);
        assert_ne!(manifest, quickstart(), "{from:?} not found");
        let error = rejected(&manifest);
        assert_eq!(error.path, path, "{error}");
        assert!(error.message.contains(&words), "{error}");
    }
}

#[test]
fn every_example_campaign_parses_and_llm_settings_are_checked() {
    for example in [
        "examples/llm.yaml",
        "examples/bench/search.yaml",
        "examples/ladder.yaml",
    ] {
        let path = format!("{}/{example}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        parse_campaign(&text).unwrap_or_else(|e| panic!("{example}: {e}"));
    }
    let llm_without_block =
        rejected(&quickstart().replace("backend: evolutionary", "backend: llm"));
    assert_eq!(llm_without_block.path, "spec.agents.llm");
    let bad_url = rejected(&quickstart().replace(
        "backend: evolutionary",
        "backend: llm\n    llm: {baseUrl: localhost:8000, model: m}",
    ));
    assert_eq!(bad_url.path, "spec.agents.llm.baseUrl");
    let endpoint_without_model = rejected(&quickstart().replace(
        "  seed: 1\n",
        "  seed: 1\n  cognition: {embedder: endpoint}\n",
    ));
    assert_eq!(endpoint_without_model.path, "spec.cognition.embedder");
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for text in [
        "",
        "::::",
        "- 1\n- 2",
        "apiVersion: archlab.dev/v1alpha1\nkind: Campaign\nspec: 3",
        "\u{0}\u{1}",
    ] {
        let _ = rejected(text);
    }
}

fn gpu_example() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/cluster/gpu-campaign.yaml"
    ))
    .expect("example exists")
}

#[test]
fn the_trainer_section_is_read_and_defaults_to_one_gpu() {
    use archlab::api::trainer::TrainerDevice;
    let campaign = parse_campaign(&gpu_example()).unwrap_or_else(|e| panic!("{e}"));
    let trainer = &campaign.spec.trainer;
    assert_eq!(trainer.device, TrainerDevice::Cuda);
    assert_eq!(trainer.effective_resources().limits["nvidia.com/gpu"], "1");
    assert_eq!(trainer.tolerations[0].operator.as_deref(), Some("Exists"));
    let key = campaign
        .spec
        .agents
        .llm
        .as_ref()
        .and_then(|l| l.api_key_secret_ref.clone());
    assert_eq!(
        key.map(|k| (k.name, k.key)),
        Some(("llm-key".into(), "api-key".into()))
    );
    // Without a trainer section: a GPU by default, and CPU campaigns get CPU and memory.
    let quickstart = parse_campaign(&quickstart()).unwrap_or_else(|e| panic!("{e}"));
    let defaults = quickstart.spec.trainer.effective_resources();
    assert_eq!(
        defaults.limits.get("nvidia.com/gpu").map(String::as_str),
        Some("1")
    );
    let cpu = parse_campaign(&format!(
        "{}\n  trainer: {{device: cpu}}\n",
        quickstart_text_without_seed()
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let resources = cpu.spec.trainer.effective_resources();
    assert!(!resources.limits.contains_key("nvidia.com/gpu"));
    assert_eq!(resources.requests["cpu"], "1");
}

fn quickstart_text_without_seed() -> String {
    quickstart()
        .replace("  seed: 1\n", "")
        .trim_end()
        .to_string()
}

#[test]
fn trainer_mistakes_are_refused_before_any_pod_is_made() {
    let cases = [
        (
            "memory: 16Gi}",
            "memory: lots}",
            "spec.trainer.resources.requests.memory",
            "quantity",
        ),
        (
            "operator: Exists",
            "operator: Exist",
            "spec.trainer.tolerations[0].operator",
            "Exists",
        ),
        (
            "effect: NoSchedule",
            "effect: Never",
            "spec.trainer.tolerations[0].effect",
            "NoExecute",
        ),
        (
            "    device: cuda",
            "    image: \"\"\n    device: cuda",
            "spec.trainer.image",
            "image reference",
        ),
        (
            "maxRevisions: 3",
            "maxRevisions: 50",
            "spec.search.maxRevisions",
            "at most 10",
        ),
        (
            "    device: cuda",
            "    env: [{name: HF_HOME, value: /data}, {name: 2BAD, value: x}]\n    device: cuda",
            "spec.trainer.env[1].name",
            "letters, digits",
        ),
        (
            "    device: cuda",
            "    env: [{name: ARCHLAB_PROGRAM, value: x}]\n    device: cuda",
            "spec.trainer.env[0].name",
            "the operator sets them",
        ),
        (
            "    device: cuda",
            "    podLabels: {archlab.dev/experiment: \"1\"}\n    device: cuda",
            "spec.trainer.podLabels.archlab.dev/experiment",
            "the operator sets this label",
        ),
    ];
    for (from, to, path, hint) in cases {
        let example = gpu_example();
        assert!(example.contains(from), "{from}");
        let error = rejected(&example.replacen(from, to, 1));
        assert_eq!(error.path, path, "{to}: {error}");
        assert!(error.message.contains(hint), "{to}: {error}");
    }
}

#[test]
fn trainer_volumes_are_claims_config_maps_or_empty_dirs_only() {
    let with_volumes = |volumes: &str| {
        gpu_example().replace(
            "    device: cuda\n",
            &format!("    device: cuda\n    volumes:\n{volumes}"),
        )
    };
    let good = with_volumes(
        "      - {name: data, mountPath: /data, persistentVolumeClaim: {claimName: corpus}}\n      - {name: ckpt, mountPath: /checkpoints, readOnly: false, persistentVolumeClaim: {claimName: ckpt}}\n      - {name: tokenizer, mountPath: /tokenizer, configMap: {name: gpt2}}\n      - {name: scratch, mountPath: /scratch, emptyDir: {sizeLimit: 10Gi}}\n",
    );
    let campaign = parse_campaign(&good).unwrap_or_else(|e| panic!("{e}"));
    let volumes = &campaign.spec.trainer.volumes;
    assert_eq!(volumes.len(), 4);
    assert!(
        volumes[0].read_only,
        "data is read-only unless said otherwise"
    );
    assert!(!volumes[1].read_only);
    let cases = [
        (
            "      - {name: root, mountPath: /host, hostPath: {path: /}}\n",
            "spec.trainer.volumes[0].hostPath",
            "unknown field `hostPath`",
        ),
        (
            "      - {name: two, mountPath: /two, emptyDir: {}, configMap: {name: x}}\n",
            "spec.trainer.volumes[0]",
            "exactly one of",
        ),
        (
            "      - {name: none, mountPath: /none}\n",
            "spec.trainer.volumes[0]",
            "hostPath",
        ),
        (
            "      - {name: Data, mountPath: /data, emptyDir: {}}\n",
            "spec.trainer.volumes[0].name",
            "DNS label",
        ),
        (
            "      - {name: tmp, mountPath: /data, emptyDir: {}}\n",
            "spec.trainer.volumes[0].name",
            "`tmp`",
        ),
        (
            "      - {name: a, mountPath: /data, emptyDir: {}}\n      - {name: a, mountPath: /other, emptyDir: {}}\n",
            "spec.trainer.volumes[1].name",
            "used twice",
        ),
        (
            "      - {name: a, mountPath: data, emptyDir: {}}\n",
            "spec.trainer.volumes[0].mountPath",
            "absolute",
        ),
        (
            "      - {name: a, mountPath: /tmp/x, emptyDir: {}}\n",
            "spec.trainer.volumes[0].mountPath",
            "/tmp",
        ),
        (
            "      - {name: a, mountPath: /d, emptyDir: {}}\n      - {name: b, mountPath: /d/, emptyDir: {}}\n",
            "spec.trainer.volumes[1].mountPath",
            "mounted twice",
        ),
        (
            "      - {name: a, mountPath: /d, emptyDir: {sizeLimit: huge}}\n",
            "spec.trainer.volumes[0].emptyDir.sizeLimit",
            "quantity",
        ),
    ];
    for (volumes, path, words) in cases {
        let error = rejected(&with_volumes(volumes));
        assert_eq!(error.path, path, "{volumes}: {error}");
        assert!(error.message.contains(words), "{volumes}: {error}");
    }
}

#[test]
fn checkpoints_name_a_writable_volume_of_the_trainer() {
    let with = |checkpoints: &str| {
        gpu_example().replace(
            "    device: cuda
",
            &format!(
                "    device: cuda
    checkpoints: {checkpoints}
    volumes:
      - {{name: data, mountPath: /data, persistentVolumeClaim: {{claimName: corpus}}}}
      - {{name: ckpt, mountPath: /checkpoints/, readOnly: false, persistentVolumeClaim: {{claimName: ckpt}}}}
"
            ),
        )
    };
    let campaign = parse_campaign(&with("ckpt")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        campaign
            .spec
            .trainer
            .checkpoint_dir("lm", "lm-e00007", 2)
            .as_deref(),
        Some("/checkpoints/lm/lm-e00007/a2"),
        "keyed by experiment and attempt, not by retry"
    );
    for (name, words) in [("data", "read-only"), ("absent", "names no volume")] {
        let error = rejected(&with(name));
        assert_eq!(error.path, "spec.trainer.checkpoints", "{error}");
        assert!(error.message.contains(words), "{name}: {error}");
    }
}

fn ladder() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/ladder.yaml"))
        .expect("example exists")
}

#[test]
fn a_ladder_narrows_as_it_climbs_and_its_mistakes_name_the_rung() {
    let campaign = parse_campaign(&ladder()).unwrap_or_else(|e| panic!("{e}"));
    let rungs = &campaign.spec.stages.rungs;
    assert_eq!((rungs.len(), rungs[0].promote, rungs[0].seeds), (1, 6, 2));
    assert_eq!(rungs[0].train.model.d_model, 48);
    // A two-stage manifest has no rungs.
    let quickstart = parse_campaign(&quickstart()).unwrap_or_else(|e| panic!("{e}"));
    assert!(quickstart.spec.stages.rungs.is_empty());
    let cases: [(&str, &str, &str, &str); 6] = [
        (
            "promote: 6",
            "promote: 0",
            "spec.stages.rungs[0].promote",
            "at least 1",
        ),
        (
            "seeds: 2",
            "seeds: 0",
            "spec.stages.rungs[0].seeds",
            "at least 1",
        ),
        (
            "promote: 3",
            "promote: 7",
            "spec.stages.verification.promote",
            "more than the 6 programs spec.stages.rungs[0] promotes",
        ),
        (
            "seeds: 2",
            "seeds: 4",
            "spec.stages.verification.seeds",
            "fewer than the 4 seeds of spec.stages.rungs[0]",
        ),
        (
            "steps: 400",
            "steps: 0",
            "spec.stages.rungs[0].train.steps",
            "",
        ),
        (
            "behindFactor: 2.0",
            "behindFactor: 0.5",
            "spec.qa.behindFactor",
            "at least 1",
        ),
    ];
    for (from, to, path, message) in cases {
        assert!(ladder().contains(from), "{from}");
        let error = rejected(&ladder().replacen(from, to, 1));
        assert_eq!(error.path, path, "{from} → {to}: {error}");
        assert!(error.message.contains(message), "{from} → {to}: {error}");
    }
    let unknown =
        rejected(&ladder().replace("        seeds: 2\n", "        seeds: 2\n        keep: 3\n"));
    assert!(unknown.to_string().contains("keep"), "{unknown}");
}

fn llm_example() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/llm.yaml"))
        .expect("example exists")
}

#[test]
fn numbers_out_of_their_range_or_not_finite_are_refused_with_the_field_path() {
    // `.inf` once reached Duration::from_secs_f64 and panicked; JSON (the API server) has no
    // infinities, so YAML's are refused wherever they stand.
    for (from, to, path) in [
        (
            "maxRetries: 4",
            "maxRetries: 4\n      backoffSeconds: .inf",
            "spec.agents.llm.backoffSeconds",
        ),
        (
            "timeoutSeconds: 120",
            "timeoutSeconds: .nan",
            "spec.agents.llm.timeoutSeconds",
        ),
        (
            "lr: 0.01",
            "lr: -.inf",
            "spec.stages.exploration.train.optim.lr",
        ),
    ] {
        let text = llm_example();
        assert!(text.contains(from), "{from}");
        let error = rejected(&text.replacen(from, to, 1));
        assert_eq!(error.path, path, "{to}: {error}");
        assert!(error.message.contains("finite"), "{error}");
    }
    // Finite but past the range the Rust type declares (and the CRD carries).
    for (from, to, path, message) in [
        (
            "maxRetries: 4",
            "maxRetries: 1000",
            "spec.agents.llm.maxRetries",
            "at most 20",
        ),
        (
            "timeoutSeconds: 120",
            "timeoutSeconds: 0",
            "spec.agents.llm.timeoutSeconds",
            "at least 1",
        ),
        (
            "{temperature: 0.9}",
            "{temperature: 7}",
            "spec.agents.llm.researcher.temperature",
            "at most 2",
        ),
        (
            "parallelism: 2",
            "parallelism: 2\n  qa: {silenceFactor: 0.5}",
            "spec.qa.silenceFactor",
            "at least 1",
        ),
        (
            "parallelism: 2",
            "parallelism: 2\n  qa: {maxAttemptSeconds: 0}",
            "spec.qa.maxAttemptSeconds",
            "at least 1",
        ),
        (
            "parallelism: 2",
            "parallelism: 2\n  fitness: {loss: -1}",
            "spec.fitness.loss",
            "at least 0",
        ),
    ] {
        let text = llm_example();
        assert!(text.contains(from), "{from}");
        let error = rejected(&text.replacen(from, to, 1));
        assert_eq!(error.path, path, "{to}: {error}");
        assert!(error.message.contains(message), "{to}: {error}");
    }
}
