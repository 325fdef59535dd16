//! `StepLr`: multiply the rate by `gamma` every `step_size` steps (`torch.optim.lr_scheduler.StepLR`).

use super::{check_factor, check_lr, LrSchedule};
use crate::error::{OptimError, Result};

/// `lr = base_lr * gamma^floor(step / step_size)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLr {
    /// The initial rate.
    pub base_lr: f64,
    /// Steps between decays.
    pub step_size: u64,
    /// Factor applied at each decay (PyTorch's default 0.1).
    pub gamma: f64,
}

impl StepLr {
    /// A step schedule; `step_size` must be > 0 and `gamma` > 0.
    pub fn new(base_lr: f64, step_size: u64, gamma: f64) -> Result<StepLr> {
        check_lr("StepLr", "base_lr", base_lr)?;
        check_factor("StepLr", "gamma", gamma)?;
        if step_size == 0 {
            return Err(OptimError::config("StepLr", "step_size must be > 0"));
        }
        Ok(StepLr {
            base_lr,
            step_size,
            gamma,
        })
    }
}

impl LrSchedule for StepLr {
    fn lr_at(&self, step: u64) -> f64 {
        // HINT: base_lr * gamma^(number of completed step_size periods)
        // BEGIN SOLUTION
        self.base_lr * self.gamma.powf((step / self.step_size) as f64)
        // END SOLUTION
    }
    fn name(&self) -> &'static str {
        "step"
    }
}
