//! The LLM backend against a real HTTP server on 127.0.0.1 that speaks the OpenAI
//! chat-completions protocol with scripted replies: retries (429 with Retry-After, 500, a hung
//! response), structured-output downgrades, malformed and schema-invalid JSON, empty content,
//! a program that fails the checks and is repaired, whole campaigns through the binary, and
//! the API key never leaving the Authorization header.

#![allow(clippy::unwrap_used)] // Test set-up: failures should fail loudly.

mod common;

use archlab::agents::llm::client::{ApiKey, Client, LlmError, RetryPolicy};
use archlab::agents::llm::structured::{Mode, Settings, ask};
use common::llm_server::{Reply, Seen, chat, good_endpoint, ok, serve, status};
use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn client(url: &str, retries: u32, timeout: Duration) -> Client {
    Client::new(
        url,
        Some(ApiKey::new("sk-unit-key".into())),
        timeout,
        RetryPolicy {
            max_retries: retries,
            backoff: Duration::from_millis(10),
            max_wait: Duration::from_secs(2),
        },
    )
    .unwrap()
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema, PartialEq)]
struct Answer {
    name: String,
    score: f64,
}

fn ask_answer(client: &mut Client, mode: &mut Mode) -> Result<Answer, LlmError> {
    ask::<Answer>(
        client,
        "researcher",
        &Settings {
            model: "m",
            temperature: Some(0.2),
            max_tokens: None,
            max_reasks: 2,
        },
        mode,
        "Give an answer.".into(),
    )
}

const GOOD_ANSWER: &str = r#"{"name": "a", "score": 3}"#;

#[test]
fn retries_honour_retry_after_and_recover_from_500_and_hung_replies() {
    let server = serve(Box::new(|_, index| match index {
        0 => Reply {
            headers: vec![("retry-after".into(), "1".into())],
            ..status(429, "slow down")
        },
        1 => status(500, "boom"),
        2 => Reply {
            delay: Duration::from_secs(3),
            ..chat(GOOD_ANSWER)
        },
        _ => chat(GOOD_ANSWER),
    }));
    let mut client = client(&server.url, 4, Duration::from_millis(800));
    let answer = ask_answer(&mut client, &mut Mode::JsonSchema).unwrap();
    assert_eq!(answer.name, "a");
    let stats = &client.stats["researcher"];
    assert_eq!((stats.requests, stats.retries, stats.errors), (1, 3, 0));
    assert_eq!(stats.tokens(), 120);
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen.len(), 4);
    // The retry after the 429 waited the second Retry-After asked for, measured between the
    // two requests' arrivals; the retry after the 500 waited only the backoff (10 ms), so the
    // wait is the header's doing, not a timeout's.
    let after_429 = seen[1].arrived - seen[0].arrived;
    let after_500 = seen[2].arrived - seen[1].arrived;
    assert!(after_429 >= Duration::from_secs(1), "{after_429:?}");
    assert!(after_500 < Duration::from_millis(900), "{after_500:?}");
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer sk-unit-key"));
    assert_eq!(seen[0].body["response_format"]["type"], "json_schema");
}

#[test]
fn an_endpoint_that_stays_down_is_unreachable_after_the_bounded_retries() {
    let server = serve(Box::new(|_, _| status(503, "overloaded")));
    let mut client = client(&server.url, 2, Duration::from_secs(2));
    match ask_answer(&mut client, &mut Mode::JsonSchema) {
        Err(error @ LlmError::Unreachable { attempts: 3, .. }) => assert!(error.endpoint_down()),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.seen.lock().unwrap().len(), 3);
    // Nothing listening at all.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/v1", listener.local_addr().unwrap());
    drop(listener);
    let mut client = self::client(&dead, 1, Duration::from_secs(1));
    assert!(matches!(
        ask_answer(&mut client, &mut Mode::Text),
        Err(LlmError::Unreachable { .. })
    ));
}

#[test]
fn malformed_schema_invalid_and_empty_replies_are_re_asked_within_the_bound() {
    let server = serve(Box::new(|_, index| match index {
        0 => chat("I think the answer is a, with a score of three."),
        1 => chat(r#"{"name": "a", "score": "three"}"#),
        2 => ok(
            json!({"choices": [{"message": {"role": "assistant", "content": "", "reasoning_content": "thinking…"}}]}),
        ),
        _ => ok(
            json!({"choices": [{"message": {"role": "assistant", "content": GOOD_ANSWER, "reasoning_content": "done"}}]}),
        ),
    }));
    let mut client = client(&server.url, 0, Duration::from_secs(2));
    // Two re-asks are allowed; the third reply (empty) exhausts them.
    match ask_answer(&mut client, &mut Mode::JsonSchema) {
        Err(LlmError::Malformed { reasks: 2, last }) => assert!(last.contains("empty"), "{last}"),
        other => panic!("{other:?}"),
    }
    // The re-asks carried the validation error back to the model.
    let seen = server.seen.lock().unwrap().clone();
    let last_messages = seen[2].body["messages"].as_array().unwrap();
    let feedback = last_messages.last().unwrap()["content"].as_str().unwrap();
    assert!(feedback.contains("score"), "{feedback}");
    // Next time the fourth reply is fine, and a missing `usage` is tolerated.
    assert_eq!(
        ask_answer(&mut client, &mut Mode::JsonSchema)
            .unwrap()
            .score,
        3.0
    );
    assert!(
        client.stats["researcher"].tokens() > 0,
        "tokens are estimated without usage"
    );
}

#[test]
fn an_endpoint_without_json_schema_support_is_asked_more_simply() {
    let server = serve(Box::new(
        |seen, _| match seen.body["response_format"]["type"].as_str() {
            Some("json_schema") => status(
                400,
                r#"{"error": "response_format json_schema unsupported"}"#,
            ),
            Some("json_object") => status(400, r#"{"error": "unsupported"}"#),
            _ => chat(&format!("Sure! {GOOD_ANSWER}")),
        },
    ));
    let mut client = client(&server.url, 0, Duration::from_secs(2));
    let mut mode = Mode::JsonSchema;
    assert_eq!(ask_answer(&mut client, &mut mode).unwrap().name, "a");
    assert_eq!(mode, Mode::Text);
    // json_schema, json_object with the schema, json_object, then text.
    assert_eq!(server.seen.lock().unwrap().len(), 4);
    let stats = &client.stats["researcher"];
    assert_eq!((stats.downgrades, stats.errors), (3, 0));
}

// ---------------------------------------------------------------------------------------
// The interop matrix: one case per documented behaviour of the servers users run, named
// after the server it mirrors. Every request is checked for what archlab must never send
// (streaming) and every outcome for what it costs (requests, retries, downgrades, errors).

/// Asks once through a fresh client; returns the answer, the mode it settled on, the
/// researcher's counters and every request the server saw.
fn ask_through(
    server: &common::llm_server::Server,
    start: Mode,
) -> (
    Result<Answer, LlmError>,
    Mode,
    archlab::agents::llm::client::RoleStats,
    Vec<Seen>,
) {
    let mut client = client(&server.url, 2, Duration::from_secs(2));
    let mut mode = start;
    let result = ask_answer(&mut client, &mut mode);
    let stats = client.stats.get("researcher").cloned().unwrap_or_default();
    let seen = server.seen.lock().unwrap().clone();
    for request in &seen {
        assert_ne!(request.body["stream"], json!(true), "archlab never streams");
    }
    (result, mode, stats, seen)
}

fn format_of(seen: &Seen) -> String {
    let format = &seen.body["response_format"];
    match (format["type"].as_str(), format.get("schema").is_some()) {
        (None, _) => "text".into(),
        (Some("json_object"), true) => "json_object+schema".into(),
        (Some(kind), _) => kind.into(),
    }
}

#[test]
fn interop_openai_json_schema_with_usage() {
    let server = serve(Box::new(|seen, _| {
        let format = &seen.body["response_format"];
        assert_eq!(format["type"], "json_schema");
        assert!(format["json_schema"]["schema"]["properties"]["score"].is_object());
        chat(GOOD_ANSWER)
    }));
    let (answer, mode, stats, seen) = ask_through(&server, Mode::JsonSchema);
    assert_eq!(answer.unwrap().score, 3.0);
    assert_eq!(mode, Mode::JsonSchema);
    assert_eq!((seen.len(), stats.errors, stats.downgrades), (1, 0, 0));
    assert_eq!((stats.prompt_tokens, stats.completion_tokens), (100, 20));
}

#[test]
fn interop_openai_model_without_json_schema_says_400_in_its_error_shape() {
    // OpenAI's models without structured outputs refuse json_schema (400, `param:
    // response_format`); its API also refuses unknown fields such as json_object's `schema`.
    let server = serve(Box::new(|seen, _| match format_of(seen).as_str() {
        "json_schema" => status(
            400,
            r#"{"error": {"message": "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.", "type": "invalid_request_error", "param": "response_format", "code": null}}"#,
        ),
        "json_object+schema" => status(
            400,
            r#"{"error": {"message": "Additional properties are not allowed ('schema' was unexpected) - 'response_format'", "type": "invalid_request_error", "param": null, "code": null}}"#,
        ),
        _ => chat(GOOD_ANSWER),
    }));
    let (answer, mode, stats, seen) = ask_through(&server, Mode::JsonSchema);
    assert_eq!(answer.unwrap().name, "a");
    assert_eq!(mode, Mode::JsonObject);
    let formats: Vec<String> = seen.iter().map(format_of).collect();
    assert_eq!(
        formats,
        ["json_schema", "json_object+schema", "json_object"]
    );
    assert_eq!((stats.downgrades, stats.errors, stats.retries), (2, 0, 0));
}

#[test]
fn interop_vllm_reasoning_content_beside_the_answer_and_its_404_is_not_negotiated() {
    let server = serve(Box::new(|seen, _| {
        if seen.body["model"] == "missing" {
            return status(
                404,
                r#"{"object": "error", "message": "The model `missing` does not exist.", "type": "NotFoundError", "param": null, "code": 404}"#,
            );
        }
        ok(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "reasoning_content": "The user wants JSON. {\"name\": \"wrong\"}",
                "content": GOOD_ANSWER, "tool_calls": []}}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 60, "total_tokens": 100}
        }))
    }));
    let (answer, mode, stats, _) = ask_through(&server, Mode::JsonSchema);
    // The answer is the content, not the JSON inside the reasoning.
    assert_eq!(answer.unwrap().name, "a");
    assert_eq!((mode, stats.completion_tokens), (Mode::JsonSchema, 60));

    // A real refusal (unknown model) is an error at once: no retries, no downgrade.
    let mut client = client(&server.url, 2, Duration::from_secs(2));
    let mut mode = Mode::JsonSchema;
    let result = ask::<Answer>(
        &mut client,
        "researcher",
        &Settings {
            model: "missing",
            temperature: None,
            max_tokens: None,
            max_reasks: 2,
        },
        &mut mode,
        "Give an answer.".into(),
    );
    assert!(
        matches!(result, Err(LlmError::Rejected { status: 404, .. })),
        "{result:?}"
    );
    let stats = &client.stats["researcher"];
    assert_eq!((stats.requests, stats.errors, stats.retries), (1, 1, 0));
    assert_eq!(mode, Mode::JsonSchema);
}

#[test]
fn interop_ollama_ignores_the_format_and_answers_in_prose_without_usage() {
    // OpenAI-compatible layers that ignore response_format answer in prose with a fenced
    // block, and may omit `usage`: the JSON is found and the tokens are estimated.
    let server = serve(Box::new(|_, _| {
        ok(json!({
            "id": "chatcmpl-7", "object": "chat.completion", "model": "llama3.2",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
                "content": format!("Here is the JSON you asked for:\n```json\n{GOOD_ANSWER}\n```\nLet me know!")}}]
        }))
    }));
    let (answer, mode, stats, seen) = ask_through(&server, Mode::JsonSchema);
    assert_eq!(answer.unwrap().score, 3.0);
    assert_eq!((mode, seen.len(), stats.errors), (Mode::JsonSchema, 1, 0));
    assert!(
        stats.prompt_tokens > 0 && stats.completion_tokens > 0,
        "{stats:?}"
    );
}

#[test]
fn interop_llama_cpp_server_400_for_json_schema_accepts_json_object_with_schema() {
    // llama.cpp's C++ server (builds before json_schema support) takes the schema inside
    // json_object and refuses other types with 400 and its own error shape.
    let server = serve(Box::new(|seen, _| {
        match format_of(seen).as_str() {
        "json_object+schema" => {
            assert!(seen.body["response_format"]["schema"]["properties"]["name"].is_object());
            chat(GOOD_ANSWER)
        }
        other => status(
            400,
            &json!({"error": {"code": 400, "type": "invalid_request_error",
                "message": format!("response_format type must be one of \"text\" or \"json_object\", but got: {other}")}})
            .to_string(),
        ),
    }
    }));
    let (answer, mode, stats, seen) = ask_through(&server, Mode::JsonSchema);
    assert_eq!(answer.unwrap().name, "a");
    assert_eq!(mode, Mode::JsonObjectSchema);
    assert_eq!((seen.len(), stats.downgrades, stats.errors), (2, 1, 0));
}

/// llama-cpp-python 0.3.x: pydantic refuses json_schema, and the server reports it as 500.
const LLAMA_CPP_PYTHON_500: &str = r#"{"error": {"message": "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema', 'ctx': {'expected': \"'text' or 'json_object'\"}}]", "type": "internal_server_error", "param": null, "code": null}}"#;

#[test]
fn interop_llama_cpp_python_500_is_negotiated_once_not_retried() {
    let server = serve(Box::new(|seen, _| match format_of(seen).as_str() {
        "json_schema" => status(500, LLAMA_CPP_PYTHON_500),
        _ => chat(GOOD_ANSWER),
    }));
    let (answer, mode, stats, seen) = ask_through(&server, Mode::JsonSchema);
    assert_eq!(answer.unwrap().name, "a");
    assert_eq!(mode, Mode::JsonObjectSchema);
    // One refused request, no retries into the 500, no error counted.
    assert_eq!(
        (seen.len(), stats.retries, stats.downgrades, stats.errors),
        (2, 0, 1, 0)
    );
    // The settled form is used from the first request of the next call.
    let mut client = client(&server.url, 2, Duration::from_secs(2));
    let mut mode = Mode::JsonObjectSchema;
    ask_answer(&mut client, &mut mode).unwrap();
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert_eq!(format_of(&seen[2]), "json_object+schema");
}

#[test]
fn interop_a_real_outage_500_is_retried_even_when_a_format_was_sent() {
    let server = serve(Box::new(|_, index| match index {
        0 => status(
            500,
            r#"{"error": {"message": "upstream connect error", "type": "server_error"}}"#,
        ),
        1 => status(503, "Service Unavailable"),
        _ => chat(GOOD_ANSWER),
    }));
    let (answer, mode, stats, seen) = ask_through(&server, Mode::JsonSchema);
    assert_eq!(answer.unwrap().name, "a");
    assert_eq!(
        mode,
        Mode::JsonSchema,
        "an outage is not a reason to ask more simply"
    );
    assert_eq!(
        (seen.len(), stats.retries, stats.downgrades, stats.errors),
        (3, 2, 0, 0)
    );
    assert!(seen.iter().all(|s| format_of(s) == "json_schema"));
}

#[test]
fn response_format_refusals_are_told_from_other_errors_by_their_body() {
    use archlab::agents::llm::client::names_response_format;
    for body in [
        LLAMA_CPP_PYTHON_500,
        "Invalid parameter: 'response_format' of type 'json_schema' is not supported",
        "Input should be 'text' or 'json_object'",
        "this model does not support Structured Outputs",
        "Response format not supported",
    ] {
        assert!(names_response_format(body), "{body}");
    }
    for body in [
        "upstream connect error",
        "This model's maximum context length is 4096 tokens",
        "",
        "CUDA out of memory",
    ] {
        assert!(!names_response_format(body), "{body}");
    }
}

// ---------------------------------------------------------------------------------------
// Whole campaigns through the binary.

const SECRET: &str = "sk-test-9f8e7d6c5b4a-DO-NOT-LEAK";
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("archlab-llm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn llm_manifest(dir: &Path, url: &str, extra: &str) -> String {
    let text = include_str!("fixtures/tiny_campaign.yaml").replace(
        "  parallelism: 2\n",
        &format!(
            "  parallelism: 2\n  agents:\n    backend: llm\n    llm:\n      baseUrl: {url}\n      apiKeyEnv: ARCHLAB_TEST_KEY\n      model: scripted\n      timeoutSeconds: 5\n      maxRetries: 1\n      backoffSeconds: 0.01\n{extra}"
        ),
    );
    let path = dir.join("campaign.yaml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn run_campaign(manifest: &str, state: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_archlab"))
        .args([
            "run",
            manifest,
            "--state",
            state.to_str().unwrap(),
            "--quiet",
        ])
        .env("ARCHLAB_TEST_KEY", SECRET)
        .env("ARCHLAB_LOG", "debug")
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn report_of(state: &Path, html: &Path) -> (Value, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_archlab"))
        .args([
            "report",
            "--state",
            state.to_str().unwrap(),
            "--json",
            "--html",
            html.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    (serde_json::from_str(&text).unwrap(), text)
}

/// Every file under `dir`, read as bytes, must not contain the key.
fn assert_no_secret_under(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_no_secret_under(&path);
        } else {
            let bytes = std::fs::read(&path).unwrap();
            let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
            assert!(!found, "the API key is in {}", path.display());
        }
    }
}

#[test]
fn an_llm_campaign_runs_end_to_end_and_the_key_never_leaks() {
    let server = serve(good_endpoint());
    let dir = temp_dir("campaign");
    let manifest = llm_manifest(&dir, &server.url, "");
    let state = dir.join("state");
    let (success, log) = run_campaign(&manifest, &state);
    assert!(success, "{log}");
    assert!(!log.contains(SECRET), "the key is in the log");
    let html = dir.join("report.html");
    let (report, text) = report_of(&state, &html);
    assert!(!text.contains(SECRET));
    assert_no_secret_under(&dir);

    // The server saw the key where it belongs, and every role was asked.
    let seen = server.seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some(&format!("Bearer {SECRET}") as &str))
    );
    // The judge reads the program and its results, never the proposer's own case for it.
    let judged: Vec<&str> = seen
        .iter()
        .filter_map(|s| s.body["messages"][0]["content"].as_str())
        .filter(|prompt| prompt.contains("You are the Judge"))
        .collect();
    assert!(!judged.is_empty());
    for prompt in judged {
        for motivation in ["look one token ahead", "so stale associations decay"] {
            assert!(!prompt.contains(motivation), "{prompt}");
        }
    }
    let roles = &report["agents"]["roles"];
    for role in ["researcher", "engineer", "analyst", "judge"] {
        assert!(
            roles[role]["requests"].as_u64().unwrap() > 0,
            "{role}: {roles}"
        );
        assert!(
            roles[role]["prompt_tokens"].as_u64().unwrap() > 0,
            "{role}: {roles}"
        );
    }
    assert!(report["usage"]["llmTokens"].as_u64().unwrap() > 0);
    assert!(report["agents"]["fallback"].is_null());

    // The first proposal failed the checks, was repaired by the Engineer, and both attempts
    // are remembered; proposals are marked as the LLM's.
    let experiments = report["experiments"].as_array().unwrap();
    let first = experiments
        .iter()
        .find(|e| e["origin"] == "proposal")
        .unwrap();
    let attempts = first["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["outcome"], "invalid", "{first}");
    assert!(attempts[0]["reason"].as_str().unwrap().contains("E0401"));
    assert!(attempts.len() >= 2, "{first}");
    assert_eq!(first["operator"], "llm");
    // The judge's score entered fitness: with the judge term it differs from the
    // loss/task-only fitness (0.5 exactly for the baseline without a judge).
    let baseline = experiments
        .iter()
        .find(|e| e["name"] == "linear_attention" && e["stage"] == "exploration")
        .unwrap();
    assert_ne!(baseline["fitness"].as_f64(), Some(0.5), "{baseline}");
}

#[test]
fn a_campaign_negotiates_the_format_once_and_remembers_it_across_a_resume() {
    // llama-cpp-python's behaviour in front of a well-behaved model.
    let good = good_endpoint();
    let server = serve(Box::new(move |seen, index| {
        // Slow enough that the first run is still going when it is killed.
        let reply = if format_of(seen) == "json_schema" {
            status(500, LLAMA_CPP_PYTHON_500)
        } else {
            good(seen, index)
        };
        Reply {
            delay: Duration::from_millis(150),
            ..reply
        }
    }));
    let dir = temp_dir("negotiate");
    let manifest = llm_manifest(&dir, &server.url, "");
    let state = dir.join("state");

    // The first run is killed once a few agent requests have been answered...
    let mut child = Command::new(env!("CARGO_BIN_EXE_archlab"))
        .args([
            "run",
            &manifest,
            "--state",
            state.to_str().unwrap(),
            "--quiet",
        ])
        .env("ARCHLAB_TEST_KEY", SECRET)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while server.seen.lock().unwrap().len() < 4 {
        assert!(std::time::Instant::now() < deadline, "no agent requests");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the campaign ended ({status}) before it could be killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let first_run = server.seen.lock().unwrap().len();

    // ...and the same command resumes it to the end.
    let (success, log) = run_campaign(&manifest, &state);
    assert!(success, "{log}");
    let seen = server.seen.lock().unwrap().clone();
    assert!(
        seen.len() > first_run + 2,
        "the resumed run asked the agents again: {first_run} then {}\n{log}",
        seen.len()
    );
    let refused: Vec<usize> = (0..seen.len())
        .filter(|&i| format_of(&seen[i]) == "json_schema")
        .collect();
    assert_eq!(
        refused,
        [0],
        "json_schema is asked once per campaign, not per run or role"
    );
    assert!(
        seen[first_run..]
            .iter()
            .all(|s| format_of(s) == "json_object+schema"),
        "the resumed run starts from the form that worked"
    );

    let (report, text) = report_of(&state, &dir.join("report.html"));
    assert_eq!(
        report["agents"]["negotiated"][format!("{} scripted", server.url)],
        "json_object+schema",
        "{}",
        report["agents"]
    );
    assert!(text.contains("json_object+schema"), "{text}");
    let roles = report["agents"]["roles"].as_object().unwrap();
    let total = |field: &str| -> u64 { roles.values().map(|r| r[field].as_u64().unwrap()).sum() };
    assert_eq!(
        (total("downgrades"), total("errors"), total("retries")),
        (1, 0, 0),
        "{roles:?}"
    );
    for role in ["researcher", "analyst"] {
        assert!(
            roles[role]["prompt_tokens"].as_u64().unwrap() > 0,
            "{role}: {roles:?}"
        );
    }
}

#[test]
fn garbage_from_the_endpoint_ends_in_recorded_failures_or_a_fallback() {
    // Every reply is unusable: 200 with a body that is not a chat completion.
    let server = serve(Box::new(|_, _| Reply {
        body: "<html>gateway error</html>".into(),
        ..status(200, "")
    }));
    let dir = temp_dir("garbage");
    let manifest = llm_manifest(&dir, &server.url, "      fallbackToEvolutionary: false\n");
    let state = dir.join("state");
    let (success, log) = run_campaign(&manifest, &state);
    assert!(success, "the campaign goes on: {log}");
    let (report, _) = report_of(&state, &dir.join("r.html"));
    let experiments = report["experiments"].as_array().unwrap();
    let proposals: Vec<&Value> = experiments
        .iter()
        .filter(|e| e["origin"] == "proposal")
        .collect();
    assert!(!proposals.is_empty());
    for proposal in &proposals {
        assert_eq!(proposal["phase"], "failed");
        let attempt = &proposal["attempts"][0];
        assert_eq!(attempt["outcome"], "agent_failed", "{proposal}");
        assert!(
            attempt["reason"].as_str().unwrap().contains("not JSON"),
            "{proposal}"
        );
    }
    assert_no_secret_under(&dir);

    // A dead endpoint with fallback allowed: the campaign switches to the evolutionary
    // agents, says so, and its proposals succeed.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/v1", listener.local_addr().unwrap());
    drop(listener);
    let dir = temp_dir("fallback");
    let manifest = llm_manifest(&dir, &dead, "");
    let state = dir.join("state");
    let (success, log) = run_campaign(&manifest, &state);
    assert!(success, "{log}");
    assert!(
        log.contains("fell back to the evolutionary agents"),
        "{log}"
    );
    let (report, _) = report_of(&state, &dir.join("r.html"));
    assert!(
        report["agents"]["fallback"]
            .as_str()
            .unwrap()
            .contains("unreachable")
    );
    let succeeded = report["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["origin"] == "proposal" && e["phase"] == "succeeded")
        .count();
    assert!(succeeded > 0, "{report}");
}

#[test]
fn an_endpoint_that_echoes_the_key_in_its_401_leaks_it_nowhere() {
    // A proxy that quotes the credentials it refused, in its message and in a field.
    let server = serve(Box::new(|seen: &Seen, _| {
        let authorization = seen.authorization.clone().unwrap_or_default();
        let key = authorization.trim_start_matches("Bearer ").to_string();
        status(
            401,
            &json!({"error": {"message": format!("invalid credentials: {authorization}"),
                "key": key, "type": "invalid_request_error"}})
            .to_string(),
        )
    }));
    let dir = temp_dir("echo");
    let manifest = llm_manifest(
        &dir,
        &server.url,
        "      fallbackToEvolutionary: false
",
    );
    let state = dir.join("state");
    let (success, log) = run_campaign(&manifest, &state);
    assert!(success, "the campaign goes on: {log}");
    assert!(!log.contains(SECRET), "the key is in the log");
    let seen = server.seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some(&format!("Bearer {SECRET}") as &str)),
        "the key was sent, so the endpoint could echo it"
    );
    let (report, text) = report_of(&state, &dir.join("r.html"));
    assert!(!text.contains(SECRET), "the key is in the report");
    let reasons: Vec<String> = report["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["origin"] == "proposal")
        .map(|e| {
            e["attempts"][0]["reason"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert!(!reasons.is_empty(), "{report}");
    for reason in &reasons {
        assert!(reason.contains("401"), "{reason}");
        assert!(
            reason.contains("invalid credentials: Bearer [redacted]"),
            "the body is quoted, redacted: {reason}"
        );
    }
    assert_no_secret_under(&dir);
}

/// A toy embedding: letter counts, so texts sharing words score high.
fn letters(text: &str) -> Vec<f64> {
    let mut counts = vec![0.0; 26];
    for c in text.to_lowercase().chars().filter(char::is_ascii_lowercase) {
        counts[(c as u8 - b'a') as usize] += 1.0;
    }
    counts
}

/// An `/embeddings` reply: the letter counts of every input.
fn letters_embeddings(seen: &Seen) -> Reply {
    let inputs: Vec<String> = seen.body["input"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| json!({"index": index, "embedding": letters(text)}))
        .collect();
    ok(json!({"data": data, "usage": {"total_tokens": 10}}))
}

#[test]
fn cognition_retrieval_through_the_embeddings_endpoint() {
    let server = serve(Box::new(|seen: &Seen, _| letters_embeddings(seen)));
    let base = archlab::cognition::Base::load(&[]).unwrap();
    let retriever = archlab::cognition::endpoint::EndpointRetriever::new(
        client(&server.url, 0, Duration::from_secs(5)),
        "toy-embedder",
        &base.entries,
    )
    .unwrap();
    // The exact trigger of an entry is its own best match.
    let entry = &base.entries[7];
    let hits = base.search(&retriever, &entry.trigger, 3, 0.0).unwrap();
    assert_eq!(hits[0].id, entry.id);
    let seen = server.seen.lock().unwrap();
    assert!(
        seen.iter()
            .all(|s| s.path == "/v1/embeddings" && s.body["model"] == "toy-embedder")
    );
    // Entries are embedded in batches, then one request per query.
    assert_eq!(seen.len(), base.entries.len().div_ceil(32) + 1);
}

#[test]
fn an_embeddings_endpoint_that_dies_mid_campaign_degrades_to_lexical_retrieval() {
    let chat_script = good_endpoint();
    let embeddings = std::sync::atomic::AtomicUsize::new(0);
    let entry_batches = archlab::cognition::Base::load(&[])
        .unwrap()
        .entries
        .len()
        .div_ceil(32);
    let server = serve(Box::new(move |seen: &Seen, index| {
        if seen.path != "/v1/embeddings" {
            return chat_script(seen, index);
        }
        // The entries at start-up and two queries succeed; then the endpoint is down for good.
        let n = embeddings.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n >= entry_batches + 2 {
            return status(503, r#"{"error": {"message": "embedding model unloaded"}}"#);
        }
        letters_embeddings(seen)
    }));
    let dir = temp_dir("embeddings-die");
    let manifest = llm_manifest(&dir, &server.url, "      embeddingsModel: toy\n");
    let text = std::fs::read_to_string(&manifest).unwrap().replace(
        "  seed: 3\n",
        "  cognition: {embedder: endpoint}\n  seed: 3\n",
    );
    std::fs::write(&manifest, text).unwrap();
    let state = dir.join("state");
    let (success, log) = run_campaign(&manifest, &state);
    assert!(success, "the campaign completes: {log}");
    assert!(
        log.contains("cognition retrieval: the endpoint retriever failed"),
        "the run says retrieval degraded: {log}"
    );
    let (report, _) = report_of(&state, &dir.join("r.html"));
    assert!(
        report["agents"]["retrievalFallback"]
            .as_str()
            .unwrap()
            .contains("lexical"),
        "{}",
        report["agents"]
    );
    let experiments = report["experiments"].as_array().unwrap();
    let proposals: Vec<&Value> = experiments
        .iter()
        .filter(|e| e["origin"] == "proposal")
        .collect();
    assert!(proposals.len() >= 3, "{report}");
    for proposal in &proposals {
        assert!(
            !proposal["retrieved"].as_array().unwrap().is_empty(),
            "every proposal still retrieved entries: {proposal}"
        );
    }
    assert!(
        log.contains("campaign `tiny` ended"),
        "the campaign reached its end: {log}"
    );
    let seen = server.seen.lock().unwrap();
    let failed_embeddings = seen
        .iter()
        .filter(|s| s.path == "/v1/embeddings")
        .count()
        .saturating_sub(entry_batches + 2);
    assert!(failed_embeddings >= 1, "the endpoint did die mid-campaign");
}

/// Runs the tiny campaign in `dir` against `server` with an LLM token budget of `limit` (the
/// manifest is rewritten each time; the state stays).
fn token_limited_run_in(
    dir: &Path,
    server: &common::llm_server::Server,
    limit: u64,
    extra: &str,
) -> (bool, String, Value) {
    let manifest = llm_manifest(dir, &server.url, extra);
    let text = std::fs::read_to_string(&manifest).unwrap().replace(
        "  budget: {maxExperiments: 18}\n",
        &format!("  budget: {{maxExperiments: 18, maxLlmTokens: {limit}}}\n"),
    );
    std::fs::write(&manifest, text).unwrap();
    let state = dir.join("state");
    let (success, log) = run_campaign(&manifest, &state);
    let (report, _) = report_of(&state, &dir.join("r.html"));
    (success, log, report)
}

/// The tiny campaign against the well-behaved endpoint, with an LLM token budget of `limit`.
fn token_limited_run(name: &str, limit: u64, extra: &str) -> (bool, String, Value) {
    token_limited_run_in(&temp_dir(name), &serve(good_endpoint()), limit, extra)
}

#[test]
fn a_spent_token_budget_ends_the_campaign_or_hands_over_to_the_evolutionary_agents() {
    // Every scripted reply costs 120 tokens: 500 tokens buy about four requests.
    let (success, log, report) =
        token_limited_run("tokens-end", 500, "      fallbackToEvolutionary: false\n");
    assert!(success, "{log}");
    assert!(
        log.contains("the LLM token limit (budget.maxLlmTokens) was reached"),
        "the ending names the limit: {log}"
    );
    let tokens = report["usage"]["llmTokens"].as_u64().unwrap();
    assert!((500..500 + 4 * 120).contains(&tokens), "{tokens}");
    let experiments = report["experiments"].as_array().unwrap().len();
    assert!(
        experiments < 12,
        "the campaign stopped early: {experiments}"
    );

    // With the fallback allowed the budget switches agents instead, and the campaign uses its
    // whole experiment budget.
    let (success, log, report) = token_limited_run("tokens-fallback", 500, "");
    assert!(success, "{log}");
    assert!(
        log.contains("fell back to the evolutionary agents"),
        "{log}"
    );
    assert!(
        report["agents"]["fallback"]
            .as_str()
            .unwrap()
            .contains("budget"),
        "{}",
        report["agents"]
    );
    assert_eq!(report["experiments"].as_array().unwrap().len(), 12);
    let tokens = report["usage"]["llmTokens"].as_u64().unwrap();
    assert!(
        (500..500 + 4 * 120).contains(&tokens),
        "no request after the budget: {tokens}"
    );
}

#[test]
fn llm_tokens_spent_before_a_resume_count_against_the_budget_after_it() {
    let server = serve(good_endpoint());
    let dir = temp_dir("tokens-resume");
    let no_fallback = "      fallbackToEvolutionary: false\n";
    // The first run ends on a 500-token budget (every scripted reply costs 120 tokens).
    let (success, log, report) = token_limited_run_in(&dir, &server, 500, no_fallback);
    assert!(success, "{log}");
    let first = report["usage"]["llmTokens"].as_u64().unwrap();
    assert!((500..500 + 4 * 120).contains(&first), "{first}");
    let asked_before = server.seen.lock().unwrap().len();

    // The budget is raised by two replies' worth and the same memory resumed. Counting from
    // zero, the second run alone would spend at least `first + 240` (over 740) before its
    // limit; counting what the first run spent, it stops within one proposal of the limit.
    let limit = first + 240;
    let (success, log, report) = token_limited_run_in(&dir, &server, limit, no_fallback);
    assert!(success, "{log}");
    assert!(
        log.contains("the LLM token limit (budget.maxLlmTokens) was reached"),
        "the resumed run ends on the raised limit: {log}"
    );
    assert!(
        server.seen.lock().unwrap().len() > asked_before,
        "the resumed run asked the agents again"
    );
    let total = report["usage"]["llmTokens"].as_u64().unwrap();
    assert!(
        (limit..limit + 4 * 120).contains(&total),
        "{first} tokens before the resume, {total} after, limit {limit}"
    );
}
