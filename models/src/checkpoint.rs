//! Checkpoints in safetensors: named tensors plus string metadata, readable by PyTorch.
//!
//! A safetensors file is an 8-byte header length, a JSON header (each tensor's dtype, shape and
//! byte range, plus a `__metadata__` map of strings) and the raw little-endian data. It holds
//! no code, so loading one cannot run anything, and `safetensors.torch.load_file` opens it.
//!
//! - [`save_tensors`] / [`load_tensors`]: any `BTreeMap<String, Tensor>` with any string
//!   metadata (MLP/CNN weights, optimizer state, ...). Saved as `F32`; `F64`, `F16` and `BF16`
//!   files are converted to `f32` on load. Writes go to a temporary sibling file that is then
//!   renamed, so a crash never leaves a half-written checkpoint under the real name. The
//!   trainer's resumable checkpoints (model, optimizer state, step, history, data position) are
//!   such files too, written and read through these two functions.
//! - [`save_stored`] / [`load_stored`]: the same with int8 tensors kept as `I8` ([`StoredTensor`]),
//!   for the int8 checkpoints of `models::quantize`.
//! - [`save_gpt`] / [`load_gpt`]: a [`Gpt`] under nanoGPT's names and PyTorch's layouts
//!   (`transformer.h.0.attn.c_attn.weight` is `(3C, C)`), with the metadata
//!
//! | key | value |
//! |---|---|
//! | `format` | `tinytorch-gpt` |
//! | `version` | `1` |
//! | `config` | the [`GptConfig`] as JSON |
//! | `tokenizer_kind` | `char`, `bpe` or `none` |
//! | `tokenizer` | the char vocabulary in id order (`CharTokenizer` JSON) or the BPE merges (its text file) |
//! | `extra_tensors` | JSON list of the training-state tensor names stored alongside (optional) |
//! | `extra.<key>` | training-state values, e.g. `extra.step` (optional) |
//!
//! so the file alone is enough to rebuild the model and the tokenizer and generate text. A tied
//! head is written under both `transformer.wte.weight` and `lm_head.weight`, as a PyTorch
//! `state_dict()` lists it, so `model.load_state_dict(load_file(path))` works on nanoGPT's
//! `GPT` (strict) when no training-state tensors were added.
//!
//! Loading checks the metadata, the config, every name, shape and dtype, and reports every
//! problem at once in [`ModelError::Checkpoint`].

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use data::{BpeTokenizer, CharTokenizer, Tokenizer};
use nn::Module;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde_json::Value;
use tensor::Tensor;

use crate::error::{ModelError, Result};
use crate::gpt::{Gpt, GptConfig};

/// The `format` metadata of GPT checkpoints.
pub const GPT_FORMAT: &str = "tinytorch-gpt";
/// The `version` metadata of GPT checkpoints.
pub const GPT_VERSION: &str = "1";
/// Metadata keys [`save_gpt`] owns (training-state metadata goes under `extra.`).
const RESERVED: [&str; 6] = [
    "format",
    "version",
    "config",
    "tokenizer_kind",
    "tokenizer",
    "extra_tensors",
];

/// The tokenizer stored with a model, so a checkpoint alone can turn text into ids and back.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum TokenizerSpec {
    /// No tokenizer (ids only).
    #[default]
    None,
    /// One token per character; the vocabulary is stored in id order.
    Char(CharTokenizer),
    /// Byte-level BPE; its merges are stored.
    Bpe(BpeTokenizer),
}

impl TokenizerSpec {
    /// `"char"`, `"bpe"` or `"none"` (the `tokenizer_kind` metadata).
    pub fn kind(&self) -> &'static str {
        match self {
            TokenizerSpec::None => "none",
            TokenizerSpec::Char(_) => "char",
            TokenizerSpec::Bpe(_) => "bpe",
        }
    }

    /// The number of ids the tokenizer produces, if there is one.
    pub fn vocab_size(&self) -> Option<usize> {
        match self {
            TokenizerSpec::None => None,
            TokenizerSpec::Char(t) => Some(t.vocab_size()),
            TokenizerSpec::Bpe(t) => Some(t.vocab_size()),
        }
    }

    /// The ids of `text`.
    pub fn encode(&self, text: &str) -> Result<Vec<usize>> {
        match self {
            TokenizerSpec::None => Err(ModelError::Invalid {
                op: "TokenizerSpec::encode",
                reason: "this checkpoint stores no tokenizer".to_string(),
            }),
            TokenizerSpec::Char(t) => Ok(t.encode(text)?),
            TokenizerSpec::Bpe(t) => Ok(t.encode(text)?),
        }
    }

    /// The text of `ids`.
    pub fn decode(&self, ids: &[usize]) -> Result<String> {
        match self {
            TokenizerSpec::None => Err(ModelError::Invalid {
                op: "TokenizerSpec::decode",
                reason: "this checkpoint stores no tokenizer".to_string(),
            }),
            TokenizerSpec::Char(t) => Ok(t.decode(ids)?),
            TokenizerSpec::Bpe(t) => Ok(t.decode(ids)?),
        }
    }

    /// The serialized tokenizer (`None` for no tokenizer).
    pub(crate) fn serialized(&self) -> Option<String> {
        match self {
            TokenizerSpec::None => None,
            TokenizerSpec::Char(t) => Some(t.to_json()),
            TokenizerSpec::Bpe(t) => Some(t.to_text()),
        }
    }

    /// Parse the tokenizer metadata of a checkpoint.
    pub(crate) fn from_metadata(
        meta: &BTreeMap<String, String>,
        path: &Path,
    ) -> std::result::Result<TokenizerSpec, String> {
        let kind = meta
            .get("tokenizer_kind")
            .map(String::as_str)
            .unwrap_or("none");
        let text = meta.get("tokenizer");
        match (kind, text) {
            ("none", _) => Ok(TokenizerSpec::None),
            ("char", Some(text)) => CharTokenizer::from_json(text, path)
                .map(TokenizerSpec::Char)
                .map_err(|e| format!("metadata `tokenizer` (char): {e}")),
            ("bpe", Some(text)) => BpeTokenizer::from_text(text, path)
                .map(TokenizerSpec::Bpe)
                .map_err(|e| format!("metadata `tokenizer` (bpe): {e}")),
            ("char" | "bpe", None) => Err(format!(
                "metadata `tokenizer_kind` is {kind:?} but there is no `tokenizer`"
            )),
            (other, _) => Err(format!(
                "metadata `tokenizer_kind` must be \"char\", \"bpe\" or \"none\", got {other:?}"
            )),
        }
    }
}

impl From<CharTokenizer> for TokenizerSpec {
    fn from(t: CharTokenizer) -> Self {
        TokenizerSpec::Char(t)
    }
}

impl From<BpeTokenizer> for TokenizerSpec {
    fn from(t: BpeTokenizer) -> Self {
        TokenizerSpec::Bpe(t)
    }
}

/// Training state stored next to a model: string values (step, RNG seed, best loss, ...) and
/// tensors (optimizer moments, ...). Tensor names must not collide with the model's.
#[derive(Clone, Debug, Default)]
pub struct TrainingState {
    /// Stored as metadata `extra.<key>`.
    pub metadata: BTreeMap<String, String>,
    /// Stored as tensors under these names, listed in the `extra_tensors` metadata.
    pub tensors: BTreeMap<String, Tensor>,
}

/// What [`load_gpt`] returns.
pub struct GptCheckpoint {
    /// The model (in training mode, like every new model).
    pub model: Gpt,
    /// The tokenizer stored with it.
    pub tokenizer: TokenizerSpec,
    /// The training state stored with it.
    pub state: TrainingState,
}

impl std::fmt::Debug for GptCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GptCheckpoint({:?}, tokenizer {}, {} extra values, {} extra tensors)",
            self.model,
            self.tokenizer.kind(),
            self.state.metadata.len(),
            self.state.tensors.len()
        )
    }
}

pub(crate) fn file_error(path: &Path, reason: impl std::fmt::Display) -> ModelError {
    ModelError::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

pub(crate) fn checkpoint_error(path: &Path, problems: Vec<String>) -> ModelError {
    ModelError::Checkpoint {
        path: path.to_path_buf(),
        problems,
    }
}

/// A tensor as it is stored in a file: `f32` values, or int8 codes (an int8 checkpoint's weights,
/// whose scales are stored beside them as `f32` tensors).
#[derive(Clone, Debug, PartialEq)]
pub enum StoredTensor {
    /// Stored as `F32`.
    F32(Tensor),
    /// Stored as `I8`, row-major.
    I8 {
        /// The tensor's shape.
        shape: Vec<usize>,
        /// The codes, row-major.
        data: Vec<i8>,
    },
}

impl StoredTensor {
    /// The tensor's shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            StoredTensor::F32(t) => t.shape(),
            StoredTensor::I8 { shape, .. } => shape,
        }
    }

    /// The safetensors dtype and the little-endian bytes.
    fn encoded(&self) -> (Dtype, Vec<u8>) {
        match self {
            StoredTensor::F32(t) => (
                Dtype::F32,
                t.to_vec().iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            StoredTensor::I8 { data, .. } => (Dtype::I8, data.iter().map(|&v| v as u8).collect()),
        }
    }
}

/// Write `tensors` (as `F32`, row-major) and `metadata` to a safetensors file at `path`.
pub fn save_tensors(
    path: &Path,
    tensors: &BTreeMap<String, Tensor>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let stored = tensors
        .iter()
        .map(|(name, t)| (name.clone(), StoredTensor::F32(t.clone())))
        .collect();
    save_stored(path, &stored, metadata)
}

/// Write tensors of any stored dtype and `metadata` to a safetensors file at `path`, atomically
/// (a temporary sibling file renamed over the real name).
pub fn save_stored(
    path: &Path,
    tensors: &BTreeMap<String, StoredTensor>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let buffers: Vec<(&String, Vec<usize>, Dtype, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            let (dtype, bytes) = t.encoded();
            (name, t.shape().to_vec(), dtype, bytes)
        })
        .collect();
    let mut views = Vec::with_capacity(buffers.len());
    for (name, shape, dtype, bytes) in &buffers {
        let view = TensorView::new(*dtype, shape.clone(), bytes)
            .map_err(|e| file_error(path, format!("tensor '{name}': {e}")))?;
        views.push((name.as_str(), view));
    }
    let info: HashMap<String, String> = metadata.clone().into_iter().collect();
    let bytes = safetensors::serialize(views, Some(info))
        .map_err(|e| file_error(path, format!("cannot serialize: {e}")))?;
    write_atomic(path, &bytes)
}

/// Write `bytes` to `path` through a temporary sibling file and a rename, so a crash never
/// leaves half a file under the real name (the parent directory is created if needed). Every
/// file the models crate writes (checkpoints, training histories) goes through here.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".to_string());
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    std::fs::write(&tmp, bytes).map_err(|e| file_error(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        file_error(path, e)
    })
}

/// The little-endian values of a stored tensor as `f32`.
fn to_f32(view: &TensorView<'_>) -> std::result::Result<Vec<f32>, String> {
    let data = view.data();
    let values = match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect(),
        other => return Err(format!("dtype {other:?} is not a float type")),
    };
    Ok(values)
}

/// IEEE half precision to single precision (exact).
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f32;
    match exp {
        0 => sign * frac * 2f32.powi(-24),
        31 if frac == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        _ => sign * (1.0 + frac / 1024.0) * 2f32.powi(exp - 15),
    }
}

/// Read every tensor (converted to `f32`) and the metadata of a safetensors file. A tensor with
/// a non-float dtype is an error naming it.
pub fn load_tensors(path: &Path) -> Result<(BTreeMap<String, Tensor>, BTreeMap<String, String>)> {
    load_tensors_limited(path, &LoadLimits::default())
}

/// Keep the float tensors; an int8 tensor is an error naming it.
fn floats_only(
    path: &Path,
    (stored, metadata): (BTreeMap<String, StoredTensor>, BTreeMap<String, String>),
) -> Result<(BTreeMap<String, Tensor>, BTreeMap<String, String>)> {
    let mut tensors = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, t) in stored {
        match t {
            StoredTensor::F32(t) => {
                tensors.insert(name, t);
            }
            StoredTensor::I8 { .. } => problems.push(format!(
                "tensor '{name}': dtype I8 is not a float type (an int8 checkpoint: load it with models::quantize)"
            )),
        }
    }
    if !problems.is_empty() {
        return Err(checkpoint_error(path, problems));
    }
    Ok((tensors, metadata))
}

/// Read every tensor and the metadata of a safetensors file: float dtypes converted to `f32`,
/// `I8` kept as codes. Any other dtype is an error naming the tensor.
pub fn load_stored(
    path: &Path,
) -> Result<(BTreeMap<String, StoredTensor>, BTreeMap<String, String>)> {
    let bytes = read_checkpoint_bytes(path, LoadLimits::default().max_file_bytes)?;
    stored_from_bytes(path, &bytes)
}

/// Decode the bytes of a safetensors file (see [`load_stored`]); `path` names it in errors.
pub fn stored_from_bytes(
    path: &Path,
    bytes: &[u8],
) -> Result<(BTreeMap<String, StoredTensor>, BTreeMap<String, String>)> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| file_error(path, safetensors_problem(bytes, &e)))?;
    let metadata: BTreeMap<String, String> = header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| file_error(path, safetensors_problem(bytes, &e)))?;
    let mut tensors = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, view) in file.tensors() {
        let stored = if view.dtype() == Dtype::I8 {
            Ok(StoredTensor::I8 {
                shape: view.shape().to_vec(),
                data: view.data().iter().map(|&b| b as i8).collect(),
            })
        } else {
            to_f32(&view)
                .and_then(|v| Tensor::from_vec(v, view.shape()).map_err(|e| e.to_string()))
                .map(StoredTensor::F32)
        };
        match stored {
            Ok(t) => {
                tensors.insert(name, t);
            }
            Err(why) => problems.push(format!("tensor '{name}': {why}")),
        }
    }
    if !problems.is_empty() {
        return Err(checkpoint_error(path, problems));
    }
    Ok((tensors, metadata))
}

/// Save `model` under nanoGPT's names with its config, `tokenizer` and optional training
/// `state` (see the module docs).
pub fn save_gpt(
    path: &Path,
    model: &Gpt,
    tokenizer: &TokenizerSpec,
    state: &TrainingState,
) -> Result<()> {
    let mut tensors: BTreeMap<String, Tensor> = model.nanogpt_state_dict().into_iter().collect();
    let mut clashes: Vec<String> = state
        .tensors
        .keys()
        .filter(|k| tensors.contains_key(*k))
        .map(|k| format!("training-state tensor '{k}' has the name of a model tensor"))
        .collect();
    if let (Some(vocab), TokenizerSpec::Char(_) | TokenizerSpec::Bpe(_)) =
        (tokenizer.vocab_size(), tokenizer)
    {
        if vocab > model.config().vocab_size {
            clashes.push(format!(
                "the tokenizer has {vocab} ids but the model only {}",
                model.config().vocab_size
            ));
        }
    }
    if !clashes.is_empty() {
        return Err(checkpoint_error(path, clashes));
    }
    tensors.extend(state.tensors.clone());
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), GPT_FORMAT.to_string());
    meta.insert("version".to_string(), GPT_VERSION.to_string());
    meta.insert("config".to_string(), model.config().to_json().to_string());
    meta.insert("tokenizer_kind".to_string(), tokenizer.kind().to_string());
    if let Some(text) = tokenizer.serialized() {
        meta.insert("tokenizer".to_string(), text);
    }
    if !state.tensors.is_empty() {
        let names: Vec<&String> = state.tensors.keys().collect();
        meta.insert(
            "extra_tensors".to_string(),
            serde_json::to_string(&names).expect("strings"),
        );
    }
    for (k, v) in &state.metadata {
        meta.insert(format!("extra.{k}"), v.clone());
    }
    save_tensors(path, &tensors, &meta)
}

/// The GPT config stored in a checkpoint's metadata, or the reasons it cannot be read.
pub(crate) fn config_from_metadata(
    meta: &BTreeMap<String, String>,
) -> std::result::Result<GptConfig, Vec<String>> {
    let mut problems = Vec::new();
    match meta.get("format").map(String::as_str) {
        Some(GPT_FORMAT) => {}
        Some(other) => problems.push(format!("metadata `format` is {other:?}, expected {GPT_FORMAT:?}")),
        None => problems.push(format!(
            "no `format` metadata: not a {GPT_FORMAT} checkpoint (the config is needed to build the model)"
        )),
    }
    match meta.get("version").map(String::as_str) {
        Some(GPT_VERSION) | None => {}
        Some(other) => problems.push(format!(
            "metadata `version` is {other:?}, this reader knows {GPT_VERSION:?}"
        )),
    }
    let config = match meta.get("config") {
        None => {
            problems.push("no `config` metadata".to_string());
            None
        }
        Some(text) => match serde_json::from_str::<Value>(text) {
            Err(e) => {
                problems.push(format!("metadata `config` is not JSON: {e}"));
                None
            }
            Ok(v) => match GptConfig::from_json(&v) {
                Ok(c) => Some(c),
                Err(e) => {
                    problems.push(format!("metadata `config`: {e}"));
                    None
                }
            },
        },
    };
    match config {
        Some(c) if problems.is_empty() => Ok(c),
        _ => Err(problems),
    }
}

/// Check the file's tensors against `model` (names, shapes, the tied head) and the training
/// state listed in the metadata; returns the problems and the training-state tensors.
fn check_tensors(
    model: &Gpt,
    tensors: &BTreeMap<String, Tensor>,
    meta: &BTreeMap<String, String>,
    problems: &mut Vec<String>,
) -> BTreeMap<String, Tensor> {
    let extra_names: Vec<String> = match meta.get("extra_tensors") {
        None => Vec::new(),
        Some(text) => serde_json::from_str(text).unwrap_or_else(|e| {
            problems.push(format!(
                "metadata `extra_tensors` is not a JSON list of names: {e}"
            ));
            Vec::new()
        }),
    };
    let own = model.named_parameters();
    for (name, var) in &own {
        match tensors.get(name) {
            None => problems.push(format!("missing tensor '{name}' (shape {:?})", var.shape())),
            Some(t) if t.shape() != var.shape().as_slice() => problems.push(format!(
                "tensor '{name}' has shape {:?} in the file but the config needs {:?}",
                t.shape(),
                var.shape()
            )),
            Some(_) => {}
        }
    }
    let tied = model.config().tie_weights;
    if tied {
        if let (Some(head), Some(wte)) = (
            tensors.get("lm_head.weight"),
            tensors.get("transformer.wte.weight"),
        ) {
            if head != wte {
                problems.push(
                    "the config ties the head to the token embedding but 'lm_head.weight' differs from 'transformer.wte.weight'"
                        .to_string(),
                );
            }
        }
    }
    let mut extra = BTreeMap::new();
    for name in &extra_names {
        match tensors.get(name) {
            Some(t) => {
                extra.insert(name.clone(), t.clone());
            }
            None => problems.push(format!(
                "training-state tensor '{name}' is listed but missing"
            )),
        }
    }
    for name in tensors.keys() {
        let known = own.iter().any(|(n, _)| n == name)
            || (tied && name == "lm_head.weight")
            || extra_names.contains(name);
        if !known {
            problems.push(format!("unexpected tensor '{name}'"));
        }
    }
    extra
}

fn training_metadata(meta: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    meta.iter()
        .filter_map(|(k, v)| k.strip_prefix("extra.").map(|k| (k.to_string(), v.clone())))
        .collect()
}

/// Rebuild the model, tokenizer and training state saved by [`save_gpt`]. Every problem (bad
/// metadata, missing, unexpected or mis-shaped tensors, a tokenizer larger than the
/// vocabulary) is listed in one [`ModelError::Checkpoint`].
pub fn load_gpt(path: &Path) -> Result<GptCheckpoint> {
    load_gpt_limited(path, &LoadLimits::default())
}

/// [`load_gpt`] under explicit [`LoadLimits`]: the config is checked against the tensors the
/// file holds and against `limits.max_parameters` before the model is allocated.
pub fn load_gpt_limited(path: &Path, limits: &LoadLimits) -> Result<GptCheckpoint> {
    let (tensors, meta) = load_tensors_limited(path, limits)?;
    let config = config_from_metadata(&meta).map_err(|p| checkpoint_error(path, p))?;
    let problems = check_config_against_file(&config, &tensors, limits);
    if !problems.is_empty() {
        return Err(checkpoint_error(path, problems));
    }
    let model = Gpt::new(config, 0)?;
    let (tokenizer, state) = load_into(path, &model, &tensors, &meta, Vec::new())?;
    Ok(GptCheckpoint {
        model,
        tokenizer,
        state,
    })
}

/// Load a checkpoint's weights into an existing `model`. Besides the checks of [`load_gpt`],
/// every config field that differs from the model's is listed. Nothing is changed unless
/// everything fits.
pub fn load_gpt_weights(path: &Path, model: &Gpt) -> Result<(TokenizerSpec, TrainingState)> {
    let (tensors, meta) = load_tensors(path)?;
    let mut problems = Vec::new();
    match config_from_metadata(&meta) {
        Ok(config) => problems.extend(
            config
                .differences(model.config())
                .into_iter()
                .map(|d| d.replacen(" here but ", " in the file but ", 1) + " in the model"),
        ),
        Err(p) => problems.extend(p),
    }
    load_into(path, model, &tensors, &meta, problems)
}

/// The shared end of [`load_gpt`] and [`load_gpt_weights`].
fn load_into(
    path: &Path,
    model: &Gpt,
    tensors: &BTreeMap<String, Tensor>,
    meta: &BTreeMap<String, String>,
    mut problems: Vec<String>,
) -> Result<(TokenizerSpec, TrainingState)> {
    let tokenizer = TokenizerSpec::from_metadata(meta, path).unwrap_or_else(|why| {
        problems.push(why);
        TokenizerSpec::None
    });
    if let Some(vocab) = tokenizer.vocab_size() {
        if vocab > model.config().vocab_size {
            problems.push(format!(
                "the tokenizer has {vocab} ids but the model's vocab_size is {}",
                model.config().vocab_size
            ));
        }
    }
    let extra = check_tensors(model, tensors, meta, &mut problems);
    problems.extend(non_finite_tensors(tensors));
    if !problems.is_empty() {
        return Err(checkpoint_error(path, problems));
    }
    for (name, var) in model.named_parameters() {
        var.set_value(tensors[&name].clone())?;
    }
    Ok((
        tokenizer,
        TrainingState {
            metadata: training_metadata(meta),
            tensors: extra,
        },
    ))
}

/// Whether `key` is a metadata key [`save_gpt`] writes itself.
pub fn is_reserved_metadata(key: &str) -> bool {
    RESERVED.contains(&key) || key.starts_with("extra.")
}

// ----- Load-side limits: a hostile checkpoint costs no more than what it legitimately holds -----

/// Ceilings applied when loading a checkpoint, as the safetensors format bounds its header: the
/// file's size, and the number of parameters its config may describe. Both are checked before
/// anything is allocated for them; a binary can raise them with a flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadLimits {
    /// The largest checkpoint file read, in bytes.
    pub max_file_bytes: u64,
    /// The most parameters a stored config may describe.
    pub max_parameters: usize,
}

impl Default for LoadLimits {
    /// 16 GiB files and one billion parameters: far above every model of the course, far below
    /// what would exhaust a laptop by a typo in a config.
    fn default() -> Self {
        LoadLimits {
            max_file_bytes: 16 << 30,
            max_parameters: 1_000_000_000,
        }
    }
}

/// Read a checkpoint file, refusing before opening it anything that is not a regular file (a
/// FIFO would block, `/dev/zero` never ends) and any file larger than `max_file_bytes`; the read
/// itself stops one byte past the bound, in case the file grows meanwhile.
pub fn read_checkpoint_bytes(path: &Path, max_file_bytes: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| file_error(path, e))?;
    if !meta.file_type().is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file (a FIFO, device or socket)"
        };
        return Err(file_error(
            path,
            format!("is {kind}; a checkpoint must be a regular file"),
        ));
    }
    if meta.len() > max_file_bytes {
        return Err(file_error(
            path,
            format!(
                "is {} bytes, over the {max_file_bytes}-byte checkpoint limit (raise it to load this file)",
                meta.len()
            ),
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| file_error(path, e))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max_file_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| file_error(path, e))?;
    if bytes.len() as u64 > max_file_bytes {
        return Err(file_error(
            path,
            format!("grew past the {max_file_bytes}-byte checkpoint limit while being read"),
        ));
    }
    Ok(bytes)
}

/// [`load_tensors`] with the file size bounded by `limits`.
pub fn load_tensors_limited(
    path: &Path,
    limits: &LoadLimits,
) -> Result<(BTreeMap<String, Tensor>, BTreeMap<String, String>)> {
    let bytes = read_checkpoint_bytes(path, limits.max_file_bytes)?;
    floats_only(path, stored_from_bytes(path, &bytes)?)
}

/// The fewest parameters a GPT with `config` holds (the embeddings and the four weight matrices of
/// each block: `vocab*C + block*C + n_layer*12*C^2`), or `None` when that overflows.
pub fn min_parameters(config: &GptConfig) -> Option<usize> {
    let c = config.n_embd;
    let per_layer = c.checked_mul(c)?.checked_mul(12)?;
    config
        .vocab_size
        .checked_mul(c)?
        .checked_add(config.block_size.checked_mul(c)?)?
        .checked_add(config.n_layer.checked_mul(per_layer)?)
}

/// Check a stored config against the tensors the file holds and the parameter ceiling, before a
/// model is allocated for it: a 400 KB file whose config claims `vocab_size=200000,
/// n_embd=65536` is refused here instead of allocating 52 GB.
pub fn check_config_against_file(
    config: &GptConfig,
    tensors: &BTreeMap<String, Tensor>,
    limits: &LoadLimits,
) -> Vec<String> {
    let mut problems = Vec::new();
    let held: usize = tensors.values().map(|t| t.numel()).sum();
    let describe = format!(
        "config (vocab_size={}, block_size={}, n_layer={}, n_embd={})",
        config.vocab_size, config.block_size, config.n_layer, config.n_embd
    );
    match min_parameters(config) {
        None => problems.push(format!(
            "{describe} describes more parameters than a machine word can count"
        )),
        Some(n) if n > limits.max_parameters => problems.push(format!(
            "{describe} describes at least {n} parameters, over the limit of {} (raise it to load this model)",
            limits.max_parameters
        )),
        Some(n) if n > held => problems.push(format!(
            "{describe} describes at least {n} parameters but the file holds only {held} values"
        )),
        Some(_) => {}
    }
    for (name, rows) in [
        ("transformer.wte.weight", config.vocab_size),
        ("transformer.wpe.weight", config.block_size),
    ] {
        if let Some(t) = tensors.get(name) {
            if t.shape() != [rows, config.n_embd] {
                problems.push(format!(
                    "tensor '{name}' has shape {:?} in the file but the config needs [{rows}, {}]",
                    t.shape(),
                    config.n_embd
                ));
            }
        }
    }
    problems
}

/// Every tensor holding a NaN or an infinity, named with the first bad value's index: a
/// checkpoint of diverged weights is refused instead of generating garbage.
pub fn non_finite_tensors(tensors: &BTreeMap<String, Tensor>) -> Vec<String> {
    tensors
        .iter()
        .filter_map(|(name, t)| {
            let values = t.to_vec();
            let bad = values.iter().filter(|v| !v.is_finite()).count();
            values.iter().position(|v| !v.is_finite()).map(|i| {
                format!(
                    "tensor '{name}' holds {bad} non-finite values (the first, {}, at flat index {i}): the run that saved it diverged",
                    values[i]
                )
            })
        })
        .collect()
}

/// Explain why bytes are not a valid safetensors file, naming the tensor whose dtype, shape or
/// byte range is wrong when the header can be read (the format's own errors do not always).
fn safetensors_problem(bytes: &[u8], err: &safetensors::SafeTensorError) -> String {
    match bad_tensor_in_header(bytes) {
        Some(why) => format!("not a valid safetensors file: {why}"),
        None => format!("not a safetensors file: {err}"),
    }
}

/// Walk a safetensors header and name the first tensor whose entry is wrong.
fn bad_tensor_in_header(bytes: &[u8]) -> Option<String> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header = bytes.get(8..8usize.checked_add(n)?)?;
    let data_len = bytes.len() - 8 - n;
    let map: serde_json::Map<String, Value> = serde_json::from_slice(header).ok()?;
    let mut entries = Vec::new();
    for (name, v) in &map {
        if name == "__metadata__" {
            continue;
        }
        let dtype = v.get("dtype").and_then(Value::as_str).unwrap_or("?");
        let size: Option<usize> = match dtype {
            "F64" | "I64" | "U64" => Some(8),
            "F32" | "I32" | "U32" => Some(4),
            "F16" | "BF16" | "I16" | "U16" => Some(2),
            "I8" | "U8" | "BOOL" | "F8_E4M3" | "F8_E5M2" => Some(1),
            _ => None,
        };
        let shape: Option<Vec<usize>> = v
            .get("shape")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect());
        let offsets: Option<(usize, usize)> = v
            .get("data_offsets")
            .and_then(Value::as_array)
            .and_then(|a| match a.as_slice() {
                [s, e] => Some((s.as_u64()? as usize, e.as_u64()? as usize)),
                _ => None,
            });
        let (Some(size), Some(shape), Some((start, end))) = (size, shape.clone(), offsets) else {
            return Some(format!(
                "tensor '{name}': dtype {dtype:?}, shape {shape:?} or data_offsets {offsets:?} is missing or unsupported"
            ));
        };
        let want = shape.iter().try_fold(size, |acc, &d| acc.checked_mul(d));
        if end < start || want != Some(end - start) {
            return Some(format!(
                "tensor '{name}': data_offsets [{start}, {end}] hold {} bytes but dtype {dtype} and shape {shape:?} need {}",
                end.saturating_sub(start),
                want.map_or("more than fits".to_string(), |w| w.to_string())
            ));
        }
        if end > data_len {
            return Some(format!(
                "tensor '{name}': data_offsets [{start}, {end}] run past the {data_len} data bytes in the file"
            ));
        }
        entries.push((start, end, name.clone()));
    }
    entries.sort();
    let mut at = 0;
    for (start, end, name) in &entries {
        if *start != at {
            return Some(format!(
                "tensor '{name}': data starts at byte {start} but the previous tensor ends at {at} (a gap or an overlap)"
            ));
        }
        at = *end;
    }
    if at != data_len {
        return Some(format!(
            "the tensors cover {at} data bytes but the file holds {data_len}"
        ));
    }
    None
}
