//! Softmax and log-softmax: hand values, stability, every dimension, the parallel path, strided
//! inputs, backward, errors.

use crate::helpers::{
    assert_close, contiguous_copy, numeric_grad, numeric_grad_f32, randn, ref_softmax, to_f64,
    transposed, weighted_sum, weighted_sum64,
};
use tensor::softmax::{log_softmax_backward, softmax_backward};
use tensor::Tensor;

/// Softmax and log-softmax of [1, 2, 3] equal the values computed by hand (exp(x_i) / sum exp), to
/// about 1e-6.
#[test]
fn softmax_hand_values() {
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]).unwrap();
    let y = x.softmax(-1).unwrap();
    assert_close(
        &y.to_vec(),
        &[0.090_030_57, 0.244_728_47, 0.665_240_96],
        1e-7,
        1e-6,
        "softmax",
    );
    let l = x.log_softmax(0).unwrap();
    assert_close(
        &l.to_vec(),
        &[-2.407_605_96, -1.407_605_96, -0.407_605_96],
        1e-6,
        1e-6,
        "log_softmax",
    );
}

/// Softmax of logits near 1000 and -1000 stays finite and exact: the kernel subtracts the row
/// maximum before exponentiating.
#[test]
fn softmax_large_inputs_are_stable() {
    let x = Tensor::from_vec(vec![1000.0, 1001.0, 1002.0, -1000.0, 0.0, 1000.0], &[2, 3]).unwrap();
    let y = x.softmax(-1).unwrap();
    assert!(y.all_finite());
    let v = y.to_vec();
    assert_close(
        &v[..3],
        &[0.090_030_57, 0.244_728_47, 0.665_240_96],
        1e-7,
        1e-6,
        "softmax 1000s",
    );
    assert!((v[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
    assert_eq!(&v[3..5], &[0.0, 0.0]);
    assert_eq!(v[5], 1.0);
    let l = x.log_softmax(-1).unwrap();
    assert!(l.all_finite());
    assert_close(
        &l.to_vec()[..3],
        &[-2.407_605_96, -1.407_605_96, -0.407_605_96],
        1e-6,
        1e-6,
        "log_softmax 1000s",
    );
    assert_close(
        &l.to_vec()[3..],
        &[-2000.0, -1000.0, 0.0],
        1e-3,
        1e-6,
        "log_softmax spread",
    );
}

/// A -inf logit (a masked position) gets probability exactly 0 and the others share the mass.
#[test]
fn softmax_negative_infinity_gives_exact_zero() {
    let x = Tensor::from_vec(vec![0.0, f32::NEG_INFINITY, 0.0], &[3]).unwrap();
    assert_eq!(x.softmax(0).unwrap().to_vec(), vec![0.5, 0.0, 0.5]);
}

/// Softmax and log-softmax along each dimension (positive and negative indices) match an f64
/// reference built from exp, sum and divide.
#[test]
fn softmax_and_log_softmax_match_composition_along_every_dim() {
    let shape = [3, 4, 37];
    let x = randn(&shape, 1).map(|v| 3.0 * v);
    let x64 = to_f64(&x);
    for dim in [0isize, 1, 2, -1, -2, -3] {
        let d = if dim < 0 {
            (dim + 3) as usize
        } else {
            dim as usize
        };
        let y = x.softmax(dim).unwrap();
        assert_eq!(y.shape(), &shape);
        assert!(y.is_contiguous());
        assert_close(
            &y.to_vec(),
            &ref_softmax(&x64, &shape, d, false),
            1e-7,
            2e-6,
            "softmax",
        );
        let l = x.log_softmax(dim).unwrap();
        assert_close(
            &l.to_vec(),
            &ref_softmax(&x64, &shape, d, true),
            1e-5,
            1e-6,
            "log_softmax",
        );
    }
}

/// On a tensor large enough to run in parallel (rows not a multiple of the SIMD width), softmax and
/// log-softmax still match the f64 reference.
#[test]
fn softmax_large_tensor_uses_the_parallel_path_correctly() {
    // 96 x 1000 = 96,000 elements: above the threading threshold, rows not a multiple of 16.
    let shape = [96, 1000];
    let x = randn(&shape, 2).map(|v| 4.0 * v);
    let x64 = to_f64(&x);
    let y = x.softmax(-1).unwrap();
    assert_close(
        &y.to_vec(),
        &ref_softmax(&x64, &shape, 1, false),
        1e-8,
        2e-6,
        "softmax big",
    );
    let l = x.log_softmax(1).unwrap();
    assert_close(
        &l.to_vec(),
        &ref_softmax(&x64, &shape, 1, true),
        1e-5,
        1e-6,
        "log_softmax big",
    );
    let dy = randn(&shape, 3);
    let dx = softmax_backward(&y, &dy, -1).unwrap();
    let (yv, gv) = (y.to_vec(), dy.to_vec());
    let mut want = vec![0.0f64; yv.len()];
    for r in 0..96 {
        let row = r * 1000..(r + 1) * 1000;
        let dot: f64 = row.clone().map(|i| yv[i] as f64 * gv[i] as f64).sum();
        for i in row {
            want[i] = yv[i] as f64 * (gv[i] as f64 - dot);
        }
    }
    assert_close(&dx.to_vec(), &want, 1e-6, 1e-4, "softmax_backward big");
}

/// A transposed (strided) input gives bit-identical softmax, log-softmax and backward results to
/// its contiguous copy.
#[test]
fn softmax_of_non_contiguous_input_equals_contiguous() {
    let x = transposed(&randn(&[4, 5, 6], 4));
    assert!(!x.is_contiguous());
    let c = contiguous_copy(&x);
    for dim in [-1isize, 0, 1] {
        assert!(
            x.softmax(dim).unwrap() == c.softmax(dim).unwrap(),
            "softmax dim {dim}"
        );
        assert!(
            x.log_softmax(dim).unwrap() == c.log_softmax(dim).unwrap(),
            "log_softmax dim {dim}"
        );
        let y = c.softmax(dim).unwrap();
        let g = randn(&[6, 5, 4], 5);
        let gt = transposed(&transposed(&g).contiguous());
        assert!(!gt.is_contiguous());
        assert!(
            softmax_backward(&y, &gt, dim).unwrap() == softmax_backward(&y, &g, dim).unwrap(),
            "softmax_backward dim {dim}"
        );
    }
}

/// The hand-written softmax backward equals central finite differences of the f64 reference
/// softmax, along every dimension.
#[test]
fn softmax_backward_matches_finite_differences() {
    let shape = [2, 3, 5];
    let x = randn(&shape, 6);
    let w = randn(&shape, 7).to_vec();
    let wt = Tensor::from_vec(w.clone(), &shape).unwrap();
    for dim in [-1isize, 1, 0] {
        let d = if dim < 0 {
            (dim + 3) as usize
        } else {
            dim as usize
        };
        let y = x.softmax(dim).unwrap();
        let dx = softmax_backward(&y, &wt, dim).unwrap().to_vec();
        let num = numeric_grad(&to_f64(&x), 1e-5, |v| {
            weighted_sum64(&ref_softmax(v, &shape, d, false), &w)
        });
        assert_close(&dx, &num, 1e-6, 1e-4, "softmax_backward vs f64 differences");
        let num32 = numeric_grad_f32(&x.to_vec(), 1e-2, |v| {
            let t = Tensor::from_vec(v.to_vec(), &shape).unwrap();
            weighted_sum(&t.softmax(dim).unwrap().to_vec(), &w)
        });
        assert_close(
            &dx,
            &num32,
            1e-3,
            1e-2,
            "softmax_backward vs kernel differences",
        );
    }
}

/// The hand-written log-softmax backward equals central finite differences of the f64 reference
/// log-softmax.
#[test]
fn log_softmax_backward_matches_finite_differences() {
    let shape = [3, 6];
    let x = randn(&shape, 8).map(|v| 2.0 * v);
    let w = randn(&shape, 9).to_vec();
    let wt = Tensor::from_vec(w.clone(), &shape).unwrap();
    for dim in [-1isize, 0] {
        let d = if dim < 0 { 1 } else { 0 };
        let y = x.log_softmax(dim).unwrap();
        let dx = log_softmax_backward(&y, &wt, dim).unwrap().to_vec();
        let num = numeric_grad(&to_f64(&x), 1e-5, |v| {
            weighted_sum64(&ref_softmax(v, &shape, d, true), &w)
        });
        assert_close(
            &dx,
            &num,
            1e-5,
            1e-4,
            "log_softmax_backward vs f64 differences",
        );
        let num32 = numeric_grad_f32(&x.to_vec(), 1e-2, |v| {
            let t = Tensor::from_vec(v.to_vec(), &shape).unwrap();
            weighted_sum(&t.log_softmax(dim).unwrap().to_vec(), &w)
        });
        assert_close(
            &dx,
            &num32,
            2e-3,
            1e-2,
            "log_softmax_backward vs kernel differences",
        );
    }
}

/// A bad dimension or mismatched gradient shape is an error naming the op (softmax, log_softmax,
/// their backwards) and the shapes, not a panic.
#[test]
fn softmax_errors_name_the_op_and_shapes() {
    let x = Tensor::zeros(&[2, 3]);
    let e = x.softmax(2).unwrap_err();
    assert_eq!(e.op(), "softmax");
    assert!(e.to_string().contains("[2, 3]"), "{e}");
    assert_eq!(x.log_softmax(-3).unwrap_err().op(), "log_softmax");
    let e = softmax_backward(&x, &Tensor::zeros(&[3, 2]), -1).unwrap_err();
    assert_eq!(e.op(), "softmax_backward");
    let msg = e.to_string();
    assert!(msg.contains("[2, 3]") && msg.contains("[3, 2]"), "{msg}");
    let e = log_softmax_backward(&x, &Tensor::zeros(&[2]), -1).unwrap_err();
    assert_eq!(e.op(), "log_softmax_backward");
    assert!(e.to_string().contains("[2]"), "{e}");
}

/// Softmax over a dimension of length 0 returns an empty tensor of the same shape instead of
/// failing.
#[test]
fn softmax_of_empty_dimension_is_empty() {
    let x = Tensor::zeros(&[3, 0]);
    assert_eq!(x.softmax(-1).unwrap().shape(), &[3, 0]);
    assert_eq!(x.log_softmax(0).unwrap().shape(), &[3, 0]);
}
