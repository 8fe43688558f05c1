//! Secrets out of what an endpoint says back. An error body is quoted in errors, conditions,
//! Events and logs; a proxy or a misconfigured server may echo the request's key in it (a 401
//! that prints the header it refused). Every body is redacted before it is kept anywhere: the
//! campaign's own key wherever it appears, and anything shaped like a credential — the token
//! after `Bearer`, keys with a provider's prefix (`sk-…`, `hf_…`), JSON Web Tokens.

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Prefixes of API keys in common use (OpenAI and compatible servers, Anthropic, Hugging Face,
/// Groq, xAI, Google, GitHub, Slack). A word with one of them and at least
/// [`MIN_PREFIXED_SECRET`] characters is taken for a key.
const KEY_PREFIXES: [&str; 10] = [
    "sk-",
    "sk_",
    "hf_",
    "gsk_",
    "xai-",
    "AIza",
    "ghp_",
    "gho_",
    "github_pat_",
    "xoxb-",
];
const MIN_PREFIXED_SECRET: usize = 16;
/// Shorter keys are not searched for by value (a 3-character "key" would redact ordinary
/// words); they are still never sent anywhere but the `Authorization` header. A word after
/// `Bearer` is taken for a token from this length on ("the bearer of bad news" stays).
const MIN_KEY_BY_VALUE: usize = 8;

/// `text` with `key` and every credential-shaped word replaced by [`REDACTED`].
pub fn redact(text: &str, key: Option<&str>) -> String {
    let text = match key.map(str::trim) {
        Some(key) if key.chars().count() >= MIN_KEY_BY_VALUE => text.replace(key, REDACTED),
        _ => text.to_string(),
    };
    let mut out = String::with_capacity(text.len());
    let mut after_bearer = false;
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let word_len = rest
            .char_indices()
            .find(|&(_, c)| !is_token_char(c))
            .map_or(rest.len(), |(i, _)| i);
        if word_len == 0 {
            // One separator character.
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let word = &rest[..word_len];
        let already = word == "redacted" && out.ends_with('[');
        if !already && ((after_bearer && word.len() >= MIN_KEY_BY_VALUE) || looks_like_a_key(word))
        {
            out.push_str(REDACTED);
        } else {
            out.push_str(word);
        }
        after_bearer = word.eq_ignore_ascii_case("bearer") || word.eq_ignore_ascii_case("basic");
        rest = &rest[word_len..];
        // `Bearer` counts for the next word only when a space follows it.
        if after_bearer && !rest.starts_with(' ') {
            after_bearer = false;
        } else if after_bearer {
            out.push(' ');
            rest = &rest[1..];
        }
    }
    out
}

/// Characters of tokens and keys (base64, base64url, hex and the punctuation keys use).
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '/' | '=')
}

fn looks_like_a_key(word: &str) -> bool {
    let prefixed =
        KEY_PREFIXES.iter().any(|p| word.starts_with(p)) && word.len() >= MIN_PREFIXED_SECRET;
    // A JSON Web Token: three base64url parts, the header starting `{"` (`eyJ`).
    let jwt = word.starts_with("eyJ") && word.split('.').filter(|p| !p.is_empty()).count() == 3;
    prefixed || jwt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_campaigns_key_is_redacted_wherever_it_appears() {
        let key = "local-secret-7c6b5a49";
        let body = format!(r#"{{"error":"invalid key {key}","header":"Authorization: {key}x"}}"#);
        let redacted = redact(&body, Some(key));
        assert!(!redacted.contains(key), "{redacted}");
        assert_eq!(redacted.matches(REDACTED).count(), 2, "{redacted}");
        assert!(
            redacted.starts_with(r#"{"error":"invalid key [redacted]""#),
            "{redacted}"
        );
        assert_eq!(
            redact(&format!("Bearer {key}"), Some(key)),
            "Bearer [redacted]"
        );
    }

    #[test]
    fn credential_shaped_words_are_redacted_without_knowing_the_key() {
        let body = "401: Bearer abc.def-123 refused; keys sk-proj-AAAAAAAAAAAAAAAAAAAA and \
                    hf_BBBBBBBBBBBBBBBBBBBB; token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln";
        let redacted = redact(body, None);
        for secret in [
            "abc.def-123",
            "sk-proj-AAAAAAAAAAAAAAAAAAAA",
            "hf_BBBBBBBBBBBBBBBBBBBB",
            "eyJhbGciOiJIUzI1NiJ9",
        ] {
            assert!(!redacted.contains(secret), "{secret} in {redacted}");
        }
        assert!(
            redacted.starts_with("401: Bearer [redacted] refused"),
            "{redacted}"
        );
    }

    #[test]
    fn ordinary_text_is_left_as_it_was() {
        let body = "model 'gpt-4o' not found; see https://example.com/docs/errors#model_not_found \
                    (sk- is a prefix, skills are words, the bearer of bad news)";
        assert_eq!(redact(body, Some("short")), body);
        assert_eq!(redact("", Some("a-long-enough-key")), "");
        assert_eq!(redact("naïve – ünïcode ✓", None), "naïve – ünïcode ✓");
    }
}
