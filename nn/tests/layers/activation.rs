//! Flatten and the activation modules: values by hand and gradchecks.

use crate::helpers::{assert_close, check, randn, t};
use autograd::Variable;
use nn::activation::{
    gelu, gelu_tanh, GeluApproximate, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh, GELU,
};
use nn::flatten::Flatten;
use nn::Module;
use tensor::Tensor;

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
