//! Any byte stream as a trainer's stdout, read as the drivers read it: bounded lines, each
//! parsed as a trainer event. The lines must be exactly the stream's, cut at the limit and
//! marked where cut, whatever the reads' sizes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::lines::{Line, read_line};
use std::io::BufReader;

fuzz_target!(|data: &[u8]| {
    let [capacity, limit, stream @ ..] = data else {
        return;
    };
    let limit = usize::from(*limit);
    let mut reader = BufReader::with_capacity(usize::from(*capacity % 64) + 1, stream);
    let mut read = Vec::new();
    loop {
        match read_line(&mut reader, limit).expect("reading memory cannot fail") {
            Line::End => break,
            line => read.push(line),
        }
        assert!(read.len() <= stream.len(), "more lines than bytes");
    }
    let mut expected: Vec<&[u8]> = stream.split(|&b| b == b'\n').collect();
    if expected.last().is_some_and(|last| last.is_empty()) {
        expected.pop();
    }
    assert_eq!(read.len(), expected.len());
    for (line, whole) in read.iter().zip(expected) {
        match line {
            Line::Text(text) => {
                assert!(whole.len() <= limit);
                assert_eq!(text.as_slice(), whole);
                if let Ok(text) = std::str::from_utf8(text) {
                    let _ = protocol::read(text);
                }
            }
            Line::TooLong(start) => {
                assert!(whole.len() > limit);
                assert_eq!(start.as_slice(), &whole[..limit]);
            }
            Line::End => unreachable!("End ends the loop"),
        }
    }
});
