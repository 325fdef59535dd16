//! Running the profile: [`ProfileLayer`]s applied in order, each timed forward and backward,
//! and the [`Profile`] table.

use std::fmt::Write;
use std::ops::Deref;
use std::time::{Duration, Instant};

use autograd::Variable;
use nn::Module;
use tensor::Tensor;

use crate::error::{ModelError, Result};

use super::flops::{count_flops, FlopRule};
use super::memory::graph_activation_bytes;

/// A profiled layer's module: the model's own (borrowed), or a small stateless adapter the
/// layer list owns (a flatten, a GPT's embeddings bound to their token ids).
pub enum LayerModule<'a> {
    /// A module of the model.
    Borrowed(&'a dyn Module),
    /// An adapter without parameters of its own.
    Owned(Box<dyn Module + 'a>),
}

impl<'a> Deref for LayerModule<'a> {
    type Target = dyn Module + 'a;

    fn deref(&self) -> &(dyn Module + 'a) {
        match self {
            LayerModule::Borrowed(m) => *m,
            LayerModule::Owned(m) => m.as_ref(),
        }
    }
}

/// One layer to profile: a name, an optional kind for the table, the module and its FLOP rule.
pub struct ProfileLayer<'a> {
    /// The layer's name (e.g. its index in a Sequential, or `blocks.3`).
    pub name: String,
    /// What the layer is (inferred from parameters and shapes when `None`).
    pub kind: Option<String>,
    /// The layer.
    pub module: LayerModule<'a>,
    /// How its forward FLOPs are counted.
    pub flops: FlopRule,
}

impl<'a> ProfileLayer<'a> {
    /// A layer with an inferred kind and [`FlopRule::Auto`].
    pub fn new(name: impl Into<String>, module: &'a dyn Module) -> ProfileLayer<'a> {
        ProfileLayer {
            name: name.into(),
            kind: None,
            module: LayerModule::Borrowed(module),
            flops: FlopRule::Auto,
        }
    }

    /// A layer that owns its (stateless) module, e.g. `ProfileLayer::owned("flatten",
    /// Box::new(Flatten::new()))`.
    pub fn owned(name: impl Into<String>, module: Box<dyn Module + 'a>) -> ProfileLayer<'a> {
        ProfileLayer {
            name: name.into(),
            kind: None,
            module: LayerModule::Owned(module),
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
