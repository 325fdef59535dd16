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

/// `forward_gelu` is `forward` then `gelu` (the bias added inside the GELU pass): the same
/// values bit for bit, the same input, weight and bias gradients (the bias's summed in another
/// order, so within rounding), gradcheck with and without bias, the width check, and a
/// quantized layer (int8 forward, then GELU).
#[test]
fn linear_forward_gelu_is_forward_then_gelu() {
    let mut rng = TensorRng::new(11);
    let layer = Linear::new(24, 70, true, &mut rng);
    let x = Variable::parameter(randn(&[3, 5, 24], 12));
    let fused = layer.forward_gelu(&x).unwrap();
    let composed = layer.forward(&x).unwrap().gelu().unwrap();
    assert_eq!(fused.value(), composed.value());
    let g = randn(&[3, 5, 70], 13);
    let grads = |y: &Variable| {
        for p in [&x, &layer.weight, layer.bias.as_ref().unwrap()] {
            p.zero_grad();
        }
        y.backward_with(g.clone()).unwrap();
        [&x, &layer.weight, layer.bias.as_ref().unwrap()].map(|p| p.grad().unwrap())
    };
    let (gf, gc) = (grads(&fused), grads(&composed));
    for (f, c) in gf.iter().zip(&gc) {
        assert_close(f, &c.to_vec(), 1e-5);
    }
    check(
        |v| Linear::from_weights(v[1].clone(), Some(v[2].clone()))?.forward_gelu(&v[0]),
        &[randn(&[2, 3, 4], 14), randn(&[5, 4], 15), randn(&[5], 16)],
    );
    check(
        |v| Linear::from_weights(v[1].clone(), None)?.forward_gelu(&v[0]),
        &[randn(&[3, 4], 17), randn(&[2, 4], 18)],
    );
    let msg = err_text(layer.forward_gelu(&Variable::constant(Tensor::zeros(&[2, 23]))));
    assert!(msg.contains("Linear") && msg.contains("[2, 23]"), "{msg}");
    let mut q = Linear::new(24, 70, true, &mut rng);
    q.quantize_dynamic().unwrap();
    let input = Variable::constant(randn(&[4, 24], 19));
    autograd::no_grad(|| {
        let want = q.forward(&input).unwrap().gelu().unwrap().value();
        assert_eq!(q.forward_gelu(&input).unwrap().value(), want);
    });
}
