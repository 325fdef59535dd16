//! `Linear`: `y = x W^T + b`, the layer every network is made of.
//!
//! The weight is stored `(out_features, in_features)` like PyTorch, so a state dict maps one to
//! one. The forward multiplies by `W^T` through a transposed *view* (a stride swap, no copy),
//! and the batched matmul accepts any leading dims: `(..., in) -> (..., out)`.
//!
//! Initialisation (PyTorch's default): weight and bias both `U(-1/sqrt(in), 1/sqrt(in))`.
//!
//! For inference a layer can be quantized in place ([`Linear::quantize_dynamic`]): its forward
//! then runs the int8 path of [`QuantizedLinear`], so a model built from `Linear`s (the GPT's
//! attention, MLP and head) runs in int8 without a second copy of its code.

use autograd::Variable;
use tensor::{Tensor, TensorRng};

use crate::error::{NnError, Result};
use crate::init;
use crate::module::Module;
use crate::quantized_linear::{refuse_under_grad, QuantizedLinear};

/// A fully connected layer: `(..., in_features) -> (..., out_features)`.
pub struct Linear {
    /// Shape `(out_features, in_features)`.
    pub weight: Variable,
    /// Shape `(out_features)`, if the layer has one.
    pub bias: Option<Variable>,
    /// The int8 version the forward runs instead, once quantized (boxed: most layers never are,
    /// and an unquantized `Linear` stays two pointers and a tag).
    quantized: Option<Box<QuantizedLinear>>,
}

impl Linear {
    /// A layer with PyTorch's default initialisation drawn from `rng`.
    pub fn new(in_features: usize, out_features: usize, bias: bool, rng: &mut TensorRng) -> Linear {
        let weight = init::kaiming_uniform(rng, &[out_features, in_features], 5f32.sqrt());
        let bias = bias.then(|| init::fan_in_uniform(rng, &[out_features], in_features));
        Linear {
            weight: Variable::parameter(weight),
            bias: bias.map(Variable::parameter),
            quantized: None,
        }
    }

    /// A layer around given parameters (weight `(out, in)`, bias `(out)`): for weight tying,
    /// loading, and building a layer from `gradcheck`'s inputs.
    pub fn from_weights(weight: Variable, bias: Option<Variable>) -> Result<Linear> {
        if weight.ndim() != 2 {
            return Err(NnError::Invalid {
                op: "Linear",
                reason: format!("weight must be (out, in), got shape {:?}", weight.shape()),
            });
        }
        if let Some(b) = &bias {
            if b.shape() != [weight.shape()[0]] {
                return Err(NnError::Invalid {
                    op: "Linear",
                    reason: format!(
                        "bias shape {:?} does not match weight shape {:?} (expected [{}])",
                        b.shape(),
                        weight.shape(),
                        weight.shape()[0]
                    ),
                });
            }
        }
        Ok(Linear {
            weight,
            bias,
            quantized: None,
        })
    }

    /// A layer with the given parameter values (both become trainable parameters).
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Result<Linear> {
        Linear::from_weights(Variable::parameter(weight), bias.map(Variable::parameter))
    }

    /// The size of each input's last dim.
    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    /// The size of each output's last dim.
    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }

    /// Quantize the current weights to int8 (per output channel) for inference: from now on
    /// `forward` runs the int8 path with dynamic activation quantization. The `f32` parameters are
    /// kept (and still listed), so [`Linear::set_quantized`]`(None)` returns to `f32`.
    pub fn quantize_dynamic(&mut self) -> Result<()> {
        self.quantized = Some(Box::new(QuantizedLinear::from_linear(self)?));
        Ok(())
    }

    /// Run `forward` through the given int8 layer (which must have this layer's shape), or in `f32`
    /// again with `None`.
    pub fn set_quantized(&mut self, quantized: Option<QuantizedLinear>) -> Result<()> {
        if let Some(q) = &quantized {
            if (q.out_features(), q.in_features()) != (self.out_features(), self.in_features()) {
                return Err(NnError::Invalid {
                    op: "Linear",
                    reason: format!(
                        "quantized layer is {}x{} (out x in) but the weight is {:?}",
                        q.out_features(),
                        q.in_features(),
                        self.weight.shape()
                    ),
                });
            }
        }
        self.quantized = quantized.map(Box::new);
        Ok(())
    }

    /// The int8 layer `forward` runs, once quantized.
    pub fn quantized(&self) -> Option<&QuantizedLinear> {
        self.quantized.as_deref()
    }

    /// The int8 layer, mutably (to calibrate static activation quantization).
    pub fn quantized_mut(&mut self) -> Option<&mut QuantizedLinear> {
        self.quantized.as_deref_mut()
    }
}

/// `x @ weight^T + bias` for `x` of shape `(..., in)`, weight `(out, in)`, bias `(out)`
/// (PyTorch's `F.linear`).
pub fn linear(x: &Variable, weight: &Variable, bias: Option<&Variable>) -> Result<Variable> {
    // HINT: weight.t() is a view of W^T; matmul handles (..., in) @ (in, out); the bias broadcasts.
    // BEGIN SOLUTION
    let y = x.matmul(&weight.t()?)?;
    match bias {
        Some(b) => Ok(y.add(b)?),
        None => Ok(y),
    }
    // END SOLUTION
}

/// `gelu(x @ weight^T + bias)`: [`linear`] then GELU, with the bias added inside the GELU pass
/// ([`Variable::bias_gelu`]) instead of as a tensor of its own. The same values as
/// `linear(x, weight, bias)?.gelu()`; one pass over the layer's output fewer, in the forward and
/// in the backward (the bias gradient is summed in the GELU's backward pass).
pub fn linear_gelu(x: &Variable, weight: &Variable, bias: Option<&Variable>) -> Result<Variable> {
    let y = linear(x, weight, None)?;
    match bias {
        Some(b) => Ok(y.bias_gelu(b)?),
        None => Ok(y.gelu()?),
    }
}

impl Linear {
    /// `gelu(self.forward(input))`, fused as in [`linear_gelu`] (a quantized layer runs its int8
    /// forward, then GELU).
    pub fn forward_gelu(&self, input: &Variable) -> Result<Variable> {
        if self.quantized.is_some() {
            return Ok(self.forward(input)?.gelu()?);
        }
        self.check_input(input)?;
        linear_gelu(input, &self.weight, self.bias.as_ref())
    }

    /// An input must end in `in_features`.
    fn check_input(&self, input: &Variable) -> Result<()> {
        let shape = input.shape();
        if shape.last() != Some(&self.in_features()) {
            return Err(NnError::Invalid {
                op: "Linear",
                reason: format!(
                    "input of shape {shape:?} must end in in_features = {} (weight shape {:?})",
                    self.in_features(),
                    self.weight.shape()
                ),
            });
        }
        Ok(())
    }
}

impl Module for Linear {
    fn forward(&self, input: &Variable) -> Result<Variable> {
        self.check_input(input)?;
        if let Some(q) = &self.quantized {
            // Inference only: no gradient can reach the input or the f32 parameters.
            let trainable = self.weight.requires_grad()
                || self.bias.as_ref().is_some_and(Variable::requires_grad);
            refuse_under_grad(
                "Linear (quantized)",
                autograd::is_grad_enabled() && (input.requires_grad() || trainable),
            )?;
            return Ok(Variable::constant(q.forward_tensor(&input.value())?));
        }
        linear(input, &self.weight, self.bias.as_ref())
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        let mut params = vec![("weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            params.push(("bias".to_string(), b.clone()));
        }
        params
    }
}

impl std::fmt::Debug for Linear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Linear(in_features={}, out_features={}, bias={}{})",
            self.in_features(),
            self.out_features(),
            self.bias.is_some(),
            if self.quantized.is_some() {
                ", int8"
            } else {
                ""
            }
        )
    }
}
