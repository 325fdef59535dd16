//! `ReduceLrOnPlateau`: cut the rate when a measured metric stops improving
//! (`torch.optim.lr_scheduler.ReduceLROnPlateau`).
//!
//! The one stateful schedule: it watches a metric (usually the validation loss), counts the
//! observations since the last improvement, and multiplies the rate by `factor` once that count
//! exceeds `patience`; then it waits `cooldown` observations before counting again. Its
//! [`PlateauState`] must be saved with the optimizer to resume exactly.

use serde_json::{json, Value};

use super::check_lr;
use crate::error::{OptimError, Result};

/// Whether lower (`Min`, losses) or higher (`Max`, accuracies) is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlateauMode {
    /// Lower is better.
    Min,
    /// Higher is better.
    Max,
}

/// How `threshold` defines a significant improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdMode {
    /// Better than `best * (1 - threshold)` (mode min) or `best * (1 + threshold)` (mode max).
    Rel,
    /// Better than `best - threshold` (mode min) or `best + threshold` (mode max).
    Abs,
}

/// The knobs of [`ReduceLrOnPlateau`] (PyTorch's names and defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlateauConfig {
    /// Lower or higher is better (`Min`).
    pub mode: PlateauMode,
    /// The rate is multiplied by this on a plateau (0.1); must be in (0, 1).
    pub factor: f64,
    /// Observations without improvement tolerated before cutting (10).
    pub patience: u64,
    /// What counts as an improvement (1e-4).
    pub threshold: f64,
    /// Relative or absolute threshold (`Rel`).
    pub threshold_mode: ThresholdMode,
    /// Observations to wait after a cut before counting again (0).
    pub cooldown: u64,
    /// The rate never goes below this (0).
    pub min_lr: f64,
    /// Cuts smaller than this are skipped (1e-8).
    pub eps: f64,
}

impl Default for PlateauConfig {
    fn default() -> PlateauConfig {
        PlateauConfig {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        }
    }
}

/// Everything [`ReduceLrOnPlateau`] remembers between observations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlateauState {
    /// The current rate.
    pub lr: f64,
    /// The best metric seen (starts at +inf for `Min`, -inf for `Max`).
    pub best: f64,
    /// Observations since the last improvement.
    pub num_bad_epochs: u64,
    /// Observations left in the current cooldown.
    pub cooldown_counter: u64,
    /// Observations so far.
    pub observations: u64,
}

impl PlateauState {
    /// The state as JSON, floats with their exact bits (see [`crate::OptimizerState`]).
    pub fn to_json(&self) -> String {
        let exact = |v: f64| json!({ "value": if v.is_finite() { json!(v) } else { Value::Null }, "bits": format!("{:#018x}", v.to_bits()) });
        json!({
            "lr": exact(self.lr),
            "best": exact(self.best),
            "num_bad_epochs": self.num_bad_epochs,
            "cooldown_counter": self.cooldown_counter,
            "observations": self.observations,
        })
        .to_string()
    }

    /// Parse [`PlateauState::to_json`].
    pub fn from_json(text: &str) -> Result<PlateauState> {
        let bad = |reason: String| OptimError::Format {
            reason: format!("plateau state: {reason}"),
        };
        let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let float = |key: &str| {
            v[key]["bits"]
                .as_str()
                .and_then(|s| s.strip_prefix("0x"))
                .and_then(|s| u64::from_str_radix(s, 16).ok())
                .map(f64::from_bits)
                .ok_or_else(|| {
                    bad(format!(
                        "'{key}' must be {{\"value\", \"bits\": \"0x...\"}}"
                    ))
                })
        };
        let int = |key: &str| {
            v[key]
                .as_u64()
                .ok_or_else(|| bad(format!("'{key}' must be an integer")))
        };
        Ok(PlateauState {
            lr: float("lr")?,
            best: float("best")?,
            num_bad_epochs: int("num_bad_epochs")?,
            cooldown_counter: int("cooldown_counter")?,
            observations: int("observations")?,
        })
    }
}

/// Reduce the learning rate when a metric has stopped improving.
#[derive(Debug, Clone, PartialEq)]
pub struct ReduceLrOnPlateau {
    config: PlateauConfig,
    state: PlateauState,
}

impl ReduceLrOnPlateau {
    /// Start at `initial_lr`.
    pub fn new(initial_lr: f64, config: PlateauConfig) -> Result<ReduceLrOnPlateau> {
        let what = "ReduceLrOnPlateau";
        check_lr(what, "initial_lr", initial_lr)?;
        check_lr(what, "min_lr", config.min_lr)?;
        check_lr(what, "threshold", config.threshold)?;
        check_lr(what, "eps", config.eps)?;
        if !(config.factor > 0.0 && config.factor < 1.0) {
            return Err(OptimError::config(
                what,
                format!("factor must be in (0, 1), got {}", config.factor),
            ));
        }
        let best = match config.mode {
            PlateauMode::Min => f64::INFINITY,
            PlateauMode::Max => f64::NEG_INFINITY,
        };
        Ok(ReduceLrOnPlateau {
            config,
            state: PlateauState {
                lr: initial_lr,
                best,
                num_bad_epochs: 0,
                cooldown_counter: 0,
                observations: 0,
            },
        })
    }

    /// The current rate.
    pub fn lr(&self) -> f64 {
        self.state.lr
    }

    /// The configuration.
    pub fn config(&self) -> &PlateauConfig {
        &self.config
    }

    /// The state to save.
    pub fn state(&self) -> PlateauState {
        self.state
    }

    /// Restore a saved state.
    pub fn load_state(&mut self, state: PlateauState) {
        self.state = state;
    }

    /// Whether `metric` improves significantly on `best` (a NaN metric never does).
    fn is_better(&self, metric: f64, best: f64) -> bool {
        let t = self.config.threshold;
        match (self.config.mode, self.config.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => metric < best * (1.0 - t),
            (PlateauMode::Min, ThresholdMode::Abs) => metric < best - t,
            (PlateauMode::Max, ThresholdMode::Rel) => metric > best * (1.0 + t),
            (PlateauMode::Max, ThresholdMode::Abs) => metric > best + t,
        }
    }

    /// Record one measurement (e.g. a validation loss) and return the rate to use next.
    pub fn observe(&mut self, metric: f64) -> f64 {
        // HINT: improvement (is_better) resets the bad count and records best, else count one more
        // HINT: bad observation; during cooldown decrement it and ignore bad observations; once bad
        // HINT: > patience, lr = max(lr * factor, min_lr) if that changes it by more than eps,
        // HINT: start a cooldown, reset the bad count
        // BEGIN SOLUTION
        let better = self.is_better(metric, self.state.best);
        let s = &mut self.state;
        s.observations += 1;
        if better {
            s.best = metric;
            s.num_bad_epochs = 0;
        } else {
            s.num_bad_epochs += 1;
        }
        if s.cooldown_counter > 0 {
            s.cooldown_counter -= 1;
            s.num_bad_epochs = 0;
        }
        if s.num_bad_epochs > self.config.patience {
            let new_lr = (s.lr * self.config.factor).max(self.config.min_lr);
            if s.lr - new_lr > self.config.eps {
                s.lr = new_lr;
            }
            s.cooldown_counter = self.config.cooldown;
            s.num_bad_epochs = 0;
        }
        s.lr
        // END SOLUTION
    }

    /// Whether `metric` would count as an improvement now (without recording it).
    pub fn would_improve(&self, metric: f64) -> bool {
        self.is_better(metric, self.state.best)
    }
}
