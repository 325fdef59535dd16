//! Causal masked softmax for attention scores, with its backward kernel.
//!
//! Scores have shape `(..., T, S)`: `T` queries against `S >= T` keys. The queries are the last
//! `T` positions of the sequence, so query row `i` may attend keys `j <= i + (S - T)`. With
//! `S == T` this is the usual lower-triangular mask; with `S > T` it is decoding with a KV cache,
//! where the cached keys come first. This is the one mask convention of the project.
//!
//! `y = softmax(scale * scores)` over the allowed keys; masked entries are exactly 0. The kernel
//! never reads, scales or exponentiates a masked score, which saves almost half the work of
//! "fill with -inf, then softmax". Backward: `dx = scale * y * (dy - sum(dy * y))` on the allowed
//! keys, 0 on the masked ones (the gradient w.r.t. the unscaled scores).

use crate::error::{Result, TensorError};
use crate::simd::{exp_shifted_into, for_each_row, max_scaled, scale_in_place, sum_map2};
use crate::softmax::check_grad_shape;
use crate::tensor::Tensor;

/// Causal softmax of one row: the first `allowed` entries get `softmax(scale * x)`, the rest 0.
#[inline(always)]
pub fn causal_softmax_row(x: &[f32], allowed: usize, scale: f32, y: &mut [f32]) {
    // HINT: work on x[..allowed] only: m = max(scale * x), y = exp(scale * x - m) / sum; zero the rest.
    // BEGIN SOLUTION
    let (x, _) = x.split_at(allowed);
    let (y_on, y_off) = y.split_at_mut(allowed);
    let m = max_scaled(x, scale);
    let sum = exp_shifted_into(x, scale, m, y_on);
    scale_in_place(y_on, 1.0 / sum);
    y_off.fill(0.0);
    // END SOLUTION
}

/// Backward of one row: `dx = scale * y * (dy - dot(dy, y))` on the first `allowed` entries, else 0.
#[inline(always)]
pub fn causal_softmax_backward_row(
    y: &[f32],
    dy: &[f32],
    allowed: usize,
    scale: f32,
    dx: &mut [f32],
) {
    // HINT: the softmax backward on the allowed prefix, times scale (the chain rule through scale * x).
    // BEGIN SOLUTION
    let (y, dy) = (&y[..allowed], &dy[..allowed]);
    let (dx_on, dx_off) = dx.split_at_mut(allowed);
    let dot = sum_map2(dy, y, |g, p| g * p);
    for ((d, &p), &g) in dx_on.iter_mut().zip(y).zip(dy) {
        *d = scale * p * (g - dot);
    }
    dx_off.fill(0.0);
    // END SOLUTION
}

/// Check the `(..., T, S)` shape with `S >= T` and a finite scale; return `(T, S)`.
fn check_scores(op: &'static str, shape: &[usize], scale: f32) -> Result<(usize, usize)> {
    let nd = shape.len();
    if nd < 2 {
        return Err(TensorError::invalid(
            op,
            shape,
            "attention scores must have shape (..., T, S) with at least 2 dimensions",
        ));
    }
    let (t, s) = (shape[nd - 2], shape[nd - 1]);
    if s < t {
        return Err(TensorError::invalid(
            op,
            shape,
            format!("needs at least as many keys as queries, got T = {t} queries and S = {s} keys"),
        ));
    }
    if !scale.is_finite() {
        return Err(TensorError::invalid(
            op,
            shape,
            format!("scale must be finite, got {scale}"),
        ));
    }
    Ok((t, s))
}

/// Keys allowed for global row `r` of scores with `T` queries and `S` keys.
fn allowed_keys(r: usize, t: usize, s: usize) -> usize {
    r % t + (s - t) + 1
}

impl Tensor {
    /// `softmax(scale * scores)` along the last axis with the causal mask: on scores of shape
    /// `(..., T, S)`, query `i` sees keys `j <= i + (S - T)`; masked entries are exactly 0.
    pub fn causal_softmax(&self, scale: f32) -> Result<Tensor> {
        crate::profile::timed(crate::profile::OpFamily::Attention, || {
            let (t, s) = check_scores("causal_softmax", self.shape(), scale)?;
            let xs = self.contiguous();
            let x = xs.as_slice().expect("contiguous");
            let mut y = vec![0.0f32; x.len()];
            for_each_row(
                &mut y,
                s,
                #[inline(always)]
                |r, row| {
                    causal_softmax_row(&x[r * s..(r + 1) * s], allowed_keys(r, t, s), scale, row);
                },
            );
            Tensor::from_vec(y, self.shape())
        })
    }
}

/// Gradient of [`Tensor::causal_softmax`] w.r.t. the unscaled scores, from the output `y`.
pub fn causal_softmax_backward(y: &Tensor, grad_y: &Tensor, scale: f32) -> Result<Tensor> {
    crate::profile::timed(crate::profile::OpFamily::Attention, || {
        const OP: &str = "causal_softmax_backward";
        check_grad_shape(OP, y, grad_y)?;
        let (t, s) = check_scores(OP, y.shape(), scale)?;
        let (ys, gs) = (y.contiguous(), grad_y.contiguous());
        let (yv, gv) = (
            ys.as_slice().expect("contiguous"),
            gs.as_slice().expect("contiguous"),
        );
        let mut dx = vec![0.0f32; yv.len()];
        for_each_row(
            &mut dx,
            s,
            #[inline(always)]
            |r, row| {
                let span = r * s..(r + 1) * s;
                causal_softmax_backward_row(
                    &yv[span.clone()],
                    &gv[span],
                    allowed_keys(r, t, s),
                    scale,
                    row,
                );
            },
        );
        Tensor::from_vec(dx, y.shape())
    })
}
