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
    if val_fraction.is_nan() {
        return Err(DataError::invalid(
            "split_train_val",
            "val_fraction must be in [0, 1), got NaN",
        ));
    }
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

/// Cut a text into train (the first `1 - val_fraction`) and val (the rest) for a language model
/// that reads windows of `block_size` tokens: the cut falls on a character boundary (a corpus of
/// multibyte characters is never cut inside one), moved back to just after a newline when one is
/// near, and each part must hold at least `block_size + 1` characters, so a validation loss is
/// never computed on training text. The errors say which part is too short and by how much.
pub fn split_text_train_val(
    text: &str,
    val_fraction: f64,
    block_size: usize,
) -> Result<(&str, &str)> {
    const OP: &str = "split_text_train_val";
    if !(val_fraction > 0.0 && val_fraction < 1.0) {
        return Err(DataError::invalid(
            OP,
            format!("val_fraction must be in (0, 1), got {val_fraction}"),
        ));
    }
    let chars = text.chars().count();
    let need = block_size.saturating_add(1);
    let val_chars = ((chars as f64) * val_fraction).round() as usize;
    let train_chars = chars - val_chars.min(chars);
    if val_chars < need || train_chars < need {
        return Err(DataError::invalid(
            OP,
            format!(
                "a corpus of {chars} characters gives {train_chars} for training and {val_chars} for validation \
                 at val_fraction {val_fraction}; each needs at least block_size + 1 = {need} \
                 (use a longer corpus or a smaller block size)"
            ),
        ));
    }
    // Byte offset of the character boundary at `train_chars`.
    let mut cut = text
        .char_indices()
        .nth(train_chars)
        .map_or(text.len(), |(i, _)| i);
    // Prefer to cut just after a newline, if one lies within the last 10% of the train part and
    // leaves both parts long enough.
    let window_start = text[..cut]
        .char_indices()
        .rev()
        .nth(train_chars / 10)
        .map_or(0, |(i, _)| i);
    if let Some(nl) = text[window_start..cut].rfind('\n') {
        let candidate = window_start + nl + 1;
        let (t, v) = text.split_at(candidate);
        if t.chars().count() >= need && v.chars().count() >= need {
            cut = candidate;
        }
    }
    Ok(text.split_at(cut))
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

#[cfg(test)]
mod split_text_tests {
    use super::*;

    /// The train/validation text split cuts on a character boundary (after a newline when it can),
    /// never inside a multi-byte character.
    #[test]
    fn multibyte_corpus_is_cut_on_a_character_boundary() {
        let text = "é".repeat(999);
        let (train, val) = split_text_train_val(&text, 0.1, 8).unwrap();
        assert_eq!(train.chars().count() + val.chars().count(), 999);
        assert_eq!(val.chars().count(), 100);
        let emoji = "🦀a\n".repeat(300);
        let (t, v) = split_text_train_val(&emoji, 0.1, 4).unwrap();
        assert!(t.ends_with('\n'), "cut after a newline");
        assert_eq!(format!("{t}{v}"), emoji);
    }

    /// A corpus too short to give one window to both parts is an error giving the character counts
    /// and the block size needed.
    #[test]
    fn short_parts_are_refused_naming_the_sizes() {
        let err = split_text_train_val("abcdefghij", 0.1, 8)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("10 characters gives 9 for training and 1 for validation"),
            "{err}"
        );
        assert!(err.contains("block_size + 1 = 9"), "{err}");
        let err = split_text_train_val("", 0.1, 1).unwrap_err().to_string();
        assert!(err.contains("0 characters"), "{err}");
        assert!(split_text_train_val("abc", 0.0, 1).is_err());
        assert!(split_text_train_val("abc", f64::NAN, 1).is_err());
    }
}
