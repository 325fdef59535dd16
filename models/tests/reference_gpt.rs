//! Grader test: a whole `Gpt` agrees with PyTorch to 1e-4: logits, loss and the gradient of every
//! parameter, on two tiny configurations (biases with a separate head over the full context;
//! no biases with the head tied to the token embedding over a shorter context).
//!
//! The numbers come from `tests/fixtures/reference_gpt.json`, written once by
//! `tests/fixtures/make_reference_gpt.py` (nanoGPT's model written out in PyTorch, float64).
//! PyTorch is never needed to run this test. The stored parameters are loaded into the model by
//! their nanoGPT names, so the test also proves the names and layouts are PyTorch's.

use std::collections::BTreeMap;

use models::gpt::{Gpt, GptConfig};
use nn::Module;
use serde_json::Value;
use tensor::Tensor;

#[path = "../../nn/tests/support/fixture.rs"]
mod support;

const TOL: f32 = 1e-4;

fn fixture() -> Value {
    support::load(env!("CARGO_MANIFEST_DIR"), "reference_gpt.json")
}

fn tensor(v: &Value) -> Tensor {
    support::tensor(v)
}

fn ids(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("ids")
        .iter()
        .map(|x| x.as_u64().expect("id") as usize)
        .collect()
}

/// Compare to the reference; returns the largest absolute difference.
fn close(case: &str, what: &str, got: &Tensor, want: &Tensor) -> f32 {
    assert_eq!(got.shape(), want.shape(), "{case}: {what} shape");
    let diff = got.max_abs_diff(want).unwrap();
    assert!(diff <= TOL, "{case}: {what} differs from PyTorch by {diff}");
    diff
}

fn run_case(name: &str) {
    let fixture = fixture();
    let c = &fixture["cases"][name];
    assert!(c.is_object(), "missing case {name}");
    let config = GptConfig::from_json(&c["config"]).unwrap();
    let gpt = Gpt::new(config, 7).unwrap();
    let params: BTreeMap<String, Tensor> = c["params"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), tensor(v)))
        .collect();
    // Our names are exactly the fixture's (nanoGPT's, each parameter once).
    let ours: Vec<String> = gpt.named_parameters().into_iter().map(|(n, _)| n).collect();
    let theirs: Vec<String> = params.keys().cloned().collect();
    let mut sorted = ours.clone();
    sorted.sort();
    assert_eq!(sorted, theirs, "{name}: parameter names");
    gpt.load_state_dict(&params).unwrap();

    let (b, t) = (
        c["batch"].as_u64().unwrap() as usize,
        c["t"].as_u64().unwrap() as usize,
    );
    let (logits, loss) = gpt
        .forward_with_loss(&ids(&c["ids"]), &ids(&c["targets"]), b, t)
        .unwrap();
    let logit_diff = close(name, "logits", &logits.value(), &tensor(&c["logits"]));
    let want_loss = c["loss"].as_f64().unwrap() as f32;
    let got_loss = loss.item().unwrap();
    assert!(
        (got_loss - want_loss).abs() <= TOL,
        "{name}: loss {got_loss} vs PyTorch {want_loss}"
    );
    loss.backward().unwrap();
    let mut grad_diff = 0.0f32;
    for (pname, var) in gpt.named_parameters() {
        let want = tensor(&c["grads"][&pname]);
        let got = var
            .grad()
            .unwrap_or_else(|| panic!("{name}: {pname} received no gradient"));
        grad_diff = grad_diff.max(close(name, &format!("grad {pname}"), &got, &want));
    }
    println!(
        "{name}: logits within {logit_diff:.1e}, loss within {:.1e}, gradients within {grad_diff:.1e}",
        (got_loss - want_loss).abs()
    );
}

/// A GPT with biases and an untied head matches the loss, logits and every gradient recorded from
/// PyTorch.
#[test]
fn untied_gpt_with_biases_matches_pytorch() {
    run_case("untied_bias");
}

/// A GPT without biases and with a tied head matches the loss, logits and every gradient recorded
/// from PyTorch.
#[test]
fn tied_gpt_without_biases_matches_pytorch() {
    run_case("tied_no_bias");
}

/// With tied weights the head is the embedding's own parameter, so its gradient sums the
/// embedding's and the head's shares.
#[test]
fn tied_head_is_one_parameter_with_both_gradients() {
    // The tied case's wte gradient is the sum of the embedding's and the head's shares: the
    // fixture's single `transformer.wte.weight` gradient would not match otherwise. Here: the
    // head really is the embedding's node.
    let fixture = fixture();
    let config = GptConfig::from_json(&fixture["cases"]["tied_no_bias"]["config"]).unwrap();
    let gpt = Gpt::new(config, 1).unwrap();
    assert!(gpt.lm_head.weight.same_node(&gpt.wte.weight));
    assert!(!gpt
        .named_parameters()
        .iter()
        .any(|(n, _)| n == "lm_head.weight"));
}
