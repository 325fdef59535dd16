//! `ModelError`: what training, checkpoints and generation can refuse.
//!
//! Every op failure reaches this type along one chain, the crates' own order:
//! `TensorError` -> `AutogradError::Tensor` -> `NnError::Autograd` -> [`ModelError::Nn`]. The
//! `From` impls below (for `TensorError`, `AutogradError`, `OptimError`, `DataError`) exist so
//! that `?` works everywhere, and all of them build that chain: a tensor or autograd error that
//! surfaces through the optimizer or the data loader is moved onto it too. So "which op failed?"
//! has one answer place, [`ModelError::autograd_error`] (and [`ModelError::tensor_error`]).

use std::path::PathBuf;

use autograd::AutogradError;
use data::DataError;
use nn::NnError;
use optim::OptimError;
use tensor::TensorError;
use thiserror::Error;

/// The error type of the models crate.
#[derive(Debug, Error)]
pub enum ModelError {
    /// A layer refused its input, or an op failed: tensor and autograd errors (with anomaly
    /// mode: the op that produced NaN/Inf) arrive here as `NnError::Autograd`.
    #[error(transparent)]
    Nn(#[from] NnError),
    /// A data file or loader failed (a tensor op failing inside the loader arrives as
    /// [`ModelError::Nn`] instead).
    #[error(transparent)]
    Data(DataError),
    /// An optimizer, schedule or gradient clipping refused (e.g. a parameter without a gradient,
    /// a NaN gradient norm); an autograd refusal arrives as [`ModelError::Nn`] instead.
    #[error(transparent)]
    Optim(OptimError),
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
    #[error("{op}: {reason}")]
    Invalid { op: &'static str, reason: String },
}

impl From<AutogradError> for ModelError {
    fn from(e: AutogradError) -> Self {
        ModelError::Nn(NnError::Autograd(e))
    }
}

impl From<TensorError> for ModelError {
    fn from(e: TensorError) -> Self {
        ModelError::Nn(NnError::from(e))
    }
}

impl From<OptimError> for ModelError {
    fn from(e: OptimError) -> Self {
        match e {
            OptimError::Autograd(a) => ModelError::from(a),
            e => ModelError::Optim(e),
        }
    }
}

impl From<DataError> for ModelError {
    fn from(e: DataError) -> Self {
        match e {
            DataError::Tensor(t) => ModelError::from(t),
            e => ModelError::Data(e),
        }
    }
}

impl ModelError {
    /// The autograd error (a failed op, an anomaly, a freed graph...) behind this error, if any.
    pub fn autograd_error(&self) -> Option<&AutogradError> {
        match self {
            ModelError::Nn(NnError::Autograd(a)) => Some(a),
            _ => None,
        }
    }

    /// The tensor error (an op that refused its input's shape or values) behind this error, if any.
    pub fn tensor_error(&self) -> Option<&TensorError> {
        match self.autograd_error() {
            Some(AutogradError::Tensor(t)) => Some(t),
            _ => None,
        }
    }
}

/// Shorthand used across the crate.
pub type Result<T> = std::result::Result<T, ModelError>;

#[cfg(test)]
mod tests {
    use super::*;

    fn shape_error() -> TensorError {
        TensorError::mismatch(
            "matmul",
            &[2, 3],
            &[4, 5],
            "inner dimensions 3 and 4 differ",
        )
    }

    /// A tensor error reaches ModelError as the same Tensor variant whichever crate it passed
    /// through (autograd, nn, optim, data).
    #[test]
    fn a_tensor_error_reaches_model_error_one_way() {
        let direct = ModelError::from(shape_error());
        let via_autograd = ModelError::from(AutogradError::from(shape_error()));
        let via_nn = ModelError::from(NnError::from(shape_error()));
        let via_optim = ModelError::from(OptimError::from(AutogradError::from(shape_error())));
        let via_data = ModelError::from(DataError::from(shape_error()));
        for e in [direct, via_autograd, via_nn, via_optim, via_data] {
            assert!(
                matches!(
                    &e,
                    ModelError::Nn(NnError::Autograd(AutogradError::Tensor(t))) if *t == shape_error()
                ),
                "{e:?}"
            );
            assert_eq!(e.tensor_error(), Some(&shape_error()));
            assert_eq!(e.to_string(), shape_error().to_string());
        }
    }

    /// Optimizer and data errors that are not tensor errors keep their own ModelError variant.
    #[test]
    fn other_optimizer_and_data_errors_keep_their_variant() {
        let optim = ModelError::from(OptimError::config("Adam", "lr must be positive"));
        assert!(matches!(optim, ModelError::Optim(_)), "{optim:?}");
        assert_eq!(optim.tensor_error(), None);
        let data = ModelError::from(DataError::invalid("DataLoader", "batch size 0"));
        assert!(matches!(data, ModelError::Data(_)), "{data:?}");
        assert_eq!(data.autograd_error(), None);
    }
}
