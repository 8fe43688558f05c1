//! Benchmark rows from JSONL (one JSON object a line) or Parquet (one a row, nested columns
//! as JSON objects and arrays): the two layouts the datasets are published in.

use crate::corpus::Format;
use crate::json_lines::{JsonLines, LineError};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Rows read from one file, at most; a benchmark is thousands of rows, not millions.
pub const MAX_ROWS: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    #[error("{path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {at}: {message}")]
    Row {
        path: PathBuf,
        at: String,
        message: String,
    },
    #[error("{path}: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("{path}: more than {MAX_ROWS} rows; set the benchmark's `limit`")]
    TooMany { path: PathBuf },
    #[error("{path}: a benchmark file is JSONL (`.jsonl`) or Parquet (`.parquet`)")]
    Format { path: PathBuf },
}

/// One row and where it is (`line 3`, `row 3`), for errors.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub at: String,
    pub fields: Map<String, Value>,
}

/// The first `limit` rows of `path` (all, without one).
pub fn read(path: &Path, limit: Option<usize>) -> Result<Vec<Row>, RowsError> {
    let limit = limit.unwrap_or(usize::MAX);
    match Format::of(path) {
        Format::Jsonl => jsonl(path, limit),
        Format::Parquet => parquet(path, limit),
        Format::PlainText => Err(RowsError::Format {
            path: path.to_path_buf(),
        }),
    }
}

fn jsonl(path: &Path, limit: usize) -> Result<Vec<Row>, RowsError> {
    let read = |error| RowsError::Read {
        path: path.to_path_buf(),
        error,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut lines = JsonLines::new(std::io::BufReader::new(file));
    let mut rows = Vec::new();
    while rows.len() < limit {
        let line = match lines.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(LineError::Read(error)) => return Err(read(error)),
            Err(LineError::TooLong { number }) => {
                return Err(RowsError::Row {
                    path: path.to_path_buf(),
                    at: format!("line {number}"),
                    message: LineError::too_long_message(),
                });
            }
        };
        let at = format!("line {}", line.number);
        let fail = |message: String| RowsError::Row {
            path: path.to_path_buf(),
            at: at.clone(),
            message,
        };
        let fields = match serde_json::from_slice(line.bytes) {
            Ok(Value::Object(fields)) => fields,
            Ok(other) => return Err(fail(format!("{}, expected a JSON object", kind(&other)))),
            Err(error) => return Err(fail(format!("not JSON: {error}"))),
        };
        if rows.len() == MAX_ROWS {
            return Err(RowsError::TooMany {
                path: path.to_path_buf(),
            });
        }
        rows.push(Row { at, fields });
    }
    Ok(rows)
}

fn parquet(path: &Path, limit: usize) -> Result<Vec<Row>, RowsError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let format = |message: String| RowsError::Parquet {
        path: path.to_path_buf(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|error| RowsError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let reader = SerializedFileReader::new(file)
        .map_err(|error| format(format!("not a Parquet file: {error}")))?;
    let iter = reader
        .get_row_iter(None)
        .map_err(|error| format(error.to_string()))?;
    let mut rows = Vec::new();
    for (index, row) in iter.enumerate().take(limit) {
        let at = format!("row {index}");
        let row = row.map_err(|error| RowsError::Row {
            path: path.to_path_buf(),
            at: at.clone(),
            message: error.to_string(),
        })?;
        if rows.len() == MAX_ROWS {
            return Err(RowsError::TooMany {
                path: path.to_path_buf(),
            });
        }
        let Value::Object(fields) = row.to_json_value() else {
            return Err(format(format!("{at} is not a record")));
        };
        rows.push(Row { at, fields });
    }
    Ok(rows)
}

pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Row {
    fn get(&self, field: &str) -> Result<&Value, String> {
        self.fields.get(field).ok_or_else(|| {
            let mut names: Vec<&str> = self.fields.keys().map(String::as_str).collect();
            names.truncate(16);
            format!("no field `{field}` (the row has {names:?})")
        })
    }

    /// A string field.
    pub fn string(&self, field: &str) -> Result<&str, String> {
        match self.get(field)? {
            Value::String(text) => Ok(text),
            other => Err(format!(
                "field `{field}` is {}, expected a string",
                kind(other)
            )),
        }
    }

    /// An integer field, or a string holding one (HellaSwag's `"label": "3"`).
    pub fn index(&self, field: &str) -> Result<usize, String> {
        let value = self.get(field)?;
        let parsed = match value {
            Value::Number(number) => number.as_u64(),
            Value::String(text) => text.trim().parse::<u64>().ok(),
            _ => None,
        };
        parsed.and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
            format!(
                "field `{field}` is {}, expected a non-negative integer",
                describe(value)
            )
        })
    }

    /// An array of strings: a field, or a field of an object field (`choices.text`).
    pub fn strings(&self, field: &str) -> Result<Vec<String>, String> {
        let value = match field.split_once('.') {
            Some((outer, inner)) => match self.get(outer)? {
                Value::Object(object) => object
                    .get(inner)
                    .ok_or_else(|| format!("field `{outer}` has no `{inner}`"))?,
                other => {
                    return Err(format!(
                        "field `{outer}` is {}, expected an object",
                        kind(other)
                    ));
                }
            },
            None => self.get(field)?,
        };
        let Value::Array(items) = value else {
            return Err(format!(
                "field `{field}` is {}, expected an array of strings",
                kind(value)
            ));
        };
        items
            .iter()
            .enumerate()
            .map(|(index, item)| match item {
                Value::String(text) => Ok(text.clone()),
                other => Err(format!(
                    "field `{field}`[{index}] is {}, expected a string",
                    kind(other)
                )),
            })
            .collect()
    }
}

/// A value for an error message: short ones whole, long ones by kind.
fn describe(value: &Value) -> String {
    let text = value.to_string();
    if text.len() <= 40 {
        text
    } else {
        kind(value).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_rows_name_their_line_and_refuse_what_is_not_an_object() {
        let dir = std::env::temp_dir().join(format!("archlab-rows-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("rows.jsonl");
        std::fs::write(&path, "{\"a\": 1}\n\n{\"a\": 2}\n[1]\n").expect("write");
        let error = read(&path, None).expect_err("an array is not a row");
        assert_eq!(
            error.to_string(),
            format!(
                "{}: line 4: an array, expected a JSON object",
                path.display()
            )
        );
        let rows = read(&path, Some(2)).expect("the first two rows are fine");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].at, "line 3");
        assert_eq!(rows[1].index("a"), Ok(2));
        assert_eq!(
            rows[0].string("a"),
            Err("field `a` is a number, expected a string".into())
        );
        assert!(rows[0].string("b").unwrap_err().contains("no field `b`"));
        let text = dir.join("rows.txt");
        std::fs::write(&text, "x").expect("write");
        assert!(matches!(read(&text, None), Err(RowsError::Format { .. })));
    }
}
