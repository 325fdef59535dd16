//! Profiles of the project's models: a `Sequential`, an [`Mlp`], a [`Cnn`] and a [`Gpt`], each
//! as its list of layers.

use std::collections::HashMap;

use autograd::Variable;
use nn::batch_norm::BatchNorm2d;
use nn::conv::{Conv2d, Conv2dConfig};
use nn::flatten::Flatten;
use nn::linear::Linear;
use nn::pool::{AvgPool2d, MaxPool2d};
use nn::sequential::Sequential;
use nn::Module;
use tensor::Tensor;

use crate::cnn::{Cnn, CnnLayer};
use crate::error::{ModelError, Result};
use crate::gpt::Gpt;
use crate::mlp::{Activation, Mlp};

use super::*;

/// Profile each layer of a `Sequential` (named by index, kinds inferred, FLOPs by
/// [`FlopRule::Auto`]).
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

/// An activation function as a layer of its own (so its time shows in the profile).
struct ActivationLayer(Activation);

impl Module for ActivationLayer {
    fn forward(&self, input: &Variable) -> nn::Result<Variable> {
        self.0.apply(input)
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        Vec::new()
    }
}

/// Owned layers (rebuilt around a model's parameters) with names and optional kinds.
type Stack = Vec<(String, Option<String>, Box<dyn Module>)>;

fn profile_stack(stack: &Stack, input: &Tensor, config: &ProfileConfig) -> Result<Profile> {
    let layers: Vec<ProfileLayer> = stack
        .iter()
        .map(|(name, kind, module)| ProfileLayer {
            name: name.clone(),
            kind: kind.clone(),
            module: module.as_ref(),
            flops: FlopRule::Auto,
        })
        .collect();
    profile(&layers, input, config)
}

/// The same `Linear` (sharing its parameters).
fn share_linear(l: &Linear) -> Result<Linear> {
    Ok(Linear::from_weights(l.weight.clone(), l.bias.clone())?)
}

/// Profile an [`Mlp`]: `flatten` (for inputs with more than two dims), then `layers.{i}` with
/// `act.{i}` between them. The layers share the model's parameters; dropout is left out.
pub fn profile_mlp(mlp: &Mlp, input: &Tensor, config: &ProfileConfig) -> Result<Profile> {
    let act = mlp.config().activation;
    let mut stack: Stack = Vec::new();
    if input.ndim() > 2 {
        stack.push(("flatten".into(), None, Box::new(Flatten::new())));
    }
    let n = mlp.layers().len();
    for (i, l) in mlp.layers().iter().enumerate() {
        stack.push((format!("layers.{i}"), None, Box::new(share_linear(l)?)));
        if i + 1 < n {
            stack.push((
                format!("act.{i}"),
                Some(act.name().into()),
                Box::new(ActivationLayer(act)),
            ));
        }
    }
    profile_stack(&stack, input, config)
}

/// Profile a [`Cnn`]: `features.{i}` as configured, `flatten`, then `classifier.{j}` with
/// activations between them. The stack is rebuilt around the model's own parameters (its layers
/// are private); BatchNorm layers get running statistics of their own (so the model's are never
/// touched) and run in training mode; dropout is left out. `input` is `(N, C, H, W)` or
/// `(N, C*H*W)`.
pub fn profile_cnn(cnn: &Cnn, input: &Tensor, config: &ProfileConfig) -> Result<Profile> {
    let cfg = cnn.config();
    let [c0, h0, w0] = cfg.input_shape;
    let input = if input.ndim() == 2 && input.shape()[1] == c0 * h0 * w0 {
        input.reshape_to(&[input.shape()[0], c0, h0, w0])?
    } else {
        input.clone()
    };
    let params: HashMap<String, Variable> = cnn.named_parameters().into_iter().collect();
    let get = |name: String| {
        params
            .get(&name)
            .cloned()
            .ok_or_else(|| ModelError::Invalid {
                op: "profile_cnn",
                reason: format!("the model has no parameter '{name}'"),
            })
    };
    let mut stack: Stack = Vec::new();
    let mut c = c0;
    for (i, layer) in cfg.features.iter().enumerate() {
        let name = format!("features.{i}");
        let (kind, module): (Option<String>, Box<dyn Module>) = match *layer {
            CnnLayer::Conv {
                out_channels,
                kernel_size,
                stride,
                padding,
            } => {
                let bias = params.get(&format!("{name}.bias")).cloned();
                let conv_cfg = Conv2dConfig::new(c, out_channels, kernel_size)
                    .stride(stride)
                    .padding(padding)
                    .bias(bias.is_some());
                c = out_channels;
                let weight = get(format!("{name}.weight"))?;
                (
                    None,
                    Box::new(Conv2d::from_weights(conv_cfg, weight, bias)?),
                )
            }
            CnnLayer::BatchNorm => {
                let mut bn = BatchNorm2d::new(c);
                bn.set_parameters(get(format!("{name}.weight"))?, get(format!("{name}.bias"))?)?;
                (Some("BatchNorm2d".into()), Box::new(bn))
            }
            CnnLayer::Act => (
                Some(cfg.activation.name().into()),
                Box::new(ActivationLayer(cfg.activation)),
            ),
            CnnLayer::MaxPool(k) => (Some("MaxPool2d".into()), Box::new(MaxPool2d::new(k))),
            CnnLayer::AvgPool(k) => (Some("AvgPool2d".into()), Box::new(AvgPool2d::new(k))),
        };
        stack.push((name, kind, module));
    }
    stack.push(("flatten".into(), None, Box::new(Flatten::new())));
    for (j, l) in cnn.classifier().iter().enumerate() {
        if j > 0 {
            stack.push((
                format!("act.{}", j - 1),
                Some(cfg.activation.name().into()),
                Box::new(ActivationLayer(cfg.activation)),
            ));
        }
        stack.push((format!("classifier.{j}"), None, Box::new(share_linear(l)?)));
    }
    profile_stack(&stack, &input, config)
}

/// A GPT's token and position embeddings as one layer, bound to the token ids it looks up
/// (ids are not floats, so they cannot travel as the layer's input tensor: the input the
/// profiler passes only carries the `(B, T)` shape, checked against the ids).
struct GptEmbeddings<'a> {
    gpt: &'a Gpt,
    ids: &'a [usize],
    shape: [usize; 2],
}

impl Module for GptEmbeddings<'_> {
    fn forward(&self, input: &Variable) -> nn::Result<Variable> {
        if input.shape() != self.shape {
            return Err(nn::NnError::Invalid {
                op: "GptEmbeddings",
                reason: format!(
                    "the ids are bound as {:?} but the input has shape {:?}",
                    self.shape,
                    input.shape()
                ),
            });
        }
        let tok = self.gpt.wte.forward_ids(self.ids, &self.shape)?;
        self.gpt.wpe.forward_at(&tok, 0)
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        vec![
            ("wte.weight".into(), self.gpt.wte.weight.clone()),
            ("wpe.weight".into(), self.gpt.wpe.weight.clone()),
        ]
    }
}

/// Profile a [`Gpt`] on the row-major `(batch, t)` token ids: `embeddings` (token + position
/// lookups, no FLOPs counted), each block `h.{i}` ([`FlopRule::Transformer`]), `ln_f` and
/// `lm_head` (`2 * B * T * C * vocab_size`). The embedding dropout is left out. A tied head's
/// weight is counted once, in `embeddings`.
pub fn profile_gpt(
    gpt: &Gpt,
    ids: &[usize],
    batch: usize,
    t: usize,
    config: &ProfileConfig,
) -> Result<Profile> {
    gpt.check_ids("profile_gpt", ids, batch, t)?;
    let embeddings = GptEmbeddings {
        gpt,
        ids,
        shape: [batch, t],
    };
    let mut layers = vec![ProfileLayer::new("embeddings", &embeddings)
        .kind("wte + wpe")
        .flops(FlopRule::Uncounted)];
    for (i, block) in gpt.blocks.iter().enumerate() {
        layers.push(
            ProfileLayer::new(format!("h.{i}"), block)
                .kind("TransformerBlock")
                .flops(FlopRule::Transformer),
        );
    }
    layers.push(ProfileLayer::new("ln_f", &gpt.ln_f).kind("LayerNorm"));
    let head = format!(
        "Linear {}->{}{}",
        gpt.config().n_embd,
        gpt.config().vocab_size,
        if gpt.config().tie_weights {
            " (tied to wte)"
        } else {
            ""
        }
    );
    layers.push(ProfileLayer::new("lm_head", &gpt.lm_head).kind(head));
    profile(&layers, &Tensor::zeros(&[batch, t]), config)
}
