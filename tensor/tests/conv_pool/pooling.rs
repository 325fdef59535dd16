//! Max and average pooling: hand values, padding, ties and NaN, backward against finite
//! differences, the parallel path.

use crate::helpers::{randn, seq, t};
use tensor::pool::{avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward};
use tensor::Tensor;

/// 2x2 max pooling of a 4x4 image gives the hand-picked maxima and their indices, and the backward
/// routes each gradient to its argmax.
#[test]
fn max_pool_hand_computed() {
    #[rustfmt::skip]
    let x = t(&[
        1., 3., 2., 0.,
        4., 2., 1., 5.,
        0., 1., 7., 6.,
        8., 2., 6., 7.,
    ], &[1, 1, 4, 4]);
    let (y, idx) = max_pool2d(&x, (2, 2), (2, 2), (0, 0)).unwrap();
    assert_eq!(y.shape(), [1, 1, 2, 2]);
    assert_eq!(y.to_vec(), [4., 5., 8., 7.]);
    assert_eq!(idx.indices(), [4, 7, 12, 10]);
    assert_eq!(idx.input_shape(), [1, 1, 4, 4]);
    assert_eq!(idx.output_shape(), [1, 1, 2, 2]);
    let gx = max_pool2d_backward(&t(&[1., 2., 3., 4.], &[1, 1, 2, 2]), &idx).unwrap();
    #[rustfmt::skip]
    assert_eq!(gx.to_vec(), [
        0., 0., 0., 0.,
        1., 0., 0., 2.,
        0., 0., 4., 0.,
        3., 0., 0., 0.,
    ]);
}

/// Max-pool padding acts as -inf (an all-negative input never picks a padded zero) and overlapping
/// windows sharing a maximum add their gradients.
#[test]
fn max_pool_padding_is_minus_infinity_and_overlaps_accumulate() {
    // All-negative input: zero padding would win, -inf padding does not.
    let x = t(&[-1., -2., -3., -4.], &[1, 1, 2, 2]);
    let (y, idx) = max_pool2d(&x, (2, 2), (1, 1), (1, 1)).unwrap();
    assert_eq!(y.shape(), [1, 1, 3, 3]);
    assert_eq!(y.to_vec(), [-1., -1., -2., -1., -1., -2., -3., -3., -4.]);
    assert_eq!(idx.indices(), [0, 0, 1, 0, 0, 1, 2, 2, 3]);
    // Overlapping windows that share a maximum add their gradients.
    let gx = max_pool2d_backward(&Tensor::ones(&[1, 1, 3, 3]), &idx).unwrap();
    assert_eq!(gx.to_vec(), [4., 2., 2., 1.]);
}

/// Max pooling picks the first of tied maxima and propagates NaN (the first NaN of a window wins),
/// like PyTorch.
#[test]
fn max_pool_ties_go_to_the_first_and_nan_propagates() {
    let x = Tensor::full(&[1, 1, 2, 4], 3.0);
    let (y, idx) = max_pool2d(&x, (2, 2), (2, 2), (0, 0)).unwrap();
    assert_eq!(y.to_vec(), [3., 3.]);
    assert_eq!(idx.indices(), [0, 2]);
    let x = t(&[1., f32::NAN, 5., 2.], &[1, 1, 2, 2]);
    let (y, idx) = max_pool2d(&x, (2, 2), (2, 2), (0, 0)).unwrap();
    assert!(y.to_vec()[0].is_nan());
    assert_eq!(idx.indices(), [1]);
    // The first NaN of each window wins; windows without NaN are unaffected.
    let nan = f32::NAN;
    #[rustfmt::skip]
    let x = t(&[
        1., nan, 0., 3., 7., 8.,
        5., 2., nan, nan, 9., 4.,
    ], &[1, 1, 2, 6]);
    let (y, idx) = max_pool2d(&x, (2, 2), (2, 2), (0, 0)).unwrap();
    let y = y.to_vec();
    assert!(y[0].is_nan() && y[1].is_nan());
    assert_eq!(y[2], 9.0);
    assert_eq!(idx.indices(), [1, 8, 10]);
}

/// Average pooling gives hand-computed means, counts padded zeros in the divisor, and spreads each
/// gradient evenly over its window.
#[test]
fn avg_pool_hand_computed() {
    let x = seq(&[1, 1, 4, 4]);
    let y = avg_pool2d(&x, (2, 2), (2, 2), (0, 0)).unwrap();
    assert_eq!(y.to_vec(), [3.5, 5.5, 11.5, 13.5]);
    // count_include_pad: padded zeros count in the divisor (always kh*kw = 4).
    let x = Tensor::ones(&[1, 1, 2, 2]);
    let y = avg_pool2d(&x, (2, 2), (1, 1), (1, 1)).unwrap();
    assert_eq!(
        y.to_vec(),
        [0.25, 0.5, 0.25, 0.5, 1.0, 0.5, 0.25, 0.5, 0.25]
    );
    // Backward of a 3x3 output of ones: each input receives 1/4 from each of its 4 windows.
    let gx = avg_pool2d_backward(
        &Tensor::ones(&[1, 1, 3, 3]),
        &[1, 1, 2, 2],
        (2, 2),
        (1, 1),
        (1, 1),
    )
    .unwrap();
    assert_eq!(gx.to_vec(), [1., 1., 1., 1.]);
    // Non-square kernel and stride, two channels.
    let x = seq(&[1, 2, 2, 3]);
    let y = avg_pool2d(&x, (1, 3), (1, 1), (0, 0)).unwrap();
    assert_eq!(y.shape(), [1, 2, 2, 1]);
    assert_eq!(y.to_vec(), [2., 5., 8., 11.]);
}

// ----- pooling backward vs central finite differences -----

/// `sum(f(x) * r)` in f64 for fixed random weights `r`.
fn weighted_sum(y: &Tensor, r: &[f32]) -> f64 {
    y.to_vec()
        .iter()
        .zip(r)
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum()
}

/// Central differences of `x -> sum(f(x) * r)`, one input element at a time.
fn numeric_grad(x: &Tensor, r: &[f32], eps: f32, f: impl Fn(&Tensor) -> Tensor) -> Vec<f64> {
    let base = x.to_vec();
    (0..base.len())
        .map(|i| {
            let mut plus = base.clone();
            plus[i] += eps;
            let mut minus = base.clone();
            minus[i] -= eps;
            let fp = weighted_sum(&f(&t(&plus, x.shape())), r);
            let fm = weighted_sum(&f(&t(&minus, x.shape())), r);
            // The actual perturbation after rounding to f32.
            let h = plus[i] as f64 - minus[i] as f64;
            (fp - fm) / h
        })
        .collect()
}

/// Distinct values (spaced 0.1 apart, shuffled) so an eps of 0.01 never changes an argmax.
fn distinct(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut vals: Vec<f32> = (0..n).map(|i| (i as f32 - n as f32 / 2.0) * 0.1).collect();
    tensor::TensorRng::new(seed).shuffle(&mut vals);
    t(&vals, shape)
}

/// The max-pool backward equals finite differences of the forward on inputs with distinct values
/// (so the argmax is stable).
#[test]
fn max_pool_backward_matches_finite_differences() {
    let cases = [
        ([2, 2, 5, 6], (2, 2), (2, 2), (0, 0)),
        ([1, 3, 6, 5], (3, 3), (1, 1), (1, 1)),
        ([2, 1, 7, 7], (3, 2), (2, 1), (1, 1)),
        ([1, 2, 4, 4], (4, 4), (1, 1), (2, 0)),
    ];
    for (i, (shape, k, s, p)) in cases.into_iter().enumerate() {
        let x = distinct(&shape, 30 + i as u64);
        let (y, idx) = max_pool2d(&x, k, s, p).unwrap();
        let r = randn(y.shape(), 300 + i as u64).to_vec();
        let analytic = max_pool2d_backward(&t(&r, y.shape()), &idx)
            .unwrap()
            .to_vec();
        let numeric = numeric_grad(&x, &r, 0.01, |x| max_pool2d(x, k, s, p).unwrap().0);
        for (j, (a, n)) in analytic.iter().zip(&numeric).enumerate() {
            assert!(
                (*a as f64 - n).abs() < 1e-3,
                "case {i} elem {j}: analytic {a} numeric {n}"
            );
        }
        assert!(analytic.iter().any(|&a| a != 0.0));
    }
}

/// The average-pool backward equals finite differences of the forward over several kernel, stride
/// and padding settings.
#[test]
fn avg_pool_backward_matches_finite_differences() {
    let cases = [
        ([2, 2, 5, 6], (2, 2), (2, 2), (0, 0)),
        ([1, 3, 6, 5], (3, 3), (1, 1), (1, 1)),
        ([2, 1, 7, 7], (3, 2), (2, 1), (1, 1)),
        ([1, 2, 5, 4], (4, 2), (3, 1), (2, 1)),
    ];
    for (i, (shape, k, s, p)) in cases.into_iter().enumerate() {
        let x = randn(&shape, 40 + i as u64);
        let y = avg_pool2d(&x, k, s, p).unwrap();
        let r = randn(y.shape(), 400 + i as u64).to_vec();
        let analytic = avg_pool2d_backward(&t(&r, y.shape()), &shape, k, s, p)
            .unwrap()
            .to_vec();
        let numeric = numeric_grad(&x, &r, 0.01, |x| avg_pool2d(x, k, s, p).unwrap());
        for (j, (a, n)) in analytic.iter().zip(&numeric).enumerate() {
            assert!(
                (*a as f64 - n).abs() < 1e-3,
                "case {i} elem {j}: analytic {a} numeric {n}"
            );
        }
        assert!(analytic.iter().any(|&a| a != 0.0));
    }
}

/// Pooling many planes at once (the parallel path) gives, plane by plane, the same results as
/// pooling each plane alone.
#[test]
fn pooling_parallel_path_matches_small_planes() {
    // 64 planes of 24x24 (the LeNet shape) go through rayon; each plane must equal the pooling
    // of that plane alone (sequential path).
    let x = randn(&[16, 4, 24, 24], 5);
    let (y, idx) = max_pool2d(&x, (2, 2), (2, 2), (0, 0)).unwrap();
    let ya = avg_pool2d(&x, (3, 3), (1, 1), (1, 1)).unwrap();
    let g = max_pool2d_backward(&y, &idx).unwrap();
    let ga = avg_pool2d_backward(&ya, x.shape(), (3, 3), (1, 1), (1, 1)).unwrap();
    let (xv, yv, iv, yav, gv, gav) = (
        x.to_vec(),
        y.to_vec(),
        idx.indices().to_vec(),
        ya.to_vec(),
        g.to_vec(),
        ga.to_vec(),
    );
    for plane in [0usize, 17, 63] {
        let xp = t(&xv[plane * 576..(plane + 1) * 576], &[1, 1, 24, 24]);
        let (y1, i1) = max_pool2d(&xp, (2, 2), (2, 2), (0, 0)).unwrap();
        assert_eq!(y1.to_vec(), yv[plane * 144..(plane + 1) * 144]);
        assert_eq!(i1.indices(), &iv[plane * 144..(plane + 1) * 144]);
        let ya1 = avg_pool2d(&xp, (3, 3), (1, 1), (1, 1)).unwrap();
        assert_eq!(ya1.to_vec(), yav[plane * 576..(plane + 1) * 576]);
        let g1 = max_pool2d_backward(&y1, &i1).unwrap();
        assert_eq!(g1.to_vec(), gv[plane * 576..(plane + 1) * 576]);
        let ga1 = avg_pool2d_backward(&ya1, &[1, 1, 24, 24], (3, 3), (1, 1), (1, 1)).unwrap();
        assert_eq!(ga1.to_vec(), gav[plane * 576..(plane + 1) * 576]);
    }
}
