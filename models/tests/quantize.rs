//! Grader tests of whole-model int8: Mlp, Cnn and Gpt converted to int8 stay close to `f32`,
//! refuse gradients, generate the same tokens with and without the KV cache, and round-trip
//! through int8 checkpoints (4x smaller) with every bad file refused by name.

use std::collections::BTreeMap;
use std::path::PathBuf;

use autograd::{no_grad, Variable};
use data::{CharTokenizer, UnknownPolicy};
use models::checkpoint::{save_stored, save_tensors, StoredTensor, TokenizerSpec};
use models::cnn::{Cnn, CnnConfig};
use models::gpt::Gpt;
use models::mlp::{Mlp, MlpConfig};
use models::quantize::{
    file_size, is_quantized, load_gpt_int8, load_int8_into, model_bytes, save_gpt_int8, save_int8,
    INT8_FORMAT,
};
use models::ModelError;
use nn::Module;
use tensor::quantize::CalibrationMethod;
use tensor::{Tensor, TensorRng};

mod common;
use common::gpt_config;

/// A fresh path in the temp directory (removed when dropped).
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> TempFile {
        let dir = std::env::temp_dir().join(format!("tinytorch-int8-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempFile(dir.join(name))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn mnist_mlp() -> Mlp {
    Mlp::new(MlpConfig::new(&[784, 128, 64, 10]).seed(3)).unwrap()
}

fn inputs(rows: usize, features: usize, seed: u64) -> Tensor {
    TensorRng::new(seed)
        .uniform(&[rows, features], 0.0, 1.0)
        .unwrap()
}

fn forward(model: &dyn Module, x: &Tensor) -> Vec<f32> {
    no_grad(|| model.forward(&Variable::constant(x.clone())))
        .unwrap()
        .value()
        .to_vec()
}

/// The largest |a - b| relative to the largest |a|.
fn relative_error(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

/// An int8 MLP stays within 2% relative error of the f32 model (and really differs), and quantizing
/// leaves the original model f32.
#[test]
fn quantized_mlp_is_close_to_f32_and_leaves_the_original_alone() {
    let mlp = mnist_mlp();
    let q = mlp.quantized().unwrap();
    assert!(is_quantized(&q));
    assert!(!is_quantized(&mlp), "quantized() must return a copy");
    let x = inputs(32, 784, 1);
    let (f, i) = (forward(&mlp, &x), forward(&q, &x));
    let err = relative_error(&f, &i);
    assert!(err < 0.02, "int8 MLP relative error {err}");
    assert!(
        err > 0.0,
        "the int8 path must really run (outputs identical to f32)"
    );
    // About a quarter of the f32 bytes (scales and biases stay f32).
    let (fb, qb) = (4 * mlp.num_parameters(), model_bytes(&q));
    assert!(fb as f64 / qb as f64 > 3.8, "f32 {fb} bytes vs int8 {qb}");
}

/// A quantized model refuses an input that needs a gradient: int8 layers cannot be trained.
#[test]
fn quantized_model_refuses_gradients() {
    let q = mnist_mlp().quantized().unwrap();
    let x = Variable::parameter(inputs(2, 784, 2));
    let err = q.forward(&x).unwrap_err().to_string();
    assert!(err.contains("no_grad") || err.contains("gradient"), "{err}");
}

/// An int8 checkpoint reloads to exactly the same outputs and is about four times smaller than the
/// f32 one, keeping its metadata.
#[test]
fn int8_checkpoint_round_trip_is_exact_and_four_times_smaller() {
    let mlp = mnist_mlp();
    let q = mlp.quantized().unwrap();
    let (f32_file, int8_file) = (
        TempFile::new("mlp-f32.safetensors"),
        TempFile::new("mlp-int8.safetensors"),
    );
    save_tensors(&f32_file.0, &mlp.state_dict(), &BTreeMap::new()).unwrap();
    let mut meta = BTreeMap::new();
    meta.insert("note".to_string(), "kept".to_string());
    let bytes = save_int8(&int8_file.0, &q, &meta).unwrap();
    let f32_bytes = file_size(&f32_file.0).unwrap();
    assert!(
        f32_bytes as f64 / bytes as f64 >= 3.5,
        "f32 {f32_bytes} bytes, int8 {bytes} bytes"
    );
    let mut loaded = mnist_mlp();
    let meta = load_int8_into(&int8_file.0, &mut loaded).unwrap();
    assert_eq!(meta["note"], "kept");
    assert_eq!(meta["format"], INT8_FORMAT);
    assert!(is_quantized(&loaded));
    let x = inputs(16, 784, 3);
    assert_eq!(
        forward(&q, &x),
        forward(&loaded, &x),
        "bit-identical after loading"
    );
}

/// Loading an f32 checkpoint as int8, or saving a model that is not quantized, is an error naming
/// the file and the problem.
#[test]
fn int8_checkpoint_errors_name_the_problem() {
    let q = mnist_mlp().quantized().unwrap();
    let file = TempFile::new("bad.safetensors");
    // A plain f32 checkpoint is not an int8 one.
    save_tensors(&file.0, &q.state_dict(), &BTreeMap::new()).unwrap();
    let err = load_int8_into(&file.0, &mut mnist_mlp())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("format") && err.contains("bad.safetensors"),
        "{err}"
    );
    // Saving a model with nothing quantized is refused.
    let err = save_int8(&file.0, &mnist_mlp(), &BTreeMap::new()).unwrap_err();
    assert!(err.to_string().contains("quantized"), "{err}");
    // A negative scale and a missing tensor are both listed.
    let good = TempFile::new("good.safetensors");
    save_int8(&good.0, &q, &BTreeMap::new()).unwrap();
    let (mut stored, meta) = models::checkpoint::load_stored(&good.0).unwrap();
    stored.insert(
        "layers.1.weight_scale".to_string(),
        StoredTensor::F32(Tensor::full(&[64], -1.0)),
    );
    stored.remove("layers.2.bias");
    save_stored(&file.0, &stored, &meta).unwrap();
    match load_int8_into(&file.0, &mut mnist_mlp()).unwrap_err() {
        ModelError::Checkpoint { problems, .. } => {
            let all = problems.join("\n");
            assert!(
                all.contains("layers.1") && all.contains("positive"),
                "{all}"
            );
            assert!(all.contains("layers.2"), "{all}");
        }
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
    // Int8 codes cannot be read as floats by the f32 loader.
    let err = models::checkpoint::load_tensors(&good.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("I8"), "{err}");
}

/// Static activation calibration from sample batches gives one positive scale per layer and outputs
/// close to the f32 model.
#[test]
fn static_calibration_is_close_to_dynamic() {
    let mlp = mnist_mlp();
    let batches: Vec<Tensor> = (0..4).map(|s| inputs(64, 784, 10 + s)).collect();
    let mut calibrated = mlp.quantized().unwrap();
    let params = calibrated
        .calibrate_static(&batches, CalibrationMethod::Percentile(99.99))
        .unwrap();
    assert_eq!(params.len(), 3);
    assert!(params.iter().all(|p| p.scale > 0.0));
    let x = inputs(32, 784, 99);
    let f = forward(&mlp, &x);
    let err = relative_error(&f, &forward(&calibrated, &x));
    assert!(err < 0.05, "static int8 relative error {err}");
    // The calibrated scales survive a checkpoint.
    let file = TempFile::new("static.safetensors");
    save_int8(&file.0, &calibrated, &BTreeMap::new()).unwrap();
    let mut loaded = mnist_mlp();
    load_int8_into(&file.0, &mut loaded).unwrap();
    assert_eq!(forward(&calibrated, &x), forward(&loaded, &x));
    let err = mlp
        .quantized()
        .unwrap()
        .calibrate_static(&[], CalibrationMethod::MinMax);
    assert!(err.is_err());
}

/// Quantizing a CNN converts its linear classifier to int8 and keeps its outputs within 3% of the
/// f32 model.
#[test]
fn quantized_cnn_converts_its_classifier() {
    let cnn = Cnn::new(CnnConfig::tiny_digits().seed(4)).unwrap();
    let q = cnn.quantized().unwrap();
    assert!(is_quantized(&q));
    let [c, h, w] = cnn.config().input_shape;
    let x = inputs(8, c * h * w, 5);
    let mut f32_model = Cnn::new(CnnConfig::tiny_digits().seed(4)).unwrap();
    f32_model.eval();
    let err = relative_error(&forward(&f32_model, &x), &forward(&q, &x));
    assert!(err < 0.03, "int8 CNN relative error {err}");
    let file = TempFile::new("cnn.safetensors");
    save_int8(&file.0, &q, &BTreeMap::new()).unwrap();
    let mut loaded = Cnn::new(CnnConfig::tiny_digits().seed(9)).unwrap();
    loaded.eval();
    load_int8_into(&file.0, &mut loaded).unwrap();
    assert_eq!(forward(&q, &x), forward(&loaded, &x));
}

/// An int8 GPT stays close to the f32 logits, generates the same tokens with and without the KV
/// cache, and round-trips through its checkpoint.
#[test]
fn quantized_gpt_generates_the_same_with_and_without_cache_and_round_trips() {
    for tie in [false, true] {
        let gpt = Gpt::new(gpt_config(12, 32, true, tie), 7).unwrap();
        let q = gpt.quantized().unwrap();
        assert!(is_quantized(&q));
        let ids: Vec<usize> = (0..16).map(|i| (i * 5) % 12).collect();
        let f = no_grad(|| gpt.logits(&ids, 1, 16))
            .unwrap()
            .value()
            .to_vec();
        let i = no_grad(|| q.logits(&ids, 1, 16)).unwrap().value().to_vec();
        let err = relative_error(&f, &i);
        assert!(
            err < 0.05 && err > 0.0,
            "tie {tie}: int8 GPT logits relative error {err}"
        );
        // The KV cache runs the same int8 layers: greedy tokens agree, inside and past the window.
        let prompt = [1, 2, 3];
        let cached = q.generate(&prompt, 20, 1.0, Some(1), 0).unwrap();
        let uncached = q.generate_uncached(&prompt, 20, 1.0, Some(1), 0).unwrap();
        assert_eq!(cached, uncached, "tie {tie}");
        // The embedding stays f32 (and tied models keep their f32 embedding intact).
        assert_eq!(
            gpt.wte.weight.value().to_vec(),
            q.wte.weight.value().to_vec()
        );
        let file = TempFile::new(&format!("gpt-{tie}.safetensors"));
        let tok = CharTokenizer::from_corpus("abcdefghijk\n", UnknownPolicy::Error);
        save_gpt_int8(&file.0, &q, &TokenizerSpec::Char(tok.clone())).unwrap();
        let (loaded, spec) = load_gpt_int8(&file.0).unwrap();
        assert_eq!(spec, TokenizerSpec::Char(tok));
        let l = no_grad(|| loaded.logits(&ids, 1, 16))
            .unwrap()
            .value()
            .to_vec();
        assert_eq!(i, l, "tie {tie}: int8 GPT identical after loading");
        assert_eq!(
            loaded.generate(&prompt, 20, 1.0, Some(1), 0).unwrap(),
            cached
        );
        // Batched decoding runs the same int8 layers: each row equals its one-by-one generation.
        let prompts = [vec![1, 2, 3], vec![4, 5], vec![6, 7, 8, 9, 10]];
        let batched = q.generate_batch(&prompts, 8, 0.0, None, 3).unwrap();
        for (i, p) in prompts.iter().enumerate() {
            let alone = q
                .generate(p, 8, 0.0, None, models::generate::row_seed(3, i))
                .unwrap();
            assert_eq!(batched[i], alone, "tie {tie}: int8 batched row {i}");
        }
    }
}
