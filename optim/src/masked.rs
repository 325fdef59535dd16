//! `Masked`: any optimizer, with pruned weights held at exactly zero through training.
//!
//! Pruning zeroes weights once; training would bring them back. Masking only the gradient is not
//! enough: SGD's momentum buffer and Adam's moments remember updates from before pruning (and a
//! decayed weight is only zero if it already was), so a zeroed weight can still move. `Masked`
//! therefore gates the *update itself*, around the wrapped optimizer's `step()`:
//!
//! 1. zero the masked entries of each gradient (so no moment or buffer accumulates them), then
//! 2. step the wrapped optimizer, then
//! 3. multiply each masked weight by its mask (whatever the optimizer's state did, the pruned
//!    entries are exactly zero again).
//!
//! Building a `Masked` applies the masks once to the weights, so wrapping is pruning. Because the
//! mechanism is an [`Optimizer`], every training loop (the models crate's `Trainer`, a plain
//! loop) keeps the masks with no change: fine-tuning a pruned model is "wrap, then train".
//! The wrapper lives in `optim` (not `nn`) because it acts on optimizer steps; it takes masks as
//! `(parameter name, 0/1 tensor)` pairs, which is what `nn::prune::Masks` iterates into.
//!
//! Saved optimizer states are the wrapped optimizer's own (masks are not part of them: rebuild
//! the `Masked` with the same masks when resuming).

use std::collections::HashMap;

use autograd::Variable;
use tensor::Tensor;

use crate::error::{OptimError, Result};
use crate::optimizer::{Optimizer, ParamGroups};
use crate::state::OptimizerState;

/// One masked parameter: the variable and its 0/1 mask as a flat row-major vector.
struct MaskedParam {
    var: Variable,
    mask: Vec<f32>,
}

/// An optimizer whose masked weights stay exactly zero (see the module docs).
pub struct Masked<O> {
    inner: O,
    params: Vec<MaskedParam>,
}

impl<O: Optimizer> Masked<O> {
    /// Wrap `inner`, masking the parameters named in `masks` (1 keep, 0 pruned), and zero the
    /// pruned weights now. Errors if a mask names no parameter of `inner`, has another shape
    /// than its parameter, or holds values other than 0 and 1.
    pub fn new(inner: O, masks: impl IntoIterator<Item = (String, Tensor)>) -> Result<Masked<O>> {
        let by_name: HashMap<String, Variable> = inner.named_parameters().into_iter().collect();
        let mut params = Vec::new();
        for (name, mask) in masks {
            let var = by_name.get(&name).ok_or_else(|| {
                OptimError::config(
                    "Masked",
                    format!(
                        "mask '{name}' names no parameter of the {} optimizer",
                        inner.name()
                    ),
                )
            })?;
            if mask.shape() != var.shape().as_slice() {
                return Err(OptimError::config(
                    "Masked",
                    format!(
                        "mask '{name}' has shape {:?} but the parameter has shape {:?}",
                        mask.shape(),
                        var.shape()
                    ),
                ));
            }
            let mask = mask.to_vec();
            if mask.iter().any(|&v| v != 0.0 && v != 1.0) {
                return Err(OptimError::config(
                    "Masked",
                    format!("mask '{name}' must hold only 0.0 and 1.0"),
                ));
            }
            params.push(MaskedParam {
                var: var.clone(),
                mask,
            });
        }
        let masked = Masked { inner, params };
        masked.mask_weights()?;
        Ok(masked)
    }

    /// The wrapped optimizer.
    pub fn inner(&self) -> &O {
        &self.inner
    }

    /// The wrapped optimizer, mutably.
    pub fn inner_mut(&mut self) -> &mut O {
        &mut self.inner
    }

    /// Unwrap (the masks stop being enforced).
    pub fn into_inner(self) -> O {
        self.inner
    }

    /// How many parameters are masked.
    pub fn num_masked(&self) -> usize {
        self.params.len()
    }

    fn mask_grads(&self) {
        // HINT: multiply each masked parameter's gradient by its mask, in place (update_grad).
        // BEGIN SOLUTION
        for p in &self.params {
            p.var.update_grad(|g| multiply(g, &p.mask));
        }
        // END SOLUTION
    }

    fn mask_weights(&self) -> Result<()> {
        // HINT: multiply each masked parameter's value by its mask, in place (update_data).
        // BEGIN SOLUTION
        for p in &self.params {
            p.var.update_data(|w| multiply(w, &p.mask))?;
        }
        Ok(())
        // END SOLUTION
    }
}

fn multiply(values: &mut [f32], mask: &[f32]) {
    for (v, &m) in values.iter_mut().zip(mask) {
        *v *= m;
    }
}

impl<O: Optimizer> Optimizer for Masked<O> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn groups(&self) -> &ParamGroups {
        self.inner.groups()
    }

    fn groups_mut(&mut self) -> &mut ParamGroups {
        self.inner.groups_mut()
    }

    /// Mask the gradients, step the wrapped optimizer, mask the weights.
    fn step(&mut self) -> Result<()> {
        self.mask_grads();
        self.inner.step()?;
        self.mask_weights()
    }

    fn state_numel(&self) -> usize {
        self.inner.state_numel()
    }

    fn state_dict(&self) -> OptimizerState {
        self.inner.state_dict()
    }

    fn load_state_dict(&mut self, state: &OptimizerState) -> Result<()> {
        self.inner.load_state_dict(state)
    }

    fn zero_grad(&self) {
        self.inner.zero_grad()
    }

    fn lr(&self) -> f64 {
        self.inner.lr()
    }

    fn set_lr(&mut self, lr: f64) {
        self.inner.set_lr(lr)
    }

    fn set_lr_factor(&mut self, factor: f64) {
        self.inner.set_lr_factor(factor)
    }

    fn steps(&self) -> u64 {
        self.inner.steps()
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        self.inner.named_parameters()
    }
}
