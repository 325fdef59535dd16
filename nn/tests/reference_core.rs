//! Grader tests: the core layers agree with PyTorch to 1e-4, outputs and gradients.
//!
//! The numbers come from `tests/fixtures/reference_core.json`, written once by
//! `tests/fixtures/make_reference_core.py` (PyTorch is never needed to run these tests). Each case
//! stores its inputs, parameters and an upstream gradient `up`; we rebuild the layer from them,
//! backpropagate `sum(y * up)` and compare the output and every input and parameter gradient.

use autograd::Variable;
use nn::activation::{gelu, gelu_tanh};
use nn::batch_norm::batch_norm;
use nn::conv::{Conv2d, Conv2dConfig};
use nn::layer_norm::LayerNorm;
use nn::linear::Linear;
use nn::loss::{BceWithLogitsLoss, CrossEntropyLoss, Reduction};
use nn::Module;
use serde_json::Value;
use tensor::Tensor;

#[path = "support/fixture.rs"]
mod support;

const TOL: f32 = 1e-4;

fn fixture() -> Value {
    support::load(env!("CARGO_MANIFEST_DIR"), "reference_core.json")
}

fn case(name: &str) -> Value {
    fixture()["cases"][name].clone()
}

fn tensor(v: &Value) -> Tensor {
    support::tensor(v)
}

fn param(v: &Value) -> Variable {
    Variable::parameter(tensor(v))
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("index") as usize)
        .collect()
}

fn pair(v: &Value) -> (usize, usize) {
    let p = usizes(v);
    (p[0], p[1])
}

/// `|a - b| <= TOL * max(1, |b|)` everywhere, with the worst element in the message.
fn assert_close(what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let (g, w) = (got.to_vec(), want.to_vec());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= TOL * b.abs().max(1.0),
            "{what}: element {i}: got {a}, PyTorch {b} (diff {:.2e})",
            (a - b).abs()
        );
    }
}

fn assert_grad(what: &str, var: &Variable, want: &Value) {
    let grad = var
        .grad()
        .unwrap_or_else(|| panic!("{what}: no gradient reached it"));
    assert_close(what, &grad, &tensor(want));
}

/// Backpropagate `sum(y * up)`.
fn backward_with_upstream(y: &Variable, c: &Value) {
    let up = Variable::constant(tensor(&c["upstream"]));
    y.mul(&up).unwrap().sum_all().unwrap().backward().unwrap();
}

/// Linear (with and without bias) matches PyTorch's recorded outputs and input, weight and bias
/// gradients.
#[test]
fn linear_matches_pytorch() {
    for name in ["linear", "linear_no_bias"] {
        let c = case(name);
        let x = param(&c["x"]);
        let w = param(&c["weight"]);
        let b = c.get("bias").map(param);
        let layer = Linear::from_weights(w.clone(), b.clone()).unwrap();
        let y = layer.forward(&x).unwrap();
        assert_close(&format!("{name} out"), &y.value(), &tensor(&c["out"]));
        backward_with_upstream(&y, &c);
        assert_grad(&format!("{name} grad x"), &x, &c["grad_x"]);
        assert_grad(&format!("{name} grad weight"), &w, &c["grad_weight"]);
        if let Some(b) = &b {
            assert_grad(&format!("{name} grad bias"), b, &c["grad_bias"]);
        }
    }
}

/// LayerNorm matches PyTorch's recorded output and input, weight and bias gradients.
#[test]
fn layer_norm_matches_pytorch() {
    let c = case("layer_norm");
    let (x, w, b) = (param(&c["x"]), param(&c["weight"]), param(&c["bias"]));
    let eps = c["eps"].as_f64().unwrap() as f32;
    let layer = LayerNorm::from_weights(w.clone(), Some(b.clone()), eps).unwrap();
    let y = layer.forward(&x).unwrap();
    assert_close("layer_norm out", &y.value(), &tensor(&c["out"]));
    backward_with_upstream(&y, &c);
    assert_grad("layer_norm grad x", &x, &c["grad_x"]);
    assert_grad("layer_norm grad weight", &w, &c["grad_weight"]);
    assert_grad("layer_norm grad bias", &b, &c["grad_bias"]);
}

/// GELU (exact erf and tanh approximation) matches PyTorch's recorded values and gradients.
#[test]
fn gelu_matches_pytorch() {
    for name in ["gelu", "gelu_tanh"] {
        let c = case(name);
        let x = param(&c["x"]);
        let y = if name == "gelu" {
            gelu(&x).unwrap()
        } else {
            gelu_tanh(&x).unwrap()
        };
        assert_close(&format!("{name} out"), &y.value(), &tensor(&c["out"]));
        backward_with_upstream(&y, &c);
        assert_grad(&format!("{name} grad x"), &x, &c["grad_x"]);
    }
}

/// Conv2d with stride, padding and dilation matches PyTorch's recorded outputs and gradients.
#[test]
fn conv2d_matches_pytorch() {
    for name in ["conv2d_stride_padding", "conv2d_dilation"] {
        let c = case(name);
        let x = param(&c["x"]);
        let w = param(&c["weight"]);
        let b = c.get("bias").map(param);
        let ws = w.shape();
        let config = Conv2dConfig::new(ws[1], ws[0], (ws[2], ws[3]))
            .stride(pair(&c["stride"]))
            .padding(pair(&c["padding"]))
            .dilation(pair(&c["dilation"]))
            .bias(b.is_some());
        let layer = Conv2d::from_weights(config, w.clone(), b.clone()).unwrap();
        let y = layer.forward(&x).unwrap();
        assert_close(&format!("{name} out"), &y.value(), &tensor(&c["out"]));
        backward_with_upstream(&y, &c);
        assert_grad(&format!("{name} grad x"), &x, &c["grad_x"]);
        assert_grad(&format!("{name} grad weight"), &w, &c["grad_weight"]);
        if let Some(b) = &b {
            assert_grad(&format!("{name} grad bias"), b, &c["grad_bias"]);
        }
    }
}

/// Cross-entropy (2-d, sequence, sum reduction, ignore index, label smoothing) matches PyTorch's
/// recorded loss and gradient.
#[test]
fn cross_entropy_matches_pytorch() {
    for name in ["cross_entropy", "cross_entropy_seq", "cross_entropy_sum"] {
        let c = case(name);
        let logits = param(&c["logits"]);
        let targets = usizes(&c["targets"]);
        let mut loss_fn = CrossEntropyLoss::new();
        if let Some(i) = c.get("ignore_index") {
            loss_fn = loss_fn.ignore_index(i.as_u64().unwrap() as usize);
        }
        if let Some(s) = c.get("label_smoothing") {
            loss_fn = loss_fn.label_smoothing(s.as_f64().unwrap() as f32);
        }
        if name.ends_with("_sum") {
            loss_fn = loss_fn.with_reduction(Reduction::Sum);
        }
        let loss = loss_fn.forward(&logits, &targets).unwrap();
        let want = c["loss"].as_f64().unwrap() as f32;
        assert_close(
            &format!("{name} loss"),
            &loss.value(),
            &Tensor::scalar(want),
        );
        loss.backward().unwrap();
        assert_grad(&format!("{name} grad logits"), &logits, &c["grad_logits"]);
    }
}

/// Binary cross-entropy with logits matches PyTorch's recorded loss and gradient.
#[test]
fn bce_with_logits_matches_pytorch() {
    let c = case("bce_with_logits");
    let logits = param(&c["logits"]);
    let target = Variable::constant(tensor(&c["target"]));
    let loss = BceWithLogitsLoss::new().forward(&logits, &target).unwrap();
    let want = c["loss"].as_f64().unwrap() as f32;
    assert_close("bce loss", &loss.value(), &Tensor::scalar(want));
    loss.backward().unwrap();
    assert_grad("bce grad logits", &logits, &c["grad_logits"]);
}

/// BatchNorm2d in training matches PyTorch's output, gradients and updated running statistics.
#[test]
fn batch_norm2d_training_matches_pytorch() {
    let c = case("batch_norm2d_train");
    let (x, w, b) = (param(&c["x"]), param(&c["weight"]), param(&c["bias"]));
    let channels = w.numel();
    let running_mean = Variable::constant(Tensor::zeros(&[channels]));
    let running_var = Variable::constant(Tensor::ones(&[channels]));
    let y = batch_norm(
        &x,
        &running_mean,
        &running_var,
        Some(&w),
        Some(&b),
        true,
        0.1,
        1e-5,
    )
    .unwrap();
    assert_close("batch_norm out", &y.value(), &tensor(&c["out"]));
    assert_close(
        "batch_norm running_mean",
        &running_mean.value(),
        &tensor(&c["running_mean"]),
    );
    assert_close(
        "batch_norm running_var",
        &running_var.value(),
        &tensor(&c["running_var"]),
    );
    backward_with_upstream(&y, &c);
    assert_grad("batch_norm grad x", &x, &c["grad_x"]);
    assert_grad("batch_norm grad weight", &w, &c["grad_weight"]);
    assert_grad("batch_norm grad bias", &b, &c["grad_bias"]);
}
