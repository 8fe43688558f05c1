//! A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions protocol with
//! scripted replies, shared by tests/llm.rs and tests/e2e.rs.

#![allow(dead_code, clippy::unwrap_used)] // Each test crate uses a part; set-up fails loudly.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One scripted HTTP reply.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

pub fn ok(body: Value) -> Reply {
    Reply {
        status: 200,
        headers: vec![],
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

pub fn status(code: u16, body: &str) -> Reply {
    Reply {
        status: code,
        headers: vec![],
        body: body.into(),
        delay: Duration::ZERO,
    }
}

/// A chat completion whose message content is `content`.
pub fn chat(content: &str) -> Reply {
    ok(json!({
        "id": "x", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    }))
}

/// What the server saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When the request had been read (to measure waits between retries).
    pub arrived: std::time::Instant,
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

pub type Script = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

pub struct Server {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

pub fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let path = request_line.split_whitespace().nth(1)?.to_string();
    let mut length = 0;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().ok()?,
                "authorization" => authorization = Some(value.trim().to_string()),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Seen {
        arrived: std::time::Instant::now(),
        path,
        authorization,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    })
}

/// Serves `script` (given the request and its index) until the test ends.
pub fn serve(script: Box<Script>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let script: Arc<Script> = Arc::from(script);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let log = log.clone();
            let script = script.clone();
            std::thread::spawn(move || {
                let Some(request) = read_request(&mut stream) else {
                    return;
                };
                let index = {
                    let mut log = log.lock().unwrap();
                    log.push(request.clone());
                    log.len() - 1
                };
                let reply = script(&request, index);
                std::thread::sleep(reply.delay);
                let mut head = format!(
                    "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                    reply.status,
                    reply.body.len()
                );
                for (name, value) in &reply.headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(reply.body.as_bytes());
            });
        }
    });
    Server { url, seen }
}

pub const PEEKING: &str =
    "mixer peek(d_model) {\n  return x |> token_shift(-1) |> linear(d_model)\n}\n";

pub fn library(name: &str) -> String {
    archspec::library::get(name).unwrap().source.to_string()
}

/// A well-behaved endpoint: the first proposal fails the checks (the Engineer repairs it),
/// later ones are library programs the campaign does not have yet.
pub fn good_endpoint() -> Box<Script> {
    let proposals = std::sync::atomic::AtomicUsize::new(0);
    Box::new(move |seen: &Seen, _| {
        let prompt = seen.body["messages"][0]["content"]
            .as_str()
            .unwrap_or_default();
        let content = if prompt.contains("You are the Researcher") {
            let n = proposals.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let ideas = [
                ("peek", "look one token ahead to anticipate the query"),
                (
                    "gated-delta",
                    "combine gating with the delta rule so stale associations decay",
                ),
                (
                    "per-key-decay",
                    "a data-dependent decay per key dimension keeps recent pairs sharp",
                ),
                (
                    "ssd",
                    "a scalar state-space decay with a short convolution for local context",
                ),
                (
                    "routed",
                    "route tokens between attention-like and recurrent paths",
                ),
            ];
            let programs = [
                PEEKING.to_string(),
                library("gated_deltanet"),
                library("gla"),
                library("mamba2_ssd"),
                library("routed_hybrid"),
            ];
            let (name, motivation) = ideas[n % ideas.len()];
            json!({"name": name, "motivation": motivation, "program": programs[n % programs.len()]})
        } else if prompt.contains("You are the Engineer") {
            json!({"program": library("deltanet"), "explanation": "replaced the peeking shift by a causal delta rule"})
        } else if prompt.contains("You are the Analyst") {
            json!({"analysis": "the model recalls some keys", "problem_summary": "associative recall is partial"})
        } else {
            json!({"performance": 7, "innovation": 5, "complexity": 6, "rationale": "solid"})
        };
        chat(&content.to_string())
    })
}
