//! The `DataLoader`: turns a dataset into an epoch of batches.
//!
//! Each epoch draws a fresh order from `(seed, epoch)` (same seed, same order; a new order every
//! epoch), cuts it into batches (optionally dropping a short last batch), collates the samples of
//! each batch into tensors, and applies the sample transforms. A worker thread prepares the next
//! batches while the caller trains on the current one; a bounded channel (`prefetch` batches)
//! keeps memory flat.
//!
//! ```ignore
//! let loader = DataLoader::new(train, 64)?.shuffle(42).drop_last(true);
//! for epoch in 0..3 {
//!     for batch in loader.epoch(epoch) {
//!         let batch = batch?;
//!         // batch.inputs: [64, 1, 28, 28], batch.classes()?: &[usize] of length 64
//!     }
//! }
//! ```

use std::ops::Range;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use tensor::TensorRng;

use crate::dataset::{Batch, Dataset, Sample};
use crate::error::{DataError, Result};
use crate::transforms::Transform;

/// Stack samples into one batch: inputs become `[n, ...sample shape]`; class targets become a
/// `Vec<usize>`, value targets a `[n, ...]` tensor. Every sample must have the same input shape
/// and the same kind (and shape) of target. `Batch::indices` is left as `0..n`.
pub fn collate(samples: Vec<Sample>) -> Result<Batch> {
    // HINT: check every shape against the first sample's, then append each input's elements to one
    // HINT: Vec.
    // BEGIN SOLUTION
    use crate::dataset::{Target, Targets};
    use tensor::Tensor;
    let first = samples
        .first()
        .ok_or_else(|| DataError::invalid("collate", "cannot collate an empty list of samples"))?;
    let shape = first.input.shape().to_vec();
    let per: usize = shape.iter().product();
    let n = samples.len();
    let mut inputs = Vec::with_capacity(n * per);
    let mut classes = Vec::new();
    let mut values = Vec::new();
    let value_shape = match &first.target {
        Target::Class(_) => None,
        Target::Values(t) => Some(t.shape().to_vec()),
    };
    for (i, s) in samples.iter().enumerate() {
        if s.input.shape() != shape.as_slice() {
            return Err(DataError::invalid(
                "collate",
                format!(
                    "sample {i} has input shape {:?} but sample 0 has {shape:?}",
                    s.input.shape()
                ),
            ));
        }
        match (&s.target, &value_shape) {
            (Target::Class(c), None) => classes.push(*c),
            (Target::Values(t), Some(vs)) if t.shape() == vs.as_slice() => {
                values.extend_from_slice(&t.to_vec())
            }
            _ => {
                return Err(DataError::invalid(
                    "collate",
                    format!("sample {i} has a different kind or shape of target than sample 0"),
                ))
            }
        }
        match s.input.as_slice() {
            Some(x) => inputs.extend_from_slice(x),
            None => inputs.extend(s.input.to_vec()),
        }
    }
    let mut batch_shape = vec![n];
    batch_shape.extend_from_slice(&shape);
    let targets = match value_shape {
        None => Targets::Classes(classes),
        Some(vs) => {
            let mut ts = vec![n];
            ts.extend_from_slice(&vs);
            Targets::Values(Tensor::from_vec(values, &ts)?)
        }
    };
    Ok(Batch {
        inputs: Tensor::from_vec(inputs, &batch_shape)?,
        targets,
        indices: (0..n).collect(),
    })
    // END SOLUTION
}

/// Mix a seed with an epoch (or any counter) into a well-spread 64-bit seed (SplitMix64 finalizer),
/// so that nearby epochs give unrelated generators.
pub fn derive_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The visiting order of `n` samples in `epoch`: a permutation of `0..n` drawn from a generator
/// seeded with `derive_seed(seed, epoch)`. Same `(seed, epoch)`, same order.
pub fn shuffled_indices(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    // HINT: start from 0..n and let a TensorRng seeded for this epoch do a Fisher-Yates shuffle.
    // BEGIN SOLUTION
    let mut order: Vec<usize> = (0..n).collect();
    TensorRng::new(derive_seed(seed, epoch as u64)).shuffle(&mut order);
    order
    // END SOLUTION
}

/// Cut `0..n` positions into consecutive batches of `batch_size`. The last batch is shorter when
/// `batch_size` does not divide `n`; with `drop_last` it is left out.
pub fn batch_ranges(n: usize, batch_size: usize, drop_last: bool) -> Vec<Range<usize>> {
    // HINT: step through 0..n by batch_size; the last range ends at n.
    // BEGIN SOLUTION
    let size = batch_size.max(1);
    (0..n)
        .step_by(size)
        .map(|start| start..(start + size).min(n))
        .filter(|r| !drop_last || r.len() == size)
        .collect()
    // END SOLUTION
}

/// Batches of a dataset, epoch after epoch. Build with [`DataLoader::new`] and the builder methods.
#[derive(Clone)]
pub struct DataLoader {
    dataset: Arc<dyn Dataset>,
    batch_size: usize,
    seed: Option<u64>,
    drop_last: bool,
    transforms: Vec<Arc<dyn Transform>>,
    prefetch: usize,
}

impl DataLoader {
    /// A loader of `dataset` in batches of `batch_size`, in dataset order (no shuffle), keeping a
    /// short last batch, preparing up to 2 batches ahead in a worker thread.
    pub fn new(dataset: impl Dataset + 'static, batch_size: usize) -> Result<Self> {
        DataLoader::from_arc(Arc::new(dataset), batch_size)
    }

    /// Like [`new`](DataLoader::new) for a dataset that is shared elsewhere too.
    pub fn from_arc(dataset: Arc<dyn Dataset>, batch_size: usize) -> Result<Self> {
        if batch_size == 0 {
            return Err(DataError::invalid(
                "DataLoader::new",
                "batch size must be at least 1",
            ));
        }
        Ok(DataLoader {
            dataset,
            batch_size,
            seed: None,
            drop_last: false,
            transforms: Vec::new(),
            prefetch: 2,
        })
    }

    /// Shuffle every epoch with an order drawn from `(seed, epoch)`.
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Leave out the last batch when it would be shorter than the batch size.
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// Apply `transform` to every sample (after the ones added before), with a generator derived
    /// from the shuffle seed (or [`tensor::DEFAULT_SEED`] without shuffle), the epoch and the batch
    /// number: augmentation is reproducible too, and differs from epoch to epoch.
    pub fn transform(mut self, transform: impl Transform + 'static) -> Self {
        self.transforms.push(Arc::new(transform));
        self
    }

    /// How many batches the worker thread may prepare ahead (0: build each batch in the calling
    /// thread when it is asked for).
    pub fn prefetch(mut self, batches: usize) -> Self {
        self.prefetch = batches;
        self
    }

    /// The dataset.
    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.dataset
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The number of batches in one epoch.
    pub fn len(&self) -> usize {
        let n = self.dataset.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// Whether an epoch has no batches.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The order in which `epoch` visits the samples (dataset order when not shuffling).
    pub fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        let n = self.dataset.len();
        match self.seed {
            Some(seed) => shuffled_indices(n, seed, epoch),
            None => (0..n).collect(),
        }
    }

    /// The batches of `epoch`, each a `Result<Batch>`.
    pub fn epoch(&self, epoch: usize) -> EpochIter {
        let order = self.epoch_order(epoch);
        let ranges = batch_ranges(order.len(), self.batch_size, self.drop_last);
        let plan = Arc::new(EpochPlan {
            dataset: self.dataset.clone(),
            order,
            ranges,
            transforms: self.transforms.clone(),
            seed: derive_seed(self.seed.unwrap_or(tensor::DEFAULT_SEED), epoch as u64),
        });
        let total = plan.ranges.len();
        if self.prefetch == 0 || total == 0 {
            return EpochIter {
                inner: Inner::Inline { plan, next: 0 },
                produced: 0,
                total,
            };
        }
        let (tx, rx) = mpsc::sync_channel(self.prefetch);
        let worker_plan = plan.clone();
        let handle = std::thread::spawn(move || {
            for b in 0..worker_plan.ranges.len() {
                let batch = worker_plan.make(b);
                let failed = batch.is_err();
                // A send error means the consumer dropped the iterator: stop quietly.
                if tx.send(batch).is_err() || failed {
                    return;
                }
            }
        });
        EpochIter {
            inner: Inner::Worker {
                rx: Some(rx),
                handle: Some(handle),
            },
            produced: 0,
            total,
        }
    }
}

/// Everything needed to build any batch of one epoch (shared with the worker thread).
struct EpochPlan {
    dataset: Arc<dyn Dataset>,
    order: Vec<usize>,
    ranges: Vec<Range<usize>>,
    transforms: Vec<Arc<dyn Transform>>,
    seed: u64,
}

impl EpochPlan {
    fn make(&self, b: usize) -> Result<Batch> {
        let indices = &self.order[self.ranges[b].clone()];
        if self.transforms.is_empty() {
            return self.dataset.get_batch(indices);
        }
        let mut rng = TensorRng::new(derive_seed(self.seed, b as u64));
        let mut samples = Vec::with_capacity(indices.len());
        for &i in indices {
            let mut s = self.dataset.get(i)?;
            for t in &self.transforms {
                s.input = t.apply(&s.input, &mut rng)?;
            }
            samples.push(s);
        }
        let mut batch = collate(samples)?;
        batch.indices = indices.to_vec();
        Ok(batch)
    }
}

enum Inner {
    Inline {
        plan: Arc<EpochPlan>,
        next: usize,
    },
    Worker {
        rx: Option<Receiver<Result<Batch>>>,
        handle: Option<JoinHandle<()>>,
    },
}

/// The batches of one epoch. Dropping it early stops the worker thread.
pub struct EpochIter {
    inner: Inner,
    produced: usize,
    total: usize,
}

impl Iterator for EpochIter {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if self.produced >= self.total {
            return None;
        }
        let item = match &mut self.inner {
            Inner::Inline { plan, next } => {
                let b = plan.make(*next);
                *next += 1;
                b
            }
            Inner::Worker { rx, handle } => {
                match rx.as_ref().map(|r| r.recv()) {
                    Some(Ok(batch)) => batch,
                    _ => {
                        // The worker hung up before sending every batch: it panicked.
                        let why = match handle.take().map(|h| h.join()) {
                            Some(Err(panic)) => panic_message(&*panic),
                            _ => "the worker thread ended early".to_string(),
                        };
                        Err(DataError::Worker(why))
                    }
                }
            }
        };
        // After an error the epoch is over.
        self.produced = if item.is_err() {
            self.total
        } else {
            self.produced + 1
        };
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.total - self.produced;
        (left, Some(left))
    }
}

impl ExactSizeIterator for EpochIter {}

impl Drop for EpochIter {
    fn drop(&mut self) {
        if let Inner::Worker { rx, handle } = &mut self.inner {
            // Hang up first so a worker blocked on a full channel wakes up and exits.
            drop(rx.take());
            if let Some(h) = handle.take() {
                let _ = h.join();
            }
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}
