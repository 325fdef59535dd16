//! Whole-model int8: convert every `Linear` of an [`Mlp`], [`Cnn`] or [`Gpt`] to int8 for
//! inference, calibrate static activation ranges, and save and load int8 checkpoints.
//!
//! A converted model is the same model type with each `Linear` quantized in place
//! ([`nn::linear::Linear::quantize_dynamic`]): its forward runs the int8 kernel (weights per output
//! channel, activations per row at run time), so the GPT's attention, MLP and head need no second
//! copy of the transformer code and cached generation works unchanged. Convolutions, embeddings
//! and norms stay in `f32` (PyTorch's `quantize_dynamic` makes the same choice).
//!
//! An int8 checkpoint is a safetensors file where each quantized layer's weight is stored as `I8`
//! codes under its usual name, with its per-row scales beside it as `F32` (`<layer>.weight_scale`,
//! and `<layer>.input_scale` when calibrated); everything else is `F32`. The metadata says
//! `format = tinytorch-int8` and lists the quantized layers, so a loader refuses to read the codes
//! as floats. About 4x smaller than the `f32` file for a model made mostly of `Linear` weights.

use std::collections::BTreeMap;
use std::path::Path;

use autograd::{no_grad, Variable};
use nn::linear::Linear;
use nn::quantized_linear::QuantizedLinear;
use nn::Module;
use tensor::quantize::{CalibrationMethod, QuantParams, RangeObserver};
use tensor::Tensor;

use crate::checkpoint::{
    checkpoint_error, config_from_metadata, load_stored, save_stored, StoredTensor, TokenizerSpec,
    GPT_FORMAT,
};
use crate::cnn::Cnn;
use crate::error::{ModelError, Result};
use crate::gpt::Gpt;
use crate::mlp::Mlp;

/// The `format` metadata of int8 checkpoints.
pub const INT8_FORMAT: &str = "tinytorch-int8";

/// A model whose `Linear` layers can be listed by name (the prefix of their parameters' names).
pub trait LinearLayers: Module {
    /// Every `Linear`, with the name its parameters carry (`layers.0`, `lm_head`, ...).
    fn linear_layers(&self) -> Vec<(String, &Linear)>;

    /// Every `Linear`, mutably, in the same order as [`LinearLayers::linear_layers`].
    fn linear_layers_mut(&mut self) -> Vec<(String, &mut Linear)>;
}

impl LinearLayers for Mlp {
    fn linear_layers(&self) -> Vec<(String, &Linear)> {
        let layers = self.layers().iter().enumerate();
        layers.map(|(i, l)| (format!("layers.{i}"), l)).collect()
    }

    fn linear_layers_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let layers = self.layers_mut().iter_mut().enumerate();
        layers.map(|(i, l)| (format!("layers.{i}"), l)).collect()
    }
}

impl LinearLayers for Cnn {
    fn linear_layers(&self) -> Vec<(String, &Linear)> {
        let layers = self.classifier().iter().enumerate();
        layers
            .map(|(j, l)| (format!("classifier.{j}"), l))
            .collect()
    }

    fn linear_layers_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let layers = self.classifier_mut().iter_mut().enumerate();
        layers
            .map(|(j, l)| (format!("classifier.{j}"), l))
            .collect()
    }
}

impl LinearLayers for Gpt {
    fn linear_layers(&self) -> Vec<(String, &Linear)> {
        let mut out = Vec::with_capacity(4 * self.blocks.len() + 1);
        for (i, b) in self.blocks.iter().enumerate() {
            let h = format!("transformer.h.{i}");
            out.push((format!("{h}.attn.c_attn"), &b.attn.qkv));
            out.push((format!("{h}.attn.c_proj"), &b.attn.proj));
            out.push((format!("{h}.mlp.c_fc"), &b.mlp.fc));
            out.push((format!("{h}.mlp.c_proj"), &b.mlp.proj));
        }
        out.push(("lm_head".to_string(), &self.lm_head));
        out
    }

    fn linear_layers_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let mut out = Vec::with_capacity(4 * self.blocks.len() + 1);
        for (i, b) in self.blocks.iter_mut().enumerate() {
            let h = format!("transformer.h.{i}");
            out.push((format!("{h}.attn.c_attn"), &mut b.attn.qkv));
            out.push((format!("{h}.attn.c_proj"), &mut b.attn.proj));
            out.push((format!("{h}.mlp.c_fc"), &mut b.mlp.fc));
            out.push((format!("{h}.mlp.c_proj"), &mut b.mlp.proj));
        }
        out.push(("lm_head".to_string(), &mut self.lm_head));
        out
    }
}

/// Quantize every `Linear` of `model` in place (int8 weights per output channel, dynamic
/// activation quantization). Returns the number of layers converted.
pub fn quantize_dynamic<M: LinearLayers>(model: &mut M) -> Result<usize> {
    // HINT: every Linear of model.linear_layers_mut() quantizes itself in place
    // HINT: (Linear::quantize_dynamic); count them.
    // BEGIN SOLUTION
    let mut n = 0;
    for (_, layer) in model.linear_layers_mut() {
        layer.quantize_dynamic()?;
        n += 1;
    }
    Ok(n)
    // END SOLUTION
}

/// Whether every `Linear` of `model` runs in int8.
pub fn is_quantized<M: LinearLayers>(model: &M) -> bool {
    let layers = model.linear_layers();
    !layers.is_empty() && layers.iter().all(|(_, l)| l.quantized().is_some())
}

/// Bytes of the model's weights as an inference model holds them: 1 per int8 code plus the
/// scales for quantized layers, 4 per value for every other parameter and buffer.
pub fn model_bytes<M: LinearLayers>(model: &M) -> usize {
    let mut quantized = std::collections::BTreeSet::new();
    let mut bytes = 0;
    for (name, layer) in model.linear_layers() {
        if let Some(q) = layer.quantized() {
            bytes += q.size_bytes();
            quantized.insert(format!("{name}.weight"));
            quantized.insert(format!("{name}.bias"));
        }
    }
    let others = model
        .named_parameters()
        .into_iter()
        .chain(model.named_buffers());
    bytes
        + others
            .filter(|(n, _)| !quantized.contains(n))
            .map(|(_, v)| 4 * v.numel())
            .sum::<usize>()
}

impl Mlp {
    /// An int8 copy of this model for inference (this one is unchanged).
    pub fn quantized(&self) -> Result<Mlp> {
        let mut copy = Mlp::new(self.config().clone())?;
        copy.load_state_dict(&self.state_dict())?;
        copy.eval();
        quantize_dynamic(&mut copy)?;
        Ok(copy)
    }

    /// Static activation quantization: run the `f32` layers on the calibration `batches` (each
    /// `(N, features)` or `(N, ...)`), observe every `Linear`'s input, and fix one activation scale
    /// per layer chosen by `method`. Quantizes the layers first if they are not yet. Returns the
    /// parameters chosen, input layer first.
    pub fn calibrate_static(
        &mut self,
        batches: &[Tensor],
        method: CalibrationMethod,
    ) -> Result<Vec<QuantParams>> {
        if batches.is_empty() {
            return Err(ModelError::Invalid {
                op: "Mlp::calibrate_static",
                reason: "no calibration batches given".to_string(),
            });
        }
        let mut observers = vec![RangeObserver::new(); self.layers().len()];
        for batch in batches {
            let n = batch.shape().first().copied().unwrap_or(0);
            let x =
                batch
                    .reshape_to(&[n, self.in_features()])
                    .map_err(|e| ModelError::Invalid {
                        op: "Mlp::calibrate_static",
                        reason: format!("a calibration batch does not fit the model: {e}"),
                    })?;
            no_grad(|| self.observe_layer_inputs(x, &mut observers))?;
        }
        let mut chosen = Vec::with_capacity(observers.len());
        for (observer, layer) in observers.iter().zip(self.layers_mut()) {
            let params = observer.params(method)?;
            if layer.quantized().is_none() {
                layer.quantize_dynamic()?;
            }
            if let Some(q) = layer.quantized_mut() {
                q.set_static_activation(Some(params))?;
            }
            chosen.push(params);
        }
        Ok(chosen)
    }
}

impl Mlp {
    /// Run the `f32` layers on `x` `(N, in)`, letting `observers[i]` see the input of layer `i`.
    fn observe_layer_inputs(&self, x: Tensor, observers: &mut [RangeObserver]) -> Result<()> {
        // HINT: for each layer: observers[i].observe(&x), then the f32 layer
        // HINT: (nn::linear::linear on the weight and bias, not the int8 forward), then the
        // HINT: activation after every layer but the last.
        // BEGIN SOLUTION
        let mut x = x;
        let last = self.layers().len() - 1;
        for (i, layer) in self.layers().iter().enumerate() {
            observers[i].observe(&x)?;
            let y = nn::linear::linear(&Variable::constant(x), &layer.weight, layer.bias.as_ref())?;
            x = if i < last {
                self.config().activation.apply(&y)?.value()
            } else {
                y.value()
            };
        }
        Ok(())
        // END SOLUTION
    }
}

impl Cnn {
    /// An int8 copy of this model for inference: the classifier's `Linear` layers in int8, the
    /// convolutions in `f32` (this one is unchanged).
    pub fn quantized(&self) -> Result<Cnn> {
        let mut copy = Cnn::new(self.config().clone())?;
        copy.load_state_dict(&self.state_dict())?;
        copy.eval();
        quantize_dynamic(&mut copy)?;
        Ok(copy)
    }
}

impl Gpt {
    /// An int8 copy of this model for inference, in eval mode: every `Linear` (attention,
    /// MLP and the head, untied from the embedding in int8) quantized; embeddings and layer
    /// norms stay `f32`.
    pub fn quantized(&self) -> Result<Gpt> {
        let mut copy = Gpt::new(self.config().clone(), 0)?;
        copy.load_state_dict(&self.state_dict())?;
        copy.eval();
        quantize_dynamic(&mut copy)?;
        Ok(copy)
    }
}

/// The tensors of an int8 checkpoint of `model` (see the module docs).
pub fn int8_state<M: LinearLayers>(model: &M) -> Result<BTreeMap<String, StoredTensor>> {
    let mut out = BTreeMap::new();
    for (name, layer) in model.linear_layers() {
        let Some(q) = layer.quantized() else {
            continue;
        };
        let shape = vec![q.out_features(), q.in_features()];
        out.insert(
            format!("{name}.weight"),
            StoredTensor::I8 {
                shape,
                data: q.weight_i8().to_vec(),
            },
        );
        let scales = Tensor::from_vec(q.scales().to_vec(), &[q.out_features()])?;
        out.insert(format!("{name}.weight_scale"), StoredTensor::F32(scales));
        if let tensor::gemm_i8::ActivationQuant::Static(scale) = q.activation() {
            let s = Tensor::from_vec(vec![scale], &[1])?;
            out.insert(format!("{name}.input_scale"), StoredTensor::F32(s));
        }
        if let Some(b) = q.bias() {
            out.insert(format!("{name}.bias"), StoredTensor::F32(b.clone()));
        }
    }
    for (name, t) in model.state_dict() {
        out.entry(name).or_insert(StoredTensor::F32(t));
    }
    Ok(out)
}

/// The names of the quantized layers, as stored in the `quantized_layers` metadata.
fn quantized_names<M: LinearLayers>(model: &M) -> Vec<String> {
    let layers = model.linear_layers().into_iter();
    layers
        .filter(|(_, l)| l.quantized().is_some())
        .map(|(n, _)| n)
        .collect()
}

/// Save an int8 model (see the module docs) with extra string `metadata`. Returns the size of
/// the file in bytes. Fails when no layer of `model` is quantized.
pub fn save_int8<M: LinearLayers>(
    path: &Path,
    model: &M,
    metadata: &BTreeMap<String, String>,
) -> Result<u64> {
    let names = quantized_names(model);
    if names.is_empty() {
        return Err(ModelError::Invalid {
            op: "save_int8",
            reason: "no layer of the model is quantized (convert it with quantized() first)"
                .to_string(),
        });
    }
    let mut meta = metadata.clone();
    meta.insert("format".to_string(), INT8_FORMAT.to_string());
    meta.insert(
        "quantized_layers".to_string(),
        serde_json::to_string(&names).expect("strings"),
    );
    save_stored(path, &int8_state(model)?, &meta)?;
    file_size(path)
}

/// The size of the file at `path` in bytes.
pub fn file_size(path: &Path) -> Result<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| ModelError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Load an int8 checkpoint written by [`save_int8`] into `model` (built with the same
/// configuration): the quantized layers get their int8 codes, scales and calibrated input scale,
/// every other tensor its `f32` values. Every missing, unexpected or mis-shaped tensor is listed
/// in one error, and nothing is changed unless everything fits. Returns the metadata.
pub fn load_int8_into<M: LinearLayers>(
    path: &Path,
    model: &mut M,
) -> Result<BTreeMap<String, String>> {
    let (stored, meta) = load_stored(path)?;
    load_int8_stored(path, stored, &meta, model)?;
    Ok(meta)
}

/// The body of [`load_int8_into`] once the file is read.
fn load_int8_stored<M: LinearLayers>(
    path: &Path,
    mut stored: BTreeMap<String, StoredTensor>,
    meta: &BTreeMap<String, String>,
    model: &mut M,
) -> Result<()> {
    let mut problems = Vec::new();
    if meta.get("format").map(String::as_str) != Some(INT8_FORMAT) {
        problems.push(format!(
            "metadata `format` is {:?}, expected {INT8_FORMAT:?}",
            meta.get("format")
        ));
    }
    let listed: Vec<String> = match meta.get("quantized_layers") {
        Some(text) => serde_json::from_str(text).unwrap_or_else(|e| {
            problems.push(format!(
                "metadata `quantized_layers` is not a JSON list: {e}"
            ));
            Vec::new()
        }),
        None => {
            problems.push("no `quantized_layers` metadata".to_string());
            Vec::new()
        }
    };
    // Build each listed layer from its parts.
    let mut layers: BTreeMap<String, QuantizedLinear> = BTreeMap::new();
    let mut failed = std::collections::BTreeSet::new();
    let own: BTreeMap<String, ([usize; 2], bool)> = model
        .linear_layers()
        .into_iter()
        .map(|(n, l)| (n, ([l.out_features(), l.in_features()], l.bias.is_some())))
        .collect();
    for name in &listed {
        let Some(&(shape, has_bias)) = own.get(name) else {
            problems.push(format!(
                "quantized layer '{name}' is not a Linear layer of the model"
            ));
            continue;
        };
        match int8_layer(&mut stored, name, shape) {
            Ok(q) if q.bias().is_some() == has_bias => {
                layers.insert(name.clone(), q);
            }
            Ok(_) => {
                failed.insert(name.clone());
                problems.push(format!(
                    "layer '{name}': the file {} a bias but the model {}",
                    if has_bias { "lacks" } else { "has" },
                    if has_bias { "has one" } else { "has none" }
                ));
            }
            Err(why) => {
                failed.insert(name.clone());
                problems.push(format!("layer '{name}': {why}"));
            }
        }
    }
    // Every other tensor is an f32 parameter or buffer; quantized weights get their dequantized
    // values so the f32 state stays consistent with the int8 one.
    let expected = model.state_dict();
    let mut state = BTreeMap::new();
    for (name, want) in &expected {
        let prefix = |suffix: &str| name.strip_suffix(suffix);
        if [".weight", ".bias"]
            .iter()
            .any(|s| prefix(s).is_some_and(|p| failed.contains(p)))
        {
            continue; // already reported with its layer
        }
        let layer = |suffix: &str| prefix(suffix).and_then(|p| layers.get(p));
        if let Some(q) = layer(".weight") {
            state.insert(name.clone(), q.dequantized_weight()?);
            continue;
        }
        if let Some(bias) = layer(".bias").and_then(QuantizedLinear::bias) {
            state.insert(name.clone(), bias.clone());
            continue;
        }
        match stored.remove(name) {
            Some(StoredTensor::F32(t)) if t.shape() == want.shape() => {
                state.insert(name.clone(), t);
            }
            Some(t) => problems.push(format!(
                "tensor '{name}' is {:?} {:?} in the file but f32 {:?} in the model",
                dtype_name(&t),
                t.shape(),
                want.shape()
            )),
            None => problems.push(format!(
                "missing tensor '{name}' (shape {:?})",
                want.shape()
            )),
        }
    }
    for name in stored.keys() {
        problems.push(format!("unexpected tensor '{name}'"));
    }
    if !problems.is_empty() {
        return Err(checkpoint_error(path, problems));
    }
    model.load_state_dict(&state)?;
    for (name, layer) in model.linear_layers_mut() {
        layer.set_quantized(layers.remove(&name))?;
    }
    Ok(())
}

fn dtype_name(t: &StoredTensor) -> &'static str {
    match t {
        StoredTensor::F32(_) => "f32",
        StoredTensor::I8 { .. } => "i8",
    }
}

/// Take a quantized layer's tensors out of `stored` and build it.
fn int8_layer(
    stored: &mut BTreeMap<String, StoredTensor>,
    name: &str,
    shape: [usize; 2],
) -> std::result::Result<QuantizedLinear, String> {
    let codes = match stored.remove(&format!("{name}.weight")) {
        Some(StoredTensor::I8 { shape: s, data }) if s == shape => data,
        Some(t) => {
            return Err(format!(
                "weight is {} {:?}, expected i8 {shape:?}",
                dtype_name(&t),
                t.shape()
            ))
        }
        None => return Err("missing its i8 weight".to_string()),
    };
    let scales = match stored.remove(&format!("{name}.weight_scale")) {
        Some(StoredTensor::F32(t)) if t.shape() == [shape[0]] => t.to_vec(),
        Some(t) => {
            return Err(format!(
                "weight_scale is {} {:?}, expected f32 [{}]",
                dtype_name(&t),
                t.shape(),
                shape[0]
            ))
        }
        None => return Err("missing its weight_scale".to_string()),
    };
    let bias = match stored.remove(&format!("{name}.bias")) {
        Some(StoredTensor::F32(t)) => Some(t),
        Some(_) => return Err("bias is not f32".to_string()),
        None => None,
    };
    let input_scale = match stored.remove(&format!("{name}.input_scale")) {
        Some(StoredTensor::F32(t)) if t.numel() == 1 => Some(t.to_vec()[0]),
        Some(_) => return Err("input_scale must be one f32".to_string()),
        None => None,
    };
    let mut q =
        QuantizedLinear::from_parts(codes, shape, scales, bias).map_err(|e| e.to_string())?;
    if let Some(scale) = input_scale {
        let params = QuantParams::symmetric(scale).map_err(|e| e.to_string())?;
        q.set_static_activation(Some(params))
            .map_err(|e| e.to_string())?;
    }
    Ok(q)
}

/// Save an int8 GPT with its config and tokenizer, so the file alone rebuilds the model for
/// generation. Returns the file size in bytes.
pub fn save_gpt_int8(path: &Path, model: &Gpt, tokenizer: &TokenizerSpec) -> Result<u64> {
    let mut meta = BTreeMap::new();
    meta.insert("model".to_string(), GPT_FORMAT.to_string());
    meta.insert("config".to_string(), model.config().to_json().to_string());
    meta.insert("tokenizer_kind".to_string(), tokenizer.kind().to_string());
    if let Some(text) = tokenizer.serialized() {
        meta.insert("tokenizer".to_string(), text);
    }
    save_int8(path, model, &meta)
}

/// Rebuild an int8 GPT (in eval mode) and its tokenizer from a file written by [`save_gpt_int8`].
pub fn load_gpt_int8(path: &Path) -> Result<(Gpt, TokenizerSpec)> {
    let (stored, meta) = load_stored(path)?;
    let mut problems = Vec::new();
    if meta.get("model").map(String::as_str) != Some(GPT_FORMAT) {
        problems.push(format!(
            "metadata `model` is {:?}, expected {GPT_FORMAT:?}",
            meta.get("model")
        ));
    }
    // The config reader checks `format`; here the format is the int8 one.
    let mut as_gpt = meta.clone();
    as_gpt.insert("format".to_string(), GPT_FORMAT.to_string());
    let config = config_from_metadata(&as_gpt).map_err(|p| {
        problems.extend(p);
        checkpoint_error(path, problems.clone())
    })?;
    let tokenizer = TokenizerSpec::from_metadata(&meta, path).map_err(|why| {
        problems.push(why);
        checkpoint_error(path, problems.clone())
    })?;
    if !problems.is_empty() {
        return Err(checkpoint_error(path, problems));
    }
    let mut model = Gpt::new(config, 0)?;
    model.eval();
    load_int8_stored(path, stored, &meta, &mut model)?;
    Ok((model, tokenizer))
}
