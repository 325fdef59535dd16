//! Differentiable ops on [`Variable`]. Each op computes its forward with `tensor` and records a
//! named `grad_fn` struct whose `backward` calls `tensor`'s kernels: one struct per op (ops
//! whose backward is the same formula, such as `maximum`/`minimum`, share one and name themselves).
//!
//! | file | ops |
//! |---|---|
//! | [`elementwise`] | add, sub, mul, div, pow, maximum, minimum, where, masked_fill, scalar ops |
//! | [`unary`] | neg, exp, log, sqrt, abs, clamp, relu, leaky_relu, sigmoid, tanh, gelu |
//! | [`shape`] | reshape, transpose, permute, squeeze, unsqueeze, broadcast_to, cat, stack, slice, index_select, split |
//! | [`reduce`] | sum, mean, max, min, var |
//! | [`matmul`] | 2-D and batched matmul |
//! | [`fused`] | softmax, log_softmax, layer_norm, cross_entropy, causal_softmax, bias_gelu |
//! | [`distillation`] | the fused knowledge-distillation loss (soft KL + hard cross-entropy) |
//! | [`conv`] | conv2d (im2col + GEMM), max_pool2d, avg_pool2d |
//! | [`attention`] | fused scaled-dot-product attention, on q/k/v or on a packed `(B, T, 3C)` projection |

pub mod attention;
pub mod conv;
pub mod distillation;
pub mod elementwise;
pub mod fused;
pub mod matmul;
pub mod reduce;
pub mod shape;
pub mod unary;

use tensor::Tensor;

use crate::backward::non_finite_kind;
use crate::error::{AutogradError, Result};
use crate::grad_mode::{is_anomaly_enabled, is_grad_enabled};
use crate::variable::{GradFn, Variable};

/// Wrap an op's output: record `grad_fn` when grad mode is on and some input requires grad;
/// in anomaly mode, refuse a non-finite output and name the op.
pub(crate) fn record<F: GradFn + 'static>(
    value: Tensor,
    inputs: &[&Variable],
    grad_fn: F,
) -> Result<Variable> {
    if is_anomaly_enabled() && !value.all_finite() {
        return Err(AutogradError::Anomaly {
            op: grad_fn.name(),
            phase: "forward",
            what: non_finite_kind(&value),
            shapes: inputs.iter().map(|v| v.shape()).collect(),
        });
    }
    if is_grad_enabled() && inputs.iter().any(|v| v.requires_grad()) {
        Ok(Variable::from_op(value, Box::new(grad_fn)))
    } else {
        Ok(Variable::constant(value))
    }
}

/// Record an op defined outside this crate (a fused kernel of a layer): `grad_fn` names the op,
/// lists `inputs` in the order its `backward` returns their gradients, and is kept only when
/// grad mode is on and an input requires grad. Anomaly mode checks the output like any op.
pub fn custom_op<F: GradFn + 'static>(
    value: Tensor,
    inputs: &[&Variable],
    grad_fn: F,
) -> Result<Variable> {
    record(value, inputs, grad_fn)
}

/// The gradient for `input` if it requires one, computed lazily.
pub(crate) fn grad_if(
    input: &Variable,
    f: impl FnOnce() -> tensor::Result<Tensor>,
) -> Result<Option<Tensor>> {
    if input.requires_grad() {
        Ok(Some(f()?))
    } else {
        Ok(None)
    }
}
