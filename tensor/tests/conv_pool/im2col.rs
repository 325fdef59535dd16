//! im2col and col2im by hand, convolution as im2col + matmul against the direct loops, and col2im
//! as the adjoint of im2col.

use crate::helpers::{assert_close, conv_via_im2col, dot64, geom, randn, seq, t};
use tensor::conv::{col2im, conv2d_naive, im2col, Conv2dGeometry};
use tensor::Tensor;

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
