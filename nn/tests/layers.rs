//! Grader tests for the layers chapter: every layer's gradient w.r.t. its input *and* its
//! parameters passes `gradcheck`; values against hand computations; conv output shapes; BatchNorm
//! train vs eval; Dropout statistics; Sequential names; state-dict errors; Embedding ids.

use std::collections::BTreeMap;

use autograd::{gradcheck, AutogradError, Variable};
use nn::activation::{
    gelu, gelu_tanh, GeluApproximate, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh, GELU,
};
use nn::batch_norm::{BatchNorm1d, BatchNorm2d};
use nn::conv::{Conv2d, Conv2dConfig};
use nn::dropout::Dropout;
use nn::embedding::Embedding;
use nn::flatten::Flatten;
use nn::layer_norm::LayerNorm;
use nn::linear::Linear;
use nn::pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
use nn::sequential::Sequential;
use nn::{Module, NnError};
use tensor::{Tensor, TensorRng};

const EPS: f64 = 1e-2;
const TOL: f64 = 1e-2;

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::rand_normal(shape, 0.0, 1.0, seed).unwrap()
}

fn t(values: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(values.to_vec(), shape).unwrap()
}

fn to_autograd(e: NnError) -> AutogradError {
    match e {
        NnError::Autograd(a) => a,
        other => AutogradError::Invalid {
            op: "nn",
            reason: other.to_string(),
        },
    }
}

/// gradcheck of an nn function of its inputs (parameters are passed as inputs too).
fn check(f: impl Fn(&[Variable]) -> nn::Result<Variable>, inputs: &[Tensor]) {
    if let Err(e) = gradcheck(|v| f(v).map_err(to_autograd), inputs, EPS, TOL) {
        panic!("{e}");
    }
}

fn assert_close(got: &Tensor, want: &[f32], tol: f32) {
    let g = got.to_vec();
    assert_eq!(g.len(), want.len(), "length of {g:?} vs {want:?}");
    for (i, (a, b)) in g.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol * b.abs().max(1.0),
            "element {i}: got {a}, want {b}\n got {g:?}\nwant {want:?}"
        );
    }
}

fn err_text(r: nn::Result<Variable>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got shape {:?}", v.shape()),
        Err(e) => e.to_string(),
    }
}

// ----- Linear -----

/// Linear computes x W^T + b: a 2x2 input through a 3x2 weight gives the hand-computed outputs, for
/// 2-d and 1-d inputs.
#[test]
fn linear_values_by_hand() {
    let w = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]);
    let b = t(&[0.5, -0.5, 1.0], &[3]);
    let layer = Linear::from_tensors(w, Some(b)).unwrap();
    let x = Variable::constant(t(&[1.0, -1.0, 2.0, 0.5], &[2, 2]));
    let y = layer.forward(&x).unwrap();
    // row 1: [1-2, 3-4, 5-6] + b; row 2: [2+1, 6+2, 10+3] + b
    assert_eq!(y.shape(), vec![2, 3]);
    assert_close(&y.value(), &[-0.5, -1.5, 0.0, 3.5, 7.5, 14.0], 1e-6);
    // a 1-D input is one row
    let y1 = layer
        .forward(&Variable::constant(t(&[1.0, -1.0], &[2])))
        .unwrap();
    assert_eq!(y1.shape(), vec![3]);
    assert_close(&y1.value(), &[-0.5, -1.5, 0.0], 1e-6);
}

/// Linear passes gradcheck for its input, weight and bias, on batched (B, T, in) and plain 2-d
/// inputs, with and without bias.
#[test]
fn linear_gradcheck_inputs_and_parameters() {
    // (B, T, in) input: the batched path
    check(
        |v| Linear::from_weights(v[1].clone(), Some(v[2].clone()))?.forward(&v[0]),
        &[randn(&[2, 3, 4], 1), randn(&[5, 4], 2), randn(&[5], 3)],
    );
    // 2-D input without bias
    check(
        |v| Linear::from_weights(v[1].clone(), None)?.forward(&v[0]),
        &[randn(&[3, 4], 4), randn(&[2, 4], 5)],
    );
}

/// Linear::new has the (out, in) weight shape, PyTorch's U(-1/sqrt(in), 1/sqrt(in)) initialisation
/// and parameter names, and a wrong input width is an error naming both shapes.
#[test]
fn linear_init_shapes_and_errors() {
    let mut rng = TensorRng::new(7);
    let layer = Linear::new(100, 30, true, &mut rng);
    assert_eq!(layer.weight.shape(), vec![30, 100]);
    assert_eq!(layer.num_parameters(), 100 * 30 + 30);
    let names: Vec<String> = layer.named_parameters().into_iter().map(|p| p.0).collect();
    assert_eq!(names, ["weight", "bias"]);
    // PyTorch's default: U(-1/sqrt(in), 1/sqrt(in)) for both
    let bound = 0.1 + 1e-6;
    let w = layer.weight.value();
    assert!(w.max_all() <= bound && w.min_all() >= -bound);
    assert!(
        w.max_all() > 0.09 && w.min_all() < -0.09,
        "uses the whole range"
    );
    let b = layer.bias.as_ref().unwrap().value();
    assert!(b.max_all() <= bound && b.min_all() >= -bound);
    // same seed, same weights; another seed, others
    let again = Linear::new(100, 30, true, &mut TensorRng::new(7));
    assert_eq!(again.weight.value(), layer.weight.value());
    let other = Linear::new(100, 30, true, &mut TensorRng::new(8));
    assert_ne!(other.weight.value(), layer.weight.value());
    assert!(Linear::new(4, 2, false, &mut rng).bias.is_none());
    // wrong input width
    let msg = err_text(layer.forward(&Variable::constant(Tensor::zeros(&[2, 99]))));
    assert!(
        msg.contains("Linear") && msg.contains("[2, 99]") && msg.contains("100"),
        "{msg}"
    );
    assert!(Linear::from_tensors(Tensor::zeros(&[3, 2]), Some(Tensor::zeros(&[2]))).is_err());
}

// ----- Flatten, activations -----

/// Flatten merges the chosen dimension range (default: all but the batch) and passes gradcheck.
#[test]
fn flatten_shapes_and_gradient() {
    let x = Variable::constant(Tensor::zeros(&[2, 3, 4, 5]));
    assert_eq!(Flatten::new().forward(&x).unwrap().shape(), vec![2, 60]);
    assert_eq!(
        Flatten::with_dims(1, 2).forward(&x).unwrap().shape(),
        vec![2, 12, 5]
    );
    assert_eq!(
        Flatten::with_dims(0, -1).forward(&x).unwrap().shape(),
        vec![120]
    );
    check(|v| Flatten::new().forward(&v[0]), &[randn(&[2, 3, 2], 9)]);
}

/// ReLU, LeakyReLU, sigmoid, tanh, GELU and softmax give hand-computed or f64-formula values on a
/// few inputs.
#[test]
fn activation_values_by_hand() {
    let x = Variable::constant(t(&[-2.0, -0.5, 0.0, 1.0, 3.0], &[5]));
    let out = |m: &dyn Module| m.forward(&x).unwrap().value();
    assert_close(&out(&ReLU), &[0.0, 0.0, 0.0, 1.0, 3.0], 0.0);
    assert_close(
        &out(&LeakyReLU::default()),
        &[-0.02, -0.005, 0.0, 1.0, 3.0],
        1e-7,
    );
    assert_close(
        &out(&LeakyReLU::new(0.2)),
        &[-0.4, -0.1, 0.0, 1.0, 3.0],
        1e-7,
    );
    let sig: Vec<f32> = [-2.0f64, -0.5, 0.0, 1.0, 3.0]
        .iter()
        .map(|v| (1.0 / (1.0 + (-v).exp())) as f32)
        .collect();
    assert_close(&out(&Sigmoid), &sig, 1e-6);
    let th: Vec<f32> = [-2.0f64, -0.5, 0.0, 1.0, 3.0]
        .iter()
        .map(|v| v.tanh() as f32)
        .collect();
    assert_close(&out(&Tanh), &th, 1e-6);
    // GELU(1) = Phi(1) = 0.841344746..., GELU(-0.5) = -0.5 * 0.308537539
    assert_close(
        &out(&GELU::new()),
        &[-0.045_500_26, -0.154_268_8, 0.0, 0.841_344_7, 2.995_95],
        1e-5,
    );
    // the tanh approximation is within 1e-3 of the exact one
    let approx = out(&GELU::tanh());
    assert!(approx.max_abs_diff(&out(&GELU::new())).unwrap() < 1e-3);
    assert_ne!(approx, out(&GELU::new()));
    assert_eq!(GELU::default().approximate, GeluApproximate::None);
    // softmax rows sum to 1; log-softmax is its log
    let s = out(&Softmax::new(0)).to_vec();
    assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    let ls = out(&LogSoftmax::new(-1)).to_vec();
    for (a, b) in s.iter().zip(&ls) {
        assert!((a.ln() - b).abs() < 1e-5);
    }
}

/// Every activation module (ReLU, LeakyReLU, both GELUs, sigmoid, tanh, softmax, log-softmax)
/// passes gradcheck away from its kinks.
#[test]
fn activation_gradchecks() {
    // values away from the kinks of relu / leaky relu at 0
    let x = t(&[-1.5, -0.7, -0.2, 0.3, 0.9, 2.0], &[2, 3]);
    let modules: Vec<Box<dyn Module>> = vec![
        Box::new(ReLU),
        Box::new(LeakyReLU::new(0.1)),
        Box::new(GELU::new()),
        Box::new(GELU::tanh()),
        Box::new(Sigmoid),
        Box::new(Tanh),
        Box::new(Softmax::new(1)),
        Box::new(LogSoftmax::new(0)),
    ];
    for m in &modules {
        check(|v| m.forward(&v[0]), std::slice::from_ref(&x));
    }
    check(|v| gelu(&v[0]), &[randn(&[3, 4], 11)]);
    check(|v| gelu_tanh(&v[0]), &[randn(&[3, 4], 12)]);
}

// ----- Sequential and state dicts -----

fn mlp(seed: u64) -> Sequential {
    let mut rng = TensorRng::new(seed);
    Sequential::new()
        .add(Linear::new(4, 8, true, &mut rng))
        .add(ReLU)
        .add(Dropout::new(0.5, seed).unwrap())
        .add(Linear::new(8, 3, true, &mut rng))
}

/// Sequential names parameters by position (0.weight, 3.bias), equals composing its layers by hand
/// in eval, turns dropout on in train, and zero_grad clears every gradient.
#[test]
fn sequential_names_forward_and_modes() {
    let mut model = mlp(1);
    let names: Vec<String> = model.named_parameters().into_iter().map(|p| p.0).collect();
    assert_eq!(names, ["0.weight", "0.bias", "3.weight", "3.bias"]);
    assert_eq!(model.num_parameters(), 4 * 8 + 8 + 8 * 3 + 3);
    assert_eq!(model.len(), 4);
    // eval: dropout off, forward deterministic and equal to composing the layers by hand
    model.eval();
    let x = Variable::constant(randn(&[5, 4], 2));
    let y1 = model.forward(&x).unwrap().value();
    let y2 = model.forward(&x).unwrap().value();
    assert_eq!(y1, y2);
    let mut h = x.clone();
    for i in [0, 1, 3] {
        h = model.get(i).unwrap().forward(&h).unwrap();
    }
    assert_eq!(h.value(), y1);
    // train: dropout on, so two passes differ
    model.train();
    let y3 = model.forward(&x).unwrap().value();
    let y4 = model.forward(&x).unwrap().value();
    assert_ne!(y3, y4);
    // gradients reach every parameter; zero_grad clears them
    let loss = model.forward(&x).unwrap().sum_all().unwrap();
    loss.backward().unwrap();
    assert!(model.parameters().iter().all(|p| p.grad().is_some()));
    model.zero_grad();
    assert!(model.parameters().iter().all(|p| p.grad().is_none()));
    // nested: names are prefixed at every level, buffers too
    let nested = Sequential::new()
        .add(Sequential::new().add(Linear::new(2, 2, false, &mut TensorRng::new(0))))
        .add(BatchNorm1d::new(2));
    let names: Vec<String> = nested.state_dict().into_keys().collect();
    assert_eq!(
        names,
        [
            "0.0.weight",
            "1.bias",
            "1.num_batches_tracked",
            "1.running_mean",
            "1.running_var",
            "1.weight"
        ]
    );
}

/// Loading one model's state_dict into another makes them compute the same function; missing,
/// unexpected or misshaped tensors are an error naming each, and a failed load changes nothing.
#[test]
fn state_dict_round_trip_and_errors_name_the_tensor() {
    let mut a = mlp(1);
    let mut b = mlp(2);
    a.eval();
    b.eval();
    let x = Variable::constant(randn(&[3, 4], 5));
    assert_ne!(
        a.forward(&x).unwrap().value(),
        b.forward(&x).unwrap().value()
    );
    b.load_state_dict(&a.state_dict()).unwrap();
    assert_eq!(
        a.forward(&x).unwrap().value(),
        b.forward(&x).unwrap().value()
    );

    let good = a.state_dict();
    let expect_err = |state: &BTreeMap<String, Tensor>, needles: &[&str]| {
        let before = b.state_dict();
        let msg = b.load_state_dict(state).unwrap_err().to_string();
        for n in needles {
            assert!(msg.contains(n), "'{n}' not in: {msg}");
        }
        assert_eq!(b.state_dict(), before, "a failed load must change nothing");
    };
    let mut missing = good.clone();
    missing.remove("3.bias");
    expect_err(&missing, &["missing", "3.bias"]);
    let mut unexpected = good.clone();
    unexpected.insert("4.weight".into(), Tensor::zeros(&[1]));
    expect_err(&unexpected, &["unexpected", "4.weight"]);
    let mut wrong_shape = good.clone();
    wrong_shape.insert("0.weight".into(), Tensor::zeros(&[4, 8]));
    expect_err(&wrong_shape, &["0.weight", "[4, 8]", "[8, 4]"]);
    // all problems at once
    let mut all = wrong_shape.clone();
    all.remove("3.bias");
    all.insert("extra".into(), Tensor::zeros(&[1]));
    expect_err(&all, &["0.weight", "3.bias", "extra"]);
}

// ----- Dropout -----

/// Dropout zeroes about a fraction p of the elements, scales the rest by 1 / (1 - p), and is the
/// identity in eval mode.
#[test]
fn dropout_statistics_scaling_and_eval() {
    let p = 0.3;
    let n = 100_000;
    let drop = Dropout::new(p, 42).unwrap();
    let x = Variable::parameter(Tensor::ones(&[n]));
    let y = drop.forward(&x).unwrap();
    let v = y.value().to_vec();
    let zeros = v.iter().filter(|&&e| e == 0.0).count() as f64 / n as f64;
    assert!((zeros - p as f64).abs() < 0.01, "fraction zeroed {zeros}");
    let scale = 1.0 / (1.0 - p);
    assert!(v.iter().all(|&e| e == 0.0 || (e - scale).abs() < 1e-6));
    let mean = v.iter().map(|&e| e as f64).sum::<f64>() / n as f64;
    assert!((mean - 1.0).abs() < 0.02, "expected value kept: {mean}");
    // the gradient is the mask itself
    y.sum_all().unwrap().backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec(), v);
    // same seed, same mask; another seed, another one
    let again = Dropout::new(p, 42).unwrap().forward(&x).unwrap().value();
    assert_eq!(again.to_vec(), v);
    let other = Dropout::new(p, 43).unwrap().forward(&x).unwrap().value();
    assert_ne!(other.to_vec(), v);
    // successive calls draw new masks
    assert_ne!(drop.forward(&x).unwrap().value().to_vec(), v);
    // eval: identity
    let mut drop = drop;
    drop.eval();
    assert!(!drop.is_training());
    assert_eq!(drop.forward(&x).unwrap().value(), x.value());
    // p = 0 is the identity, p outside [0, 1) an error
    let zero = Dropout::new(0.0, 1).unwrap().forward(&x).unwrap();
    assert_eq!(zero.value(), x.value());
    for bad in [1.0, -0.1, 1.5, f32::NAN] {
        let msg = Dropout::new(bad, 0).unwrap_err().to_string();
        assert!(msg.contains("Dropout") && msg.contains("[0, 1)"), "{msg}");
    }
}

/// Dropout with a fixed mask and a Linear-Tanh-Linear chain pass gradcheck for inputs and
/// parameters.
#[test]
fn dropout_and_sequential_gradcheck() {
    // a dropout layer rebuilt from the same seed draws the same mask on every call, so finite
    // differences see one fixed function
    check(
        |v| Dropout::new(0.4, 3)?.forward(&v[0]),
        &[randn(&[4, 5], 50)],
    );
    // a chain, w.r.t. its input and both layers' parameters
    check(
        |v| {
            Sequential::new()
                .add(Linear::from_weights(v[1].clone(), Some(v[2].clone()))?)
                .add(Tanh)
                .add(Linear::from_weights(v[3].clone(), None)?)
                .forward(&v[0])
        },
        &[
            randn(&[3, 4], 51),
            randn(&[5, 4], 52),
            randn(&[5], 53),
            randn(&[2, 5], 54),
        ],
    );
}

// ----- Embedding -----

/// An embedding returns the looked-up rows, accumulates one gradient per use of a row (none for
/// unused rows), and refuses an id out of range.
#[test]
fn embedding_lookup_gradient_and_range_check() {
    let weight = t(&[0.0, 1.0, 10.0, 11.0, 20.0, 21.0, 30.0, 31.0], &[4, 2]);
    let emb = Embedding::from_weight(Variable::parameter(weight)).unwrap();
    let y = emb.forward_ids(&[2, 0, 2, 3, 1, 2], &[2, 3]).unwrap();
    assert_eq!(y.shape(), vec![2, 3, 2]);
    assert_close(
        &y.value(),
        &[20., 21., 0., 1., 20., 21., 30., 31., 10., 11., 20., 21.],
        0.0,
    );
    // a row used three times gets three contributions; an unused row none
    y.sum_all().unwrap().backward().unwrap();
    assert_close(
        &emb.weight.grad().unwrap(),
        &[1., 1., 1., 1., 3., 3., 1., 1.],
        0.0,
    );
    // a one-dimensional shape
    assert_close(
        &emb.forward_ids(&[3, 1], &[2]).unwrap().value(),
        &[30., 31., 10., 11.],
        0.0,
    );
    // out of range: the id, its position and the vocabulary size are named
    let msg = err_text(emb.forward_ids(&[1, 2, 3, 7], &[2, 2]));
    assert!(
        msg.contains("token id 7")
            && msg.contains("position 3")
            && msg.contains("[1, 1]")
            && msg.contains("vocabulary of 4"),
        "{msg}"
    );
    // floats are not ids: the Module path points to the typed lookup
    let msg = err_text(emb.forward(&Variable::constant(t(&[1.0], &[1]))));
    assert!(msg.contains("forward_ids"), "{msg}");
    assert!(emb.forward_ids(&[1, 2, 3], &[2, 2]).is_err());
    // gradcheck w.r.t. the table
    check(
        |v| Embedding::from_weight(v[0].clone())?.forward_ids(&[1, 0, 1, 2], &[2, 2]),
        &[randn(&[3, 4], 13)],
    );
    // init: N(0, 1)
    let big = Embedding::new(100, 100, &mut TensorRng::new(3));
    let v = big.weight.value().to_vec();
    let mean = v.iter().sum::<f32>() / v.len() as f32;
    let var = v.iter().map(|e| (e - mean).powi(2)).sum::<f32>() / v.len() as f32;
    assert!(
        mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
        "{mean} {var}"
    );
}

// ----- LayerNorm -----

/// LayerNorm normalises each row to the hand-computed (x - mean) / sqrt(var + eps), names weight
/// and bias, and passes gradcheck.
#[test]
fn layer_norm_values_and_gradcheck() {
    let ln = LayerNorm::new(4);
    let x = Variable::constant(t(&[1.0, 2.0, 3.0, 4.0, -1.0, -1.0, 1.0, 1.0], &[2, 4]));
    // row 1: mean 2.5, var 1.25; row 2: mean 0, var 1
    let s1 = 1.0 / (1.25f32 + 1e-5).sqrt();
    let s2 = 1.0 / (1.0f32 + 1e-5).sqrt();
    assert_close(
        &ln.forward(&x).unwrap().value(),
        &[-1.5 * s1, -0.5 * s1, 0.5 * s1, 1.5 * s1, -s2, -s2, s2, s2],
        1e-5,
    );
    let names: Vec<String> = ln.named_parameters().into_iter().map(|p| p.0).collect();
    assert_eq!(names, ["weight", "bias"]);
    assert_eq!(LayerNorm::new(4).without_bias().num_parameters(), 4);
    // gradcheck w.r.t. input, weight and bias (3-D input)
    check(
        |v| LayerNorm::from_weights(v[1].clone(), Some(v[2].clone()), 1e-5)?.forward(&v[0]),
        &[randn(&[2, 3, 5], 14), randn(&[5], 15), randn(&[5], 16)],
    );
    check(
        |v| LayerNorm::from_weights(v[1].clone(), None, 1e-5)?.forward(&v[0]),
        &[randn(&[3, 4], 17), randn(&[4], 18)],
    );
    let msg = err_text(ln.forward(&Variable::constant(Tensor::zeros(&[2, 5]))));
    assert!(msg.contains("LayerNorm") && msg.contains("[2, 5]"), "{msg}");
}

// ----- BatchNorm -----

/// BatchNorm1d and BatchNorm2d pass gradcheck in training (batch statistics) and in eval mode
/// (running statistics).
#[test]
fn batch_norm_gradcheck_train_and_eval() {
    let bn_train = |v: &[Variable], shape_2d: bool| -> nn::Result<Variable> {
        if shape_2d {
            let mut bn = BatchNorm2d::new(v[1].numel());
            bn.set_parameters(v[1].clone(), v[2].clone())?;
            bn.forward(&v[0])
        } else {
            let mut bn = BatchNorm1d::new(v[1].numel());
            bn.set_parameters(v[1].clone(), v[2].clone())?;
            bn.forward(&v[0])
        }
    };
    check(
        |v| bn_train(v, false),
        &[randn(&[5, 3], 19), randn(&[3], 20), randn(&[3], 21)],
    );
    check(
        |v| bn_train(v, false),
        &[randn(&[2, 3, 4], 22), randn(&[3], 23), randn(&[3], 24)],
    );
    check(
        |v| bn_train(v, true),
        &[randn(&[2, 2, 3, 2], 25), randn(&[2], 26), randn(&[2], 27)],
    );
    // eval mode uses running statistics: an affine map of x
    check(
        |v| {
            let mut bn = BatchNorm2d::new(2);
            bn.forward(&Variable::constant(randn(&[4, 2, 2, 2], 28)))?; // move the stats
            bn.set_parameters(v[1].clone(), v[2].clone())?;
            bn.eval();
            bn.forward(&v[0])
        },
        &[randn(&[2, 2, 2, 3], 29), randn(&[2], 30), randn(&[2], 31)],
    );
}

/// Batch norm standardises with the batch's biased variance in training, updates the running mean
/// and unbiased variance with momentum, and uses them in eval.
#[test]
fn batch_norm_running_statistics_train_vs_eval() {
    let mut bn = BatchNorm1d::new(2);
    // batch 1, (N=4, C=2): channel 0 = [1, 2, 3, 4], channel 1 = [2, 4, 6, 8]
    let b1 = t(&[1., 2., 2., 4., 3., 6., 4., 8.], &[4, 2]);
    let y = bn.forward(&Variable::constant(b1)).unwrap().value();
    // train output: each channel standardised with the biased variance (1.25 and 5)
    let s0 = 1.0 / (1.25f32 + 1e-5).sqrt();
    let s1 = 1.0 / (5.0f32 + 1e-5).sqrt();
    assert_close(
        &y,
        &[
            -1.5 * s0,
            -3.0 * s1,
            -0.5 * s0,
            -s1,
            0.5 * s0,
            s1,
            1.5 * s0,
            3.0 * s1,
        ],
        1e-5,
    );
    // running mean 0.9*0 + 0.1*[2.5, 5]; running var 0.9*1 + 0.1*[5/3, 20/3] (unbiased)
    assert_close(&bn.running_mean(), &[0.25, 0.5], 1e-6);
    assert_close(&bn.running_var(), &[0.9 + 0.5 / 3.0, 0.9 + 2.0 / 3.0], 1e-6);
    // batch 2: channel 0 = [0, 0, 6], channel 1 = [1, 1, 1] (mean 2 and 1, unbiased var 12 and 0)
    let b2 = t(&[0., 1., 0., 1., 6., 1.], &[3, 2]);
    bn.forward(&Variable::constant(b2)).unwrap();
    let rm = [0.9 * 0.25 + 0.2, 0.9 * 0.5 + 0.1];
    let rv = [0.9 * (0.9 + 0.5 / 3.0) + 1.2, 0.9 * (0.9 + 2.0 / 3.0) + 0.0];
    assert_close(&bn.running_mean(), &rm, 1e-6);
    assert_close(&bn.running_var(), &rv, 1e-6);
    assert_eq!(bn.num_batches_tracked(), 2);
    // eval: normalise with the running statistics, and leave them alone
    bn.eval();
    let x = t(&[1.0, -2.0], &[1, 2]);
    let y = bn.forward(&Variable::constant(x)).unwrap().value();
    let want = [
        (1.0 - rm[0]) / (rv[0] + 1e-5).sqrt(),
        (-2.0 - rm[1]) / (rv[1] + 1e-5).sqrt(),
    ];
    assert_close(&y, &want, 1e-5);
    assert_close(&bn.running_mean(), &rm, 1e-6);
    assert_eq!(bn.num_batches_tracked(), 2);
    // a batch of one value per channel cannot be normalised in training, but can in eval
    bn.train();
    let msg = err_text(bn.forward(&Variable::constant(Tensor::zeros(&[1, 2]))));
    assert!(
        msg.contains("BatchNorm1d") && msg.contains("more than 1 value"),
        "{msg}"
    );
    // buffers are in the state dict and load back
    let state = bn.state_dict();
    assert_eq!(state["running_mean"].to_vec(), bn.running_mean().to_vec());
    let fresh = BatchNorm1d::new(2);
    fresh.load_state_dict(&state).unwrap();
    assert_eq!(fresh.running_var().to_vec(), bn.running_var().to_vec());
    assert_eq!(fresh.num_batches_tracked(), 2);
    // wrong layouts
    let msg = err_text(BatchNorm2d::new(2).forward(&Variable::constant(Tensor::zeros(&[2, 2, 3]))));
    assert!(
        msg.contains("BatchNorm2d") && msg.contains("(N, C, H, W)"),
        "{msg}"
    );
    let msg = err_text(bn.forward(&Variable::constant(Tensor::zeros(&[4, 3]))));
    assert!(msg.contains("[4, 3]"), "{msg}");
}

/// BatchNorm2d in training gives each channel mean 0 and variance 1 over the batch and spatial
/// positions.
#[test]
fn batch_norm2d_per_channel_statistics() {
    let bn = BatchNorm2d::new(3);
    let x = Variable::constant(randn(&[4, 3, 5, 5], 32).mul_scalar(3.0).add_scalar(2.0));
    let y = bn.forward(&x).unwrap().value();
    for c in 0..3 {
        let v = y.narrow(1, c, 1).unwrap().to_vec();
        let n = v.len() as f32;
        let mean = v.iter().sum::<f32>() / n;
        let var = v.iter().map(|e| (e - mean).powi(2)).sum::<f32>() / n;
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-3,
            "{c}: {mean} {var}"
        );
    }
}

// ----- Conv2d and pooling -----

/// The direct definition of a convolution, in f64.
fn conv_naive(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    c: &Conv2dConfig,
) -> (Vec<usize>, Vec<f32>) {
    let (xs, ws) = (x.shape(), w.shape());
    let (n, ch, h, wd) = (xs[0], xs[1], xs[2], xs[3]);
    let (o, kh, kw) = (ws[0], ws[2], ws[3]);
    let (oh, ow) = c.output_size(h, wd).unwrap();
    let mut out = Vec::new();
    for ni in 0..n {
        for oi in 0..o {
            for y in 0..oh {
                for xo in 0..ow {
                    let mut acc = b.map_or(0.0, |b| b.get(&[oi]).unwrap() as f64);
                    for ci in 0..ch {
                        for i in 0..kh {
                            for j in 0..kw {
                                let iy = (y * c.stride.0 + i * c.dilation.0) as isize
                                    - c.padding.0 as isize;
                                let ix = (xo * c.stride.1 + j * c.dilation.1) as isize
                                    - c.padding.1 as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                    acc += x.get(&[ni, ci, iy as usize, ix as usize]).unwrap()
                                        as f64
                                        * w.get(&[oi, ci, i, j]).unwrap() as f64;
                                }
                            }
                        }
                    }
                    out.push(acc as f32);
                }
            }
        }
    }
    (vec![n, o, oh, ow], out)
}

/// Conv2d output shapes follow floor((H + 2p - d(k-1) - 1) / s) + 1 over many kernel, stride,
/// padding and dilation settings.
#[test]
fn conv2d_output_shapes_follow_the_formula() {
    let mut rng = TensorRng::new(0);
    // (H, W, kernel, stride, padding, dilation)
    let configs = [
        (8, 8, (3, 3), (1, 1), (0, 0), (1, 1)),
        (8, 8, (3, 3), (1, 1), (1, 1), (1, 1)),
        (9, 7, (3, 3), (2, 2), (1, 1), (1, 1)),
        (10, 10, (5, 3), (3, 2), (2, 0), (1, 1)),
        (12, 11, (3, 3), (1, 2), (2, 2), (2, 2)),
        (7, 9, (2, 4), (2, 3), (0, 1), (3, 1)),
        (5, 5, (5, 5), (1, 1), (0, 0), (1, 1)),
    ];
    for (h, w, k, s, p, d) in configs {
        let config = Conv2dConfig::new(2, 3, k).stride(s).padding(p).dilation(d);
        let conv = Conv2d::new(config, &mut rng).unwrap();
        let x = randn(&[2, 2, h, w], 33);
        let y = conv.forward(&Variable::constant(x.clone())).unwrap();
        let formula = |len: usize, k: usize, s: usize, p: usize, d: usize| {
            (len + 2 * p - d * (k - 1) - 1) / s + 1
        };
        let want = [
            2,
            3,
            formula(h, k.0, s.0, p.0, d.0),
            formula(w, k.1, s.1, p.1, d.1),
        ];
        assert_eq!(y.shape(), want, "{config:?} on {h}x{w}");
        // and the values are the direct definition's
        let (shape, values) = conv_naive(
            &x,
            &conv.weight.value(),
            conv.bias.as_ref().map(|b| b.value()).as_ref(),
            &config,
        );
        assert_eq!(y.shape(), shape);
        assert_close(&y.value(), &values, 1e-4);
    }
    // a kernel larger than the padded input is an error, as are zero sizes
    let conv = Conv2d::new(Conv2dConfig::new(1, 1, 5), &mut rng).unwrap();
    assert!(conv
        .forward(&Variable::constant(Tensor::zeros(&[1, 1, 3, 3])))
        .is_err());
    assert!(Conv2d::new(Conv2dConfig::new(1, 1, 3).stride(0), &mut rng).is_err());
    assert!(Conv2d::new(Conv2dConfig::new(0, 1, 3), &mut rng).is_err());
    let msg = err_text(conv.forward(&Variable::constant(Tensor::zeros(&[1, 2, 8, 8]))));
    assert!(
        msg.contains("Conv2d") && msg.contains("[1, 2, 8, 8]"),
        "{msg}"
    );
}

/// Conv2d passes gradcheck for its input, weight and bias with stride, padding and dilation, and
/// without bias.
#[test]
fn conv2d_gradcheck_inputs_and_parameters() {
    let config = Conv2dConfig::new(2, 3, (3, 2))
        .stride((2, 1))
        .padding(1)
        .dilation((1, 2));
    check(
        |v| Conv2d::from_weights(config, v[1].clone(), Some(v[2].clone()))?.forward(&v[0]),
        &[
            randn(&[2, 2, 5, 6], 34),
            randn(&[3, 2, 3, 2], 35),
            randn(&[3], 36),
        ],
    );
    let no_bias = Conv2dConfig::new(1, 2, 2).bias(false);
    check(
        |v| Conv2d::from_weights(no_bias, v[1].clone(), None)?.forward(&v[0]),
        &[randn(&[1, 1, 4, 3], 37), randn(&[2, 1, 2, 2], 38)],
    );
}

/// Conv2d initialises within PyTorch's fan-in bound, names weight and bias, accepts an unbatched
/// (C, H, W) input like a batch of one, and refuses a weight without the config's bias.
#[test]
fn conv2d_init_unbatched_and_names() {
    let config = Conv2dConfig::new(3, 8, 5);
    let conv = Conv2d::new(config, &mut TensorRng::new(4)).unwrap();
    assert_eq!(conv.weight.shape(), vec![8, 3, 5, 5]);
    assert_eq!(conv.num_parameters(), 8 * 3 * 25 + 8);
    let bound = 1.0 / 75f32.sqrt() + 1e-6;
    let w = conv.weight.value();
    assert!(w.max_all() <= bound && w.min_all() >= -bound);
    let b = conv.bias.as_ref().unwrap().value();
    assert!(b.max_all() <= bound && b.min_all() >= -bound);
    // a single (C, H, W) image
    let img = randn(&[3, 6, 6], 39);
    let single = conv.forward(&Variable::constant(img.clone())).unwrap();
    assert_eq!(single.shape(), vec![8, 2, 2]);
    let batched = conv
        .forward(&Variable::constant(img.unsqueeze(0).unwrap()))
        .unwrap();
    assert_eq!(batched.value().squeeze(0).unwrap(), single.value());
    assert!(Conv2d::from_weights(
        config,
        Variable::parameter(Tensor::zeros(&[8, 3, 5, 5])),
        None
    )
    .is_err());
}

/// Max and average pooling modules give hand-computed values and shapes (overlapping windows too)
/// and pass gradcheck.
#[test]
fn pooling_values_shapes_and_gradients() {
    let x = Variable::constant(
        Tensor::arange(0.0, 16.0, 1.0)
            .unwrap()
            .reshape_to(&[1, 1, 4, 4])
            .unwrap(),
    );
    let max = MaxPool2d::new(2).forward(&x).unwrap();
    assert_close(&max.value(), &[5., 7., 13., 15.], 0.0);
    let avg = AvgPool2d::new(2).forward(&x).unwrap();
    assert_close(&avg.value(), &[2.5, 4.5, 10.5, 12.5], 0.0);
    let overlapping = MaxPool2d::new(3).stride(1).forward(&x).unwrap();
    assert_close(&overlapping.value(), &[10., 11., 14., 15.], 0.0);
    let padded = AvgPool2d::new(2).padding(1).forward(&x).unwrap();
    assert_eq!(padded.shape(), vec![1, 1, 3, 3]);
    assert_close(
        &padded.value().narrow(2, 0, 1).unwrap(),
        &[0.0, 0.75, 0.75],
        1e-6,
    );
    let global = AdaptiveAvgPool2d::new(1).forward(&x).unwrap();
    assert_eq!(global.shape(), vec![1, 1, 1, 1]);
    assert_close(&global.value(), &[7.5], 0.0);
    let two = AdaptiveAvgPool2d::new(2).forward(&x).unwrap();
    assert_eq!(two.value(), avg.value());
    assert!(AdaptiveAvgPool2d::new(3).forward(&x).is_err());
    assert!(MaxPool2d::new(2)
        .forward(&Variable::constant(Tensor::zeros(&[4, 4])))
        .is_err());
    // gradients (distinct values, so max has no ties)
    let input = randn(&[2, 3, 4, 5], 40);
    check(
        |v| MaxPool2d::new(2).stride(1).forward(&v[0]),
        std::slice::from_ref(&input),
    );
    check(
        |v| {
            AvgPool2d::new((2, 3))
                .stride((1, 2))
                .padding((1, 1))
                .forward(&v[0])
        },
        std::slice::from_ref(&input),
    );
    check(
        |v| AdaptiveAvgPool2d::default().forward(&v[0]),
        std::slice::from_ref(&input),
    );
    check(
        |v| AdaptiveAvgPool2d::new((2, 1)).forward(&v[0]),
        std::slice::from_ref(&input),
    );
}

/// A small conv-batchnorm-relu-pool-linear network gives the right output shape and a finite
/// non-zero gradient for every parameter.
#[test]
fn small_cnn_end_to_end_gradients() {
    let mut rng = TensorRng::new(9);
    let model = Sequential::new()
        .add(Conv2d::new(Conv2dConfig::new(1, 4, 3).padding(1), &mut rng).unwrap())
        .add(BatchNorm2d::new(4))
        .add(ReLU)
        .add(MaxPool2d::new(2))
        .add(Flatten::new())
        .add(Linear::new(4 * 4 * 4, 3, true, &mut rng));
    let x = Variable::constant(randn(&[2, 1, 8, 8], 41));
    let y = model.forward(&x).unwrap();
    assert_eq!(y.shape(), vec![2, 3]);
    y.sum_all().unwrap().powf(2.0).unwrap().backward().unwrap();
    for (name, p) in model.named_parameters() {
        let g = p.grad().unwrap_or_else(|| panic!("{name} got no gradient"));
        assert!(g.abs().max_all() > 0.0, "{name} has an all-zero gradient");
    }
}

// ----- systems: parameter memory and FLOPs (run with --nocapture to see the numbers) -----

/// Median seconds of `runs` calls of `f` after one warm-up.
fn time_it(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = std::time::Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[runs / 2]
}

/// Parameter counts of an MLP and LeNet-5 equal the hand formulas, LeNet maps 28x28 images to 10
/// logits, and a Linear's measured FLOP rate is printed.
#[test]
fn systems_parameter_memory_and_flops() {
    let mut rng = TensorRng::new(0);
    // parameter memory: count * 4 bytes (f32); Adam would add two more copies
    let mlp = Sequential::new()
        .add(Linear::new(784, 256, true, &mut rng))
        .add(ReLU)
        .add(Linear::new(256, 128, true, &mut rng))
        .add(ReLU)
        .add(Linear::new(128, 10, true, &mut rng));
    let cnn = Sequential::new()
        .add(Conv2d::new(Conv2dConfig::new(1, 6, 5).padding(2), &mut rng).unwrap())
        .add(ReLU)
        .add(MaxPool2d::new(2))
        .add(Conv2d::new(Conv2dConfig::new(6, 16, 5), &mut rng).unwrap())
        .add(ReLU)
        .add(MaxPool2d::new(2))
        .add(Flatten::new())
        .add(Linear::new(16 * 5 * 5, 120, true, &mut rng))
        .add(ReLU)
        .add(Linear::new(120, 84, true, &mut rng))
        .add(ReLU)
        .add(Linear::new(84, 10, true, &mut rng));
    let mlp_params = mlp.num_parameters();
    let cnn_params = cnn.num_parameters();
    assert_eq!(
        mlp_params,
        784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
    );
    assert_eq!(
        cnn_params,
        (6 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    );
    println!(
        "MLP 784-256-128-10: {mlp_params} parameters = {:.1} KiB of f32",
        mlp_params as f64 * 4.0 / 1024.0
    );
    println!(
        "LeNet-5 (28x28 input): {cnn_params} parameters = {:.1} KiB of f32",
        cnn_params as f64 * 4.0 / 1024.0
    );
    // LeNet forward on 28x28 images really produces 10 logits
    let y = cnn
        .forward(&Variable::constant(randn(&[2, 1, 28, 28], 1)))
        .unwrap();
    assert_eq!(y.shape(), vec![2, 10]);

    // Linear (B, in) -> (B, out): 2 * B * in * out FLOPs forward, twice that backward
    let (b, fin, fout) = (256, 1024, 1024);
    let linear = Linear::new(fin, fout, true, &mut rng);
    let x = Variable::parameter(randn(&[b, fin], 2));
    let flops = 2.0 * (b * fin * fout) as f64;
    let fwd = time_it(5, || {
        linear.forward(&x).unwrap();
    });
    let fwd_bwd = time_it(5, || {
        linear
            .forward(&x)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
    });
    println!(
        "Linear {fin}->{fout}, batch {b}: {:.2} GFLOP forward in {:.2} ms = {:.1} GFLOP/s; \
         forward+backward {:.2} ms = {:.1} GFLOP/s",
        flops / 1e9,
        fwd * 1e3,
        flops / fwd / 1e9,
        fwd_bwd * 1e3,
        3.0 * flops / fwd_bwd / 1e9
    );

    // Conv2d: 2 * N * O * OH * OW * C * kh * kw FLOPs forward
    let (n, c, o, hw) = (32, 16, 32, 32);
    let conv = Conv2d::new(Conv2dConfig::new(c, o, 3).padding(1), &mut rng).unwrap();
    let x = Variable::parameter(randn(&[n, c, hw, hw], 3));
    let flops = 2.0 * (n * o * hw * hw * c * 9) as f64;
    let fwd = time_it(5, || {
        conv.forward(&x).unwrap();
    });
    let fwd_bwd = time_it(5, || {
        conv.forward(&x)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
    });
    println!(
        "Conv2d {c}->{o} 3x3 pad 1 on ({n}, {c}, {hw}, {hw}): {:.2} GFLOP forward in {:.2} ms = \
         {:.1} GFLOP/s; forward+backward {:.2} ms = {:.1} GFLOP/s",
        flops / 1e9,
        fwd * 1e3,
        flops / fwd / 1e9,
        fwd_bwd * 1e3,
        3.0 * flops / fwd_bwd / 1e9
    );
}
