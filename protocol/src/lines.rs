//! Bounded reading of a trainer's output: lines of at most a fixed size, so a stream without
//! newlines never grows a buffer without end.

use std::io::BufRead;

/// One read from a stream.
#[derive(Debug, PartialEq)]
pub enum Line {
    /// A whole line without its newline, at most the limit.
    Text(Vec<u8>),
    /// A line longer than the limit: its first `limit` bytes (the rest is skipped up to the
    /// newline).
    TooLong(Vec<u8>),
    End,
}

/// Reads the next line, keeping at most `limit` bytes of it.
pub fn read_line(reader: &mut impl BufRead, limit: usize) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buffer = match reader.fill_buf() {
            Ok(buffer) => buffer,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buffer.is_empty() {
            return Ok(match (line.is_empty() && !too_long, too_long) {
                (true, _) => Line::End,
                (false, true) => Line::TooLong(line),
                (false, false) => Line::Text(line),
            });
        }
        let (chunk, found) = match buffer.iter().position(|&b| b == b'\n') {
            Some(at) => (&buffer[..at], Some(at)),
            None => (buffer, None),
        };
        let room = limit.saturating_sub(line.len());
        if chunk.len() > room {
            too_long = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = found.map_or(buffer.len(), |at| at + 1);
        reader.consume(used);
        if found.is_some() {
            return Ok(if too_long {
                Line::TooLong(line)
            } else {
                Line::Text(line)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn lines(input: &[u8], limit: usize) -> Vec<Line> {
        // A tiny buffer, so that lines cross reads.
        let mut reader = BufReader::with_capacity(3, input);
        let mut out = Vec::new();
        loop {
            let line = read_line(&mut reader, limit).expect("in-memory read");
            let end = line == Line::End;
            out.push(line);
            if end {
                return out;
            }
        }
    }

    #[test]
    fn lines_longer_than_the_limit_are_cut_and_marked_and_the_next_line_is_whole() {
        let read = lines(b"short\nmuch too long a line\nok\nlast", 8);
        assert_eq!(
            read,
            [
                Line::Text(b"short".to_vec()),
                Line::TooLong(b"much too".to_vec()),
                Line::Text(b"ok".to_vec()),
                Line::Text(b"last".to_vec()),
                Line::End,
            ]
        );
        // A stream with no newline at all keeps only the limit.
        assert_eq!(
            lines(&[b'x'; 100], 8),
            [Line::TooLong(vec![b'x'; 8]), Line::End]
        );
        assert_eq!(lines(b"", 8), [Line::End]);
    }
}
