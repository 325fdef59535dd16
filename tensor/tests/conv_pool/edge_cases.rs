//! Strided (non-contiguous) inputs, errors that name the op and the shapes, and empty batches.

use crate::helpers::{geom, randn, same};
use tensor::conv::{col2im, conv2d_naive, im2col, Conv2dGeometry};
use tensor::pool::{avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward};
use tensor::{Tensor, TensorError};

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
