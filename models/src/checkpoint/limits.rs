//! Load-side limits: a hostile checkpoint costs no more than what it legitimately holds. The
//! file size is bounded before reading (and non-regular files refused), a stored config is
//! checked against the tensors present before a model is allocated, and non-finite weights
//! are refused.

use std::collections::BTreeMap;
use std::path::Path;

use tensor::Tensor;

use super::file_error;
use super::format::{floats_only, stored_from_bytes};
use crate::error::Result;
use crate::gpt::GptConfig;

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
