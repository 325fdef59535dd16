//! `BatchNorm1d` and `BatchNorm2d`: normalise each channel with statistics of the batch.
//!
//! In training mode each channel `c` is normalised with the mean and the *biased* variance of all
//! its values in the batch (over `N`, and `L` or `H, W`), then scaled and shifted by learned
//! `weight[c]` and `bias[c]`. The layer also keeps running estimates, updated after each training
//! batch with `momentum` (0.1) and the *unbiased* variance, as PyTorch does:
//!
//! `running = (1 - momentum) * running + momentum * batch_statistic`.
//!
//! In eval mode those running statistics replace the batch ones, so a prediction does not depend
//! on the other images of its batch. `running_mean`, `running_var` and `num_batches_tracked` are
//! buffers: saved in the state dict, never trained.
//!
//! Everything is composed from autograd ops (mean, sub, mul, pow), so the gradient is the exact
//! one, through the batch mean and variance. Initialisation: weight ones, bias zeros, running
//! mean zeros, running var ones, `eps = 1e-5`.

use autograd::Variable;
use tensor::Tensor;

use crate::error::{NnError, Result};
use crate::module::Module;

/// The default momentum of the running statistics.
pub const DEFAULT_MOMENTUM: f32 = 0.1;
/// The default `eps` added to the variance.
pub const DEFAULT_EPS: f32 = 1e-5;

/// Batch normalisation of `x` `(N, C, ...)` over every dim but the channel dim 1 (PyTorch's
/// `F.batch_norm`). In training, normalise with the batch mean and biased variance and update
/// `running_mean` / `running_var` (shape `(C)`, leaves) in place with `momentum` and the
/// unbiased variance; otherwise normalise with the running statistics.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm(
    x: &Variable,
    running_mean: &Variable,
    running_var: &Variable,
    weight: Option<&Variable>,
    bias: Option<&Variable>,
    training: bool,
    momentum: f32,
    eps: f32,
) -> Result<Variable> {
    let shape = x.shape();
    let c = running_mean.numel();
    if shape.len() < 2 || shape[1] != c {
        return Err(NnError::Invalid {
            op: "batch_norm",
            reason: format!("input of shape {shape:?} must be (N, {c}, ...) for {c} channels"),
        });
    }
    let per_channel = x.numel() / c.max(1);
    if training && per_channel <= 1 {
        return Err(NnError::Invalid {
            op: "batch_norm",
            reason: format!(
                "expected more than 1 value per channel when training, got input of shape \
                 {shape:?}"
            ),
        });
    }
    batch_norm_formula(
        x,
        running_mean,
        running_var,
        weight,
        bias,
        training,
        momentum,
        eps,
    )
}

/// The body of [`batch_norm`] for checked inputs: `x` is `(N, C, ...)` with more than one value
/// per channel when training, and the running statistics have shape `(C)`.
#[allow(clippy::too_many_arguments)]
fn batch_norm_formula(
    x: &Variable,
    running_mean: &Variable,
    running_var: &Variable,
    weight: Option<&Variable>,
    bias: Option<&Variable>,
    training: bool,
    momentum: f32,
    eps: f32,
) -> Result<Variable> {
    // HINT: reduce over every dim except 1 with keepdim, so the statistics broadcast back.
    // HINT: update the running statistics on tensor values (outside the graph), with the unbiased
    // HINT: variance.
    // BEGIN SOLUTION
    let shape = x.shape();
    let c = shape[1];
    let per_channel = x.numel() / c;
    let mut stat_shape = vec![1; shape.len()];
    stat_shape[1] = c;
    let axes: Vec<isize> = (0..shape.len() as isize).filter(|&d| d != 1).collect();
    let mean_over = |v: &Variable| -> Result<Variable> {
        let mut m = v.clone();
        for &a in &axes {
            m = m.mean(a, true)?;
        }
        Ok(m)
    };
    let (centered, var) = if training {
        let mean = mean_over(x)?;
        let centered = x.sub(&mean)?;
        // The biased variance normalises; the running statistics live outside the graph (plain
        // tensor arithmetic on the values).
        let var = mean_over(&centered.mul(&centered)?)?;
        {
            let m = per_channel as f32;
            let batch_mean = mean.value().reshape_to(&[c])?;
            let unbiased = var.value().reshape_to(&[c])?.mul_scalar(m / (m - 1.0));
            let rm = running_mean.value().mul_scalar(1.0 - momentum);
            let rv = running_var.value().mul_scalar(1.0 - momentum);
            running_mean.set_value(rm.add(&batch_mean.mul_scalar(momentum))?)?;
            running_var.set_value(rv.add(&unbiased.mul_scalar(momentum))?)?;
        }
        (centered, var)
    } else {
        let mean = Variable::constant(running_mean.value().reshape_to(&stat_shape)?);
        let var = Variable::constant(running_var.value().reshape_to(&stat_shape)?);
        (x.sub(&mean)?, var)
    };
    let mut y = centered.mul(&var.add_scalar(eps)?.powf(-0.5)?)?;
    if let Some(w) = weight {
        y = y.mul(&w.reshape_to(&stat_shape)?)?;
    }
    if let Some(b) = bias {
        y = y.add(&b.reshape_to(&stat_shape)?)?;
    }
    Ok(y)
    // END SOLUTION
}

/// The parameters, buffers and settings BatchNorm1d and BatchNorm2d share.
struct BatchNormState {
    weight: Variable,
    bias: Variable,
    running_mean: Variable,
    running_var: Variable,
    num_batches_tracked: Variable,
    momentum: f32,
    eps: f32,
    training: bool,
}

impl BatchNormState {
    fn new(num_features: usize) -> BatchNormState {
        BatchNormState {
            weight: Variable::parameter(Tensor::ones(&[num_features])),
            bias: Variable::parameter(Tensor::zeros(&[num_features])),
            running_mean: Variable::constant(Tensor::zeros(&[num_features])),
            running_var: Variable::constant(Tensor::ones(&[num_features])),
            num_batches_tracked: Variable::constant(Tensor::scalar(0.0)),
            momentum: DEFAULT_MOMENTUM,
            eps: DEFAULT_EPS,
            training: true,
        }
    }

    fn forward(
        &self,
        layer: &'static str,
        dims: &str,
        ndims: &[usize],
        x: &Variable,
    ) -> Result<Variable> {
        let c = self.weight.numel();
        let shape = x.shape();
        if !ndims.contains(&shape.len()) || shape[1] != c {
            return Err(NnError::Invalid {
                op: layer,
                reason: format!("input must be {dims} with C = {c}, got shape {shape:?}"),
            });
        }
        let y = batch_norm(
            x,
            &self.running_mean,
            &self.running_var,
            Some(&self.weight),
            Some(&self.bias),
            self.training,
            self.momentum,
            self.eps,
        )
        .map_err(|e| match e {
            NnError::Invalid { reason, .. } => NnError::Invalid { op: layer, reason },
            other => other,
        })?;
        if self.training {
            let n = self.num_batches_tracked.value().item()?;
            self.num_batches_tracked
                .set_value(Tensor::scalar(n + 1.0))?;
        }
        Ok(y)
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        vec![
            ("weight".to_string(), self.weight.clone()),
            ("bias".to_string(), self.bias.clone()),
        ]
    }

    fn named_buffers(&self) -> Vec<(String, Variable)> {
        vec![
            ("running_mean".to_string(), self.running_mean.clone()),
            ("running_var".to_string(), self.running_var.clone()),
            (
                "num_batches_tracked".to_string(),
                self.num_batches_tracked.clone(),
            ),
        ]
    }
}

macro_rules! batch_norm_layer {
    ($name:ident, $dims:expr, $ndims:expr, $doc:expr) => {
        #[doc = $doc]
        pub struct $name {
            state: BatchNormState,
        }

        impl $name {
            /// A layer for `num_features` channels (weight ones, bias zeros, momentum 0.1,
            /// eps 1e-5), in training mode.
            pub fn new(num_features: usize) -> $name {
                $name {
                    state: BatchNormState::new(num_features),
                }
            }

            /// The same layer with another momentum for the running statistics.
            pub fn with_momentum(mut self, momentum: f32) -> $name {
                self.state.momentum = momentum;
                self
            }

            /// The same layer with another `eps`.
            pub fn with_eps(mut self, eps: f32) -> $name {
                self.state.eps = eps;
                self
            }

            /// The scale per channel, shape `(C)`.
            pub fn weight(&self) -> &Variable {
                &self.state.weight
            }

            /// The shift per channel, shape `(C)`.
            pub fn bias(&self) -> &Variable {
                &self.state.bias
            }

            /// The running mean per channel (a buffer).
            pub fn running_mean(&self) -> Tensor {
                self.state.running_mean.value()
            }

            /// The running (unbiased) variance per channel (a buffer).
            pub fn running_var(&self) -> Tensor {
                self.state.running_var.value()
            }

            /// How many training batches updated the running statistics.
            pub fn num_batches_tracked(&self) -> usize {
                self.state
                    .num_batches_tracked
                    .value()
                    .item()
                    .map(|v| v as usize)
                    .unwrap_or(0)
            }

            /// Use the given parameters (shape `(C)` each) instead of the initial ones.
            pub fn set_parameters(&mut self, weight: Variable, bias: Variable) -> Result<()> {
                let c = self.state.weight.shape();
                if weight.shape() != c || bias.shape() != c {
                    return Err(NnError::Invalid {
                        op: stringify!($name),
                        reason: format!(
                            "weight and bias must have shape {c:?}, got {:?} and {:?}",
                            weight.shape(),
                            bias.shape()
                        ),
                    });
                }
                self.state.weight = weight;
                self.state.bias = bias;
                Ok(())
            }

            /// Whether the layer uses batch statistics (training) or running ones (eval).
            pub fn is_training(&self) -> bool {
                self.state.training
            }
        }

        impl Module for $name {
            fn forward(&self, input: &Variable) -> Result<Variable> {
                self.state.forward(stringify!($name), $dims, $ndims, input)
            }

            fn named_parameters(&self) -> Vec<(String, Variable)> {
                self.state.named_parameters()
            }

            fn named_buffers(&self) -> Vec<(String, Variable)> {
                self.state.named_buffers()
            }

            fn set_training(&mut self, training: bool) {
                self.state.training = training;
            }
        }
    };
}

batch_norm_layer!(
    BatchNorm1d,
    "(N, C) or (N, C, L)",
    &[2, 3],
    "Batch normalisation of `(N, C)` or `(N, C, L)` inputs, per channel `C`."
);
batch_norm_layer!(
    BatchNorm2d,
    "(N, C, H, W)",
    &[4],
    "Batch normalisation of `(N, C, H, W)` images, per channel `C`."
);
