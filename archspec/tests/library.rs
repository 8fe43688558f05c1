//! Every library program checks valid, with the cost class its paper promises.

use archspec::{CheckConfig, Complexity, check_source, library};

#[test]
fn every_library_program_is_valid_with_the_expected_complexity() {
    let config = CheckConfig::default();
    for entry in library::ENTRIES {
        let valid = check_source(entry.source, &config).unwrap_or_else(|diagnostics| {
            panic!(
                "{} is invalid:\n{}",
                entry.name,
                archspec::diagnostic::render(entry.source, &diagnostics)
            )
        });
        let expected = match entry.name {
            "softmax_rope" => Complexity::Quadratic,
            "sliding_window" => Complexity::Window,
            _ => Complexity::Linear,
        };
        assert_eq!(valid.analysis.complexity, expected, "{}", entry.name);
        assert!(valid.analysis.params > 0, "{}", entry.name);
        assert_eq!(
            valid.program.name.name, entry.name,
            "file name and mixer name agree"
        );
        assert!(
            !entry.summary().is_empty(),
            "{} cites its source",
            entry.name
        );
    }
}

#[test]
fn library_programs_are_structurally_distinct() {
    let config = CheckConfig::default();
    let hashes: std::collections::HashSet<String> = library::ENTRIES
        .iter()
        .filter_map(|entry| check_source(entry.source, &config).ok())
        .map(|valid| valid.hash())
        .collect();
    assert_eq!(hashes.len(), library::ENTRIES.len());
}

#[test]
fn recurrent_state_is_heads_times_key_times_value() {
    // DeltaNet at d_model 128: 4 heads of 32, state 4·32·32, plus three short convs of width 4.
    let valid = check_source(
        library::get("deltanet").unwrap().source,
        &CheckConfig::default(),
    )
    .unwrap();
    assert_eq!(valid.analysis.state_size, 4 * 32 * 32 + 3 * 128 * 3);
    // Softmax attention keeps a cache that grows with T.
    let config = CheckConfig {
        seq_len: 1000,
        ..CheckConfig::default()
    };
    let valid = check_source(library::get("softmax_rope").unwrap().source, &config).unwrap();
    assert_eq!(valid.analysis.state_size, 4 * 1000 * (32 + 32));
}

#[test]
fn parameter_count_of_softmax_attention_is_four_projections() {
    let valid = check_source(
        library::get("softmax_rope").unwrap().source,
        &CheckConfig::default(),
    )
    .unwrap();
    assert_eq!(valid.analysis.params, 4 * 128 * 128);
}
