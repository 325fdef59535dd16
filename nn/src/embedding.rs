//! `Embedding`: a learned vector per token id, i.e. a lookup table `weight[id]`.
//!
//! Looking up row `id` is the same as multiplying a one-hot vector by the table, without building
//! the one-hot: the forward is an `index_select` of rows and the backward scatter-adds the output
//! gradient into the rows that were used (a token seen twice gets both contributions).
//!
//! Ids are typed: a lookup takes `&[usize]` with its shape, never a float tensor of indices (a
//! float is not an id: 2.5 or -1 would need a runtime check, and ids above 2^24 do not survive
//! the trip through `f32`). Ids are checked: an id outside the vocabulary is an error naming the
//! id, where it was and the vocabulary size, never a silent wrong row or a panic.
//!
//! Initialisation (PyTorch's default): `N(0, 1)`.

use autograd::Variable;
use tensor::TensorRng;

use crate::error::{NnError, Result};
use crate::init;
use crate::module::Module;

/// A table of `num_embeddings` vectors of size `embedding_dim`.
pub struct Embedding {
    /// Shape `(num_embeddings, embedding_dim)`.
    pub weight: Variable,
}

impl Embedding {
    /// A table initialised from `N(0, 1)`.
    pub fn new(num_embeddings: usize, embedding_dim: usize, rng: &mut TensorRng) -> Embedding {
        let weight = init::standard_normal(rng, &[num_embeddings, embedding_dim]);
        Embedding {
            weight: Variable::parameter(weight),
        }
    }

    /// A table around a given `(num, dim)` parameter (for weight tying with an output layer).
    pub fn from_weight(weight: Variable) -> Result<Embedding> {
        if weight.ndim() != 2 {
            return Err(NnError::Invalid {
                op: "Embedding",
                reason: format!(
                    "weight must be (num_embeddings, embedding_dim), got shape {:?}",
                    weight.shape()
                ),
            });
        }
        Ok(Embedding { weight })
    }

    /// The vocabulary size.
    pub fn num_embeddings(&self) -> usize {
        self.weight.shape()[0]
    }

    /// The vector size.
    pub fn embedding_dim(&self) -> usize {
        self.weight.shape()[1]
    }

    /// Look up `ids` laid out with `shape` (e.g. `[B, T]`): returns `shape + [embedding_dim]`.
    pub fn forward_ids(&self, ids: &[usize], shape: &[usize]) -> Result<Variable> {
        let numel: usize = shape.iter().product();
        if numel != ids.len() {
            return Err(NnError::Invalid {
                op: "Embedding",
                reason: format!("{} ids cannot fill shape {shape:?}", ids.len()),
            });
        }
        let vocab = self.num_embeddings();
        if let Some(pos) = ids.iter().position(|&id| id >= vocab) {
            return Err(NnError::Invalid {
                op: "Embedding",
                reason: format!(
                    "token id {} at position {pos} (index {:?} of shape {shape:?}) is out of \
                     range for a vocabulary of {vocab}",
                    ids[pos],
                    tensor::shape::unravel_index(pos, shape)
                ),
            });
        }
        self.lookup(ids, shape)
    }

    /// The rows of `ids` (checked to be in range), shaped `shape + [embedding_dim]`.
    fn lookup(&self, ids: &[usize], shape: &[usize]) -> Result<Variable> {
        // HINT: index_select rows of the table, then reshape.
        // BEGIN SOLUTION
        let rows = self.weight.index_select(0, ids)?;
        let mut out_shape = shape.to_vec();
        out_shape.push(self.embedding_dim());
        Ok(rows.reshape_to(&out_shape)?)
        // END SOLUTION
    }
}

impl Module for Embedding {
    /// An embedding reads token ids, not floats: this is an error that points to
    /// [`Embedding::forward_ids`] (the module is a `Module` for its parameters and state dict).
    fn forward(&self, input: &Variable) -> Result<Variable> {
        Err(NnError::Invalid {
            op: "Embedding",
            reason: format!(
                "got a float tensor of shape {:?}; token ids are looked up with \
                 Embedding::forward_ids(ids: &[usize], shape)",
                input.shape()
            ),
        })
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        vec![("weight".to_string(), self.weight.clone())]
    }
}

impl std::fmt::Debug for Embedding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Embedding({}, {})",
            self.num_embeddings(),
            self.embedding_dim()
        )
    }
}
