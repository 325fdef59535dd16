//! Trainer checkpoints: [`Trainer::save_checkpoint`] and [`Trainer::resume`] (bit-exact).
//!
//! The file is written and read by [`crate::checkpoint`] (the one safetensors path of the
//! project: atomic write, dtype conversion, metadata): the model's state dict as `model/<name>`
//! tensors, the optimizer's buffers as `optimizer/<buffer>` tensors, and in the metadata the
//! optimizer's JSON header (exact bits of every float), the trainer's step and history, and the
//! task's data position. [`Trainer::training_state`] and [`Trainer::restore_training_state`]
//! are the same minus the model, for a model saved in its own format (a GPT checkpoint that
//! `--load` can also generate from).

use std::collections::BTreeMap;
use std::path::Path;

use nn::NnError;
use optim::OptimizerState;
use serde_json::{json, Value};

use crate::checkpoint::{load_tensors, save_tensors, TrainingState};
use crate::error::{ModelError, Result};

use super::{History, TrainTask, Trainer};

const CHECKPOINT_FORMAT: &str = "tinytorch-trainer-checkpoint";
const MODEL_PREFIX: &str = "model/";
const OPTIM_PREFIX: &str = "optimizer/";

impl Trainer {
    /// Everything needed to resume except the model's own tensors: the optimizer's buffers as
    /// `optimizer/<buffer>` tensors, and as metadata the optimizer's JSON header, the trainer's
    /// step and history (`trainer`) and the task's data position (`task`). A model saved in its
    /// own format (e.g. [`crate::checkpoint::save_gpt`], as its training state) plus this is a
    /// resumable checkpoint; [`Trainer::restore_training_state`] reads it back.
    pub fn training_state<T: TrainTask + ?Sized>(&self, task: &T) -> TrainingState {
        let optimizer = self.optimizer.state_dict();
        let tensors = optimizer
            .buffers
            .iter()
            .map(|(name, t)| (format!("{OPTIM_PREFIX}{name}"), t.clone()))
            .collect();
        let trainer = json!({
            "step": self.step,
            "seconds": self.seconds,
            "schedule": self.schedule.as_ref().map(|s| s.name()),
            "history": self.history.to_json(),
        });
        let metadata = BTreeMap::from([
            ("trainer".to_string(), trainer.to_string()),
            ("optimizer".to_string(), optimizer.metadata_json()),
            ("task".to_string(), task.position().to_string()),
        ]);
        TrainingState { metadata, tensors }
    }

    /// Save everything needed to resume: the task's state dict, the optimizer's state, the step,
    /// the history and the task's data position (one safetensors file, written atomically).
    pub fn save_checkpoint<T: TrainTask + ?Sized>(&self, task: &T, path: &Path) -> Result<()> {
        let state = self.training_state(task);
        let mut tensors = state.tensors;
        for (name, t) in task.state_dict() {
            tensors.insert(format!("{MODEL_PREFIX}{name}"), t);
        }
        let mut metadata = state.metadata;
        metadata.insert("format".to_string(), CHECKPOINT_FORMAT.to_string());
        save_tensors(path, &tensors, &metadata)
    }

    /// Restore a checkpoint written by [`Trainer::save_checkpoint`] into this trainer (step,
    /// optimizer state, history) and `task` (model state, data position). The task and the
    /// optimizer must be built the same way as for the saved run; every mismatch is reported.
    pub fn resume<T: TrainTask + ?Sized>(&mut self, task: &mut T, path: &Path) -> Result<()> {
        let problem = |p: String| ModelError::Checkpoint {
            path: path.to_path_buf(),
            problems: vec![p],
        };
        let (tensors, mut metadata) = load_tensors(path)?;
        let format = metadata
            .remove("format")
            .ok_or_else(|| problem("metadata has no 'format' entry".into()))?;
        if format != CHECKPOINT_FORMAT {
            return Err(problem(format!(
                "format is '{format}', expected '{CHECKPOINT_FORMAT}'"
            )));
        }
        let (mut model, mut rest) = (BTreeMap::new(), BTreeMap::new());
        for (name, t) in tensors {
            if let Some(n) = name.strip_prefix(MODEL_PREFIX) {
                model.insert(n.to_string(), t);
            } else if name.starts_with(OPTIM_PREFIX) {
                rest.insert(name, t);
            } else {
                return Err(problem(format!("unexpected tensor '{name}'")));
            }
        }
        let state = TrainingState {
            metadata,
            tensors: rest,
        };
        // Parse everything before changing anything.
        let parsed = ParsedState::parse(&state, path)?;
        task.load_state_dict(&model).map_err(|e| match e {
            ModelError::Nn(NnError::StateDict { problems }) => ModelError::Checkpoint {
                path: path.to_path_buf(),
                problems,
            },
            e => e,
        })?;
        self.apply(task, parsed, path)
    }

    /// Restore what [`Trainer::training_state`] saved (step, optimizer state, history, data
    /// position); the model's weights are the caller's to load. `path` names the file in errors.
    pub fn restore_training_state<T: TrainTask + ?Sized>(
        &mut self,
        task: &mut T,
        state: &TrainingState,
        path: &Path,
    ) -> Result<()> {
        let parsed = ParsedState::parse(state, path)?;
        self.apply(task, parsed, path)
    }

    fn apply<T: TrainTask + ?Sized>(
        &mut self,
        task: &mut T,
        parsed: ParsedState,
        path: &Path,
    ) -> Result<()> {
        self.optimizer
            .load_state_dict(&parsed.optimizer)
            .map_err(|e| ModelError::Checkpoint {
                path: path.to_path_buf(),
                problems: vec![e.to_string()],
            })?;
        task.set_position(&parsed.position)?;
        self.step = parsed.step;
        self.seconds = parsed.seconds;
        self.history = parsed.history;
        Ok(())
    }
}

/// The trainer's part of a checkpoint, parsed and checked.
struct ParsedState {
    optimizer: OptimizerState,
    position: Value,
    step: usize,
    seconds: f64,
    history: History,
}

impl ParsedState {
    fn parse(state: &TrainingState, path: &Path) -> Result<ParsedState> {
        let problem = |p: String| ModelError::Checkpoint {
            path: path.to_path_buf(),
            problems: vec![p],
        };
        let meta = |key: &str| {
            state
                .metadata
                .get(key)
                .ok_or_else(|| problem(format!("metadata has no '{key}' entry")))
        };
        let parse = |key: &str| -> Result<Value> {
            serde_json::from_str(meta(key)?)
                .map_err(|e| problem(format!("'{key}' metadata is not JSON: {e}")))
        };
        let trainer = parse("trainer")?;
        let position = parse("task")?;
        let step = trainer
            .get("step")
            .and_then(Value::as_u64)
            .ok_or_else(|| problem("trainer metadata has no step".into()))?
            as usize;
        let seconds = trainer
            .get("seconds")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let history = History::from_json(trainer.get("history").unwrap_or(&Value::Null))?;
        let mut buffers = BTreeMap::new();
        for (name, t) in &state.tensors {
            match name.strip_prefix(OPTIM_PREFIX) {
                Some(n) => {
                    buffers.insert(n.to_string(), t.clone());
                }
                None => return Err(problem(format!("unexpected tensor '{name}'"))),
            }
        }
        let optimizer = OptimizerState::from_metadata_json(meta("optimizer")?, buffers)
            .map_err(|e| problem(e.to_string()))?;
        Ok(ParsedState {
            optimizer,
            position,
            step,
            seconds,
            history,
        })
    }
}
