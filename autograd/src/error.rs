//! `AutogradError`: what can go wrong while building or running a graph.

use thiserror::Error;

use tensor::TensorError;

/// The error type of every fallible autograd operation.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AutogradError {
    /// A tensor op refused its input (the message names the op and the shapes).
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// Anomaly mode caught a NaN or infinity.
    #[error("anomaly: {op} produced {what} in its {phase} pass (input shapes {shapes:?})")]
    Anomaly {
        op: &'static str,
        phase: &'static str,
        what: &'static str,
        shapes: Vec<Vec<usize>>,
    },
    /// `backward()` needs a one-element output; use `backward_with(grad)` otherwise.
    #[error("backward: the output has shape {shape:?}; backward() needs a one-element output, use backward_with(grad) for others")]
    NotScalar { shape: Vec<usize> },
    /// The output does not depend on any tensor that requires grad.
    #[error("backward: the output does not require grad (no input had requires_grad, or it was built under no_grad)")]
    NoGraph,
    /// The graph was already freed by an earlier backward.
    #[error("backward: the graph through {op} was freed by an earlier backward(); call backward_retain() the first time to keep it")]
    GraphFreed { op: &'static str },
    /// A gradient whose shape does not match its tensor.
    #[error("{op}: gradient of shape {grad:?} does not match the value's shape {value:?}")]
    GradShape {
        op: &'static str,
        grad: Vec<usize>,
        value: Vec<usize>,
    },
    /// An invalid argument to an autograd op.
    #[error("{op}: {reason}")]
    Invalid { op: &'static str, reason: String },
    /// gradcheck found an analytic gradient that disagrees with finite differences.
    #[error("gradcheck: input {input}, element {index:?}: analytic {analytic:.6e} vs numeric {numeric:.6e} (abs error {error:.3e}, tolerance {tolerance:.1e})")]
    GradcheckFailed {
        input: usize,
        index: Vec<usize>,
        analytic: f64,
        numeric: f64,
        error: f64,
        tolerance: f64,
    },
}

/// Shorthand used across the crate.
pub type Result<T> = std::result::Result<T, AutogradError>;
