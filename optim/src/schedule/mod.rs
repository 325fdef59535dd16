//! Learning-rate schedules.
//!
//! A closed-form schedule is a pure function of the step: [`LrSchedule::lr_at`]. It keeps no
//! state, so resuming needs only the step count, which the optimizer saves
//! ([`crate::Optimizer::steps`]). Use it before each step:
//!
//! ```
//! use autograd::Variable;
//! use optim::schedule::{LrSchedule, WarmupCosine};
//! use optim::{Adam, AdamConfig, Optimizer};
//! use tensor::Tensor;
//!
//! let w = Variable::parameter(Tensor::zeros(&[2]));
//! let mut opt = Adam::new(vec![("w".into(), w.clone())], AdamConfig::default()).unwrap();
//! let schedule = WarmupCosine::new(6e-4, 100, 5000, 6e-5).unwrap();
//! opt.set_lr(schedule.lr_at(opt.steps())); // 6e-4 * 1 / 101 at step 0
//! assert!((opt.lr() - 6e-4 / 101.0).abs() < 1e-12);
//! ```
//!
//! With parameter groups at different rates, use `opt.set_lr_factor(s.lr_at(t) / peak)` to keep
//! their ratios. [`ReduceLrOnPlateau`] is the one stateful schedule: it reacts to a measured
//! metric, and its [`PlateauState`] must be saved alongside the optimizer.
//!
//! | schedule | PyTorch / origin |
//! |---|---|
//! | [`Constant`] | `ConstantLR` with factor 1 |
//! | [`StepLr`] | `StepLR` |
//! | [`ExponentialLr`] | `ExponentialLR` |
//! | [`CosineAnnealing`] | `CosineAnnealingLR` (closed form) |
//! | [`WarmupCosine`] | nanoGPT's `get_lr`: linear warmup, cosine decay, floor |
//! | [`OneCycle`] | `OneCycleLR` (cosine annealing, learning rate only) |
//! | [`ReduceLrOnPlateau`] | `ReduceLROnPlateau` |

mod constant;
mod cosine;
mod exponential;
mod one_cycle;
mod plateau;
mod step;
mod warmup_cosine;

pub use constant::Constant;
pub use cosine::CosineAnnealing;
pub use exponential::ExponentialLr;
pub use one_cycle::{OneCycle, OneCycleConfig};
pub use plateau::{PlateauConfig, PlateauMode, PlateauState, ReduceLrOnPlateau, ThresholdMode};
pub use step::StepLr;
pub use warmup_cosine::WarmupCosine;

use crate::error::{OptimError, Result};

/// A learning rate as a function of the step (0 for the first step).
pub trait LrSchedule {
    /// The learning rate to use for step `step` (counted from 0).
    fn lr_at(&self, step: u64) -> f64;
    /// The schedule's name, for logs.
    fn name(&self) -> &'static str;
}

impl<S: LrSchedule + ?Sized> LrSchedule for Box<S> {
    fn lr_at(&self, step: u64) -> f64 {
        (**self).lr_at(step)
    }
    fn name(&self) -> &'static str {
        (**self).name()
    }
}

/// Check that a rate is finite and >= 0.
pub(crate) fn check_lr(what: &'static str, name: &str, value: f64) -> Result<()> {
    if !value.is_finite() || value < 0.0 {
        return Err(OptimError::config(
            what,
            format!("{name} must be finite and >= 0, got {value}"),
        ));
    }
    Ok(())
}

/// Check that a multiplicative factor is finite and > 0.
pub(crate) fn check_factor(what: &'static str, name: &str, value: f64) -> Result<()> {
    if !(value > 0.0 && value.is_finite()) {
        return Err(OptimError::config(
            what,
            format!("{name} must be finite and > 0, got {value}"),
        ));
    }
    Ok(())
}
