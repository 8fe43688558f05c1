//! Replies an endpoint may send that must not cost the process its memory: a 100 MB body,
//! streamed without a length and announced with one, and token counts at the top of u64. Its
//! own test binary (one process, one test), so that the peak resident memory it measures is
//! this test's alone.

#![allow(clippy::unwrap_used)] // Test set-up: failures should fail loudly.

use archlab::agents::llm::client::{
    ApiKey, ChatRequest, Client, LlmError, MAX_REPLY_BYTES, Message, RetryPolicy,
};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

const HUNDRED_MB: usize = 100 << 20;

/// The process's peak resident memory in bytes (`VmHWM`), after resetting it where the kernel
/// allows (`clear_refs` 5), so that what follows is measured from the current size.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Serves `times` requests, each with `body` (with `declared` as its Content-Length), or with
/// 100 MB of spaces in chunked encoding when `chunked`; a client that hangs up is ignored.
fn serve(times: usize, chunked: bool, declared: Option<usize>, body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for _ in 0..times {
            answer(&listener, chunked, declared, &body);
        }
    });
    url
}

fn answer(listener: &TcpListener, chunked: bool, declared: Option<usize>, body: &[u8]) {
    {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut request = vec![0; length];
        std::io::Read::read_exact(&mut reader, &mut request).unwrap();
        let mut stream = stream;
        let mut head = String::from("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n");
        if chunked {
            head.push_str("Transfer-Encoding: chunked\r\n");
        } else if let Some(declared) = declared {
            head.push_str(&format!("Content-Length: {declared}\r\n"));
        }
        head.push_str("\r\n");
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        if !chunked {
            let _ = stream.write_all(body);
            return;
        }
        let chunk = vec![b' '; 64 << 10];
        for _ in 0..HUNDRED_MB / chunk.len() {
            let sent = stream
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .and_then(|()| stream.write_all(&chunk))
                .and_then(|()| stream.write_all(b"\r\n"));
            if sent.is_err() {
                return; // The client hung up, as it should.
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n");
    }
}

fn client(url: &str) -> Client {
    Client::new(
        url,
        Some(ApiKey::new("sk-bounds-key".into())),
        Duration::from_secs(60),
        RetryPolicy {
            max_retries: 0,
            backoff: Duration::from_millis(10),
            max_wait: Duration::from_secs(1),
        },
    )
    .unwrap()
}

fn request() -> ChatRequest {
    ChatRequest {
        model: "m".into(),
        temperature: None,
        max_tokens: None,
        messages: vec![Message {
            role: "user",
            content: "hello".into(),
        }],
        response_format: None,
    }
}

#[test]
fn a_hundred_megabyte_reply_is_refused_within_a_bounded_memory_and_huge_token_counts_saturate() {
    // Streamed without a length: read up to the bound, then refused.
    let url = serve(1, true, None, Vec::new());
    let mut streamed = client(&url);
    let before = resident_bytes();
    reset_peak();
    let error = streamed.chat("researcher", &request()).unwrap_err();
    let grown = peak_bytes().saturating_sub(before);
    assert!(
        matches!(&error, LlmError::BadReply(message) if message.contains("longer than")),
        "{error}"
    );
    // The bound is MAX_REPLY_BYTES (16 MiB) held at once; reading into a growing buffer may
    // briefly hold it twice. Far below the 100 MB sent.
    let bound = 3 * MAX_REPLY_BYTES as u64;
    eprintln!("a 100 MB reply raised the peak resident memory by {grown} bytes (bound {bound})");
    assert!(
        grown < bound,
        "peak memory grew by {grown} bytes reading a 100 MB reply (bound {bound})"
    );

    // Announced with its length: refused before a byte of it is read.
    let url = serve(1, false, Some(HUNDRED_MB), Vec::new());
    let error = client(&url).chat("researcher", &request()).unwrap_err();
    assert!(
        matches!(&error, LlmError::BadReply(message) if message.contains(&format!("the reply is {HUNDRED_MB} bytes"))),
        "{error}"
    );

    // Token counts are the endpoint's word: u64::MAX twice saturates instead of overflowing.
    let huge = serde_json::json!({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}}],
        "usage": {"prompt_tokens": u64::MAX, "completion_tokens": u64::MAX}
    })
    .to_string()
    .into_bytes();
    let url = serve(2, false, Some(huge.len()), huge);
    let mut counting = client(&url);
    for _ in 0..2 {
        assert_eq!(counting.chat("researcher", &request()).unwrap(), "fine");
        assert_eq!(counting.total_tokens(), u64::MAX);
    }
}
