//! Reductions along an axis: sum, mean, max, min, argmax, argmin, var.
//!
//! Each takes a dimension (negative counts from the end) and `keepdim`: with `keepdim` the reduced
//! axis stays with size 1, so the result broadcasts back against the input (what a backward needs).
//! Max and min propagate NaN, so a NaN is never silently hidden by a reduction.

use ndarray::{ArrayD, Axis, Zip};

use crate::error::{Result, TensorError};
use crate::tensor::{normalize_dim, Tensor};

fn keep(out: ArrayD<f32>, axis: usize, keepdim: bool) -> Tensor {
    if keepdim {
        Tensor::from_array(out.insert_axis(Axis(axis)))
    } else {
        Tensor::from_array(out)
    }
}

fn nan_max(a: f32, b: f32) -> f32 {
    if b > a || b.is_nan() {
        b
    } else {
        a
    }
}

fn nan_min(a: f32, b: f32) -> f32 {
    if b < a || b.is_nan() {
        b
    } else {
        a
    }
}

/// Index of the first extreme element of a lane under `better(candidate, best)` (NaN wins).
fn arg_extreme(lane: ndarray::ArrayView1<'_, f32>, better: fn(f32, f32) -> bool) -> f32 {
    let mut iter = lane.iter().enumerate();
    let (mut best_i, mut best) = match iter.next() {
        Some((i, &v)) => (i, v),
        None => return 0.0,
    };
    for (i, &v) in iter {
        if best.is_nan() {
            break;
        }
        if v.is_nan() || better(v, best) {
            best = v;
            best_i = i;
        }
    }
    best_i as f32
}

impl Tensor {
    fn check_nonempty_axis(&self, op: &'static str, dim: isize) -> Result<usize> {
        let axis = normalize_dim(op, dim, self.shape())?;
        if self.shape()[axis] == 0 {
            return Err(TensorError::invalid(
                op,
                self.shape(),
                format!("cannot reduce the empty dimension {dim}"),
            ));
        }
        Ok(axis)
    }

    /// Sum along `dim`.
    pub fn sum(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        let axis = normalize_dim("sum", dim, self.shape())?;
        Ok(keep(self.data.sum_axis(Axis(axis)), axis, keepdim))
    }

    /// Sum of all elements, as a 0-d tensor.
    pub fn sum_all(&self) -> Tensor {
        let total: f64 = match self.as_slice() {
            Some(s) => s.iter().map(|&v| v as f64).sum(),
            None => self.data.iter().map(|&v| v as f64).sum(),
        };
        Tensor::scalar(total as f32)
    }

    /// Mean along `dim`.
    pub fn mean(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        let axis = self.check_nonempty_axis("mean", dim)?;
        let n = self.shape()[axis] as f32;
        Ok(self.sum(dim, keepdim)?.div_scalar(n))
    }

    /// Mean of all elements, as a 0-d tensor (NaN for an empty tensor).
    pub fn mean_all(&self) -> Tensor {
        Tensor::scalar(
            self.sum_all().data.iter().next().copied().unwrap_or(0.0) / self.numel() as f32,
        )
    }

    /// Maximum along `dim` (NaN propagates).
    pub fn max(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        let axis = self.check_nonempty_axis("max", dim)?;
        let out = self
            .data
            .fold_axis(Axis(axis), f32::NEG_INFINITY, |&a, &b| nan_max(a, b));
        Ok(keep(out, axis, keepdim))
    }

    /// Minimum along `dim` (NaN propagates).
    pub fn min(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        let axis = self.check_nonempty_axis("min", dim)?;
        let out = self
            .data
            .fold_axis(Axis(axis), f32::INFINITY, |&a, &b| nan_min(a, b));
        Ok(keep(out, axis, keepdim))
    }

    /// Largest element of the whole tensor (NaN propagates; -inf when empty).
    pub fn max_all(&self) -> f32 {
        self.data
            .iter()
            .fold(f32::NEG_INFINITY, |a, &b| nan_max(a, b))
    }

    /// Smallest element of the whole tensor (NaN propagates; +inf when empty).
    pub fn min_all(&self) -> f32 {
        self.data.iter().fold(f32::INFINITY, |a, &b| nan_min(a, b))
    }

    /// Index of the first maximum along `dim`, as `f32` values (exact below 2^24).
    pub fn argmax(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        let axis = self.check_nonempty_axis("argmax", dim)?;
        let out = Zip::from(self.data.lanes(Axis(axis)))
            .map_collect(|lane| arg_extreme(lane, |v, b| v > b));
        Ok(keep(out, axis, keepdim))
    }

    /// Index of the first minimum along `dim`, as `f32` values.
    pub fn argmin(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        let axis = self.check_nonempty_axis("argmin", dim)?;
        let out = Zip::from(self.data.lanes(Axis(axis)))
            .map_collect(|lane| arg_extreme(lane, |v, b| v < b));
        Ok(keep(out, axis, keepdim))
    }

    /// Variance along `dim`; `unbiased` divides by `n - 1` (PyTorch's default) instead of `n`.
    pub fn var(&self, dim: isize, keepdim: bool, unbiased: bool) -> Result<Tensor> {
        let axis = self.check_nonempty_axis("var", dim)?;
        let n = self.shape()[axis];
        let denom = if unbiased { n.saturating_sub(1) } else { n } as f32;
        // BEGIN SOLUTION
        let mean = self.mean(dim, true)?;
        let centered = self.sub(&mean)?;
        let sq = centered.mul(&centered)?;
        Ok(sq.sum(dim, keepdim)?.div_scalar(denom))
        // END SOLUTION
    }
}
