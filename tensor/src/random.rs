//! Seeded random tensors. Every random thing in the project takes a seed, so the same seed gives
//! the same numbers on every run. The generator is `rand`'s `StdRng`.

use ndarray::{ArrayD, IxDyn};
use ndarray_rand::rand::rngs::StdRng;
use ndarray_rand::rand::{Rng, SeedableRng};
use ndarray_rand::rand_distr::{Distribution, Normal, StandardNormal, Uniform};
use ndarray_rand::RandomExt;

use crate::error::{Result, TensorError};
use crate::tensor::Tensor;

/// The seed used when a caller does not give one (documented so runs are reproducible).
pub const DEFAULT_SEED: u64 = 1337;

/// A seeded random number generator that makes tensors. One generator threaded through model
/// construction gives every layer different but reproducible weights.
#[derive(Clone, Debug)]
pub struct TensorRng {
    rng: StdRng,
}

impl TensorRng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        TensorRng {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Values drawn uniformly from `[low, high)`.
    pub fn uniform(&mut self, shape: &[usize], low: f32, high: f32) -> Result<Tensor> {
        let dist = Uniform::new(low, high).map_err(|e| {
            TensorError::invalid(
                "rand_uniform",
                shape,
                format!("bad range [{low}, {high}): {e}"),
            )
        })?;
        Ok(Tensor::from_array(ArrayD::random_using(
            IxDyn(shape),
            dist,
            &mut self.rng,
        )))
    }

    /// Values drawn from a normal distribution with the given mean and standard deviation.
    pub fn normal(&mut self, shape: &[usize], mean: f32, std: f32) -> Result<Tensor> {
        let dist = Normal::new(mean, std).map_err(|e| {
            TensorError::invalid("rand_normal", shape, format!("bad std {std}: {e}"))
        })?;
        Ok(Tensor::from_array(ArrayD::random_using(
            IxDyn(shape),
            dist,
            &mut self.rng,
        )))
    }

    /// A standard normal sample as `f64` (used by samplers and data augmentation).
    pub fn standard_normal(&mut self) -> f64 {
        StandardNormal.sample(&mut self.rng)
    }

    /// A uniform sample from `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    /// A uniform integer from `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n.max(1))
    }

    /// A raw 64-bit value (to derive seeds for sub-generators).
    pub fn next_u64(&mut self) -> u64 {
        self.rng.random::<u64>()
    }

    /// Shuffle a slice in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

impl Tensor {
    /// Uniform random values in `[low, high)` from a generator seeded with `seed`.
    pub fn rand_uniform(shape: &[usize], low: f32, high: f32, seed: u64) -> Result<Tensor> {
        TensorRng::new(seed).uniform(shape, low, high)
    }

    /// Normal random values from a generator seeded with `seed`.
    pub fn rand_normal(shape: &[usize], mean: f32, std: f32, seed: u64) -> Result<Tensor> {
        TensorRng::new(seed).normal(shape, mean, std)
    }
}
