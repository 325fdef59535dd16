//! The `Tensor` type: an n-dimensional array of `f32` with cheap clones.
//!
//! Storage is an `ndarray::ArcArray<f32, IxDyn>`: cloning a tensor copies a pointer, and shape ops
//! such as transpose or narrow produce views that share the same buffer (copy-on-write). Every op
//! returns a new tensor; nothing mutates a tensor another handle can see.

use ndarray::{ArcArray, ArrayD, ArrayViewD, IxDyn, Zip};

use crate::error::{Result, TensorError};

/// Element counts above which kernels (elementwise maps, row kernels, pooling, im2col) split
/// their work across threads. Handing work to the rayon pool and waiting for it costs about
/// 8-12 us per call on the 2-core machine the project is tuned on, while these kernels process
/// roughly 2-5 elements per ns on one core; below about 64k elements the hand-off eats the gain.
pub(crate) const PARALLEL_THRESHOLD: usize = 1 << 16;

/// An n-dimensional array of `f32`. Cloning is O(1).
#[derive(Clone)]
pub struct Tensor {
    pub(crate) data: ArcArray<f32, IxDyn>,
}

impl Tensor {
    // ----- constructors -----

    /// A tensor holding `values` in row-major order with the given `shape`.
    pub fn from_vec(values: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
        let numel: usize = shape.iter().product();
        if values.len() != numel {
            return Err(TensorError::DataLength {
                op: "from_vec",
                len: values.len(),
                shape: shape.to_vec(),
                numel,
            });
        }
        Ok(Tensor::from_array(
            ArrayD::from_shape_vec(IxDyn(shape), values).expect("length checked above"),
        ))
    }

    /// Wrap an owned ndarray array.
    pub fn from_array(array: ArrayD<f32>) -> Tensor {
        Tensor {
            data: array.into_shared(),
        }
    }

    /// Wrap a shared ndarray array (no copy).
    pub fn from_shared(array: ArcArray<f32, IxDyn>) -> Tensor {
        Tensor { data: array }
    }

    /// A 0-dimensional tensor holding one value.
    pub fn scalar(value: f32) -> Tensor {
        Tensor::from_array(ArrayD::from_elem(IxDyn(&[]), value))
    }

    /// A tensor of the given shape filled with `value`.
    pub fn full(shape: &[usize], value: f32) -> Tensor {
        Tensor::from_array(ArrayD::from_elem(IxDyn(shape), value))
    }

    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor::full(shape, 0.0)
    }

    /// A tensor of ones.
    pub fn ones(shape: &[usize]) -> Tensor {
        Tensor::full(shape, 1.0)
    }

    /// Zeros with the shape of `self`.
    pub fn zeros_like(&self) -> Tensor {
        Tensor::zeros(self.shape())
    }

    /// Ones with the shape of `self`.
    pub fn ones_like(&self) -> Tensor {
        Tensor::ones(self.shape())
    }

    /// The 1-D tensor `start, start + step, ...` up to but excluding `end` (like `torch.arange`).
    pub fn arange(start: f32, end: f32, step: f32) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(TensorError::invalid(
                "arange",
                &[],
                format!("needs finite start/end and a non-zero step, got start {start}, end {end}, step {step}"),
            ));
        }
        let count = ((end - start) / step).ceil().max(0.0) as usize;
        let values = (0..count).map(|i| start + step * i as f32).collect();
        Tensor::from_vec(values, &[count])
    }

    /// The `n x n` identity matrix.
    pub fn eye(n: usize) -> Tensor {
        Tensor::from_array(ArrayD::from_shape_fn(IxDyn(&[n, n]), |ix| {
            if ix[0] == ix[1] {
                1.0
            } else {
                0.0
            }
        }))
    }

    // ----- inspection -----

    /// The size of each dimension.
    pub fn shape(&self) -> &[usize] {
        self.data.shape()
    }

    /// The number of dimensions.
    pub fn ndim(&self) -> usize {
        self.data.ndim()
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// Element strides, in elements (a transposed view has swapped strides).
    pub fn strides(&self) -> &[isize] {
        self.data.strides()
    }

    /// Whether the elements lie in row-major order with no gaps.
    pub fn is_contiguous(&self) -> bool {
        self.data.is_standard_layout()
    }

    /// The elements as a row-major slice, when the layout is contiguous.
    pub fn as_slice(&self) -> Option<&[f32]> {
        self.data.as_slice()
    }

    /// The underlying shared ndarray (read-only).
    pub fn array(&self) -> &ArcArray<f32, IxDyn> {
        &self.data
    }

    /// A read-only ndarray view.
    pub fn view(&self) -> ArrayViewD<'_, f32> {
        self.data.view()
    }

    /// A row-major copy of the elements.
    pub fn to_vec(&self) -> Vec<f32> {
        match self.data.as_slice() {
            Some(s) => s.to_vec(),
            None => self.data.iter().copied().collect(),
        }
    }

    /// The elements in row-major order, copying only when the layout is not contiguous.
    pub fn contiguous(&self) -> Tensor {
        if self.is_contiguous() {
            self.clone()
        } else {
            Tensor::from_array(self.data.as_standard_layout().into_owned())
        }
    }

    /// The elements as a mutable row-major slice, for in-place updates (optimizer steps).
    ///
    /// Makes the storage contiguous and unshared first (copy-on-write), so other handles to the
    /// old buffer never see the change.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        if !self.is_contiguous() {
            *self = self.contiguous();
        }
        self.data
            .as_slice_mut()
            .expect("a contiguous array has a row-major slice")
    }

    /// The single value of a one-element tensor.
    pub fn item(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(TensorError::invalid(
                "item",
                self.shape(),
                "only a one-element tensor has an item",
            ));
        }
        Ok(*self.data.iter().next().expect("one element"))
    }

    /// The element at a full index.
    pub fn get(&self, index: &[usize]) -> Result<f32> {
        if index.len() != self.ndim() {
            return Err(TensorError::invalid(
                "get",
                self.shape(),
                format!("index {index:?} has {} coordinates", index.len()),
            ));
        }
        for (&i, &n) in index.iter().zip(self.shape()) {
            if i >= n {
                return Err(TensorError::IndexOutOfRange {
                    op: "get",
                    index: i,
                    size: n,
                    shape: self.shape().to_vec(),
                });
            }
        }
        Ok(self.data[IxDyn(index)])
    }

    /// Whether all elements are finite (no NaN or infinity).
    pub fn all_finite(&self) -> bool {
        self.data.iter().all(|v| v.is_finite())
    }

    /// Largest absolute elementwise difference to `other` (shapes must match exactly).
    pub fn max_abs_diff(&self, other: &Tensor) -> Result<f32> {
        if self.shape() != other.shape() {
            return Err(TensorError::mismatch(
                "max_abs_diff",
                self.shape(),
                other.shape(),
                "shapes must be equal",
            ));
        }
        Ok(Zip::from(&self.data)
            .and(&other.data)
            .fold(0.0f32, |m, a, b| m.max((a - b).abs())))
    }

    /// Whether `|self - other| <= atol + rtol * |other|` holds everywhere (shapes must match).
    pub fn allclose(&self, other: &Tensor, rtol: f32, atol: f32) -> bool {
        self.shape() == other.shape()
            && Zip::from(&self.data)
                .and(&other.data)
                .fold(true, |ok, a, b| {
                    ok && (a - b).abs() <= atol + rtol * b.abs()
                })
    }

    /// Apply `f` to every element, in parallel for large tensors.
    pub fn map(&self, f: impl Fn(f32) -> f32 + Sync + Send) -> Tensor {
        if let Some(a) = self.as_slice() {
            return crate::elementwise::from_parts(
                crate::elementwise::map_slice(a, f),
                self.shape(),
            );
        }
        if self.numel() >= PARALLEL_THRESHOLD {
            Tensor::from_array(Zip::from(&self.data).par_map_collect(|&v| f(v)))
        } else {
            Tensor::from_array(self.data.mapv(f))
        }
    }
}

/// Turn a possibly negative dimension (`-1` is the last) into an index, or name the op that failed.
pub(crate) fn normalize_dim(op: &'static str, dim: isize, shape: &[usize]) -> Result<usize> {
    let ndim = shape.len() as isize;
    let d = if dim < 0 { dim + ndim } else { dim };
    if d < 0 || d >= ndim {
        return Err(TensorError::InvalidDim {
            op,
            dim,
            shape: shape.to_vec(),
        });
    }
    Ok(d as usize)
}

impl PartialEq for Tensor {
    /// Equal shapes and exactly equal elements.
    fn eq(&self, other: &Self) -> bool {
        self.shape() == other.shape() && self.data == other.data
    }
}
