//! `WarmupCosine`: nanoGPT's schedule. A linear warmup to `max_lr`, a cosine decay to `min_lr`
//! at `lr_decay_iters`, then `min_lr` for ever.
//!
//! Warmup exists because the first steps are the least informed: Adam's second moment is an
//! average of a handful of gradients, and a randomly initialised network's gradients are large
//! and inconsistent. Starting small lets the moments and the network settle before full steps.

use super::{check_lr, LrSchedule};
use crate::error::{OptimError, Result};

/// nanoGPT's `get_lr(it)`:
///
/// ```text
/// it < warmup_iters:       max_lr * (it + 1) / (warmup_iters + 1)
/// it > lr_decay_iters:     min_lr
/// otherwise:               min_lr + (max_lr - min_lr) * (1 + cos(pi * r)) / 2,
///                          r = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmupCosine {
    /// The peak rate, reached at the end of warmup.
    pub max_lr: f64,
    /// Steps of linear warmup.
    pub warmup_iters: u64,
    /// The step at which the decay reaches `min_lr`.
    pub lr_decay_iters: u64,
    /// The floor (nanoGPT: `max_lr / 10`).
    pub min_lr: f64,
}

impl WarmupCosine {
    /// The schedule; needs `warmup_iters < lr_decay_iters` and `min_lr <= max_lr`.
    pub fn new(
        max_lr: f64,
        warmup_iters: u64,
        lr_decay_iters: u64,
        min_lr: f64,
    ) -> Result<WarmupCosine> {
        check_lr("WarmupCosine", "max_lr", max_lr)?;
        check_lr("WarmupCosine", "min_lr", min_lr)?;
        if warmup_iters >= lr_decay_iters {
            return Err(OptimError::config(
                "WarmupCosine",
                format!(
                    "warmup_iters ({warmup_iters}) must be < lr_decay_iters ({lr_decay_iters})"
                ),
            ));
        }
        if min_lr > max_lr {
            return Err(OptimError::config(
                "WarmupCosine",
                format!("min_lr ({min_lr}) must be <= max_lr ({max_lr})"),
            ));
        }
        Ok(WarmupCosine {
            max_lr,
            warmup_iters,
            lr_decay_iters,
            min_lr,
        })
    }
}

impl LrSchedule for WarmupCosine {
    fn lr_at(&self, step: u64) -> f64 {
        // HINT: warmup: max_lr * (step + 1) / (warmup_iters + 1); past lr_decay_iters: min_lr;
        // HINT: otherwise cosine from max_lr to min_lr over (step - warmup_iters) / (lr_decay_iters
        // HINT: - warmup_iters)
        // BEGIN SOLUTION
        if step < self.warmup_iters {
            return self.max_lr * (step + 1) as f64 / (self.warmup_iters + 1) as f64;
        }
        if step > self.lr_decay_iters {
            return self.min_lr;
        }
        let ratio =
            (step - self.warmup_iters) as f64 / (self.lr_decay_iters - self.warmup_iters) as f64;
        let coeff = 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos());
        self.min_lr + coeff * (self.max_lr - self.min_lr)
        // END SOLUTION
    }
    fn name(&self) -> &'static str {
        "warmup-cosine"
    }
}
