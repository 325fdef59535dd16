//! Reductions. Their gradients spread the output gradient back over the reduced axis: evenly for
//! sum and mean, to the selected element for max and min, through the centred values for var.

use tensor::Tensor;

use super::record;
use crate::error::Result;
use crate::variable::{GradFn, Variable};

enum Reduction {
    Sum,
    Mean {
        n: usize,
    },
    /// 1 at the first extreme element of each lane.
    Select {
        mask: Tensor,
    },
    Var {
        centered: Tensor,
        denom: f32,
    },
}

/// The backward of sum, mean, max, min and var along one dim (or all of them).
pub struct ReduceBackward {
    input: Variable,
    /// `None` when every dim was reduced.
    dim: Option<usize>,
    keepdim: bool,
    op: Reduction,
    name: &'static str,
}

impl GradFn for ReduceBackward {
    fn name(&self) -> &'static str {
        self.name
    }

    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }

    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Restore the reduced axis as size 1, then spread the gradient back over it:
        // HINT: broadcast for sum, divided by n for mean, times the one-hot mask for max/min, and 2
        // HINT: (x - mean) / denom times g for var.
        // BEGIN SOLUTION
        let shape = self.input.shape();
        // Put the reduced axis back (size 1) so the gradient broadcasts over it.
        let g = match self.dim {
            Some(d) if !self.keepdim => g.unsqueeze(d as isize)?,
            Some(_) => g.clone(),
            None => g.reshape_to(&vec![1; shape.len()])?,
        };
        let dx = match &self.op {
            Reduction::Sum => g.broadcast_to(&shape)?,
            Reduction::Mean { n } => g.div_scalar(*n as f32).broadcast_to(&shape)?,
            Reduction::Select { mask } => mask.mul(&g)?,
            Reduction::Var { centered, denom } => centered.mul(&g)?.mul_scalar(2.0 / denom),
        };
        Ok(vec![Some(dx)])
        // END SOLUTION
    }
}

fn norm_dim(dim: isize, ndim: usize) -> usize {
    if dim < 0 {
        (dim + ndim as isize) as usize
    } else {
        dim as usize
    }
}

/// One-hot mask (along `axis`) of the first position where `x` equals the reduced `extreme`.
fn first_match_mask(x: &Tensor, index: &Tensor, axis: usize) -> Result<Tensor> {
    let n = x.shape()[axis];
    let mut pos_shape = vec![1; x.ndim()];
    pos_shape[axis] = n;
    let positions = Tensor::arange(0.0, n as f32, 1.0)?.reshape_to(&pos_shape)?;
    Ok(positions.eq_mask(index)?)
}

impl Variable {
    fn reduce(
        &self,
        out: Tensor,
        dim: Option<usize>,
        keepdim: bool,
        op: Reduction,
        name: &'static str,
    ) -> Result<Variable> {
        record(
            out,
            &[self],
            ReduceBackward {
                input: self.clone(),
                dim,
                keepdim,
                op,
                name,
            },
        )
    }

    /// Sum along `dim`.
    pub fn sum(&self, dim: isize, keepdim: bool) -> Result<Variable> {
        let x = self.value();
        let out = x.sum(dim, keepdim)?;
        self.reduce(
            out,
            Some(norm_dim(dim, x.ndim())),
            keepdim,
            Reduction::Sum,
            "SumBackward",
        )
    }

    /// Sum of every element (a 0-d variable).
    pub fn sum_all(&self) -> Result<Variable> {
        let out = self.value().sum_all();
        self.reduce(out, None, false, Reduction::Sum, "SumBackward")
    }

    /// Mean along `dim`.
    pub fn mean(&self, dim: isize, keepdim: bool) -> Result<Variable> {
        let x = self.value();
        let out = x.mean(dim, keepdim)?;
        let d = norm_dim(dim, x.ndim());
        self.reduce(
            out,
            Some(d),
            keepdim,
            Reduction::Mean { n: x.shape()[d] },
            "MeanBackward",
        )
    }

    /// Mean of every element (a 0-d variable).
    pub fn mean_all(&self) -> Result<Variable> {
        let x = self.value();
        let out = x.mean_all();
        self.reduce(
            out,
            None,
            false,
            Reduction::Mean { n: x.numel() },
            "MeanBackward",
        )
    }

    /// Maximum along `dim`; the gradient goes to the first maximum.
    pub fn max(&self, dim: isize, keepdim: bool) -> Result<Variable> {
        let x = self.value();
        let out = x.max(dim, keepdim)?;
        let d = norm_dim(dim, x.ndim());
        let mask = first_match_mask(&x, &x.argmax(dim, true)?, d)?;
        self.reduce(
            out,
            Some(d),
            keepdim,
            Reduction::Select { mask },
            "MaxBackward",
        )
    }

    /// Minimum along `dim`; the gradient goes to the first minimum.
    pub fn min(&self, dim: isize, keepdim: bool) -> Result<Variable> {
        let x = self.value();
        let out = x.min(dim, keepdim)?;
        let d = norm_dim(dim, x.ndim());
        let mask = first_match_mask(&x, &x.argmin(dim, true)?, d)?;
        self.reduce(
            out,
            Some(d),
            keepdim,
            Reduction::Select { mask },
            "MinBackward",
        )
    }

    /// Variance along `dim` (`unbiased` divides by n - 1).
    pub fn var(&self, dim: isize, keepdim: bool, unbiased: bool) -> Result<Variable> {
        let x = self.value();
        let out = x.var(dim, keepdim, unbiased)?;
        let d = norm_dim(dim, x.ndim());
        let n = x.shape()[d];
        let denom = if unbiased { n.saturating_sub(1) } else { n } as f32;
        let centered = x.sub(&x.mean(dim, true)?)?;
        self.reduce(
            out,
            Some(d),
            keepdim,
            Reduction::Var { centered, denom },
            "VarBackward",
        )
    }
}
