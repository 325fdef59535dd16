//! Grader for convolution (im2col / col2im) and pooling kernels.
//!
//! Forward kernels are checked against hand-computed values and the direct-loop oracle
//! `conv2d_naive`; backward kernels against the adjoint identity (col2im) and central finite
//! differences accumulated in f64 (pooling).

use tensor::conv::{col2im, conv2d_naive, im2col, Conv2dGeometry};
use tensor::pool::{avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward};
use tensor::{Tensor, TensorError};

fn t(values: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(values.to_vec(), shape).unwrap()
}

fn seq(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    t(&(1..=n).map(|v| v as f32).collect::<Vec<_>>(), shape)
}

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::rand_normal(shape, 0.0, 1.0, seed).unwrap()
}

fn geom(
    k: (usize, usize),
    s: (usize, usize),
    p: (usize, usize),
    d: (usize, usize),
) -> Conv2dGeometry {
    Conv2dGeometry::new(k, s, p, d)
}

fn dot64(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.to_vec()
        .iter()
        .zip(b.to_vec())
        .map(|(&x, y)| x as f64 * y as f64)
        .sum()
}

/// Exactly equal shapes and values.
fn same(got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape(), want.shape());
    assert_eq!(got.to_vec(), want.to_vec());
}

fn assert_close(got: &Tensor, want: &Tensor, tol: f32, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shapes");
    let diff = got.max_abs_diff(want).unwrap();
    assert!(
        diff <= tol,
        "{what}: max abs diff {diff} > {tol}\n got {:?}\nwant {:?}",
        got.to_vec(),
        want.to_vec()
    );
}

/// Convolution through im2col and a plain triple-loop matmul, per image.
fn conv_via_im2col(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    g: &Conv2dGeometry,
) -> Tensor {
    let (n, h, w) = (x.shape()[0], x.shape()[2], x.shape()[3]);
    let o = weight.shape()[0];
    let k = weight.numel() / o;
    let (oh, ow) = g.output_size(h, w).unwrap();
    let l = oh * ow;
    let cols = im2col(x, g).unwrap();
    assert_eq!(cols.shape(), [n, k, l]);
    let cols = cols.to_vec();
    let wv = weight.to_vec();
    let bv = bias.map(|b| b.to_vec());
    let mut out = vec![0.0f32; n * o * l];
    for b in 0..n {
        for oc in 0..o {
            for p in 0..l {
                let mut acc = bv.as_ref().map_or(0.0, |bv| bv[oc]);
                for r in 0..k {
                    acc += wv[oc * k + r] * cols[(b * k + r) * l + p];
                }
                out[(b * o + oc) * l + p] = acc;
            }
        }
    }
    t(&out, &[n, o, oh, ow])
}

// ----- geometry -----

/// The convolution output size equals floor((H + 2p - d(k-1) - 1) / s) + 1 on a table of cases
/// worked out by hand (LeNet, ResNet stem, dilation, stride).
#[test]
fn output_size_formula() {
    // (H, k, s, p, d) -> floor((H + 2p - d(k-1) - 1) / s) + 1
    let cases = [
        (28, 5, 1, 0, 1, 24),
        (28, 5, 1, 2, 1, 28),
        (7, 3, 2, 1, 1, 4),
        (8, 3, 2, 1, 1, 4),
        (10, 3, 1, 0, 2, 6),
        (10, 3, 2, 1, 2, 4),
        (5, 3, 1, 1, 3, 1),
        (5, 5, 1, 0, 1, 1),
        (4, 2, 3, 0, 1, 1),
        (32, 3, 2, 1, 1, 16),
        (224, 7, 2, 3, 1, 112),
        (0, 1, 1, 1, 1, 2),
    ];
    for (h, k, s, p, d, want) in cases {
        let g = geom((k, 1), (s, 1), (p, 0), (d, 1));
        assert_eq!(
            g.output_size(h, 3).unwrap(),
            (want, 3),
            "H={h} k={k} s={s} p={p} d={d}"
        );
        // the same along the width
        let g = geom((1, k), (1, s), (0, p), (1, d));
        assert_eq!(
            g.output_size(3, h).unwrap(),
            (3, want),
            "W={h} k={k} s={s} p={p} d={d}"
        );
    }
    assert_eq!(
        Conv2dGeometry::with_kernel((3, 2)),
        geom((3, 2), (1, 1), (0, 0), (1, 1))
    );
    assert_eq!(Conv2dGeometry::with_kernel((3, 2)).kernel_numel(), 6);
}

/// A kernel that spans more than the padded input, or a zero stride/dilation, is an error saying
/// why instead of a wrong or negative size.
#[test]
fn output_size_errors() {
    // dilated kernel spans 7 > 5
    let e = geom((3, 3), (1, 1), (0, 0), (3, 3))
        .output_size(5, 5)
        .unwrap_err();
    assert!(e.to_string().contains("spans 7"), "{e}");
    assert!(geom((6, 1), (1, 1), (0, 0), (1, 1))
        .output_size(5, 5)
        .is_err());
    assert!(geom((1, 6), (1, 1), (0, 0), (1, 1))
        .output_size(5, 5)
        .is_err());
    assert!(geom((3, 3), (0, 1), (0, 0), (1, 1))
        .output_size(5, 5)
        .is_err());
    assert!(geom((3, 3), (1, 0), (0, 0), (1, 1))
        .output_size(5, 5)
        .is_err());
    assert!(geom((3, 3), (1, 1), (0, 0), (0, 1))
        .output_size(5, 5)
        .is_err());
    assert!(geom((0, 3), (1, 1), (0, 0), (1, 1))
        .output_size(5, 5)
        .is_err());
}

// ----- im2col / col2im by hand -----

/// im2col of a 3x3 image with a 2x2 kernel lays out the four windows exactly as written by hand
/// (one row per kernel tap).
#[test]
fn im2col_hand_computed() {
    // x = [[1 2 3], [4 5 6], [7 8 9]], 2x2 kernel, stride 1: four windows.
    let x = seq(&[1, 1, 3, 3]);
    let cols = im2col(&x, &Conv2dGeometry::with_kernel((2, 2))).unwrap();
    assert_eq!(cols.shape(), [1, 4, 4]);
    #[rustfmt::skip]
    let want = [
        1., 2., 4., 5., // tap (0, 0)
        2., 3., 5., 6., // tap (0, 1)
        4., 5., 7., 8., // tap (1, 0)
        5., 6., 8., 9., // tap (1, 1)
    ];
    assert_eq!(cols.to_vec(), want);
}

/// im2col with two channels, stride 2 and padding 1 matches the hand-written columns, zeros where a
/// window reads padding.
#[test]
fn im2col_hand_computed_padding_stride_channels() {
    // Two channels of a 2x2 image, 2x2 kernel, stride 2, padding 1: output 2x2, each window
    // holds one real pixel. Channel 0 = [[1 2], [3 4]], channel 1 = [[5 6], [7 8]].
    let x = seq(&[1, 2, 2, 2]);
    let cols = im2col(&x, &geom((2, 2), (2, 2), (1, 1), (1, 1))).unwrap();
    assert_eq!(cols.shape(), [1, 8, 4]);
    #[rustfmt::skip]
    let want = [
        0., 0., 0., 4., // c0 tap (0, 0)
        0., 0., 3., 0., // c0 tap (0, 1)
        0., 2., 0., 0., // c0 tap (1, 0)
        1., 0., 0., 0., // c0 tap (1, 1)
        0., 0., 0., 8., // c1 ...
        0., 0., 7., 0.,
        0., 6., 0., 0.,
        5., 0., 0., 0.,
    ];
    assert_eq!(cols.to_vec(), want);
}

/// im2col with dilation 2 picks taps two pixels apart, matching the hand-written columns.
#[test]
fn im2col_hand_computed_dilation() {
    // 4x4 image 1..16, 2x2 kernel with dilation 2 (taps 2 apart): output 2x2.
    let x = seq(&[1, 1, 4, 4]);
    let cols = im2col(&x, &geom((2, 2), (1, 1), (0, 0), (2, 2))).unwrap();
    assert_eq!(cols.shape(), [1, 4, 4]);
    #[rustfmt::skip]
    let want = [
        1., 2., 5., 6.,
        3., 4., 7., 8.,
        9., 10., 13., 14.,
        11., 12., 15., 16.,
    ];
    assert_eq!(cols.to_vec(), want);
}

/// Folding columns of ones back with col2im counts how many windows cover each pixel (hand-counted
/// for padding and stride).
#[test]
fn col2im_counts_overlaps() {
    // Folding columns of ones counts how many windows cover each pixel.
    let g = Conv2dGeometry::with_kernel((2, 2));
    let img = col2im(&Tensor::ones(&[1, 4, 4]), &[1, 1, 3, 3], &g).unwrap();
    assert_eq!(img.to_vec(), [1., 2., 1., 2., 4., 2., 1., 2., 1.]);
    // With padding 1 and a 3x3 kernel on a 3x3 image every pixel is covered by 9 - (edges) windows.
    let g = geom((3, 3), (1, 1), (1, 1), (1, 1));
    let img = col2im(&Tensor::ones(&[1, 9, 9]), &[1, 1, 3, 3], &g).unwrap();
    assert_eq!(img.to_vec(), [4., 6., 4., 6., 9., 6., 4., 6., 4.]);
    // Stride 2, kernel 3, 5x5: columns and rows 2 are shared by two windows.
    let g = geom((3, 3), (2, 2), (0, 0), (1, 1));
    let img = col2im(&Tensor::ones(&[1, 9, 4]), &[1, 1, 5, 5], &g).unwrap();
    #[rustfmt::skip]
    let want = [
        1., 1., 2., 1., 1.,
        1., 1., 2., 1., 1.,
        2., 2., 4., 2., 2.,
        1., 1., 2., 1., 1.,
        1., 1., 2., 1., 1.,
    ];
    assert_eq!(img.to_vec(), want);
}

/// The direct (seven-loop) convolution gives hand-computed outputs, with bias, padding and stride.
#[test]
fn conv2d_naive_hand_computed() {
    // x = [[1 2 3], [4 5 6], [7 8 9]], weight [[1 0], [0 -1]], bias 10: x[i][j] - x[i+1][j+1] + 10.
    let x = seq(&[1, 1, 3, 3]);
    let w = t(&[1., 0., 0., -1.], &[1, 1, 2, 2]);
    let b = t(&[10.], &[1]);
    let y = conv2d_naive(&x, &w, Some(&b), &Conv2dGeometry::with_kernel((2, 2))).unwrap();
    assert_eq!(y.shape(), [1, 1, 2, 2]);
    assert_eq!(y.to_vec(), [6., 6., 6., 6.]);
    // Padding 1, stride 2, sum kernel of ones 2x2: corners of the padded image.
    let w = Tensor::ones(&[1, 1, 2, 2]);
    let y = conv2d_naive(&x, &w, None, &geom((2, 2), (2, 2), (1, 1), (1, 1))).unwrap();
    assert_eq!(y.to_vec(), [1., 2. + 3., 4. + 7., 5. + 6. + 8. + 9.]);
}

// ----- im2col + matmul == direct convolution -----

/// Convolution as im2col followed by a matmul equals the direct convolution over many shapes,
/// strides, paddings and dilations.
#[test]
fn conv_via_im2col_matches_naive() {
    // (N, C, H, W, O, kernel, stride, padding, dilation)
    let cases = [
        (2, 3, 7, 6, 4, (3, 3), (1, 1), (0, 0), (1, 1)),
        (2, 3, 7, 6, 4, (3, 2), (1, 1), (1, 0), (1, 1)),
        (1, 2, 9, 8, 3, (3, 3), (2, 2), (1, 1), (1, 1)),
        (2, 2, 9, 10, 3, (3, 3), (1, 1), (0, 0), (2, 2)),
        (2, 3, 11, 9, 2, (3, 2), (2, 3), (2, 1), (2, 3)),
        (3, 4, 5, 5, 5, (1, 1), (1, 1), (0, 0), (1, 1)),
        (1, 1, 28, 28, 6, (5, 5), (1, 1), (2, 2), (1, 1)),
        (2, 3, 6, 6, 2, (6, 6), (1, 1), (0, 0), (1, 1)),
        (1, 2, 4, 3, 2, (2, 2), (3, 2), (2, 2), (1, 2)),
    ];
    for (i, &(n, c, h, w, o, k, s, p, d)) in cases.iter().enumerate() {
        let g = geom(k, s, p, d);
        let x = randn(&[n, c, h, w], 10 + i as u64);
        let weight = randn(&[o, c, k.0, k.1], 100 + i as u64);
        let bias = randn(&[o], 1000 + i as u64);
        let want = conv2d_naive(&x, &weight, Some(&bias), &g).unwrap();
        let got = conv_via_im2col(&x, &weight, Some(&bias), &g);
        assert_close(&got, &want, 1e-4, &format!("case {i}: {g:?}"));
    }
}

/// On inputs large enough for the parallel path, im2col-convolution still equals the direct one and
/// col2im stays the adjoint of im2col.
#[test]
fn conv_via_im2col_parallel_path() {
    // Enough planes and work for the rayon path (N*C*kh*kw*OH*OW well above 64k).
    let g = geom((3, 3), (1, 1), (1, 1), (1, 1));
    let x = randn(&[16, 4, 16, 16], 7);
    let weight = randn(&[5, 4, 3, 3], 8);
    let want = conv2d_naive(&x, &weight, None, &g).unwrap();
    let got = conv_via_im2col(&x, &weight, None, &g);
    assert_close(&got, &want, 1e-4, "parallel im2col");
    // col2im on the parallel path is still the adjoint.
    let cols = randn(&[16, 36, 256], 9);
    let lhs = dot64(&im2col(&x, &g).unwrap(), &cols);
    let rhs = dot64(&x, &col2im(&cols, x.shape(), &g).unwrap());
    assert!(
        (lhs - rhs).abs() <= 1e-4 * lhs.abs().max(1.0),
        "{lhs} vs {rhs}"
    );
}

// ----- col2im is the adjoint of im2col (so it is convolution's input gradient) -----

/// col2im is the transpose (adjoint) of im2col: <im2col(x), c> equals <x, col2im(c)> for random x
/// and c, which is what its backward needs.
#[test]
fn col2im_is_adjoint_of_im2col() {
    let cases = [
        ([2, 3, 7, 6], geom((3, 3), (1, 1), (0, 0), (1, 1))),
        ([2, 3, 7, 6], geom((3, 2), (2, 1), (1, 2), (1, 1))),
        ([1, 2, 10, 9], geom((3, 3), (2, 2), (2, 1), (2, 2))),
        ([3, 1, 5, 5], geom((5, 5), (1, 1), (2, 2), (1, 1))),
        ([2, 2, 8, 8], geom((2, 2), (2, 2), (0, 0), (1, 1))),
        ([1, 2, 4, 3], geom((2, 2), (3, 2), (2, 2), (1, 2))),
    ];
    for (i, (shape, g)) in cases.iter().enumerate() {
        let x = randn(shape, 20 + i as u64);
        let cols_x = im2col(&x, g).unwrap();
        let c = randn(cols_x.shape(), 200 + i as u64);
        let back = col2im(&c, shape, g).unwrap();
        assert_eq!(back.shape(), shape);
        let lhs = dot64(&cols_x, &c);
        let rhs = dot64(&x, &back);
        assert!(
            (lhs - rhs).abs() <= 1e-5 * lhs.abs().max(1.0),
            "case {i}: {lhs} vs {rhs}"
        );
    }
}

// ----- pooling by hand -----

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

// ----- non-contiguous inputs -----

/// The same values as a `(N, C, H, W)` tensor whose memory is laid out `(N, C, W, H)`.
fn transposed_view(x: &Tensor) -> Tensor {
    let s = x.shape();
    let xt = x
        .array()
        .clone()
        .permuted_axes(vec![0, 1, 3, 2])
        .as_standard_layout()
        .into_owned();
    assert_eq!(xt.shape(), [s[0], s[1], s[3], s[2]]);
    let view = Tensor::from_shared(xt.into_shared().permuted_axes(vec![0, 1, 3, 2]));
    assert!(!view.is_contiguous());
    same(&view, x);
    view
}

/// Transposed (strided) inputs give the same im2col, convolution and pooling results, indices and
/// gradients as contiguous copies.
#[test]
fn non_contiguous_inputs_work() {
    let x = randn(&[2, 3, 6, 5], 50);
    let v = transposed_view(&x);
    let g = geom((3, 2), (2, 1), (1, 1), (1, 2));
    same(&im2col(&v, &g).unwrap(), &im2col(&x, &g).unwrap());
    let w = randn(&[4, 3, 3, 2], 51);
    same(
        &conv2d_naive(&v, &w, None, &g).unwrap(),
        &conv2d_naive(&x, &w, None, &g).unwrap(),
    );
    let (y, idx) = max_pool2d(&v, (2, 2), (2, 2), (1, 0)).unwrap();
    let (y2, idx2) = max_pool2d(&x, (2, 2), (2, 2), (1, 0)).unwrap();
    same(&y, &y2);
    assert_eq!(idx, idx2);
    same(
        &avg_pool2d(&v, (3, 3), (1, 1), (1, 1)).unwrap(),
        &avg_pool2d(&x, (3, 3), (1, 1), (1, 1)).unwrap(),
    );

    let cols = randn(im2col(&x, &g).unwrap().shape(), 52);
    let cols_t = Tensor::from_shared(
        cols.array()
            .clone()
            .permuted_axes(vec![0, 2, 1])
            .as_standard_layout()
            .into_owned()
            .into_shared()
            .permuted_axes(vec![0, 2, 1]),
    );
    assert!(!cols_t.is_contiguous());
    same(
        &col2im(&cols_t, x.shape(), &g).unwrap(),
        &col2im(&cols, x.shape(), &g).unwrap(),
    );
    let gy = transposed_view(&randn(y.shape(), 53));
    same(
        &max_pool2d_backward(&gy, &idx).unwrap(),
        &max_pool2d_backward(&gy.contiguous(), &idx).unwrap(),
    );
    let ya = avg_pool2d(&x, (3, 3), (1, 1), (1, 1)).unwrap();
    let gya = transposed_view(&randn(ya.shape(), 54));
    same(
        &avg_pool2d_backward(&gya, x.shape(), (3, 3), (1, 1), (1, 1)).unwrap(),
        &avg_pool2d_backward(&gya.contiguous(), x.shape(), (3, 3), (1, 1), (1, 1)).unwrap(),
    );
}

// ----- errors -----

fn assert_err(r: Result<impl Sized, TensorError>, op: &str, needle: &str) {
    match r {
        Ok(_) => panic!("{op}: expected an error containing {needle:?}"),
        Err(e) => {
            assert_eq!(e.op(), op, "{e}");
            assert!(
                e.to_string().contains(needle),
                "{e} should mention {needle:?}"
            );
        }
    }
}

/// Wrong ranks, mismatched channels and bad geometries are errors naming the op (im2col, col2im,
/// max_pool2d, ...) and the shapes.
#[test]
fn errors_name_the_op_and_the_shapes() {
    let g = Conv2dGeometry::with_kernel((3, 3));
    // wrong ranks
    assert_err(
        im2col(&Tensor::zeros(&[3, 5, 5]), &g),
        "im2col",
        "[3, 5, 5]",
    );
    assert_err(
        col2im(&Tensor::zeros(&[1, 9, 9]), &[5, 5], &g),
        "col2im",
        "4-D",
    );
    assert_err(
        max_pool2d(&Tensor::zeros(&[5, 5]), (2, 2), (2, 2), (0, 0)),
        "max_pool2d",
        "4-D",
    );
    assert_err(
        avg_pool2d(&Tensor::zeros(&[1, 1, 1, 5, 5]), (2, 2), (2, 2), (0, 0)),
        "avg_pool2d",
        "4-D",
    );
    assert_err(
        conv2d_naive(
            &Tensor::zeros(&[1, 1, 5, 5]),
            &Tensor::zeros(&[1, 9]),
            None,
            &g,
        ),
        "conv2d_naive",
        "weight",
    );
    // kernel larger than the padded input
    assert_err(
        im2col(&Tensor::zeros(&[1, 1, 2, 5]), &g),
        "im2col",
        "padded height 2",
    );
    assert_err(
        im2col(
            &Tensor::zeros(&[1, 1, 5, 5]),
            &geom((3, 3), (1, 1), (0, 0), (3, 1)),
        ),
        "im2col",
        "spans 7",
    );
    assert_err(
        max_pool2d(&Tensor::zeros(&[1, 1, 3, 3]), (4, 4), (1, 1), (0, 0)),
        "max_pool2d",
        "padded",
    );
    assert_err(
        avg_pool2d(&Tensor::zeros(&[1, 1, 3, 3]), (2, 4), (1, 1), (0, 0)),
        "avg_pool2d",
        "padded width 3",
    );
    // zero stride
    assert_err(
        im2col(
            &Tensor::zeros(&[1, 1, 5, 5]),
            &geom((3, 3), (0, 1), (0, 0), (1, 1)),
        ),
        "im2col",
        "stride",
    );
    assert_err(
        max_pool2d(&Tensor::zeros(&[1, 1, 4, 4]), (2, 2), (2, 0), (0, 0)),
        "max_pool2d",
        "stride",
    );
    assert_err(
        avg_pool2d_backward(
            &Tensor::zeros(&[1, 1, 2, 2]),
            &[1, 1, 4, 4],
            (2, 2),
            (0, 2),
            (0, 0),
        ),
        "avg_pool2d_backward",
        "stride",
    );
    // pooling padding larger than half the kernel
    assert_err(
        max_pool2d(&Tensor::zeros(&[1, 1, 4, 4]), (2, 2), (1, 1), (2, 0)),
        "max_pool2d",
        "half the kernel",
    );
    // gradient / column shape mismatches
    assert_err(
        col2im(&Tensor::zeros(&[1, 9, 8]), &[1, 1, 5, 5], &g),
        "col2im",
        "[1, 9, 9]",
    );
    let (_, idx) = max_pool2d(&Tensor::zeros(&[2, 3, 4, 4]), (2, 2), (2, 2), (0, 0)).unwrap();
    assert_err(
        max_pool2d_backward(&Tensor::zeros(&[2, 3, 2, 3]), &idx),
        "max_pool2d_backward",
        "[2, 3, 2, 2]",
    );
    assert_err(
        avg_pool2d_backward(
            &Tensor::zeros(&[2, 3, 3, 3]),
            &[2, 3, 4, 4],
            (2, 2),
            (2, 2),
            (0, 0),
        ),
        "avg_pool2d_backward",
        "[2, 3, 2, 2]",
    );
    // convolution reference: channel, kernel and bias mismatches
    let x = Tensor::zeros(&[1, 2, 5, 5]);
    assert_err(
        conv2d_naive(&x, &Tensor::zeros(&[4, 3, 3, 3]), None, &g),
        "conv2d_naive",
        "2 channels",
    );
    assert_err(
        conv2d_naive(&x, &Tensor::zeros(&[4, 2, 2, 2]), None, &g),
        "conv2d_naive",
        "kernel",
    );
    assert_err(
        conv2d_naive(
            &x,
            &Tensor::zeros(&[4, 2, 3, 3]),
            Some(&Tensor::zeros(&[3])),
            &g,
        ),
        "conv2d_naive",
        "bias",
    );
}

/// A batch of zero images (or zero channels) gives correctly shaped empty outputs instead of
/// failing.
#[test]
fn empty_batch_gives_empty_outputs() {
    let g = geom((3, 3), (1, 1), (1, 1), (1, 1));
    let cols = im2col(&Tensor::zeros(&[0, 3, 5, 5]), &g).unwrap();
    assert_eq!(cols.shape(), [0, 27, 25]);
    assert_eq!(
        col2im(&cols, &[0, 3, 5, 5], &g).unwrap().shape(),
        [0, 3, 5, 5]
    );
    let (y, idx) = max_pool2d(&Tensor::zeros(&[2, 0, 4, 4]), (2, 2), (2, 2), (0, 0)).unwrap();
    assert_eq!(y.shape(), [2, 0, 2, 2]);
    assert_eq!(max_pool2d_backward(&y, &idx).unwrap().shape(), [2, 0, 4, 4]);
}
