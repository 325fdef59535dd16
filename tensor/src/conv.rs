//! Convolution as matrix multiplication: `im2col` and `col2im` for NCHW tensors.
//!
//! A 2-D convolution slides a `kh x kw` kernel over every channel of an image. [`im2col`] copies
//! every receptive field into one column of a matrix, so that the whole convolution of an image
//! becomes a single GEMM, the fastest kernel we have. Its layout for an input `(N, C, H, W)` is
//! `(N, C*kh*kw, OH*OW)` with row `c*kh*kw + i*kw + j` (kernel tap `(i, j)` of channel `c`): the
//! order of a PyTorch weight `(O, C, kh, kw)` flattened to `(O, C*kh*kw)`. Per image,
//! `weight (O, C*kh*kw) @ cols (C*kh*kw, OH*OW)` is `(O, OH*OW)`, already the `(O, OH, OW)`
//! output: no permute is needed.
//!
//! [`col2im`] is the adjoint of `im2col`: it scatters the columns back onto the image, summing
//! where receptive fields overlap. Given the gradient of the columns (`weight^T @ grad_out`), it
//! returns the gradient of the input, so it is the backward kernel of convolution.
//! [`conv2d_naive`] is the direct loop definition, kept as the teaching reference and the oracle
//! of the tests.

use std::ops::Range;

use rayon::prelude::*;

use crate::error::{Result, TensorError};
use crate::tensor::{Tensor, PARALLEL_THRESHOLD};

/// The hyper-parameters of a 2-D convolution, each as `(height, width)`.
///
/// The output size follows `floor((H + 2*p - d*(k - 1) - 1) / s) + 1` on each axis (PyTorch's
/// formula); see [`Conv2dGeometry::output_size`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeometry {
    /// Kernel size `(kh, kw)`.
    pub kernel: (usize, usize),
    /// Step between two neighbouring windows, `(sh, sw)`; at least 1.
    pub stride: (usize, usize),
    /// Zeros added on each side of the input, `(ph, pw)`.
    pub padding: (usize, usize),
    /// Spacing between kernel taps, `(dh, dw)`; 1 is a dense kernel.
    pub dilation: (usize, usize),
}

impl Conv2dGeometry {
    /// A geometry with every knob given explicitly.
    pub fn new(
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        dilation: (usize, usize),
    ) -> Self {
        Conv2dGeometry {
            kernel,
            stride,
            padding,
            dilation,
        }
    }

    /// A dense kernel with stride 1 and no padding (PyTorch's defaults).
    pub fn with_kernel(kernel: (usize, usize)) -> Self {
        Conv2dGeometry::new(kernel, (1, 1), (0, 0), (1, 1))
    }

    /// The number of kernel taps per input channel, `kh * kw`.
    pub fn kernel_numel(&self) -> usize {
        self.kernel.0 * self.kernel.1
    }

    /// The output size `(OH, OW)` for an input of height `h` and width `w`:
    /// `floor((H + 2*p - d*(k - 1) - 1) / s) + 1` per axis. Errors when a kernel side, stride or
    /// dilation is 0, or when the (dilated) kernel does not fit in the padded input.
    pub fn output_size(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        self.output_size_for("conv2d", &[h, w], h, w)
    }

    /// [`Conv2dGeometry::output_size`] with the failing op and its input shape in the error.
    pub(crate) fn output_size_for(
        &self,
        op: &'static str,
        shape: &[usize],
        h: usize,
        w: usize,
    ) -> Result<(usize, usize)> {
        let g = self;
        if g.kernel.0 == 0 || g.kernel.1 == 0 {
            return Err(TensorError::invalid(
                op,
                shape,
                format!("kernel {:?} must be at least 1 on each side", g.kernel),
            ));
        }
        if g.stride.0 == 0 || g.stride.1 == 0 {
            return Err(TensorError::invalid(
                op,
                shape,
                format!("stride {:?} must be at least 1 on each side", g.stride),
            ));
        }
        if g.dilation.0 == 0 || g.dilation.1 == 0 {
            return Err(TensorError::invalid(
                op,
                shape,
                format!("dilation {:?} must be at least 1 on each side", g.dilation),
            ));
        }
        let axis = |name: &str, len: usize, k: usize, s: usize, p: usize, d: usize| {
            let span = d * (k - 1) + 1;
            let padded = len + 2 * p;
            if span > padded {
                Err(TensorError::invalid(
                    op,
                    shape,
                    format!(
                        "kernel {:?} with dilation {:?} spans {span} along the {name}, more than \
                         the padded {name} {padded} ({len} + 2 * padding {p})",
                        g.kernel, g.dilation
                    ),
                ))
            } else {
                Ok((padded - span) / s + 1)
            }
        };
        let oh = axis(
            "height",
            h,
            g.kernel.0,
            g.stride.0,
            g.padding.0,
            g.dilation.0,
        )?;
        let ow = axis(
            "width",
            w,
            g.kernel.1,
            g.stride.1,
            g.padding.1,
            g.dilation.1,
        )?;
        Ok((oh, ow))
    }
}

/// The four sizes of an `(N, C, H, W)`-like shape, or an error naming the op and the layout.
pub(crate) fn dims4(op: &'static str, what: &str, shape: &[usize]) -> Result<[usize; 4]> {
    match shape {
        &[a, b, c, d] => Ok([a, b, c, d]),
        _ => Err(TensorError::invalid(
            op,
            shape,
            format!(
                "expects a 4-D {what} tensor, got {} dimensions",
                shape.len()
            ),
        )),
    }
}

/// The contiguous elements of a tensor that `.contiguous()` was called on.
pub(crate) fn row_major<'a>(op: &'static str, t: &'a Tensor) -> Result<&'a [f32]> {
    t.as_slice().ok_or_else(|| {
        TensorError::invalid(op, t.shape(), "internal: expected a contiguous tensor")
    })
}

/// The outputs `o` in `0..out_len` whose input coordinate `o * stride + offset` falls inside
/// `0..in_len`. They always form one range: outside it the kernel tap reads padding.
pub(crate) fn valid_range(
    out_len: usize,
    in_len: usize,
    stride: usize,
    offset: isize,
) -> Range<usize> {
    let s = stride as isize;
    let lo = if offset >= 0 {
        0
    } else {
        (-offset + s - 1) / s
    };
    let end = in_len as isize - offset; // o * s < end
    let hi = if end <= 0 { 0 } else { (end + s - 1) / s };
    let hi = (hi as usize).min(out_len);
    let lo = (lo as usize).min(hi);
    lo..hi
}

/// Run `f(plane_index, plane)` on each `plane_len`-sized chunk of `out`, in parallel over the
/// chunks when the total work (`work_per_plane` per chunk) is large enough to pay for threads.
pub(crate) fn for_each_plane<F>(out: &mut [f32], plane_len: usize, work_per_plane: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    if plane_len == 0 || out.is_empty() {
        return;
    }
    let planes = out.len() / plane_len;
    if planes < 2 || planes * work_per_plane < PARALLEL_THRESHOLD {
        out.chunks_mut(plane_len)
            .enumerate()
            .for_each(|(p, plane)| f(p, plane));
    } else {
        // Group small planes so each task does at least ~16k elements of work.
        let min_len = (PARALLEL_THRESHOLD / 4)
            .div_ceil(work_per_plane.max(1))
            .max(1);
        out.par_chunks_mut(plane_len)
            .enumerate()
            .with_min_len(min_len)
            .for_each(|(p, plane)| f(p, plane));
    }
}

/// Unfold one `(n, c)` input plane `src` (`h x w`, row-major) into its `kh*kw` rows of the column
/// matrix `dst` (`kh*kw x oh*ow`): row `i*kw + j`, column `y*ow + x` holds the input pixel under
/// kernel tap `(i, j)` when the window sits at output position `(y, x)`, or 0 in the padding.
fn im2col_plane(
    src: &[f32],
    (h, w): (usize, usize),
    g: &Conv2dGeometry,
    (oh, ow): (usize, usize),
    dst: &mut [f32],
) {
    // HINT: tap (i, j) of output (y, x) reads input (y*sh + i*dh - ph, x*sw + j*dw - pw). `valid_range` gives the outputs whose pixel lies inside the image; write 0 for the others (padding). With stride 1 a row of outputs reads a contiguous run of one input row: copy it as one slice.
    // BEGIN SOLUTION
    let (kh, kw) = g.kernel;
    let (sh, sw) = g.stride;
    let (ph, pw) = g.padding;
    let (dh, dw) = g.dilation;
    let l = oh * ow;
    for i in 0..kh {
        let ys = valid_range(oh, h, sh, (i * dh) as isize - ph as isize);
        for j in 0..kw {
            let row = &mut dst[(i * kw + j) * l..][..l];
            let xs = valid_range(ow, w, sw, (j * dw) as isize - pw as isize);
            if xs.is_empty() || ys.is_empty() {
                row.fill(0.0);
                continue;
            }
            // Output rows whose tap falls in the top or bottom padding.
            row[..ys.start * ow].fill(0.0);
            row[ys.end * ow..].fill(0.0);
            for y in ys.clone() {
                let ih = y * sh + i * dh - ph;
                let src_row = &src[ih * w..(ih + 1) * w];
                let out = &mut row[y * ow..(y + 1) * ow];
                out[..xs.start].fill(0.0);
                out[xs.end..].fill(0.0);
                let iw0 = xs.start * sw + j * dw - pw;
                if sw == 1 {
                    out[xs.clone()].copy_from_slice(&src_row[iw0..iw0 + xs.len()]);
                } else {
                    for (o, &v) in out[xs.clone()]
                        .iter_mut()
                        .zip(src_row[iw0..].iter().step_by(sw))
                    {
                        *o = v;
                    }
                }
            }
        }
    }
    // END SOLUTION
}

/// Fold the `kh*kw x oh*ow` columns `src` of one `(n, c)` plane back onto the zeroed `h x w`
/// plane `dst`, adding every column entry to the input pixel it was copied from.
fn col2im_plane(
    src: &[f32],
    (h, w): (usize, usize),
    g: &Conv2dGeometry,
    (oh, ow): (usize, usize),
    dst: &mut [f32],
) {
    // HINT: walk exactly the loops of im2col_plane, but where im2col copies `out = input` do `input += col`; entries that im2col read from the padding are dropped.
    // BEGIN SOLUTION
    let (kh, kw) = g.kernel;
    let (sh, sw) = g.stride;
    let (ph, pw) = g.padding;
    let (dh, dw) = g.dilation;
    let l = oh * ow;
    for i in 0..kh {
        let ys = valid_range(oh, h, sh, (i * dh) as isize - ph as isize);
        for j in 0..kw {
            let xs = valid_range(ow, w, sw, (j * dw) as isize - pw as isize);
            if xs.is_empty() {
                continue;
            }
            let row = &src[(i * kw + j) * l..][..l];
            for y in ys.clone() {
                let ih = y * sh + i * dh - ph;
                let dst_row = &mut dst[ih * w..(ih + 1) * w];
                let col = &row[y * ow..(y + 1) * ow][xs.clone()];
                let iw0 = xs.start * sw + j * dw - pw;
                if sw == 1 {
                    for (d, &c) in dst_row[iw0..iw0 + col.len()].iter_mut().zip(col) {
                        *d += c;
                    }
                } else {
                    for (d, &c) in dst_row[iw0..].iter_mut().step_by(sw).zip(col) {
                        *d += c;
                    }
                }
            }
        }
    }
    // END SOLUTION
}

/// Unfold the receptive fields of `x` `(N, C, H, W)` into columns `(N, C*kh*kw, OH*OW)`.
///
/// Row `c*kh*kw + i*kw + j` of image `n` holds, for every output position, the input value
/// under kernel tap `(i, j)` of channel `c` (zero in the padding). A convolution is then, per
/// image, `weight.reshape(O, C*kh*kw) @ cols[n]`, shaped `(O, OH*OW)` = `(O, OH, OW)`.
/// Non-contiguous inputs are copied once. Work is split over the `N*C` planes with rayon.
pub fn im2col(x: &Tensor, g: &Conv2dGeometry) -> Result<Tensor> {
    const OP: &str = "im2col";
    let [n, c, h, w] = dims4(OP, "(N, C, H, W)", x.shape())?;
    let (oh, ow) = g.output_size_for(OP, x.shape(), h, w)?;
    let x = x.contiguous();
    let src = row_major(OP, &x)?;
    let k = g.kernel_numel();
    let plane_out = k * oh * ow;
    let mut out = vec![0.0f32; n * c * plane_out];
    let hw = h * w;
    for_each_plane(&mut out, plane_out, plane_out, |p, dst| {
        im2col_plane(&src[p * hw..(p + 1) * hw], (h, w), g, (oh, ow), dst)
    });
    Tensor::from_vec(out, &[n, c * k, oh * ow])
}

/// The adjoint of [`im2col`]: scatter columns `(N, C*kh*kw, OH*OW)` back onto an input of shape
/// `input_shape` `(N, C, H, W)`, summing the entries of overlapping receptive fields.
///
/// With `cols = weight^T @ grad_output` (per image), this returns the gradient of the
/// convolution's input. `<im2col(x), c> == <x, col2im(c)>` for every `x` and `c`.
pub fn col2im(cols: &Tensor, input_shape: &[usize], g: &Conv2dGeometry) -> Result<Tensor> {
    const OP: &str = "col2im";
    let [n, c, h, w] = dims4(OP, "(N, C, H, W) input shape", input_shape)?;
    let (oh, ow) = g.output_size_for(OP, input_shape, h, w)?;
    let k = g.kernel_numel();
    let expected = [n, c * k, oh * ow];
    if cols.shape() != expected {
        return Err(TensorError::mismatch(
            OP,
            cols.shape(),
            &expected,
            format!(
                "columns for input {input_shape:?} with kernel {:?}, stride {:?}, padding {:?}, \
                 dilation {:?} must have shape (N, C*kh*kw, OH*OW) = {expected:?}",
                g.kernel, g.stride, g.padding, g.dilation
            ),
        ));
    }
    let cols = cols.contiguous();
    let src = row_major(OP, &cols)?;
    let plane_in = k * oh * ow;
    let mut out = vec![0.0f32; n * c * h * w];
    for_each_plane(&mut out, h * w, plane_in, |p, dst| {
        col2im_plane(
            &src[p * plane_in..(p + 1) * plane_in],
            (h, w),
            g,
            (oh, ow),
            dst,
        )
    });
    Tensor::from_vec(out, input_shape)
}

/// Direct 2-D convolution (cross-correlation, as in PyTorch) by its definition:
///
/// `y[n, o, oy, ox] = bias[o] + sum_{c, i, j} weight[o, c, i, j] * x[n, c, oy*sh + i*dh - ph, ox*sw + j*dw - pw]`
///
/// with zero padding. `x` is `(N, C, H, W)`, `weight` `(O, C, kh, kw)` (its kernel must equal
/// `g.kernel`), `bias` `(O,)`; the result is `(N, O, OH, OW)`. Seven nested loops and no tricks:
/// this is the teaching reference and the oracle the fast path is tested against, not the path
/// to train with.
pub fn conv2d_naive(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    g: &Conv2dGeometry,
) -> Result<Tensor> {
    const OP: &str = "conv2d_naive";
    let [n, c, h, w] = dims4(OP, "(N, C, H, W) input", x.shape())?;
    let [o, wc, kh, kw] = dims4(OP, "(O, C, kh, kw) weight", weight.shape())?;
    if wc != c {
        return Err(TensorError::mismatch(
            OP,
            x.shape(),
            weight.shape(),
            format!("the input has {c} channels but the weight expects {wc}"),
        ));
    }
    if (kh, kw) != g.kernel {
        return Err(TensorError::mismatch(
            OP,
            weight.shape(),
            &[g.kernel.0, g.kernel.1],
            format!(
                "the weight's kernel ({kh}, {kw}) differs from the geometry's kernel {:?}",
                g.kernel
            ),
        ));
    }
    if let Some(b) = bias {
        if b.shape() != [o] {
            return Err(TensorError::mismatch(
                OP,
                b.shape(),
                &[o],
                format!("the bias must have one value per output channel ({o})"),
            ));
        }
    }
    let (oh, ow) = g.output_size_for(OP, x.shape(), h, w)?;
    let x = x.contiguous();
    let xs = row_major(OP, &x)?;
    let weight = weight.contiguous();
    let ws = row_major(OP, &weight)?;
    let bias = bias.map(|b| b.to_vec());
    let (sh, sw) = g.stride;
    let (ph, pw) = g.padding;
    let (dh, dw) = g.dilation;
    let mut out = vec![0.0f32; n * o * oh * ow];
    let mut idx = 0;
    for b in 0..n {
        for oc in 0..o {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = bias.as_ref().map_or(0.0, |bv| bv[oc]);
                    for ci in 0..c {
                        for i in 0..kh {
                            for j in 0..kw {
                                let iy = (oy * sh + i * dh) as isize - ph as isize;
                                let ix = (ox * sw + j * dw) as isize - pw as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue; // zero padding
                                }
                                let xv = xs[((b * c + ci) * h + iy as usize) * w + ix as usize];
                                let wv = ws[((oc * c + ci) * kh + i) * kw + j];
                                acc += wv * xv;
                            }
                        }
                    }
                    out[idx] = acc;
                    idx += 1;
                }
            }
        }
    }
    Tensor::from_vec(out, &[n, o, oh, ow])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The range of output positions whose input index falls inside the image equals a brute-force
    /// filter, for every small length, stride and offset.
    #[test]
    fn valid_range_matches_brute_force() {
        for out_len in 0..7 {
            for in_len in 0..7 {
                for stride in 1..4 {
                    for offset in -5isize..5 {
                        let r = valid_range(out_len, in_len, stride, offset);
                        let brute: Vec<usize> = (0..out_len)
                            .filter(|&o| {
                                let i = o as isize * stride as isize + offset;
                                i >= 0 && i < in_len as isize
                            })
                            .collect();
                        let got: Vec<usize> = r.collect();
                        assert_eq!(
                            got, brute,
                            "out {out_len} in {in_len} s {stride} off {offset}"
                        );
                    }
                }
            }
        }
    }
}
