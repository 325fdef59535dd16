//! The `Module` trait: what every layer and model shares.
//!
//! A module maps a variable to a variable (`forward`) and owns parameters, which it lists with
//! dotted names (`blocks.0.attn.qkv.weight`) so optimizers, checkpoints and error messages can
//! name them. Containers build the names by prefixing their children's.

use std::collections::BTreeMap;

use autograd::Variable;
use tensor::Tensor;

use crate::error::{NnError, Result};

/// A layer or model.
pub trait Module {
    /// Apply the module to `input`.
    fn forward(&self, input: &Variable) -> Result<Variable>;

    /// Trainable parameters with dotted names, in a stable order.
    fn named_parameters(&self) -> Vec<(String, Variable)>;

    /// Non-trainable state saved with the model (e.g. BatchNorm running statistics).
    fn named_buffers(&self) -> Vec<(String, Variable)> {
        Vec::new()
    }

    /// Switch training behaviour (dropout, batch statistics) on or off; containers recurse.
    fn set_training(&mut self, _training: bool) {}

    /// Training mode (dropout active, BatchNorm uses batch statistics).
    fn train(&mut self) {
        self.set_training(true);
    }

    /// Evaluation mode (dropout off, BatchNorm uses running statistics).
    fn eval(&mut self) {
        self.set_training(false);
    }

    /// The parameters without names.
    fn parameters(&self) -> Vec<Variable> {
        self.named_parameters()
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    /// Clear every parameter's gradient.
    fn zero_grad(&self) {
        for p in self.parameters() {
            p.zero_grad();
        }
    }

    /// The total number of trainable scalars.
    fn num_parameters(&self) -> usize {
        self.parameters().iter().map(|p| p.numel()).sum()
    }

    /// Every parameter and buffer by name (copies are cheap: tensors share their buffers).
    fn state_dict(&self) -> BTreeMap<String, Tensor> {
        self.named_parameters()
            .into_iter()
            .chain(self.named_buffers())
            .map(|(name, v)| (name, v.value()))
            .collect()
    }

    /// Load parameters and buffers by name. Every missing, unexpected or mis-shaped tensor is
    /// reported in one error, and nothing is changed unless all of them fit.
    fn load_state_dict(&self, state: &BTreeMap<String, Tensor>) -> Result<()> {
        let own: Vec<(String, Variable)> = self
            .named_parameters()
            .into_iter()
            .chain(self.named_buffers())
            .collect();
        let mut problems = Vec::new();
        for (name, var) in &own {
            match state.get(name) {
                None => problems.push(format!("missing tensor '{name}' (shape {:?})", var.shape())),
                Some(t) if t.shape() != var.shape().as_slice() => problems.push(format!(
                    "tensor '{name}' has shape {:?} in the state dict but {:?} in the module",
                    t.shape(),
                    var.shape()
                )),
                Some(_) => {}
            }
        }
        for name in state.keys() {
            if !own.iter().any(|(n, _)| n == name) {
                problems.push(format!("unexpected tensor '{name}'"));
            }
        }
        if !problems.is_empty() {
            return Err(NnError::StateDict { problems });
        }
        for (name, var) in &own {
            var.set_value(state[name].clone())?;
        }
        Ok(())
    }
}

/// Prefix every name with `prefix.` (how containers name their children's parameters).
pub fn prefixed(prefix: &str, named: Vec<(String, Variable)>) -> Vec<(String, Variable)> {
    named
        .into_iter()
        .map(|(n, v)| (format!("{prefix}.{n}"), v))
        .collect()
}
