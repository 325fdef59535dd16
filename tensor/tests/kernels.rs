//! Grader tests of the fused kernels: softmax, log-softmax, layer norm, cross-entropy and the causal
//! attention softmax.
//!
//! Each kernel is checked against hand-computed values and against its composition from
//! primitives written here with plain f64 loops. Each backward kernel is checked against central
//! finite differences of `L = sum(forward(x) * w)`, both of the f64 reference composition (tight
//! tolerance) and of the f32 kernel itself (loose tolerance), with `grad_y = w`.

use tensor::causal_softmax::causal_softmax_backward;
use tensor::cross_entropy::{cross_entropy, cross_entropy_backward};
use tensor::layer_norm::{layer_norm, layer_norm_backward};
use tensor::softmax::{log_softmax_backward, softmax_backward};
use tensor::{Tensor, TensorRng};

// ----- helpers --------------------------------------------------------------------------------

fn randn(shape: &[usize], seed: u64) -> Tensor {
    TensorRng::new(seed).normal(shape, 0.0, 1.0).unwrap()
}

fn to_f64(t: &Tensor) -> Vec<f64> {
    t.to_vec().iter().map(|&v| v as f64).collect()
}

/// A transposed (non-contiguous) view holding the same values as `t` reversed-axes.
fn transposed(t: &Tensor) -> Tensor {
    Tensor::from_shared(t.array().clone().reversed_axes())
}

/// The same values as `t`, in a fresh contiguous buffer.
fn contiguous_copy(t: &Tensor) -> Tensor {
    Tensor::from_vec(t.to_vec(), t.shape()).unwrap()
}

#[track_caller]
fn assert_close(got: &[f32], want: &[f64], atol: f64, rtol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(
            err <= atol + rtol * w.abs(),
            "{what}: element {i}: got {g}, want {w} (error {err})"
        );
    }
}

/// Central differences of an f64 function.
fn numeric_grad(x: &[f64], h: f64, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut xs = x.to_vec();
    (0..x.len())
        .map(|i| {
            let orig = xs[i];
            xs[i] = orig + h;
            let up = f(&xs);
            xs[i] = orig - h;
            let down = f(&xs);
            xs[i] = orig;
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// Central differences of a function of f32 inputs, dividing by the step actually taken in f32.
fn numeric_grad_f32(x: &[f32], h: f32, f: impl Fn(&[f32]) -> f64) -> Vec<f64> {
    let mut xs = x.to_vec();
    (0..x.len())
        .map(|i| {
            let orig = xs[i];
            xs[i] = orig + h;
            let (hi, up) = (xs[i], f(&xs));
            xs[i] = orig - h;
            let (lo, down) = (xs[i], f(&xs));
            xs[i] = orig;
            (up - down) / (hi as f64 - lo as f64)
        })
        .collect()
}

fn weighted_sum(out: &[f32], w: &[f32]) -> f64 {
    out.iter().zip(w).map(|(&o, &w)| o as f64 * w as f64).sum()
}

fn weighted_sum64(out: &[f64], w: &[f32]) -> f64 {
    out.iter().zip(w).map(|(&o, &w)| o * w as f64).sum()
}

// ----- f64 references built from primitives -----------------------------------------------------

/// Split `shape` around `dim` into (outer, n, inner).
fn split(shape: &[usize], dim: usize) -> (usize, usize, usize) {
    let outer = shape[..dim].iter().product();
    let inner = shape[dim + 1..].iter().product();
    (outer, shape[dim], inner)
}

/// Textbook softmax / log-softmax along `dim`: exp, sum, divide (log: x - ln(sum exp)), with the
/// max subtracted first.
fn ref_softmax(x: &[f64], shape: &[usize], dim: usize, log: bool) -> Vec<f64> {
    let (outer, n, inner) = split(shape, dim);
    let mut y = vec![0.0; x.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| o * n * inner + k * inner + i;
            let mut m = f64::NEG_INFINITY;
            for k in 0..n {
                m = m.max(x[at(k)]);
            }
            let mut sum = 0.0;
            for k in 0..n {
                sum += (x[at(k)] - m).exp();
            }
            for k in 0..n {
                y[at(k)] = if log {
                    x[at(k)] - m - sum.ln()
                } else {
                    (x[at(k)] - m).exp() / sum
                };
            }
        }
    }
    y
}

/// Layer norm over rows of length `d`: mean, biased variance, normalize, affine.
fn ref_layer_norm(x: &[f64], d: usize, w: Option<&[f64]>, b: Option<&[f64]>, eps: f64) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for (row, out) in x.chunks(d).zip(y.chunks_mut(d)) {
        let mean = row.iter().sum::<f64>() / d as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d as f64;
        for i in 0..d {
            let xhat = (row[i] - mean) / (var + eps).sqrt();
            out[i] = xhat * w.map_or(1.0, |w| w[i]) + b.map_or(0.0, |b| b[i]);
        }
    }
    y
}

/// Mean over counted rows of `-sum_j q_j log softmax(x)_j`, `q = (1 - eps) onehot + eps / C`.
fn ref_cross_entropy(
    x: &[f64],
    c: usize,
    targets: &[usize],
    ignore: Option<usize>,
    eps: f64,
) -> f64 {
    let mut total = 0.0;
    let mut count = 0;
    for (row, &t) in x.chunks(c).zip(targets) {
        if Some(t) == ignore {
            continue;
        }
        let logp = ref_softmax(row, &[c], 0, true);
        for (j, lp) in logp.iter().enumerate() {
            let q = (1.0 - eps) * if j == t { 1.0 } else { 0.0 } + eps / c as f64;
            total -= q * lp;
        }
        count += 1;
    }
    if count == 0 {
        0.0
    } else {
        total / count as f64
    }
}

/// Masked fill with -inf where `j > i + (S - T)`, then softmax of `scale * x` along the last axis.
fn ref_causal_softmax(x: &[f64], shape: &[usize], scale: f64) -> Vec<f64> {
    let nd = shape.len();
    let (t, s) = (shape[nd - 2], shape[nd - 1]);
    let mut filled = x.to_vec();
    for (r, row) in filled.chunks_mut(s).enumerate() {
        let i = r % t;
        for (j, v) in row.iter_mut().enumerate() {
            *v = if j > i + (s - t) {
                f64::NEG_INFINITY
            } else {
                *v * scale
            };
        }
    }
    ref_softmax(&filled, shape, nd - 1, false)
}

// ----- softmax / log-softmax --------------------------------------------------------------------

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

// ----- layer norm -----------------------------------------------------------------------------

/// Layer norm of two small rows equals the hand-computed (x - mean) / sqrt(var + eps), and caches
/// the right mean and 1/std per row.
#[test]
fn layer_norm_hand_values() {
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 2.0, 2.0, 2.0, 2.0], &[2, 4]).unwrap();
    let (y, cache) = layer_norm(&x, None, None, 1e-5).unwrap();
    // Row 0: mean 2.5, biased variance 1.25.
    let r = 1.0 / (1.25f64 + 1e-5).sqrt();
    let want = [-1.5 * r, -0.5 * r, 0.5 * r, 1.5 * r, 0.0, 0.0, 0.0, 0.0];
    assert_close(&y.to_vec(), &want, 1e-6, 1e-6, "layer_norm");
    assert_close(&cache.mean.to_vec(), &[2.5, 2.0], 1e-7, 0.0, "mean");
    assert_close(
        &cache.rstd.to_vec(),
        &[r, 1.0 / 1e-5f64.sqrt()],
        0.0,
        1e-5,
        "rstd",
    );
    assert_eq!(cache.mean.shape(), &[2]);

    let w = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[4]).unwrap();
    let b = Tensor::from_vec(vec![0.5, 0.5, -1.0, 0.0], &[4]).unwrap();
    let (y, _) = layer_norm(&x, Some(&w), Some(&b), 1e-5).unwrap();
    let want = [
        -1.5 * r + 0.5,
        -r + 0.5,
        1.5 * r - 1.0,
        6.0 * r,
        0.5,
        0.5,
        -1.0,
        0.0,
    ];
    assert_close(&y.to_vec(), &want, 1e-6, 1e-6, "layer_norm affine");
}

/// Layer norm with weight and bias matches an f64 reference built from mean, biased variance, scale
/// and shift.
#[test]
fn layer_norm_matches_composition() {
    let shape = [3, 4, 37];
    let x = randn(&shape, 10).map(|v| 2.0 * v + 5.0);
    let w = randn(&[37], 11);
    let b = randn(&[37], 12);
    let (x64, w64, b64) = (to_f64(&x), to_f64(&w), to_f64(&b));
    let (y, cache) = layer_norm(&x, Some(&w), Some(&b), 1e-5).unwrap();
    assert_eq!(y.shape(), &shape);
    assert_eq!(cache.rstd.shape(), &[3, 4]);
    assert_close(
        &y.to_vec(),
        &ref_layer_norm(&x64, 37, Some(&w64), Some(&b64), 1e-5),
        1e-5,
        1e-5,
        "layer_norm",
    );
    let means: Vec<f64> = x64
        .chunks(37)
        .map(|r| r.iter().sum::<f64>() / 37.0)
        .collect();
    assert_close(&cache.mean.to_vec(), &means, 1e-5, 1e-6, "cached mean");
    let (y_plain, _) = layer_norm(&x, None, None, 1e-5).unwrap();
    assert_close(
        &y_plain.to_vec(),
        &ref_layer_norm(&x64, 37, None, None, 1e-5),
        1e-5,
        1e-5,
        "no affine",
    );
}

/// The fused layer-norm backward (dx, dweight, dbias) equals central finite differences of the f64
/// reference.
#[test]
fn layer_norm_backward_matches_finite_differences() {
    let (shape, d) = ([2, 3, 6], 6);
    let x = randn(&shape, 13);
    let w = randn(&[d], 14);
    let b = randn(&[d], 15);
    let gw = randn(&shape, 16).to_vec();
    let g = Tensor::from_vec(gw.clone(), &shape).unwrap();
    let eps = 1e-5;
    let (_, cache) = layer_norm(&x, Some(&w), Some(&b), eps).unwrap();
    let (dx, dw, db) = layer_norm_backward(&x, Some(&w), &cache, &g).unwrap();
    let (dw, db) = (dw.unwrap(), db.unwrap());
    assert_eq!(dw.shape(), &[d]);
    let (x64, w64, b64) = (to_f64(&x), to_f64(&w), to_f64(&b));
    let loss = |x: &[f64], w: &[f64], b: &[f64]| {
        weighted_sum64(&ref_layer_norm(x, d, Some(w), Some(b), eps as f64), &gw)
    };
    let nx = numeric_grad(&x64, 1e-5, |v| loss(v, &w64, &b64));
    let nw = numeric_grad(&w64, 1e-5, |v| loss(&x64, v, &b64));
    let nb = numeric_grad(&b64, 1e-5, |v| loss(&x64, &w64, v));
    assert_close(&dx.to_vec(), &nx, 1e-5, 1e-4, "dx vs f64 differences");
    assert_close(&dw.to_vec(), &nw, 1e-5, 1e-4, "dweight vs f64 differences");
    assert_close(&db.to_vec(), &nb, 1e-5, 1e-4, "dbias vs f64 differences");

    let kernel_loss = |xv: &[f32], wv: &[f32], bv: &[f32]| {
        let xt = Tensor::from_vec(xv.to_vec(), &shape).unwrap();
        let wt = Tensor::from_vec(wv.to_vec(), &[d]).unwrap();
        let bt = Tensor::from_vec(bv.to_vec(), &[d]).unwrap();
        weighted_sum(
            &layer_norm(&xt, Some(&wt), Some(&bt), eps)
                .unwrap()
                .0
                .to_vec(),
            &gw,
        )
    };
    let (xv, wv, bv) = (x.to_vec(), w.to_vec(), b.to_vec());
    let nx32 = numeric_grad_f32(&xv, 1e-2, |v| kernel_loss(v, &wv, &bv));
    let nw32 = numeric_grad_f32(&wv, 1e-2, |v| kernel_loss(&xv, v, &bv));
    assert_close(&dx.to_vec(), &nx32, 5e-3, 2e-2, "dx vs kernel differences");
    assert_close(
        &dw.to_vec(),
        &nw32,
        5e-3,
        2e-2,
        "dweight vs kernel differences",
    );
}

/// Without weight and bias, dx still matches finite differences and each row of dx sums to zero
/// (shifting a row changes nothing).
#[test]
fn layer_norm_backward_without_affine_matches_finite_differences() {
    let (shape, d) = ([4, 5], 5);
    let x = randn(&shape, 17).map(|v| 0.1 * v + 3.0);
    let gw = randn(&shape, 18).to_vec();
    let g = Tensor::from_vec(gw.clone(), &shape).unwrap();
    let (_, cache) = layer_norm(&x, None, None, 1e-5).unwrap();
    let (dx, dw, db) = layer_norm_backward(&x, None, &cache, &g).unwrap();
    assert!(dw.is_none());
    let nx = numeric_grad(&to_f64(&x), 1e-6, |v| {
        weighted_sum64(&ref_layer_norm(v, d, None, None, 1e-5), &gw)
    });
    assert_close(&dx.to_vec(), &nx, 1e-3, 1e-3, "dx without affine");
    // The rows of dx sum to zero: shifting a row does not change its output.
    for row in dx.to_vec().chunks(d) {
        assert!(row.iter().sum::<f32>().abs() < 1e-3);
    }
    // dbias is the column sum of grad_y whether or not there is a bias.
    let want: Vec<f64> = (0..d)
        .map(|i| (0..4).map(|r| gw[r * d + i] as f64).sum())
        .collect();
    assert_close(&db.unwrap().to_vec(), &want, 1e-6, 1e-6, "dbias");
}

/// On a tensor big enough for the threaded forward and blocked weight/bias reduction, forward and
/// backward match the f64 reference.
#[test]
fn layer_norm_large_tensor_matches_reference() {
    // 64 x 8 x 128 = 65,536 elements: threaded forward and blocked weight/bias reduction.
    let (shape, d) = ([64, 8, 128], 128);
    let x = randn(&shape, 19);
    let w = randn(&[d], 20);
    let g = randn(&shape, 21);
    let (y, cache) = layer_norm(&x, Some(&w), None, 1e-5).unwrap();
    let (x64, w64) = (to_f64(&x), to_f64(&w));
    assert_close(
        &y.to_vec(),
        &ref_layer_norm(&x64, d, Some(&w64), None, 1e-5),
        1e-5,
        1e-5,
        "forward",
    );
    let (dx, dw, db) = layer_norm_backward(&x, Some(&w), &cache, &g).unwrap();
    let g64 = to_f64(&g);
    let (m, r) = (to_f64(&cache.mean), to_f64(&cache.rstd));
    let mut want_dw = vec![0.0f64; d];
    let mut want_db = vec![0.0f64; d];
    for row in 0..64 * 8 {
        for i in 0..d {
            let k = row * d + i;
            want_dw[i] += g64[k] * (x64[k] - m[row]) * r[row];
            want_db[i] += g64[k];
        }
    }
    assert_close(&dw.unwrap().to_vec(), &want_dw, 1e-3, 1e-4, "dweight");
    assert_close(&db.unwrap().to_vec(), &want_db, 1e-3, 1e-4, "dbias");
    // The same dx row by row as a small (single-threaded) call.
    let row0 = Tensor::from_vec(x.to_vec()[..d].to_vec(), &[1, d]).unwrap();
    let g0 = Tensor::from_vec(g.to_vec()[..d].to_vec(), &[1, d]).unwrap();
    let (_, c0) = layer_norm(&row0, Some(&w), None, 1e-5).unwrap();
    let (dx0, _, _) = layer_norm_backward(&row0, Some(&w), &c0, &g0).unwrap();
    assert_eq!(&dx.to_vec()[..d], &dx0.to_vec()[..]);
}

/// A transposed input gives bit-identical layer-norm outputs, caches and gradients to its
/// contiguous copy.
#[test]
fn layer_norm_of_non_contiguous_input_equals_contiguous() {
    let x = transposed(&randn(&[7, 3, 2], 22));
    let c = contiguous_copy(&x);
    let w = randn(&[7], 23);
    let (y1, c1) = layer_norm(&x, Some(&w), None, 1e-5).unwrap();
    let (y2, c2) = layer_norm(&c, Some(&w), None, 1e-5).unwrap();
    assert!(y1 == y2 && c1.mean == c2.mean && c1.rstd == c2.rstd);
    let g = randn(&[2, 3, 7], 24);
    let (a, aw, _) = layer_norm_backward(&x, Some(&w), &c1, &g).unwrap();
    let (b, bw, _) = layer_norm_backward(&c, Some(&w), &c2, &g).unwrap();
    assert!(a == b && aw == bw);
}

/// A weight or bias of the wrong shape is an error naming layer_norm, the parameter and both
/// shapes.
#[test]
fn layer_norm_errors_name_the_op_and_shapes() {
    let x = Tensor::zeros(&[2, 6]);
    let bad = Tensor::ones(&[5]);
    let e = layer_norm(&x, Some(&bad), None, 1e-5).err().unwrap();
    assert_eq!(e.op(), "layer_norm");
    let msg = e.to_string();
    assert!(
        msg.contains("[2, 6]") && msg.contains("[5]") && msg.contains("weight"),
        "{msg}"
    );
    let e = layer_norm(&x, None, Some(&Tensor::ones(&[1, 6])), 1e-5)
        .err()
        .unwrap();
    assert!(e.to_string().contains("bias"), "{e}");
    assert_eq!(
        layer_norm(&Tensor::scalar(1.0), None, None, 1e-5)
            .err()
            .unwrap()
            .op(),
        "layer_norm"
    );
    assert!(layer_norm(&x, None, None, -1.0).is_err());

    let (_, cache) = layer_norm(&x, None, None, 1e-5).unwrap();
    let e = layer_norm_backward(&x, None, &cache, &Tensor::zeros(&[6, 2]))
        .err()
        .unwrap();
    assert_eq!(e.op(), "layer_norm_backward");
    assert!(e.to_string().contains("[6, 2]"), "{e}");
    let e = layer_norm_backward(&x, Some(&bad), &cache, &x)
        .err()
        .unwrap();
    assert_eq!(e.op(), "layer_norm_backward");
    let (_, other) = layer_norm(&Tensor::zeros(&[3, 6]), None, None, 1e-5).unwrap();
    let e = layer_norm_backward(&x, None, &other, &x).err().unwrap();
    assert!(e.to_string().contains("[3]"), "{e}");
}

// ----- cross-entropy --------------------------------------------------------------------------

/// Cross-entropy loss and its gradient (softmax minus one-hot, divided by the batch) equal
/// hand-computed values on two rows.
#[test]
fn cross_entropy_hand_values() {
    let logits = Tensor::from_vec(vec![1.0, 2.0, 3.0, 0.0, 0.0, 0.0], &[2, 3]).unwrap();
    let (loss, cache) = cross_entropy(&logits, &[2, 0], None, 0.0).unwrap();
    let want = (0.407_605_96 + 3f64.ln()) / 2.0;
    assert!(
        (loss as f64 - want).abs() < 1e-6,
        "loss {loss}, want {want}"
    );
    assert_eq!(cache.count, 2);
    let g = cross_entropy_backward(&cache, &[2, 0], None, 0.0, 1.0).unwrap();
    let third = 1.0 / 3.0;
    let want_g = [
        0.090_030_57 / 2.0,
        0.244_728_47 / 2.0,
        (0.665_240_96 - 1.0) / 2.0,
        (third - 1.0) / 2.0,
        third / 2.0,
        third / 2.0,
    ];
    assert_close(&g.to_vec(), &want_g, 1e-7, 1e-6, "grad");

    // Smoothing 0.3 on uniform logits: loss is ln 3 whatever the target.
    let (loss, _) = cross_entropy(&Tensor::zeros(&[1, 3]), &[1], None, 0.3).unwrap();
    assert!((loss as f64 - 3f64.ln()).abs() < 1e-6);
}

/// The fused cross-entropy matches an f64 log-softmax + NLL reference with ignored targets and
/// label smoothing, loss and gradient.
#[test]
fn cross_entropy_matches_composition_with_ignore_and_smoothing() {
    let (n, c) = (7, 11);
    let logits = randn(&[n, c], 25).map(|v| 3.0 * v);
    let targets = [3, 99, 0, 10, 99, 5, 5];
    let x64 = to_f64(&logits);
    for &(ignore, eps) in &[
        (None, 0.0),
        (Some(99), 0.0),
        (Some(99), 0.1),
        (Some(5), 0.25),
    ] {
        let t: Vec<usize> = targets
            .iter()
            .map(|&t| if Some(t) == ignore { t } else { t % c })
            .collect();
        let (loss, cache) = cross_entropy(&logits, &t, ignore, eps).unwrap();
        let want = ref_cross_entropy(&x64, c, &t, ignore, eps as f64);
        assert!(
            (loss as f64 - want).abs() < 1e-5 * want.abs().max(1.0),
            "loss {loss}, want {want}"
        );
        assert_eq!(
            cache.count,
            t.iter().filter(|&&v| Some(v) != ignore).count()
        );
    }
}

/// The fused cross-entropy gradient equals central finite differences of the f64 reference; ignored
/// rows get exactly zero gradient.
#[test]
fn cross_entropy_backward_matches_finite_differences() {
    let (n, c) = (5, 4);
    let logits = randn(&[n, c], 26).map(|v| 2.0 * v);
    let targets = [1, 7, 3, 0, 2];
    let (ignore, eps, grad_loss) = (Some(7), 0.15f32, 0.7f32);
    let (_, cache) = cross_entropy(&logits, &targets, ignore, eps).unwrap();
    let g = cross_entropy_backward(&cache, &targets, ignore, eps, grad_loss).unwrap();
    assert_eq!(g.shape(), &[n, c]);
    assert!(
        g.to_vec()[c..2 * c].iter().all(|&v| v == 0.0),
        "ignored row has zero gradient"
    );
    let num = numeric_grad(&to_f64(&logits), 1e-5, |v| {
        grad_loss as f64 * ref_cross_entropy(v, c, &targets, ignore, eps as f64)
    });
    assert_close(&g.to_vec(), &num, 1e-6, 1e-4, "grad vs f64 differences");
    let num32 = numeric_grad_f32(&logits.to_vec(), 1e-2, |v| {
        let t = Tensor::from_vec(v.to_vec(), &[n, c]).unwrap();
        grad_loss as f64 * cross_entropy(&t, &targets, ignore, eps).unwrap().0 as f64
    });
    assert_close(
        &g.to_vec(),
        &num32,
        1e-3,
        1e-2,
        "grad vs kernel differences",
    );
}

/// Logits of size 1e4 give a finite loss equal to the f64 reference and finite gradients whose rows
/// sum to zero.
#[test]
fn cross_entropy_with_huge_logits_is_finite_and_exact() {
    let (n, c) = (6, 9);
    let logits = randn(&[n, c], 27).map(|v| 1e4 * v);
    let targets = [0, 1, 2, 3, 4, 5];
    for eps in [0.0f32, 0.1] {
        let (loss, cache) = cross_entropy(&logits, &targets, None, eps).unwrap();
        assert!(loss.is_finite());
        let want = ref_cross_entropy(&to_f64(&logits), c, &targets, None, eps as f64);
        assert!(
            (loss as f64 - want).abs() <= 1e-5 * want.abs() + 1e-6,
            "loss {loss}, want {want}"
        );
        let g = cross_entropy_backward(&cache, &targets, None, eps, 1.0).unwrap();
        assert!(g.all_finite());
        // Each row of the gradient sums to zero (softmax and q both sum to one).
        for row in g.to_vec().chunks(c) {
            assert!(row.iter().sum::<f32>().abs() < 1e-6);
        }
    }
}

/// When every target is the ignore index, the loss is 0 and the gradient is all zeros (no division
/// by zero).
#[test]
fn cross_entropy_with_every_row_ignored_is_zero() {
    let logits = randn(&[3, 4], 28);
    let (loss, cache) = cross_entropy(&logits, &[9, 9, 9], Some(9), 0.1).unwrap();
    assert_eq!(loss, 0.0);
    assert_eq!(cache.count, 0);
    let g = cross_entropy_backward(&cache, &[9, 9, 9], Some(9), 0.1, 1.0).unwrap();
    assert!(g == Tensor::zeros(&[3, 4]));
}

/// A GPT-sized batch (1024 rows x 65 classes, the threaded path) gives the f64 reference loss and
/// softmax-minus-one-hot gradient.
#[test]
fn cross_entropy_large_batch_matches_reference() {
    // 1024 x 65 (a character-level GPT batch of 16 x 64): above the threading threshold.
    let (n, c) = (1024, 65);
    let logits = randn(&[n, c], 29).map(|v| 2.0 * v);
    let targets: Vec<usize> = (0..n).map(|i| (i * 7) % c).collect();
    let (loss, cache) = cross_entropy(&logits, &targets, None, 0.0).unwrap();
    let want = ref_cross_entropy(&to_f64(&logits), c, &targets, None, 0.0);
    assert!(
        (loss as f64 - want).abs() < 1e-5 * want,
        "loss {loss}, want {want}"
    );
    let g = cross_entropy_backward(&cache, &targets, None, 0.0, 1.0).unwrap();
    let p = ref_softmax(&to_f64(&logits), &[n, c], 1, false);
    let want_g: Vec<f64> = (0..n * c)
        .map(|k| (p[k] - if k % c == targets[k / c] { 1.0 } else { 0.0 }) / n as f64)
        .collect();
    assert_close(&g.to_vec(), &want_g, 1e-9, 1e-5, "grad");
}

/// Transposed logits give exactly the same loss and cached probabilities as their contiguous copy.
#[test]
fn cross_entropy_of_non_contiguous_logits_equals_contiguous() {
    let logits = transposed(&randn(&[5, 3], 30));
    let c = contiguous_copy(&logits);
    let t = [4, 0, 2];
    let (a, ca) = cross_entropy(&logits, &t, None, 0.1).unwrap();
    let (b, cb) = cross_entropy(&c, &t, None, 0.1).unwrap();
    assert_eq!(a, b);
    assert!(ca.probs == cb.probs);
}

/// An out-of-range target is an error naming the row, the value and the class count; wrong target
/// counts or ranks are errors too.
#[test]
fn cross_entropy_errors_name_row_value_and_classes() {
    let logits = Tensor::zeros(&[3, 5]);
    let e = cross_entropy(&logits, &[0, 7, 1], None, 0.0).err().unwrap();
    assert_eq!(e.op(), "cross_entropy");
    let msg = e.to_string();
    assert!(
        msg.contains("row 1")
            && msg.contains("7")
            && msg.contains("5 classes")
            && msg.contains("[3, 5]"),
        "{msg}"
    );
    let e = cross_entropy(&logits, &[0, 1], None, 0.0).err().unwrap();
    assert!(e.to_string().contains("2 targets for 3 rows"), "{e}");
    let e = cross_entropy(&Tensor::zeros(&[2, 3, 5]), &[0, 1], None, 0.0)
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("2-D") && e.to_string().contains("[2, 3, 5]"),
        "{e}"
    );
    assert!(cross_entropy(&logits, &[0, 1, 2], None, 1.5).is_err());
    assert!(cross_entropy(&logits, &[0, 1, 2], None, f32::NAN).is_err());
    let (_, cache) = cross_entropy(&logits, &[0, 1, 2], None, 0.0).unwrap();
    let e = cross_entropy_backward(&cache, &[0, 1, 5], None, 0.0, 1.0).unwrap_err();
    assert_eq!(e.op(), "cross_entropy_backward");
    assert!(e.to_string().contains("row 2"), "{e}");
}

// ----- causal softmax -------------------------------------------------------------------------

/// Causal softmax of small score matrices equals hand-computed values, including queries that are
/// the last positions of a longer key sequence (KV cache).
#[test]
fn causal_softmax_hand_values() {
    let y = Tensor::zeros(&[2, 2]).causal_softmax(1.0).unwrap();
    assert_eq!(y.to_vec(), vec![1.0, 0.0, 0.5, 0.5]);
    // Two queries that are the last two of three positions (KV cache): row 0 sees keys 0..=1.
    let x = Tensor::from_vec(vec![0.0, 2.0, 5.0, 1.0, 2.0, 3.0], &[2, 3]).unwrap();
    let y = x.causal_softmax(0.5).unwrap().to_vec();
    let (a, b) = (1.0f64, 1f64.exp());
    assert_close(
        &y[..3],
        &[a / (a + b), b / (a + b), 0.0],
        1e-7,
        1e-6,
        "row 0",
    );
    assert_eq!(y[2], 0.0);
    let (e1, e2, e3) = (0.5f64.exp(), 1f64.exp(), 1.5f64.exp());
    let s = e1 + e2 + e3;
    assert_close(&y[3..], &[e1 / s, e2 / s, e3 / s], 1e-7, 1e-6, "row 1");
}

/// Causal softmax matches the f64 composition "scale, fill future positions with -inf, softmax",
/// and future positions are exactly 0.
#[test]
fn causal_softmax_matches_masked_fill_composition() {
    for shape in [[2, 3, 5, 5], [2, 3, 4, 9], [1, 2, 1, 7]] {
        let x = randn(&shape, 31).map(|v| 3.0 * v);
        let scale = 0.35;
        let y = x.causal_softmax(scale).unwrap();
        assert_close(
            &y.to_vec(),
            &ref_causal_softmax(&to_f64(&x), &shape, scale as f64),
            1e-7,
            2e-6,
            "causal",
        );
        let (t, s) = (shape[2], shape[3]);
        for (r, row) in y.to_vec().chunks(s).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                if j > r % t + (s - t) {
                    assert_eq!(v, 0.0, "masked entry must be exactly 0");
                }
            }
        }
    }
}

/// NaNs placed in the masked (future) scores do not change the output: the kernel never reads them.
#[test]
fn causal_softmax_never_reads_masked_scores() {
    let shape = [3, 4, 4];
    let x = randn(&shape, 32);
    let mut poisoned = x.to_vec();
    for (r, row) in poisoned.chunks_mut(4).enumerate() {
        for v in row.iter_mut().skip(r % 4 + 1) {
            *v = f32::NAN;
        }
    }
    let p = Tensor::from_vec(poisoned, &shape).unwrap();
    assert!(p.causal_softmax(0.5).unwrap() == x.causal_softmax(0.5).unwrap());
}

/// The causal-softmax backward equals finite differences of both the f64 reference and the f32
/// kernel itself.
#[test]
fn causal_softmax_backward_matches_finite_differences() {
    let shape = [2, 3, 5];
    let x = randn(&shape, 33);
    let w = randn(&shape, 34).to_vec();
    let wt = Tensor::from_vec(w.clone(), &shape).unwrap();
    let scale = 0.7f32;
    let y = x.causal_softmax(scale).unwrap();
    let dx = causal_softmax_backward(&y, &wt, scale).unwrap().to_vec();
    let num = numeric_grad(&to_f64(&x), 1e-5, |v| {
        weighted_sum64(&ref_causal_softmax(v, &shape, scale as f64), &w)
    });
    assert_close(&dx, &num, 1e-6, 1e-4, "causal backward vs f64 differences");
    let num32 = numeric_grad_f32(&x.to_vec(), 1e-2, |v| {
        let t = Tensor::from_vec(v.to_vec(), &shape).unwrap();
        weighted_sum(&t.causal_softmax(scale).unwrap().to_vec(), &w)
    });
    assert_close(
        &dx,
        &num32,
        1e-3,
        1e-2,
        "causal backward vs kernel differences",
    );
    // Masked positions get exactly zero gradient.
    for (r, row) in dx.chunks(5).enumerate() {
        assert!(row[r % 3 + 3..].iter().all(|&v| v == 0.0));
    }
}

/// On the GPT benchmark shape (threaded path) causal softmax and its backward match the f64
/// reference.
#[test]
fn causal_softmax_large_tensor_matches_reference() {
    // 12 x 4 x 64 x 64 = 196,608 elements, the GPT benchmark shape: threaded path.
    let shape = [12, 4, 64, 64];
    let x = randn(&shape, 35);
    let scale = 0.125;
    let y = x.causal_softmax(scale).unwrap();
    assert_close(
        &y.to_vec(),
        &ref_causal_softmax(&to_f64(&x), &shape, scale as f64),
        1e-7,
        2e-6,
        "big causal",
    );
    let g = randn(&shape, 36);
    let dx = causal_softmax_backward(&y, &g, scale).unwrap().to_vec();
    let (yv, gv) = (y.to_vec(), g.to_vec());
    let mut want = vec![0.0f64; yv.len()];
    for (r, (yr, gr)) in yv.chunks(64).zip(gv.chunks(64)).enumerate() {
        let allowed = r % 64 + 1;
        let dot: f64 = (0..allowed).map(|j| yr[j] as f64 * gr[j] as f64).sum();
        for j in 0..allowed {
            want[r * 64 + j] = scale as f64 * yr[j] as f64 * (gr[j] as f64 - dot);
        }
    }
    assert_close(&dx, &want, 1e-7, 1e-4, "big causal backward");
}

/// Transposed scores and gradients give bit-identical causal softmax forward and backward to
/// contiguous copies.
#[test]
fn causal_softmax_of_non_contiguous_input_equals_contiguous() {
    let x = transposed(&randn(&[6, 4, 3], 37)); // shape [3, 4, 6]: T = 4, S = 6
    let c = contiguous_copy(&x);
    assert!(x.causal_softmax(0.5).unwrap() == c.causal_softmax(0.5).unwrap());
    let y = c.causal_softmax(0.5).unwrap();
    let g = transposed(&randn(&[6, 4, 3], 38));
    let gc = contiguous_copy(&g);
    assert!(
        causal_softmax_backward(&y, &g, 0.5).unwrap()
            == causal_softmax_backward(&y, &gc, 0.5).unwrap()
    );
}

/// More queries than keys, a 1-d input, a NaN scale or mismatched backward shapes are errors naming
/// causal_softmax and the shapes.
#[test]
fn causal_softmax_errors_name_the_op_and_shapes() {
    let e = Tensor::zeros(&[2, 5, 3]).causal_softmax(1.0).unwrap_err();
    assert_eq!(e.op(), "causal_softmax");
    let msg = e.to_string();
    assert!(
        msg.contains("[2, 5, 3]") && msg.contains("T = 5") && msg.contains("S = 3"),
        "{msg}"
    );
    assert_eq!(
        Tensor::zeros(&[4]).causal_softmax(1.0).unwrap_err().op(),
        "causal_softmax"
    );
    assert!(Tensor::zeros(&[2, 2]).causal_softmax(f32::NAN).is_err());
    let y = Tensor::zeros(&[2, 3]);
    let e = causal_softmax_backward(&y, &Tensor::zeros(&[3, 2]), 1.0).unwrap_err();
    assert_eq!(e.op(), "causal_softmax_backward");
    assert!(e.to_string().contains("[3, 2]"), "{e}");
    assert!(
        Tensor::zeros(&[2, 0, 4])
            .causal_softmax(1.0)
            .unwrap()
            .shape()
            == [2, 0, 4]
    );
}

// ----- determinism ----------------------------------------------------------------------------

/// Every kernel on big inputs (threaded when the pool has 2+ threads), returned as flat vectors.
fn all_kernels_big() -> Vec<Vec<f32>> {
    let x = randn(&[16, 64, 128], 40);
    let g = randn(&[16, 64, 128], 41);
    let w = randn(&[128], 42);
    let s = randn(&[4, 4, 64, 64], 43);
    let gs = randn(&[4, 4, 64, 64], 44);
    let y = x.softmax(-1).unwrap();
    let (ln, cache) = layer_norm(&x, Some(&w), None, 1e-5).unwrap();
    let (dx, dw, db) = layer_norm_backward(&x, Some(&w), &cache, &g).unwrap();
    let logits = Tensor::from_vec(x.to_vec(), &[1024, 128]).unwrap();
    let targets: Vec<usize> = (0..1024).map(|i| (i * 31) % 128).collect();
    let (loss, ce) = cross_entropy(&logits, &targets, Some(5), 0.1).unwrap();
    let dl = cross_entropy_backward(&ce, &targets, Some(5), 0.1, 1.0).unwrap();
    let cy = s.causal_softmax(0.125).unwrap();
    vec![
        y.to_vec(),
        softmax_backward(&y, &g, -1).unwrap().to_vec(),
        x.log_softmax(-1).unwrap().to_vec(),
        ln.to_vec(),
        dx.to_vec(),
        dw.unwrap().to_vec(),
        db.unwrap().to_vec(),
        vec![loss],
        dl.to_vec(),
        cy.to_vec(),
        causal_softmax_backward(&cy, &gs, 0.125).unwrap().to_vec(),
    ]
}

/// Every fused kernel gives bit-identical results on 1 thread and on 3 threads (the parallel split
/// does not change the arithmetic).
#[test]
fn results_do_not_depend_on_the_thread_count() {
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(all_kernels_big);
    let three = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap()
        .install(all_kernels_big);
    for (k, (a, b)) in one.iter().zip(&three).enumerate() {
        assert!(a == b, "kernel output {k} differs between 1 and 3 threads");
    }
}
