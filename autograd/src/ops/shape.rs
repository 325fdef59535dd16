//! Shape ops move elements without changing them, so their gradients move the gradient back:
//! reshape back, transpose back, scatter a slice into zeros, sum a broadcast away. Because these
//! are ops of the graph (and never a re-wrap of raw data), gradients always flow through them.

use tensor::shape::{index_select_backward, slice_backward};
use tensor::Tensor;

use super::record;
use crate::error::{AutogradError, Result};
use crate::variable::{GradFn, Variable};

/// d(reshape x): the gradient reshaped back to the input's shape (reshape, reshape_to, flatten).
pub struct ReshapeBackward {
    input: Variable,
    input_shape: Vec<usize>,
}

impl GradFn for ReshapeBackward {
    fn name(&self) -> &'static str {
        "ReshapeBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Reshape g back to the saved input shape.
        // BEGIN SOLUTION
        Ok(vec![Some(g.reshape_to(&self.input_shape)?)])
        // END SOLUTION
    }
}

/// d(transpose(x, a, b)): the gradient transposed by the same two dims.
pub struct TransposeBackward {
    input: Variable,
    dim0: isize,
    dim1: isize,
}

impl GradFn for TransposeBackward {
    fn name(&self) -> &'static str {
        "TransposeBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: A transpose is its own inverse: transpose g by the same two dims.
        // BEGIN SOLUTION
        Ok(vec![Some(g.transpose(self.dim0, self.dim1)?)])
        // END SOLUTION
    }
}

/// d(permute(x, perm)): the gradient permuted by the inverse permutation.
pub struct PermuteBackward {
    input: Variable,
    inverse: Vec<usize>,
}

impl GradFn for PermuteBackward {
    fn name(&self) -> &'static str {
        "PermuteBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Permute g by the saved inverse permutation.
        // BEGIN SOLUTION
        Ok(vec![Some(g.permute(&self.inverse)?)])
        // END SOLUTION
    }
}

/// d(squeeze(x, dim)): the removed size-1 dim put back.
pub struct SqueezeBackward {
    input: Variable,
    dim: isize,
}

impl GradFn for SqueezeBackward {
    fn name(&self) -> &'static str {
        "SqueezeBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Unsqueeze g at the dim that was squeezed.
        // BEGIN SOLUTION
        Ok(vec![Some(g.unsqueeze(self.dim)?)])
        // END SOLUTION
    }
}

/// d(unsqueeze(x, dim)): the inserted size-1 dim removed.
pub struct UnsqueezeBackward {
    input: Variable,
    dim: isize,
}

impl GradFn for UnsqueezeBackward {
    fn name(&self) -> &'static str {
        "UnsqueezeBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Squeeze g at the dim that was inserted.
        // BEGIN SOLUTION
        Ok(vec![Some(g.squeeze(self.dim)?)])
        // END SOLUTION
    }
}

/// d(broadcast_to(x, shape)): every copy's gradient summed back onto its source.
pub struct ExpandBackward {
    input: Variable,
    input_shape: Vec<usize>,
}

impl GradFn for ExpandBackward {
    fn name(&self) -> &'static str {
        "ExpandBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Sum g back to the input shape with sum_to_shape.
        // BEGIN SOLUTION
        Ok(vec![Some(g.sum_to_shape(&self.input_shape)?)])
        // END SOLUTION
    }
}

/// d(slice(x, dim, start, end, step)): the gradient scattered into zeros of the input's shape.
pub struct SliceBackward {
    input: Variable,
    input_shape: Vec<usize>,
    dim: isize,
    start: usize,
    step: usize,
}

impl GradFn for SliceBackward {
    fn name(&self) -> &'static str {
        "SliceBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Scatter g back into zeros of the input shape (tensor::shape::slice_backward).
        // BEGIN SOLUTION
        Ok(vec![Some(slice_backward(
            g,
            &self.input_shape,
            self.dim,
            self.start,
            self.step,
        )?)])
        // END SOLUTION
    }
}

/// d(index_select(x, dim, indices)): each selected row's gradient added back to its source row.
pub struct IndexSelectBackward {
    input: Variable,
    input_shape: Vec<usize>,
    dim: isize,
    indices: Vec<usize>,
}

impl GradFn for IndexSelectBackward {
    fn name(&self) -> &'static str {
        "IndexSelectBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Add each row of g back to the row it was selected from (tensor::shape::index_select_backward).
        // BEGIN SOLUTION
        Ok(vec![Some(index_select_backward(
            g,
            &self.input_shape,
            self.dim,
            &self.indices,
        )?)])
        // END SOLUTION
    }
}

/// d(cat(xs, dim)): each input receives its own slice of the gradient.
pub struct CatBackward {
    inputs: Vec<Variable>,
    dim: isize,
    sizes: Vec<usize>,
}

impl GradFn for CatBackward {
    fn name(&self) -> &'static str {
        "CatBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        self.inputs.clone()
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Each input receives its own slice of g along dim (narrow from a running start by
        // HINT: its size), or None when it does not require grad.
        // BEGIN SOLUTION
        let mut start = 0;
        let mut out = Vec::with_capacity(self.sizes.len());
        for (input, &size) in self.inputs.iter().zip(&self.sizes) {
            out.push(if input.requires_grad() {
                Some(g.narrow(self.dim, start, size)?)
            } else {
                None
            });
            start += size;
        }
        Ok(out)
        // END SOLUTION
    }
}

/// d(stack(xs, dim)): each input receives its index of the new dimension.
pub struct StackBackward {
    inputs: Vec<Variable>,
    dim: isize,
}

impl GradFn for StackBackward {
    fn name(&self) -> &'static str {
        "StackBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        self.inputs.clone()
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Input i receives index i of the new dim of g (narrow to length 1, then squeeze), or
        // HINT: None when it does not require grad.
        // BEGIN SOLUTION
        let mut out = Vec::with_capacity(self.inputs.len());
        for (i, input) in self.inputs.iter().enumerate() {
            out.push(if input.requires_grad() {
                Some(g.narrow(self.dim, i, 1)?.squeeze(self.dim)?)
            } else {
                None
            });
        }
        Ok(out)
        // END SOLUTION
    }
}

impl Variable {
    /// New shape with the same elements; one entry may be `-1`.
    pub fn reshape(&self, shape: &[isize]) -> Result<Variable> {
        let x = self.value();
        let out = x.reshape(shape)?;
        record(
            out,
            &[self],
            ReshapeBackward {
                input: self.clone(),
                input_shape: x.shape().to_vec(),
            },
        )
    }

    /// New exact shape with the same elements.
    pub fn reshape_to(&self, shape: &[usize]) -> Result<Variable> {
        let x = self.value();
        let out = x.reshape_to(shape)?;
        record(
            out,
            &[self],
            ReshapeBackward {
                input: self.clone(),
                input_shape: x.shape().to_vec(),
            },
        )
    }

    /// Flatten dims `start..=end` into one.
    pub fn flatten(&self, start: isize, end: isize) -> Result<Variable> {
        let x = self.value();
        let out = x.flatten(start, end)?;
        record(
            out,
            &[self],
            ReshapeBackward {
                input: self.clone(),
                input_shape: x.shape().to_vec(),
            },
        )
    }

    /// Swap two dims (a view).
    pub fn transpose(&self, dim0: isize, dim1: isize) -> Result<Variable> {
        let out = self.value().transpose(dim0, dim1)?;
        record(
            out,
            &[self],
            TransposeBackward {
                input: self.clone(),
                dim0,
                dim1,
            },
        )
    }

    /// Transpose of a 2-D variable.
    pub fn t(&self) -> Result<Variable> {
        let out = self.value().t()?;
        record(
            out,
            &[self],
            TransposeBackward {
                input: self.clone(),
                dim0: 0,
                dim1: 1,
            },
        )
    }

    /// Reorder dims: output dim `i` is input dim `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Variable> {
        let out = self.value().permute(perm)?;
        let mut inverse = vec![0; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p] = i;
        }
        record(
            out,
            &[self],
            PermuteBackward {
                input: self.clone(),
                inverse,
            },
        )
    }

    /// Remove a size-1 dim.
    pub fn squeeze(&self, dim: isize) -> Result<Variable> {
        let x = self.value();
        let out = x.squeeze(dim)?;
        let d = if dim < 0 {
            dim + x.ndim() as isize
        } else {
            dim
        };
        record(
            out,
            &[self],
            SqueezeBackward {
                input: self.clone(),
                dim: d,
            },
        )
    }

    /// Insert a size-1 dim.
    pub fn unsqueeze(&self, dim: isize) -> Result<Variable> {
        let out = self.value().unsqueeze(dim)?;
        let d = if dim < 0 {
            dim + out.ndim() as isize
        } else {
            dim
        };
        record(
            out,
            &[self],
            UnsqueezeBackward {
                input: self.clone(),
                dim: d,
            },
        )
    }

    /// Repeat along broadcast dims to `shape`.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Variable> {
        let x = self.value();
        let out = x.broadcast_to(shape)?;
        record(
            out,
            &[self],
            ExpandBackward {
                input: self.clone(),
                input_shape: x.shape().to_vec(),
            },
        )
    }

    /// `len` entries of `dim` from `start`.
    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Result<Variable> {
        self.slice(dim, start, start + len, 1)
    }

    /// Entries `start..end` of `dim`, every `step`-th.
    pub fn slice(&self, dim: isize, start: usize, end: usize, step: usize) -> Result<Variable> {
        let x = self.value();
        let out = x.slice(dim, start, end, step)?;
        record(
            out,
            &[self],
            SliceBackward {
                input: self.clone(),
                input_shape: x.shape().to_vec(),
                dim,
                start,
                step,
            },
        )
    }

    /// Gather entries of `dim` at `indices` (an embedding lookup when `dim` is 0).
    pub fn index_select(&self, dim: isize, indices: &[usize]) -> Result<Variable> {
        let x = self.value();
        let out = x.index_select(dim, indices)?;
        record(
            out,
            &[self],
            IndexSelectBackward {
                input: self.clone(),
                input_shape: x.shape().to_vec(),
                dim,
                indices: indices.to_vec(),
            },
        )
    }

    /// Split `dim` into pieces of `size` (the last may be smaller).
    pub fn split(&self, size: usize, dim: isize) -> Result<Vec<Variable>> {
        let pieces = self.value().split(size, dim)?;
        let mut start = 0;
        let mut out = Vec::with_capacity(pieces.len());
        for piece in pieces {
            let len = piece.shape()[tensor_dim(dim, piece.ndim())];
            out.push(self.narrow(dim, start, len)?);
            start += len;
        }
        Ok(out)
    }

    /// Split `dim` into `chunks` nearly equal pieces.
    pub fn chunk(&self, chunks: usize, dim: isize) -> Result<Vec<Variable>> {
        let pieces = self.value().chunk(chunks, dim)?;
        let size = pieces
            .first()
            .map(|p| p.shape()[tensor_dim(dim, p.ndim())])
            .unwrap_or(1);
        self.split(size, dim)
    }

    /// Join variables along an existing dim.
    pub fn cat(inputs: &[Variable], dim: isize) -> Result<Variable> {
        let values: Vec<Tensor> = inputs.iter().map(|v| v.value()).collect();
        let out = Tensor::cat(&values, dim)?;
        let axis = tensor_dim(dim, out.ndim());
        let sizes = values.iter().map(|v| v.shape()[axis]).collect();
        let refs: Vec<&Variable> = inputs.iter().collect();
        record(
            out,
            &refs,
            CatBackward {
                inputs: inputs.to_vec(),
                dim,
                sizes,
            },
        )
    }

    /// Join equal-shape variables along a new dim.
    pub fn stack(inputs: &[Variable], dim: isize) -> Result<Variable> {
        let values: Vec<Tensor> = inputs.iter().map(|v| v.value()).collect();
        let out = Tensor::stack(&values, dim)?;
        let d = tensor_dim(dim, out.ndim()) as isize;
        let refs: Vec<&Variable> = inputs.iter().collect();
        if inputs.is_empty() {
            return Err(AutogradError::Invalid {
                op: "stack",
                reason: "needs at least one input".into(),
            });
        }
        record(
            out,
            &refs,
            StackBackward {
                inputs: inputs.to_vec(),
                dim: d,
            },
        )
    }
}

/// A dim already validated by the tensor op, made non-negative.
fn tensor_dim(dim: isize, ndim: usize) -> usize {
    if dim < 0 {
        (dim + ndim as isize) as usize
    } else {
        dim as usize
    }
}
