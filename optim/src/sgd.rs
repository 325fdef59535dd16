//! `Sgd`: stochastic gradient descent with momentum, dampening, Nesterov and weight decay.
//!
//! PyTorch's semantics exactly (`torch.optim.SGD`), per parameter `p` with gradient `g`:
//!
//! ```text
//! g = g + weight_decay * p                       (L2 penalty, if weight_decay != 0)
//! if momentum != 0:
//!     b = g                                      on the first step
//!     b = momentum * b + (1 - dampening) * g     afterwards
//!     g = g + momentum * b   if nesterov   else   g = b
//! p = p - lr * g
//! ```
//!
//! The momentum buffer is allocated once, when the optimizer is built, so a step allocates
//! nothing.

use std::collections::BTreeMap;

use autograd::Variable;

use crate::error::{OptimError, Result};
use crate::optimizer::{check_non_negative, contiguous_grad, Optimizer, ParamGroup, ParamGroups};
use crate::state::{export_state, import_state, OptimizerState, SlotState};

/// The hyper-parameters of [`Sgd`] (PyTorch's names and defaults, except `lr`, which PyTorch
/// leaves to the caller).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    /// Learning rate (groups may override it).
    pub lr: f64,
    /// Momentum factor (0: plain gradient descent).
    pub momentum: f64,
    /// Dampening of the gradient's share in the momentum buffer.
    pub dampening: f64,
    /// Nesterov momentum (needs `momentum > 0` and `dampening == 0`).
    pub nesterov: bool,
    /// L2 penalty added to the gradient (groups may override it).
    pub weight_decay: f64,
    /// Skip parameters without a gradient instead of refusing to step.
    pub allow_unused: bool,
}

impl Default for SgdConfig {
    fn default() -> SgdConfig {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            allow_unused: false,
        }
    }
}

/// The scalars one SGD update needs (a group's lr and decay plus the optimizer's settings).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdHyper {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor.
    pub momentum: f64,
    /// Dampening.
    pub dampening: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 penalty.
    pub weight_decay: f64,
}

/// One SGD update of one parameter, in place. `momentum_buffer` is empty when `momentum == 0`;
/// `first_step` says whether the buffer must be initialised from the gradient.
pub fn sgd_update(
    param: &mut [f32],
    grad: &[f32],
    momentum_buffer: &mut [f32],
    first_step: bool,
    h: &SgdHyper,
) {
    // HINT: for each element: d = g (+ weight_decay * p); with momentum, b = d on the first step,
    // HINT: else b = momentum * b + (1 - dampening) * d, then d = d + momentum * b (Nesterov) or d
    // HINT: = b; finally p -= lr * d
    // BEGIN SOLUTION
    let lr = h.lr as f32;
    let wd = h.weight_decay as f32;
    let momentum = h.momentum as f32;
    let keep = (1.0 - h.dampening) as f32;
    // Slicing to the parameter's length up front lets the compiler drop bounds checks.
    let n = param.len();
    let grad = &grad[..n];
    let buf = &mut momentum_buffer[..if momentum != 0.0 { n } else { 0 }];
    for i in 0..n {
        let mut d = grad[i];
        if wd != 0.0 {
            d += wd * param[i];
        }
        if momentum != 0.0 {
            buf[i] = if first_step {
                d
            } else {
                momentum * buf[i] + keep * d
            };
            d = if h.nesterov {
                d + momentum * buf[i]
            } else {
                buf[i]
            };
        }
        param[i] -= lr * d;
    }
    // END SOLUTION
}

/// Per-parameter state: a step count and the momentum buffer (empty without momentum).
pub(crate) struct SgdSlot {
    step: u64,
    momentum_buffer: Vec<f32>,
}

impl SlotState for SgdSlot {
    fn step(&self) -> u64 {
        self.step
    }
    fn set_step(&mut self, step: u64) {
        self.step = step;
    }
    fn buffers(&self) -> Vec<(&'static str, &[f32])> {
        if self.momentum_buffer.is_empty() {
            Vec::new()
        } else {
            vec![("momentum_buffer", &self.momentum_buffer)]
        }
    }
    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut [f32])> {
        if self.momentum_buffer.is_empty() {
            Vec::new()
        } else {
            vec![("momentum_buffer", &mut self.momentum_buffer)]
        }
    }
}

/// Stochastic gradient descent (`torch.optim.SGD`).
pub struct Sgd {
    groups: ParamGroups,
    slots: Vec<SgdSlot>,
    config: SgdConfig,
}

impl Sgd {
    /// SGD over named parameters (one group).
    pub fn new(params: Vec<(String, Variable)>, config: SgdConfig) -> Result<Sgd> {
        Sgd::with_groups(vec![ParamGroup::new(params)], config)
    }

    /// SGD over parameter groups with their own lr / weight decay.
    pub fn with_groups(groups: Vec<ParamGroup>, config: SgdConfig) -> Result<Sgd> {
        check_non_negative("Sgd", "lr", config.lr)?;
        check_non_negative("Sgd", "momentum", config.momentum)?;
        check_non_negative("Sgd", "weight_decay", config.weight_decay)?;
        if !config.dampening.is_finite() {
            return Err(OptimError::config(
                "Sgd",
                format!("dampening must be finite, got {}", config.dampening),
            ));
        }
        if config.nesterov && (config.momentum <= 0.0 || config.dampening != 0.0) {
            return Err(OptimError::config(
                "Sgd",
                format!(
                    "Nesterov momentum needs momentum > 0 and dampening = 0, got momentum {} and dampening {}",
                    config.momentum, config.dampening
                ),
            ));
        }
        let groups = ParamGroups::new(
            "Sgd",
            groups,
            config.lr,
            config.weight_decay,
            config.allow_unused,
        )?;
        let with_buffer = config.momentum != 0.0;
        let slots = groups
            .params()
            .map(|(_, v)| SgdSlot {
                step: 0,
                momentum_buffer: if with_buffer {
                    vec![0.0; v.numel()]
                } else {
                    Vec::new()
                },
            })
            .collect();
        Ok(Sgd {
            groups,
            slots,
            config,
        })
    }

    /// The configuration (the lr and weight decay here are the defaults groups started from).
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }

    fn hyper(&self) -> BTreeMap<String, f64> {
        [
            ("momentum", self.config.momentum),
            ("dampening", self.config.dampening),
            ("nesterov", f64::from(u8::from(self.config.nesterov))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl Optimizer for Sgd {
    fn name(&self) -> &'static str {
        "Sgd"
    }

    fn groups(&self) -> &ParamGroups {
        &self.groups
    }

    fn groups_mut(&mut self) -> &mut ParamGroups {
        &mut self.groups
    }

    fn step(&mut self) -> Result<()> {
        self.groups.check_grads("Sgd")?;
        let mut slots = self.slots.iter_mut();
        for group in self.groups.groups() {
            let h = SgdHyper {
                lr: group.lr,
                momentum: self.config.momentum,
                dampening: self.config.dampening,
                nesterov: self.config.nesterov,
                weight_decay: group.weight_decay,
            };
            for var in group.params() {
                let slot = slots.next().expect("one slot per parameter");
                let Some(grad) = contiguous_grad(var) else {
                    continue;
                };
                let g = grad.as_slice().expect("contiguous");
                let first = slot.step == 0;
                var.update_data(|p| sgd_update(p, g, &mut slot.momentum_buffer, first, &h))?;
                slot.step += 1;
            }
        }
        self.groups.finish_step();
        Ok(())
    }

    fn state_numel(&self) -> usize {
        self.slots.iter().map(|s| s.momentum_buffer.len()).sum()
    }

    fn state_dict(&self) -> OptimizerState {
        export_state("Sgd", &self.groups, &self.slots, self.hyper())
    }

    fn load_state_dict(&mut self, state: &OptimizerState) -> Result<()> {
        let own = self.hyper();
        import_state(
            "Sgd",
            &mut self.groups,
            &mut self.slots,
            &own,
            &["nesterov"],
            state,
        )?;
        self.config.momentum = state.hyper["momentum"];
        self.config.dampening = state.hyper["dampening"];
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One plain SGD step moves each parameter by -lr * grad, as computed by hand.
    #[test]
    fn plain_step_by_hand() {
        let mut p = [1.0, -2.0];
        let h = SgdHyper {
            lr: 0.5,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        };
        sgd_update(&mut p, &[0.2, 0.4], &mut [], true, &h);
        assert_eq!(p, [0.9, -2.2]);
    }

    /// SGD with momentum and dampening keeps the hand-computed velocity (b = momentum * b + (1 -
    /// dampening) * g after the first step) and moves by lr * b.
    #[test]
    fn momentum_by_hand() {
        // momentum 0.9, dampening 0.5: b1 = g1 = 1; b2 = 0.9 * 1 + 0.5 * 2 = 1.9.
        let h = SgdHyper {
            lr: 0.1,
            momentum: 0.9,
            dampening: 0.5,
            nesterov: false,
            weight_decay: 0.0,
        };
        let (mut p, mut b) = ([0.0f32], [0.0f32]);
        sgd_update(&mut p, &[1.0], &mut b, true, &h);
        assert_eq!(b, [1.0]);
        assert!((p[0] + 0.1).abs() < 1e-7);
        sgd_update(&mut p, &[2.0], &mut b, false, &h);
        assert!((b[0] - 1.9).abs() < 1e-6);
        assert!((p[0] + 0.1 + 0.19).abs() < 1e-6);
        // Nesterov with weight decay 0.1 at p = 1: d = 1 + 0.1 = 1.1; b = 1.1; d = 1.1 + 0.9 * 1.1.
        let h = SgdHyper {
            lr: 1.0,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: true,
            weight_decay: 0.1,
        };
        let (mut p, mut b) = ([1.0f32], [0.0f32]);
        sgd_update(&mut p, &[1.0], &mut b, true, &h);
        assert!((p[0] - (1.0 - 1.1 * 1.9)).abs() < 1e-6, "{p:?}");
    }

    /// Invalid SGD settings (Nesterov without momentum, a NaN learning rate) are refused with a
    /// message naming the setting.
    #[test]
    fn bad_configs_are_refused() {
        let v = || {
            vec![(
                "w".to_string(),
                Variable::parameter(tensor::Tensor::zeros(&[1])),
            )]
        };
        let e = Sgd::new(
            v(),
            SgdConfig {
                nesterov: true,
                ..Default::default()
            },
        )
        .err()
        .unwrap();
        assert!(
            e.to_string()
                .contains("Nesterov momentum needs momentum > 0"),
            "{e}"
        );
        let e = Sgd::new(
            v(),
            SgdConfig {
                lr: f64::NAN,
                ..Default::default()
            },
        )
        .err()
        .unwrap();
        assert!(
            e.to_string()
                .contains("Sgd: lr must be finite and >= 0, got NaN"),
            "{e}"
        );
    }
}
