//! GELU and its derivative over whole tensors, fast: one polynomial in `x^2` each where that is
//! accurate, the exact erfc form of [`crate::activation`] in the far left tail.
//!
//! Why: the exact form ([`gelu_scalar`], [`gelu_grad_scalar`]) costs a division, a degree-9
//! polynomial and an `exp` per element (two `exp` in the derivative). That made GELU
//! compute-bound: on a 4096 x 1024 tensor (one GPT MLP layer of the 4.8M-parameter preset) the
//! forward took six times as long as ReLU, the backward three times as long as ReLU's.
//!
//! How: both functions are even polynomials around their linear part,
//!
//! ```text
//! GELU(x)  = x * Phi(x)           = x * (0.5 + x * H(x^2))
//! GELU'(x) = Phi(x) + x * phi(x)  = 0.5 + x * K(x^2)
//! ```
//!
//! with `H` and `K` smooth, so one polynomial in `u = x^2` covers both signs. They are fitted on
//! `|x| <= 6` (`tensor/scripts/fit_gelu.py`, which prints the coefficients below and their worst
//! error: 8.4e-8 for `x * H`, 1.75e-7 for `x * K`, evaluated in `f32` as here); above 6 the
//! input is clamped (`Phi(6) = 1 - 1e-9`). Far left, that absolute error becomes large next to
//! `Phi(x)` itself (`Phi(-4) = 3.2e-5`, `Phi(-5) = 2.9e-7`), so below `x = -4` the exact form
//! keeps the tail's relative precision (between -4 and -3 the polynomial's relative error is
//! up to 0.3%, 3e-7 absolute on GELU). Each block of `BLOCK` (64) elements runs the polynomial on
//! every lane and re-does only its left-tail lanes (and NaN) exactly: per element the result
//! is [`gelu_value`] / [`gelu_grad_value`], whatever its neighbours.
//!
//! Measured (4096 x 1024, Zen 4, 2 threads, best of 30): forward 1.49 -> 0.90-0.97 ms,
//! backward 2.07 -> 1.19-1.28 ms at AVX-512 (runs at 17:00 and 19:00 UTC, 2026-12-07);
//! 1.56-1.59 and 1.72-1.75 ms capped to AVX2; ReLU's forward took 0.25-0.48 ms in those runs.
//! A left tail from -3 instead of -4 cost 5-7% (forward) and 6-8% (backward) on normal inputs
//! (one thread, three runs each), the exact form redone in more blocks. Where the tensors do
//! not fit in the cache (a 4.8M-parameter GPT's MLP), the pass is bound by memory traffic
//! instead, and the fused [`crate::tensor::Tensor::bias_gelu`] saves a pass.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::activation::{gelu_grad_scalar, gelu_scalar};
use crate::simd::{parallel, simd_level, with_simd_at};

/// Above this, the input is clamped (both polynomials were fitted on `|x| <= R`).
const R: f32 = 6.0;

/// Below this (and for NaN), the exact erfc form is used.
const LEFT_TAIL: f32 = -4.0;

/// Elements evaluated together (four AVX-512 vectors, eight AVX2 ones) and checked for
/// left-tail lanes at a time.
const BLOCK: usize = 64;

/// A block with left-tail lanes re-does the exact form in groups of this many elements (one
/// AVX-512 vector), only those that have such lanes.
const GROUP: usize = 16;

/// `H(u)` as a polynomial in `t = 2 u / R^2 - 1`, lowest degree first (`fit_gelu.py`).
const H: [f32; 17] = [
    0.11784853,
    -0.05889957,
    0.0440638,
    -0.036391288,
    0.031095685,
    -0.02658614,
    0.022355039,
    -0.01851156,
    0.0143600525,
    -0.009437311,
    0.006682956,
    -0.0066190716,
    0.00397898,
    5.252541e-05,
    7.309157e-05,
    -0.0014120551,
    0.00067967555,
];

/// `K(u)` in the same variable.
const K: [f32; 19] = [
    0.11789776,
    -0.059342854,
    0.046058152,
    -0.04236323,
    0.044542845,
    -0.050971802,
    0.05883603,
    -0.064068116,
    0.06607764,
    -0.0666328,
    0.05689679,
    -0.034548312,
    0.02694339,
    -0.03503215,
    0.020738743,
    0.0028887182,
    -0.0007818705,
    -0.007205055,
    0.0033994662,
];

/// `c[0] + c[1] t + c[2] t^2 + ...` by Horner's rule, one fused multiply-add per coefficient.
#[inline(always)]
fn horner<const N: usize>(c: &[f32; N], t: f32) -> f32 {
    let mut acc = c[N - 1];
    for i in (0..N - 1).rev() {
        acc = acc.mul_add(t, c[i]);
    }
    acc
}

/// `(x, t)`: `x` clamped to at most `R`, and the polynomials' variable `t = 2 x^2 / R^2 - 1`.
#[inline(always)]
fn clamped(x: f32) -> (f32, f32) {
    let xc = if x > R { R } else { x };
    (xc, (xc * xc).mul_add(2.0 / (R * R), -1.0))
}

/// GELU by the polynomial (accurate from `LEFT_TAIL` up).
#[inline(always)]
fn gelu_poly(x: f32) -> f32 {
    let (xc, t) = clamped(x);
    x * xc.mul_add(horner(&H, t), 0.5)
}

/// GELU's derivative by the polynomial (accurate from `LEFT_TAIL` up).
#[inline(always)]
fn gelu_grad_poly(x: f32) -> f32 {
    let (xc, t) = clamped(x);
    xc.mul_add(horner(&K, t), 0.5)
}

/// Whether `x` takes the exact form: the left tail, and NaN.
#[inline(always)]
fn exact_lane(x: f32) -> bool {
    x.is_nan() || x < LEFT_TAIL
}

/// GELU of one value as the tensor kernels compute it: within 1e-7 of the exact `x * Phi(x)`
/// (relative above 1, absolute below), exact form in the left tail.
#[inline(always)]
pub fn gelu_value(x: f32) -> f32 {
    if exact_lane(x) {
        gelu_scalar(x)
    } else {
        gelu_poly(x)
    }
}

/// GELU's derivative of one value as the tensor kernels compute it.
#[inline(always)]
pub fn gelu_grad_value(x: f32) -> f32 {
    if exact_lane(x) {
        gelu_grad_scalar(x)
    } else {
        gelu_grad_poly(x)
    }
}

/// Whether any element of a block takes the exact form (a branch-free OR, so it vectorizes).
#[inline(always)]
fn any_exact(x: &[f32]) -> bool {
    let mut any = false;
    for &v in x {
        any |= exact_lane(v);
    }
    any
}

/// `P(t)` for a whole block of lanes, coefficient by coefficient: `BLOCK / 16` independent
/// Horner chains per AVX-512 step. (One vector at a time, each chain's 17-19 dependent
/// multiply-adds outlast what the CPU can overlap: on one thread, 4096 x 1024, Zen 4 AVX-512,
/// the forward took 3.36 ms that way against 2.65 in blocks of 64.)
#[inline(always)]
fn horner_block<const N: usize>(c: &[f32; N], t: &[f32; BLOCK]) -> [f32; BLOCK] {
    let mut acc = [c[N - 1]; BLOCK];
    for i in (0..N - 1).rev() {
        for (a, &t) in acc.iter_mut().zip(t) {
            *a = a.mul_add(t, c[i]);
        }
    }
    acc
}

/// `(x clamped, t)` of every lane of a block.
#[inline(always)]
fn clamped_block(x: &[f32; BLOCK]) -> ([f32; BLOCK], [f32; BLOCK]) {
    let (mut xc, mut t) = ([0.0; BLOCK], [0.0; BLOCK]);
    for ((xc, t), &v) in xc.iter_mut().zip(&mut t).zip(x) {
        (*xc, *t) = clamped(v);
    }
    (xc, t)
}

/// Lane `l` of `out` replaced by `exact(v[l])` where `v[l]` is in the left tail (or NaN), for
/// the [`GROUP`]s that have such lanes.
#[inline(always)]
fn redo_left_tail(v: &[f32; BLOCK], out: &mut [f32; BLOCK], exact: impl Fn(f32) -> f32) {
    if !any_exact(v) {
        return;
    }
    for (o, v) in out.chunks_mut(GROUP).zip(v.chunks(GROUP)) {
        if any_exact(v) {
            for (o, &v) in o.iter_mut().zip(v) {
                if exact_lane(v) {
                    *o = exact(v);
                }
            }
        }
    }
}

/// GELU of a block of pre-activations ([`gelu_value`] per lane).
#[inline(always)]
fn gelu_block(v: &[f32; BLOCK]) -> [f32; BLOCK] {
    let (xc, t) = clamped_block(v);
    let mut y = horner_block(&H, &t);
    for ((y, &v), &xc) in y.iter_mut().zip(v).zip(&xc) {
        *y = v * xc.mul_add(*y, 0.5);
    }
    redo_left_tail(v, &mut y, gelu_scalar);
    y
}

/// GELU's derivative on a block of pre-activations ([`gelu_grad_value`] per lane).
#[inline(always)]
fn gelu_grad_block(v: &[f32; BLOCK]) -> [f32; BLOCK] {
    let (xc, t) = clamped_block(v);
    let mut d = horner_block(&K, &t);
    for (d, &xc) in d.iter_mut().zip(&xc) {
        *d = xc.mul_add(*d, 0.5);
    }
    redo_left_tail(v, &mut d, gelu_grad_scalar);
    d
}

/// A block of pre-activations: `x[l]`, plus `b[l]` with a bias.
#[inline(always)]
fn pre_activation(x: &[f32], b: Option<&[f32]>) -> [f32; BLOCK] {
    let mut v: [f32; BLOCK] = x.try_into().expect("a whole block");
    if let Some(b) = b {
        for (v, &b) in v.iter_mut().zip(b) {
            *v += b;
        }
    }
    v
}

/// `dst[i] = GELU(x[i] (+ b[i]))` ([`gelu_value`] per element); `b`, when given, is as long as
/// `x` (a row and the bias).
#[inline(always)]
pub(crate) fn gelu_into(dst: &mut [MaybeUninit<f32>], x: &[f32], b: Option<&[f32]>) {
    let whole = x.len() / BLOCK * BLOCK;
    for (at, d) in (0..whole).step_by(BLOCK).zip(dst.chunks_exact_mut(BLOCK)) {
        let v = pre_activation(&x[at..at + BLOCK], b.map(|b| &b[at..at + BLOCK]));
        for (d, &y) in d.iter_mut().zip(&gelu_block(&v)) {
            d.write(y);
        }
    }
    for i in whole..x.len() {
        let v = b.map_or(x[i], |b| x[i] + b[i]);
        dst[i].write(gelu_value(v));
    }
}

/// `dst[i] = g[i] * GELU'(x[i] (+ b[i]))` ([`gelu_grad_value`] per element): GELU's backward.
/// With `db`, also adds each `dst[i]` into `db[i]` (the bias gradient of a row).
#[inline(always)]
pub(crate) fn gelu_backward_into(
    dst: &mut [MaybeUninit<f32>],
    x: &[f32],
    b: Option<&[f32]>,
    g: &[f32],
    mut db: Option<&mut [f32]>,
) {
    let whole = x.len() / BLOCK * BLOCK;
    for (at, d) in (0..whole).step_by(BLOCK).zip(dst.chunks_exact_mut(BLOCK)) {
        let v = pre_activation(&x[at..at + BLOCK], b.map(|b| &b[at..at + BLOCK]));
        let mut dx = gelu_grad_block(&v);
        for (dx, &g) in dx.iter_mut().zip(&g[at..at + BLOCK]) {
            *dx *= g;
        }
        for (d, &dx) in d.iter_mut().zip(&dx) {
            d.write(dx);
        }
        if let Some(db) = db.as_deref_mut() {
            for (s, &dx) in db[at..at + BLOCK].iter_mut().zip(&dx) {
                *s += dx;
            }
        }
    }
    for i in whole..x.len() {
        let v = b.map_or(x[i], |b| x[i] + b[i]);
        let dx = g[i] * gelu_grad_value(v);
        dst[i].write(dx);
        if let Some(db) = db.as_deref_mut() {
            db[i] += dx;
        }
    }
}

/// Elements per thread task of the bias backward (whole rows, at least one): a fixed split, so
/// the bias gradient's partial sums, and so its rounding, do not depend on the thread count.
const TASK_ELEMS: usize = 1 << 14;

/// `GELU(x + b)` of a contiguous `rows x n` block, `b` of length `n` added to every row.
pub(crate) fn bias_gelu_rows(x: &[f32], b: &[f32]) -> Vec<f32> {
    crate::elementwise::map_chunks_of(
        x,
        b.len(),
        #[inline(always)]
        |dst, x| {
            for (d, x) in dst.chunks_exact_mut(b.len()).zip(x.chunks_exact(b.len())) {
                gelu_into(d, x, Some(b));
            }
        },
    )
}

/// The backward of [`bias_gelu_rows`] from the upstream gradient `g`: `(dx, db)` with
/// `dx = g * GELU'(x + b)` and `db` the column sums of `dx`, summed in the same pass (per task
/// of whole rows, then the tasks' sums in order).
pub(crate) fn bias_gelu_backward_rows(x: &[f32], b: &[f32], g: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let n = b.len();
    assert!(
        n > 0 && x.len().is_multiple_of(n) && g.len() == x.len(),
        "whole rows, equal lengths"
    );
    let mut dx = Vec::with_capacity(x.len());
    let dst = &mut dx.spare_capacity_mut()[..x.len()];
    let level = simd_level();
    let task = |dst: &mut [MaybeUninit<f32>], x: &[f32], g: &[f32]| -> Vec<f32> {
        let mut db = vec![0.0f32; n];
        with_simd_at(
            level,
            #[inline(always)]
            || {
                let rows = dst
                    .chunks_exact_mut(n)
                    .zip(x.chunks_exact(n))
                    .zip(g.chunks_exact(n));
                for ((d, x), g) in rows {
                    gelu_backward_into(d, x, Some(b), g, Some(&mut db));
                }
            },
        );
        db
    };
    let span = (TASK_ELEMS / n).max(1) * n;
    let partials: Vec<Vec<f32>> = if parallel(x.len()) {
        dst.par_chunks_mut(span)
            .zip(x.par_chunks(span))
            .zip(g.par_chunks(span))
            .map(|((d, x), g)| task(d, x, g))
            .collect()
    } else {
        dst.chunks_mut(span)
            .zip(x.chunks(span))
            .zip(g.chunks(span))
            .map(|((d, x), g)| task(d, x, g))
            .collect()
    };
    // SAFETY: `gelu_backward_into` wrote every element of every row.
    unsafe { dx.set_len(x.len()) };
    let mut db = vec![0.0f32; n];
    for p in &partials {
        for (s, &v) in db.iter_mut().zip(p) {
            *s += v;
        }
    }
    (dx, db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::tests::worst_gelu_errors;

    /// Fails if a coefficient is mistyped or the clamp is wrong: the polynomial path stays within
    /// 2.5e-7 of the f64 reference (absolute below 1, relative above) from the left tail up,
    /// including past the clamp.
    #[test]
    fn polynomial_matches_the_f64_reference() {
        let (worst_y, worst_g) =
            worst_gelu_errors(gelu_poly, gelu_grad_poly, (LEFT_TAIL, 12.0, 0.000_731));
        // The f64 `erf` itself is good to about 1.2e-7.
        assert!(worst_y < 2.5e-7, "gelu worst error {worst_y}");
        assert!(worst_g < 2.5e-7, "gelu grad worst error {worst_g}");
    }

    /// The slice kernels give each element its per-element value, whether or not its block has
    /// left-tail lanes, NaN or infinities, at every length (a partial last block too).
    #[test]
    fn slice_kernels_equal_the_per_element_values() {
        let mut x: Vec<f32> = (0..203).map(|i| (i as f32 * 0.37).sin() * 4.0).collect();
        x[5] = -7.5; // a left-tail lane in the first block only
        x[70] = f32::NAN;
        x[71] = f32::INFINITY;
        x[72] = f32::NEG_INFINITY;
        x[100] = 1e30;
        x[101] = -1e30;
        let g: Vec<f32> = (0..203).map(|i| 1.0 + i as f32 * 0.01).collect();
        for n in [0, 1, 31, 32, 33, 64, 203] {
            let mut y = vec![MaybeUninit::new(f32::NAN); n];
            gelu_into(&mut y, &x[..n], None);
            let mut dx = vec![MaybeUninit::new(f32::NAN); n];
            gelu_backward_into(&mut dx, &x[..n], None, &g[..n], None);
            for i in 0..n {
                let (y, dx) = unsafe { (y[i].assume_init(), dx[i].assume_init()) };
                let (want_y, want_dx) = (gelu_value(x[i]), g[i] * gelu_grad_value(x[i]));
                assert!(
                    y.to_bits() == want_y.to_bits(),
                    "gelu x[{i}] = {}: {y} vs {want_y}",
                    x[i]
                );
                assert!(
                    dx.to_bits() == want_dx.to_bits(),
                    "gelu' x[{i}] = {}: {dx} vs {want_dx}",
                    x[i]
                );
            }
        }
        // The left tail keeps its relative precision; NaN propagates; the far right is x.
        assert_eq!(
            gelu_value(-5.0),
            -5.0 * crate::activation::gaussian_cdf(-5.0)
        );
        assert!(gelu_value(f32::NAN).is_nan() && gelu_grad_value(f32::NAN).is_nan());
        assert_eq!(gelu_value(1e30), 1e30);
        assert_eq!(gelu_grad_value(1e30), 1.0);
        assert_eq!(gelu_value(-1e30), -0.0);
    }
}
