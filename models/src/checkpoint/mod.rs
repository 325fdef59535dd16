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

//!
//! The module is split by concern: [`format`] (safetensors bytes in and out, any tensors),
//! [`limits`] (what a hostile file may cost before it is refused), [`tokenizer`] (the tokenizer
//! stored with a model) and [`gpt`] (the GPT checkpoint: names, config, training state).

use std::path::Path;

use crate::error::ModelError;

pub mod format;
pub mod gpt;
pub mod limits;
pub mod tokenizer;

pub(crate) use format::write_atomic;
pub use format::{
    load_stored, load_tensors, save_stored, save_tensors, stored_from_bytes, StoredTensor,
};
pub(crate) use gpt::config_from_metadata;
pub use gpt::{
    load_gpt, load_gpt_limited, load_gpt_weights, save_gpt, GptCheckpoint, TrainingState,
};
pub use limits::{
    check_config_against_file, load_tensors_limited, min_parameters, non_finite_tensors,
    read_checkpoint_bytes, LoadLimits,
};
pub use tokenizer::TokenizerSpec;

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

/// Whether `key` is a metadata key [`save_gpt`] writes itself.
pub fn is_reserved_metadata(key: &str) -> bool {
    RESERVED.contains(&key) || key.starts_with("extra.")
}
