//! The data side of the doctor: the batches of a task's first two epochs, as training would
//! see them.

use crate::error::{ModelError, Result};
use crate::trainer::{TaskBatch, TrainTask};

/// The first `max_batches` batches of epochs 0 and 1 of `task` (a fresh copy: this draws from
/// it). A task with epochs ([`TrainTask::steps_per_epoch`]) has the rest of epoch 0 drawn and
/// skipped so that epoch 1 starts where training would start it; a task without epochs (random
/// language-model windows) counts `max_batches` successive batches as an epoch.
///
/// Each epoch is its own result: a source that fails in epoch 1 still shows epoch 0.
pub fn epoch_batches(
    task: &mut dyn TrainTask,
    max_batches: usize,
) -> (Result<Vec<TaskBatch>>, Result<Vec<TaskBatch>>) {
    let per_epoch = task.steps_per_epoch().unwrap_or(max_batches);
    let epoch0 = one_epoch(task, per_epoch, max_batches);
    let epoch1 = match &epoch0 {
        Ok(_) => one_epoch(task, per_epoch, max_batches),
        Err(e) => Err(ModelError::Invalid {
            op: "doctor",
            reason: format!("epoch 0 already failed: {e}"),
        }),
    };
    (epoch0, epoch1)
}

fn one_epoch(
    task: &mut dyn TrainTask,
    per_epoch: usize,
    max_batches: usize,
) -> Result<Vec<TaskBatch>> {
    let keep = per_epoch.min(max_batches);
    let mut batches = Vec::with_capacity(keep);
    for i in 0..per_epoch {
        task.next_batch()?;
        if i < keep {
            batches.push(
                task.current_batch().ok_or(ModelError::Invalid {
                    op: "doctor",
                    reason: "the task shows no batch after next_batch: its current_batch returns \
                         None, so the data cannot be checked"
                        .into(),
                })?,
            );
        }
    }
    Ok(batches)
}
