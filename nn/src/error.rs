//! `NnError`: what a layer can refuse.
//!
//! Errors travel up the crates along one chain: a [`TensorError`] is wrapped by
//! `AutogradError::Tensor`, which is wrapped by [`NnError::Autograd`]. `From<TensorError>` is
//! written by hand below so that `?` works on a tensor op inside a layer, but it builds that same
//! chain: a tensor error inside an `NnError` is always found at
//! `NnError::Autograd(AutogradError::Tensor(_))`, never anywhere else.

use thiserror::Error;

use autograd::AutogradError;
use tensor::TensorError;

/// The error type of every fallible layer operation.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum NnError {
    /// An op in the forward pass failed (the message names the op and the shapes); tensor errors
    /// arrive here too, as `AutogradError::Tensor`.
    #[error(transparent)]
    Autograd(#[from] AutogradError),
    /// `load_state_dict` found tensors that do not fit the module; every problem is listed.
    #[error("load_state_dict: {}", problems.join("; "))]
    StateDict { problems: Vec<String> },
    /// A layer was given an input or configuration it cannot use.
    #[error("{op}: {reason}")]
    Invalid { op: &'static str, reason: String },
}

impl From<TensorError> for NnError {
    /// The one path of a tensor error: through autograd's error, like every other op failure.
    fn from(e: TensorError) -> Self {
        NnError::Autograd(AutogradError::Tensor(e))
    }
}

impl NnError {
    /// The tensor error at the root of this error, if there is one.
    pub fn tensor_error(&self) -> Option<&TensorError> {
        match self {
            NnError::Autograd(AutogradError::Tensor(e)) => Some(e),
            _ => None,
        }
    }
}

/// Shorthand used across the crate.
pub type Result<T> = std::result::Result<T, NnError>;
