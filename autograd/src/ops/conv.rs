//! Convolution and pooling. A convolution is `im2col` followed by one GEMM per image; its backward
//! is two GEMMs (weight gradient and column gradient) and `col2im`, the adjoint of `im2col`.

use rayon::prelude::*;
use tensor::conv::{col2im, im2col, Conv2dGeometry};
use tensor::gemm::{gemm, MatRef, Parallelism};
use tensor::pool::{
    avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward, MaxPoolIndices,
};
use tensor::Tensor;

use super::{grad_if, record};
use crate::error::{AutogradError, Result};
use crate::variable::{GradFn, Variable};

/// d conv2d w.r.t. input, weight and bias.
pub struct Conv2dBackward {
    x: Variable,
    weight: Variable,
    bias: Option<Variable>,
    cols: Tensor,
    geometry: Conv2dGeometry,
}

impl GradFn for Conv2dBackward {
    fn name(&self) -> &'static str {
        "ConvolutionBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        let mut v = vec![self.x.clone(), self.weight.clone()];
        v.extend(self.bias.iter().cloned());
        v
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: With g reshaped to (N, O, L) and the weight to (O, C*k*k): dcols = W^T @ g folded
        // HINT: back by col2im gives dx, dW = sum over images of g[n] @ cols[n]^T
        // HINT: (weight_gradient), and the bias gradient is g summed over images and positions.
        // BEGIN SOLUTION
        let w = self.weight.value();
        let (n, o) = (g.shape()[0], g.shape()[1]);
        let l = g.shape()[2] * g.shape()[3];
        let ckk = w.numel() / o;
        let g3 = g.reshape_to(&[n, o, l])?;
        let w2 = w.reshape_to(&[o, ckk])?;
        let dx = grad_if(&self.x, || {
            let dcols = w2.t()?.matmul(&g3)?; // (N, CKK, L)
            col2im(&dcols, &self.x.shape(), &self.geometry)
        })?;
        let dw = grad_if(&self.weight, || {
            weight_gradient(&g3, &self.cols)?.reshape_to(w.shape())
        })?;
        let mut out = vec![dx, dw];
        if let Some(b) = &self.bias {
            out.push(grad_if(b, || g3.sum(2, false)?.sum(0, false))?);
        }
        Ok(out)
        // END SOLUTION
    }
}

/// `sum_n g[n] @ cols[n]^T` for `g` `(N, O, L)` and `cols` `(N, CKK, L)`: the weight gradient
/// of a convolution. The batch is split across threads; each thread accumulates its images into
/// one `(O, CKK)` buffer with single-threaded GEMMs (`C += A B^T`, the transpose a stride swap),
/// and the per-thread buffers are added. No `(N, O, CKK)` intermediate is materialised.
fn weight_gradient(g: &Tensor, cols: &Tensor) -> tensor::Result<Tensor> {
    let (n, o, l) = (g.shape()[0], g.shape()[1], g.shape()[2]);
    let ckk = cols.shape()[1];
    let (g, cols) = (g.contiguous(), cols.contiguous());
    let (gs, cs) = (
        g.as_slice().expect("contiguous"),
        cols.as_slice().expect("contiguous"),
    );
    let threads = rayon::current_num_threads().clamp(1, n.max(1));
    let per_thread = n.div_ceil(threads).max(1);
    let partials: Vec<tensor::Result<Vec<f32>>> = (0..n)
        .step_by(per_thread)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|start| {
            let mut acc = vec![0.0f32; o * ckk];
            for i in start..(start + per_thread).min(n) {
                let a = MatRef::row_major(&gs[i * o * l..(i + 1) * o * l], o, l)?;
                let b = MatRef::row_major(&cs[i * ckk * l..(i + 1) * ckk * l], ckk, l)?.t();
                gemm(a, b, &mut acc, true, Parallelism::Sequential)?;
            }
            Ok(acc)
        })
        .collect();
    let mut total = vec![0.0f32; o * ckk];
    for part in partials {
        for (t, p) in total.iter_mut().zip(part?) {
            *t += p;
        }
    }
    Tensor::from_vec(total, &[o, ckk])
}

/// d max-pool: each output gradient goes to the input element that was the maximum.
pub struct MaxPool2dBackward {
    input: Variable,
    indices: MaxPoolIndices,
}

impl GradFn for MaxPool2dBackward {
    fn name(&self) -> &'static str {
        "MaxPool2DBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(max_pool2d_backward(g, &self.indices)?)])
    }
}

/// d avg-pool: each output gradient is spread evenly over its window.
pub struct AvgPool2dBackward {
    input: Variable,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
}

impl GradFn for AvgPool2dBackward {
    fn name(&self) -> &'static str {
        "AvgPool2DBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let dx = avg_pool2d_backward(
            g,
            &self.input.shape(),
            self.kernel,
            self.stride,
            self.padding,
        )?;
        Ok(vec![Some(dx)])
    }
}

impl Variable {
    /// 2-D convolution of `self` `(N, C, H, W)` with `weight` `(O, C, kh, kw)` and optional
    /// `bias` `(O)`; stride, padding and dilation come from `geometry` (its kernel must match).
    pub fn conv2d(
        &self,
        weight: &Variable,
        bias: Option<&Variable>,
        geometry: Conv2dGeometry,
    ) -> Result<Variable> {
        let (x, w) = (self.value(), weight.value());
        if x.ndim() != 4 || w.ndim() != 4 || x.shape()[1] != w.shape()[1] {
            return Err(AutogradError::Tensor(tensor::TensorError::mismatch(
                "conv2d",
                x.shape(),
                w.shape(),
                "input must be (N, C, H, W) and weight (O, C, kh, kw) with the same C",
            )));
        }
        if (w.shape()[2], w.shape()[3]) != geometry.kernel {
            return Err(AutogradError::Invalid {
                op: "conv2d",
                reason: format!(
                    "weight shape {:?} does not match kernel {:?}",
                    w.shape(),
                    geometry.kernel
                ),
            });
        }
        let (n, o) = (x.shape()[0], w.shape()[0]);
        let (oh, ow) = geometry.output_size(x.shape()[2], x.shape()[3])?;
        let cols = im2col(&x, &geometry)?; // (N, CKK, L)
        let w2 = w.reshape_to(&[o, w.numel() / o])?;
        let mut out = w2.matmul(&cols)?; // (N, O, L)
        if let Some(b) = bias {
            let bv = b.value();
            if bv.shape() != [o] {
                return Err(AutogradError::Tensor(tensor::TensorError::mismatch(
                    "conv2d",
                    w.shape(),
                    bv.shape(),
                    "bias must have one entry per output channel",
                )));
            }
            out = out.add(&bv.reshape_to(&[o, 1])?)?;
        }
        let out = out.reshape_to(&[n, o, oh, ow])?;
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        let grad_fn = Conv2dBackward {
            x: self.clone(),
            weight: weight.clone(),
            bias: bias.cloned(),
            cols,
            geometry,
        };
        record(out, &inputs, grad_fn)
    }

    /// 2-D max pooling over `(N, C, H, W)`.
    pub fn max_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Variable> {
        let (out, indices) = max_pool2d(&self.value(), kernel, stride, padding)?;
        record(
            out,
            &[self],
            MaxPool2dBackward {
                input: self.clone(),
                indices,
            },
        )
    }

    /// 2-D average pooling over `(N, C, H, W)` (padding counts as zeros).
    pub fn avg_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Variable> {
        let out = avg_pool2d(&self.value(), kernel, stride, padding)?;
        record(
            out,
            &[self],
            AvgPool2dBackward {
                input: self.clone(),
                kernel,
                stride,
                padding,
            },
        )
    }
}
