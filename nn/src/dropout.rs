//! `Dropout`: during training, zero each element with probability `p` and scale the survivors by
//! `1 / (1 - p)` ("inverted" dropout), so the expected value of every element is unchanged and
//! evaluation needs no rescaling: in eval mode the layer is the identity.
//!
//! The layer owns its own seeded generator (in a `RefCell`, so `forward` takes `&self`): two
//! layers built with the same seed drop the same elements, and a run is reproducible.

use std::cell::RefCell;

use autograd::Variable;
use tensor::{Tensor, TensorRng};

use crate::error::{NnError, Result};
use crate::module::Module;

/// Inverted dropout with probability `p` in `[0, 1)`.
pub struct Dropout {
    p: f32,
    training: bool,
    rng: RefCell<TensorRng>,
}

impl Dropout {
    /// A dropout layer (in training mode, like every new module) with its generator seeded by
    /// `seed`. Errors unless `0 <= p < 1`.
    pub fn new(p: f32, seed: u64) -> Result<Dropout> {
        if !(0.0..1.0).contains(&p) {
            return Err(NnError::Invalid {
                op: "Dropout",
                reason: format!("p must be in [0, 1), got {p}"),
            });
        }
        Ok(Dropout {
            p,
            training: true,
            rng: RefCell::new(TensorRng::new(seed)),
        })
    }

    /// The drop probability.
    pub fn p(&self) -> f32 {
        self.p
    }

    /// Whether the layer is in training mode (dropping) or eval mode (identity).
    pub fn is_training(&self) -> bool {
        self.training
    }

    /// A fresh mask of the given shape: `1 / (1 - p)` with probability `1 - p`, else 0.
    pub fn sample_mask(&self, shape: &[usize]) -> Result<Tensor> {
        // HINT: Inverted dropout: each element is 0 with probability p and 1 / (1 - p) otherwise,
        // HINT: from one uniform draw per element of the layer's own generator, so the expected
        // HINT: value is unchanged.
        // BEGIN SOLUTION
        let p = self.p;
        let scale = 1.0 / (1.0 - p);
        let u = self.rng.borrow_mut().uniform(shape, 0.0, 1.0)?;
        Ok(u.map(move |v| if v < p { 0.0 } else { scale }))
        // END SOLUTION
    }
}

impl Module for Dropout {
    fn forward(&self, input: &Variable) -> Result<Variable> {
        // HINT: identity when not training or p == 0; otherwise multiply by a constant mask.
        // BEGIN SOLUTION
        if !self.training || self.p == 0.0 {
            return Ok(input.clone());
        }
        let mask = self.sample_mask(&input.shape())?;
        Ok(input.mul(&Variable::constant(mask))?)
        // END SOLUTION
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        Vec::new()
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

impl std::fmt::Debug for Dropout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dropout(p={}, training={})", self.p, self.training)
    }
}
