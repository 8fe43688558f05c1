//! JSON Lines files read one bounded line at a time: the corpus reader and the benchmark
//! rows share it, so both number lines the same way and refuse the same over-long line.

use std::io::{BufRead, Read};

/// The longest line read; a longer one is an error, not an allocation.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// One non-blank line: its 1-based number, its bytes (the newline included) and how many bytes
/// the call read (blank lines before it included).
pub struct Line<'a> {
    pub number: u64,
    pub bytes: &'a [u8],
    pub read: u64,
}

/// Why a line could not be read.
#[derive(Debug)]
pub enum LineError {
    Read(std::io::Error),
    /// Line `number` is longer than [`MAX_LINE_BYTES`].
    TooLong {
        number: u64,
    },
}

impl LineError {
    /// The message for a bad line, the way the readers phrase it.
    pub fn too_long_message() -> String {
        format!("a line is at most {MAX_LINE_BYTES} bytes")
    }
}

/// The lines of a JSON Lines file, blank ones skipped.
pub struct JsonLines<R> {
    reader: R,
    buffer: Vec<u8>,
    number: u64,
    bytes_read: u64,
}

impl<R: BufRead> JsonLines<R> {
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            buffer: Vec::new(),
            number: 0,
            bytes_read: 0,
        }
    }

    /// Every byte read so far, blank lines included (progress bars).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The next non-blank line, or `None` at the end of the file.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>, LineError> {
        let before = self.bytes_read;
        loop {
            self.buffer.clear();
            let count = (&mut self.reader)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut self.buffer)
                .map_err(LineError::Read)?;
            if count == 0 {
                return Ok(None);
            }
            self.number += 1;
            self.bytes_read += count as u64;
            if self.buffer.len() > MAX_LINE_BYTES {
                return Err(LineError::TooLong {
                    number: self.number,
                });
            }
            if !self.buffer.iter().all(u8::is_ascii_whitespace) {
                return Ok(Some(Line {
                    number: self.number,
                    bytes: &self.buffer,
                    read: self.bytes_read - before,
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_lines_are_skipped_and_numbers_count_them() {
        let text = b"{\"a\":1}\n\n  \n{\"b\":2}";
        let mut lines = JsonLines::new(&text[..]);
        let first = lines.next_line().unwrap().unwrap();
        assert_eq!((first.number, first.bytes), (1, &b"{\"a\":1}\n"[..]));
        let second = lines.next_line().unwrap().unwrap();
        assert_eq!((second.number, second.bytes), (4, &b"{\"b\":2}"[..]));
        assert_eq!(second.read, 11, "the blank lines before it count");
        assert!(lines.next_line().unwrap().is_none());
        assert_eq!(lines.bytes_read(), text.len() as u64);
    }
}
