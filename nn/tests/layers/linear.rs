//! Linear: values by hand, gradcheck of input, weight and bias, initialisation and errors.

use crate::helpers::{assert_close, check, err_text, randn, t};
use autograd::Variable;
use nn::linear::Linear;
use nn::Module;
use tensor::{Tensor, TensorRng};

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
