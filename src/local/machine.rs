//! What this machine offers the trainers it runs.

/// Total RAM in bytes (`MemTotal` of /proc/meminfo), where the system says.
pub fn memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_linux_machine_reports_its_memory() {
        let bytes = super::memory_bytes().expect("/proc/meminfo on Linux");
        assert!(bytes > 64 << 20, "{bytes}");
    }
}
