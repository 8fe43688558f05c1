//! The library of known architectures, shipped as archspec programs. They are the seeds and
//! baselines of every campaign.

/// One library entry: its name and its program text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub name: &'static str,
    pub source: &'static str,
}

macro_rules! entries {
    ($($name:literal),* $(,)?) => {
        &[$(Entry { name: $name, source: include_str!(concat!("../library/", $name, ".arch")) }),*]
    };
}

/// Every library program, baselines first.
pub const ENTRIES: &[Entry] = entries![
    "softmax_rope",
    "sliding_window",
    "linear_attention",
    "retnet",
    "gla",
    "mamba2_ssd",
    "deltanet",
    "gated_deltanet",
    "routed_hybrid",
];

pub fn get(name: &str) -> Option<&'static Entry> {
    ENTRIES.iter().find(|entry| entry.name == name)
}

impl Entry {
    /// The first line of the program's description.
    pub fn summary(&self) -> &'static str {
        self.source
            .lines()
            .find_map(|line| line.strip_prefix("# "))
            .unwrap_or("")
    }
}
