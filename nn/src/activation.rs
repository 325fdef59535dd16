//! Activations as modules (to put in a `Sequential`) and as functions (to call in a forward).
//!
//! Without a nonlinearity between them, two linear layers collapse into one. Each activation
//! here is one autograd op whose backward kernel lives next to its forward in `tensor`, so the
//! two can never use different formulas.
//!
//! | module | function | formula |
//! |---|---|---|
//! | [`ReLU`] | [`relu`] | `max(x, 0)` |
//! | [`LeakyReLU`] | [`leaky_relu`] | `x` if `x > 0`, else `slope * x` (default slope 0.01) |
//! | [`GELU`] | [`gelu`], [`gelu_tanh`] | `x * Phi(x)` (exact, erf), or the tanh approximation |
//! | [`Sigmoid`] | [`sigmoid`] | `1 / (1 + e^-x)` |
//! | [`Tanh`] | [`tanh`] | `tanh(x)` |
//! | [`Softmax`] | [`softmax`] | `e^x_i / sum_j e^x_j` along `dim` (max-shifted) |
//! | [`LogSoftmax`] | [`log_softmax`] | `x_i - log sum_j e^x_j` along `dim` |

use autograd::Variable;

use crate::error::Result;
use crate::module::Module;

/// `max(x, 0)`.
pub fn relu(x: &Variable) -> Result<Variable> {
    Ok(x.relu()?)
}

/// `x` where positive, `negative_slope * x` elsewhere.
pub fn leaky_relu(x: &Variable, negative_slope: f32) -> Result<Variable> {
    Ok(x.leaky_relu(negative_slope)?)
}

/// Exact GELU, `x * Phi(x)` with `Phi` the standard normal CDF (PyTorch's default).
pub fn gelu(x: &Variable) -> Result<Variable> {
    Ok(x.gelu()?)
}

/// The tanh approximation of GELU used by GPT-2 (PyTorch's `approximate="tanh"`):
/// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`, composed from autograd ops.
pub fn gelu_tanh(x: &Variable) -> Result<Variable> {
    // HINT: gelu(x) ~ 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), built from graph ops so
    // HINT: autograd differentiates it.
    // BEGIN SOLUTION
    let c = (2.0 / std::f32::consts::PI).sqrt();
    let inner = x.add(&x.powf(3.0)?.mul_scalar(0.044715)?)?.mul_scalar(c)?;
    Ok(x.mul(&inner.tanh()?.add_scalar(1.0)?)?.mul_scalar(0.5)?)
    // END SOLUTION
}

/// `1 / (1 + e^-x)`.
pub fn sigmoid(x: &Variable) -> Result<Variable> {
    Ok(x.sigmoid()?)
}

/// `tanh(x)`.
pub fn tanh(x: &Variable) -> Result<Variable> {
    Ok(x.tanh()?)
}

/// Softmax along `dim`.
pub fn softmax(x: &Variable, dim: isize) -> Result<Variable> {
    Ok(x.softmax(dim)?)
}

/// Log-softmax along `dim`.
pub fn log_softmax(x: &Variable, dim: isize) -> Result<Variable> {
    Ok(x.log_softmax(dim)?)
}

/// Implement `Module` for a parameter-free activation whose forward is `$body`.
macro_rules! activation_module {
    ($ty:ty, |$s:ident, $x:ident| $body:block) => {
        impl Module for $ty {
            fn forward(&self, input: &Variable) -> Result<Variable> {
                let ($s, $x) = (self, input);
                $body
            }
            fn named_parameters(&self) -> Vec<(String, Variable)> {
                Vec::new()
            }
        }
    };
}

/// `max(x, 0)` as a module.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReLU;

/// Leaky ReLU as a module.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeakyReLU {
    /// The slope for negative inputs (PyTorch's default 0.01).
    pub negative_slope: f32,
}

impl LeakyReLU {
    /// A leaky ReLU with the given negative slope.
    pub fn new(negative_slope: f32) -> LeakyReLU {
        LeakyReLU { negative_slope }
    }
}

impl Default for LeakyReLU {
    fn default() -> Self {
        LeakyReLU::new(0.01)
    }
}

/// Which formula [`GELU`] uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GeluApproximate {
    /// `x * Phi(x)` with the exact erf (PyTorch's default).
    #[default]
    None,
    /// The tanh approximation (GPT-2).
    Tanh,
}

/// GELU as a module.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GELU {
    /// Exact (default) or tanh-approximated.
    pub approximate: GeluApproximate,
}

impl GELU {
    /// Exact GELU.
    pub fn new() -> GELU {
        GELU::default()
    }

    /// The tanh approximation.
    pub fn tanh() -> GELU {
        GELU {
            approximate: GeluApproximate::Tanh,
        }
    }
}

/// The logistic sigmoid as a module.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sigmoid;

/// `tanh` as a module.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Tanh;

/// Softmax along `dim` as a module.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Softmax {
    /// The dim whose entries sum to 1.
    pub dim: isize,
}

impl Softmax {
    /// Softmax along `dim`.
    pub fn new(dim: isize) -> Softmax {
        Softmax { dim }
    }
}

/// Log-softmax along `dim` as a module.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogSoftmax {
    /// The dim normalised over.
    pub dim: isize,
}

impl LogSoftmax {
    /// Log-softmax along `dim`.
    pub fn new(dim: isize) -> LogSoftmax {
        LogSoftmax { dim }
    }
}

activation_module!(ReLU, |_s, x| { relu(x) });
activation_module!(LeakyReLU, |s, x| { leaky_relu(x, s.negative_slope) });
activation_module!(GELU, |s, x| {
    match s.approximate {
        GeluApproximate::None => gelu(x),
        GeluApproximate::Tanh => gelu_tanh(x),
    }
});
activation_module!(Sigmoid, |_s, x| { sigmoid(x) });
activation_module!(Tanh, |_s, x| { tanh(x) });
activation_module!(Softmax, |s, x| { softmax(x, s.dim) });
activation_module!(LogSoftmax, |s, x| { log_softmax(x, s.dim) });
