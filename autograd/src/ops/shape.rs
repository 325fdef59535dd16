//! Shape ops move elements without changing them, so their gradients move the gradient back:
//! reshape back, transpose back, scatter a slice into zeros, sum a broadcast away. Because these
//! are ops of the graph (and never a re-wrap of raw data), gradients always flow through them.

use tensor::shape::{index_select_backward, slice_backward};
use tensor::Tensor;

use super::record;
use crate::error::{AutogradError, Result};
use crate::variable::{GradFn, Variable};

/// The backward of a view that can be undone by another view or reshape.
enum View {
    Reshape {
        input_shape: Vec<usize>,
    },
    Transpose {
        dim0: isize,
        dim1: isize,
    },
    Permute {
        inverse: Vec<usize>,
    },
    Squeeze {
        dim: isize,
    },
    Unsqueeze {
        dim: isize,
    },
    Broadcast {
        input_shape: Vec<usize>,
    },
    Slice {
        input_shape: Vec<usize>,
        dim: isize,
        start: usize,
        step: usize,
    },
    IndexSelect {
        input_shape: Vec<usize>,
        dim: isize,
        indices: Vec<usize>,
    },
}

/// The backward of reshape, transpose, permute, (un)squeeze, broadcast, slice and index_select.
pub struct ViewBackward {
    input: Variable,
    op: View,
}

impl GradFn for ViewBackward {
    fn name(&self) -> &'static str {
        match self.op {
            View::Reshape { .. } => "ReshapeBackward",
            View::Transpose { .. } => "TransposeBackward",
            View::Permute { .. } => "PermuteBackward",
            View::Squeeze { .. } => "SqueezeBackward",
            View::Unsqueeze { .. } => "UnsqueezeBackward",
            View::Broadcast { .. } => "ExpandBackward",
            View::Slice { .. } => "SliceBackward",
            View::IndexSelect { .. } => "IndexSelectBackward",
        }
    }

    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }

    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Undo each view on the gradient: reshape back, transpose the same two dims, permute
        // HINT: by the inverse, unsqueeze what was squeezed (and vice versa), sum_to_shape a
        // HINT: broadcast, and scatter a slice or index_select back into zeros of the input shape.
        // BEGIN SOLUTION
        let dx = match &self.op {
            View::Reshape { input_shape } => g.reshape_to(input_shape)?,
            View::Transpose { dim0, dim1 } => g.transpose(*dim0, *dim1)?,
            View::Permute { inverse } => g.permute(inverse)?,
            View::Squeeze { dim } => g.unsqueeze(*dim)?,
            View::Unsqueeze { dim } => g.squeeze(*dim)?,
            View::Broadcast { input_shape } => g.sum_to_shape(input_shape)?,
            View::Slice {
                input_shape,
                dim,
                start,
                step,
            } => slice_backward(g, input_shape, *dim, *start, *step)?,
            View::IndexSelect {
                input_shape,
                dim,
                indices,
            } => index_select_backward(g, input_shape, *dim, indices)?,
        };
        Ok(vec![Some(dx)])
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
    fn view_op(&self, out: Tensor, op: View) -> Result<Variable> {
        record(
            out,
            &[self],
            ViewBackward {
                input: self.clone(),
                op,
            },
        )
    }

    /// New shape with the same elements; one entry may be `-1`.
    pub fn reshape(&self, shape: &[isize]) -> Result<Variable> {
        let x = self.value();
        let out = x.reshape(shape)?;
        self.view_op(
            out,
            View::Reshape {
                input_shape: x.shape().to_vec(),
            },
        )
    }

    /// New exact shape with the same elements.
    pub fn reshape_to(&self, shape: &[usize]) -> Result<Variable> {
        let x = self.value();
        let out = x.reshape_to(shape)?;
        self.view_op(
            out,
            View::Reshape {
                input_shape: x.shape().to_vec(),
            },
        )
    }

    /// Flatten dims `start..=end` into one.
    pub fn flatten(&self, start: isize, end: isize) -> Result<Variable> {
        let x = self.value();
        let out = x.flatten(start, end)?;
        self.view_op(
            out,
            View::Reshape {
                input_shape: x.shape().to_vec(),
            },
        )
    }

    /// Swap two dims (a view).
    pub fn transpose(&self, dim0: isize, dim1: isize) -> Result<Variable> {
        let out = self.value().transpose(dim0, dim1)?;
        self.view_op(out, View::Transpose { dim0, dim1 })
    }

    /// Transpose of a 2-D variable.
    pub fn t(&self) -> Result<Variable> {
        let out = self.value().t()?;
        self.view_op(out, View::Transpose { dim0: 0, dim1: 1 })
    }

    /// Reorder dims: output dim `i` is input dim `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Variable> {
        let out = self.value().permute(perm)?;
        let mut inverse = vec![0; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p] = i;
        }
        self.view_op(out, View::Permute { inverse })
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
        self.view_op(out, View::Squeeze { dim: d })
    }

    /// Insert a size-1 dim.
    pub fn unsqueeze(&self, dim: isize) -> Result<Variable> {
        let out = self.value().unsqueeze(dim)?;
        let d = if dim < 0 {
            dim + out.ndim() as isize
        } else {
            dim
        };
        self.view_op(out, View::Unsqueeze { dim: d })
    }

    /// Repeat along broadcast dims to `shape`.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Variable> {
        let x = self.value();
        let out = x.broadcast_to(shape)?;
        self.view_op(
            out,
            View::Broadcast {
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
        self.view_op(
            out,
            View::Slice {
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
        self.view_op(
            out,
            View::IndexSelect {
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
