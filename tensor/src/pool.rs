//! Max-pool and average-pool over the `H` and `W` axes of an NCHW tensor, with backward kernels.
//!
//! Pooling summarises each `kh x kw` window of every `(n, c)` plane by one number, shrinking the
//! image and making features tolerant to small shifts. The output size follows
//! `floor((H + 2*p - k) / s) + 1` (PyTorch's default, `ceil_mode = false`).
//!
//! - Max-pool pads with `-inf` (padding never wins), keeps the first maximum on ties (NaN counts
//!   as the largest value, as in PyTorch) and records where each maximum came from in
//!   [`MaxPoolIndices`]; its backward routes each output gradient to that one input.
//! - Average-pool pads with zeros and always divides by `kh * kw` (`count_include_pad = true`,
//!   PyTorch's default); its backward spreads each output gradient evenly over its window.
//!
//! Like PyTorch, padding may be at most half the kernel, so every window holds a real element.
//! Work is split over the `N*C` planes with rayon.

use rayon::prelude::*;

use crate::conv::{dims4, for_each_plane, row_major, Conv2dGeometry};
use crate::error::{Result, TensorError};
use crate::tensor::{Tensor, PARALLEL_THRESHOLD};

/// Where each max-pool output came from: what [`max_pool2d_backward`] needs.
///
/// For output element `(n, c, y, x)` (row-major, like the output tensor), `indices()` holds the
/// flat index `ih * W + iw` of its maximum inside input plane `(n, c)`, as PyTorch's
/// `return_indices=True` does. Only [`max_pool2d`] builds it, so every index is valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaxPoolIndices {
    indices: Vec<u32>,
    input_shape: [usize; 4],
    output_shape: [usize; 4],
}

impl MaxPoolIndices {
    /// One index per output element, into its own `(n, c)` input plane (`ih * W + iw`).
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    /// The pooled input's shape `(N, C, H, W)`: the shape of the gradient backward returns.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// The pooled output's shape `(N, C, OH, OW)`: the shape backward expects for `grad_y`.
    pub fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }
}

/// The window sizes of one pooling call, after validation.
#[derive(Clone, Copy, Debug)]
struct PoolGeometry {
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
}

/// Check a pooling input shape and parameters; return `(N, C, H, W)` and `(OH, OW)`.
fn pool_shapes(
    op: &'static str,
    shape: &[usize],
    p: &PoolGeometry,
) -> Result<([usize; 4], (usize, usize))> {
    let dims = dims4(op, "(N, C, H, W)", shape)?;
    let [_, _, h, w] = dims;
    let g = Conv2dGeometry::new(p.kernel, p.stride, p.padding, (1, 1));
    let out = g.output_size_for(op, shape, h, w)?;
    if 2 * p.padding.0 > p.kernel.0 || 2 * p.padding.1 > p.kernel.1 {
        return Err(TensorError::invalid(
            op,
            shape,
            format!(
                "padding {:?} must be at most half the kernel {:?}, so that every window holds \
                 a real element",
                p.padding, p.kernel
            ),
        ));
    }
    if h == 0 || w == 0 {
        return Err(TensorError::invalid(
            op,
            shape,
            "cannot pool an empty plane: every window would lie in the padding",
        ));
    }
    Ok((dims, out))
}

/// The input rows (or columns) `lo..hi` covered by a window starting at padded coordinate
/// `start`, clipped to the real input `0..len`.
fn window(start: usize, pad: usize, k: usize, len: usize) -> (usize, usize) {
    let lo = start.saturating_sub(pad);
    let hi = (start + k).saturating_sub(pad).min(len);
    (lo, hi)
}

/// Max-pool one `h x w` plane `src` into `oh x ow` maxima `out` and their flat indices `argmax`.
fn max_pool_plane(
    src: &[f32],
    (h, w): (usize, usize),
    p: &PoolGeometry,
    (oh, ow): (usize, usize),
    out: &mut [f32],
    argmax: &mut [u32],
) {
    // HINT: window (y, x) covers input rows y*sh - ph .. y*sh - ph + kh (same for columns); `window` clips that to the image, which is all -inf padding means. Scan it in row-major order and keep a value only if strictly larger (ties -> first), with its index ih*w + iw. NaN never compares larger: if the plane has one, let the window's first NaN win.
    // BEGIN SOLUTION
    let (kh, kw) = p.kernel;
    let (sh, sw) = p.stride;
    let (ph, pw) = p.padding;
    // One cheap pass: NaN handling then stays out of the hot loop, whose only branch is `v > best`
    // (folding the NaN test into it measured 3x slower).
    let has_nan = src.iter().fold(false, |acc, v| acc | v.is_nan());
    for y in 0..oh {
        let (r0, r1) = window(y * sh, ph, kh, h);
        for x in 0..ow {
            let (c0, c1) = window(x * sw, pw, kw, w);
            let mut best = f32::NEG_INFINITY;
            let mut best_at = r0 * w + c0;
            for ih in r0..r1 {
                let start = ih * w + c0;
                for (at, &v) in (start..).zip(&src[start..ih * w + c1]) {
                    if v > best {
                        best = v;
                        best_at = at;
                    }
                }
            }
            if has_nan {
                let first_nan = (r0..r1)
                    .flat_map(|ih| ih * w + c0..ih * w + c1)
                    .find(|&at| src[at].is_nan());
                if let Some(at) = first_nan {
                    best = f32::NAN;
                    best_at = at;
                }
            }
            out[y * ow + x] = best;
            argmax[y * ow + x] = best_at as u32;
        }
    }
    // END SOLUTION
}

/// Route each output gradient of one plane, `grad_y`, to the input position that won the max.
fn max_pool_backward_plane(grad_y: &[f32], argmax: &[u32], grad_x: &mut [f32]) {
    // HINT: only the maximum influenced the output, so its gradient is 1 and everyone else's 0; overlapping windows may pick the same input, so accumulate with +=.
    // BEGIN SOLUTION
    for (&g, &at) in grad_y.iter().zip(argmax) {
        grad_x[at as usize] += g;
    }
    // END SOLUTION
}

/// Average-pool one `h x w` plane `src` into `out` (`oh x ow`), dividing every sum by `kh*kw`.
fn avg_pool_plane(
    src: &[f32],
    (h, w): (usize, usize),
    p: &PoolGeometry,
    (oh, ow): (usize, usize),
    out: &mut [f32],
) {
    // HINT: sum the window clipped to the image (padding adds zeros) and divide by kh*kw, the full window size (count_include_pad = true).
    // BEGIN SOLUTION
    let (kh, kw) = p.kernel;
    let (sh, sw) = p.stride;
    let (ph, pw) = p.padding;
    let divisor = (kh * kw) as f32;
    for y in 0..oh {
        let (r0, r1) = window(y * sh, ph, kh, h);
        for x in 0..ow {
            let (c0, c1) = window(x * sw, pw, kw, w);
            let mut sum = 0.0f32;
            for ih in r0..r1 {
                sum += src[ih * w + c0..ih * w + c1].iter().sum::<f32>();
            }
            out[y * ow + x] = sum / divisor;
        }
    }
    // END SOLUTION
}

/// Spread each output gradient of one plane, `grad_y` (`oh x ow`), over its window in the zeroed
/// input gradient `grad_x` (`h x w`).
fn avg_pool_backward_plane(
    grad_y: &[f32],
    (h, w): (usize, usize),
    p: &PoolGeometry,
    (oh, ow): (usize, usize),
    grad_x: &mut [f32],
) {
    // HINT: every real input of window (y, x) has weight 1/(kh*kw) in that output: add grad_y[y, x] / (kh*kw) to each of them (padding positions have no gradient to receive it).
    // BEGIN SOLUTION
    let (kh, kw) = p.kernel;
    let (sh, sw) = p.stride;
    let (ph, pw) = p.padding;
    let divisor = (kh * kw) as f32;
    for y in 0..oh {
        let (r0, r1) = window(y * sh, ph, kh, h);
        for x in 0..ow {
            let (c0, c1) = window(x * sw, pw, kw, w);
            let g = grad_y[y * ow + x] / divisor;
            for ih in r0..r1 {
                for v in &mut grad_x[ih * w + c0..ih * w + c1] {
                    *v += g;
                }
            }
        }
    }
    // END SOLUTION
}

/// 2-D max-pool of `x` `(N, C, H, W)` with `-inf` padding: returns the `(N, C, OH, OW)` maxima
/// and the [`MaxPoolIndices`] that [`max_pool2d_backward`] needs. Ties go to the first element
/// of the window in row-major order.
pub fn max_pool2d(
    x: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
) -> Result<(Tensor, MaxPoolIndices)> {
    const OP: &str = "max_pool2d";
    let p = PoolGeometry {
        kernel,
        stride,
        padding,
    };
    let ([n, c, h, w], (oh, ow)) = pool_shapes(OP, x.shape(), &p)?;
    let hw = h * w;
    if u32::try_from(hw).is_err() {
        return Err(TensorError::invalid(
            OP,
            x.shape(),
            format!("a plane of {hw} elements is too large for u32 indices"),
        ));
    }
    let x = x.contiguous();
    let src = row_major(OP, &x)?;
    let l = oh * ow;
    let mut out = vec![0.0f32; n * c * l];
    let mut argmax = vec![0u32; n * c * l];
    let work = l * kernel.0 * kernel.1;
    let plane = |pi: usize, (o, a): (&mut [f32], &mut [u32])| {
        max_pool_plane(&src[pi * hw..(pi + 1) * hw], (h, w), &p, (oh, ow), o, a)
    };
    if n * c * work < PARALLEL_THRESHOLD {
        out.chunks_mut(l)
            .zip(argmax.chunks_mut(l))
            .enumerate()
            .for_each(|(pi, oa)| plane(pi, oa));
    } else {
        let min_len = (PARALLEL_THRESHOLD / 4).div_ceil(work).max(1);
        out.par_chunks_mut(l)
            .zip(argmax.par_chunks_mut(l))
            .enumerate()
            .with_min_len(min_len)
            .for_each(|(pi, oa)| plane(pi, oa));
    }
    let output_shape = [n, c, oh, ow];
    let indices = MaxPoolIndices {
        indices: argmax,
        input_shape: [n, c, h, w],
        output_shape,
    };
    Ok((Tensor::from_vec(out, &output_shape)?, indices))
}

/// The gradient of [`max_pool2d`]'s input: each element of `grad_y` `(N, C, OH, OW)` is added to
/// the input position its maximum came from; all other positions get 0.
pub fn max_pool2d_backward(grad_y: &Tensor, indices: &MaxPoolIndices) -> Result<Tensor> {
    const OP: &str = "max_pool2d_backward";
    if grad_y.shape() != indices.output_shape {
        return Err(TensorError::mismatch(
            OP,
            grad_y.shape(),
            &indices.output_shape,
            "grad_y must have the shape of the pooled output",
        ));
    }
    let [_, _, h, w] = indices.input_shape;
    let [_, _, oh, ow] = indices.output_shape;
    let (hw, l) = (h * w, oh * ow);
    let grad_y = grad_y.contiguous();
    let gy = row_major(OP, &grad_y)?;
    let mut grad_x = vec![0.0f32; indices.input_shape.iter().product()];
    for_each_plane(&mut grad_x, hw, l, |pi, gx| {
        let range = pi * l..(pi + 1) * l;
        max_pool_backward_plane(&gy[range.clone()], &indices.indices[range], gx)
    });
    Tensor::from_vec(grad_x, &indices.input_shape)
}

/// 2-D average-pool of `x` `(N, C, H, W)` with zero padding counted in the divisor
/// (`count_include_pad = true`): every output is its window's sum divided by `kh * kw`.
pub fn avg_pool2d(
    x: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
) -> Result<Tensor> {
    const OP: &str = "avg_pool2d";
    let p = PoolGeometry {
        kernel,
        stride,
        padding,
    };
    let ([n, c, h, w], (oh, ow)) = pool_shapes(OP, x.shape(), &p)?;
    let x = x.contiguous();
    let src = row_major(OP, &x)?;
    let (hw, l) = (h * w, oh * ow);
    let mut out = vec![0.0f32; n * c * l];
    for_each_plane(&mut out, l, l * kernel.0 * kernel.1, |pi, o| {
        avg_pool_plane(&src[pi * hw..(pi + 1) * hw], (h, w), &p, (oh, ow), o)
    });
    Tensor::from_vec(out, &[n, c, oh, ow])
}

/// The gradient of [`avg_pool2d`]'s input (shape `input_shape`, `(N, C, H, W)`) from `grad_y`
/// `(N, C, OH, OW)`: each output gradient is shared equally, `1 / (kh * kw)` each, by the real
/// inputs of its window.
pub fn avg_pool2d_backward(
    grad_y: &Tensor,
    input_shape: &[usize],
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
) -> Result<Tensor> {
    const OP: &str = "avg_pool2d_backward";
    let p = PoolGeometry {
        kernel,
        stride,
        padding,
    };
    let ([n, c, h, w], (oh, ow)) = pool_shapes(OP, input_shape, &p)?;
    let expected = [n, c, oh, ow];
    if grad_y.shape() != expected {
        return Err(TensorError::mismatch(
            OP,
            grad_y.shape(),
            &expected,
            format!("grad_y must have the pooled output's shape for input {input_shape:?}"),
        ));
    }
    let grad_y = grad_y.contiguous();
    let gy = row_major(OP, &grad_y)?;
    let (hw, l) = (h * w, oh * ow);
    let mut grad_x = vec![0.0f32; n * c * hw];
    for_each_plane(&mut grad_x, hw, l * kernel.0 * kernel.1, |pi, gx| {
        avg_pool_backward_plane(&gy[pi * l..(pi + 1) * l], (h, w), &p, (oh, ow), gx)
    });
    Tensor::from_vec(grad_x, input_shape)
}
