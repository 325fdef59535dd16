//! GPT checkpoints: a [`Gpt`] under nanoGPT's names, its config, tokenizer and optional training
//! state in the metadata (see the table in the module docs of `checkpoint`).

use std::collections::BTreeMap;
use std::path::Path;

use nn::Module;
use serde_json::Value;
use tensor::Tensor;

use super::format::{load_tensors, save_tensors};
use super::limits::{
    check_config_against_file, load_tensors_limited, non_finite_tensors, LoadLimits,
};
use super::tokenizer::TokenizerSpec;
use super::{checkpoint_error, GPT_FORMAT, GPT_VERSION};
use crate::error::Result;
use crate::gpt::{Gpt, GptConfig};

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
/// vocabulary) is listed in one [`ModelError::Checkpoint`](crate::ModelError::Checkpoint).
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
