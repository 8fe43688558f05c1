//! Hugging Face `tokenizer.json` files (GPT-2's, Llama's, or one `archlab tokenizer train`
//! wrote) through the `tokenizers` crate, and the end-of-text token put between documents.

use std::path::{Path, PathBuf};
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    Tokenizer, TokenizerBuilder,
};

/// A `tokenizer.json` is read whole; the largest common ones (Gemma's) are about 35 MB.
pub const MAX_TOKENIZER_BYTES: u64 = 128 << 20;
/// The end-of-text token `archlab tokenizer train` writes, GPT-2's.
pub const END_OF_TEXT: &str = "<|endoftext|>";
/// End-of-text tokens of common tokenizers, tried in order when a task names none.
const KNOWN_END_OF_TEXT: [&str; 4] = [END_OF_TEXT, "<|end_of_text|>", "</s>", "<eos>"];

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("{path}: {error}")]
    Read {
        path: PathBuf,
        /// Printed in the message, so not a `source` too (`{:#}` would print it twice).
        error: std::io::Error,
    },
    #[error(
        "{path}: {bytes} bytes is over the limit of {MAX_TOKENIZER_BYTES} for a tokenizer.json"
    )]
    TooLarge { path: PathBuf, bytes: u64 },
    #[error("{path}: not a Hugging Face tokenizer.json: {message}")]
    Format { path: PathBuf, message: String },
    #[error(
        "{path}: the tokenizer has no end-of-text token `{wanted}`; name the one it has with the task's `eot` (tried {KNOWN_END_OF_TEXT:?})"
    )]
    NoEndOfText { path: PathBuf, wanted: String },
    #[error("training the tokenizer: {0}")]
    Train(String),
}

/// A loaded tokenizer and its end-of-text token.
#[derive(Debug, Clone)]
pub struct TextTokenizer {
    pub path: PathBuf,
    inner: Tokenizer,
    pub end_of_text: u32,
    /// FNV-1a of the file: checkpoints name the tokenizer they were trained with.
    pub fingerprint: String,
}

impl TextTokenizer {
    /// Loads `path`; `eot` names the end-of-text token (else the first of
    /// [`KNOWN_END_OF_TEXT`] the vocabulary has).
    pub fn load(path: &Path, eot: Option<&str>) -> Result<TextTokenizer, TokenizerError> {
        let read = |source| TokenizerError::Read {
            path: path.to_path_buf(),
            error: source,
        };
        let bytes = std::fs::metadata(path).map_err(read)?.len();
        if bytes > MAX_TOKENIZER_BYTES {
            return Err(TokenizerError::TooLarge {
                path: path.to_path_buf(),
                bytes,
            });
        }
        let text = std::fs::read(path).map_err(read)?;
        let inner = Tokenizer::from_bytes(&text).map_err(|error| TokenizerError::Format {
            path: path.to_path_buf(),
            message: error.to_string(),
        })?;
        let end_of_text = match eot {
            Some(token) => inner.token_to_id(token),
            None => KNOWN_END_OF_TEXT
                .iter()
                .find_map(|token| inner.token_to_id(token)),
        }
        .ok_or_else(|| TokenizerError::NoEndOfText {
            path: path.to_path_buf(),
            wanted: eot.unwrap_or(END_OF_TEXT).to_string(),
        })?;
        Ok(TextTokenizer {
            path: path.to_path_buf(),
            inner,
            end_of_text,
            fingerprint: format!("{:016x}", fnv1a(&text)),
        })
    }

    /// Tokens of the whole vocabulary, added (special) tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The tokens of `text`, without special tokens (what lm-evaluation-harness's
    /// `tok_encode` gives a causal model without a BOS token).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        self.inner
            .encode(text, false)
            .map(|encoding| encoding.get_ids().to_vec())
            .map_err(|error| error.to_string())
    }

    /// Each document's tokens, preceded by the end-of-text token (as llm.c's `fineweb.py`
    /// writes them), encoded in parallel.
    pub fn encode_documents(&self, documents: Vec<String>) -> Result<Vec<Vec<u32>>, String> {
        let encodings = self
            .inner
            .encode_batch(documents, false)
            .map_err(|error| error.to_string())?;
        Ok(encodings
            .into_iter()
            .map(|encoding| {
                let mut ids = Vec::with_capacity(encoding.len() + 1);
                ids.push(self.end_of_text);
                ids.extend_from_slice(encoding.get_ids());
                ids
            })
            .collect())
    }
}

/// Trains a byte-level BPE (GPT-2's scheme: every byte is a token, so any text encodes) of
/// `vocab_size` tokens on `documents`, with [`END_OF_TEXT`] as its one special token, and
/// writes it to `output` as a `tokenizer.json`.
pub fn train_byte_level_bpe(
    documents: impl Iterator<Item = String> + Send,
    vocab_size: usize,
    output: &Path,
) -> Result<TextTokenizer, TokenizerError> {
    let minimum = ByteLevel::alphabet().len() + 1;
    if vocab_size < minimum {
        return Err(TokenizerError::Train(format!(
            "a byte-level BPE needs a vocabulary of at least {minimum} (256 bytes and the end-of-text token), found {vocab_size}"
        )));
    }
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(vec![AddedToken::from(END_OF_TEXT, true)])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tokenizer = TokenizerBuilder::<
        BPE,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    >::new()
    .with_model(BPE::default())
    .with_pre_tokenizer(Some(ByteLevel::new(false, true, true).into()))
    .with_decoder(Some(ByteLevel::default().into()))
    .build()
    .map_err(|error| TokenizerError::Train(error.to_string()))?;
    tokenizer
        .train(&mut trainer, documents)
        .map_err(|error| TokenizerError::Train(error.to_string()))?;
    let tokenizer: Tokenizer = tokenizer.into();
    tokenizer
        .save(output, false)
        .map_err(|error| TokenizerError::Train(format!("writing {}: {error}", output.display())))?;
    TextTokenizer::load(output, Some(END_OF_TEXT))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("archlab-tokenizer-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        dir
    }

    #[test]
    fn a_trained_tokenizer_round_trips_text_and_knows_its_end_of_text() {
        let dir = dir("train");
        let documents = (0..200).map(|i| format!("the cat sat on mat number {i}. the dog ran."));
        let path = dir.join("tokenizer.json");
        let tokenizer = train_byte_level_bpe(documents, 300, &path).expect("train");
        assert!(tokenizer.vocab_size() <= 300 && tokenizer.vocab_size() > 257);
        let ids = tokenizer
            .encode_documents(vec!["the cat sat".into(), "ünïcode ✓".into()])
            .expect("encode");
        assert_eq!(ids[0][0], tokenizer.end_of_text);
        // Merges learned: fewer tokens than bytes.
        assert!(ids[0].len() < "the cat sat".len(), "{:?}", ids[0]);
        let decoded = tokenizer.inner.decode(&ids[1][1..], false).expect("decode");
        assert_eq!(decoded, "ünïcode ✓");
    }

    #[test]
    fn a_file_that_is_not_a_tokenizer_json_is_named() {
        let dir = dir("bad");
        let path = dir.join("vocab.json");
        std::fs::write(&path, "{\"hello\": 1}").expect("write");
        let error = TextTokenizer::load(&path, None).expect_err("not a tokenizer");
        let message = error.to_string();
        assert!(
            message.contains("vocab.json") && message.contains("not a Hugging Face tokenizer.json"),
            "{message}"
        );
        let missing = TextTokenizer::load(&dir.join("absent.json"), None).expect_err("missing");
        assert!(missing.to_string().contains("absent.json"), "{missing}");
    }
}
