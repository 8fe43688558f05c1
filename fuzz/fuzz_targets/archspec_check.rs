//! Any text through the archspec parser and checker. Beyond not panicking, an accepted program
//! must print to text that checks again to the same structure, and a mutation of it that the
//! operators call valid must be valid when checked from its printed text.
#![no_main]

use archspec::{CheckConfig, check_source, mutate, print};
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use rand::rngs::SmallRng;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    // Small dimensions keep each run fast; the checks' rules do not depend on the size.
    let config = CheckConfig {
        d_model: 64,
        seq_len: 64,
        ..CheckConfig::default()
    };
    let Ok(valid) = check_source(source, &config) else {
        return;
    };
    let printed = print(&valid.program);
    let again = check_source(&printed, &config)
        .unwrap_or_else(|errors| panic!("printed program fails its check: {errors:?}\n{printed}"));
    assert_eq!(
        valid.hash(),
        again.hash(),
        "printing changed the program:\n{printed}"
    );
    let seed = data
        .iter()
        .fold(0u64, |h, &b| h.rotate_left(5) ^ u64::from(b));
    let mut rng = SmallRng::seed_from_u64(seed);
    if let Ok((kind, mutated)) = mutate::mutate_random(&valid.program, &mut rng, &config) {
        let text = print(&mutated.program);
        let rechecked = check_source(&text, &config).unwrap_or_else(|errors| {
            panic!("{kind:?} made a program that fails its check: {errors:?}\n{text}")
        });
        assert_eq!(rechecked.hash(), mutated.hash(), "{kind:?}:\n{text}");
    }
});
