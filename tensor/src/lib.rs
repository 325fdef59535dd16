//! # tensor: n-dimensional arrays for deep learning (chapter 1)
//!
//! A [`Tensor`] is an n-d array of `f32` with cheap clones and views. This crate knows nothing
//! about gradients: it provides the forward computations *and* the backward kernels that the
//! `autograd` crate calls. Table of contents:
//!
//! | module | concept |
//! |---|---|
//! | [`error`] | `TensorError`: every failure names the op and the shapes |
//! | [`tensor`] | the type, constructors, inspection |
//! | [`random`] | seeded random tensors |
//! | [`broadcast`] | NumPy broadcasting rules and `sum_to_shape` (its undo) |
//! | [`shape`] | reshape, transpose, permute, squeeze, concat, stack, narrow, index_select, split |
//! | [`elementwise`] | arithmetic, math functions, comparisons, where / masked_fill |
//! | [`activation`] | relu, sigmoid, tanh, gelu and their backward kernels |
//! | [`gelu_poly`] | GELU and its derivative over tensors by fitted polynomials (exact form in the left tail) |
//! | [`reduce`] | sum, mean, max, min, argmax, var along an axis |
//! | [`gemm`] | the one GEMM entry point every matrix product goes through |
//! | [`small_gemm`] | the product for small operands (attention blocks, small batches): register blocks, no packing |
//! | [`gemm_i8`] | the int8 GEMM (`i32` exact; VNNI, AVX2, scalar) and the fused int8 linear layer |
//! | [`matmul`] | 2-D and batched matmul with broadcast batch dims |
//! | [`softmax`] | softmax and log-softmax (max-shifted) with backward kernels |
//! | [`layer_norm`] | layer norm over the last axis, caching mean and 1/std |
//! | [`cross_entropy`] | fused log-softmax + NLL from logits with integer targets |
//! | [`distillation`] | fused knowledge-distillation loss (soft KL + hard cross-entropy) with backward |
//! | [`causal_softmax`] | causal masked softmax for attention scores |
//! | [`kv_attention`] | KV-cache decoding rows: query-key dot products and weighted sums of value rows |
//! | [`sdpa`] | fused scaled-dot-product attention (causal or not), forward and backward |
//! | [`conv`] | im2col / col2im for NCHW convolution |
//! | [`pool`] | max-pool and avg-pool forward and backward |
//! | [`quantize`] | affine int8 quantization (symmetric/asymmetric, per tensor/channel), range observer |
//! | [`display`] | NumPy-style printing |
//! | [`profile`] | time per op family (GEMM, attention, norm, activations, loss) for benchmarks |
//! | [`simd`] | the SIMD row toolkit: CPU dispatch, vectorizable `exp`, lane reductions, row drivers |

pub mod activation;
pub mod broadcast;
pub mod causal_softmax;
pub mod conv;
pub mod cross_entropy;
pub mod display;
pub mod distillation;
pub mod elementwise;
pub mod error;
pub mod gelu_poly;
pub mod gemm;
pub mod gemm_i8;
pub mod kv_attention;
pub mod layer_norm;
pub mod matmul;
pub mod pool;
pub mod profile;
pub mod quantize;
pub mod random;
pub mod reduce;
pub mod sdpa;
pub mod shape;
pub mod simd;
pub mod small_gemm;
pub mod softmax;
pub mod tensor;

pub use error::{Result, TensorError};
pub use random::{TensorRng, DEFAULT_SEED};
pub use tensor::Tensor;
