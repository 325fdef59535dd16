//! The learning-rate range test: an exponential sweep of the learning rate on a fresh copy,
//! and the rate it suggests.

use std::time::{Duration, Instant};

use optim::Optimizer;

use crate::error::{ModelError, Result};
use crate::trainer::TrainTask;

use super::checks::train_step;
use super::report::fmt_num;

/// The sweep of [`lr_range_test`].
#[derive(Clone, Debug, PartialEq)]
pub struct LrRangeConfig {
    /// The first learning rate.
    pub start_lr: f64,
    /// The last learning rate.
    pub end_lr: f64,
    /// Steps from `start_lr` to `end_lr` (each multiplies the lr by the same factor).
    pub steps: usize,
    /// Exponential smoothing of the loss (`0`: none; `0.9`: about the last 10 steps).
    pub smoothing: f64,
    /// Stop when the smoothed loss exceeds this many times its minimum (divergence).
    pub divergence: f64,
}

impl Default for LrRangeConfig {
    fn default() -> LrRangeConfig {
        LrRangeConfig {
            start_lr: 1e-6,
            end_lr: 1.0,
            steps: 100,
            smoothing: 0.9,
            divergence: 4.0,
        }
    }
}

impl LrRangeConfig {
    pub(super) fn validate(&self) -> Result<()> {
        let ok = self.start_lr > 0.0
            && self.end_lr > self.start_lr
            && self.end_lr.is_finite()
            && self.steps >= 2
            && (0.0..1.0).contains(&self.smoothing)
            && self.divergence > 1.0;
        if ok {
            return Ok(());
        }
        Err(ModelError::Invalid {
            op: "LrRangeConfig",
            reason: format!(
                "need 0 < start_lr < end_lr (got {} and {}), steps >= 2 (got {}), smoothing in \
                 [0, 1) (got {}) and divergence > 1 (got {})",
                self.start_lr, self.end_lr, self.steps, self.smoothing, self.divergence
            ),
        })
    }

    /// The learning rate of step `i`: `start * (end / start)^(i / (steps - 1))`.
    pub fn lr_at(&self, i: usize) -> f64 {
        let t = i as f64 / (self.steps - 1) as f64;
        self.start_lr * (self.end_lr / self.start_lr).powf(t)
    }
}

/// What the LR range test saw.
#[derive(Clone, Debug, PartialEq)]
pub struct LrRangeResult {
    /// The learning rate of each step run.
    pub lrs: Vec<f64>,
    /// The raw loss of each step (before that step's update).
    pub losses: Vec<f32>,
    /// The bias-corrected exponentially smoothed loss of each step.
    pub smoothed: Vec<f64>,
    /// The learning rate at the minimum smoothed loss.
    pub min_loss_lr: f64,
    /// The minimum smoothed loss.
    pub min_loss: f64,
    /// `min_loss_lr / 10`, when the loss fell at all during the sweep.
    pub suggested_lr: Option<f64>,
    /// The learning rate at which the sweep stopped because the loss diverged (or became
    /// non-finite), if it did.
    pub diverged_at: Option<f64>,
}

impl LrRangeResult {
    /// One line: the suggestion, the minimum and where the sweep stopped.
    pub fn summary(&self) -> String {
        let first = self.lrs.first().copied().unwrap_or(0.0);
        let last = self.lrs.last().copied().unwrap_or(0.0);
        let suggestion = match self.suggested_lr {
            Some(lr) => format!("suggested lr {} (lr at the minimum / 10)", fmt_num(lr)),
            None => "no suggestion: the loss never fell".into(),
        };
        let stop = match self.diverged_at {
            Some(lr) => format!(", diverged at lr {}", fmt_num(lr)),
            None if self.min_loss_lr >= last => {
                ", the loss still fell at the last lr (raise end_lr to see where it diverges)"
                    .into()
            }
            None => String::new(),
        };
        format!(
            "{suggestion}; smoothed loss minimum {} at lr {}; {} steps from lr {} to {}{stop}",
            fmt_num(self.min_loss),
            fmt_num(self.min_loss_lr),
            self.lrs.len(),
            fmt_num(first),
            fmt_num(last)
        )
    }
}

/// The learning-rate range test: train `task` (a fresh copy) on its successive batches while
/// the learning rate grows exponentially from `start_lr` to `end_lr`; smooth the loss
/// exponentially (bias-corrected), stop when it exceeds `divergence` times its minimum or is not
/// finite, and suggest the learning rate at the minimum smoothed loss divided by 10.
pub fn lr_range_test(
    task: &mut dyn TrainTask,
    optimizer: &mut dyn Optimizer,
    config: &LrRangeConfig,
    budget: Duration,
) -> Result<LrRangeResult> {
    config.validate()?;
    let start = Instant::now();
    let (mut lrs, mut losses, mut smoothed) = (Vec::new(), Vec::new(), Vec::new());
    let mut avg = 0.0f64;
    let (mut best, mut best_lr, mut best_step) = (f64::INFINITY, config.start_lr, 0usize);
    let mut diverged_at = None;
    for i in 0..config.steps {
        let lr = config.lr_at(i);
        optimizer.set_lr(lr);
        task.next_batch()?;
        let loss = train_step(task, optimizer)?;
        if !loss.is_finite() {
            diverged_at = Some(lr);
            break;
        }
        avg = config.smoothing * avg + (1.0 - config.smoothing) * loss as f64;
        let s = avg / (1.0 - config.smoothing.powi(i as i32 + 1));
        lrs.push(lr);
        losses.push(loss);
        smoothed.push(s);
        if s < best {
            (best, best_lr, best_step) = (s, lr, i);
        }
        if i > 0 && s > config.divergence * best {
            diverged_at = Some(lr);
            break;
        }
        if start.elapsed() > budget {
            break;
        }
    }
    if lrs.is_empty() {
        return Err(ModelError::NonFiniteLoss {
            step: 0,
            loss: f32::NAN,
            op: None,
        });
    }
    Ok(LrRangeResult {
        suggested_lr: (best_step > 0).then_some(best_lr / 10.0),
        lrs,
        losses,
        smoothed,
        min_loss_lr: best_lr,
        min_loss: best,
        diverged_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The LR range test's rates grow by the same factor every step, from start to end.
    #[test]
    fn lr_schedule_is_exponential() {
        let c = LrRangeConfig {
            start_lr: 1e-4,
            end_lr: 1.0,
            steps: 5,
            ..Default::default()
        };
        let lrs: Vec<f64> = (0..5).map(|i| c.lr_at(i)).collect();
        for (got, want) in lrs.iter().zip([1e-4, 1e-3, 1e-2, 1e-1, 1.0]) {
            assert!((got / want - 1.0).abs() < 1e-12, "{got} vs {want}");
        }
    }
}
