//! `Sequential`: a chain of boxed modules applied in order.
//!
//! Children are named by their position, so the parameters of a `Sequential` of a `Linear`, a
//! `ReLU` and a `Linear` are `0.weight`, `0.bias`, `2.weight`, `2.bias`: the names PyTorch
//! gives, so state dicts line up. Switching train/eval mode reaches every child.

use autograd::Variable;

use crate::error::Result;
use crate::module::{prefixed, Module};

/// Modules applied one after the other.
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    /// An empty chain (the identity).
    pub fn new() -> Sequential {
        Sequential { layers: Vec::new() }
    }

    /// Append a layer (builder style): `Sequential::new().add(a).add(b)`.
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, layer: impl Module + 'static) -> Sequential {
        self.layers.push(Box::new(layer));
        self
    }

    /// Append an already boxed layer.
    pub fn push(&mut self, layer: Box<dyn Module>) {
        self.layers.push(layer);
    }

    /// The number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether the chain has no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The layer at `index`, if any.
    pub fn get(&self, index: usize) -> Option<&dyn Module> {
        self.layers.get(index).map(|l| l.as_ref())
    }

    /// The layers in order.
    pub fn layers(&self) -> &[Box<dyn Module>] {
        &self.layers
    }
}

impl Module for Sequential {
    fn forward(&self, input: &Variable) -> Result<Variable> {
        // HINT: feed the input through every layer in order, each output becoming the next input.
        // BEGIN SOLUTION
        let mut x = input.clone();
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        Ok(x)
        // END SOLUTION
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| prefixed(&i.to_string(), l.named_parameters()))
            .collect()
    }

    fn named_buffers(&self) -> Vec<(String, Variable)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| prefixed(&i.to_string(), l.named_buffers()))
            .collect()
    }

    fn set_training(&mut self, training: bool) {
        for layer in &mut self.layers {
            layer.set_training(training);
        }
    }
}
