//! `AdamW`: Adam with decoupled weight decay (`torch.optim.AdamW`).
//!
//! With Adam's L2 decay, `weight_decay * p` joins the gradient and is then divided by
//! `sqrt(v)`: parameters with large gradients are barely decayed, those with small gradients
//! strongly. AdamW takes the decay out of the moments and shrinks every weight by the same
//! fraction before the Adam update:
//!
//! ```text
//! p = p * (1 - lr * weight_decay)
//! p = p - Adam's step (computed from the raw gradient)
//! ```
//!
//! The default weight decay is PyTorch's 0.01; [`crate::ParamGroup::split_decay`] keeps biases
//! and norm weights out of it.

use autograd::Variable;

use crate::adam::{AdamConfig, AdamCore};
use crate::error::Result;
use crate::optimizer::{Optimizer, ParamGroup, ParamGroups};
use crate::state::OptimizerState;

impl AdamConfig {
    /// AdamW's defaults (PyTorch's): Adam's, with weight decay 0.01.
    pub fn adamw() -> AdamConfig {
        AdamConfig {
            weight_decay: 1e-2,
            ..AdamConfig::default()
        }
    }
}

/// Adam with decoupled weight decay.
pub struct AdamW {
    core: AdamCore,
}

impl AdamW {
    /// AdamW over named parameters (one group). Start from [`AdamConfig::adamw`] for
    /// PyTorch's defaults (weight decay 0.01, where `AdamConfig::default()` has none).
    pub fn new(params: Vec<(String, Variable)>, config: AdamConfig) -> Result<AdamW> {
        AdamW::with_groups(vec![ParamGroup::new(params)], config)
    }

    /// AdamW over parameter groups with their own lr / weight decay.
    pub fn with_groups(groups: Vec<ParamGroup>, config: AdamConfig) -> Result<AdamW> {
        Ok(AdamW {
            core: AdamCore::new("AdamW", groups, config, true)?,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AdamConfig {
        self.core.config()
    }
}

impl Optimizer for AdamW {
    fn name(&self) -> &'static str {
        "AdamW"
    }
    fn groups(&self) -> &ParamGroups {
        self.core.groups()
    }
    fn groups_mut(&mut self) -> &mut ParamGroups {
        self.core.groups_mut()
    }
    fn step(&mut self) -> Result<()> {
        self.core.step()
    }
    fn state_numel(&self) -> usize {
        self.core.state_numel()
    }
    fn state_dict(&self) -> OptimizerState {
        self.core.state_dict()
    }
    fn load_state_dict(&mut self, state: &OptimizerState) -> Result<()> {
        self.core.load_state_dict(state)
    }
}
