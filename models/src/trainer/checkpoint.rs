//! Trainer checkpoints: [`Trainer::save_checkpoint`] and [`Trainer::resume`] (bit-exact).
//!
//! The file is written and read by [`crate::checkpoint`] (the one safetensors path of the
//! project: atomic write, dtype conversion, metadata): the model's state dict as `model/<name>`
//! tensors, the optimizer's buffers as `optimizer/<buffer>` tensors, and in the metadata the
//! optimizer's JSON header (exact bits of every float), the trainer's step and history, and the
//! task's data position.

use std::collections::BTreeMap;
use std::path::Path;

use nn::NnError;
use optim::OptimizerState;
use serde_json::{json, Value};

use crate::checkpoint::{load_tensors, save_tensors};
use crate::error::{ModelError, Result};

use super::{History, TrainTask, Trainer};

const CHECKPOINT_FORMAT: &str = "tinytorch-trainer-checkpoint";
const MODEL_PREFIX: &str = "model/";
const OPTIM_PREFIX: &str = "optimizer/";

impl Trainer {
    /// Save everything needed to resume: the task's state dict, the optimizer's state, the step,
    /// the history and the task's data position (one safetensors file, written atomically).
    pub fn save_checkpoint<T: TrainTask + ?Sized>(&self, task: &T, path: &Path) -> Result<()> {
        let optimizer = self.optimizer.state_dict();
        let mut tensors = BTreeMap::new();
        for (name, t) in task.state_dict() {
            tensors.insert(format!("{MODEL_PREFIX}{name}"), t);
        }
        for (name, t) in optimizer.buffers.iter() {
            tensors.insert(format!("{OPTIM_PREFIX}{name}"), t.clone());
        }
        let trainer = json!({
            "step": self.step,
            "seconds": self.seconds,
            "schedule": self.schedule.as_ref().map(|s| s.name()),
            "history": self.history.to_json(),
        });
        let metadata = BTreeMap::from([
            ("format".to_string(), CHECKPOINT_FORMAT.to_string()),
            ("trainer".to_string(), trainer.to_string()),
            ("optimizer".to_string(), optimizer.metadata_json()),
            ("task".to_string(), task.position().to_string()),
        ]);
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
        let (tensors, metadata) = load_tensors(path)?;
        let meta = |key: &str| {
            metadata
                .get(key)
                .ok_or_else(|| problem(format!("metadata has no '{key}' entry")))
        };
        if meta("format")? != CHECKPOINT_FORMAT {
            return Err(problem(format!(
                "format is '{}', expected '{CHECKPOINT_FORMAT}'",
                meta("format")?
            )));
        }
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
        let (mut model, mut buffers) = (BTreeMap::new(), BTreeMap::new());
        for (name, t) in tensors {
            if let Some(n) = name.strip_prefix(MODEL_PREFIX) {
                model.insert(n.to_string(), t);
            } else if let Some(n) = name.strip_prefix(OPTIM_PREFIX) {
                buffers.insert(n.to_string(), t);
            } else {
                return Err(problem(format!("unexpected tensor '{name}'")));
            }
        }
        let optimizer = OptimizerState::from_metadata_json(meta("optimizer")?, buffers)
            .map_err(|e| problem(e.to_string()))?;
        task.load_state_dict(&model).map_err(|e| match e {
            ModelError::Nn(NnError::StateDict { problems }) => ModelError::Checkpoint {
                path: path.to_path_buf(),
                problems,
            },
            e => e,
        })?;
        self.optimizer
            .load_state_dict(&optimizer)
            .map_err(|e| problem(e.to_string()))?;
        task.set_position(&position)?;
        self.step = step;
        self.seconds = seconds;
        self.history = history;
        Ok(())
    }
}
