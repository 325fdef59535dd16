//! `RmsProp`: divide the gradient by a running root-mean-square of recent gradients.
//!
//! PyTorch's semantics exactly (`torch.optim.RMSprop`), per parameter `p` with gradient `g`:
//!
//! ```text
//! g = g + weight_decay * p                        (L2, if weight_decay != 0)
//! s = alpha * s + (1 - alpha) * g^2               running mean of squares
//! if centered:
//!     a = alpha * a + (1 - alpha) * g             running mean of gradients
//!     avg = sqrt(s - a^2) + eps                   a running standard deviation
//! else:
//!     avg = sqrt(s) + eps
//! if momentum > 0:  b = momentum * b + g / avg;  p = p - lr * b
//! else:             p = p - lr * g / avg
//! ```
//!
//! Unlike Adam there is no bias correction: the first steps, with `s` still near 0, are large.

use std::collections::BTreeMap;

use autograd::Variable;

use crate::error::Result;
use crate::optimizer::{
    check_non_negative, check_unit, contiguous_grad, Optimizer, ParamGroup, ParamGroups,
};
use crate::state::{export_state, import_state, OptimizerState, SlotState};

/// The hyper-parameters of [`RmsProp`] (PyTorch's names and defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmsPropConfig {
    /// Learning rate (groups may override it).
    pub lr: f64,
    /// Smoothing constant of the running means.
    pub alpha: f64,
    /// Added to the denominator for stability.
    pub eps: f64,
    /// L2 penalty added to the gradient (groups may override it).
    pub weight_decay: f64,
    /// Momentum factor (0: none).
    pub momentum: f64,
    /// Normalise by the running standard deviation instead of the root mean square.
    pub centered: bool,
    /// Skip parameters without a gradient instead of refusing to step.
    pub allow_unused: bool,
}

impl Default for RmsPropConfig {
    /// RMSprop's defaults: lr 1e-2, alpha 0.99, eps 1e-8.
    fn default() -> RmsPropConfig {
        RmsPropConfig {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            allow_unused: false,
        }
    }
}

/// The scalars one RMSprop update needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmsPropHyper {
    /// Learning rate.
    pub lr: f64,
    /// Smoothing constant.
    pub alpha: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// L2 penalty.
    pub weight_decay: f64,
    /// Momentum factor.
    pub momentum: f64,
    /// Centered variant.
    pub centered: bool,
}

/// One RMSprop update of one parameter, in place: `square_avg` is the running mean of squared
/// gradients `s`, `grad_avg` the running mean of gradients `a` (empty unless centered),
/// `momentum_buffer` is `b` (empty without momentum).
pub fn rmsprop_update(
    param: &mut [f32],
    grad: &[f32],
    square_avg: &mut [f32],
    grad_avg: &mut [f32],
    momentum_buffer: &mut [f32],
    h: &RmsPropHyper,
) {
    // One compiled copy of the loop per setting of the two flags: with the flags known at
    // compile time each copy is a straight loop that vectorizes (with them as run-time values
    // the compiler left the momentum variants scalar, 4x slower: see the README).
    let (s, a, b) = (square_avg, grad_avg, momentum_buffer);
    match (h.centered, h.momentum > 0.0) {
        (false, false) => rmsprop_loop::<false, false>(param, grad, s, a, b, h),
        (true, false) => rmsprop_loop::<true, false>(param, grad, s, a, b, h),
        (false, true) => rmsprop_loop::<false, true>(param, grad, s, a, b, h),
        (true, true) => rmsprop_loop::<true, true>(param, grad, s, a, b, h),
    }
}

/// The loop of [`rmsprop_update`] for one setting of `CENTERED` (`h.centered`) and `MOMENTUM`
/// (`h.momentum > 0`).
fn rmsprop_loop<const CENTERED: bool, const MOMENTUM: bool>(
    param: &mut [f32],
    grad: &[f32],
    square_avg: &mut [f32],
    grad_avg: &mut [f32],
    momentum_buffer: &mut [f32],
    h: &RmsPropHyper,
) {
    // HINT: per element: g (+ weight_decay * p); s = alpha*s + (1-alpha)*g*g; if CENTERED: a =
    // HINT: alpha*a + (1-alpha)*g and avg = sqrt(s - a*a) + eps, else avg = sqrt(s) + eps; if
    // HINT: MOMENTUM: b = momentum*b + g/avg, p -= lr*b; else p -= lr*g/avg
    // BEGIN SOLUTION
    let lr = h.lr as f32;
    let (alpha, one_minus_alpha) = (h.alpha as f32, (1.0 - h.alpha) as f32);
    let (eps, wd, momentum) = (h.eps as f32, h.weight_decay as f32, h.momentum as f32);
    let n = param.len();
    // Slicing to the parameter's length up front lets the compiler drop bounds checks.
    let (grad, s) = (&grad[..n], &mut square_avg[..n]);
    let a = &mut grad_avg[..if CENTERED { n } else { 0 }];
    let b = &mut momentum_buffer[..if MOMENTUM { n } else { 0 }];
    for i in 0..n {
        let mut g = grad[i];
        if wd != 0.0 {
            g += wd * param[i];
        }
        s[i] = alpha * s[i] + one_minus_alpha * g * g;
        let avg = if CENTERED {
            a[i] = alpha * a[i] + one_minus_alpha * g;
            (s[i] - a[i] * a[i]).sqrt() + eps
        } else {
            s[i].sqrt() + eps
        };
        if MOMENTUM {
            b[i] = momentum * b[i] + g / avg;
            param[i] -= lr * b[i];
        } else {
            param[i] -= lr * (g / avg);
        }
    }
    // END SOLUTION
}

/// Per-parameter state.
pub(crate) struct RmsPropSlot {
    step: u64,
    square_avg: Vec<f32>,
    grad_avg: Vec<f32>,
    momentum_buffer: Vec<f32>,
}

impl SlotState for RmsPropSlot {
    fn step(&self) -> u64 {
        self.step
    }
    fn set_step(&mut self, step: u64) {
        self.step = step;
    }
    fn buffers(&self) -> Vec<(&'static str, &[f32])> {
        let mut b: Vec<(&'static str, &[f32])> = vec![("square_avg", &self.square_avg)];
        if !self.grad_avg.is_empty() {
            b.push(("grad_avg", &self.grad_avg));
        }
        if !self.momentum_buffer.is_empty() {
            b.push(("momentum_buffer", &self.momentum_buffer));
        }
        b
    }
    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut [f32])> {
        let mut b: Vec<(&'static str, &mut [f32])> = vec![("square_avg", &mut self.square_avg)];
        if !self.grad_avg.is_empty() {
            b.push(("grad_avg", &mut self.grad_avg));
        }
        if !self.momentum_buffer.is_empty() {
            b.push(("momentum_buffer", &mut self.momentum_buffer));
        }
        b
    }
}

/// RMSprop (`torch.optim.RMSprop`).
pub struct RmsProp {
    groups: ParamGroups,
    slots: Vec<RmsPropSlot>,
    config: RmsPropConfig,
}

impl RmsProp {
    /// RMSprop over named parameters (one group).
    pub fn new(params: Vec<(String, Variable)>, config: RmsPropConfig) -> Result<RmsProp> {
        RmsProp::with_groups(vec![ParamGroup::new(params)], config)
    }

    /// RMSprop over parameter groups with their own lr / weight decay.
    pub fn with_groups(groups: Vec<ParamGroup>, config: RmsPropConfig) -> Result<RmsProp> {
        check_non_negative("RmsProp", "lr", config.lr)?;
        check_unit("RmsProp", "alpha", config.alpha)?;
        check_non_negative("RmsProp", "eps", config.eps)?;
        check_non_negative("RmsProp", "weight_decay", config.weight_decay)?;
        check_non_negative("RmsProp", "momentum", config.momentum)?;
        let groups = ParamGroups::new(
            "RmsProp",
            groups,
            config.lr,
            config.weight_decay,
            config.allow_unused,
        )?;
        let slots = groups
            .params()
            .map(|(_, v)| {
                let n = v.numel();
                let sized = |on: bool| if on { vec![0.0; n] } else { Vec::new() };
                RmsPropSlot {
                    step: 0,
                    square_avg: vec![0.0; n],
                    grad_avg: sized(config.centered),
                    momentum_buffer: sized(config.momentum > 0.0),
                }
            })
            .collect();
        Ok(RmsProp {
            groups,
            slots,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RmsPropConfig {
        &self.config
    }

    fn hyper(&self) -> BTreeMap<String, f64> {
        [
            ("alpha", self.config.alpha),
            ("eps", self.config.eps),
            ("momentum", self.config.momentum),
            ("centered", f64::from(u8::from(self.config.centered))),
            (
                "uses_momentum",
                f64::from(u8::from(self.config.momentum > 0.0)),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl Optimizer for RmsProp {
    fn name(&self) -> &'static str {
        "RmsProp"
    }

    fn groups(&self) -> &ParamGroups {
        &self.groups
    }

    fn groups_mut(&mut self) -> &mut ParamGroups {
        &mut self.groups
    }

    fn step(&mut self) -> Result<()> {
        self.groups.check_grads("RmsProp")?;
        let mut slots = self.slots.iter_mut();
        for group in self.groups.groups() {
            let h = RmsPropHyper {
                lr: group.lr,
                alpha: self.config.alpha,
                eps: self.config.eps,
                weight_decay: group.weight_decay,
                momentum: self.config.momentum,
                centered: self.config.centered,
            };
            for var in group.params() {
                let slot = slots.next().expect("one slot per parameter");
                let Some(grad) = contiguous_grad(var) else {
                    continue;
                };
                let g = grad.as_slice().expect("contiguous");
                let (s, a, b) = (
                    &mut slot.square_avg,
                    &mut slot.grad_avg,
                    &mut slot.momentum_buffer,
                );
                var.update_data(|p| rmsprop_update(p, g, s, a, b, &h))?;
                slot.step += 1;
            }
        }
        self.groups.finish_step();
        Ok(())
    }

    fn state_numel(&self) -> usize {
        self.slots
            .iter()
            .map(|s| s.square_avg.len() + s.grad_avg.len() + s.momentum_buffer.len())
            .sum()
    }

    fn state_dict(&self) -> OptimizerState {
        export_state("RmsProp", &self.groups, &self.slots, self.hyper())
    }

    fn load_state_dict(&mut self, state: &OptimizerState) -> Result<()> {
        let own = self.hyper();
        import_state(
            "RmsProp",
            &mut self.groups,
            &mut self.slots,
            &own,
            &["centered", "uses_momentum"],
            state,
        )?;
        self.config.alpha = state.hyper["alpha"];
        self.config.eps = state.hyper["eps"];
        self.config.momentum = state.hyper["momentum"];
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One RMSprop step equals the value computed by hand.
    #[test]
    fn first_step_by_hand() {
        // s = 0.01 * 4 = 0.04, avg = 0.2, p = 1 - 0.1 * 2 / 0.2 = 0.
        let h = RmsPropHyper {
            lr: 0.1,
            alpha: 0.99,
            eps: 0.0,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
        };
        let (mut p, mut s) = ([1.0f32], [0.0f32]);
        rmsprop_update(&mut p, &[2.0], &mut s, &mut [], &mut [], &h);
        assert!(p[0].abs() < 1e-6, "{}", p[0]);
        // Centered: a = 0.02, avg = sqrt(0.04 - 0.0004).
        let h = RmsPropHyper {
            centered: true,
            ..h
        };
        let (mut p, mut s, mut a) = ([1.0f32], [0.0f32], [0.0f32]);
        rmsprop_update(&mut p, &[2.0], &mut s, &mut a, &mut [], &h);
        let expected = 1.0 - 0.1 * 2.0 / (0.04f32 - 0.0004).sqrt();
        assert!((p[0] - expected).abs() < 1e-5, "{} vs {expected}", p[0]);
    }
}
