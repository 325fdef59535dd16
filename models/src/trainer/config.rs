//! [`TrainerConfig`]: the budget, evaluation, logging, clipping and checkpoint settings.

use std::path::PathBuf;

use crate::error::{ModelError, Result};

/// How long to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// This many optimizer steps in total.
    Steps(usize),
    /// This many passes over the training data (needs [`TrainTask::steps_per_epoch`]).
    Epochs(usize),
}

/// The trainer's knobs; build with [`TrainerConfig::steps`] or [`TrainerConfig::epochs`] and the
/// builder methods.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainerConfig {
    /// How long to train (counted from step 0, so a resumed run stops at the same place).
    pub budget: Budget,
    /// Evaluate every this many steps (`None`: at the end of every epoch when the data has
    /// epochs). The last step is always evaluated.
    pub eval_every: Option<usize>,
    /// Write a history row every this many steps (and at every evaluation and checkpoint).
    pub log_every: usize,
    /// Clip the global gradient norm to this value.
    pub clip_grad_norm: Option<f32>,
    /// Save a checkpoint every this many steps (to `checkpoint_path`).
    pub checkpoint_every: Option<usize>,
    /// Checkpoint file; `{step}` in it is replaced by the step.
    pub checkpoint_path: Option<PathBuf>,
    /// Write the history to `<path>.csv` and `<path>.json` (at the end, at every checkpoint
    /// and when training stops on an error).
    pub history_path: Option<PathBuf>,
    /// Show a progress bar (only when stderr is a terminal).
    pub progress: bool,
    /// When the loss is NaN/Inf, re-run that step's forward in anomaly mode to name the first
    /// op that produced it.
    pub anomaly_on_nan: bool,
}

impl TrainerConfig {
    /// Train for `steps` optimizer steps.
    pub fn steps(steps: usize) -> TrainerConfig {
        TrainerConfig::with_budget(Budget::Steps(steps))
    }

    /// Train for `epochs` passes over the data.
    pub fn epochs(epochs: usize) -> TrainerConfig {
        TrainerConfig::with_budget(Budget::Epochs(epochs))
    }

    /// Defaults: evaluate per epoch, a row every 10 steps, no clipping, no checkpoints, no
    /// history files, a progress bar, anomaly re-run on NaN.
    pub fn with_budget(budget: Budget) -> TrainerConfig {
        TrainerConfig {
            budget,
            eval_every: None,
            log_every: 10,
            clip_grad_norm: None,
            checkpoint_every: None,
            checkpoint_path: None,
            history_path: None,
            progress: true,
            anomaly_on_nan: true,
        }
    }

    /// Evaluate every `steps` steps.
    pub fn eval_every(mut self, steps: usize) -> TrainerConfig {
        self.eval_every = Some(steps);
        self
    }

    /// A history row every `steps` steps.
    pub fn log_every(mut self, steps: usize) -> TrainerConfig {
        self.log_every = steps;
        self
    }

    /// Clip the global gradient norm at `max_norm`.
    pub fn clip_grad_norm(mut self, max_norm: f32) -> TrainerConfig {
        self.clip_grad_norm = Some(max_norm);
        self
    }

    /// Save a checkpoint to `path` (`{step}` is replaced by the step) every `every` steps.
    pub fn checkpoint(mut self, path: impl Into<PathBuf>, every: usize) -> TrainerConfig {
        self.checkpoint_path = Some(path.into());
        self.checkpoint_every = Some(every);
        self
    }

    /// Write the history to `<stem>.csv` and `<stem>.json`.
    pub fn history(mut self, stem: impl Into<PathBuf>) -> TrainerConfig {
        self.history_path = Some(stem.into());
        self
    }

    /// No progress bar.
    pub fn quiet(mut self) -> TrainerConfig {
        self.progress = false;
        self
    }

    /// Whether to re-run a NaN step in anomaly mode.
    pub fn anomaly_on_nan(mut self, on: bool) -> TrainerConfig {
        self.anomaly_on_nan = on;
        self
    }

    pub(super) fn validate(&self) -> Result<()> {
        let zero = |what: &str, v: Option<usize>| {
            if v == Some(0) {
                Err(ModelError::Invalid {
                    op: "TrainerConfig",
                    reason: format!("{what} must be at least 1"),
                })
            } else {
                Ok(())
            }
        };
        zero("eval_every", self.eval_every)?;
        zero("log_every", Some(self.log_every))?;
        zero("checkpoint_every", self.checkpoint_every)?;
        if self.checkpoint_every.is_some() && self.checkpoint_path.is_none() {
            return Err(ModelError::Invalid {
                op: "TrainerConfig",
                reason: "checkpoint_every is set but there is no checkpoint_path".into(),
            });
        }
        Ok(())
    }
}
