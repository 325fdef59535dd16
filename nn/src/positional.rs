//! Positional encodings: attention is blind to order (it sees a *set* of tokens), so each
//! position adds its own vector to the token embeddings before the first block.
//!
//! - [`LearnedPositionalEmbedding`]: a trainable table `(max_len, dim)`, one row per position,
//!   initialised `N(0, 0.02^2)` (GPT-2's `wpe`).
//! - [`SinusoidalPositionalEncoding`]: the fixed table of "Attention Is All You Need",
//!   `PE[p, 2i] = sin(p / 10000^(2i/d))`, `PE[p, 2i+1] = cos(p / 10000^(2i/d))`: no parameters,
//!   and every relative offset is a rotation of each (sin, cos) pair.
//!
//! Both take `(B, T, C)` input and add the rows of positions `start .. start + T` (start 0 for
//! [`Module::forward`]; a later start when decoding with a KV cache, see `forward_at`).

use autograd::Variable;
use tensor::{Tensor, TensorRng};

use crate::error::{NnError, Result};
use crate::init;
use crate::module::Module;

/// Check a `(B, T, C)` input against a table of `max_len` positions of width `dim`, for
/// positions `start .. start + T`; return `T`.
fn check_positions(
    layer: &'static str,
    shape: &[usize],
    start: usize,
    max_len: usize,
    dim: usize,
) -> Result<usize> {
    if shape.len() != 3 || shape[2] != dim {
        return Err(NnError::Invalid {
            op: layer,
            reason: format!("input must be (B, T, C) with C = {dim}, got shape {shape:?}"),
        });
    }
    let t = shape[1];
    if start + t > max_len {
        return Err(NnError::Invalid {
            op: layer,
            reason: format!(
                "sequence too long: positions {start}..{} (T = {t}) but max_len = {max_len}",
                start + t
            ),
        });
    }
    Ok(t)
}

/// A trainable position table: `x + weight[start .. start + T]` for `x` of shape `(B, T, C)`.
pub struct LearnedPositionalEmbedding {
    /// Shape `(max_len, dim)`.
    pub weight: Variable,
}

impl LearnedPositionalEmbedding {
    /// A table of `max_len` positions of width `dim`, drawn from `N(0, 0.02^2)`.
    pub fn new(max_len: usize, dim: usize, rng: &mut TensorRng) -> LearnedPositionalEmbedding {
        LearnedPositionalEmbedding {
            weight: Variable::parameter(init::normal_002(rng, &[max_len, dim])),
        }
    }

    /// The longest sequence the table covers.
    pub fn max_len(&self) -> usize {
        self.weight.shape()[0]
    }

    /// The width of each position vector.
    pub fn dim(&self) -> usize {
        self.weight.shape()[1]
    }

    /// `x + weight[start .. start + T]`: the positions of tokens that follow `start` earlier ones
    /// (decoding with a KV cache). Errors (naming `T`, the positions and `max_len`) past the table.
    pub fn forward_at(&self, x: &Variable, start: usize) -> Result<Variable> {
        let t = check_positions(
            "LearnedPositionalEmbedding",
            &x.shape(),
            start,
            self.max_len(),
            self.dim(),
        )?;
        self.add_positions(x, start, t)
    }

    /// `x + weight[start .. start + t]` (shapes already checked).
    fn add_positions(&self, x: &Variable, start: usize, t: usize) -> Result<Variable> {
        // HINT: narrow the table to the rows in use (a view); the (T, C) rows broadcast over B.
        // BEGIN SOLUTION
        let rows = self.weight.narrow(0, start, t)?;
        Ok(x.add(&rows)?)
        // END SOLUTION
    }
}

impl Module for LearnedPositionalEmbedding {
    fn forward(&self, input: &Variable) -> Result<Variable> {
        self.forward_at(input, 0)
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        vec![("weight".to_string(), self.weight.clone())]
    }
}

impl std::fmt::Debug for LearnedPositionalEmbedding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LearnedPositionalEmbedding(max_len={}, dim={})",
            self.max_len(),
            self.dim()
        )
    }
}

/// The table of sinusoids: row `p`, columns `2i` and `2i + 1` hold `sin` and `cos` of
/// `p / 10000^(2i / dim)` (an odd `dim` ends with a lone `sin` column).
pub fn sinusoidal_table(max_len: usize, dim: usize) -> Tensor {
    // HINT: the angle of column pair i at position p is p * 10000^(-2i / dim); compute in f64.
    // BEGIN SOLUTION
    let mut values = vec![0.0f32; max_len * dim];
    for p in 0..max_len {
        let row = &mut values[p * dim..(p + 1) * dim];
        for (c, v) in row.iter_mut().enumerate() {
            let pair = (c / 2) as f64;
            let angle = p as f64 / 10000f64.powf(2.0 * pair / dim as f64);
            *v = if c % 2 == 0 { angle.sin() } else { angle.cos() } as f32;
        }
    }
    Tensor::from_vec(values, &[max_len, dim]).expect("max_len * dim values")
    // END SOLUTION
}

/// The fixed sinusoidal encoding: `x + PE[start .. start + T]` for `x` of shape `(B, T, C)`.
/// It has no parameters (the table is a constant, so no gradient flows into it).
pub struct SinusoidalPositionalEncoding {
    table: Tensor,
}

impl SinusoidalPositionalEncoding {
    /// The table for `max_len` positions of width `dim`.
    pub fn new(max_len: usize, dim: usize) -> SinusoidalPositionalEncoding {
        SinusoidalPositionalEncoding {
            table: sinusoidal_table(max_len, dim),
        }
    }

    /// The `(max_len, dim)` table.
    pub fn table(&self) -> &Tensor {
        &self.table
    }

    /// The longest sequence the table covers.
    pub fn max_len(&self) -> usize {
        self.table.shape()[0]
    }

    /// The width of each position vector.
    pub fn dim(&self) -> usize {
        self.table.shape()[1]
    }

    /// `x + PE[start .. start + T]` (see [`LearnedPositionalEmbedding::forward_at`]).
    pub fn forward_at(&self, x: &Variable, start: usize) -> Result<Variable> {
        let t = check_positions(
            "SinusoidalPositionalEncoding",
            &x.shape(),
            start,
            self.max_len(),
            self.dim(),
        )?;
        let rows = Variable::constant(self.table.narrow(0, start, t)?);
        Ok(x.add(&rows)?)
    }
}

impl Module for SinusoidalPositionalEncoding {
    fn forward(&self, input: &Variable) -> Result<Variable> {
        self.forward_at(input, 0)
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        Vec::new()
    }
}

impl std::fmt::Debug for SinusoidalPositionalEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SinusoidalPositionalEncoding(max_len={}, dim={})",
            self.max_len(),
            self.dim()
        )
    }
}
