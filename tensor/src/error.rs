//! `TensorError`: every way a tensor op can refuse its input.
//!
//! Each variant carries the op's name and the shapes involved, so a message such as
//! `matmul: shapes [2, 3] and [4, 5] are incompatible: inner dimensions 3 and 4 differ`
//! tells the user what to fix without a debugger.

use thiserror::Error;

/// The error type of every fallible tensor op.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TensorError {
    /// Two operands whose shapes do not fit together.
    #[error("{op}: shapes {lhs:?} and {rhs:?} are incompatible: {reason}")]
    ShapeMismatch {
        op: &'static str,
        lhs: Vec<usize>,
        rhs: Vec<usize>,
        reason: String,
    },
    /// A dimension index outside `-ndim..ndim`.
    #[error("{op}: dimension {dim} is out of range for a tensor of shape {shape:?}")]
    InvalidDim {
        op: &'static str,
        dim: isize,
        shape: Vec<usize>,
    },
    /// An element or slice index outside its dimension.
    #[error("{op}: index {index} is out of range for dimension of size {size} (shape {shape:?})")]
    IndexOutOfRange {
        op: &'static str,
        index: usize,
        size: usize,
        shape: Vec<usize>,
    },
    /// A buffer whose length does not match the requested shape.
    #[error("{op}: {len} values cannot fill shape {shape:?} ({numel} elements)")]
    DataLength {
        op: &'static str,
        len: usize,
        shape: Vec<usize>,
        numel: usize,
    },
    /// Any other invalid argument, explained in words.
    #[error("{op}: {reason} (shape {shape:?})")]
    InvalidArgument {
        op: &'static str,
        shape: Vec<usize>,
        reason: String,
    },
    /// An environment setting with a value the crate does not know.
    #[error("{op}: {variable}={value:?} is not a valid value (valid values: {valid})")]
    InvalidSetting {
        op: &'static str,
        variable: &'static str,
        value: String,
        valid: &'static str,
    },
}

/// Shorthand used across the crate.
pub type Result<T> = std::result::Result<T, TensorError>;

impl TensorError {
    /// Build a [`TensorError::ShapeMismatch`].
    pub fn mismatch(
        op: &'static str,
        lhs: &[usize],
        rhs: &[usize],
        reason: impl Into<String>,
    ) -> Self {
        TensorError::ShapeMismatch {
            op,
            lhs: lhs.to_vec(),
            rhs: rhs.to_vec(),
            reason: reason.into(),
        }
    }

    /// Build a [`TensorError::InvalidArgument`].
    pub fn invalid(op: &'static str, shape: &[usize], reason: impl Into<String>) -> Self {
        TensorError::InvalidArgument {
            op,
            shape: shape.to_vec(),
            reason: reason.into(),
        }
    }

    /// The name of the op that failed.
    pub fn op(&self) -> &'static str {
        match self {
            TensorError::ShapeMismatch { op, .. }
            | TensorError::InvalidDim { op, .. }
            | TensorError::IndexOutOfRange { op, .. }
            | TensorError::DataLength { op, .. }
            | TensorError::InvalidArgument { op, .. }
            | TensorError::InvalidSetting { op, .. } => op,
        }
    }
}
