//! Elementwise arithmetic, math functions, comparisons and selection, with NumPy broadcasting.
//!
//! Binary ops accept any two broadcast-compatible shapes (see [`crate::broadcast`]). Comparisons
//! return masks of `1.0` (true) and `0.0` (false), so a mask multiplies like any tensor.

use std::mem::MaybeUninit;

use ndarray::{ArrayD, IxDyn, Zip};
use rayon::prelude::*;

use crate::broadcast::broadcast_shapes;
use crate::error::{Result, TensorError};
use crate::simd::{simd_level, with_simd_at};
use crate::tensor::{Tensor, PARALLEL_THRESHOLD};

impl Tensor {
    /// Combine two tensors elementwise with broadcasting. `op` names the operation in errors.
    pub fn zip_with(
        &self,
        other: &Tensor,
        op: &'static str,
        f: impl Fn(f32, f32) -> f32 + Sync + Send,
    ) -> Result<Tensor> {
        // BEGIN SOLUTION
        // Fast path: same shape, both contiguous: one pass over two slices.
        if self.shape() == other.shape() {
            if let (Some(a), Some(b)) = (self.as_slice(), other.as_slice()) {
                return Ok(from_parts(zip_slices(a, b, f), self.shape()));
            }
        }
        // A one-element operand that adds no dimensions is a scalar.
        if other.numel() == 1 && other.ndim() <= self.ndim() {
            let s = other.data.iter().next().copied().unwrap_or(0.0);
            return Ok(self.map(|x| f(x, s)));
        }
        if self.numel() == 1 && self.ndim() <= other.ndim() {
            let s = self.data.iter().next().copied().unwrap_or(0.0);
            return Ok(other.map(|y| f(s, y)));
        }
        // General case: broadcast both to the common shape as views (no copies) and zip.
        let shape = broadcast_shapes(op, self.shape(), other.shape())?;
        let a = self.data.broadcast(IxDyn(&shape)).expect("shape checked");
        let b = other.data.broadcast(IxDyn(&shape)).expect("shape checked");
        let numel: usize = shape.iter().product();
        let out = if numel >= PARALLEL_THRESHOLD {
            Zip::from(&a).and(&b).par_map_collect(|&x, &y| f(x, y))
        } else {
            Zip::from(&a).and(&b).map_collect(|&x, &y| f(x, y))
        };
        Ok(Tensor::from_array(out))
        // END SOLUTION
    }

    /// `self + other`, broadcasting.
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        self.zip_with(other, "add", |a, b| a + b)
    }

    /// `self - other`, broadcasting.
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        self.zip_with(other, "sub", |a, b| a - b)
    }

    /// `self * other`, broadcasting.
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        self.zip_with(other, "mul", |a, b| a * b)
    }

    /// `self / other`, broadcasting.
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        self.zip_with(other, "div", |a, b| a / b)
    }

    /// `self ^ other` elementwise, broadcasting.
    pub fn pow(&self, other: &Tensor) -> Result<Tensor> {
        self.zip_with(other, "pow", f32::powf)
    }

    /// Elementwise maximum, broadcasting.
    pub fn maximum(&self, other: &Tensor) -> Result<Tensor> {
        self.zip_with(other, "maximum", f32::max)
    }

    /// Elementwise minimum, broadcasting.
    pub fn minimum(&self, other: &Tensor) -> Result<Tensor> {
        self.zip_with(other, "minimum", f32::min)
    }

    /// `self + s`.
    pub fn add_scalar(&self, s: f32) -> Tensor {
        self.map(|a| a + s)
    }

    /// `self - s`.
    pub fn sub_scalar(&self, s: f32) -> Tensor {
        self.map(|a| a - s)
    }

    /// `self * s`.
    pub fn mul_scalar(&self, s: f32) -> Tensor {
        self.map(|a| a * s)
    }

    /// `self / s`.
    pub fn div_scalar(&self, s: f32) -> Tensor {
        self.map(|a| a / s)
    }

    /// `self ^ p` for a scalar exponent.
    pub fn powf(&self, p: f32) -> Tensor {
        if p == 2.0 {
            self.map(|a| a * a)
        } else {
            self.map(|a| a.powf(p))
        }
    }

    /// `-self`.
    pub fn neg(&self) -> Tensor {
        self.map(|a| -a)
    }

    /// `e^self`.
    pub fn exp(&self) -> Tensor {
        self.map(f32::exp)
    }

    /// Natural logarithm (NaN for negative inputs, -inf at 0, as in IEEE arithmetic).
    pub fn log(&self) -> Tensor {
        self.map(f32::ln)
    }

    /// Square root.
    pub fn sqrt(&self) -> Tensor {
        self.map(f32::sqrt)
    }

    /// Absolute value.
    pub fn abs(&self) -> Tensor {
        self.map(f32::abs)
    }

    /// `1 / self`.
    pub fn recip(&self) -> Tensor {
        self.map(f32::recip)
    }

    /// Limit every element to `[min, max]`.
    pub fn clamp(&self, min: f32, max: f32) -> Result<Tensor> {
        if min > max || min.is_nan() || max.is_nan() {
            return Err(TensorError::invalid(
                "clamp",
                self.shape(),
                format!("needs min <= max, got min {min}, max {max}"),
            ));
        }
        Ok(self.map(|a| a.clamp(min, max)))
    }

    /// Mask of `self == other` (1.0 / 0.0), broadcasting.
    pub fn eq_mask(&self, other: &Tensor) -> Result<Tensor> {
        self.zip_with(other, "eq", |a, b| (a == b) as u8 as f32)
    }

    /// Mask of `self > other`, broadcasting.
    pub fn gt(&self, other: &Tensor) -> Result<Tensor> {
        self.zip_with(other, "gt", |a, b| (a > b) as u8 as f32)
    }

    /// Mask of `self >= other`, broadcasting.
    pub fn ge(&self, other: &Tensor) -> Result<Tensor> {
        self.zip_with(other, "ge", |a, b| (a >= b) as u8 as f32)
    }

    /// Mask of `self < other`, broadcasting.
    pub fn lt(&self, other: &Tensor) -> Result<Tensor> {
        self.zip_with(other, "lt", |a, b| (a < b) as u8 as f32)
    }

    /// Mask of `self <= other`, broadcasting.
    pub fn le(&self, other: &Tensor) -> Result<Tensor> {
        self.zip_with(other, "le", |a, b| (a <= b) as u8 as f32)
    }

    /// Mask of `self > s`.
    pub fn gt_scalar(&self, s: f32) -> Tensor {
        self.map(|a| (a > s) as u8 as f32)
    }

    /// Mask of `self < s`.
    pub fn lt_scalar(&self, s: f32) -> Tensor {
        self.map(|a| (a < s) as u8 as f32)
    }

    /// Mask of `self == s`.
    pub fn eq_scalar(&self, s: f32) -> Tensor {
        self.map(|a| (a == s) as u8 as f32)
    }

    /// Pick from `on_true` where `condition` is non-zero and from `on_false` elsewhere; all three
    /// broadcast together (like `torch.where`).
    pub fn where_cond(condition: &Tensor, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
        let shape = broadcast_shapes("where", condition.shape(), on_true.shape())?;
        let shape = broadcast_shapes("where", &shape, on_false.shape())?;
        let c = condition.data.broadcast(IxDyn(&shape)).expect("checked");
        let t = on_true.data.broadcast(IxDyn(&shape)).expect("checked");
        let f = on_false.data.broadcast(IxDyn(&shape)).expect("checked");
        Ok(Tensor::from_array(
            Zip::from(&c)
                .and(&t)
                .and(&f)
                .map_collect(|&c, &t, &f| if c != 0.0 { t } else { f }),
        ))
    }

    /// Replace elements where `mask` is non-zero by `value`; `mask` broadcasts to `self`'s shape.
    pub fn masked_fill(&self, mask: &Tensor, value: f32) -> Result<Tensor> {
        let shape = broadcast_shapes("masked_fill", self.shape(), mask.shape())?;
        if shape != self.shape() {
            return Err(TensorError::mismatch(
                "masked_fill",
                self.shape(),
                mask.shape(),
                "the mask must broadcast to the tensor's shape",
            ));
        }
        self.zip_with(mask, "masked_fill", |a, m| if m != 0.0 { value } else { a })
    }
}

/// Elements per parallel task in [`map_chunks`] and [`zip_chunks`]: each task runs a plain loop
/// over its chunk (which the compiler vectorizes), and 16k elements amortize the scheduling.
const ELEMENTWISE_CHUNK: usize = 1 << 14;

/// `kernel(dst, a)` over a contiguous slice, which must write every element of `dst` (a chunk of
/// the output, as long as its chunk of `a`). Large inputs are split in chunks across threads;
/// the output is written once, with no zero-fill first. Each chunk runs under
/// [`crate::simd::with_simd_at`], so an inlined kernel is vectorized for the CPU (and `mul_add`
/// is one instruction). Pass the kernel as a closure marked `#[inline(always)]`: a function
/// item passed as is was not inlined into the vectorized region (GELU ran 60x slower, one
/// library call per multiply-add).
pub(crate) fn map_chunks(
    a: &[f32],
    kernel: impl Fn(&mut [MaybeUninit<f32>], &[f32]) + Sync + Send,
) -> Vec<f32> {
    map_chunks_of(a, 1, kernel)
}

/// [`map_chunks`] with every chunk a whole number of `unit`s (rows of `unit` elements, for a
/// kernel that adds a row-long bias); `a.len()` must be a multiple of `unit`.
pub(crate) fn map_chunks_of(
    a: &[f32],
    unit: usize,
    kernel: impl Fn(&mut [MaybeUninit<f32>], &[f32]) + Sync + Send,
) -> Vec<f32> {
    assert!(
        unit > 0 && a.len().is_multiple_of(unit),
        "map_chunks_of: whole units"
    );
    let mut out = Vec::with_capacity(a.len());
    let dst = &mut out.spare_capacity_mut()[..a.len()];
    // Read on this thread, so the pool tasks honour the caller's level cap.
    let level = simd_level();
    let run = |dst: &mut [MaybeUninit<f32>], a: &[f32]| {
        with_simd_at(
            level,
            #[inline(always)]
            || kernel(dst, a),
        )
    };
    if a.len() >= PARALLEL_THRESHOLD {
        let chunk = (ELEMENTWISE_CHUNK / unit).max(1) * unit;
        dst.par_chunks_mut(chunk)
            .zip(a.par_chunks(chunk))
            .for_each(|(d, a)| run(d, a));
    } else {
        run(dst, a);
    }
    // SAFETY: the kernel writes every element of each chunk it is given (its contract).
    unsafe { out.set_len(a.len()) };
    out
}

/// `kernel(dst, a, b)` over two contiguous slices of equal length, like [`map_chunks`].
pub(crate) fn zip_chunks(
    a: &[f32],
    b: &[f32],
    kernel: impl Fn(&mut [MaybeUninit<f32>], &[f32], &[f32]) + Sync + Send,
) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "zip_chunks needs equal lengths");
    let mut out = Vec::with_capacity(a.len());
    let dst = &mut out.spare_capacity_mut()[..a.len()];
    let level = simd_level();
    let run = |dst: &mut [MaybeUninit<f32>], a: &[f32], b: &[f32]| {
        with_simd_at(
            level,
            #[inline(always)]
            || kernel(dst, a, b),
        )
    };
    if a.len() >= PARALLEL_THRESHOLD {
        dst.par_chunks_mut(ELEMENTWISE_CHUNK)
            .zip(a.par_chunks(ELEMENTWISE_CHUNK))
            .zip(b.par_chunks(ELEMENTWISE_CHUNK))
            .for_each(|((d, a), b)| run(d, a, b));
    } else {
        run(dst, a, b);
    }
    // SAFETY: the kernel writes every element of each chunk it is given (its contract).
    unsafe { out.set_len(a.len()) };
    out
}

/// `f` applied to every element of a contiguous slice ([`map_chunks`] with a plain loop).
pub(crate) fn map_slice(a: &[f32], f: impl Fn(f32) -> f32 + Sync + Send) -> Vec<f32> {
    map_chunks(
        a,
        #[inline(always)]
        |dst, a| {
            for (d, &x) in dst.iter_mut().zip(a) {
                d.write(f(x));
            }
        },
    )
}

/// `f` applied pairwise to two contiguous slices of equal length ([`zip_chunks`], plain loop).
pub(crate) fn zip_slices(
    a: &[f32],
    b: &[f32],
    f: impl Fn(f32, f32) -> f32 + Sync + Send,
) -> Vec<f32> {
    zip_chunks(
        a,
        b,
        #[inline(always)]
        |dst, a, b| {
            for ((d, &x), &y) in dst.iter_mut().zip(a).zip(b) {
                d.write(f(x, y));
            }
        },
    )
}

/// A row-major tensor from a buffer whose length matches `shape` (internal, unchecked by design).
pub(crate) fn from_parts(values: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor::from_array(ArrayD::from_shape_vec(IxDyn(shape), values).expect("length matches shape"))
}
