//! The result as a container's termination message: the kubelet keeps only the last 4096 bytes
//! of the file, so a longer message would reach the operator as the end of a JSON line, which
//! parses as nothing. A result whose error makes it too long is shortened in the error's
//! middle instead, keeping what failed (its start) and why (its end).

/// Bytes of a termination message the kubelet keeps (`MaxContainerTerminationMessageLength`).
pub const TERMINATION_MESSAGE_LIMIT: usize = 4096;

/// What stands for the bytes cut from the middle of an error.
const ELISION: &str = " … ";

/// `text` as a termination message of at most `limit` bytes. A JSON object with a string
/// `error` keeps every other field whole and as much of the error's start and end as fit;
/// anything else too long is cut at the last character boundary within the limit (the reader
/// then finds the whole line in the log).
pub fn termination_message(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    shortened_error(text, limit).unwrap_or_else(|| head(text, limit).to_string())
}

fn shortened_error(text: &str, limit: usize) -> Option<String> {
    let mut value: serde_json::Value = serde_json::from_str(text).ok()?;
    let error = value.get("error")?.as_str()?.to_string();
    let mut keep = error.len();
    // Escapes make the serialized length differ from the error's: shrink until it fits.
    loop {
        let line = serde_json::to_string(&value).ok()?;
        if line.len() <= limit {
            return Some(line);
        }
        if keep == 0 {
            return None;
        }
        keep = keep.saturating_sub(line.len() - limit);
        value["error"] = serde_json::Value::String(middle_cut(&error, keep));
    }
}

/// `text` in at most `keep` bytes plus the elision: its start and end, half each.
fn middle_cut(text: &str, keep: usize) -> String {
    let start = head(text, keep / 2);
    let end = tail(text, keep - start.len());
    format!("{start}{ELISION}{end}")
}

fn head(text: &str, bytes: usize) -> &str {
    let mut end = bytes.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn tail(text: &str, bytes: usize) -> &str {
    let mut start = text.len() - bytes.min(text.len());
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_line(error: &str) -> String {
        serde_json::json!({"event": "result", "status": "error", "error": error}).to_string()
    }

    #[test]
    fn a_message_within_the_limit_is_unchanged() {
        let line = error_line("no such file");
        assert_eq!(termination_message(&line, TERMINATION_MESSAGE_LIMIT), line);
    }

    #[test]
    fn a_long_multibyte_error_keeps_its_start_and_end_in_a_valid_line() {
        let path = format!("/data/{}/корпус.txt", "数据/".repeat(900));
        let error = format!("reading text file {path}: No such file or directory (os error 2)");
        let line = error_line(&error);
        assert!(line.len() > TERMINATION_MESSAGE_LIMIT);
        let message = termination_message(&line, TERMINATION_MESSAGE_LIMIT);
        assert!(
            message.len() <= TERMINATION_MESSAGE_LIMIT,
            "{}",
            message.len()
        );
        // Within 8 bytes of the limit: a multibyte character may not fit whole.
        assert!(
            message.len() > TERMINATION_MESSAGE_LIMIT - 8,
            "{}",
            message.len()
        );
        let value: serde_json::Value = serde_json::from_str(&message).expect("valid JSON");
        assert_eq!(value["status"], "error");
        let kept = value["error"].as_str().expect("an error");
        assert!(kept.starts_with("reading text file /data/数据/"), "{kept}");
        assert!(kept.ends_with("корпус.txt: No such file or directory (os error 2)"));
        assert!(kept.contains(ELISION));
    }

    #[test]
    fn escapes_count_toward_the_limit() {
        let line = error_line(&"\"\u{1}\n".repeat(2000));
        let message = termination_message(&line, 1000);
        assert!(message.len() <= 1000, "{}", message.len());
        assert!(serde_json::from_str::<serde_json::Value>(&message).is_ok());
    }

    #[test]
    fn other_long_text_is_cut_at_a_character_boundary() {
        let text = "é".repeat(3000);
        let message = termination_message(&text, 4095);
        assert_eq!(message.len(), 4094);
        assert!(message.chars().all(|c| c == 'é'));
        // A line whose other fields alone exceed the limit cannot be saved by its error.
        let crowded = serde_json::json!({"error": "x", "accuracy": "y".repeat(5000)}).to_string();
        assert_eq!(termination_message(&crowded, 4096).len(), 4096);
    }
}
