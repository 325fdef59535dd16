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
//! Entry points: [`profile`] for any list of modules, [`profile_sequential`], [`profile_mlp`]
//! and [`profile_cnn`] (their stacks rebuilt around the model's own parameters, activations as
//! layers of their own, dropout left out), and [`profile_gpt`] (embeddings, each block, the
//! final norm and the head). A parameter shared by two layers (a tied head) is counted once,
//! in the first layer that uses it.

use std::fmt::Write;
use std::time::{Duration, Instant};

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

/// How a layer's forward FLOPs are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlopRule {
    /// From the parameters and shapes of a single layer: a 2-D `weight` `(out, in)` taking
    /// `(..., in)` to `(..., out)` is a Linear, a 4-D `weight` `(O, C/g, KH, KW)` producing
    /// `(N, O, OH, OW)` is a Conv2d; everything else counts 0.
    Auto,
    /// Every 2-D parameter is a weight applied to every row of the input (`rows = numel / last
    /// dim`): a feed-forward network or the projections of an attention layer.
    TokenWise,
    /// [`FlopRule::TokenWise`] plus the attention matmuls of a `(B, T, C)` input: `4 * B * T^2 * C`.
    Transformer,
    /// A number given by the caller.
    Fixed(u64),
    /// Not counted (0).
    Uncounted,
}

/// `2 * rows * in * out`: a Linear layer on `rows` rows.
pub fn linear_flops(rows: usize, in_features: usize, out_features: usize) -> u64 {
    // HINT: each output element is a dot product of in_features multiply-adds (2 FLOPs each), and
    // HINT: there are rows * out_features of them.
    // BEGIN SOLUTION
    2 * rows as u64 * in_features as u64 * out_features as u64
    // END SOLUTION
}

/// `2 * N * OH * OW * numel(weight)`: a Conv2d producing `(N, O, OH, OW)` with a weight
/// `(O, C/groups, KH, KW)` (each output element is one dot product of `C/groups * KH * KW`).
pub fn conv2d_flops(output_shape: &[usize], weight_shape: &[usize]) -> u64 {
    // HINT: each output element is one dot product of C/groups * KH * KW multiply-adds, so 2 * N *
    // HINT: OH * OW * numel(weight) (0 unless both shapes are 4-D).
    // BEGIN SOLUTION
    if output_shape.len() != 4 || weight_shape.len() != 4 {
        return 0;
    }
    let per_map = output_shape[0] as u64 * output_shape[2] as u64 * output_shape[3] as u64;
    2 * per_map * weight_shape.iter().product::<usize>() as u64
    // END SOLUTION
}

/// `4 * B * T^2 * C`: the two attention matmuls (`Q K^T` and `A V`, `2 * B * T * T * C` each)
/// over the full square, whatever the number of heads.
pub fn attention_flops(batch: usize, seq: usize, n_embd: usize) -> u64 {
    // HINT: Q K^T and A V each take T * T * C multiply-adds per sequence (2 FLOPs each, heads
    // HINT: do not change the total), so 4 * B * T^2 * C in all.
    // BEGIN SOLUTION
    4 * batch as u64 * (seq as u64).pow(2) * n_embd as u64
    // END SOLUTION
}

/// The forward FLOPs of a layer with `params`, by `rule`, given its input and output shapes.
pub fn count_flops(
    rule: FlopRule,
    params: &[(String, Variable)],
    input: &[usize],
    output: &[usize],
) -> u64 {
    let token_wise = || {
        let c = input.last().copied().unwrap_or(0).max(1);
        let rows = input.iter().product::<usize>() / c;
        params
            .iter()
            .filter(|(_, p)| p.ndim() == 2)
            .map(|(_, p)| 2 * rows as u64 * p.numel() as u64)
            .sum::<u64>()
    };
    match rule {
        FlopRule::Auto => params
            .iter()
            .filter(|(n, _)| n == "weight" || n.ends_with(".weight"))
            .map(|(_, p)| {
                let w = p.shape();
                match w.len() {
                    2 if input.last() == Some(&w[1]) && output.last() == Some(&w[0]) => {
                        linear_flops(output.iter().product::<usize>() / w[0].max(1), w[1], w[0])
                    }
                    4 if input.len() == 4 && output.len() == 4 && output[1] == w[0] => {
                        conv2d_flops(output, &w)
                    }
                    _ => 0,
                }
            })
            .sum(),
        FlopRule::TokenWise => token_wise(),
        FlopRule::Transformer => {
            let attention = match input {
                [b, t, c] => attention_flops(*b, *t, *c),
                _ => 0,
            };
            token_wise() + attention
        }
        FlopRule::Fixed(n) => n,
        FlopRule::Uncounted => 0,
    }
}

/// Ops whose output is a view of their input (no new buffer).
const VIEW_OPS: [&str; 7] = [
    "TransposeBackward",
    "ReshapeBackward",
    "PermuteBackward",
    "ExpandBackward",
    "SliceBackward",
    "SqueezeBackward",
    "UnsqueezeBackward",
];

struct DotNode {
    label: String,
    shape: Vec<usize>,
    op: bool,
    constant: bool,
}

/// Parse one `n{id} [label="{name}\n{shape}", {style}];` line.
fn parse_node(line: &str) -> Option<(u64, DotNode)> {
    let rest = line.trim().strip_prefix('n')?;
    let (id, rest) = rest.split_once(' ')?;
    let id = id.parse().ok()?;
    let label_start = rest.find("label=\"")? + "label=\"".len();
    let label_end = label_start + rest[label_start..].find('"')?;
    let (name, shape) = rest[label_start..label_end].split_once("\\n")?;
    let shape = shape
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().ok())
        .collect::<Option<Vec<usize>>>()?;
    let style = &rest[label_end..];
    Some((
        id,
        DotNode {
            label: name.to_string(),
            shape,
            op: style.contains("shape=box"),
            constant: !style.contains("shape=box") && !style.contains("filled"),
        },
    ))
}

/// Parse one `n{from} -> n{to};` line.
fn parse_edge(line: &str) -> Option<(u64, u64)> {
    let (a, b) = line.trim().trim_end_matches(';').split_once(" -> ")?;
    Some((
        a.strip_prefix('n')?.parse().ok()?,
        b.strip_prefix('n')?.parse().ok()?,
    ))
}

/// The bytes the graph behind `output` keeps alive for backward, not counting `input` (the
/// layer's input leaf) or parameters: non-view op outputs, constants (masks), convolution
/// columns and max-pool indices. See the module docs for what is and is not counted.
pub fn graph_activation_bytes(output: &Variable, input: &Variable) -> usize {
    if !output.requires_grad() {
        // No graph: nothing is kept for a backward pass.
        return 0;
    }
    let dot = autograd::to_dot(output);
    let mut nodes = std::collections::HashMap::new();
    let mut edges: std::collections::HashMap<u64, Vec<u64>> = std::collections::HashMap::new();
    for line in dot.lines() {
        if line.contains(" -> ") {
            if let Some((from, to)) = parse_edge(line) {
                edges.entry(to).or_default().push(from);
            }
        } else if let Some((id, node)) = parse_node(line) {
            nodes.insert(id, node);
        }
    }
    let f32_bytes = std::mem::size_of::<f32>();
    let mut bytes = 0;
    for (id, node) in &nodes {
        let numel: usize = node.shape.iter().product();
        if node.constant {
            if *id != input.id() {
                bytes += numel * f32_bytes;
            }
            continue;
        }
        if !node.op || VIEW_OPS.contains(&node.label.as_str()) {
            continue;
        }
        bytes += numel * f32_bytes;
        match node.label.as_str() {
            "ConvolutionBackward" => {
                // im2col columns: (N, C*KH*KW, OH*OW); the weight is the op's second input.
                let weight = edges
                    .get(id)
                    .and_then(|e| e.get(1))
                    .and_then(|w| nodes.get(w));
                if let (Some(w), [n, o, oh, ow]) = (weight, node.shape.as_slice()) {
                    let ckk = w.shape.iter().product::<usize>() / (*o).max(1);
                    bytes += n * ckk * oh * ow * f32_bytes;
                }
            }
            "MaxPool2DBackward" => bytes += numel * std::mem::size_of::<u32>(),
            _ => {}
        }
    }
    bytes
}

/// One layer to profile: a name, an optional kind for the table, the module and its FLOP rule.
pub struct ProfileLayer<'a> {
    /// The layer's name (e.g. its index in a Sequential, or `blocks.3`).
    pub name: String,
    /// What the layer is (inferred from parameters and shapes when `None`).
    pub kind: Option<String>,
    /// The layer.
    pub module: &'a dyn Module,
    /// How its forward FLOPs are counted.
    pub flops: FlopRule,
}

impl<'a> ProfileLayer<'a> {
    /// A layer with an inferred kind and [`FlopRule::Auto`].
    pub fn new(name: impl Into<String>, module: &'a dyn Module) -> ProfileLayer<'a> {
        ProfileLayer {
            name: name.into(),
            kind: None,
            module,
            flops: FlopRule::Auto,
        }
    }

    /// The same layer with a given kind.
    pub fn kind(mut self, kind: impl Into<String>) -> ProfileLayer<'a> {
        self.kind = Some(kind.into());
        self
    }

    /// The same layer with a given FLOP rule.
    pub fn flops(mut self, rule: FlopRule) -> ProfileLayer<'a> {
        self.flops = rule;
        self
    }
}

/// How many times each layer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProfileConfig {
    /// Untimed runs first (caches, allocator, thread pool).
    pub warmup: usize,
    /// Timed runs; the median is reported.
    pub repeats: usize,
}

impl Default for ProfileConfig {
    fn default() -> ProfileConfig {
        ProfileConfig {
            warmup: 1,
            repeats: 5,
        }
    }
}

/// What one layer cost.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerProfile {
    /// The layer's name.
    pub name: String,
    /// What it is.
    pub kind: String,
    /// Its input shape.
    pub input_shape: Vec<usize>,
    /// Its output shape.
    pub output_shape: Vec<usize>,
    /// Trainable scalars (a parameter shared with an earlier layer is not counted again).
    pub params: usize,
    /// Forward FLOPs by its [`FlopRule`].
    pub flops: u64,
    /// Bytes its graph keeps for backward.
    pub activation_bytes: usize,
    /// Median measured forward time.
    pub forward: Duration,
    /// Median measured backward time (`None` when nothing in the layer needs a gradient).
    pub backward: Option<Duration>,
}

/// A layer-by-layer profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// One entry per layer, in order.
    pub layers: Vec<LayerProfile>,
    /// The timed runs behind each median.
    pub repeats: usize,
}

impl Profile {
    /// Total trainable scalars.
    pub fn params(&self) -> usize {
        self.layers.iter().map(|l| l.params).sum()
    }

    /// Total forward FLOPs.
    pub fn flops(&self) -> u64 {
        self.layers.iter().map(|l| l.flops).sum()
    }

    /// Total activation bytes.
    pub fn activation_bytes(&self) -> usize {
        self.layers.iter().map(|l| l.activation_bytes).sum()
    }

    /// The sum of the layers' median forward times.
    pub fn forward_time(&self) -> Duration {
        self.layers.iter().map(|l| l.forward).sum()
    }

    /// The sum of the layers' median backward times.
    pub fn backward_time(&self) -> Duration {
        self.layers.iter().filter_map(|l| l.backward).sum()
    }

    /// A plain-text table, one row per layer and a total row.
    pub fn table(&self) -> String {
        let headers = [
            "layer",
            "kind",
            "output",
            "params",
            "MFLOPs",
            "act KiB",
            "fwd us",
            "bwd us",
            "fwd GFLOP/s",
        ];
        let row = |name: &str,
                   kind: &str,
                   output: String,
                   params: usize,
                   flops: u64,
                   act: usize,
                   fwd: Duration,
                   bwd: Option<Duration>| {
            let gflops = if flops > 0 && fwd > Duration::ZERO {
                format!("{:.2}", flops as f64 / fwd.as_secs_f64() / 1e9)
            } else {
                "-".into()
            };
            vec![
                name.to_string(),
                kind.to_string(),
                output,
                params.to_string(),
                format!("{:.3}", flops as f64 / 1e6),
                format!("{:.1}", act as f64 / 1024.0),
                format!("{:.1}", fwd.as_secs_f64() * 1e6),
                bwd.map_or("-".into(), |b| format!("{:.1}", b.as_secs_f64() * 1e6)),
                gflops,
            ]
        };
        let mut rows: Vec<Vec<String>> = self
            .layers
            .iter()
            .map(|l| {
                row(
                    &l.name,
                    &l.kind,
                    format!("{:?}", l.output_shape),
                    l.params,
                    l.flops,
                    l.activation_bytes,
                    l.forward,
                    l.backward,
                )
            })
            .collect();
        rows.push(row(
            "total",
            "",
            String::new(),
            self.params(),
            self.flops(),
            self.activation_bytes(),
            self.forward_time(),
            Some(self.backward_time()),
        ));
        let widths: Vec<usize> = (0..headers.len())
            .map(|c| {
                rows.iter()
                    .map(|r| r[c].len())
                    .chain([headers[c].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let line = |cells: Vec<String>, out: &mut String| {
            let parts: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(c, s)| {
                    if c < 3 {
                        format!("{s:<w$}", w = widths[c])
                    } else {
                        format!("{s:>w$}", w = widths[c])
                    }
                })
                .collect();
            let _ = writeln!(out, "{}", parts.join("  ").trim_end());
        };
        line(headers.iter().map(|h| h.to_string()).collect(), &mut out);
        let _ = writeln!(
            out,
            "{}",
            "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
        );
        let n = rows.len();
        for (i, r) in rows.into_iter().enumerate() {
            if i + 1 == n {
                let _ = writeln!(
                    out,
                    "{}",
                    "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
                );
            }
            line(r, &mut out);
        }
        let _ = writeln!(
            out,
            "times: median of {} runs; FLOPs: matmul multiply-adds x2 (Linear, Conv2d, attention)",
            self.repeats
        );
        out
    }
}

/// What a layer probably is, from its parameters and shapes (for the table).
fn infer_kind(params: &[(String, Variable)], input: &[usize], output: &[usize]) -> String {
    let shapes: Vec<(String, Vec<usize>)> =
        params.iter().map(|(n, p)| (n.clone(), p.shape())).collect();
    let weight = shapes.iter().find(|(n, _)| n == "weight");
    let only_weight_bias = shapes.iter().all(|(n, _)| n == "weight" || n == "bias");
    if let (Some((_, w)), true) = (weight, only_weight_bias) {
        match w.len() {
            2 if input.last() == Some(&w[1]) && output.last() == Some(&w[0]) => {
                return format!("Linear {}->{}", w[1], w[0]);
            }
            4 if output.len() == 4 && output[1] == w[0] => {
                return format!(
                    "Conv2d {}->{} {}x{}",
                    input.get(1).copied().unwrap_or(0),
                    w[0],
                    w[2],
                    w[3]
                );
            }
            1 if input == output => return "normalisation".into(),
            2 => return format!("Embedding {}x{}", w[0], w[1]),
            _ => {}
        }
    }
    if !params.is_empty() {
        return format!("block ({} tensors)", params.len());
    }
    if input == output {
        "elementwise".into()
    } else if input.len() == 4
        && output.len() == 4
        && output[2] <= input[2]
        && output[3] <= input[3]
    {
        "pool".into()
    } else if input.iter().product::<usize>() == output.iter().product::<usize>() {
        "reshape".into()
    } else {
        "no params".into()
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// Profile `layers` applied in order to `input` (which does not require grad: it is data).
/// The model's parameter gradients and buffers are restored afterwards, even on error.
pub fn profile(layers: &[ProfileLayer], input: &Tensor, config: &ProfileConfig) -> Result<Profile> {
    if config.repeats == 0 {
        return Err(ModelError::Invalid {
            op: "profile",
            reason: "repeats must be at least 1".into(),
        });
    }
    let params: Vec<Variable> = layers.iter().flat_map(|l| l.module.parameters()).collect();
    let buffers: Vec<Variable> = layers
        .iter()
        .flat_map(|l| l.module.named_buffers().into_iter().map(|(_, b)| b))
        .collect();
    let saved_grads: Vec<Option<Tensor>> = params.iter().map(|p| p.grad()).collect();
    let saved_buffers: Vec<Tensor> = buffers.iter().map(|b| b.value()).collect();
    let result = profile_inner(layers, input, config);
    for (p, g) in params.iter().zip(saved_grads) {
        p.set_grad(g)?;
    }
    for (b, v) in buffers.iter().zip(saved_buffers) {
        b.set_value(v)?;
    }
    result
}

fn profile_inner(
    layers: &[ProfileLayer],
    input: &Tensor,
    config: &ProfileConfig,
) -> Result<Profile> {
    let mut current = input.clone();
    let mut out_profiles = Vec::with_capacity(layers.len());
    let mut counted = std::collections::HashSet::new();
    for (i, layer) in layers.iter().enumerate() {
        let params = layer.module.named_parameters();
        let mut forward = Vec::with_capacity(config.repeats);
        let mut backward = Vec::with_capacity(config.repeats);
        let mut first: Option<(Tensor, usize)> = None;
        for run in 0..config.warmup + config.repeats {
            // The first layer's input is data; later inputs need their gradient, as in a chain.
            let x = Variable::new(current.clone(), i > 0);
            let t0 = Instant::now();
            let out = layer.module.forward(&x)?;
            let fwd = t0.elapsed();
            if first.is_none() {
                first = Some((out.value(), graph_activation_bytes(&out, &x)));
            }
            let bwd = if out.requires_grad() {
                let seed = Tensor::ones(&out.shape());
                let t1 = Instant::now();
                out.backward_with(seed)?;
                Some(t1.elapsed())
            } else {
                None
            };
            for (_, p) in &params {
                p.zero_grad();
            }
            if run >= config.warmup {
                forward.push(fwd);
                backward.extend(bwd);
            }
        }
        let Some((output, activation_bytes)) = first else {
            continue;
        };
        let input_shape = current.shape().to_vec();
        let output_shape = output.shape().to_vec();
        out_profiles.push(LayerProfile {
            name: layer.name.clone(),
            kind: layer
                .kind
                .clone()
                .unwrap_or_else(|| infer_kind(&params, &input_shape, &output_shape)),
            params: params
                .iter()
                .filter(|(_, p)| counted.insert(p.id()))
                .map(|(_, p)| p.numel())
                .sum(),
            flops: count_flops(layer.flops, &params, &input_shape, &output_shape),
            activation_bytes,
            forward: median(forward),
            backward: (!backward.is_empty()).then(|| median(backward)),
            input_shape,
            output_shape,
        });
        current = output;
    }
    Ok(Profile {
        layers: out_profiles,
        repeats: config.repeats,
    })
}

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

/// A GPT's token and position embeddings as one layer (ids in, `(B, T, C)` out).
struct GptEmbeddings<'a>(&'a Gpt);

impl Module for GptEmbeddings<'_> {
    fn forward(&self, input: &Variable) -> nn::Result<Variable> {
        let ids = nn::embedding::ids_from_tensor(&input.value())?;
        let tok = self.0.wte.forward_ids(&ids, &input.shape())?;
        self.0.wpe.forward_at(&tok, 0)
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        vec![
            ("wte.weight".into(), self.0.wte.weight.clone()),
            ("wpe.weight".into(), self.0.wpe.weight.clone()),
        ]
    }
}

/// Profile a [`Gpt`] on token ids `(B, T)` (as `f32`): `embeddings` (token + position lookups,
/// no FLOPs counted), each block `h.{i}` ([`FlopRule::Transformer`]), `ln_f` and `lm_head`
/// (`2 * B * T * C * vocab_size`). The embedding dropout is left out. A tied head's weight is
/// counted once, in `embeddings`.
pub fn profile_gpt(gpt: &Gpt, ids: &Tensor, config: &ProfileConfig) -> Result<Profile> {
    let shape = ids.shape();
    if shape.len() != 2 {
        return Err(ModelError::Invalid {
            op: "profile_gpt",
            reason: format!("ids must be (B, T), got shape {shape:?}"),
        });
    }
    let flat = nn::embedding::ids_from_tensor(ids)?;
    gpt.check_ids("profile_gpt", &flat, shape[0], shape[1])?;
    let embeddings = GptEmbeddings(gpt);
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
    profile(&layers, ids, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_lines_parse() {
        let (id, n) = parse_node("  n12 [label=\"MatMulBackward\\n[4, 8]\", shape=box];").unwrap();
        assert_eq!(
            (id, n.label.as_str(), n.shape, n.op, n.constant),
            (12, "MatMulBackward", vec![4, 8], true, false)
        );
        let (_, n) = parse_node("  n3 [label=\"constant\\n[]\", shape=ellipse];").unwrap();
        assert!(n.constant && n.shape.is_empty());
        let (_, n) = parse_node(
            "  n4 [label=\"leaf (requires_grad)\\n[2]\", shape=ellipse, style=filled, fillcolor=lightblue];",
        )
        .unwrap();
        assert!(!n.constant && !n.op);
        assert_eq!(parse_edge("  n3 -> n12;"), Some((3, 12)));
    }

    #[test]
    fn flop_formulas() {
        assert_eq!(linear_flops(32, 784, 128), 2 * 32 * 784 * 128);
        assert_eq!(
            conv2d_flops(&[2, 6, 24, 24], &[6, 1, 5, 5]),
            2 * 2 * 24 * 24 * 6 * 25
        );
        assert_eq!(attention_flops(2, 16, 32), 4 * 2 * 256 * 32);
    }
}
