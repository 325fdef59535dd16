//! `ModelError`: what training, checkpoints and generation can refuse.

use std::path::PathBuf;

use thiserror::Error;

/// The error type of the models crate.
#[derive(Debug, Error)]
pub enum ModelError {
    /// A layer refused its input.
    #[error(transparent)]
    Nn(#[from] nn::NnError),
    /// A graph op failed (with anomaly mode: the op that produced NaN/Inf).
    #[error(transparent)]
    Autograd(#[from] autograd::AutogradError),
    /// A tensor op failed.
    #[error(transparent)]
    Tensor(#[from] tensor::TensorError),
    /// A data file or loader failed.
    #[error(transparent)]
    Data(#[from] data::DataError),
    /// An optimizer, schedule or gradient clipping refused (e.g. a parameter without a gradient,
    /// a NaN gradient norm).
    #[error(transparent)]
    Optim(#[from] optim::OptimError),
    /// The loss became NaN or infinite; training stopped.
    #[error("training stopped at step {step}: the loss is {loss}{}", op.as_ref().map(|o| format!(" (first produced by {o})")).unwrap_or_default())]
    NonFiniteLoss {
        step: usize,
        loss: f32,
        op: Option<String>,
    },
    /// Reading or writing a file failed.
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    /// A checkpoint does not fit the model (every mismatch listed).
    #[error("checkpoint {}: {}", path.display(), problems.join("; "))]
    Checkpoint {
        path: PathBuf,
        problems: Vec<String>,
    },
    /// An invalid configuration or argument.
    #[error("{what}: {reason}")]
    Invalid { what: &'static str, reason: String },
}

/// Shorthand used across the crate.
pub type Result<T> = std::result::Result<T, ModelError>;
