//! Fused ops whose forward and backward are hand-written kernels in `tensor`: softmax,
//! log-softmax, layer norm, cross-entropy, the causal softmax of attention and a bias followed
//! by GELU. One node each in the graph, instead of a dozen primitive ones, and a backward that
//! is tested against the composition of primitives.

use tensor::activation::bias_gelu_backward;
use tensor::causal_softmax::causal_softmax_backward;
use tensor::cross_entropy::{cross_entropy, cross_entropy_backward, CrossEntropyCache};
use tensor::layer_norm::{layer_norm, layer_norm_backward, LayerNormCache};
use tensor::softmax::{log_softmax_backward, softmax_backward};
use tensor::Tensor;

use super::record;
use crate::error::{AutogradError, Result};
use crate::variable::{GradFn, Variable};

/// d softmax along `dim`, from the saved output.
pub struct SoftmaxBackward {
    input: Variable,
    out: Tensor,
    dim: isize,
}

impl GradFn for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "SoftmaxBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(softmax_backward(&self.out, g, self.dim)?)])
    }
}

/// d log-softmax along `dim`, from the saved output.
pub struct LogSoftmaxBackward {
    input: Variable,
    out: Tensor,
    dim: isize,
}

impl GradFn for LogSoftmaxBackward {
    fn name(&self) -> &'static str {
        "LogSoftmaxBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(log_softmax_backward(&self.out, g, self.dim)?)])
    }
}

/// d causal softmax of attention scores (w.r.t. the unscaled scores).
pub struct CausalSoftmaxBackward {
    input: Variable,
    out: Tensor,
    scale: f32,
}

impl GradFn for CausalSoftmaxBackward {
    fn name(&self) -> &'static str {
        "CausalSoftmaxBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(causal_softmax_backward(
            &self.out, g, self.scale,
        )?)])
    }
}

/// d layer norm: the full gradient through the mean and the variance, for x, weight and bias.
pub struct LayerNormBackward {
    x: Variable,
    weight: Option<Variable>,
    bias: Option<Variable>,
    cache: LayerNormCache,
}

impl GradFn for LayerNormBackward {
    fn name(&self) -> &'static str {
        "LayerNormBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        let mut v = vec![self.x.clone()];
        v.extend(self.weight.iter().cloned());
        v.extend(self.bias.iter().cloned());
        v
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let weight = self.weight.as_ref().map(|w| w.value());
        let (dx, dw, db) = layer_norm_backward(&self.x.value(), weight.as_ref(), &self.cache, g)?;
        let mut out = vec![Some(dx)];
        if self.weight.is_some() {
            out.push(dw);
        }
        if self.bias.is_some() {
            out.push(match db {
                Some(db) => Some(db),
                None => Some(
                    g.reshape_to(&[g.numel() / g.shape()[g.ndim() - 1], g.shape()[g.ndim() - 1]])?
                        .sum(0, false)?,
                ),
            });
        }
        Ok(out)
    }
}

/// d gelu(x + bias) w.r.t. `x` and the bias, from the saved input and bias.
pub struct BiasGeluBackward {
    input: Variable,
    bias: Variable,
    x: Tensor,
    b: Tensor,
}

impl GradFn for BiasGeluBackward {
    fn name(&self) -> &'static str {
        "BiasGeluBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone(), self.bias.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (dx, db) = bias_gelu_backward(&self.x, &self.b, g)?;
        Ok(vec![Some(dx), Some(db)])
    }
}

/// d mean cross-entropy w.r.t. the logits: `(softmax - target distribution) / count`.
pub struct CrossEntropyBackward {
    logits: Variable,
    targets: Vec<usize>,
    ignore_index: Option<usize>,
    label_smoothing: f32,
    cache: CrossEntropyCache,
}

impl GradFn for CrossEntropyBackward {
    fn name(&self) -> &'static str {
        "CrossEntropyBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.logits.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let grad_loss = g.item()?;
        let d = cross_entropy_backward(
            &self.cache,
            &self.targets,
            self.ignore_index,
            self.label_smoothing,
            grad_loss,
        )?;
        Ok(vec![Some(d)])
    }
}

impl Variable {
    /// Softmax along `dim`.
    pub fn softmax(&self, dim: isize) -> Result<Variable> {
        let out = self.value().softmax(dim)?;
        record(
            out.clone(),
            &[self],
            SoftmaxBackward {
                input: self.clone(),
                out,
                dim,
            },
        )
    }

    /// Log-softmax along `dim`.
    pub fn log_softmax(&self, dim: isize) -> Result<Variable> {
        let out = self.value().log_softmax(dim)?;
        record(
            out.clone(),
            &[self],
            LogSoftmaxBackward {
                input: self.clone(),
                out,
                dim,
            },
        )
    }

    /// Softmax of `scale * scores` over the last dim with a causal mask (query `i` of `T` sees
    /// keys `j <= i + S - T`), for attention scores of shape `(..., T, S)`.
    pub fn causal_softmax(&self, scale: f32) -> Result<Variable> {
        let out = self.value().causal_softmax(scale)?;
        record(
            out.clone(),
            &[self],
            CausalSoftmaxBackward {
                input: self.clone(),
                out,
                scale,
            },
        )
    }

    /// Layer norm over the last dim with optional affine weight and bias (shape `[last dim]`).
    pub fn layer_norm(
        &self,
        weight: Option<&Variable>,
        bias: Option<&Variable>,
        eps: f32,
    ) -> Result<Variable> {
        let w = weight.map(|w| w.value());
        let b = bias.map(|b| b.value());
        let (out, cache) = layer_norm(&self.value(), w.as_ref(), b.as_ref(), eps)?;
        let mut inputs = vec![self];
        inputs.extend(weight);
        inputs.extend(bias);
        let grad_fn = LayerNormBackward {
            x: self.clone(),
            weight: weight.cloned(),
            bias: bias.cloned(),
            cache,
        };
        record(out, &inputs, grad_fn)
    }

    /// `gelu(self + bias)` as one node, `bias` `(N,)` added to every row of `self` `(..., N)`:
    /// a linear layer's bias and its GELU in one pass, without the intermediate tensor
    /// ([`Tensor::bias_gelu`]); the same values as `self.add(bias)?.gelu()`.
    pub fn bias_gelu(&self, bias: &Variable) -> Result<Variable> {
        let (x, b) = (self.value(), bias.value());
        let out = x.bias_gelu(&b)?;
        let grad_fn = BiasGeluBackward {
            input: self.clone(),
            bias: bias.clone(),
            x,
            b,
        };
        record(out, &[self, bias], grad_fn)
    }

    /// Mean cross-entropy of logits `(N, C)` (or `(N, T, C)`, flattened) against class indices,
    /// with an optional ignored index and label smoothing.
    pub fn cross_entropy(
        &self,
        targets: &[usize],
        ignore_index: Option<usize>,
        label_smoothing: f32,
    ) -> Result<Variable> {
        if self.ndim() > 2 {
            let c = self.shape()[self.ndim() - 1];
            return self
                .reshape_to(&[self.numel() / c.max(1), c])?
                .cross_entropy(targets, ignore_index, label_smoothing);
        }
        if self.ndim() != 2 {
            return Err(AutogradError::Invalid {
                op: "cross_entropy",
                reason: format!(
                    "logits must be (N, C) or (N, T, C), got shape {:?}",
                    self.shape()
                ),
            });
        }
        let (loss, cache) = cross_entropy(&self.value(), targets, ignore_index, label_smoothing)?;
        let grad_fn = CrossEntropyBackward {
            logits: self.clone(),
            targets: targets.to_vec(),
            ignore_index,
            label_smoothing,
            cache,
        };
        record(Tensor::scalar(loss), &[self], grad_fn)
    }
}
