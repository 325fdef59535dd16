//! What the trainer (and the training doctor) needs from a model + data + loss: the
//! [`TrainTask`] trait, the [`TaskBatch`] it holds, the [`EvalResult`] of an evaluation and the
//! accuracy count classifiers share.
//!
//! One abstraction serves both: the [`Trainer`](super::Trainer) drives a task step by step, and
//! [`crate::doctor::diagnose`] runs its checks on fresh copies of the same task, so a model that
//! trains can be diagnosed with no adapter.

use std::collections::BTreeMap;

use autograd::Variable;
use data::{Batch, LmBatch};
use nn::Module;
use serde_json::Value;
use tensor::Tensor;

use crate::error::{ModelError, Result};

/// The result of one evaluation pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalResult {
    /// The mean loss over the evaluation data.
    pub loss: f64,
    /// The task's metric (accuracy, perplexity, ...), if it has one.
    pub metric: Option<f64>,
}

/// One training batch as a task holds it: labelled samples or token windows.
#[derive(Clone, Debug)]
pub enum TaskBatch {
    /// Samples with class or value targets (what a `DataLoader` yields).
    Supervised(Batch),
    /// Windows of token ids with their next-token targets (what an `LmBatcher` yields).
    Lm(LmBatch),
}

impl TaskBatch {
    /// The number of rows (samples or windows).
    pub fn len(&self) -> usize {
        match self {
            TaskBatch::Supervised(b) => b.inputs.shape().first().copied().unwrap_or(0),
            TaskBatch::Lm(b) => b.batch_size,
        }
    }

    /// Whether the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of the inputs (`[B, ...]` or `[B, T]`).
    pub fn input_shape(&self) -> Vec<usize> {
        match self {
            TaskBatch::Supervised(b) => b.inputs.shape().to_vec(),
            TaskBatch::Lm(b) => vec![b.batch_size, b.block_size],
        }
    }

    /// The number of targets (one per sample, or one per token).
    pub fn targets_len(&self) -> usize {
        match self {
            TaskBatch::Supervised(b) => b.targets.len(),
            TaskBatch::Lm(b) => b.targets.len(),
        }
    }

    /// Whether two batches hold the same samples in the same order (dataset indices for labelled
    /// data, token ids for windows).
    pub fn same_samples(&self, other: &TaskBatch) -> bool {
        match (self, other) {
            (TaskBatch::Supervised(a), TaskBatch::Supervised(b)) => a.indices == b.indices,
            (TaskBatch::Lm(a), TaskBatch::Lm(b)) => a.inputs == b.inputs,
            _ => false,
        }
    }
}

/// What the trainer needs from a model + data + loss. The trainer calls, per step,
/// [`next_batch`](TrainTask::next_batch) then [`loss`](TrainTask::loss) (and may call `loss`
/// again on the same batch to locate a NaN in anomaly mode).
///
/// The training doctor uses the same methods: [`named_parameters`](TrainTask::named_parameters)
/// to build an optimizer and name parameters without a gradient,
/// [`current_batch`](TrainTask::current_batch) to check the data, and `next_batch` + `loss` to
/// train a fresh copy (`loss` again and again on one batch for the single-batch overfit).
pub trait TrainTask {
    /// The throughput unit: `"samples"` or `"tokens"`.
    fn unit(&self) -> &'static str;

    /// The name of [`EvalResult::metric`] (`"accuracy"`, `"perplexity"`), if any.
    fn metric_name(&self) -> Option<&'static str> {
        None
    }

    /// Batches in one epoch, when the data has epochs (`None`: only step budgets work).
    fn steps_per_epoch(&self) -> Option<usize> {
        None
    }

    /// Advance to the next training batch; returns how many samples or tokens it holds.
    fn next_batch(&mut self) -> Result<usize>;

    /// The batch [`next_batch`](TrainTask::next_batch) drew last (a copy: tensors share their
    /// storage), `None` before the first one.
    fn current_batch(&self) -> Option<TaskBatch>;

    /// The loss of the current batch, in training mode, attached to the graph.
    fn loss(&mut self) -> Result<Variable>;

    /// The model's trainable parameters with dotted names (as `Module::named_parameters`).
    fn named_parameters(&self) -> Vec<(String, Variable)>;

    /// Evaluate on the validation data (eval mode, no graph); `None` without validation data.
    fn evaluate(&mut self) -> Result<Option<EvalResult>>;

    /// Every parameter and buffer of the model by name (what a checkpoint stores).
    fn state_dict(&self) -> BTreeMap<String, Tensor>;

    /// Load a state dict saved by [`TrainTask::state_dict`].
    fn load_state_dict(&mut self, state: &BTreeMap<String, Tensor>) -> Result<()>;

    /// Where the data stream is (and any random state outside the model), as JSON.
    fn position(&self) -> Value;

    /// Go back to a position returned by [`TrainTask::position`].
    fn set_position(&mut self, position: &Value) -> Result<()>;
}

/// How many rows of `logits` `(N, C)` have their largest entry at the target class (the first
/// maximum wins ties).
pub fn count_correct(logits: &Tensor, targets: &[usize]) -> usize {
    let c = logits.shape().last().copied().unwrap_or(0);
    if c == 0 {
        return 0;
    }
    let owned;
    let values = match logits.as_slice() {
        Some(v) => v,
        None => {
            owned = logits.to_vec();
            &owned
        }
    };
    values
        .chunks_exact(c)
        .zip(targets)
        .filter(|(row, &t)| {
            let mut best = 0;
            for (j, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = j;
                }
            }
            best == t
        })
        .count()
}

pub(super) fn usize_field(v: &Value, key: &str, what: &'static str) -> Result<usize> {
    v.get(key)
        .and_then(Value::as_u64)
        .map(|n| n as usize)
        .ok_or_else(|| ModelError::Invalid {
            op: what,
            reason: format!("position {v} has no integer '{key}'"),
        })
}

pub(super) fn load_module_state(
    model: &dyn Module,
    state: &BTreeMap<String, Tensor>,
) -> Result<()> {
    Ok(model.load_state_dict(state)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accuracy counting takes the first maximum of each row as the prediction.
    #[test]
    fn count_correct_takes_the_first_maximum() {
        let logits = Tensor::from_vec(vec![0.1, 0.9, 0.0, 2.0, 2.0, 1.0], &[2, 3]).unwrap();
        assert_eq!(count_correct(&logits, &[1, 0]), 2);
        assert_eq!(count_correct(&logits, &[0, 1]), 0);
    }
}
