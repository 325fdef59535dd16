//! What the trainer needs from a model + data + loss: the [`TrainTask`] trait, the
//! [`EvalResult`] of an evaluation and the accuracy count classifiers share.

use std::collections::BTreeMap;

use autograd::Variable;
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

/// What the trainer needs from a model + data + loss. The trainer calls, per step,
/// [`next_batch`](TrainTask::next_batch) then [`loss`](TrainTask::loss) (and may call `loss`
/// again on the same batch to locate a NaN in anomaly mode).
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

    /// The loss of the current batch, in training mode, attached to the graph.
    fn loss(&mut self) -> Result<Variable>;

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

    #[test]
    fn count_correct_takes_the_first_maximum() {
        let logits = Tensor::from_vec(vec![0.1, 0.9, 0.0, 2.0, 2.0, 1.0], &[2, 3]).unwrap();
        assert_eq!(count_correct(&logits, &[1, 0]), 2);
        assert_eq!(count_correct(&logits, &[0, 1]), 0);
    }
}
