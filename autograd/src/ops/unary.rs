//! Elementwise functions of one input, one backward struct per function. Each backward
//! multiplies the upstream gradient by the local derivative, computed from whichever of input or
//! output makes it cheapest (the struct saves exactly that); activations call the backward
//! kernels of `tensor::activation`, so forward and backward share one formula.

use tensor::activation::{
    gelu_backward, leaky_relu_backward, relu_backward, sigmoid_backward, tanh_backward,
};
use tensor::Tensor;

use super::record;
use crate::error::Result;
use crate::variable::{GradFn, Variable};

/// d(-x) = -1.
pub struct NegBackward {
    input: Variable,
}

impl GradFn for NegBackward {
    fn name(&self) -> &'static str {
        "NegBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: The gradient of -x is -g.
        // BEGIN SOLUTION
        Ok(vec![Some(g.neg())])
        // END SOLUTION
    }
}

/// d(e^x) = e^x: the saved output is the derivative.
pub struct ExpBackward {
    input: Variable,
    out: Tensor,
}

impl GradFn for ExpBackward {
    fn name(&self) -> &'static str {
        "ExpBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: e^x is its own derivative: multiply g by the saved output.
        // BEGIN SOLUTION
        Ok(vec![Some(g.mul(&self.out)?)])
        // END SOLUTION
    }
}

/// d(ln x) = 1 / x.
pub struct LogBackward {
    input: Variable,
    x: Tensor,
}

impl GradFn for LogBackward {
    fn name(&self) -> &'static str {
        "LogBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: The derivative of ln x is 1/x: divide g by the saved input.
        // BEGIN SOLUTION
        Ok(vec![Some(g.div(&self.x)?)])
        // END SOLUTION
    }
}

/// d(sqrt x) = 1 / (2 sqrt x), from the saved output.
pub struct SqrtBackward {
    input: Variable,
    out: Tensor,
}

impl GradFn for SqrtBackward {
    fn name(&self) -> &'static str {
        "SqrtBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: The derivative of sqrt x is 1 / (2 sqrt x), and sqrt x is the saved output.
        // BEGIN SOLUTION
        Ok(vec![Some(g.zip_with(
            &self.out,
            "sqrt_backward",
            |g, y| g * 0.5 / y,
        )?)])
        // END SOLUTION
    }
}

/// d|x| = sign(x) (0 at 0).
pub struct AbsBackward {
    input: Variable,
    x: Tensor,
}

impl GradFn for AbsBackward {
    fn name(&self) -> &'static str {
        "AbsBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: The derivative of |x| is sign(x): g where x > 0, -g where x < 0, 0 at 0.
        // BEGIN SOLUTION
        let dx = g.zip_with(&self.x, "abs_backward", |g, x| {
            if x > 0.0 {
                g
            } else if x < 0.0 {
                -g
            } else {
                0.0
            }
        })?;
        Ok(vec![Some(dx)])
        // END SOLUTION
    }
}

/// d(clamp(x, min, max)) = 1 inside `[min, max]`, 0 where clamping happened.
pub struct ClampBackward {
    input: Variable,
    x: Tensor,
    min: f32,
    max: f32,
}

impl GradFn for ClampBackward {
    fn name(&self) -> &'static str {
        "ClampBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: The gradient passes where min <= x <= max and is 0 where the value was clamped.
        // BEGIN SOLUTION
        let (lo, hi) = (self.min, self.max);
        let dx = g.zip_with(&self.x, "clamp_backward", move |g, x| {
            if x >= lo && x <= hi {
                g
            } else {
                0.0
            }
        })?;
        Ok(vec![Some(dx)])
        // END SOLUTION
    }
}

/// d(relu x) = 1 where x > 0.
pub struct ReluBackward {
    input: Variable,
    x: Tensor,
}

impl GradFn for ReluBackward {
    fn name(&self) -> &'static str {
        "ReluBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Call tensor::activation::relu_backward with the saved input.
        // BEGIN SOLUTION
        Ok(vec![Some(relu_backward(&self.x, g)?)])
        // END SOLUTION
    }
}

/// d(leaky_relu x) = 1 where x > 0, `slope` elsewhere.
pub struct LeakyReluBackward {
    input: Variable,
    x: Tensor,
    slope: f32,
}

impl GradFn for LeakyReluBackward {
    fn name(&self) -> &'static str {
        "LeakyReluBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Call tensor::activation::leaky_relu_backward with the saved input and slope.
        // BEGIN SOLUTION
        Ok(vec![Some(leaky_relu_backward(&self.x, g, self.slope)?)])
        // END SOLUTION
    }
}

/// d(sigmoid x) = s (1 - s), from the saved output `s`.
pub struct SigmoidBackward {
    input: Variable,
    out: Tensor,
}

impl GradFn for SigmoidBackward {
    fn name(&self) -> &'static str {
        "SigmoidBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Call tensor::activation::sigmoid_backward with the saved output.
        // BEGIN SOLUTION
        Ok(vec![Some(sigmoid_backward(&self.out, g)?)])
        // END SOLUTION
    }
}

/// d(tanh x) = 1 - t^2, from the saved output `t`.
pub struct TanhBackward {
    input: Variable,
    out: Tensor,
}

impl GradFn for TanhBackward {
    fn name(&self) -> &'static str {
        "TanhBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Call tensor::activation::tanh_backward with the saved output.
        // BEGIN SOLUTION
        Ok(vec![Some(tanh_backward(&self.out, g)?)])
        // END SOLUTION
    }
}

/// d(gelu x) = Phi(x) + x phi(x).
pub struct GeluBackward {
    input: Variable,
    x: Tensor,
}

impl GradFn for GeluBackward {
    fn name(&self) -> &'static str {
        "GeluBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Call tensor::activation::gelu_backward with the saved input.
        // BEGIN SOLUTION
        Ok(vec![Some(gelu_backward(&self.x, g)?)])
        // END SOLUTION
    }
}

impl Variable {
    /// `-self`.
    pub fn neg(&self) -> Result<Variable> {
        let out = self.value().neg();
        let grad_fn = NegBackward {
            input: self.clone(),
        };
        record(out, &[self], grad_fn)
    }

    /// `e^self`.
    pub fn exp(&self) -> Result<Variable> {
        let out = self.value().exp();
        let grad_fn = ExpBackward {
            input: self.clone(),
            out: out.clone(),
        };
        record(out, &[self], grad_fn)
    }

    /// Natural logarithm.
    pub fn log(&self) -> Result<Variable> {
        let x = self.value();
        let out = x.log();
        let grad_fn = LogBackward {
            input: self.clone(),
            x,
        };
        record(out, &[self], grad_fn)
    }

    /// Square root.
    pub fn sqrt(&self) -> Result<Variable> {
        let out = self.value().sqrt();
        let grad_fn = SqrtBackward {
            input: self.clone(),
            out: out.clone(),
        };
        record(out, &[self], grad_fn)
    }

    /// Absolute value (gradient 0 at 0).
    pub fn abs(&self) -> Result<Variable> {
        let x = self.value();
        let out = x.abs();
        let grad_fn = AbsBackward {
            input: self.clone(),
            x,
        };
        record(out, &[self], grad_fn)
    }

    /// Limit to `[min, max]`; the gradient is zero where clamping happened.
    pub fn clamp(&self, min: f32, max: f32) -> Result<Variable> {
        let x = self.value();
        let out = x.clamp(min, max)?;
        let grad_fn = ClampBackward {
            input: self.clone(),
            x,
            min,
            max,
        };
        record(out, &[self], grad_fn)
    }

    /// `max(x, 0)`.
    pub fn relu(&self) -> Result<Variable> {
        let x = self.value();
        let out = x.relu();
        let grad_fn = ReluBackward {
            input: self.clone(),
            x,
        };
        record(out, &[self], grad_fn)
    }

    /// Leaky ReLU with negative `slope`.
    pub fn leaky_relu(&self, slope: f32) -> Result<Variable> {
        let x = self.value();
        let out = x.leaky_relu(slope);
        let grad_fn = LeakyReluBackward {
            input: self.clone(),
            x,
            slope,
        };
        record(out, &[self], grad_fn)
    }

    /// Logistic sigmoid.
    pub fn sigmoid(&self) -> Result<Variable> {
        let out = self.value().sigmoid();
        let grad_fn = SigmoidBackward {
            input: self.clone(),
            out: out.clone(),
        };
        record(out, &[self], grad_fn)
    }

    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Result<Variable> {
        let out = self.value().tanh();
        let grad_fn = TanhBackward {
            input: self.clone(),
            out: out.clone(),
        };
        record(out, &[self], grad_fn)
    }

    /// Exact GELU (`x * Phi(x)`).
    pub fn gelu(&self) -> Result<Variable> {
        let x = self.value();
        let out = x.gelu();
        let grad_fn = GeluBackward {
            input: self.clone(),
            x,
        };
        record(out, &[self], grad_fn)
    }
}
