//! Guards that stop a run instead of reporting garbage as a success: a loss that is NaN or
//! infinite, a loss that diverged far above where it started, weights that are no longer finite,
//! and the list of data files a run read (so a user sees what was used).
//!
//! Each returns a [`GuardError`] whose message says what went wrong, at which step, and what to
//! try (`--lr` lower, usually).

use std::fmt;

use nn::Module;

/// Why a run was stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum GuardError {
    /// The loss became NaN or infinite.
    NonFiniteLoss {
        /// The milestone or phase.
        what: String,
        /// The step (or epoch) at which it happened.
        step: usize,
        /// The value.
        loss: f64,
    },
    /// The loss ended far above where it started.
    Diverged {
        /// The milestone or phase.
        what: String,
        /// The first loss recorded.
        first: f64,
        /// The last loss recorded.
        last: f64,
    },
    /// A parameter holds NaN or infinite values after training.
    NonFiniteWeights {
        /// The milestone or phase.
        what: String,
        /// The parameter's name.
        name: String,
    },
}

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardError::NonFiniteLoss { what, step, loss } => write!(
                f,
                "{what}: training stopped at step {step}: the loss is {loss} (the run diverged; rerun with a lower --lr)"
            ),
            GuardError::Diverged { what, first, last } => write!(
                f,
                "{what}: training diverged: the loss went from {first:.4} to {last:.4e} (rerun with a lower --lr)"
            ),
            GuardError::NonFiniteWeights { what, name } => write!(
                f,
                "{what}: parameter '{name}' holds non-finite values after training (the run diverged; rerun with a lower --lr)"
            ),
        }
    }
}

impl std::error::Error for GuardError {}

/// How many times its first value a loss may end at before the run counts as diverged.
pub const DIVERGENCE_FACTOR: f64 = 10.0;

/// Refuse a NaN or infinite loss at `step`.
pub fn check_loss(what: &str, step: usize, loss: f64) -> Result<(), GuardError> {
    if loss.is_finite() {
        Ok(())
    } else {
        Err(GuardError::NonFiniteLoss {
            what: what.to_string(),
            step,
            loss,
        })
    }
}

/// Refuse a loss curve that ends non-finite or more than [`DIVERGENCE_FACTOR`] times above its
/// first value (a learning rate of `1e30` gives a finite loss of `1e30`, not a NaN).
pub fn check_trend(what: &str, losses: &[f64]) -> Result<(), GuardError> {
    let (Some(&first), Some(&last)) = (losses.first(), losses.last()) else {
        return Ok(());
    };
    if let Some((step, &loss)) = losses.iter().enumerate().find(|(_, l)| !l.is_finite()) {
        return Err(GuardError::NonFiniteLoss {
            what: what.to_string(),
            step,
            loss,
        });
    }
    if last > first.abs() * DIVERGENCE_FACTOR && last > 1.0 {
        return Err(GuardError::Diverged {
            what: what.to_string(),
            first,
            last,
        });
    }
    Ok(())
}

/// Refuse a model any of whose parameters holds a NaN or an infinity.
pub fn check_weights(what: &str, model: &dyn Module) -> Result<(), GuardError> {
    for (name, p) in model.named_parameters() {
        if p.value().to_vec().iter().any(|v| !v.is_finite()) {
            return Err(GuardError::NonFiniteWeights {
                what: what.to_string(),
                name,
            });
        }
    }
    Ok(())
}

/// Print every data file this process read (absolute paths and sizes), so a run says exactly
/// which files it used.
pub fn print_files_read() {
    for (path, bytes) in data::io::files_read() {
        println!("read {} ({bytes} bytes)", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_and_divergence_are_caught() {
        assert!(check_loss("x", 3, 0.5).is_ok());
        let e = check_loss("x", 3, f64::NAN).unwrap_err().to_string();
        assert!(e.contains("step 3: the loss is NaN"), "{e}");
        assert!(check_trend("x", &[2.3, 1.0, 0.2]).is_ok());
        let e = check_trend("cnn", &[2.3, 5.0, 1.7e30])
            .unwrap_err()
            .to_string();
        assert!(e.contains("cnn: training diverged"), "{e}");
        let e = check_trend("p", &[0.7, f64::INFINITY, 1.0])
            .unwrap_err()
            .to_string();
        assert!(e.contains("step 1: the loss is inf"), "{e}");
        assert!(check_trend("x", &[]).is_ok());
        // A tiny loss that wiggles up stays a success.
        assert!(check_trend("x", &[0.01, 0.5]).is_ok());
    }

    #[test]
    fn non_finite_weights_are_named() {
        let mut rng = tensor::TensorRng::new(0);
        let layer = nn::linear::Linear::new(2, 1, true, &mut rng);
        assert!(check_weights("p", &layer).is_ok());
        let (name, w) = layer.named_parameters().remove(0);
        w.set_value(tensor::Tensor::from_vec(vec![f32::NAN, 1.0], &[1, 2]).unwrap())
            .unwrap();
        let e = check_weights("p", &layer).unwrap_err().to_string();
        assert!(e.contains(&format!("parameter '{name}'")), "{e}");
    }
}
