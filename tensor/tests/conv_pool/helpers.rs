//! Helpers of the convolution and pooling tests: small tensors, geometries, f64 dot products,
//! comparisons, and convolution as im2col followed by a matmul.

use tensor::conv::{im2col, Conv2dGeometry};
use tensor::Tensor;

pub fn t(values: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(values.to_vec(), shape).unwrap()
}

pub fn seq(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    t(&(1..=n).map(|v| v as f32).collect::<Vec<_>>(), shape)
}

pub fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::rand_normal(shape, 0.0, 1.0, seed).unwrap()
}

pub fn geom(
    k: (usize, usize),
    s: (usize, usize),
    p: (usize, usize),
    d: (usize, usize),
) -> Conv2dGeometry {
    Conv2dGeometry::new(k, s, p, d)
}

pub fn dot64(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.to_vec()
        .iter()
        .zip(b.to_vec())
        .map(|(&x, y)| x as f64 * y as f64)
        .sum()
}

/// Exactly equal shapes and values.
pub fn same(got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape(), want.shape());
    assert_eq!(got.to_vec(), want.to_vec());
}

pub fn assert_close(got: &Tensor, want: &Tensor, tol: f32, what: &str) {
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
pub fn conv_via_im2col(
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
