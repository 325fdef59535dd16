//! Softmax and log-softmax along any dimension, with their backward kernels.
//!
//! Both are max-shifted: `softmax(x) = exp(x - m) / sum(exp(x - m))` with `m = max(x)` gives the
//! same value as the textbook formula but never overflows (`softmax([1000, 1001, 1002])` is
//! finite). The backward kernels take the *output* `y` the forward returned, because both
//! gradients are cheapest to write in terms of it:
//!
//! - softmax: `dx = y * (dy - sum(dy * y))`
//! - log-softmax: `dx = dy - exp(y) * sum(dy)`
//!
//! Work is done row by row on contiguous slices ("rows" are the lanes along `dim`). The last
//! dimension of a contiguous tensor is the fast path, with no copy; any other dimension is moved
//! last by one copy, and the result moved back. The row toolkit (vectorizable `exp`, lane-split
//! reductions, the row drivers) lives in [`crate::simd`].

use crate::error::{Result, TensorError};
use crate::simd::{
    exp_shifted_into, fast_exp, map_along_dim, row_max, scale_in_place, sum_map, sum_map2,
};
use crate::tensor::{normalize_dim, Tensor};

/// Error unless `grad_y` has the shape of the saved output `y`.
pub(crate) fn check_grad_shape(op: &'static str, y: &Tensor, grad_y: &Tensor) -> Result<()> {
    if y.shape() != grad_y.shape() {
        return Err(TensorError::mismatch(
            op,
            y.shape(),
            grad_y.shape(),
            "grad_y must have the shape of the forward output",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Row kernels (the exercises)
// ---------------------------------------------------------------------------------------------

/// Softmax of one row: `y_i = exp(x_i - m) / sum_j exp(x_j - m)` with `m = max(x)`.
#[inline(always)]
pub fn softmax_row(x: &[f32], y: &mut [f32]) {
    // HINT: m = row_max(x); fill y with exp(x - m) and get the sum (exp_shifted_into); scale y by 1/sum.
    // BEGIN SOLUTION
    let m = row_max(x);
    let sum = exp_shifted_into(x, 1.0, m, y);
    scale_in_place(y, 1.0 / sum);
    // END SOLUTION
}

/// Log-softmax of one row: `y_i = (x_i - m) - ln(sum_j exp(x_j - m))`.
#[inline(always)]
pub fn log_softmax_row(x: &[f32], y: &mut [f32]) {
    // HINT: y_i = (x_i - m) - ln(sum_j exp(x_j - m)); subtract the two parts last to keep precision for large x.
    // BEGIN SOLUTION
    let m = row_max(x);
    let log_sum = exp_shifted_into(x, 1.0, m, y).ln();
    for (yv, &xv) in y.iter_mut().zip(x) {
        *yv = (xv - m) - log_sum;
    }
    // END SOLUTION
}

/// Softmax backward for one row, from the output `y`: `dx_i = y_i * (dy_i - sum_j dy_j y_j)`.
#[inline(always)]
pub fn softmax_backward_row(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    // HINT: the Jacobian is diag(y) - y y^T, so dx = y * (dy - dot(dy, y)); never build the matrix.
    // BEGIN SOLUTION
    let dot = sum_map2(dy, y, |g, p| g * p);
    for ((d, &p), &g) in dx.iter_mut().zip(y).zip(dy) {
        *d = p * (g - dot);
    }
    // END SOLUTION
}

/// Log-softmax backward for one row, from the output `y`: `dx_i = dy_i - exp(y_i) * sum_j dy_j`.
#[inline(always)]
pub fn log_softmax_backward_row(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    // HINT: exp(y) is the softmax; every output depends on every input through the log-sum.
    // BEGIN SOLUTION
    let total = sum_map(dy, |g| g);
    for ((d, &l), &g) in dx.iter_mut().zip(y).zip(dy) {
        *d = g - fast_exp(l) * total;
    }
    // END SOLUTION
}

// ---------------------------------------------------------------------------------------------
// Tensor API
// ---------------------------------------------------------------------------------------------

impl Tensor {
    /// Softmax along `dim` (negative counts from the end), max-shifted so large inputs stay finite.
    pub fn softmax(&self, dim: isize) -> Result<Tensor> {
        let d = normalize_dim("softmax", dim, self.shape())?;
        Ok(map_along_dim(
            [self],
            d,
            #[inline(always)]
            |[x], y| softmax_row(x, y),
        ))
    }

    /// Log-softmax along `dim`: `x - logsumexp(x)`, computed without overflow.
    pub fn log_softmax(&self, dim: isize) -> Result<Tensor> {
        let d = normalize_dim("log_softmax", dim, self.shape())?;
        Ok(map_along_dim(
            [self],
            d,
            #[inline(always)]
            |[x], y| log_softmax_row(x, y),
        ))
    }
}

/// Gradient of softmax w.r.t. its input, given the forward output `y` and the upstream `grad_y`.
pub fn softmax_backward(y: &Tensor, grad_y: &Tensor, dim: isize) -> Result<Tensor> {
    check_grad_shape("softmax_backward", y, grad_y)?;
    let d = normalize_dim("softmax_backward", dim, y.shape())?;
    Ok(map_along_dim(
        [y, grad_y],
        d,
        #[inline(always)]
        |[y, g], dx| softmax_backward_row(y, g, dx),
    ))
}

/// Gradient of log-softmax w.r.t. its input, given the forward output `y` and `grad_y`.
pub fn log_softmax_backward(y: &Tensor, grad_y: &Tensor, dim: isize) -> Result<Tensor> {
    check_grad_shape("log_softmax_backward", y, grad_y)?;
    let d = normalize_dim("log_softmax_backward", dim, y.shape())?;
    Ok(map_along_dim(
        [y, grad_y],
        d,
        #[inline(always)]
        |[y, g], dx| log_softmax_backward_row(y, g, dx),
    ))
}
