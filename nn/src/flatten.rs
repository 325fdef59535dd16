//! `Flatten`: merge dims `start_dim..=end_dim` into one, e.g. `(N, C, H, W) -> (N, C*H*W)`
//! between the convolutional and the fully connected part of a CNN.
//!
//! It is an op of the graph (a reshape with a recorded backward), never a re-wrap of the raw
//! data, so the gradient flows back into the feature maps.

use autograd::Variable;

use crate::error::Result;
use crate::module::Module;

/// Flatten dims `start_dim..=end_dim` (PyTorch's defaults: `1` and `-1`, keeping the batch dim).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flatten {
    /// First dim merged (negative counts from the end).
    pub start_dim: isize,
    /// Last dim merged (negative counts from the end).
    pub end_dim: isize,
}

impl Flatten {
    /// `Flatten(start_dim=1, end_dim=-1)`: everything but the batch dim.
    pub fn new() -> Flatten {
        Flatten {
            start_dim: 1,
            end_dim: -1,
        }
    }

    /// Flatten the given range of dims.
    pub fn with_dims(start_dim: isize, end_dim: isize) -> Flatten {
        Flatten { start_dim, end_dim }
    }
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten::new()
    }
}

impl Module for Flatten {
    fn forward(&self, input: &Variable) -> Result<Variable> {
        // HINT: merge dims start_dim..=end_dim into one with the graph's flatten (a reshape, never
        // HINT: a re-wrap of the raw data).
        // BEGIN SOLUTION
        Ok(input.flatten(self.start_dim, self.end_dim)?)
        // END SOLUTION
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        Vec::new()
    }
}
