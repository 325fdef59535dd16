//! The data side of the doctor: a [`DoctorBatch`] (labelled samples or token windows) and
//! the [`DoctorData`] sources (a `DataLoader`, or [`LmData`] over an `LmBatcher`).

use data::{Batch, DataLoader, LmBatch, LmBatcher};

use crate::error::{ModelError, Result};

/// One batch as the doctor sees it: labelled samples or language-model windows.
#[derive(Clone, Debug)]
pub enum DoctorBatch {
    /// Samples with class or value targets (what a `DataLoader` yields).
    Supervised(Batch),
    /// Windows of token ids with their next-token targets (what an `LmBatcher` yields).
    Lm(LmBatch),
}

impl DoctorBatch {
    /// The number of rows (samples or windows).
    pub fn len(&self) -> usize {
        match self {
            DoctorBatch::Supervised(b) => b.inputs.shape().first().copied().unwrap_or(0),
            DoctorBatch::Lm(b) => b.batch_size,
        }
    }

    /// Whether the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of the inputs (`[B, ...]` or `[B, T]`).
    pub fn input_shape(&self) -> Vec<usize> {
        match self {
            DoctorBatch::Supervised(b) => b.inputs.shape().to_vec(),
            DoctorBatch::Lm(b) => vec![b.batch_size, b.block_size],
        }
    }

    /// The number of targets (one per sample, or one per token).
    pub fn targets_len(&self) -> usize {
        match self {
            DoctorBatch::Supervised(b) => b.targets.len(),
            DoctorBatch::Lm(b) => b.targets.len(),
        }
    }

    /// Whether two batches hold the same samples in the same order (dataset indices for labelled
    /// data, token ids for windows).
    pub(super) fn same_samples(&self, other: &DoctorBatch) -> bool {
        match (self, other) {
            (DoctorBatch::Supervised(a), DoctorBatch::Supervised(b)) => a.indices == b.indices,
            (DoctorBatch::Lm(a), DoctorBatch::Lm(b)) => a.inputs == b.inputs,
            _ => false,
        }
    }
}

/// A source of training batches, epoch by epoch.
pub trait DoctorData {
    /// Up to `max_batches` batches of `epoch`, in the order training would see them.
    fn epoch(&self, epoch: usize, max_batches: usize) -> Result<Vec<DoctorBatch>>;
}

impl DoctorData for DataLoader {
    fn epoch(&self, epoch: usize, max_batches: usize) -> Result<Vec<DoctorBatch>> {
        DataLoader::epoch(self, epoch)
            .take(max_batches)
            .map(|b| Ok(DoctorBatch::Supervised(b?)))
            .collect()
    }
}

/// Random language-model windows as epochs: epoch `e` is the `e`-th run of `batches_per_epoch`
/// batches drawn by the batcher (so epochs differ, and the same epoch is the same every time).
#[derive(Clone, Debug)]
pub struct LmData {
    batcher: LmBatcher,
    batches_per_epoch: usize,
}

impl LmData {
    /// Epochs of `batches_per_epoch` random batches from `batcher` (its current generator state
    /// is the start of epoch 0).
    pub fn new(batcher: LmBatcher, batches_per_epoch: usize) -> Result<LmData> {
        if batches_per_epoch == 0 {
            return Err(ModelError::Invalid {
                op: "LmData::new",
                reason: "batches_per_epoch must be at least 1".into(),
            });
        }
        Ok(LmData {
            batcher,
            batches_per_epoch,
        })
    }
}

impl DoctorData for LmData {
    fn epoch(&self, epoch: usize, max_batches: usize) -> Result<Vec<DoctorBatch>> {
        let mut batcher = self.batcher.clone();
        for _ in 0..epoch * self.batches_per_epoch {
            batcher.sample();
        }
        Ok((0..self.batches_per_epoch.min(max_batches))
            .map(|_| DoctorBatch::Lm(batcher.sample()))
            .collect())
    }
}
