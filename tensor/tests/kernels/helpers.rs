//! Helpers of the kernel tests: seeded inputs, strided views, finite differences and the f64
//! reference kernels built from primitives.

use tensor::{Tensor, TensorRng};

pub fn randn(shape: &[usize], seed: u64) -> Tensor {
    TensorRng::new(seed).normal(shape, 0.0, 1.0).unwrap()
}

pub fn to_f64(t: &Tensor) -> Vec<f64> {
    t.to_vec().iter().map(|&v| v as f64).collect()
}

/// A transposed (non-contiguous) view holding the same values as `t` reversed-axes.
pub fn transposed(t: &Tensor) -> Tensor {
    Tensor::from_shared(t.array().clone().reversed_axes())
}

/// The same values as `t`, in a fresh contiguous buffer.
pub fn contiguous_copy(t: &Tensor) -> Tensor {
    Tensor::from_vec(t.to_vec(), t.shape()).unwrap()
}

#[track_caller]
pub fn assert_close(got: &[f32], want: &[f64], atol: f64, rtol: f64, what: &str) {
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
pub fn numeric_grad(x: &[f64], h: f64, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
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
pub fn numeric_grad_f32(x: &[f32], h: f32, f: impl Fn(&[f32]) -> f64) -> Vec<f64> {
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

pub fn weighted_sum(out: &[f32], w: &[f32]) -> f64 {
    out.iter().zip(w).map(|(&o, &w)| o as f64 * w as f64).sum()
}

pub fn weighted_sum64(out: &[f64], w: &[f32]) -> f64 {
    out.iter().zip(w).map(|(&o, &w)| o * w as f64).sum()
}

// ----- f64 references built from primitives -----------------------------------------------------

/// Split `shape` around `dim` into (outer, n, inner).
pub fn split(shape: &[usize], dim: usize) -> (usize, usize, usize) {
    let outer = shape[..dim].iter().product();
    let inner = shape[dim + 1..].iter().product();
    (outer, shape[dim], inner)
}

/// Textbook softmax / log-softmax along `dim`: exp, sum, divide (log: x - ln(sum exp)), with the
/// max subtracted first.
pub fn ref_softmax(x: &[f64], shape: &[usize], dim: usize, log: bool) -> Vec<f64> {
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
pub fn ref_layer_norm(
    x: &[f64],
    d: usize,
    w: Option<&[f64]>,
    b: Option<&[f64]>,
    eps: f64,
) -> Vec<f64> {
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
pub fn ref_cross_entropy(
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
pub fn ref_causal_softmax(x: &[f64], shape: &[usize], scale: f64) -> Vec<f64> {
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
