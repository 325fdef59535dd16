//! Grader test: `MultiHeadAttention` agrees with PyTorch to 1e-4, output and every gradient.
//!
//! The numbers come from `tests/fixtures/reference_attention.json`, written once by
//! `tests/fixtures/make_reference_attention.py` (PyTorch is never needed to run this test). Each
//! case stores the input, the parameters (`qkv` `(3C, C)`, `proj` `(C, C)`, optional biases) and an
//! upstream gradient; we rebuild the layer, backpropagate `sum(out * upstream)` and compare the
//! output and the gradients of the input and of every parameter. Both the fused path
//! (`forward_masked`) and the composed one (`forward_with_weights`) are checked.

use autograd::Variable;
use nn::attention::{AttentionMask, MultiHeadAttention};
use nn::linear::Linear;
use serde_json::Value;
use tensor::Tensor;

#[path = "support/fixture.rs"]
mod support;

const TOL: f32 = 1e-4;

fn fixture() -> Value {
    support::load(env!("CARGO_MANIFEST_DIR"), "reference_attention.json")
}

fn tensor(v: &Value) -> Tensor {
    support::tensor(v)
}

fn check(name: &str, what: &str, got: &Tensor, want: &Value) {
    let want = tensor(want);
    assert_eq!(got.shape(), want.shape(), "{name}: {what} shape");
    let diff = got.max_abs_diff(&want).unwrap();
    assert!(diff <= TOL, "{name}: {what} differs from PyTorch by {diff}");
}

/// Rebuild the case's layer, run it through `path` (true: fused, false: composed) and compare.
fn run_case(name: &str, fused: bool) {
    let fixture = fixture();
    let c = &fixture["cases"][name];
    assert!(c.is_object(), "missing case {name}");
    let n_head = c["n_head"].as_u64().unwrap() as usize;
    let mask = if c["causal"].as_bool().unwrap() {
        AttentionMask::Causal
    } else {
        AttentionMask::None
    };
    let param = |key: &str| (!c[key].is_null()).then(|| Variable::parameter(tensor(&c[key])));
    let (qkv_w, qkv_b) = (param("qkv_weight").unwrap(), param("qkv_bias"));
    let (proj_w, proj_b) = (param("proj_weight").unwrap(), param("proj_bias"));
    let qkv = Linear::from_weights(qkv_w.clone(), qkv_b.clone()).unwrap();
    let proj = Linear::from_weights(proj_w.clone(), proj_b.clone()).unwrap();
    let mha = MultiHeadAttention::from_projections(qkv, proj, n_head).unwrap();
    let x = Variable::parameter(tensor(&c["x"]));
    let out = if fused {
        mha.forward_masked(&x, &mask).unwrap()
    } else {
        mha.forward_with_weights(&x, &mask).unwrap().0
    };
    let label = format!("{name} ({})", if fused { "fused" } else { "composed" });
    check(&label, "output", &out.value(), &c["out"]);
    let up = Variable::constant(tensor(&c["upstream"]));
    out.mul(&up).unwrap().sum_all().unwrap().backward().unwrap();
    check(&label, "grad x", &x.grad().unwrap(), &c["grad_x"]);
    check(
        &label,
        "grad qkv.weight",
        &qkv_w.grad().unwrap(),
        &c["grad_qkv_weight"],
    );
    check(
        &label,
        "grad proj.weight",
        &proj_w.grad().unwrap(),
        &c["grad_proj_weight"],
    );
    if let (Some(qb), Some(pb)) = (&qkv_b, &proj_b) {
        check(
            &label,
            "grad qkv.bias",
            &qb.grad().unwrap(),
            &c["grad_qkv_bias"],
        );
        check(
            &label,
            "grad proj.bias",
            &pb.grad().unwrap(),
            &c["grad_proj_bias"],
        );
    }
}

/// Causal multi-head attention (fused and composed paths) matches outputs and gradients recorded
/// from PyTorch.
#[test]
fn causal_attention_matches_pytorch() {
    for fused in [true, false] {
        run_case("causal_small", fused);
    }
}

/// Causal attention over a sequence longer than one query block, without bias, matches PyTorch's
/// outputs and gradients.
#[test]
fn causal_attention_past_one_query_block_matches_pytorch() {
    for fused in [true, false] {
        run_case("causal_long_no_bias", fused);
    }
}

/// Unmasked multi-head attention (fused and composed paths) matches PyTorch's outputs and
/// gradients.
#[test]
fn unmasked_attention_matches_pytorch() {
    for fused in [true, false] {
        run_case("unmasked", fused);
    }
}
