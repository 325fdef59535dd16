//! # models: the layer where users train things (chapter 6)
//!
//! | module | concept |
//! |---|---|
//! | [`error`] | `ModelError` |
//! | [`mlp`] | `Mlp`: a stack of Linear layers |
//! | [`cnn`] | `Cnn`: LeNet-5 by default, conv/pool/BatchNorm stacks by config |
//! | [`gpt`] | `Gpt` and `GptConfig`: a character- or token-level transformer language model |
//! | [`generate`] | sampling with a KV cache (and without, for the equality test); several prompts decoded together (`generate_batch`) |
//! | [`checkpoint`] | safetensors checkpoints with nanoGPT names and the config in the metadata |
//! | [`trainer`] | the training loop: progress, evaluation, history, NaN stop, checkpoint and resume |
//! | [`doctor`] | the seven checks that tell why a model does not learn, and an LR range test |
//! | [`runtime`] | process-level tuning for training binaries (allocator) |
//! | [`compress`] | pruning (masks, whole neurons), low-rank factorization; distillation lives in `nn` |
//! | [`profiler`] | per-layer parameters, FLOPs, activation memory and measured time |
//! | [`quantize`] | whole-model int8: `Mlp`/`Cnn`/`Gpt` converted for inference, calibration, int8 checkpoints |

pub mod checkpoint;
pub mod cnn;
pub mod compress;
pub mod doctor;
pub mod error;
pub mod generate;
pub mod gpt;
pub mod mlp;
pub mod profiler;
pub mod quantize;
pub mod runtime;
pub mod trainer;

pub use error::{ModelError, Result};
