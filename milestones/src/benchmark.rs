//! The vision track of `mlperf-2018`: measure an image classifier the way a benchmark must.
//! Accuracy on the held-out split (never the training data, never simulated), latency at batch
//! 1 and at a large batch with the harness's statistics, the checkpoint's size on disk (written
//! with `models::checkpoint` and measured with `stat`), parameter bytes, and the process's peak
//! memory while the large batch ran.

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use autograd::{no_grad, Variable};
use benches::harness::{param_bytes, Benchmark, ModelMetrics};
use data::ImageSet;
use nn::Module;
use tensor::Tensor;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// A model to measure: its name, how it was obtained, the model (in evaluation mode), and
/// whether it reads flat vectors (an MLP) or `(C, H, W)` images (a CNN).
#[derive(Clone)]
pub struct Candidate {
    pub name: String,
    pub technique: String,
    pub model: Rc<dyn Module>,
    pub flatten: bool,
    /// How the model is stored when not as an `f32` state dict (an int8 model writes int8
    /// codes): the writer returns the file's size in bytes.
    pub save: Option<SaveFn>,
    /// The bytes the model's weights take in memory when not 4 per parameter (int8 codes).
    pub weight_bytes: Option<u64>,
}

/// Writes a model's checkpoint to the path given and returns its size in bytes.
pub type SaveFn = Rc<dyn Fn(&Path) -> BoxResult<u64>>;

impl Candidate {
    /// A model stored and held as `f32`.
    pub fn new(name: &str, technique: &str, model: Rc<dyn Module>, flatten: bool) -> Candidate {
        Candidate {
            name: name.to_string(),
            technique: technique.to_string(),
            model,
            flatten,
            save: None,
            weight_bytes: None,
        }
    }
}

/// How long to time each model.
#[derive(Clone, Copy, Debug)]
pub struct MeasureSettings {
    /// Untimed runs before each measurement.
    pub warmup: usize,
    /// Most timed runs per measurement.
    pub runs: usize,
    /// Time budget per measurement (after at least the harness's minimum of runs).
    pub budget: Duration,
    /// The large batch (256, or the whole test set when smaller).
    pub batch_size: usize,
}

/// Images `start .. start + len` of `set` as one input batch: `[len, C, H, W]`, or `[len, C*H*W]`
/// when `flatten`.
pub fn batch_of(set: &ImageSet, start: usize, len: usize, flatten: bool) -> BoxResult<Tensor> {
    let images = set.images.narrow(0, start, len)?.contiguous();
    if flatten {
        let [c, h, w] = set.image_shape();
        Ok(images.reshape_to(&[len, c * h * w])?)
    } else {
        Ok(images)
    }
}

/// Fraction of `set` that `model` classifies correctly (no gradients, batches of 500).
pub fn accuracy(model: &dyn Module, set: &ImageSet, flatten: bool) -> BoxResult<f64> {
    if set.is_empty() {
        return Err("accuracy: the held-out set is empty".into());
    }
    let mut correct = 0usize;
    let mut start = 0;
    while start < set.len() {
        let len = 500.min(set.len() - start);
        let x = Variable::constant(batch_of(set, start, len, flatten)?);
        let logits = no_grad(|| model.forward(&x))?.value();
        let predicted = logits.argmax(-1, false)?.to_vec();
        correct += predicted
            .iter()
            .zip(&set.labels[start..start + len])
            .filter(|(p, &l)| **p as usize == l)
            .count();
        start += len;
    }
    Ok(correct as f64 / set.len() as f64)
}

/// Write the model's state dict as a safetensors checkpoint at `path` and return its size on
/// disk in bytes.
pub fn checkpoint_bytes(model: &dyn Module, path: &Path) -> BoxResult<u64> {
    models::checkpoint::save_tensors(path, &model.state_dict(), &BTreeMap::new())?;
    Ok(std::fs::metadata(path)
        .map_err(|e| format!("{}: cannot stat the checkpoint: {e}", path.display()))?
        .len())
}

/// Measure one candidate on the held-out `test` set; its checkpoint is written to
/// `dir/<name>.safetensors`.
pub fn measure(
    candidate: &Candidate,
    test: &ImageSet,
    settings: &MeasureSettings,
    dir: &Path,
) -> BoxResult<ModelMetrics> {
    let model = candidate.model.as_ref();
    let accuracy = accuracy(model, test, candidate.flatten)?;
    let bench = Benchmark::new(settings.runs)
        .warmup(settings.warmup)
        .budget(settings.budget);
    let one = Variable::constant(batch_of(test, 0, 1, candidate.flatten)?);
    let b1 = bench.run(|| no_grad(|| model.forward(&one)))?;
    let batch = settings.batch_size.min(test.len());
    let many = Variable::constant(batch_of(test, 0, batch, candidate.flatten)?);
    let big = bench
        .batch_size(batch)
        .run(|| no_grad(|| model.forward(&many)))?;
    let path = dir.join(format!("{}.safetensors", candidate.name));
    let size_bytes = match &candidate.save {
        Some(save) => save(&path)?,
        None => checkpoint_bytes(model, &path)?,
    };
    Ok(ModelMetrics {
        name: candidate.name.clone(),
        technique: candidate.technique.clone(),
        accuracy,
        latency_b1_ms: b1.millis(),
        latency_batch_ms: big.millis(),
        batch_size: batch,
        size_bytes,
        param_bytes: candidate.weight_bytes.unwrap_or(param_bytes(model) as u64),
        peak_memory: big.peak_memory,
    })
}
