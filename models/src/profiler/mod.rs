//! The profiler: where a model's parameters, FLOPs, memory and time go, layer by layer.
//!
//! It runs a stack of layers (an `nn::Sequential`, or any list of modules such as a GPT's
//! blocks) one layer at a time on the layer's actual input (the previous layer's output), and for
//! each layer reports:
//!
//! - **parameters**: the number of trainable scalars;
//! - **forward FLOPs**, counted analytically from the shapes by a [`FlopRule`]. Counted: the
//!   multiply-adds of matmul-like ops, two FLOPs each: `Linear` (`2 * rows * in * out`), `Conv2d`
//!   (`2 * N * OH * OW * O * C/groups * KH * KW`), and for transformer blocks the token-wise
//!   projections plus the attention matmuls `Q K^T` and `A V` over the full `T x T` square
//!   (`4 * B * T^2 * C`; a causal kernel skips about half of it). Not counted: bias adds,
//!   activations, normalisation, softmax, pooling, reshapes (memory-bound: their cost shows in
//!   the measured time, not in FLOPs);
//! - **activation memory**: the bytes the layer's autograd graph keeps alive until backward. In
//!   this autograd every graph node holds its output, so this is the sum over the layer's op
//!   nodes (read from [`autograd::to_dot`]) that are not views (transpose, reshape, permute,
//!   expand, slice, (un)squeeze share their input's buffer), plus constant tensors the graph
//!   holds (dropout masks), plus the im2col columns a convolution saves and the argmax indices a
//!   max-pool saves. Small per-row caches (layer-norm statistics, attention log-sum-exp) are not
//!   counted;
//! - **measured forward and backward time**: the layer's forward on its input, then its backward
//!   from a ones upstream gradient (which computes the parameter gradients and, except for the
//!   first layer, the input gradient, as in a real backward pass), after `warmup` runs, the
//!   median of `repeats` runs.
//!
//! The model is left as it was found: parameter gradients and buffers (BatchNorm running
//! statistics) are restored afterwards. Dropout generators do advance.
//!
//! Entry points: [`profile`] for any list of [`ProfileLayer`]s, [`profile_sequential`], and
//! [`profile_mlp`], [`profile_cnn`], [`profile_gpt`], which run the layer list each model gives
//! of itself (`Mlp::profile_layers`, `Cnn::profile_layers`, `Gpt::profile_layers`: the model's
//! own modules in forward order, activations as layers of their own, dropout left out). The
//! profiler never rebuilds a model, so a new layer in a model shows in its profile with no
//! change here. A parameter shared by two layers (a tied head) is counted once, in the first
//! layer that uses it.

mod flops;
mod memory;
mod models;
mod run;

pub use flops::{attention_flops, conv2d_flops, count_flops, linear_flops, FlopRule};
pub use memory::graph_activation_bytes;
pub use models::{profile_cnn, profile_gpt, profile_mlp, profile_sequential};
pub use run::{profile, LayerModule, LayerProfile, Profile, ProfileConfig, ProfileLayer};
