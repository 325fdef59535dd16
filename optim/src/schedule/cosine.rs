//! `CosineAnnealing`: half a cosine from `base_lr` down to `eta_min` over `t_max` steps
//! (`torch.optim.lr_scheduler.CosineAnnealingLR`, its closed form).

use super::{check_lr, LrSchedule};
use crate::error::{OptimError, Result};

/// `lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * step / t_max)) / 2`.
///
/// Past `t_max` the cosine continues, so the rate rises again (PyTorch does the same); use
/// [`crate::schedule::WarmupCosine`] for a schedule that stays at its floor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosineAnnealing {
    /// The initial rate.
    pub base_lr: f64,
    /// Steps of the half period.
    pub t_max: u64,
    /// The lowest rate.
    pub eta_min: f64,
}

impl CosineAnnealing {
    /// A cosine schedule; `t_max` must be > 0.
    pub fn new(base_lr: f64, t_max: u64, eta_min: f64) -> Result<CosineAnnealing> {
        check_lr("CosineAnnealing", "base_lr", base_lr)?;
        check_lr("CosineAnnealing", "eta_min", eta_min)?;
        if t_max == 0 {
            return Err(OptimError::config("CosineAnnealing", "t_max must be > 0"));
        }
        Ok(CosineAnnealing {
            base_lr,
            t_max,
            eta_min,
        })
    }
}

impl LrSchedule for CosineAnnealing {
    fn lr_at(&self, step: u64) -> f64 {
        // HINT: eta_min + (base_lr - eta_min) * (1 + cos(pi * step / t_max)) / 2, in f64
        // BEGIN SOLUTION
        let progress = step as f64 / self.t_max as f64;
        self.eta_min
            + (self.base_lr - self.eta_min) * (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0
        // END SOLUTION
    }
    fn name(&self) -> &'static str {
        "cosine"
    }
}
