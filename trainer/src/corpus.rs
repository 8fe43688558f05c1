//! Text corpora: files of documents, tokenized into token shards. A `.jsonl` (or `.ndjson`)
//! file holds one JSON object a line with the document in a string field (`text` unless the
//! task says otherwise), a `.parquet` file one document a row in a string column of that name
//! (as FineWeb and most Hugging Face datasets are published); any other file is one
//! plain-text document. Each document is preceded
//! by the end-of-text token and the stream of them is cut into shards of `shard_tokens`, as
//! llm.c's `fineweb.py` does; training on the fly and `archlab data prepare` both cut here, so
//! the two see the same token windows.

use crate::json_lines::{JsonLines, LineError};
use crate::tokenizer::TextTokenizer;
use std::path::{Path, PathBuf};

/// llm.c's shard size: 10^8 tokens.
pub const SHARD_TOKENS: usize = 100_000_000;
/// A plain-text document is read whole.
pub const MAX_DOCUMENT_BYTES: u64 = 256 << 20;
/// Documents encoded in parallel at once.
const ENCODE_BATCH: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("{path}: {error}")]
    Read {
        path: PathBuf,
        /// Printed in the message, so not a `source` too (`{:#}` would print it twice).
        error: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Line {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error(
        "{path}: {bytes} bytes is over the limit of {MAX_DOCUMENT_BYTES} for one plain-text document (split it, or use JSONL)"
    )]
    TooLarge { path: PathBuf, bytes: u64 },
    #[error("{path}: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("{path}: tokenizing: {message}")]
    Encode { path: PathBuf, message: String },
    #[error("{0}")]
    Sink(String),
}

/// Where tokenizing stands: the document being read and how many of its tokens are already in
/// a finished shard. `archlab data prepare` saves it after each shard to resume from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub file: usize,
    pub document: u64,
    pub tokens: usize,
}

/// How documents are stored in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    PlainText,
    Jsonl,
    Parquet,
}

impl Format {
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl" | "ndjson") => Format::Jsonl,
            Some("parquet") => Format::Parquet,
            _ => Format::PlainText,
        }
    }
}

/// Calls `each(document index, text)` for every document of `path`, in order, from document
/// `skip` on; `read_bytes` is told of every byte read (progress bars).
pub fn for_each_document(
    path: &Path,
    text_field: &str,
    skip: u64,
    read_bytes: &mut dyn FnMut(u64),
    each: &mut dyn FnMut(u64, String) -> Result<(), CorpusError>,
) -> Result<(), CorpusError> {
    let read = |source| CorpusError::Read {
        path: path.to_path_buf(),
        error: source,
    };
    match Format::of(path) {
        Format::PlainText => {
            let bytes = std::fs::metadata(path).map_err(read)?.len();
            if bytes > MAX_DOCUMENT_BYTES {
                return Err(CorpusError::TooLarge {
                    path: path.to_path_buf(),
                    bytes,
                });
            }
            let raw = std::fs::read(path).map_err(read)?;
            read_bytes(raw.len() as u64);
            if skip == 0 {
                each(0, String::from_utf8_lossy(&raw).into_owned())?;
            }
            Ok(())
        }
        Format::Parquet => parquet_documents(path, text_field, skip, read_bytes, each),
        Format::Jsonl => {
            let file = std::fs::File::open(path).map_err(read)?;
            let mut lines = JsonLines::new(std::io::BufReader::new(file));
            let mut document = 0u64;
            let mut counted = 0u64;
            loop {
                let line = match lines.next_line() {
                    Ok(Some(line)) => line,
                    Ok(None) => {
                        read_bytes(lines.bytes_read() - counted);
                        return Ok(());
                    }
                    Err(LineError::Read(error)) => return Err(read(error)),
                    Err(LineError::TooLong { number }) => {
                        return Err(CorpusError::Line {
                            path: path.to_path_buf(),
                            line: number,
                            message: LineError::too_long_message(),
                        });
                    }
                };
                read_bytes(line.read);
                counted += line.read;
                let number = line.number;
                let fail = |message: String| CorpusError::Line {
                    path: path.to_path_buf(),
                    line: number,
                    message,
                };
                let value: serde_json::Value = serde_json::from_slice(line.bytes)
                    .map_err(|error| fail(format!("not a JSON object: {error}")))?;
                let text = match value.get(text_field) {
                    Some(serde_json::Value::String(text)) => text.clone(),
                    Some(other) => {
                        return Err(fail(format!(
                            "field `{text_field}` is {}, expected a string",
                            kind(other)
                        )));
                    }
                    None => {
                        return Err(fail(format!(
                            "no field `{text_field}` (set the task's `text_field` to the field holding the text)"
                        )));
                    }
                };
                if document >= skip {
                    each(document, text)?;
                }
                document += 1;
            }
        }
    }
}

/// The documents of a Parquet file: the string column `text_field` of every row, read alone.
fn parquet_documents(
    path: &Path,
    text_field: &str,
    skip: u64,
    read_bytes: &mut dyn FnMut(u64),
    each: &mut dyn FnMut(u64, String) -> Result<(), CorpusError>,
) -> Result<(), CorpusError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::RowAccessor;
    let format = |message: String| CorpusError::Parquet {
        path: path.to_path_buf(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|source| CorpusError::Read {
        path: path.to_path_buf(),
        error: source,
    })?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let reader = SerializedFileReader::new(file)
        .map_err(|error| format(format!("not a Parquet file: {error}")))?;
    let schema = reader.metadata().file_metadata().schema();
    let fields = schema.get_fields();
    let Some(column) = fields.iter().find(|field| field.name() == text_field) else {
        let names: Vec<&str> = fields.iter().map(|field| field.name()).collect();
        return Err(format(format!(
            "no column `{text_field}` (it has {names:?}; set the task's `text_field`)"
        )));
    };
    let projection = parquet::schema::types::Type::group_type_builder(schema.name())
        .with_fields(vec![column.clone()])
        .build()
        .map_err(|error| format(error.to_string()))?;
    let rows = reader
        .get_row_iter(Some(projection))
        .map_err(|error| format(error.to_string()))?;
    let total_rows = reader.metadata().file_metadata().num_rows().max(1) as u64;
    for (index, row) in rows.enumerate() {
        let index = index as u64;
        let row = row.map_err(|error| format(format!("row {index}: {error}")))?;
        read_bytes(size / total_rows);
        if index < skip {
            continue;
        }
        let text = row.get_string(0).map_err(|_| {
            format(format!(
                "row {index}: column `{text_field}` is not a string (or is null)"
            ))
        })?;
        each(index, text.clone())?;
    }
    Ok(())
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Tokenizes `files` from `from` on and hands each full shard of `shard_tokens` (and the
/// last, shorter one) to `sink` with the position just after it.
pub fn tokenize_into_shards(
    tokenizer: &TextTokenizer,
    files: &[PathBuf],
    text_field: &str,
    shard_tokens: usize,
    from: Position,
    read_bytes: &mut dyn FnMut(u64),
    sink: &mut dyn FnMut(Vec<u32>, Position) -> Result<(), CorpusError>,
) -> Result<(), CorpusError> {
    let mut shard: Vec<u32> = Vec::new();
    for (file_index, path) in files.iter().enumerate().skip(from.file) {
        let skip = if file_index == from.file {
            from.document
        } else {
            0
        };
        let mut pending: Vec<(u64, String)> = Vec::new();
        let mut flush =
            |pending: &mut Vec<(u64, String)>, shard: &mut Vec<u32>| -> Result<(), CorpusError> {
                let indices: Vec<u64> = pending.iter().map(|(index, _)| *index).collect();
                let texts = pending.drain(..).map(|(_, text)| text).collect();
                let encoded =
                    tokenizer
                        .encode_documents(texts)
                        .map_err(|message| CorpusError::Encode {
                            path: path.clone(),
                            message,
                        })?;
                for (document, ids) in indices.into_iter().zip(encoded) {
                    let resumed = file_index == from.file && document == from.document;
                    let mut used = if resumed {
                        from.tokens.min(ids.len())
                    } else {
                        0
                    };
                    while used < ids.len() {
                        let take = (shard_tokens - shard.len()).min(ids.len() - used);
                        shard.extend_from_slice(&ids[used..used + take]);
                        used += take;
                        if shard.len() == shard_tokens {
                            let position = if used == ids.len() {
                                Position {
                                    file: file_index,
                                    document: document + 1,
                                    tokens: 0,
                                }
                            } else {
                                Position {
                                    file: file_index,
                                    document,
                                    tokens: used,
                                }
                            };
                            sink(std::mem::take(shard), position)?;
                        }
                    }
                }
                Ok(())
            };
        for_each_document(path, text_field, skip, read_bytes, &mut |index, text| {
            pending.push((index, text));
            if pending.len() == ENCODE_BATCH {
                flush(&mut pending, &mut shard)?;
            }
            Ok(())
        })?;
        flush(&mut pending, &mut shard)?;
    }
    if !shard.is_empty() {
        let end = Position {
            file: files.len(),
            document: 0,
            tokens: 0,
        };
        sink(shard, end)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("archlab-corpus-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        dir
    }

    #[test]
    fn jsonl_errors_name_the_file_line_and_field() {
        let dir = dir("jsonl");
        let path = dir.join("docs.jsonl");
        std::fs::write(&path, "{\"text\": \"one\"}\n\n{\"text\": 5}\n").expect("write");
        let mut seen = Vec::new();
        let error = for_each_document(&path, "text", 0, &mut |_| {}, &mut |index, text| {
            seen.push((index, text));
            Ok(())
        })
        .expect_err("a number");
        assert_eq!(seen, [(0, "one".to_string())]);
        assert_eq!(
            error.to_string(),
            format!(
                "{}:3: field `text` is a number, expected a string",
                path.display()
            )
        );
        std::fs::write(&path, "{\"body\": \"x\"}\n").expect("write");
        let error = for_each_document(&path, "text", 0, &mut |_| {}, &mut |_, _| Ok(()))
            .expect_err("no field");
        assert!(error.to_string().contains(":1: no field `text`"), "{error}");
        std::fs::write(&path, "not json\n").expect("write");
        let error = for_each_document(&path, "text", 0, &mut |_| {}, &mut |_, _| Ok(()))
            .expect_err("not json");
        assert!(
            error.to_string().contains(":1: not a JSON object"),
            "{error}"
        );
    }

    /// A Parquet file with a string column `text` and an integer column `id`.
    fn write_parquet(path: &Path, texts: &[&str]) {
        use parquet::data_type::{ByteArray, ByteArrayType, Int32Type};
        use parquet::file::properties::WriterProperties;
        use parquet::file::writer::SerializedFileWriter;
        use std::sync::Arc;
        let schema = Arc::new(
            parquet::schema::parser::parse_message_type(
                "message rows { REQUIRED INT32 id; REQUIRED BYTE_ARRAY text (UTF8); }",
            )
            .expect("schema"),
        );
        let properties = Arc::new(
            WriterProperties::builder()
                .set_compression(parquet::basic::Compression::SNAPPY)
                .build(),
        );
        let file = std::fs::File::create(path).expect("create");
        let mut writer = SerializedFileWriter::new(file, schema, properties).expect("writer");
        let mut group = writer.next_row_group().expect("row group");
        let ids: Vec<i32> = (0..texts.len() as i32).collect();
        let values: Vec<ByteArray> = texts.iter().map(|t| ByteArray::from(*t)).collect();
        let mut column = group.next_column().expect("id").expect("id");
        column
            .typed::<Int32Type>()
            .write_batch(&ids, None, None)
            .expect("ids");
        column.close().expect("close");
        let mut column = group.next_column().expect("text").expect("text");
        column
            .typed::<ByteArrayType>()
            .write_batch(&values, None, None)
            .expect("texts");
        column.close().expect("close");
        group.close().expect("close");
        writer.close().expect("close");
    }

    #[test]
    fn parquet_rows_are_documents_of_their_text_column() {
        let dir = dir("parquet");
        let path = dir.join("train.parquet");
        write_parquet(&path, &["first document", "second", "third one"]);
        let mut seen = Vec::new();
        for_each_document(&path, "text", 1, &mut |_| {}, &mut |index, text| {
            seen.push((index, text));
            Ok(())
        })
        .expect("read");
        assert_eq!(seen, [(1, "second".into()), (2, "third one".into())]);
        let error = for_each_document(&path, "content", 0, &mut |_| {}, &mut |_, _| Ok(()))
            .expect_err("no such column");
        assert!(
            error.to_string().contains("no column `content`")
                && error.to_string().contains("\"id\""),
            "{error}"
        );
        let error = for_each_document(&path, "id", 0, &mut |_| {}, &mut |_, _| Ok(()))
            .expect_err("not text");
        assert!(
            error
                .to_string()
                .contains("row 0: column `id` is not a string"),
            "{error}"
        );
        std::fs::write(&path, "not parquet at all").expect("write");
        let error = for_each_document(&path, "text", 0, &mut |_| {}, &mut |_, _| Ok(()))
            .expect_err("garbage");
        assert!(error.to_string().contains("not a Parquet file"), "{error}");
    }

    #[test]
    fn resuming_from_any_shard_boundary_gives_the_same_shards() {
        let dir = dir("resume");
        let texts: Vec<String> = (0..40)
            .map(|i| format!("document {i} says {}", "la ".repeat(i % 7)))
            .collect();
        let jsonl: String = texts
            .iter()
            .map(|text| format!("{}\n", serde_json::json!({ "text": text })))
            .collect();
        std::fs::write(dir.join("a.jsonl"), &jsonl).expect("write");
        std::fs::write(dir.join("b.txt"), "a plain text file, one document").expect("write");
        let tokenizer = crate::tokenizer::train_byte_level_bpe(
            texts.clone().into_iter(),
            280,
            &dir.join("tokenizer.json"),
        )
        .expect("tokenizer");
        let files = [dir.join("a.jsonl"), dir.join("b.txt")];
        let run = |from: Position| {
            let mut shards = Vec::new();
            tokenize_into_shards(
                &tokenizer,
                &files,
                "text",
                37,
                from,
                &mut |_| {},
                &mut |tokens, end| {
                    shards.push((tokens, end));
                    Ok(())
                },
            )
            .expect("tokenize");
            shards
        };
        let whole = run(Position::default());
        assert!(whole.len() > 3);
        let starts = whole
            .iter()
            .filter(|(tokens, _)| tokens[0] == tokenizer.end_of_text)
            .count();
        assert!(starts >= 1);
        let total: usize = whole.iter().map(|(tokens, _)| tokens.len()).sum();
        let documents: usize = whole
            .iter()
            .map(|(tokens, _)| {
                tokens
                    .iter()
                    .filter(|&&t| t == tokenizer.end_of_text)
                    .count()
            })
            .sum();
        assert_eq!(documents, 41, "one end-of-text token before each document");
        assert!(whole[..whole.len() - 1].iter().all(|(t, _)| t.len() == 37));
        for cut in 0..whole.len() - 1 {
            let resumed = run(whole[cut].1);
            assert_eq!(resumed, whole[cut + 1..], "resumed after shard {cut}");
        }
        let mut documents = texts.clone();
        documents.push("a plain text file, one document".into());
        let expected: Vec<u32> = tokenizer
            .encode_documents(documents)
            .expect("encode")
            .concat();
        let flat: Vec<u32> = whole.iter().flat_map(|(t, _)| t.clone()).collect();
        assert_eq!(flat.len(), total);
        assert_eq!(flat, expected, "the shards are the documents in order");
    }
}
