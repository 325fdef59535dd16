//! # optim: optimizers, learning-rate schedules, gradient clipping (chapter 4)
//!
//! After `loss.backward()` every parameter holds a gradient; an optimizer turns gradients into
//! updates, in place. The optimizers here follow `torch.optim` exactly (tested against it step by
//! step), keep their state in buffers allocated once, save and restore that state bit for bit,
//! and refuse to step, naming the parameter, when a trainable parameter received no gradient.
//! Table of contents:
//!
//! | module | concept |
//! |---|---|
//! | [`error`] | `OptimError`: missing gradients, bad configs, NaN norms, bad states |
//! | [`optimizer`] | the `Optimizer` trait, `ParamGroup` (per-group lr / weight decay), `ParamGroups` |
//! | [`sgd`] | `Sgd`: momentum, dampening, Nesterov, weight decay |
//! | [`adam`] | `Adam`: bias-corrected moments, AMSGrad, L2 weight decay |
//! | [`adamw`] | `AdamW`: decoupled weight decay |
//! | [`rmsprop`] | `RmsProp`: centered, momentum |
//! | [`schedule`] | `LrSchedule` and the schedules (step, exponential, cosine, warmup + cosine, one-cycle, plateau) |
//! | [`masked`] | `Masked`: wraps any optimizer so pruned weights stay exactly zero |
//! | [`clip`] | `clip_grad_norm`, `clip_grad_value` |
//! | [`state`] | `OptimizerState`: save / load for exact resume |
//!
//! ```
//! use autograd::Variable;
//! use optim::{clip_grad_norm, AdamConfig, AdamW, Optimizer, ParamGroup};
//! use tensor::Tensor;
//!
//! let w = Variable::parameter(Tensor::from_vec(vec![0.5, -0.5, 1.0, 2.0], &[2, 2]).unwrap());
//! let b = Variable::parameter(Tensor::zeros(&[2]));
//! let params = vec![("fc.weight".to_string(), w.clone()), ("fc.bias".to_string(), b.clone())];
//! // Decay the matrix, not the bias.
//! let groups = ParamGroup::split_decay(params.clone(), 0.1);
//! let mut opt = AdamW::with_groups(groups, AdamConfig { lr: 1e-2, ..AdamConfig::adamw() }).unwrap();
//!
//! let x = Variable::constant(Tensor::ones(&[1, 2]));
//! let loss = x.matmul(&w).unwrap().add(&b).unwrap().sum_all().unwrap();
//! loss.backward().unwrap();
//! let norm = clip_grad_norm(&params, 1.0).unwrap(); // the norm before clipping
//! assert!((norm - 6f32.sqrt()).abs() < 1e-6);
//! opt.step().unwrap();
//! opt.zero_grad();
//! ```

#![warn(missing_docs)]

pub mod adam;
pub mod adamw;
pub mod clip;
pub mod error;
pub mod masked;
pub mod optimizer;
pub mod rmsprop;
pub mod schedule;
pub mod sgd;
pub mod state;

pub use adam::{Adam, AdamConfig, AdamFamily};
pub use adamw::AdamW;
pub use clip::{clip_grad_norm, clip_grad_value, grad_norm, ParamRef};
pub use error::{OptimError, Result};
pub use masked::Masked;
pub use optimizer::{Group, Optimizer, ParamGroup, ParamGroups};
pub use rmsprop::{RmsProp, RmsPropConfig};
pub use schedule::LrSchedule;
pub use sgd::{Sgd, SgdConfig};
pub use state::{GroupHyper, OptimizerState};
