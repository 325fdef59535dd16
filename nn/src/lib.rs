//! # nn: layers, losses and models' building blocks (chapter 3)
//!
//! Everything here is built from `autograd` ops, so every layer's gradient is exact and checked
//! by `gradcheck`. Table of contents:
//!
//! | module | concept |
//! |---|---|
//! | [`module`] | the `Module` trait: forward, named parameters, train/eval, state dicts |
//! | [`error`] | `NnError` |
//! | [`init`] | seeded weight initialisation (PyTorch's defaults) |
//! | [`linear`] | `Linear` (weight `(out, in)`), quantizable in place for int8 inference |
//! | [`quantized_linear`] | `QuantizedLinear`: int8 weights and activations, int8 GEMM, calibration |
//! | [`low_rank`] | `LowRankLinear`: a `Linear` factorized by truncated SVD |
//! | [`flatten`] | `Flatten` |
//! | [`dropout`] | `Dropout` (inverted, seeded) |
//! | [`activation`] | ReLU, LeakyReLU, GELU, Sigmoid, Tanh, Softmax, LogSoftmax as modules |
//! | [`sequential`] | `Sequential` of boxed modules |
//! | [`loss`] | MSE, cross-entropy, NLL, BCE, BCE-with-logits |
//! | [`distillation`] | knowledge-distillation loss (teacher soft targets + labels) |
//! | [`embedding`] | `Embedding` with range-checked indices |
//! | [`positional`] | learned and sinusoidal positional encodings |
//! | [`layer_norm`] | `LayerNorm` |
//! | [`batch_norm`] | `BatchNorm1d`, `BatchNorm2d` |
//! | [`attention`] | `MultiHeadAttention` with one typed mask convention; `KvCache` (one per sequence for batched decoding) |
//! | [`transformer`] | pre-norm `TransformerBlock` |
//! | [`conv`] | `Conv2d` (im2col + GEMM) |
//! | [`prune`] | sparsity, magnitude pruning (global / per layer) and `Masks` |
//! | [`pool`] | `MaxPool2d`, `AvgPool2d`, `AdaptiveAvgPool2d` |

pub mod activation;
pub mod attention;
pub mod batch_norm;
pub mod conv;
pub mod distillation;
pub mod dropout;
pub mod embedding;
pub mod error;
pub mod flatten;
pub mod init;
pub mod layer_norm;
pub mod linear;
pub mod loss;
pub mod low_rank;
pub mod module;
pub mod pool;
pub mod positional;
pub mod prune;
pub mod quantized_linear;
pub mod sequential;
pub mod transformer;

pub use distillation::{distillation_loss, DistillationLoss};
pub use error::{NnError, Result};
pub use module::Module;
