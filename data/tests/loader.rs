//! Grader for datasets and the `DataLoader`: collation, coverage, shuffling, drop_last, prefetch.

use std::sync::Arc;

use data::loader::{batch_ranges, shuffled_indices};
use data::{
    collate, random_split, split_lengths, Batch, DataError, DataLoader, Dataset,
    RandomHorizontalFlip, Sample, Target, Targets, TensorDataset,
};
use tensor::Tensor;

/// `n` samples of shape `[2, 3]` whose elements encode the sample index: `100 * i + k`.
fn numbered(n: usize) -> TensorDataset {
    let values: Vec<f32> = (0..n)
        .flat_map(|i| (0..6).map(move |k| (100 * i + k) as f32))
        .collect();
    let inputs = Tensor::from_vec(values, &[n, 2, 3]).unwrap();
    TensorDataset::new(inputs, Targets::Classes((0..n).map(|i| i % 7).collect())).unwrap()
}

fn check_batch(batch: &Batch) {
    // Each row of the batch is the sample its index names, and so is the target.
    let v = batch.inputs.to_vec();
    for (r, &i) in batch.indices.iter().enumerate() {
        for k in 0..6 {
            assert_eq!(v[r * 6 + k], (100 * i + k) as f32);
        }
        assert_eq!(batch.classes().unwrap()[r], i % 7);
    }
}

/// collate stacks samples into one batch tensor (N, ...) and keeps the class targets in order.
#[test]
fn collate_stacks_inputs_and_targets() {
    let s = |v: [f32; 2], c: usize| Sample {
        input: Tensor::from_vec(v.to_vec(), &[2]).unwrap(),
        target: Target::Class(c),
    };
    let b = collate(vec![s([1.0, 2.0], 3), s([3.0, 4.0], 0), s([5.0, 6.0], 9)]).unwrap();
    assert_eq!(b.inputs.shape(), &[3, 2]);
    assert_eq!(b.inputs.to_vec(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(b.classes().unwrap(), &[3, 0, 9]);
    assert_eq!(b.indices, vec![0, 1, 2]);
    assert!(b.values().is_err());

    let r = |v: f32| Sample {
        input: Tensor::from_vec(vec![v], &[1]).unwrap(),
        target: Target::Values(Tensor::from_vec(vec![v * 2.0, v * 3.0], &[2]).unwrap()),
    };
    let b = collate(vec![r(1.0), r(2.0)]).unwrap();
    assert_eq!(b.values().unwrap().shape(), &[2, 2]);
    assert_eq!(b.values().unwrap().to_vec(), vec![2.0, 3.0, 4.0, 6.0]);
}

/// Samples with different input shapes or target kinds are refused by collate with both shapes
/// named.
#[test]
fn collate_rejects_mixed_samples() {
    let a = Sample {
        input: Tensor::zeros(&[2]),
        target: Target::Class(0),
    };
    let b = Sample {
        input: Tensor::zeros(&[3]),
        target: Target::Class(0),
    };
    let msg = collate(vec![a.clone(), b]).unwrap_err().to_string();
    assert!(
        msg.contains("collate") && msg.contains("[3]") && msg.contains("[2]"),
        "{msg}"
    );
    let c = Sample {
        input: Tensor::zeros(&[2]),
        target: Target::Values(Tensor::zeros(&[1])),
    };
    assert!(collate(vec![a, c]).is_err());
    assert!(collate(vec![]).is_err());
}

/// A TensorDataset's fast get_batch equals collating single gets (repeated indices too), and an
/// index out of range is an error.
#[test]
fn tensor_dataset_get_batch_matches_get_and_collate() {
    let ds = numbered(10);
    assert_eq!(ds.len(), 10);
    let idx = [7, 2, 2, 9];
    let fast = ds.get_batch(&idx).unwrap();
    let slow = collate(idx.iter().map(|&i| ds.get(i).unwrap()).collect()).unwrap();
    assert_eq!(fast.inputs, slow.inputs);
    assert_eq!(fast.targets, slow.targets);
    assert_eq!(fast.indices, idx.to_vec());
    check_batch(&fast);
    assert!(ds.get(10).is_err());
    assert!(ds.get_batch(&[0, 10]).is_err());
    // Viewing samples as flat vectors copies nothing and changes only the shape.
    let flat = ds.clone().with_sample_shape(&[6]).unwrap();
    assert_eq!(flat.get(3).unwrap().input.shape(), &[6]);
    assert!(ds.with_sample_shape(&[5]).is_err());
    // Counts must agree.
    assert!(TensorDataset::new(Tensor::zeros(&[3, 2]), Targets::Classes(vec![0, 1])).is_err());
}

/// Regression (value) targets are batched as a tensor with the samples' rows in index order.
#[test]
fn value_targets_are_batched_as_tensors() {
    let x = Tensor::from_vec((0..8).map(|v| v as f32).collect(), &[4, 2]).unwrap();
    let y = Tensor::from_vec(vec![10.0, 11.0, 12.0, 13.0], &[4, 1]).unwrap();
    let ds = TensorDataset::new(x, Targets::Values(y)).unwrap();
    let b = ds.get_batch(&[3, 0]).unwrap();
    assert_eq!(b.values().unwrap().to_vec(), vec![13.0, 10.0]);
    assert_eq!(b.values().unwrap().shape(), &[2, 1]);
    assert!(b.classes().is_err());
}

/// Batch ranges cover 0..n with a short last batch (or drop it), and shuffled indices are a seeded
/// permutation that changes per epoch.
#[test]
fn batch_ranges_and_shuffled_indices() {
    assert_eq!(batch_ranges(10, 4, false), vec![0..4, 4..8, 8..10]);
    assert_eq!(batch_ranges(10, 4, true), vec![0..4, 4..8]);
    assert_eq!(batch_ranges(8, 4, true), vec![0..4, 4..8]);
    assert_eq!(batch_ranges(0, 4, false), vec![]);
    assert_eq!(batch_ranges(3, 5, true), vec![]);
    let a = shuffled_indices(50, 7, 0);
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    assert_eq!(a, shuffled_indices(50, 7, 0));
    assert_ne!(a, shuffled_indices(50, 7, 1));
    assert_ne!(a, shuffled_indices(50, 8, 0));
    assert_ne!(a, (0..50).collect::<Vec<_>>());
}

fn epoch_indices(loader: &DataLoader, epoch: usize) -> Vec<Vec<usize>> {
    loader
        .epoch(epoch)
        .map(|b| {
            let b = b.unwrap();
            check_batch(&b);
            b.indices
        })
        .collect()
}

/// A shuffled loader yields every sample exactly once per epoch, in full batches plus one short
/// last batch.
#[test]
fn every_sample_once_per_epoch() {
    let loader = DataLoader::new(numbered(103), 10).unwrap().shuffle(42);
    assert_eq!(loader.len(), 11);
    for epoch in 0..3 {
        let batches = epoch_indices(&loader, epoch);
        assert_eq!(batches.len(), 11);
        assert!(batches[..10].iter().all(|b| b.len() == 10));
        assert_eq!(batches[10].len(), 3);
        let mut all: Vec<usize> = batches.concat();
        all.sort();
        assert_eq!(all, (0..103).collect::<Vec<_>>());
    }
}

/// The order changes every epoch, the same seed gives the same orders, and a different seed
/// different ones.
#[test]
fn reshuffles_every_epoch_and_same_seed_same_order() {
    let a = DataLoader::new(numbered(64), 8).unwrap().shuffle(5);
    let b = DataLoader::new(numbered(64), 8).unwrap().shuffle(5);
    let c = DataLoader::new(numbered(64), 8).unwrap().shuffle(6);
    let e0 = epoch_indices(&a, 0);
    let e1 = epoch_indices(&a, 1);
    assert_ne!(e0, e1, "a new order every epoch");
    assert_eq!(e0, epoch_indices(&b, 0), "same seed, same order");
    assert_eq!(e1, epoch_indices(&b, 1));
    assert_eq!(
        e0,
        epoch_indices(&a, 0),
        "replaying an epoch gives its order again"
    );
    assert_ne!(e0, epoch_indices(&c, 0), "another seed, another order");
    assert_eq!(e0.concat(), a.epoch_order(0));
}

/// Without shuffling, batches follow the dataset's order in every epoch.
#[test]
fn no_shuffle_keeps_dataset_order() {
    let loader = DataLoader::new(numbered(7), 3).unwrap();
    assert_eq!(
        epoch_indices(&loader, 4),
        vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]
    );
}

/// drop_last removes only the final short batch; with an exact multiple nothing is dropped.
#[test]
fn drop_last_drops_only_a_short_batch() {
    let loader = DataLoader::new(numbered(103), 10)
        .unwrap()
        .shuffle(1)
        .drop_last(true);
    assert_eq!(loader.len(), 10);
    let batches = epoch_indices(&loader, 0);
    assert_eq!(batches.len(), 10);
    assert!(batches.iter().all(|b| b.len() == 10));
    let mut seen = batches.concat();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 100);
    // With an exact multiple nothing is dropped.
    let exact = DataLoader::new(numbered(30), 10).unwrap().drop_last(true);
    assert_eq!(
        epoch_indices(&exact, 0).concat(),
        (0..30).collect::<Vec<_>>()
    );
}

/// Loading in a background thread (prefetch) gives exactly the batches of loading inline, epoch
/// after epoch.
#[test]
fn prefetch_and_inline_give_identical_batches() {
    let base = DataLoader::new(numbered(50), 7).unwrap().shuffle(3);
    let inline = base.clone().prefetch(0);
    let deep = base.clone().prefetch(8);
    for epoch in 0..2 {
        let a: Vec<Batch> = base.epoch(epoch).map(|b| b.unwrap()).collect();
        let b: Vec<Batch> = inline.epoch(epoch).map(|b| b.unwrap()).collect();
        let c: Vec<Batch> = deep.epoch(epoch).map(|b| b.unwrap()).collect();
        assert_eq!(a.len(), 8);
        for ((x, y), z) in a.iter().zip(&b).zip(&c) {
            assert_eq!(x.inputs, y.inputs);
            assert_eq!(x.inputs, z.inputs);
            assert_eq!(x.targets, z.targets);
        }
    }
}

/// Dropping an epoch iterator after one batch stops its prefetch worker instead of hanging on a
/// full channel.
#[test]
fn dropping_an_epoch_early_stops_the_worker() {
    let loader = DataLoader::new(numbered(10_000), 4).unwrap().prefetch(1);
    for epoch in 0..20 {
        let mut it = loader.epoch(epoch);
        assert_eq!(it.len(), 2500);
        let first = it.next().unwrap().unwrap();
        assert_eq!(first.indices, vec![0, 1, 2, 3]);
        // `it` is dropped here with the worker blocked on a full channel: must not hang.
    }
}

/// Random transforms are seeded per epoch and sample: the same seed and epoch give the same flips,
/// a new epoch different ones.
#[test]
fn transforms_are_seeded_per_epoch() {
    // 1x1x4 images [0, 1, 2, 3]: a flip reverses them.
    let x = Tensor::from_vec((0..40).map(|v| (v % 4) as f32).collect(), &[10, 1, 1, 4]).unwrap();
    let ds = Arc::new(TensorDataset::new(x, Targets::Classes(vec![0; 10])).unwrap());
    let loader = |seed| {
        DataLoader::from_arc(ds.clone(), 5)
            .unwrap()
            .shuffle(seed)
            .transform(RandomHorizontalFlip::new(0.5))
    };
    let flips = |l: &DataLoader, epoch| -> Vec<bool> {
        l.epoch(epoch)
            .flat_map(|b| {
                let v = b.unwrap().inputs.to_vec();
                v.chunks(4).map(|c| c[0] == 3.0).collect::<Vec<_>>()
            })
            .collect()
    };
    let a = loader(9);
    let f0 = flips(&a, 0);
    assert_eq!(f0, flips(&loader(9), 0));
    assert_ne!(f0, flips(&a, 1), "augmentation changes with the epoch");
    assert!(f0.iter().any(|&f| f) && f0.iter().any(|&f| !f));
}

struct Failing;

impl Dataset for Failing {
    fn len(&self) -> usize {
        10
    }
    fn get(&self, index: usize) -> data::Result<Sample> {
        if index == 6 {
            return Err(DataError::invalid("Failing::get", "sample 6 is corrupt"));
        }
        if index == 9 {
            panic!("sample 9 exploded");
        }
        Ok(Sample {
            input: Tensor::full(&[1], index as f32),
            target: Target::Class(0),
        })
    }
}

/// A dataset error is yielded as an error after the good batches and ends the epoch, inline or
/// prefetched.
#[test]
fn dataset_errors_end_the_epoch_with_the_error() {
    for prefetch in [0, 2] {
        let loader = DataLoader::new(Failing, 2).unwrap().prefetch(prefetch);
        let items: Vec<_> = loader.epoch(0).collect();
        assert_eq!(items.len(), 4, "two good batches, the error, then nothing");
        assert!(items[0].is_ok() && items[1].is_ok() && items[2].is_ok());
        let msg = items[3].as_ref().unwrap_err().to_string();
        assert!(msg.contains("sample 6 is corrupt"), "{msg}");
    }
}

/// A dataset that panics in the worker thread becomes an error naming the worker and the panic
/// message, not a hang.
#[test]
fn a_panicking_dataset_is_reported() {
    let ds = Arc::new(Failing);
    let sub = data::Subset::new(ds, vec![0, 9]).unwrap();
    let loader = DataLoader::new(sub, 1).unwrap();
    let items: Vec<_> = loader.epoch(0).collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    let msg = items[1].as_ref().unwrap_err().to_string();
    assert!(
        msg.contains("worker") && msg.contains("sample 9 exploded"),
        "{msg}"
    );
}

/// A batch size of 0 is refused when the loader is built.
#[test]
fn zero_batch_size_is_an_error() {
    assert!(DataLoader::new(numbered(3), 0).is_err());
}

/// random_split gives disjoint parts that together cover the dataset, the same seed the same parts,
/// and wrong lengths are an error.
#[test]
fn random_split_is_disjoint_covering_and_seeded() {
    let ds: Arc<dyn Dataset> = Arc::new(numbered(20));
    let parts = random_split(ds.clone(), &[14, 6], 11).unwrap();
    assert_eq!(parts[0].len(), 14);
    assert_eq!(parts[1].len(), 6);
    let mut all = [parts[0].indices(), parts[1].indices()].concat();
    all.sort();
    assert_eq!(all, (0..20).collect::<Vec<_>>());
    let again = random_split(ds.clone(), &[14, 6], 11).unwrap();
    assert_eq!(again[1].indices(), parts[1].indices());
    let other = random_split(ds.clone(), &[14, 6], 12).unwrap();
    assert_ne!(other[1].indices(), parts[1].indices());
    // A subset serves its parent's samples.
    let b = parts[1].get_batch(&[0, 5]).unwrap();
    assert_eq!(b.indices, vec![0, 5]);
    assert_eq!(b.inputs.to_vec()[0], (100 * parts[1].indices()[0]) as f32);
    assert!(random_split(ds, &[14, 5], 0).is_err());
    assert_eq!(split_lengths(10, &[0.75, 0.25]).unwrap(), vec![8, 2]);
    assert_eq!(split_lengths(7, &[0.5, 0.5]).unwrap(), vec![4, 3]);
    assert!(split_lengths(7, &[0.5, 0.6]).is_err());
}
