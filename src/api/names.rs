//! Names derived from a Campaign's name: the prefix of its Experiments' (and so its pods')
//! names, and the label value its objects are selected by. Each target allows fewer
//! characters or less length than a Campaign name has, so mapping could make two Campaigns
//! share names (`a.b` and `a-b`, or two long names with one start): where the mapping changes
//! anything, a short hash of the exact name is added, as Kubernetes names a ReplicaSet's pods
//! by a hash of their template.

/// Hex digits of the hash added to a changed name.
const HASH_DIGITS: usize = 8;

/// Longest Experiment name prefix, leaving room for `-e00012` within a DNS label (63).
pub const NAME_PREFIX: usize = 50;
/// Longest label value Kubernetes allows.
pub const LABEL_VALUE: usize = 63;

/// The prefix of `campaign`'s Experiment names: lowercase letters, digits and `-`, at most
/// `NAME_PREFIX` bytes, beginning and ending with a letter or digit.
pub fn name_prefix(campaign: &str) -> String {
    let mapped: String = campaign
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    unique(campaign, &mapped, NAME_PREFIX)
}

/// `text` as a label value: letters, digits, `.`, `_` and `-`, at most 63 bytes, beginning
/// and ending with a letter or digit.
pub fn label_value(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    unique(text, &mapped, LABEL_VALUE)
}

/// `mapped` when it is `exact` unchanged and fits; otherwise its start and a hash of `exact`.
fn unique(exact: &str, mapped: &str, max: usize) -> String {
    let trimmed = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed == exact && exact.len() <= max {
        return trimmed.to_string();
    }
    let hash = format!(
        "{:0width$x}",
        fnv1a32(exact.as_bytes()),
        width = HASH_DIGITS
    );
    // ASCII only by now: any byte index is a character boundary.
    let start = trimmed[..trimmed.len().min(max - HASH_DIGITS - 1)]
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    if start.is_empty() {
        hash
    } else {
        format!("{start}-{hash}")
    }
}

/// 32-bit FNV-1a: stable across versions and platforms, so names survive an upgrade.
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash: u32, &byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_fit_unchanged_are_kept() {
        assert_eq!(name_prefix("tiny"), "tiny");
        assert_eq!(name_prefix("gated-deltanet-2"), "gated-deltanet-2");
        assert_eq!(label_value("lm.fineweb_v2"), "lm.fineweb_v2");
    }

    #[test]
    fn different_campaigns_never_share_derived_names() {
        let long = "a".repeat(60);
        let pairs = [
            ("a.b", "a-b"),
            (long.as_str(), &format!("{long}b")),
            ("Upper", "upper"),
        ];
        for (one, other) in pairs {
            assert_ne!(name_prefix(one), name_prefix(other), "{one} / {other}");
        }
        let long = "x".repeat(70);
        assert_ne!(label_value(&long), label_value(&format!("{long}y")));
        assert_ne!(label_value("a b"), label_value("a-b"));
    }

    #[test]
    fn changed_names_are_valid_and_bounded() {
        let dns_label = |s: &str| {
            !s.is_empty()
                && s.len() <= NAME_PREFIX
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !s.starts_with('-')
                && !s.ends_with('-')
        };
        for name in ["a.b", &"q.".repeat(100), "...", "Ünïcode name", "-x-"] {
            let prefix = name_prefix(name);
            assert!(dns_label(&prefix), "{name}: {prefix}");
            let label = label_value(name);
            assert!(label.len() <= LABEL_VALUE, "{name}: {label}");
            assert!(
                label.starts_with(|c: char| c.is_ascii_alphanumeric()),
                "{label}"
            );
            assert!(
                label.ends_with(|c: char| c.is_ascii_alphanumeric()),
                "{label}"
            );
        }
        // Stable: the same name maps to the same prefix in every version.
        assert_eq!(name_prefix("a.b"), "a-b-108bf50c"); // FNV-1a 32 of "a.b", computed apart
    }
}
