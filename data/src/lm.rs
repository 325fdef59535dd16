//! Language-model data: windows of a token stream where the target is the input shifted by one.
//!
//! For tokens `t0 t1 t2 ...` and a window starting at `i`, the input is `t[i..i+T]` and the target
//! `t[i+1..i+T+1]`: position `k` learns to predict the token after it. Training batches take
//! `B` windows at random starting points (nanoGPT's `get_batch`), seeded; evaluation walks the
//! validation stream in consecutive windows. [`split_train_val`] cuts the stream once, so train
//! and val windows can never share a token.

use std::sync::Arc;

use tensor::{Tensor, TensorRng};

use crate::error::{DataError, Result};

/// `B` windows of `T` tokens: inputs and their next-token targets, both `B * T` ids row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LmBatch {
    /// Input ids, `batch_size * block_size`, row-major `[B, T]`.
    pub inputs: Vec<usize>,
    /// Target ids (each input's next token), same layout.
    pub targets: Vec<usize>,
    /// `B`.
    pub batch_size: usize,
    /// `T`.
    pub block_size: usize,
}

impl LmBatch {
    /// The inputs as an `f32` tensor `[B, T]` (ids are exact in `f32` below 2^24).
    pub fn inputs_tensor(&self) -> Result<Tensor> {
        Ok(Tensor::from_vec(
            self.inputs.iter().map(|&i| i as f32).collect(),
            &[self.batch_size, self.block_size],
        )?)
    }

    /// The targets as an `f32` tensor `[B, T]`.
    pub fn targets_tensor(&self) -> Result<Tensor> {
        Ok(Tensor::from_vec(
            self.targets.iter().map(|&i| i as f32).collect(),
            &[self.batch_size, self.block_size],
        )?)
    }
}

/// Cut a token stream into train (the first `1 - val_fraction`) and val (the rest). The two parts
/// share no token, so no window of one can see the other. `val_fraction` must be in `[0, 1)`.
pub fn split_train_val(tokens: &[usize], val_fraction: f64) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(0.0..1.0).contains(&val_fraction) {
        return Err(DataError::invalid(
            "split_train_val",
            format!("val_fraction must be in [0, 1), got {val_fraction}"),
        ));
    }
    let n_train = ((1.0 - val_fraction) * tokens.len() as f64).round() as usize;
    let n_train = n_train.min(tokens.len());
    Ok((tokens[..n_train].to_vec(), tokens[n_train..].to_vec()))
}

/// The default validation fraction: the last 10% of the stream.
pub const DEFAULT_VAL_FRACTION: f64 = 0.1;

/// Random (seeded) or sequential windows of one token stream.
#[derive(Clone, Debug)]
pub struct LmBatcher {
    tokens: Arc<Vec<usize>>,
    block_size: usize,
    batch_size: usize,
    rng: TensorRng,
}

impl LmBatcher {
    /// Batches of `batch_size` windows of `block_size` tokens from `tokens`, drawn with a generator
    /// seeded by `seed`. The stream needs at least `block_size + 1` tokens.
    pub fn new(
        tokens: Vec<usize>,
        block_size: usize,
        batch_size: usize,
        seed: u64,
    ) -> Result<Self> {
        if block_size == 0 || batch_size == 0 {
            return Err(DataError::invalid(
                "LmBatcher::new",
                format!(
                    "block_size ({block_size}) and batch_size ({batch_size}) must be at least 1"
                ),
            ));
        }
        if tokens.len() < block_size + 1 {
            return Err(DataError::invalid(
                "LmBatcher::new",
                format!(
                    "a window of {block_size} tokens plus its shifted target needs {} tokens, the stream has {}",
                    block_size + 1,
                    tokens.len()
                ),
            ));
        }
        Ok(LmBatcher {
            tokens: Arc::new(tokens),
            block_size,
            batch_size,
            rng: TensorRng::new(seed),
        })
    }

    /// The token stream.
    pub fn tokens(&self) -> &[usize] {
        &self.tokens
    }

    /// `T`.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// `B`.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The window starting at token `start`: input and target (shifted by one).
    pub fn window(&self, start: usize) -> Result<(&[usize], &[usize])> {
        let t = self.block_size;
        if start + t + 1 > self.tokens.len() {
            return Err(DataError::invalid(
                "LmBatcher::window",
                format!(
                    "a window of {t} at {start} needs {} tokens, the stream has {}",
                    start + t + 1,
                    self.tokens.len()
                ),
            ));
        }
        Ok((
            &self.tokens[start..start + t],
            &self.tokens[start + 1..start + t + 1],
        ))
    }

    /// A random training batch: `B` windows whose starts are drawn uniformly from every valid start
    /// `0..=len - T - 1`.
    pub fn sample(&mut self) -> LmBatch {
        // HINT: draw B starts with self.rng.below(len - T); input = tokens[s..s+T], target =
        // HINT: tokens[s+1..s+T+1].
        // BEGIN SOLUTION
        let t = self.block_size;
        let starts = self.tokens.len() - t;
        let mut inputs = Vec::with_capacity(self.batch_size * t);
        let mut targets = Vec::with_capacity(self.batch_size * t);
        for _ in 0..self.batch_size {
            let s = self.rng.below(starts);
            inputs.extend_from_slice(&self.tokens[s..s + t]);
            targets.extend_from_slice(&self.tokens[s + 1..s + t + 1]);
        }
        LmBatch {
            inputs,
            targets,
            batch_size: self.batch_size,
            block_size: t,
        }
        // END SOLUTION
    }

    /// Every non-overlapping window in order (starts `0, T, 2T, ...`), in batches of up to `B`:
    /// a deterministic pass over the stream for evaluation.
    pub fn sequential(&self) -> Vec<LmBatch> {
        let t = self.block_size;
        let windows = (self.tokens.len() - 1) / t;
        let starts: Vec<usize> = (0..windows).map(|w| w * t).collect();
        starts
            .chunks(self.batch_size)
            .map(|chunk| {
                let mut inputs = Vec::with_capacity(chunk.len() * t);
                let mut targets = Vec::with_capacity(chunk.len() * t);
                for &s in chunk {
                    inputs.extend_from_slice(&self.tokens[s..s + t]);
                    targets.extend_from_slice(&self.tokens[s + 1..s + t + 1]);
                }
                LmBatch {
                    inputs,
                    targets,
                    batch_size: chunk.len(),
                    block_size: t,
                }
            })
            .collect()
    }
}
