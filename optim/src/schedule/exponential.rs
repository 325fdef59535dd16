//! `ExponentialLr`: multiply the rate by `gamma` every step (`torch.optim.lr_scheduler.ExponentialLR`).

use super::{check_factor, check_lr, LrSchedule};
use crate::error::Result;

/// `lr = base_lr * gamma^step`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExponentialLr {
    /// The initial rate.
    pub base_lr: f64,
    /// Factor per step.
    pub gamma: f64,
}

impl ExponentialLr {
    /// An exponential schedule; `gamma` must be > 0.
    pub fn new(base_lr: f64, gamma: f64) -> Result<ExponentialLr> {
        check_lr("ExponentialLr", "base_lr", base_lr)?;
        check_factor("ExponentialLr", "gamma", gamma)?;
        Ok(ExponentialLr { base_lr, gamma })
    }
}

impl LrSchedule for ExponentialLr {
    fn lr_at(&self, step: u64) -> f64 {
        // HINT: base_lr * gamma^step
        // BEGIN SOLUTION
        self.base_lr * self.gamma.powf(step as f64)
        // END SOLUTION
    }
    fn name(&self) -> &'static str {
        "exponential"
    }
}
