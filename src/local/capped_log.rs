//! Log files that stop growing at a cap, so a trainer that prints without end cannot fill the
//! disk.

use std::io::Write;
use std::path::Path;

/// A log file that keeps at most `cap` bytes, then says once that it stopped.
pub struct CappedLog {
    file: Option<std::fs::File>,
    written: u64,
    cap: u64,
}

impl CappedLog {
    /// A log that cannot be created is no log: the run goes on without it.
    pub fn create(path: &Path, cap: u64) -> CappedLog {
        CappedLog {
            file: std::fs::File::create(path).ok(),
            written: 0,
            cap,
        }
    }

    pub fn write_line(&mut self, line: &[u8]) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let size = line.len() as u64 + 1;
        if self.written + size > self.cap {
            let _ = writeln!(
                file,
                "[archlab: this log stopped at {} bytes; the rest of the output was not kept]",
                self.written
            );
            self.file = None;
            return;
        }
        self.written += size;
        let _ = file.write_all(line).and_then(|()| file.write_all(b"\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capped_log_stops_at_its_cap_and_says_so_once() {
        let path = std::env::temp_dir().join(format!("archlab-capped-{}.log", std::process::id()));
        let mut log = CappedLog::create(&path, 11);
        log.write_line(b"12345");
        log.write_line(b"6789");
        log.write_line(b"over");
        log.write_line(b"more");
        let text = std::fs::read_to_string(&path).expect("the log");
        assert_eq!(
            text,
            "12345\n6789\n[archlab: this log stopped at 11 bytes; the rest of the output was not kept]\n"
        );
        let _ = std::fs::remove_file(&path);
    }
}
