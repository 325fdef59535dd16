//! `Constant`: the same learning rate at every step.

use super::{check_lr, LrSchedule};
use crate::error::Result;

/// A constant learning rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Constant {
    /// The learning rate.
    pub lr: f64,
}

impl Constant {
    /// A constant schedule (the rate must be finite and >= 0).
    pub fn new(lr: f64) -> Result<Constant> {
        check_lr("Constant", "lr", lr)?;
        Ok(Constant { lr })
    }
}

impl LrSchedule for Constant {
    fn lr_at(&self, _step: u64) -> f64 {
        self.lr
    }
    fn name(&self) -> &'static str {
        "constant"
    }
}
