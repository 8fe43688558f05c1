//! Fault injection for the crash tests (`tests/run.rs`): with `ARCHLAB_FAULT=POINT:N` the
//! process aborts the Nth time it passes `POINT` — no destructor, no commit, no flush, as a
//! SIGKILL or a power cut would leave it. Unset (always, outside tests), a point costs one
//! comparison. The points sit inside the store's transactions, where a kill is worst.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The variable that arms a point.
pub const VARIABLE: &str = "ARCHLAB_FAULT";

static ARMED: OnceLock<Option<(String, u32)>> = OnceLock::new();
static PASSES: AtomicU32 = AtomicU32::new(0);

/// Aborts here if this point is armed and this is its Nth pass.
pub fn point(name: &str) {
    let armed = ARMED.get_or_init(|| {
        let value = std::env::var(VARIABLE).ok()?;
        let (point, nth) = value.rsplit_once(':').unwrap_or((&value, "1"));
        Some((point.to_string(), nth.parse().ok()?))
    });
    let Some((point, nth)) = armed else {
        return;
    };
    if point == name && PASSES.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
        eprintln!("archlab: injected fault at {name} (pass {nth}): aborting");
        std::process::abort();
    }
}
