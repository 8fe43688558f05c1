//! The CRDs: `crds/` is what `archlab crd` prints, and every example Campaign validates against
//! the generated schema as the API server would check it (strict field validation: unknown
//! fields are refused, not silently pruned), while broken ones fail naming the field.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn crd_yaml() -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_archlab"))
        .arg("crd")
        .output()
        .expect("archlab runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

#[test]
fn the_crds_folder_is_what_archlab_crd_prints() {
    let printed = crd_yaml();
    let path = Path::new(ROOT).join(archlab::api::crds::CRDS_FILE);
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        stored == printed,
        "{} differs from `archlab crd`; regenerate it with `cargo run -- crd > {}`",
        path.display(),
        archlab::api::crds::CRDS_FILE
    );
}

#[test]
fn the_helm_chart_installs_the_same_crds() {
    let generated = std::fs::read_to_string(Path::new(ROOT).join(archlab::api::crds::CRDS_FILE))
        .expect("crds/");
    let chart = Path::new(ROOT).join("charts/archlab/crds/archlab.yaml");
    let in_chart = std::fs::read_to_string(&chart).unwrap_or_default();
    assert!(
        in_chart == generated,
        "{} differs from {}; copy it: `cp {} {}`",
        chart.display(),
        archlab::api::crds::CRDS_FILE,
        archlab::api::crds::CRDS_FILE,
        "charts/archlab/crds/archlab.yaml"
    );
}

#[test]
fn the_crds_carry_names_columns_and_the_status_subresource() {
    let crds = crds();
    let campaign = &crds["Campaign"];
    assert_eq!(campaign["spec"]["names"]["shortNames"][0], "camp");
    assert_eq!(campaign["spec"]["names"]["categories"][0], "archlab");
    let columns: Vec<&str> = campaign["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(columns, ["Phase", "Experiments", "Best", "Verified", "Age"]);
    let experiment = &crds["Experiment"];
    assert_eq!(experiment["spec"]["names"]["shortNames"][0], "exp");
    let columns: Vec<&str> = experiment["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        columns,
        [
            "Campaign", "Phase", "Stage", "Fitness", "Attempts", "Parent", "Progress", "ETA", "Age"
        ]
    );
    for crd in crds.values() {
        assert!(crd["spec"]["versions"][0]["subresources"]["status"].is_object());
    }
}

/// The API server estimates each CEL rule's worst-case cost from the bounds of what it reads
/// and refuses the CRD when a rule could cost too much; an unbounded list or string anywhere
/// also lets one object grow to the request limit. So every string (but enums), list and map
/// in both CRDs has a bound, and no rule reads a free-form object, whose size nothing bounds.
/// (Whether the server accepts the rules and enforces them is tests/e2e.rs's.)
#[test]
fn every_string_list_and_map_has_a_bound_and_no_rule_reads_a_free_object() {
    fn walk(schema: &Value, path: &str, under_rule: bool, problems: &mut Vec<String>) {
        let under_rule = under_rule || schema.get("x-kubernetes-validations").is_some();
        if schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true) {
            if under_rule {
                problems.push(format!("{path}: a free-form object under a CEL rule"));
            }
            return;
        }
        let has = |key: &str| schema.get(key).is_some();
        match schema["type"].as_str() {
            Some("string") if !has("enum") && !has("maxLength") => {
                problems.push(format!("{path}: a string without maxLength"));
            }
            Some("array") => {
                if !has("maxItems") {
                    problems.push(format!("{path}: a list without maxItems"));
                }
                walk(&schema["items"], &format!("{path}[]"), under_rule, problems);
            }
            Some("object") => {
                if let Some(properties) = schema["properties"].as_object() {
                    for (name, field) in properties {
                        walk(field, &format!("{path}.{name}"), under_rule, problems);
                    }
                }
                if schema["additionalProperties"].is_object() {
                    if !has("maxProperties") {
                        problems.push(format!("{path}: a map without maxProperties"));
                    }
                    walk(
                        &schema["additionalProperties"],
                        &format!("{path}{{}}"),
                        under_rule,
                        problems,
                    );
                }
            }
            _ => {}
        }
    }
    let mut problems = Vec::new();
    for (kind, crd) in crds() {
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        // metadata is the API server's own.
        for (name, field) in schema["properties"].as_object().expect("properties") {
            if name != "metadata" {
                walk(field, &format!("{kind}.{name}"), false, &mut problems);
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// What a real API server refused (Kubernetes 1.20, and `kubectl` since): a null among enum
/// values, an empty-string default, nulls inside a default object.
#[test]
fn the_crds_hold_no_null_enum_value_or_empty_default() {
    fn walk(value: &Value, path: &str, problems: &mut Vec<String>) {
        match value {
            Value::Object(object) => {
                if let Some(Value::Array(values)) = object.get("enum")
                    && values.iter().any(Value::is_null)
                {
                    problems.push(format!("{path}: null enum value"));
                }
                if let Some(default) = object.get("default") {
                    if default.as_str() == Some("") {
                        problems.push(format!("{path}: empty-string default"));
                    }
                    if default.to_string().contains("null") {
                        problems.push(format!("{path}: null inside a default"));
                    }
                }
                for (key, child) in object {
                    walk(child, &format!("{path}.{key}"), problems);
                }
            }
            Value::Array(values) => {
                for (index, child) in values.iter().enumerate() {
                    walk(child, &format!("{path}[{index}]"), problems);
                }
            }
            _ => {}
        }
    }
    let mut problems = Vec::new();
    for (kind, crd) in crds() {
        walk(&crd, &kind, &mut problems);
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The CRDs by kind.
fn crds() -> std::collections::BTreeMap<String, Value> {
    serde_yaml::Deserializer::from_str(&crd_yaml())
        .map(|document| {
            let value: Value = serde::Deserialize::deserialize(document).expect("YAML");
            (
                value["spec"]["names"]["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                value,
            )
        })
        .collect()
}

/// The Campaign's openAPIV3Schema with every object closed, as strict field validation treats
/// it (objects that preserve unknown fields stay open).
fn strict_campaign_schema() -> Value {
    fn close(schema: &mut Value) {
        if let Some(object) = schema.as_object_mut() {
            if object.contains_key("properties")
                && !object.contains_key("additionalProperties")
                && object.get("x-kubernetes-preserve-unknown-fields") != Some(&Value::Bool(true))
            {
                object.insert("additionalProperties".into(), Value::Bool(false));
            }
            for value in object.values_mut() {
                close(value);
            }
        } else if let Some(array) = schema.as_array_mut() {
            array.iter_mut().for_each(close);
        }
    }
    let mut schema = crds()["Campaign"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
    // metadata is the API server's to check.
    if let Some(properties) = schema["properties"].as_object_mut() {
        properties.remove("metadata");
    }
    close(&mut schema);
    schema
}

fn violations(manifest: &str) -> Vec<String> {
    let instance: Value = serde_yaml::from_str(manifest).expect("YAML");
    let schema = strict_campaign_schema();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON schema");
    let mut instance = instance;
    // apiVersion, kind and metadata are the API server's own to check.
    if let Some(object) = instance.as_object_mut() {
        for key in ["apiVersion", "kind", "metadata"] {
            object.remove(key);
        }
    }
    validator
        .iter_errors(&instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn example_campaigns() -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![Path::new(ROOT).join("examples")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("examples/").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml")
                && std::fs::read_to_string(&path).is_ok_and(|t| t.contains("kind: Campaign"))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_example_campaign_validates_against_the_generated_schema() {
    let examples = example_campaigns();
    assert!(examples.len() >= 4, "{examples:?}");
    for path in examples {
        let text = std::fs::read_to_string(&path).expect("readable");
        let problems = violations(&text);
        assert!(problems.is_empty(), "{}: {problems:#?}", path.display());
        // And the operator reads it as the local driver does.
        archlab::api::parse_campaign(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn invalid_campaigns_fail_the_schema_naming_the_field() {
    let example =
        std::fs::read_to_string(Path::new(ROOT).join("examples/cluster/gpu-campaign.yaml"))
            .expect("example");
    let cases = [
        (
            "steps: 3000",
            "steps: many",
            "/spec/stages/exploration/train/steps",
        ),
        ("parallelism: 8", "parallelsim: 8", "/spec"),
        // One past u32: serde would refuse it after the API server stored it.
        (
            "parallelism: 8",
            "parallelism: 4294967296",
            "/spec/parallelism",
        ),
        ("device: cuda", "device: tpu", "/spec/trainer/device"),
        (
            "kind: mqar, num_kv_pairs: 16",
            "kind: recall, num_kv_pairs: 16",
            "/spec/stages/exploration/train/data/tasks/0/kind",
        ),
        (
            "apiKeySecretRef: {name: llm-key, key: api-key}",
            "apiKeySecretRef: {name: llm-key}",
            "/spec/agents/llm/apiKeySecretRef",
        ),
    ];
    for (from, to, path) in cases {
        assert!(example.contains(from), "{from}");
        let problems = violations(&example.replacen(from, to, 1));
        assert!(
            problems.iter().any(|p| p.starts_with(&format!("{path}:"))),
            "{to}: expected a problem at {path}, got {problems:#?}"
        );
    }
}
