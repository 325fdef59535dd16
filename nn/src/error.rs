//! `NnError`: what a layer can refuse.

use thiserror::Error;

use autograd::AutogradError;
use tensor::TensorError;

/// The error type of every fallible layer operation.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum NnError {
    /// An op in the forward pass failed (the message names the op and the shapes).
    #[error(transparent)]
    Autograd(#[from] AutogradError),
    /// A tensor op failed.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// `load_state_dict` found tensors that do not fit the module; every problem is listed.
    #[error("load_state_dict: {}", problems.join("; "))]
    StateDict { problems: Vec<String> },
    /// A layer was given an input or configuration it cannot use.
    #[error("{layer}: {reason}")]
    Invalid { layer: &'static str, reason: String },
}

/// Shorthand used across the crate.
pub type Result<T> = std::result::Result<T, NnError>;
