//! Trainer checkpoints: [`Trainer::save_checkpoint`] and [`Trainer::resume`] (bit-exact).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use nn::NnError;
use optim::{LrSchedule, OptimizerState};
use serde_json::{json, Value};
use tensor::Tensor;

use crate::error::{ModelError, Result};

use super::history::{file_err, write_atomic};
use super::*;

const CHECKPOINT_FORMAT: &str = "tinytorch-trainer-checkpoint";
const MODEL_PREFIX: &str = "model/";
const OPTIM_PREFIX: &str = "optimizer/";

impl Trainer {
    /// Save everything needed to resume: the task's state dict, the optimizer's state, the step,
    /// the history and the task's data position (one safetensors file, written atomically).
    pub fn save_checkpoint<T: TrainTask + ?Sized>(&self, task: &T, path: &Path) -> Result<()> {
        let optimizer = self.optimizer.state_dict();
        let mut tensors: Vec<(String, Tensor)> = Vec::new();
        for (name, t) in task.state_dict() {
            tensors.push((format!("{MODEL_PREFIX}{name}"), t));
        }
        for (name, t) in &optimizer.buffers {
            tensors.push((format!("{OPTIM_PREFIX}{name}"), t.clone()));
        }
        let trainer = json!({
            "step": self.step,
            "seconds": self.seconds,
            "schedule": self.schedule.as_ref().map(|s| s.name()),
            "history": self.history.to_json(),
        });
        let metadata = HashMap::from([
            ("format".to_string(), CHECKPOINT_FORMAT.to_string()),
            ("trainer".to_string(), trainer.to_string()),
            ("optimizer".to_string(), optimizer.metadata_json()),
            ("task".to_string(), task.position().to_string()),
        ]);
        let bytes = safetensors_bytes(&tensors, metadata).map_err(|e| file_err(path, e))?;
        write_atomic(path, &bytes)
    }

    /// Restore a checkpoint written by [`Trainer::save_checkpoint`] into this trainer (step,
    /// optimizer state, history) and `task` (model state, data position). The task and the
    /// optimizer must be built the same way as for the saved run; every mismatch is reported.
    pub fn resume<T: TrainTask + ?Sized>(&mut self, task: &mut T, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|e| file_err(path, e))?;
        let problem = |p: String| ModelError::Checkpoint {
            path: path.to_path_buf(),
            problems: vec![p],
        };
        let (tensors, metadata) = read_safetensors(&bytes).map_err(problem)?;
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

/// Serialise named f32 tensors and string metadata as safetensors bytes.
fn safetensors_bytes(
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> std::result::Result<Vec<u8>, String> {
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            let t = t.contiguous();
            let values = t
                .as_slice()
                .map(<[f32]>::to_vec)
                .unwrap_or_else(|| t.to_vec());
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), t.shape().to_vec(), bytes)
        })
        .collect();
    let views = raw
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.as_str(), v))
                .map_err(|e| format!("tensor '{name}': {e}"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    safetensors::serialize(views, Some(metadata)).map_err(|e| e.to_string())
}

type TensorsAndMetadata = (Vec<(String, Tensor)>, HashMap<String, String>);

/// Parse safetensors bytes holding f32 tensors.
fn read_safetensors(bytes: &[u8]) -> std::result::Result<TensorsAndMetadata, String> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| format!("not a safetensors file: {e}"))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| format!("not a safetensors file: {e}"))?;
    let mut tensors = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(format!(
                "tensor '{name}' is {:?}, expected F32",
                view.dtype()
            ));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let t =
            Tensor::from_vec(values, view.shape()).map_err(|e| format!("tensor '{name}': {e}"))?;
        tensors.push((name, t));
    }
    Ok((tensors, meta.metadata().clone().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safetensors_round_trip_keeps_bits_and_scalars() {
        let a = Tensor::from_vec(vec![1.0, -0.0, f32::MIN_POSITIVE, 3.5e-12], &[2, 2]).unwrap();
        let s = Tensor::scalar(7.0);
        let meta = HashMap::from([("k".to_string(), "v".to_string())]);
        let bytes =
            safetensors_bytes(&[("a".into(), a.clone()), ("s".into(), s.clone())], meta).unwrap();
        let (tensors, meta) = read_safetensors(&bytes).unwrap();
        let map: BTreeMap<_, _> = tensors.into_iter().collect();
        let bits = |t: &Tensor| t.to_vec().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&map["a"]), bits(&a));
        assert_eq!(map["s"].shape(), s.shape());
        assert_eq!(meta["k"], "v");
        assert!(read_safetensors(b"junk").is_err());
    }
}
