//! Shape ops: reshape, transpose, permute, squeeze/unsqueeze, concat, stack, narrow/slice,
//! index_select, split/chunk, and the scatter kernels their gradients need.
//!
//! A tensor is a buffer plus a shape and strides. Transpose, permute, (un)squeeze, narrow and split
//! only change the strides and offset: they return views that share the buffer, with no copy.
//! Reshape is free when the elements are already in row-major order and copies once otherwise.

use ndarray::{concatenate, ArrayD, ArrayViewD, Axis, IxDyn, Slice};

use crate::error::{Result, TensorError};
use crate::tensor::{normalize_dim, Tensor};

impl Tensor {
    /// A tensor with the same elements in a new shape; one entry may be `-1` (inferred).
    pub fn reshape(&self, shape: &[isize]) -> Result<Tensor> {
        let numel = self.numel();
        let mut inferred = None;
        let mut known = 1usize;
        for (i, &s) in shape.iter().enumerate() {
            match s {
                -1 if inferred.is_none() => inferred = Some(i),
                s if s >= 0 => known *= s as usize,
                _ => {
                    return Err(TensorError::invalid(
                        "reshape",
                        self.shape(),
                        format!(
                        "invalid target shape {shape:?}: only one -1 and no other negative sizes"
                    ),
                    ))
                }
            }
        }
        let mut target: Vec<usize> = shape.iter().map(|&s| s.max(0) as usize).collect();
        if let Some(i) = inferred {
            if known == 0 || !numel.is_multiple_of(known) {
                return Err(TensorError::invalid(
                    "reshape",
                    self.shape(),
                    format!("cannot infer -1 in {shape:?}: {numel} elements are not a multiple of {known}"),
                ));
            }
            target[i] = numel / known;
        }
        self.reshape_to(&target)
    }

    /// A tensor with the same elements in the exact shape `shape`.
    pub fn reshape_to(&self, shape: &[usize]) -> Result<Tensor> {
        let numel: usize = shape.iter().product();
        if numel != self.numel() {
            return Err(TensorError::mismatch(
                "reshape",
                self.shape(),
                shape,
                format!("{} elements cannot be viewed as {numel}", self.numel()),
            ));
        }
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let base = self.contiguous();
        let data = base
            .data
            .into_shape_with_order(IxDyn(shape))
            .expect("row-major data with a matching element count reshapes");
        Ok(Tensor { data })
    }

    /// Flatten dimensions `start..=end` into one (negative dims count from the end).
    pub fn flatten(&self, start: isize, end: isize) -> Result<Tensor> {
        if self.ndim() == 0 {
            return self.reshape_to(&[1]);
        }
        let s = normalize_dim("flatten", start, self.shape())?;
        let e = normalize_dim("flatten", end, self.shape())?;
        if s > e {
            return Err(TensorError::invalid(
                "flatten",
                self.shape(),
                format!("start dim {start} comes after end dim {end}"),
            ));
        }
        let mut shape: Vec<usize> = self.shape()[..s].to_vec();
        shape.push(self.shape()[s..=e].iter().product());
        shape.extend_from_slice(&self.shape()[e + 1..]);
        self.reshape_to(&shape)
    }

    /// Swap two dimensions (a view: no copy).
    pub fn transpose(&self, dim0: isize, dim1: isize) -> Result<Tensor> {
        let a = normalize_dim("transpose", dim0, self.shape())?;
        let b = normalize_dim("transpose", dim1, self.shape())?;
        let mut data = self.data.clone();
        data.swap_axes(a, b);
        Ok(Tensor { data })
    }

    /// The transpose of a 2-D tensor (a view).
    pub fn t(&self) -> Result<Tensor> {
        if self.ndim() != 2 {
            return Err(TensorError::invalid(
                "t",
                self.shape(),
                "t() needs a 2-D tensor; use transpose(d0, d1)",
            ));
        }
        self.transpose(0, 1)
    }

    /// Reorder dimensions: output dim `i` is input dim `perm[i]` (a view).
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let n = self.ndim();
        let mut seen = vec![false; n];
        let valid = perm.len() == n
            && perm
                .iter()
                .all(|&p| p < n && !std::mem::replace(&mut seen[p], true));
        if !valid {
            return Err(TensorError::invalid(
                "permute",
                self.shape(),
                format!("{perm:?} is not a permutation of 0..{n}"),
            ));
        }
        Ok(Tensor {
            data: self.data.clone().permuted_axes(IxDyn(perm)),
        })
    }

    /// Remove dimension `dim`, which must have size 1 (a view).
    pub fn squeeze(&self, dim: isize) -> Result<Tensor> {
        let axis = normalize_dim("squeeze", dim, self.shape())?;
        if self.shape()[axis] != 1 {
            return Err(TensorError::invalid(
                "squeeze",
                self.shape(),
                format!("dimension {dim} has size {}, not 1", self.shape()[axis]),
            ));
        }
        Ok(Tensor {
            data: self.data.clone().remove_axis(Axis(axis)),
        })
    }

    /// Remove every dimension of size 1.
    pub fn squeeze_all(&self) -> Tensor {
        let shape: Vec<usize> = self.shape().iter().copied().filter(|&s| s != 1).collect();
        self.reshape_to(&shape).expect("same element count")
    }

    /// Insert a dimension of size 1 at `dim` (`-1` appends at the end) (a view).
    pub fn unsqueeze(&self, dim: isize) -> Result<Tensor> {
        let n = self.ndim() as isize;
        let d = if dim < 0 { dim + n + 1 } else { dim };
        if d < 0 || d > n {
            return Err(TensorError::InvalidDim {
                op: "unsqueeze",
                dim,
                shape: self.shape().to_vec(),
            });
        }
        Ok(Tensor {
            data: self.data.clone().insert_axis(Axis(d as usize)),
        })
    }

    /// `len` consecutive entries of `dim` starting at `start` (a view).
    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Result<Tensor> {
        self.slice(dim, start, start + len, 1)
    }

    /// Entries `start..end` of `dim` taking every `step`-th (a view), like `x[..., start:end:step]`.
    pub fn slice(&self, dim: isize, start: usize, end: usize, step: usize) -> Result<Tensor> {
        let axis = normalize_dim("slice", dim, self.shape())?;
        let size = self.shape()[axis];
        if start > end || end > size || step == 0 {
            return Err(TensorError::invalid(
                "slice",
                self.shape(),
                format!(
                    "range {start}..{end} step {step} does not fit dimension {dim} of size {size}"
                ),
            ));
        }
        let mut data = self.data.clone();
        data.slice_axis_inplace(
            Axis(axis),
            Slice::new(start as isize, Some(end as isize), step as isize),
        );
        Ok(Tensor { data })
    }

    /// Gather entries of `dim` at `indices` (a copy); `index_select(0, ids)` is an embedding lookup.
    pub fn index_select(&self, dim: isize, indices: &[usize]) -> Result<Tensor> {
        let axis = normalize_dim("index_select", dim, self.shape())?;
        let size = self.shape()[axis];
        if let Some(&bad) = indices.iter().find(|&&i| i >= size) {
            return Err(TensorError::IndexOutOfRange {
                op: "index_select",
                index: bad,
                size,
                shape: self.shape().to_vec(),
            });
        }
        // BEGIN SOLUTION
        if axis == 0 {
            if let Some(src) = self.as_slice() {
                // Row gather: copy whole contiguous rows.
                let row: usize = self.shape()[1..].iter().product();
                let mut out = Vec::with_capacity(indices.len() * row);
                for &i in indices {
                    out.extend_from_slice(&src[i * row..(i + 1) * row]);
                }
                let mut shape = self.shape().to_vec();
                shape[0] = indices.len();
                return Tensor::from_vec(out, &shape);
            }
        }
        Ok(Tensor::from_array(self.data.select(Axis(axis), indices)))
        // END SOLUTION
    }

    /// Split `dim` into pieces of `size` entries (the last may be smaller); views.
    pub fn split(&self, size: usize, dim: isize) -> Result<Vec<Tensor>> {
        let axis = normalize_dim("split", dim, self.shape())?;
        if size == 0 {
            return Err(TensorError::invalid(
                "split",
                self.shape(),
                "split size must be positive",
            ));
        }
        let total = self.shape()[axis];
        (0..total)
            .step_by(size)
            .map(|start| self.narrow(dim, start, size.min(total - start)))
            .collect()
    }

    /// Split `dim` into `chunks` nearly equal pieces (like `torch.chunk`); views.
    pub fn chunk(&self, chunks: usize, dim: isize) -> Result<Vec<Tensor>> {
        let axis = normalize_dim("chunk", dim, self.shape())?;
        if chunks == 0 {
            return Err(TensorError::invalid(
                "chunk",
                self.shape(),
                "the number of chunks must be positive",
            ));
        }
        let size = self.shape()[axis].div_ceil(chunks).max(1);
        self.split(size, dim)
    }

    /// Join tensors along an existing dimension; all other dimensions must agree.
    pub fn cat(tensors: &[Tensor], dim: isize) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| TensorError::invalid("cat", &[], "needs at least one tensor"))?;
        let axis = normalize_dim("cat", dim, first.shape())?;
        for t in &tensors[1..] {
            let same_rank = t.ndim() == first.ndim();
            let agree = same_rank
                && t.shape()
                    .iter()
                    .zip(first.shape())
                    .enumerate()
                    .all(|(i, (a, b))| i == axis || a == b);
            if !agree {
                return Err(TensorError::mismatch(
                    "cat",
                    first.shape(),
                    t.shape(),
                    format!("all dimensions except {dim} must match"),
                ));
            }
        }
        let views: Vec<ArrayViewD<'_, f32>> = tensors.iter().map(|t| t.data.view()).collect();
        let out: ArrayD<f32> = concatenate(Axis(axis), &views).expect("shapes checked");
        Ok(Tensor::from_array(out))
    }

    /// Join tensors of equal shape along a new dimension `dim`.
    pub fn stack(tensors: &[Tensor], dim: isize) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| TensorError::invalid("stack", &[], "needs at least one tensor"))?;
        for t in &tensors[1..] {
            if t.shape() != first.shape() {
                return Err(TensorError::mismatch(
                    "stack",
                    first.shape(),
                    t.shape(),
                    "all tensors must have the same shape",
                ));
            }
        }
        let expanded = tensors
            .iter()
            .map(|t| {
                t.unsqueeze(dim).map_err(|_| TensorError::InvalidDim {
                    op: "stack",
                    dim,
                    shape: first.shape().to_vec(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let n = first.ndim() as isize + 1;
        Tensor::cat(&expanded, if dim < 0 { dim + n } else { dim })
    }
}

/// The position `(i0, i1, ...)` of element `flat` of a row-major tensor of `shape` (NumPy's
/// `unravel_index`): the inverse of `flat = sum(index[d] * stride[d])` for contiguous strides.
/// Used to name an offending element in messages. A size-0 dim is treated as size 1.
pub fn unravel_index(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (d, &n) in shape.iter().enumerate().rev() {
        index[d] = flat % n.max(1);
        flat /= n.max(1);
    }
    index
}

/// The gradient of [`Tensor::slice`]: place `grad` at entries `start, start+step, ...` of `dim` in a
/// zero tensor of `input_shape`.
pub fn slice_backward(
    grad: &Tensor,
    input_shape: &[usize],
    dim: isize,
    start: usize,
    step: usize,
) -> Result<Tensor> {
    let axis = normalize_dim("slice_backward", dim, input_shape)?;
    let mut out = ArrayD::<f32>::zeros(IxDyn(input_shape));
    let end = start + grad.shape().get(axis).copied().unwrap_or(0) * step.max(1);
    let end = end.min(input_shape[axis]).max(start);
    {
        let mut region = out.slice_axis_mut(
            Axis(axis),
            Slice::new(start as isize, Some(end as isize), step.max(1) as isize),
        );
        if region.shape() != grad.shape() {
            return Err(TensorError::mismatch(
                "slice_backward",
                grad.shape(),
                input_shape,
                "the gradient does not fit the sliced region",
            ));
        }
        region.assign(&grad.data);
    }
    Ok(Tensor::from_array(out))
}

/// The gradient of [`Tensor::index_select`]: add slice `k` of `grad` into entry `indices[k]` of a
/// zero tensor of `input_shape` (repeated indices accumulate, as repeated tokens must).
pub fn index_select_backward(
    grad: &Tensor,
    input_shape: &[usize],
    dim: isize,
    indices: &[usize],
) -> Result<Tensor> {
    let axis = normalize_dim("index_select_backward", dim, input_shape)?;
    let size = input_shape[axis];
    if grad.shape().get(axis) != Some(&indices.len()) {
        return Err(TensorError::mismatch(
            "index_select_backward",
            grad.shape(),
            input_shape,
            format!(
                "the gradient must have {} entries along dim {dim}",
                indices.len()
            ),
        ));
    }
    if let Some(&bad) = indices.iter().find(|&&i| i >= size) {
        return Err(TensorError::IndexOutOfRange {
            op: "index_select_backward",
            index: bad,
            size,
            shape: input_shape.to_vec(),
        });
    }
    // BEGIN SOLUTION
    let mut out = ArrayD::<f32>::zeros(IxDyn(input_shape));
    for (k, &i) in indices.iter().enumerate() {
        let src = grad.data.index_axis(Axis(axis), k);
        let mut dst = out.index_axis_mut(Axis(axis), i);
        dst += &src;
    }
    Ok(Tensor::from_array(out))
    // END SOLUTION
}
