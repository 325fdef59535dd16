//! Reductions. Their gradients spread the output gradient back over the reduced axis: evenly for
//! sum and mean, to the selected element for max and min, through the centred values for var.

use tensor::Tensor;

use super::record;
use crate::error::Result;
use crate::variable::{GradFn, Variable};

/// Where a reduction happened: the axis (`None` when every axis was reduced) and whether the
/// output kept it as size 1. Every reduction's backward first undoes this with [`unreduce`].
#[derive(Clone, Copy)]
struct Reduced {
    dim: Option<usize>,
    keepdim: bool,
}

/// `g` reshaped so it broadcasts over `input_shape`: the reduced axis put back as size 1.
fn unreduce(g: &Tensor, input_shape: &[usize], reduced: Reduced) -> Result<Tensor> {
    // HINT: If the axis was dropped (keepdim false), unsqueeze it back; if every axis was reduced,
    // HINT: reshape g to all ones of the input's rank; with keepdim, g already fits.
    // BEGIN SOLUTION
    Ok(match reduced.dim {
        Some(d) if !reduced.keepdim => g.unsqueeze(d as isize)?,
        Some(_) => g.clone(),
        None => g.reshape_to(&vec![1; input_shape.len()])?,
    })
    // END SOLUTION
}

/// d(sum(x)): every reduced element receives the gradient of its sum.
pub struct SumBackward {
    input: Variable,
    reduced: Reduced,
}

impl GradFn for SumBackward {
    fn name(&self) -> &'static str {
        "SumBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Put the reduced axis back (unreduce), then broadcast to the input's shape.
        // BEGIN SOLUTION
        let shape = self.input.shape();
        let dx = unreduce(g, &shape, self.reduced)?.broadcast_to(&shape)?;
        Ok(vec![Some(dx)])
        // END SOLUTION
    }
}

/// d(mean(x)): every reduced element receives `1 / n` of the gradient.
pub struct MeanBackward {
    input: Variable,
    reduced: Reduced,
    /// How many elements each mean averaged.
    n: usize,
}

impl GradFn for MeanBackward {
    fn name(&self) -> &'static str {
        "MeanBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Like sum, divided by n.
        // BEGIN SOLUTION
        let shape = self.input.shape();
        let dx = unreduce(g, &shape, self.reduced)?
            .div_scalar(self.n as f32)
            .broadcast_to(&shape)?;
        Ok(vec![Some(dx)])
        // END SOLUTION
    }
}

/// d(max(x)) or d(min(x)): the gradient goes to the first extreme element of each lane.
pub struct ExtremeBackward {
    name: &'static str,
    input: Variable,
    reduced: Reduced,
    /// 1 at the first extreme element of each lane.
    mask: Tensor,
}

impl GradFn for ExtremeBackward {
    fn name(&self) -> &'static str {
        self.name
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Put the reduced axis back, then multiply by the saved one-hot mask.
        // BEGIN SOLUTION
        let g = unreduce(g, &self.input.shape(), self.reduced)?;
        Ok(vec![Some(self.mask.mul(&g)?)])
        // END SOLUTION
    }
}

/// d(var(x)) = 2 (x - mean) / denom: the mean's own gradient cancels out.
pub struct VarBackward {
    input: Variable,
    reduced: Reduced,
    /// `x - mean(x)` along the reduced axis.
    centered: Tensor,
    /// `n` or `n - 1` (unbiased).
    denom: f32,
}

impl GradFn for VarBackward {
    fn name(&self) -> &'static str {
        "VarBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Put the reduced axis back, then 2 (x - mean) / denom times g.
        // BEGIN SOLUTION
        let g = unreduce(g, &self.input.shape(), self.reduced)?;
        let dx = self.centered.mul(&g)?.mul_scalar(2.0 / self.denom);
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
    /// Sum along `dim`.
    pub fn sum(&self, dim: isize, keepdim: bool) -> Result<Variable> {
        let x = self.value();
        let out = x.sum(dim, keepdim)?;
        let reduced = Reduced {
            dim: Some(norm_dim(dim, x.ndim())),
            keepdim,
        };
        let grad_fn = SumBackward {
            input: self.clone(),
            reduced,
        };
        record(out, &[self], grad_fn)
    }

    /// Sum of every element (a 0-d variable).
    pub fn sum_all(&self) -> Result<Variable> {
        let out = self.value().sum_all();
        let grad_fn = SumBackward {
            input: self.clone(),
            reduced: ALL,
        };
        record(out, &[self], grad_fn)
    }

    /// Mean along `dim`.
    pub fn mean(&self, dim: isize, keepdim: bool) -> Result<Variable> {
        let x = self.value();
        let out = x.mean(dim, keepdim)?;
        let d = norm_dim(dim, x.ndim());
        let grad_fn = MeanBackward {
            input: self.clone(),
            reduced: Reduced {
                dim: Some(d),
                keepdim,
            },
            n: x.shape()[d],
        };
        record(out, &[self], grad_fn)
    }

    /// Mean of every element (a 0-d variable).
    pub fn mean_all(&self) -> Result<Variable> {
        let x = self.value();
        let out = x.mean_all();
        let grad_fn = MeanBackward {
            input: self.clone(),
            reduced: ALL,
            n: x.numel(),
        };
        record(out, &[self], grad_fn)
    }

    /// Maximum along `dim`; the gradient goes to the first maximum.
    pub fn max(&self, dim: isize, keepdim: bool) -> Result<Variable> {
        let x = self.value();
        let out = x.max(dim, keepdim)?;
        let d = norm_dim(dim, x.ndim());
        let mask = first_match_mask(&x, &x.argmax(dim, true)?, d)?;
        self.extreme(out, "MaxBackward", d, keepdim, mask)
    }

    /// Minimum along `dim`; the gradient goes to the first minimum.
    pub fn min(&self, dim: isize, keepdim: bool) -> Result<Variable> {
        let x = self.value();
        let out = x.min(dim, keepdim)?;
        let d = norm_dim(dim, x.ndim());
        let mask = first_match_mask(&x, &x.argmin(dim, true)?, d)?;
        self.extreme(out, "MinBackward", d, keepdim, mask)
    }

    fn extreme(
        &self,
        out: Tensor,
        name: &'static str,
        dim: usize,
        keepdim: bool,
        mask: Tensor,
    ) -> Result<Variable> {
        let grad_fn = ExtremeBackward {
            name,
            input: self.clone(),
            reduced: Reduced {
                dim: Some(dim),
                keepdim,
            },
            mask,
        };
        record(out, &[self], grad_fn)
    }

    /// Variance along `dim` (`unbiased` divides by n - 1).
    pub fn var(&self, dim: isize, keepdim: bool, unbiased: bool) -> Result<Variable> {
        let x = self.value();
        let out = x.var(dim, keepdim, unbiased)?;
        let d = norm_dim(dim, x.ndim());
        let n = x.shape()[d];
        let denom = if unbiased { n.saturating_sub(1) } else { n } as f32;
        let centered = x.sub(&x.mean(dim, true)?)?;
        let grad_fn = VarBackward {
            input: self.clone(),
            reduced: Reduced {
                dim: Some(d),
                keepdim,
            },
            centered,
            denom,
        };
        record(out, &[self], grad_fn)
    }
}

/// A reduction over every axis.
const ALL: Reduced = Reduced {
    dim: None,
    keepdim: false,
};
