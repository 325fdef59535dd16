//! `LayerNorm`: normalise each vector over its last dim to mean 0 and variance 1, then scale and
//! shift by learned `weight` and `bias`.
//!
//! `y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias`, with the biased variance, per row.
//! Unlike batch norm it needs no batch statistics, so train and eval behave the same: the
//! normaliser of transformers. The forward and its full backward (through the mean and the
//! variance, not only the scaling) are one fused kernel of `tensor`.
//!
//! Initialisation (PyTorch's default): weight ones, bias zeros, `eps = 1e-5`.

use autograd::Variable;
use tensor::Tensor;

use crate::error::{NnError, Result};
use crate::module::Module;

/// Layer normalisation over the last dim of size `normalized_shape`.
pub struct LayerNorm {
    /// Shape `(normalized_shape)`, starts at ones.
    pub weight: Variable,
    /// Shape `(normalized_shape)`, starts at zeros; `None` for a layer without bias.
    pub bias: Option<Variable>,
    /// Added to the variance before the square root.
    pub eps: f32,
}

impl LayerNorm {
    /// Normalise vectors of size `dim` (weight ones, bias zeros, eps `1e-5`).
    pub fn new(dim: usize) -> LayerNorm {
        LayerNorm {
            weight: Variable::parameter(Tensor::ones(&[dim])),
            bias: Some(Variable::parameter(Tensor::zeros(&[dim]))),
            eps: 1e-5,
        }
    }

    /// The same layer without a bias (PyTorch's `bias=False`).
    pub fn without_bias(mut self) -> LayerNorm {
        self.bias = None;
        self
    }

    /// The same layer with another `eps`.
    pub fn with_eps(mut self, eps: f32) -> LayerNorm {
        self.eps = eps;
        self
    }

    /// A layer around given parameters (weight `(D)`, optional bias `(D)`).
    pub fn from_weights(weight: Variable, bias: Option<Variable>, eps: f32) -> Result<LayerNorm> {
        let ok = weight.ndim() == 1 && bias.as_ref().is_none_or(|b| b.shape() == weight.shape());
        if !ok {
            return Err(NnError::Invalid {
                op: "LayerNorm",
                reason: format!(
                    "weight must be 1-D and bias the same shape, got {:?} and {:?}",
                    weight.shape(),
                    bias.as_ref().map(|b| b.shape())
                ),
            });
        }
        Ok(LayerNorm { weight, bias, eps })
    }

    /// The size of the normalised (last) dim.
    pub fn normalized_shape(&self) -> usize {
        self.weight.shape()[0]
    }
}

/// Layer norm of `x` over its last dim with optional affine `weight` and `bias` (shape `(D)`),
/// PyTorch's `F.layer_norm`.
pub fn layer_norm(
    x: &Variable,
    weight: Option<&Variable>,
    bias: Option<&Variable>,
    eps: f32,
) -> Result<Variable> {
    // HINT: the fused Variable::layer_norm computes the forward and the full backward.
    // BEGIN SOLUTION
    Ok(x.layer_norm(weight, bias, eps)?)
    // END SOLUTION
}

impl Module for LayerNorm {
    fn forward(&self, input: &Variable) -> Result<Variable> {
        let d = self.normalized_shape();
        if input.shape().last() != Some(&d) {
            return Err(NnError::Invalid {
                op: "LayerNorm",
                reason: format!(
                    "input of shape {:?} must end in normalized_shape = {d}",
                    input.shape()
                ),
            });
        }
        layer_norm(input, Some(&self.weight), self.bias.as_ref(), self.eps)
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        let mut params = vec![("weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            params.push(("bias".to_string(), b.clone()));
        }
        params
    }
}

impl std::fmt::Debug for LayerNorm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LayerNorm({}, eps={}, bias={})",
            self.normalized_shape(),
            self.eps,
            self.bias.is_some()
        )
    }
}
