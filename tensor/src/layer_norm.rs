//! Layer normalization over the last axis, with its full backward kernel.
//!
//! For each row `x` of length `D`: `xhat = (x - mean) * rstd` with `rstd = 1 / sqrt(var + eps)`
//! (biased variance, as PyTorch), then `y = xhat * weight + bias`. The forward caches `mean` and
//! `rstd` per row ([`LayerNormCache`]) so backward does not recompute them. The backward is the
//! full gradient, including the paths through the mean and the variance:
//!
//! `dx = rstd * (g - mean(g) - xhat * mean(g * xhat))` with `g = dy * weight`,
//! `dweight = sum over rows of dy * xhat`, `dbias = sum over rows of dy`.
//!
//! Rows run in parallel for big inputs. The weight and bias sums are taken over fixed blocks of
//! rows and then added in block order, so the result does not depend on the thread count.

use rayon::prelude::*;

use crate::error::{Result, TensorError};
use crate::simd::{
    for_each_row_aux, parallel, simd_level, sum_map, sum_map2, with_simd, with_simd_at,
};
use crate::tensor::Tensor;

/// What the forward saves for backward: per-row mean and `1 / sqrt(var + eps)`, each of the input
/// shape without its last dimension.
#[derive(Clone)]
pub struct LayerNormCache {
    /// Row means.
    pub mean: Tensor,
    /// Row reciprocal standard deviations, `1 / sqrt(var + eps)`.
    pub rstd: Tensor,
}

/// Rows per block in the backward's weight/bias reduction aim for this many elements.
const BLOCK_ELEMS: usize = 8192;

/// Normalize one row into `y` and return `(mean, rstd)`.
#[inline(always)]
pub fn layer_norm_row(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    eps: f32,
    y: &mut [f32],
) -> (f32, f32) {
    // HINT: mean, then var = mean((x - mean)^2) (two passes, more accurate than E[x^2] - mean^2); rstd = 1 / sqrt(var + eps); y = (x - mean) * rstd * w + b.
    // BEGIN SOLUTION
    let d = x.len() as f32;
    let mean = sum_map(x, |v| v) / d;
    let var = sum_map(x, |v| (v - mean) * (v - mean)) / d;
    let rstd = 1.0 / (var + eps).sqrt();
    for (((out, &v), &w), &b) in y.iter_mut().zip(x).zip(weight).zip(bias) {
        *out = (v - mean) * rstd * w + b;
    }
    (mean, rstd)
    // END SOLUTION
}

/// Backward of one row: write `dx` and add this row's `dy * xhat` and `dy` into `dweight` and
/// `dbias` (running sums over rows).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn layer_norm_backward_row(
    x: &[f32],
    weight: &[f32],
    mean: f32,
    rstd: f32,
    dy: &[f32],
    dx: &mut [f32],
    dweight: &mut [f32],
    dbias: &mut [f32],
) {
    // HINT: g = dy * w, xhat = (x - mean) * rstd: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) (the means are the paths through mean and variance); dw += dy * xhat; db += dy.
    // BEGIN SOLUTION
    let d = x.len() as f32;
    // g = dy * weight, kept in dx until the last pass.
    for ((g, &gy), &w) in dx.iter_mut().zip(dy).zip(weight) {
        *g = gy * w;
    }
    let mean_g = sum_map(dx, |g| g) / d;
    let mean_gxhat = sum_map2(dx, x, |g, v| g * (v - mean)) * rstd / d;
    for ((((out, &v), &gy), dw), db) in dx.iter_mut().zip(x).zip(dy).zip(dweight).zip(dbias) {
        let xhat = (v - mean) * rstd;
        *out = rstd * (*out - mean_g - xhat * mean_gxhat);
        *dw += gy * xhat;
        *db += gy;
    }
    // END SOLUTION
}

/// The contiguous inputs of [`layer_norm_backward`], shared by its blocks of rows.
struct BackwardRows<'a> {
    x: &'a [f32],
    dy: &'a [f32],
    weight: &'a [f32],
    mean: &'a [f32],
    rstd: &'a [f32],
}

impl BackwardRows<'_> {
    /// Rows `first..` for as many rows as `dx` holds: write `dx` and sum `dweight`, `dbias` into
    /// `partial` (`[dweight | dbias]`, `2 * d` values).
    #[inline(always)]
    fn block(&self, first: usize, dx: &mut [f32], partial: &mut [f32]) {
        let d = self.weight.len();
        let (dw, db) = partial.split_at_mut(d);
        for (k, dx_row) in dx.chunks_mut(d).enumerate() {
            let r = first + k;
            let span = r * d..(r + 1) * d;
            layer_norm_backward_row(
                &self.x[span.clone()],
                self.weight,
                self.mean[r],
                self.rstd[r],
                &self.dy[span],
                dx_row,
                dw,
                db,
            );
        }
    }
}

/// Error unless an affine parameter has shape `[d]`.
fn check_param(op: &'static str, x: &Tensor, p: Option<&Tensor>, name: &str) -> Result<()> {
    if let Some(p) = p {
        let d = *x.shape().last().unwrap_or(&0);
        if p.shape() != [d] {
            return Err(TensorError::mismatch(
                op,
                x.shape(),
                p.shape(),
                format!("{name} must have shape [{d}] (the last dimension of the input)"),
            ));
        }
    }
    Ok(())
}

/// Error unless `x` has a non-empty last dimension.
fn check_input(op: &'static str, x: &Tensor) -> Result<usize> {
    match x.shape().last() {
        Some(&d) if d > 0 => Ok(d),
        _ => Err(TensorError::invalid(
            op,
            x.shape(),
            "needs at least one dimension with a non-zero last dimension to normalize over",
        )),
    }
}

/// A parameter as a contiguous row, or `fill` repeated `d` times when absent.
fn param_or(p: Option<&Tensor>, d: usize, fill: f32) -> Tensor {
    match p {
        Some(p) => p.contiguous(),
        None => Tensor::full(&[d], fill),
    }
}

/// Layer norm over the last axis. `weight` and `bias` (shape `[D]`) are optional, as with
/// `elementwise_affine=False` in PyTorch. Returns the output and the cache backward needs.
pub fn layer_norm(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<(Tensor, LayerNormCache)> {
    crate::profile::timed(crate::profile::OpFamily::Norm, || {
        let d = check_input("layer_norm", x)?;
        check_param("layer_norm", x, weight, "weight")?;
        check_param("layer_norm", x, bias, "bias")?;
        if eps.is_nan() || eps < 0.0 {
            return Err(TensorError::invalid(
                "layer_norm",
                x.shape(),
                format!("eps must be >= 0, got {eps}"),
            ));
        }
        let xs = x.contiguous();
        let x_rows = xs.as_slice().expect("contiguous");
        let w = param_or(weight, d, 1.0);
        let b = param_or(bias, d, 0.0);
        let (w, b) = (
            w.as_slice().expect("contiguous"),
            b.as_slice().expect("contiguous"),
        );
        let rows = x_rows.len() / d;
        let mut y = vec![0.0f32; x_rows.len()];
        let mut stats = vec![(0.0f32, 0.0f32); rows];
        for_each_row_aux(
            &mut y,
            d,
            &mut stats,
            #[inline(always)]
            |r, out, stat| {
                *stat = layer_norm_row(&x_rows[r * d..(r + 1) * d], w, b, eps, out);
            },
        );
        let stat_shape = &x.shape()[..x.ndim() - 1];
        let mean = Tensor::from_vec(stats.iter().map(|s| s.0).collect(), stat_shape)?;
        let rstd = Tensor::from_vec(stats.iter().map(|s| s.1).collect(), stat_shape)?;
        Ok((
            Tensor::from_vec(y, x.shape())?,
            LayerNormCache { mean, rstd },
        ))
    })
}

/// Backward of [`layer_norm`]: returns `(dx, dweight, dbias)`. `dweight` is `Some` exactly when
/// `weight` is given. `dbias` (the row sum of `grad_y`, which does not depend on the bias) is
/// always `Some`; a caller without a bias ignores it.
pub fn layer_norm_backward(
    x: &Tensor,
    weight: Option<&Tensor>,
    cache: &LayerNormCache,
    grad_y: &Tensor,
) -> Result<(Tensor, Option<Tensor>, Option<Tensor>)> {
    crate::profile::timed(crate::profile::OpFamily::Norm, || {
        const OP: &str = "layer_norm_backward";
        let d = check_input(OP, x)?;
        check_param(OP, x, weight, "weight")?;
        if grad_y.shape() != x.shape() {
            return Err(TensorError::mismatch(
                OP,
                x.shape(),
                grad_y.shape(),
                "grad_y must have the shape of the input",
            ));
        }
        let stat_shape = &x.shape()[..x.ndim() - 1];
        for (name, t) in [("mean", &cache.mean), ("rstd", &cache.rstd)] {
            if t.shape() != stat_shape {
                return Err(TensorError::mismatch(
                    OP,
                    x.shape(),
                    t.shape(),
                    format!("cached {name} must have the input shape without its last dimension"),
                ));
            }
        }
        let (xs, gs) = (x.contiguous(), grad_y.contiguous());
        let (ms, rs) = (cache.mean.contiguous(), cache.rstd.contiguous());
        let x_rows = xs.as_slice().expect("contiguous");
        let g_rows = gs.as_slice().expect("contiguous");
        let (mean, rstd) = (
            ms.as_slice().expect("contiguous"),
            rs.as_slice().expect("contiguous"),
        );
        let w = param_or(weight, d, 1.0);
        let w = w.as_slice().expect("contiguous");

        let rows = x_rows.len() / d;
        let mut dx = vec![0.0f32; x_rows.len()];
        // Fixed blocks of rows, each with its own partial dweight/dbias; summed in block order.
        let block_rows = (BLOCK_ELEMS / d).max(1);
        let blocks = rows.div_ceil(block_rows);
        let mut partial = vec![0.0f32; blocks * 2 * d];
        let inputs = BackwardRows {
            x: x_rows,
            dy: g_rows,
            weight: w,
            mean,
            rstd,
        };
        if parallel(x_rows.len()) {
            // Read on this thread, so the pool tasks honour the caller's level cap.
            let level = simd_level();
            dx.par_chunks_mut(block_rows * d)
                .zip(partial.par_chunks_mut(2 * d))
                .enumerate()
                .for_each(|(blk, (dx_blk, part))| {
                    with_simd_at(
                        level,
                        #[inline(always)]
                        || inputs.block(blk * block_rows, dx_blk, part),
                    )
                });
        } else {
            let blocks = dx.chunks_mut(block_rows * d).zip(partial.chunks_mut(2 * d));
            with_simd(
                #[inline(always)]
                || {
                    for (blk, (dx_blk, part)) in blocks.enumerate() {
                        inputs.block(blk * block_rows, dx_blk, part);
                    }
                },
            );
        }
        let mut dweight = vec![0.0f32; d];
        let mut dbias = vec![0.0f32; d];
        for part in partial.chunks(2 * d) {
            for i in 0..d {
                dweight[i] += part[i];
                dbias[i] += part[d + i];
            }
        }
        let dx = Tensor::from_vec(dx, x.shape())?;
        let dweight = match weight {
            Some(_) => Some(Tensor::from_vec(dweight, &[d])?),
            None => None,
        };
        Ok((dx, dweight, Some(Tensor::from_vec(dbias, &[d])?)))
    })
}
