//! Elementwise functions of one input. Each backward multiplies the upstream gradient by the
//! local derivative, computed from whichever of input or output makes it cheapest; activations
//! call the backward kernels of `tensor::activation`, so forward and backward share one formula.

use tensor::activation::{
    gelu_backward, leaky_relu_backward, relu_backward, sigmoid_backward, tanh_backward,
};
use tensor::Tensor;

use super::record;
use crate::error::Result;
use crate::variable::{GradFn, Variable};

/// Which function a [`UnaryBackward`] differentiates, with what it saved.
enum Unary {
    Neg,
    Exp { out: Tensor },
    Log { x: Tensor },
    Sqrt { out: Tensor },
    Abs { x: Tensor },
    Clamp { x: Tensor, min: f32, max: f32 },
    Relu { x: Tensor },
    LeakyRelu { x: Tensor, slope: f32 },
    Sigmoid { out: Tensor },
    Tanh { out: Tensor },
    Gelu { x: Tensor },
}

/// The backward of every one-input elementwise function.
pub struct UnaryBackward {
    input: Variable,
    op: Unary,
}

impl GradFn for UnaryBackward {
    fn name(&self) -> &'static str {
        match self.op {
            Unary::Neg => "NegBackward",
            Unary::Exp { .. } => "ExpBackward",
            Unary::Log { .. } => "LogBackward",
            Unary::Sqrt { .. } => "SqrtBackward",
            Unary::Abs { .. } => "AbsBackward",
            Unary::Clamp { .. } => "ClampBackward",
            Unary::Relu { .. } => "ReluBackward",
            Unary::LeakyRelu { .. } => "LeakyReluBackward",
            Unary::Sigmoid { .. } => "SigmoidBackward",
            Unary::Tanh { .. } => "TanhBackward",
            Unary::Gelu { .. } => "GeluBackward",
        }
    }

    fn inputs(&self) -> Vec<Variable> {
        vec![self.input.clone()]
    }

    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Multiply g by each function's local derivative: -1 for neg, e^x (the saved output)
        // HINT: for exp, 1/x for log, 1/(2 sqrt x) for sqrt, sign(x) for abs, 1 inside [min, max]
        // HINT: for clamp, and the tensor::activation backward kernels for relu, leaky_relu,
        // HINT: sigmoid, tanh and gelu.
        // BEGIN SOLUTION
        let dx = match &self.op {
            Unary::Neg => g.neg(),
            Unary::Exp { out } => g.mul(out)?,
            Unary::Log { x } => g.div(x)?,
            Unary::Sqrt { out } => g.zip_with(out, "sqrt_backward", |g, y| g * 0.5 / y)?,
            Unary::Abs { x } => g.zip_with(x, "abs_backward", |g, x| {
                if x > 0.0 {
                    g
                } else if x < 0.0 {
                    -g
                } else {
                    0.0
                }
            })?,
            Unary::Clamp { x, min, max } => {
                let (lo, hi) = (*min, *max);
                g.zip_with(x, "clamp_backward", move |g, x| {
                    if x >= lo && x <= hi {
                        g
                    } else {
                        0.0
                    }
                })?
            }
            Unary::Relu { x } => relu_backward(x, g)?,
            Unary::LeakyRelu { x, slope } => leaky_relu_backward(x, g, *slope)?,
            Unary::Sigmoid { out } => sigmoid_backward(out, g)?,
            Unary::Tanh { out } => tanh_backward(out, g)?,
            Unary::Gelu { x } => gelu_backward(x, g)?,
        };
        Ok(vec![Some(dx)])
        // END SOLUTION
    }
}

impl Variable {
    fn unary(&self, out: Tensor, op: Unary) -> Result<Variable> {
        record(
            out,
            &[self],
            UnaryBackward {
                input: self.clone(),
                op,
            },
        )
    }

    /// `-self`.
    pub fn neg(&self) -> Result<Variable> {
        self.unary(self.value().neg(), Unary::Neg)
    }

    /// `e^self`.
    pub fn exp(&self) -> Result<Variable> {
        let out = self.value().exp();
        self.unary(out.clone(), Unary::Exp { out })
    }

    /// Natural logarithm.
    pub fn log(&self) -> Result<Variable> {
        let x = self.value();
        self.unary(x.log(), Unary::Log { x })
    }

    /// Square root.
    pub fn sqrt(&self) -> Result<Variable> {
        let out = self.value().sqrt();
        self.unary(out.clone(), Unary::Sqrt { out })
    }

    /// Absolute value (gradient 0 at 0).
    pub fn abs(&self) -> Result<Variable> {
        let x = self.value();
        self.unary(x.abs(), Unary::Abs { x })
    }

    /// Limit to `[min, max]`; the gradient is zero where clamping happened.
    pub fn clamp(&self, min: f32, max: f32) -> Result<Variable> {
        let x = self.value();
        self.unary(x.clamp(min, max)?, Unary::Clamp { x, min, max })
    }

    /// `max(x, 0)`.
    pub fn relu(&self) -> Result<Variable> {
        let x = self.value();
        self.unary(x.relu(), Unary::Relu { x })
    }

    /// Leaky ReLU with negative `slope`.
    pub fn leaky_relu(&self, slope: f32) -> Result<Variable> {
        let x = self.value();
        self.unary(x.leaky_relu(slope), Unary::LeakyRelu { x, slope })
    }

    /// Logistic sigmoid.
    pub fn sigmoid(&self) -> Result<Variable> {
        let out = self.value().sigmoid();
        self.unary(out.clone(), Unary::Sigmoid { out })
    }

    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Result<Variable> {
        let out = self.value().tanh();
        self.unary(out.clone(), Unary::Tanh { out })
    }

    /// Exact GELU (`x * Phi(x)`).
    pub fn gelu(&self) -> Result<Variable> {
        let x = self.value();
        self.unary(x.gelu(), Unary::Gelu { x })
    }
}
