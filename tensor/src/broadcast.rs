//! NumPy broadcasting and its undo.
//!
//! Two shapes broadcast when, aligned at their trailing dimensions, each pair of sizes is equal or
//! one of them is 1; missing leading dimensions count as 1. `(64, 10) + (10,)` adds a bias row to
//! every sample. The gradient of a broadcast is a sum: [`Tensor::sum_to_shape`] sums the extra
//! leading axes and the axes that were 1, so a bias receives the sum over the batch.

use ndarray::{Axis, IxDyn};

use crate::error::{Result, TensorError};
use crate::tensor::Tensor;

/// The shape two operands broadcast to, or an error naming `op` and both shapes.
pub fn broadcast_shapes(op: &'static str, lhs: &[usize], rhs: &[usize]) -> Result<Vec<usize>> {
    // BEGIN SOLUTION
    let ndim = lhs.len().max(rhs.len());
    let mut out = vec![0; ndim];
    for i in 0..ndim {
        // Walk from the last dimension backwards; a missing dimension counts as 1.
        let a = if i < lhs.len() {
            lhs[lhs.len() - 1 - i]
        } else {
            1
        };
        let b = if i < rhs.len() {
            rhs[rhs.len() - 1 - i]
        } else {
            1
        };
        out[ndim - 1 - i] = if a == b || b == 1 {
            a
        } else if a == 1 {
            b
        } else {
            return Err(TensorError::mismatch(
                op,
                lhs,
                rhs,
                format!(
                    "dimension {} (from the right) has sizes {a} and {b}; broadcasting needs equal sizes or 1",
                    i + 1
                ),
            ));
        };
    }
    Ok(out)
    // END SOLUTION
}

impl Tensor {
    /// This tensor repeated along broadcast dimensions to `shape` (materialised, row-major).
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        let target = broadcast_shapes("broadcast_to", self.shape(), shape)?;
        if target != shape {
            return Err(TensorError::mismatch(
                "broadcast_to",
                self.shape(),
                shape,
                "the tensor does not broadcast to the requested shape",
            ));
        }
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let view = self
            .data
            .broadcast(IxDyn(shape))
            .expect("broadcast checked above");
        Ok(Tensor::from_array(view.as_standard_layout().into_owned()))
    }

    /// Undo a broadcast: sum this tensor down to `shape` (the gradient of [`Tensor::broadcast_to`]).
    ///
    /// `shape` must broadcast to `self.shape()`. Leading extra axes are summed away, and axes where
    /// `shape` has size 1 are summed with keepdim.
    pub fn sum_to_shape(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let own = self.shape();
        let ok = shape.len() <= own.len()
            && shape
                .iter()
                .rev()
                .zip(own.iter().rev())
                .all(|(&s, &o)| s == o || s == 1);
        if !ok {
            return Err(TensorError::mismatch(
                "sum_to_shape",
                own,
                shape,
                "the target shape does not broadcast to the tensor's shape",
            ));
        }
        if let Some(rows_summed) = self.sum_rows_to(shape) {
            return Ok(rows_summed);
        }
        // BEGIN SOLUTION
        let lead = own.len() - shape.len();
        let mut acc = self.data.to_owned();
        // Sum the extra leading axes away.
        for _ in 0..lead {
            acc = acc.sum_axis(Axis(0));
        }
        // Sum the axes that were broadcast from size 1, keeping them.
        for (axis, &s) in shape.iter().enumerate() {
            if s == 1 && acc.shape()[axis] != 1 {
                acc = acc.sum_axis(Axis(axis)).insert_axis(Axis(axis));
            }
        }
        Ok(Tensor::from_array(acc))
        // END SOLUTION
    }

    /// The fast path of [`Tensor::sum_to_shape`] for a bias gradient: when `shape` (leading 1s
    /// aside) is the trailing part of a contiguous tensor's shape, e.g. `(N,)` of `(B, T, N)`,
    /// the tensor is `rows x width` values and the sum is one pass adding rows, with no copy of
    /// the tensor (the general path copies it and sums one axis at a time). `None` otherwise.
    fn sum_rows_to(&self, shape: &[usize]) -> Option<Tensor> {
        let own = self.shape();
        let trailing = &shape[shape.iter().take_while(|&&s| s == 1).count()..];
        if trailing.is_empty() || trailing.len() >= own.len() {
            return None;
        }
        if own[own.len() - trailing.len()..] != *trailing {
            return None;
        }
        let data = self.data.as_slice()?;
        let width: usize = trailing.iter().product();
        if width == 0 {
            return None;
        }
        let mut sums = vec![0.0f32; width];
        for row in data.chunks_exact(width) {
            for (acc, &x) in sums.iter_mut().zip(row) {
                *acc += x;
            }
        }
        Tensor::from_vec(sums, shape).ok()
    }
}
