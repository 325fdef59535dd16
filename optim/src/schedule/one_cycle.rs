//! `OneCycle`: warm up from `max_lr / div_factor` to `max_lr`, then anneal far below the start
//! (`torch.optim.lr_scheduler.OneCycleLR` with cosine annealing; the learning rate only, not
//! its momentum cycling).

use super::{check_factor, check_lr, LrSchedule};
use crate::error::{OptimError, Result};

/// The knobs of [`OneCycle`] (PyTorch's names and defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OneCycleConfig {
    /// The peak rate.
    pub max_lr: f64,
    /// The length of the cycle in steps.
    pub total_steps: u64,
    /// The fraction of the cycle spent increasing the rate (0.3).
    pub pct_start: f64,
    /// `initial_lr = max_lr / div_factor` (25).
    pub div_factor: f64,
    /// `min_lr = initial_lr / final_div_factor` (1e4).
    pub final_div_factor: f64,
    /// Three phases (up, back down to `initial_lr`, then to `min_lr`) instead of two.
    pub three_phase: bool,
}

impl OneCycleConfig {
    /// PyTorch's defaults for a peak rate and a cycle length.
    pub fn new(max_lr: f64, total_steps: u64) -> OneCycleConfig {
        OneCycleConfig {
            max_lr,
            total_steps,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
            three_phase: false,
        }
    }
}

/// One phase: anneal from `start_lr` at `start_step` to `end_lr` at `end_step`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Phase {
    end_step: f64,
    start_lr: f64,
    end_lr: f64,
}

/// The one-cycle schedule. Steps past `total_steps` (where PyTorch raises an error) get the
/// final rate `min_lr`.
#[derive(Debug, Clone, PartialEq)]
pub struct OneCycle {
    config: OneCycleConfig,
    phases: Vec<Phase>,
}

impl OneCycle {
    /// Build the phases. Every phase must span at least one step.
    pub fn new(config: OneCycleConfig) -> Result<OneCycle> {
        let what = "OneCycle";
        check_lr(what, "max_lr", config.max_lr)?;
        check_factor(what, "div_factor", config.div_factor)?;
        check_factor(what, "final_div_factor", config.final_div_factor)?;
        if !(0.0..=1.0).contains(&config.pct_start) {
            return Err(OptimError::config(
                what,
                format!("pct_start must be in [0, 1], got {}", config.pct_start),
            ));
        }
        if config.total_steps == 0 {
            return Err(OptimError::config(what, "total_steps must be > 0"));
        }
        let initial_lr = config.max_lr / config.div_factor;
        let min_lr = initial_lr / config.final_div_factor;
        let total = config.total_steps as f64;
        let up_end = config.pct_start * total - 1.0;
        let phases = if config.three_phase {
            vec![
                Phase {
                    end_step: up_end,
                    start_lr: initial_lr,
                    end_lr: config.max_lr,
                },
                Phase {
                    end_step: 2.0 * config.pct_start * total - 2.0,
                    start_lr: config.max_lr,
                    end_lr: initial_lr,
                },
                Phase {
                    end_step: total - 1.0,
                    start_lr: initial_lr,
                    end_lr: min_lr,
                },
            ]
        } else {
            vec![
                Phase {
                    end_step: up_end,
                    start_lr: initial_lr,
                    end_lr: config.max_lr,
                },
                Phase {
                    end_step: total - 1.0,
                    start_lr: config.max_lr,
                    end_lr: min_lr,
                },
            ]
        };
        let mut start = 0.0;
        for (i, p) in phases.iter().enumerate() {
            if p.end_step <= start {
                return Err(OptimError::config(
                    what,
                    format!(
                        "phase {i} would be empty (ends at step {} but starts at {start}): with total_steps {} use a pct_start that leaves every phase at least one step",
                        p.end_step, config.total_steps
                    ),
                ));
            }
            start = p.end_step;
        }
        Ok(OneCycle { config, phases })
    }

    /// The configuration.
    pub fn config(&self) -> &OneCycleConfig {
        &self.config
    }

    /// The final rate, `max_lr / div_factor / final_div_factor`.
    pub fn min_lr(&self) -> f64 {
        self.config.max_lr / self.config.div_factor / self.config.final_div_factor
    }
}

/// Cosine interpolation from `start` (pct 0) to `end` (pct 1).
fn anneal_cos(start: f64, end: f64, pct: f64) -> f64 {
    end + (start - end) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0)
}

impl LrSchedule for OneCycle {
    fn lr_at(&self, step: u64) -> f64 {
        // HINT: past total_steps: min_lr(); otherwise find the first phase whose end_step >= step
        // HINT: (or the last phase), pct = (step - phase start) / (end_step - phase start), and
        // HINT: anneal_cos(start_lr, end_lr, pct); a phase starts where the previous one ended (the
        // HINT: first at 0)
        // BEGIN SOLUTION
        if step > self.config.total_steps {
            return self.min_lr();
        }
        let t = step as f64;
        let mut start = 0.0;
        for (i, phase) in self.phases.iter().enumerate() {
            if t <= phase.end_step || i == self.phases.len() - 1 {
                let pct = (t - start) / (phase.end_step - start);
                return anneal_cos(phase.start_lr, phase.end_lr, pct);
            }
            start = phase.end_step;
        }
        self.min_lr()
        // END SOLUTION
    }
    fn name(&self) -> &'static str {
        "one-cycle"
    }
}
