//! Profiles of the project's models: a `Sequential`, an [`Mlp`], a [`Cnn`] and a [`Gpt`]. Each
//! model lists its own layers (`Mlp::profile_layers`, `Cnn::profile_layers`,
//! `Gpt::profile_layers`, next to its forward pass); the profiler only runs them.

use nn::sequential::Sequential;
use tensor::Tensor;

use crate::cnn::Cnn;
use crate::error::Result;
use crate::gpt::Gpt;
use crate::mlp::Mlp;

use super::run::{profile, Profile, ProfileConfig, ProfileLayer};

/// Profile each layer of a `Sequential` (named by index, kinds inferred, FLOPs by
/// [`FlopRule::Auto`](super::FlopRule::Auto)).
pub fn profile_sequential(
    model: &Sequential,
    input: &Tensor,
    config: &ProfileConfig,
) -> Result<Profile> {
    let layers: Vec<ProfileLayer> = model
        .layers()
        .iter()
        .enumerate()
        .map(|(i, l)| ProfileLayer::new(i.to_string(), l.as_ref()))
        .collect();
    profile(&layers, input, config)
}

/// Profile an [`Mlp`] on `input` through the layers it lists ([`Mlp::profile_layers`]).
pub fn profile_mlp(mlp: &Mlp, input: &Tensor, config: &ProfileConfig) -> Result<Profile> {
    profile(&mlp.profile_layers(input.ndim()), input, config)
}

/// Profile a [`Cnn`] through the layers it lists ([`Cnn::profile_layers`]). `input` is
/// `(N, C, H, W)` or `(N, C*H*W)` (viewed as images, as the model's forward does).
pub fn profile_cnn(cnn: &Cnn, input: &Tensor, config: &ProfileConfig) -> Result<Profile> {
    let [c, h, w] = cnn.config().input_shape;
    let input = if input.ndim() == 2 && input.shape()[1] == c * h * w {
        input.reshape_to(&[input.shape()[0], c, h, w])?
    } else {
        input.clone()
    };
    profile(&cnn.profile_layers(), &input, config)
}

/// Profile a [`Gpt`] on the row-major `(batch, t)` token ids through the layers it lists
/// ([`Gpt::profile_layers`]: embeddings, each block, `ln_f`, `lm_head`).
pub fn profile_gpt(
    gpt: &Gpt,
    ids: &[usize],
    batch: usize,
    t: usize,
    config: &ProfileConfig,
) -> Result<Profile> {
    let layers = gpt.profile_layers(ids, batch, t)?;
    profile(&layers, &Tensor::zeros(&[batch, t]), config)
}
