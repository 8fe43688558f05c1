//! Pre-tokenized token shards, as llm.c and modded-nanogpt write them (a header of 256
//! little-endian int32: magic, version, token count; then the tokens, `uint16` for magic
//! 20240520 version 1 (GPT-2), `uint32` for magic 20240801 version 7 (Llama 3)) and headerless
//! `.bin` files of `uint16` or `uint32` tokens, as nanoGPT's `prepare.py` writes them.
//!
//! Windows are read with positioned reads rather than a memory map: mapping needs `unsafe`
//! (which the workspace forbids: a file truncated under a map is undefined behaviour), and the
//! page cache serves the reads about as fast (`benches/throughput.rs` measures loading against
//! training). A token id beyond the model's vocabulary is an error naming the file and the
//! byte offset, found when its window is read.

use std::fs::File;
use std::path::{Path, PathBuf};

/// The header's length in bytes: 256 int32.
pub const HEADER_BYTES: u64 = 256 * 4;
/// llm.c's GPT-2 shards: `uint16` tokens.
pub const MAGIC_GPT2: i32 = 20_240_520;
/// llm.c's Llama 3 shards: `uint32` tokens.
pub const MAGIC_LLAMA3: i32 = 20_240_801;

/// The width of a token on disk.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TokenWidth {
    Uint16,
    Uint32,
}

impl TokenWidth {
    fn bytes(self) -> u64 {
        match self {
            TokenWidth::Uint16 => 2,
            TokenWidth::Uint32 => 4,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("{path}: {error}")]
    Read {
        path: PathBuf,
        /// Printed in the message, so not a `source` too (`{:#}` would print it twice).
        error: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error(
        "{path}: token {token} at byte {offset} is not below the vocabulary size {vocab} (a shard of another tokenizer?)"
    )]
    BeyondVocabulary {
        path: PathBuf,
        offset: u64,
        token: u32,
        vocab: usize,
    },
}

/// One shard, open for reading windows: a file, or a corpus tokenized in memory.
#[derive(Debug)]
pub struct Shard {
    path: PathBuf,
    source: Source,
    tokens: u64,
}

#[derive(Debug)]
enum Source {
    File {
        file: File,
        /// Where the tokens start, in bytes.
        start: u64,
        width: TokenWidth,
    },
    /// Tokens from a tokenizer, so all below its vocabulary.
    Memory(Vec<u32>),
}

impl Shard {
    /// Opens `path`: an llm.c header says the width (and must agree with `headerless` when
    /// both are given); without one the file is headerless tokens of width `headerless`.
    pub fn open(path: &Path, headerless: Option<TokenWidth>) -> Result<Shard, ShardError> {
        let format = |message: String| ShardError::Format {
            path: path.to_path_buf(),
            message,
        };
        let read = |source| ShardError::Read {
            path: path.to_path_buf(),
            error: source,
        };
        let file = File::open(path).map_err(read)?;
        let size = file.metadata().map_err(read)?.len();
        let mut header = [0u8; HEADER_BYTES as usize];
        let has_header = size >= HEADER_BYTES && {
            read_exact_at(&file, &mut header, 0).map_err(read)?;
            matches!(int(&header, 0), MAGIC_GPT2 | MAGIC_LLAMA3)
        };
        let (start, width, tokens) = if has_header {
            let (magic, version, count) = (int(&header, 0), int(&header, 1), int(&header, 2));
            let width = match (magic, version) {
                (MAGIC_GPT2, 1) => TokenWidth::Uint16,
                (MAGIC_LLAMA3, 7) => TokenWidth::Uint32,
                _ => {
                    return Err(format(format!(
                        "llm.c header with magic {magic} but version {version} at byte 4 (expected 1 for magic {MAGIC_GPT2}, 7 for {MAGIC_LLAMA3})"
                    )));
                }
            };
            if let Some(given) = headerless
                && given != width
            {
                return Err(format(format!(
                    "its llm.c header says {width:?} tokens but the config says {given:?}"
                )));
            }
            let count = u64::try_from(count).map_err(|_| {
                format(format!(
                    "negative token count {count} in the header at byte 8"
                ))
            })?;
            let expected = HEADER_BYTES + count * width.bytes();
            if size != expected {
                return Err(format(format!(
                    "the header (byte 8) says {count} tokens, {expected} bytes with the header, but the file has {size} bytes (truncated?)"
                )));
            }
            (HEADER_BYTES, width, count)
        } else {
            let Some(width) = headerless else {
                return Err(format(format!(
                    "no llm.c header (magic {MAGIC_GPT2} or {MAGIC_LLAMA3} at byte 0); for headerless tokens set the task's `dtype` to uint16 or uint32"
                )));
            };
            if size % width.bytes() != 0 {
                return Err(format(format!(
                    "{size} bytes is not a whole number of {width:?} tokens"
                )));
            }
            (0, width, size / width.bytes())
        };
        Ok(Shard {
            path: path.to_path_buf(),
            source: Source::File { file, start, width },
            tokens,
        })
    }

    /// A shard of tokens in memory; `origin` names where they came from in errors.
    pub fn in_memory(origin: PathBuf, tokens: Vec<u32>) -> Shard {
        Shard {
            path: origin,
            tokens: tokens.len() as u64,
            source: Source::Memory(tokens),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many tokens the shard holds.
    pub fn len(&self) -> u64 {
        self.tokens
    }

    pub fn is_empty(&self) -> bool {
        self.tokens == 0
    }

    /// Tokens `first..first + count`, each checked against `vocab`.
    pub fn read(&self, first: u64, count: usize, vocab: usize) -> Result<Vec<i64>, ShardError> {
        let (file, start, width) = match &self.source {
            Source::File { file, start, width } => (file, *start, *width),
            Source::Memory(tokens) => {
                let first = first as usize;
                return Ok(tokens[first..first + count]
                    .iter()
                    .map(|&token| i64::from(token))
                    .collect());
            }
        };
        let bytes_per_token = width.bytes();
        let offset = start + first * bytes_per_token;
        let mut bytes = vec![0u8; count * bytes_per_token as usize];
        read_exact_at(file, &mut bytes, offset).map_err(|source| ShardError::Read {
            path: self.path.clone(),
            error: source,
        })?;
        let mut tokens = Vec::with_capacity(count);
        for (index, chunk) in bytes.chunks_exact(bytes_per_token as usize).enumerate() {
            let token = match width {
                TokenWidth::Uint16 => u32::from(u16::from_le_bytes([chunk[0], chunk[1]])),
                TokenWidth::Uint32 => u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
            };
            if token as usize >= vocab {
                return Err(ShardError::BeyondVocabulary {
                    path: self.path.clone(),
                    offset: offset + index as u64 * bytes_per_token,
                    token,
                    vocab,
                });
            }
            tokens.push(i64::from(token));
        }
        Ok(tokens)
    }
}

/// The `index`-th little-endian int32 of the header.
fn int(header: &[u8], index: usize) -> i32 {
    let at = index * 4;
    i32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
}

#[cfg(unix)]
fn read_exact_at(file: &File, buffer: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buffer, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buffer: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buffer.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buffer, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buffer = &mut buffer[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// Writes `tokens` as an llm.c shard (header, then tokens of the header's width): what
/// `archlab data prepare` writes, and what tests build shards with.
pub fn write_llmc(path: &Path, tokens: &[u32], width: TokenWidth) -> std::io::Result<()> {
    let count = i32::try_from(tokens.len())
        .map_err(|_| std::io::Error::other("an llm.c shard holds fewer than 2^31 tokens"))?;
    let (magic, version) = match width {
        TokenWidth::Uint16 => (MAGIC_GPT2, 1),
        TokenWidth::Uint32 => (MAGIC_LLAMA3, 7),
    };
    let mut bytes = Vec::with_capacity(HEADER_BYTES as usize + tokens.len() * 4);
    for (index, value) in [magic, version, count].into_iter().enumerate() {
        debug_assert_eq!(bytes.len(), index * 4);
        bytes.extend(value.to_le_bytes());
    }
    bytes.resize(HEADER_BYTES as usize, 0);
    for &token in tokens {
        match width {
            TokenWidth::Uint16 => {
                let narrow = u16::try_from(token).map_err(|_| {
                    std::io::Error::other(format!("token {token} does not fit uint16"))
                })?;
                bytes.extend(narrow.to_le_bytes());
            }
            TokenWidth::Uint32 => bytes.extend(token.to_le_bytes()),
        }
    }
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("archlab-shards-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        dir
    }

    #[test]
    fn an_llmc_shard_reads_back_what_was_written_at_either_width() {
        let dir = dir("roundtrip");
        let tokens: Vec<u32> = (0..1000).map(|i| (i * 37) % 50_257).collect();
        for width in [TokenWidth::Uint16, TokenWidth::Uint32] {
            let path = dir.join(format!("{width:?}.bin"));
            write_llmc(&path, &tokens, width).expect("write");
            let shard = Shard::open(&path, None).expect("open");
            assert_eq!(shard.len(), 1000);
            let read = shard.read(10, 20, 50_257).expect("read");
            let expected: Vec<i64> = tokens[10..30].iter().map(|&t| i64::from(t)).collect();
            assert_eq!(read, expected);
        }
    }

    #[test]
    fn headerless_tokens_need_their_width() {
        let dir = dir("headerless");
        let path = dir.join("train.bin");
        let tokens: Vec<u8> = [5u16, 6, 7, 8]
            .iter()
            .flat_map(|t| t.to_le_bytes())
            .collect();
        std::fs::write(&path, &tokens).expect("write");
        let error = Shard::open(&path, None).expect_err("no width").to_string();
        assert!(
            error.contains("dtype") && error.contains("train.bin"),
            "{error}"
        );
        let shard = Shard::open(&path, Some(TokenWidth::Uint16)).expect("open");
        assert_eq!(shard.read(1, 3, 16).expect("read"), [6, 7, 8]);
        // Three bytes more: not a whole number of tokens.
        std::fs::write(&path, [tokens.as_slice(), &[1, 2, 3]].concat()).expect("write");
        let error = Shard::open(&path, Some(TokenWidth::Uint32)).expect_err("odd size");
        assert!(error.to_string().contains("not a whole number"), "{error}");
    }

    #[test]
    fn bad_headers_truncation_and_foreign_tokens_name_the_file_and_byte() {
        let dir = dir("bad");
        let path = dir.join("shard.bin");
        write_llmc(&path, &[1, 2, 3, 60_000], TokenWidth::Uint16).expect("write");
        let shard = Shard::open(&path, None).expect("open");
        let error = shard.read(0, 4, 50_257).expect_err("beyond").to_string();
        assert!(
            error.contains("shard.bin") && error.contains("token 60000 at byte 1030"),
            "{error}"
        );
        let mut bytes = std::fs::read(&path).expect("read");
        bytes.truncate(bytes.len() - 2);
        std::fs::write(&path, &bytes).expect("write");
        let error = Shard::open(&path, None).expect_err("truncated").to_string();
        assert!(
            error.contains("says 4 tokens") && error.contains("truncated"),
            "{error}"
        );
        bytes[4] = 9; // version 9
        std::fs::write(&path, &bytes).expect("write");
        let error = Shard::open(&path, None).expect_err("version").to_string();
        assert!(error.contains("version 9 at byte 4"), "{error}");
        write_llmc(&path, &[1, 2], TokenWidth::Uint16).expect("write");
        let error = Shard::open(&path, Some(TokenWidth::Uint32)).expect_err("width");
        assert!(error.to_string().contains("config says"), "{error}");
    }
}
