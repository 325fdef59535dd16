//! Datasets: indexable collections of samples.
//!
//! A [`Dataset`] answers two questions, how many samples (`len`) and what is sample `i` (`get`).
//! It knows nothing of batches, order or epochs: that is the [`DataLoader`](crate::DataLoader)'s
//! job. [`TensorDataset`] holds all samples in one contiguous tensor (the common case for MNIST,
//! CIFAR-10 and the digits), [`Subset`] views some of another dataset's samples, and
//! [`random_split`] cuts a dataset into seeded, disjoint subsets.

use std::sync::Arc;

use tensor::{Tensor, TensorRng};

use crate::error::{DataError, Result};

/// The target of one sample.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// A class index (classification), fed to cross-entropy.
    Class(usize),
    /// A tensor of values (regression).
    Values(Tensor),
}

/// The targets of a batch (or of a whole dataset).
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// One class index per sample: what a cross-entropy kernel taking `&[usize]` wants.
    Classes(Vec<usize>),
    /// One row of values per sample: a tensor of shape `[n, ...]`.
    Values(Tensor),
}

impl Targets {
    /// The number of samples these targets describe.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes(c) => c.len(),
            Targets::Values(t) => t.shape().first().copied().unwrap_or(0),
        }
    }

    /// Whether there are no targets.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The class indices, or an error if these are value targets.
    pub fn classes(&self) -> Result<&[usize]> {
        match self {
            Targets::Classes(c) => Ok(c),
            Targets::Values(t) => Err(DataError::invalid(
                "Targets::classes",
                format!(
                    "targets are values of shape {:?}, not class indices",
                    t.shape()
                ),
            )),
        }
    }

    /// The value tensor, or an error if these are class indices.
    pub fn values(&self) -> Result<&Tensor> {
        match self {
            Targets::Values(t) => Ok(t),
            Targets::Classes(c) => Err(DataError::invalid(
                "Targets::values",
                format!("targets are {} class indices, not values", c.len()),
            )),
        }
    }
}

/// One sample: an input tensor and its target.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The input, e.g. an image of shape `[1, 28, 28]`.
    pub input: Tensor,
    /// The target.
    pub target: Target,
}

/// A batch: inputs stacked along a new first axis, and their targets.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Inputs of shape `[batch, ...sample shape]`.
    pub inputs: Tensor,
    /// Targets of the same batch size.
    pub targets: Targets,
    /// The dataset index of each sample, in batch order (handy for debugging and tests).
    pub indices: Vec<usize>,
}

impl Batch {
    /// The number of samples in the batch.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch holds no samples.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The class-index targets (errors for value targets).
    pub fn classes(&self) -> Result<&[usize]> {
        self.targets.classes()
    }

    /// The value targets (errors for class targets).
    pub fn values(&self) -> Result<&Tensor> {
        self.targets.values()
    }
}

/// An indexable collection of samples. `Send + Sync` so a loader's worker thread can read it.
pub trait Dataset: Send + Sync {
    /// The number of samples.
    fn len(&self) -> usize;

    /// Sample `index` (`0..len()`); out of range is an error, not a panic.
    fn get(&self, index: usize) -> Result<Sample>;

    /// Whether the dataset has no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples at `indices`, collated into one batch. The default gets each sample and calls
    /// [`collate`](crate::collate); datasets stored in one tensor override it with a direct copy.
    fn get_batch(&self, indices: &[usize]) -> Result<Batch> {
        let samples = indices
            .iter()
            .map(|&i| self.get(i))
            .collect::<Result<Vec<_>>>()?;
        let mut batch = crate::loader::collate(samples)?;
        batch.indices = indices.to_vec();
        Ok(batch)
    }
}

impl<D: Dataset + ?Sized> Dataset for Arc<D> {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn get(&self, index: usize) -> Result<Sample> {
        (**self).get(index)
    }
    fn get_batch(&self, indices: &[usize]) -> Result<Batch> {
        (**self).get_batch(indices)
    }
}

fn check_index(op: &'static str, index: usize, len: usize) -> Result<()> {
    if index >= len {
        return Err(DataError::invalid(
            op,
            format!("index {index} is out of range for a dataset of {len} samples"),
        ));
    }
    Ok(())
}

/// All samples in one contiguous input tensor `[n, ...]` plus their targets.
///
/// The sample shape is metadata: the same storage can be served as `[1, 28, 28]` images for a
/// CNN or `[784]` vectors for an MLP ([`with_sample_shape`](TensorDataset::with_sample_shape)),
/// without copying.
#[derive(Clone, Debug)]
pub struct TensorDataset {
    inputs: Tensor,
    sample_shape: Vec<usize>,
    targets: Targets,
}

impl TensorDataset {
    /// A dataset whose sample `i` is `inputs[i]` with target `targets[i]`.
    /// `inputs` needs at least one axis, and `targets` as many entries as `inputs.shape()[0]`.
    pub fn new(inputs: Tensor, targets: Targets) -> Result<Self> {
        if inputs.ndim() == 0 {
            return Err(DataError::invalid(
                "TensorDataset::new",
                "inputs must have a first (sample) axis, got a scalar",
            ));
        }
        let n = inputs.shape()[0];
        if let Targets::Values(t) = &targets {
            if t.ndim() == 0 {
                return Err(DataError::invalid(
                    "TensorDataset::new",
                    "value targets must have a first (sample) axis, got a scalar",
                ));
            }
        }
        if targets.len() != n {
            return Err(DataError::invalid(
                "TensorDataset::new",
                format!(
                    "inputs of shape {:?} hold {n} samples but there are {} targets",
                    inputs.shape(),
                    targets.len()
                ),
            ));
        }
        let targets = match targets {
            Targets::Values(t) => Targets::Values(t.contiguous()),
            c => c,
        };
        Ok(TensorDataset {
            sample_shape: inputs.shape()[1..].to_vec(),
            inputs: inputs.contiguous(),
            targets,
        })
    }

    /// Serve each sample with another shape of the same number of elements
    /// (e.g. `[1, 28, 28]` images as `[784]` vectors). No data is copied.
    pub fn with_sample_shape(mut self, shape: &[usize]) -> Result<Self> {
        let have: usize = self.sample_shape.iter().product();
        let want: usize = shape.iter().product();
        if have != want {
            return Err(DataError::invalid(
                "TensorDataset::with_sample_shape",
                format!(
                    "samples of shape {:?} ({have} elements) cannot be viewed as {shape:?} ({want} elements)",
                    self.sample_shape
                ),
            ));
        }
        self.sample_shape = shape.to_vec();
        Ok(self)
    }

    /// The shape of one input sample.
    pub fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    /// All inputs, shape `[n, ...]` as given to [`new`](TensorDataset::new).
    pub fn inputs(&self) -> &Tensor {
        &self.inputs
    }

    /// All targets.
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    fn value_len(t: &Tensor) -> usize {
        t.shape()[1..].iter().product()
    }
}

impl Dataset for TensorDataset {
    fn len(&self) -> usize {
        self.inputs.shape()[0]
    }

    fn get(&self, index: usize) -> Result<Sample> {
        check_index("TensorDataset::get", index, self.len())?;
        let k = self.sample_len();
        let all = self.inputs.as_slice().expect("stored contiguous");
        let input = Tensor::from_vec(all[index * k..(index + 1) * k].to_vec(), &self.sample_shape)?;
        let target = match &self.targets {
            Targets::Classes(c) => Target::Class(c[index]),
            Targets::Values(t) => {
                let m = Self::value_len(t);
                let v = t.as_slice().expect("stored contiguous");
                Target::Values(Tensor::from_vec(
                    v[index * m..(index + 1) * m].to_vec(),
                    &t.shape()[1..],
                )?)
            }
        };
        Ok(Sample { input, target })
    }

    /// Gather the rows straight from the contiguous storage (one copy per batch).
    fn get_batch(&self, indices: &[usize]) -> Result<Batch> {
        let n = self.len();
        for &i in indices {
            check_index("TensorDataset::get_batch", i, n)?;
        }
        let k = self.sample_len();
        let all = self.inputs.as_slice().expect("stored contiguous");
        let mut data = Vec::with_capacity(indices.len() * k);
        for &i in indices {
            data.extend_from_slice(&all[i * k..(i + 1) * k]);
        }
        let mut shape = vec![indices.len()];
        shape.extend_from_slice(&self.sample_shape);
        let inputs = Tensor::from_vec(data, &shape)?;
        let targets = match &self.targets {
            Targets::Classes(c) => Targets::Classes(indices.iter().map(|&i| c[i]).collect()),
            Targets::Values(t) => {
                let m = Self::value_len(t);
                let v = t.as_slice().expect("stored contiguous");
                let mut out = Vec::with_capacity(indices.len() * m);
                for &i in indices {
                    out.extend_from_slice(&v[i * m..(i + 1) * m]);
                }
                let mut shape = vec![indices.len()];
                shape.extend_from_slice(&t.shape()[1..]);
                Targets::Values(Tensor::from_vec(out, &shape)?)
            }
        };
        Ok(Batch {
            inputs,
            targets,
            indices: indices.to_vec(),
        })
    }
}

/// Some samples of another dataset, in a given order. Batch indices refer to the subset.
#[derive(Clone)]
pub struct Subset {
    dataset: Arc<dyn Dataset>,
    indices: Vec<usize>,
}

impl Subset {
    /// The samples `indices` of `dataset` (each must be in range).
    pub fn new(dataset: Arc<dyn Dataset>, indices: Vec<usize>) -> Result<Self> {
        let n = dataset.len();
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            return Err(DataError::invalid(
                "Subset::new",
                format!("index {bad} is out of range for a dataset of {n} samples"),
            ));
        }
        Ok(Subset { dataset, indices })
    }

    /// The indices into the parent dataset.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }
}

impl Dataset for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }

    fn get(&self, index: usize) -> Result<Sample> {
        check_index("Subset::get", index, self.len())?;
        self.dataset.get(self.indices[index])
    }

    fn get_batch(&self, indices: &[usize]) -> Result<Batch> {
        let n = self.len();
        for &i in indices {
            check_index("Subset::get_batch", i, n)?;
        }
        let parent: Vec<usize> = indices.iter().map(|&i| self.indices[i]).collect();
        let mut batch = self.dataset.get_batch(&parent)?;
        batch.indices = indices.to_vec();
        Ok(batch)
    }
}

/// Cut `dataset` into disjoint subsets of the given `lengths` (which must add up to its length),
/// after a shuffle seeded with `seed`: same seed, same split.
pub fn random_split(
    dataset: Arc<dyn Dataset>,
    lengths: &[usize],
    seed: u64,
) -> Result<Vec<Subset>> {
    let n = dataset.len();
    let total: usize = lengths.iter().sum();
    if total != n {
        return Err(DataError::invalid(
            "random_split",
            format!("lengths {lengths:?} add up to {total}, but the dataset has {n} samples"),
        ));
    }
    let mut order: Vec<usize> = (0..n).collect();
    TensorRng::new(seed).shuffle(&mut order);
    let mut start = 0;
    lengths
        .iter()
        .map(|&len| {
            let part = order[start..start + len].to_vec();
            start += len;
            Subset::new(dataset.clone(), part)
        })
        .collect()
}

/// Lengths for [`random_split`] from fractions (e.g. `[0.9, 0.1]`): each part gets
/// `floor(fraction * n)` and the remainder goes to the first part.
pub fn split_lengths(n: usize, fractions: &[f64]) -> Result<Vec<usize>> {
    let sum: f64 = fractions.iter().sum();
    if fractions.is_empty()
        || fractions.iter().any(|f| !(0.0..=1.0).contains(f))
        || (sum - 1.0).abs() > 1e-6
    {
        return Err(DataError::invalid(
            "split_lengths",
            format!("fractions {fractions:?} must each be in [0, 1] and add up to 1"),
        ));
    }
    // Every part but the first gets floor(fraction * n); the first takes what is left.
    let mut lengths: Vec<usize> = fractions
        .iter()
        .map(|f| (f * n as f64).floor() as usize)
        .collect();
    let others: usize = lengths[1..].iter().sum();
    lengths[0] = n.saturating_sub(others);
    Ok(lengths)
}
