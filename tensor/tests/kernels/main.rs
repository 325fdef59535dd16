//! Grader tests of the fused kernels: softmax, log-softmax, layer norm, cross-entropy and the causal
//! attention softmax.
//!
//! Each kernel is checked against hand-computed values and against its composition from
//! primitives written here with plain f64 loops. Each backward kernel is checked against central
//! finite differences of `L = sum(forward(x) * w)`, both of the f64 reference composition (tight
//! tolerance) and of the f32 kernel itself (loose tolerance), with `grad_y = w`.

mod causal_softmax;
mod cross_entropy;
mod determinism;
mod helpers;
mod layer_norm;
mod softmax;
