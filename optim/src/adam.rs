//! `Adam`: adaptive moments, bias-corrected, with optional AMSGrad and L2 weight decay.
//!
//! PyTorch's semantics exactly (`torch.optim.Adam`), per parameter `p` with gradient `g` at its
//! step `t` (counted from 1):
//!
//! ```text
//! g = g + weight_decay * p                 (L2: the decay goes through the moments)
//! m = beta1 * m + (1 - beta1) * g          first moment: a running mean of gradients
//! v = beta2 * v + (1 - beta2) * g^2        second moment: a running mean of squares
//! v_max = max(v_max, v)                    (AMSGrad only; then v_max replaces v below)
//! p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//! ```
//!
//! The two moments cost two extra `f32` per parameter (three with AMSGrad); they are allocated
//! once, when the optimizer is built. [`crate::AdamW`] shares this update with decoupled decay.

use std::collections::BTreeMap;

use autograd::Variable;

use crate::error::{OptimError, Result};
use crate::optimizer::{
    check_non_negative, check_unit, contiguous_grad, Optimizer, ParamGroup, ParamGroups,
};
use crate::state::{export_state, import_state, OptimizerState, SlotState};

/// The hyper-parameters of [`Adam`] (PyTorch's names and defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (groups may override it).
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the denominator for stability.
    pub eps: f64,
    /// Weight decay (L2 added to the gradient for Adam, decoupled for AdamW; groups may override).
    pub weight_decay: f64,
    /// Normalise by the running maximum of the second moment.
    pub amsgrad: bool,
    /// Skip parameters without a gradient instead of refusing to step.
    pub allow_unused: bool,
}

impl Default for AdamConfig {
    /// Adam's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay.
    fn default() -> AdamConfig {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            allow_unused: false,
        }
    }
}

/// The scalars one Adam update needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamHyper {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// AMSGrad.
    pub amsgrad: bool,
    /// Decoupled weight decay (AdamW): `p *= 1 - lr * weight_decay` before the update, instead
    /// of adding `weight_decay * p` to the gradient.
    pub decoupled: bool,
}

/// One Adam (or AdamW) update of one parameter at step `step` (the first step is 1), in place:
/// `exp_avg` is the first moment `m`, `exp_avg_sq` the second `v`, `max_exp_avg_sq` the
/// running max of `v` (empty without AMSGrad). The bias corrections are computed in f64, like
/// PyTorch's Python scalars.
pub fn adam_update(
    param: &mut [f32],
    grad: &[f32],
    exp_avg: &mut [f32],
    exp_avg_sq: &mut [f32],
    max_exp_avg_sq: &mut [f32],
    step: u64,
    h: &AdamHyper,
) {
    // HINT: bias corrections bc1 = 1 - beta1^t, bc2 = 1 - beta2^t (in f64); per element: decay
    // HINT: (decoupled: p *= 1 - lr*wd; else g += wd*p), m = beta1*m + (1-beta1)*g, v = beta2*v +
    // HINT: (1-beta2)*g*g, (AMSGrad: vmax = max(vmax, v), use vmax), p -= lr/bc1 * m /
    // HINT: (sqrt(v)/sqrt(bc2) + eps)
    // BEGIN SOLUTION
    let t = step as f64;
    let bias_correction1 = 1.0 - h.beta1.powf(t);
    let bias_correction2 = 1.0 - h.beta2.powf(t);
    let step_size = (h.lr / bias_correction1) as f32;
    let bc2_sqrt = bias_correction2.sqrt() as f32;
    let (beta1, beta2, eps) = (h.beta1 as f32, h.beta2 as f32, h.eps as f32);
    let (one_minus_beta1, one_minus_beta2) = ((1.0 - h.beta1) as f32, (1.0 - h.beta2) as f32);
    let wd = h.weight_decay as f32;
    let shrink = (1.0 - h.lr * h.weight_decay) as f32;
    let n = param.len();
    // Slicing to the parameter's length up front lets the compiler drop bounds checks.
    let (grad, m, v) = (&grad[..n], &mut exp_avg[..n], &mut exp_avg_sq[..n]);
    let vmax = &mut max_exp_avg_sq[..if h.amsgrad { n } else { 0 }];
    for i in 0..n {
        let mut g = grad[i];
        if wd != 0.0 {
            if h.decoupled {
                param[i] *= shrink;
            } else {
                g += wd * param[i];
            }
        }
        m[i] = beta1 * m[i] + one_minus_beta1 * g;
        v[i] = beta2 * v[i] + one_minus_beta2 * g * g;
        let second = if h.amsgrad {
            vmax[i] = vmax[i].max(v[i]);
            vmax[i]
        } else {
            v[i]
        };
        let denom = second.sqrt() / bc2_sqrt + eps;
        param[i] -= step_size * (m[i] / denom);
    }
    // END SOLUTION
}

/// Per-parameter state: a step count and the moments.
pub(crate) struct AdamSlot {
    step: u64,
    exp_avg: Vec<f32>,
    exp_avg_sq: Vec<f32>,
    max_exp_avg_sq: Vec<f32>,
}

impl SlotState for AdamSlot {
    fn step(&self) -> u64 {
        self.step
    }
    fn set_step(&mut self, step: u64) {
        self.step = step;
    }
    fn buffers(&self) -> Vec<(&'static str, &[f32])> {
        let mut b: Vec<(&'static str, &[f32])> =
            vec![("exp_avg", &self.exp_avg), ("exp_avg_sq", &self.exp_avg_sq)];
        if !self.max_exp_avg_sq.is_empty() {
            b.push(("max_exp_avg_sq", &self.max_exp_avg_sq));
        }
        b
    }
    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut [f32])> {
        let mut b: Vec<(&'static str, &mut [f32])> = vec![
            ("exp_avg", &mut self.exp_avg),
            ("exp_avg_sq", &mut self.exp_avg_sq),
        ];
        if !self.max_exp_avg_sq.is_empty() {
            b.push(("max_exp_avg_sq", &mut self.max_exp_avg_sq));
        }
        b
    }
}

/// Adam and AdamW are one optimizer: `DECOUPLED` says where the weight decay goes (`false`:
/// an L2 term added to the gradient, [`Adam`]; `true`: a shrink of the weights before the
/// update, [`crate::AdamW`]). Use those two names; the parameter only keeps the update, the
/// state and the [`Optimizer`] implementation in one place.
pub struct AdamFamily<const DECOUPLED: bool> {
    groups: ParamGroups,
    slots: Vec<AdamSlot>,
    config: AdamConfig,
}

/// Adam (`torch.optim.Adam`): weight decay, if any, is an L2 term added to the gradient.
pub type Adam = AdamFamily<false>;

impl<const DECOUPLED: bool> AdamFamily<DECOUPLED> {
    /// `"Adam"` or `"AdamW"`.
    const NAME: &'static str = if DECOUPLED { "AdamW" } else { "Adam" };

    /// The optimizer over named parameters (one group). For AdamW start from
    /// [`AdamConfig::adamw`] for PyTorch's defaults (weight decay 0.01, where
    /// `AdamConfig::default()` has none).
    pub fn new(params: Vec<(String, Variable)>, config: AdamConfig) -> Result<Self> {
        Self::with_groups(vec![ParamGroup::new(params)], config)
    }

    /// The optimizer over parameter groups with their own lr / weight decay.
    pub fn with_groups(groups: Vec<ParamGroup>, config: AdamConfig) -> Result<Self> {
        let name = Self::NAME;
        check_non_negative(name, "lr", config.lr)?;
        check_unit(name, "beta1", config.beta1)?;
        check_unit(name, "beta2", config.beta2)?;
        check_non_negative(name, "eps", config.eps)?;
        check_non_negative(name, "weight_decay", config.weight_decay)?;
        let groups = ParamGroups::new(
            name,
            groups,
            config.lr,
            config.weight_decay,
            config.allow_unused,
        )?;
        let slots = groups
            .params()
            .map(|(_, v)| {
                let n = v.numel();
                AdamSlot {
                    step: 0,
                    exp_avg: vec![0.0; n],
                    exp_avg_sq: vec![0.0; n],
                    max_exp_avg_sq: if config.amsgrad {
                        vec![0.0; n]
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect();
        Ok(AdamFamily {
            groups,
            slots,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    fn hyper(&self) -> BTreeMap<String, f64> {
        [
            ("beta1", self.config.beta1),
            ("beta2", self.config.beta2),
            ("eps", self.config.eps),
            ("amsgrad", f64::from(u8::from(self.config.amsgrad))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl<const DECOUPLED: bool> Optimizer for AdamFamily<DECOUPLED> {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn groups(&self) -> &ParamGroups {
        &self.groups
    }

    fn groups_mut(&mut self) -> &mut ParamGroups {
        &mut self.groups
    }

    fn step(&mut self) -> Result<()> {
        self.groups.check_grads(Self::NAME)?;
        let mut slots = self.slots.iter_mut();
        for group in self.groups.groups() {
            let h = AdamHyper {
                lr: group.lr,
                beta1: self.config.beta1,
                beta2: self.config.beta2,
                eps: self.config.eps,
                weight_decay: group.weight_decay,
                amsgrad: self.config.amsgrad,
                decoupled: DECOUPLED,
            };
            for var in group.params() {
                let slot = slots.next().expect("one slot per parameter");
                let Some(grad) = contiguous_grad(var) else {
                    continue;
                };
                let g = grad.as_slice().expect("contiguous");
                slot.step += 1;
                let step = slot.step;
                let (m, v, vmax) = (
                    &mut slot.exp_avg,
                    &mut slot.exp_avg_sq,
                    &mut slot.max_exp_avg_sq,
                );
                if let Err(e) = var.update_data(|p| adam_update(p, g, m, v, vmax, step, &h)) {
                    slot.step -= 1;
                    return Err(OptimError::from(e));
                }
            }
        }
        self.groups.finish_step();
        Ok(())
    }

    fn state_numel(&self) -> usize {
        self.slots
            .iter()
            .map(|s| s.exp_avg.len() + s.exp_avg_sq.len() + s.max_exp_avg_sq.len())
            .sum()
    }

    fn state_dict(&self) -> OptimizerState {
        export_state(Self::NAME, &self.groups, &self.slots, self.hyper())
    }

    fn load_state_dict(&mut self, state: &OptimizerState) -> Result<()> {
        let own = self.hyper();
        import_state(
            Self::NAME,
            &mut self.groups,
            &mut self.slots,
            &own,
            &["amsgrad"],
            state,
        )?;
        self.config.beta1 = state.hyper["beta1"];
        self.config.beta2 = state.hyper["beta2"];
        self.config.eps = state.hyper["eps"];
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hyper() -> AdamHyper {
        AdamHyper {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            decoupled: false,
        }
    }

    /// Adam's first step moves each weight by lr whatever the gradient's scale.
    #[test]
    fn first_step_moves_by_lr_whatever_the_gradient_scale() {
        // At t = 1, m / bc1 = g and sqrt(v / bc2) = |g|: the step is lr * sign(g).
        for g in [1e-3f32, 1.0, 1e3] {
            let (mut p, mut m, mut v) = ([1.0f32], [0.0f32], [0.0f32]);
            adam_update(&mut p, &[g], &mut m, &mut v, &mut [], 1, &hyper());
            assert!((p[0] - 0.9).abs() < 1e-5, "g {g}: p {}", p[0]);
            assert!((m[0] - 0.1 * g).abs() <= 1e-6 * g);
            assert!((v[0] - 0.001 * g * g).abs() <= 1e-6 * g * g);
        }
    }

    /// AdamW shrinks the weight before the update and keeps the decay out of the moments.
    #[test]
    fn decoupled_decay_shrinks_before_the_update() {
        let h = AdamHyper {
            weight_decay: 0.5,
            decoupled: true,
            ..hyper()
        };
        let (mut p, mut m, mut v) = ([2.0f32], [0.0f32], [0.0f32]);
        adam_update(&mut p, &[3.0], &mut m, &mut v, &mut [], 1, &h);
        // 2 * (1 - 0.1 * 0.5) - 0.1 = 1.8; the moments never see the decay.
        assert!((p[0] - 1.8).abs() < 1e-6, "{}", p[0]);
        assert!((m[0] - 0.3).abs() < 1e-6);
    }

    /// AMSGrad keeps the running maximum of the second moment.
    #[test]
    fn amsgrad_keeps_the_max() {
        let h = AdamHyper {
            amsgrad: true,
            ..hyper()
        };
        let (mut p, mut m, mut v, mut vmax) = ([0.0f32], [0.0f32], [0.0f32], [0.0f32]);
        for (t, g) in [(1, 10.0f32), (2, 0.0)] {
            adam_update(&mut p, &[g], &mut m, &mut v, &mut vmax, t, &h);
        }
        assert!((v[0] - 0.999 * 0.1).abs() < 1e-6);
        assert!((vmax[0] - 0.1).abs() < 1e-6, "{}", vmax[0]);
    }
}
