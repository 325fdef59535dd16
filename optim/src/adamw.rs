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

use crate::adam::{AdamConfig, AdamFamily};

impl AdamConfig {
    /// AdamW's defaults (PyTorch's): Adam's, with weight decay 0.01.
    pub fn adamw() -> AdamConfig {
        AdamConfig {
            weight_decay: 1e-2,
            ..AdamConfig::default()
        }
    }
}

/// Adam with decoupled weight decay: the same optimizer as [`crate::Adam`] (one update, one
/// state layout), with the decay applied to the weights instead of the gradient. Build it with
/// `AdamW::new(params, AdamConfig::adamw())` for PyTorch's defaults.
pub type AdamW = AdamFamily<true>;
