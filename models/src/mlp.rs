//! `Mlp`: a multi-layer perceptron, `Linear` layers with a nonlinearity (and optional dropout)
//! between them.
//!
//! `MlpConfig::new(&[784, 128, 64, 10])` builds `784 -> 128 -> 64 -> 10`: three `Linear` layers,
//! the activation after the first two, none after the last (its outputs are logits for a
//! cross-entropy loss). Inputs with more than two dims (`[N, 1, 28, 28]` images) are flattened to
//! `[N, 784]` inside the graph, so images can be fed as they come from the loader.
//!
//! Dropout here is [`SeededDropout`]: its masks are drawn from `(seed, draw count)` and the count
//! is a buffer of the model, so a checkpoint restores the exact mask sequence and a resumed run
//! continues bit-identically. The parameter count is computed from the model ([`Mlp::summary`]).

use std::fmt;

use autograd::Variable;
use nn::flatten::Flatten;
use nn::linear::Linear;
use nn::module::{prefixed, Module};
use nn::NnError;
use tensor::{Tensor, TensorRng};

use crate::error::{ModelError, Result};
use crate::profiler::ProfileLayer;

/// The nonlinearity between layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Activation {
    /// `max(x, 0)` (the default).
    #[default]
    ReLU,
    /// Exact GELU, `x * Phi(x)`.
    GELU,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
}

impl Activation {
    /// Apply the nonlinearity (one autograd op).
    pub fn apply(self, x: &Variable) -> nn::Result<Variable> {
        Ok(match self {
            Activation::ReLU => x.relu()?,
            Activation::GELU => x.gelu()?,
            Activation::Tanh => x.tanh()?,
            Activation::Sigmoid => x.sigmoid()?,
        })
    }

    /// PyTorch's module name (`"ReLU"`, `"GELU"`, `"Tanh"`, `"Sigmoid"`).
    pub fn name(self) -> &'static str {
        match self {
            Activation::ReLU => "ReLU",
            Activation::GELU => "GELU",
            Activation::Tanh => "Tanh",
            Activation::Sigmoid => "Sigmoid",
        }
    }
}

/// An activation is a layer without parameters (so a model's layer list can hold it, e.g. for
/// the profiler).
impl Module for Activation {
    fn forward(&self, input: &Variable) -> nn::Result<Variable> {
        self.apply(input)
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        Vec::new()
    }
}

/// Inverted dropout whose masks come from `(seed, draw count)`, with the count kept in a buffer
/// (`draws`, shape `[2]`: the count modulo 2^24 and the count divided by 2^24, both exact in
/// `f32`), so saving and loading the model's state dict restores the random stream.
pub struct SeededDropout {
    p: f32,
    seed: u64,
    draws: Variable,
    training: bool,
}

const DRAW_SPLIT: u64 = 1 << 24;

impl SeededDropout {
    /// Dropout with probability `p` in `[0, 1)`, masks seeded by `seed`, in training mode.
    pub fn new(p: f32, seed: u64) -> Result<SeededDropout> {
        if !(0.0..1.0).contains(&p) {
            return Err(ModelError::Invalid {
                op: "dropout",
                reason: format!("p must be in [0, 1), got {p}"),
            });
        }
        Ok(SeededDropout {
            p,
            seed,
            draws: Variable::constant(Tensor::zeros(&[2])),
            training: true,
        })
    }

    /// The drop probability.
    pub fn p(&self) -> f32 {
        self.p
    }

    /// How many masks were drawn so far.
    pub fn draws(&self) -> u64 {
        let v = self.draws.value().to_vec();
        v[0] as u64 + (v[1] as u64) * DRAW_SPLIT
    }

    fn set_draws(&self, n: u64) -> nn::Result<()> {
        let t = Tensor::from_vec(vec![(n % DRAW_SPLIT) as f32, (n / DRAW_SPLIT) as f32], &[2])?;
        Ok(self.draws.set_value(t)?)
    }

    /// The next mask: `1 / (1 - p)` with probability `1 - p`, else 0.
    fn next_mask(&self, shape: &[usize]) -> nn::Result<Tensor> {
        let n = self.draws();
        let mut rng = TensorRng::new(data::loader::derive_seed(self.seed, n));
        self.set_draws(n + 1)?;
        let (p, scale) = (self.p, 1.0 / (1.0 - self.p));
        let mut mask = rng.uniform(shape, 0.0, 1.0)?;
        for v in mask.as_mut_slice() {
            *v = if *v < p { 0.0 } else { scale };
        }
        Ok(mask)
    }
}

impl Module for SeededDropout {
    fn forward(&self, input: &Variable) -> nn::Result<Variable> {
        if !self.training || self.p == 0.0 {
            return Ok(input.clone());
        }
        let mask = self.next_mask(&input.shape())?;
        Ok(input.mul(&Variable::constant(mask))?)
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        Vec::new()
    }

    fn named_buffers(&self) -> Vec<(String, Variable)> {
        vec![("draws".to_string(), self.draws.clone())]
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

/// Everything that defines an [`Mlp`]: `MlpConfig::new(&[784, 128, 64, 10]).dropout(0.1)`.
#[derive(Clone, Debug, PartialEq)]
pub struct MlpConfig {
    /// Layer widths, input first, output last (at least two entries).
    pub sizes: Vec<usize>,
    /// The nonlinearity between layers (default ReLU).
    pub activation: Activation,
    /// Dropout probability after each hidden activation (default 0: none).
    pub dropout: f32,
    /// Whether the layers have biases (default true).
    pub bias: bool,
    /// Seeds the weights and the dropout masks (default `tensor::DEFAULT_SEED`).
    pub seed: u64,
}

impl MlpConfig {
    /// ReLU, no dropout, biases, the default seed.
    pub fn new(sizes: &[usize]) -> MlpConfig {
        MlpConfig {
            sizes: sizes.to_vec(),
            activation: Activation::ReLU,
            dropout: 0.0,
            bias: true,
            seed: tensor::DEFAULT_SEED,
        }
    }

    /// Set the activation.
    pub fn activation(mut self, activation: Activation) -> MlpConfig {
        self.activation = activation;
        self
    }

    /// Set the dropout probability.
    pub fn dropout(mut self, p: f32) -> MlpConfig {
        self.dropout = p;
        self
    }

    /// With or without biases.
    pub fn bias(mut self, bias: bool) -> MlpConfig {
        self.bias = bias;
        self
    }

    /// Set the seed.
    pub fn seed(mut self, seed: u64) -> MlpConfig {
        self.seed = seed;
        self
    }
}

/// A multi-layer perceptron: `(N, sizes[0])` (or `(N, ...)` flattening to it) to
/// `(N, sizes.last())` logits. Parameters are named `layers.{i}.weight` / `layers.{i}.bias`.
pub struct Mlp {
    config: MlpConfig,
    layers: Vec<Linear>,
    dropout: Option<SeededDropout>,
}

impl Mlp {
    /// Build the layers with PyTorch's default initialisation from `config.seed`. Errors on
    /// fewer than two sizes, a zero width or a dropout outside `[0, 1)`.
    pub fn new(config: MlpConfig) -> Result<Mlp> {
        if config.sizes.len() < 2 || config.sizes.contains(&0) {
            return Err(ModelError::Invalid {
                op: "Mlp",
                reason: format!(
                    "sizes must list at least an input and an output width, all positive, got {:?}",
                    config.sizes
                ),
            });
        }
        let mut rng = TensorRng::new(config.seed);
        let layers = config
            .sizes
            .windows(2)
            .map(|w| Linear::new(w[0], w[1], config.bias, &mut rng))
            .collect();
        let dropout = if config.dropout > 0.0 {
            // A stream of its own, independent of the weights'.
            Some(SeededDropout::new(config.dropout, rng.next_u64())?)
        } else {
            SeededDropout::new(config.dropout, 0)?; // validates p
            None
        };
        Ok(Mlp {
            config,
            layers,
            dropout,
        })
    }

    /// An MLP around given layers (e.g. a pruned copy of another): `activation` between them,
    /// no dropout. Errors unless there is at least one layer, each layer's `in_features` is the
    /// previous one's `out_features`, and the layers all have biases or none does.
    pub fn from_layers(layers: Vec<Linear>, activation: Activation) -> Result<Mlp> {
        let invalid = |reason: String| ModelError::Invalid {
            op: "Mlp::from_layers",
            reason,
        };
        let first = layers
            .first()
            .ok_or_else(|| invalid("needs at least one layer".into()))?;
        let bias = first.bias.is_some();
        let mut sizes = vec![first.in_features()];
        for (i, l) in layers.iter().enumerate() {
            if l.in_features() != *sizes.last().expect("non-empty") || l.in_features() == 0 {
                return Err(invalid(format!(
                    "layer {i} takes {} features but the previous layer gives {}",
                    l.in_features(),
                    sizes.last().expect("non-empty")
                )));
            }
            if l.bias.is_some() != bias {
                return Err(invalid(format!(
                    "layer {i} {} but layer 0 {}",
                    if l.bias.is_some() {
                        "has a bias"
                    } else {
                        "has no bias"
                    },
                    if bias { "has one" } else { "has none" }
                )));
            }
            sizes.push(l.out_features());
        }
        if sizes.contains(&0) {
            return Err(invalid(format!("widths must be positive, got {sizes:?}")));
        }
        let config = MlpConfig::new(&sizes).activation(activation).bias(bias);
        Ok(Mlp {
            config,
            layers,
            dropout: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }

    /// The `Linear` layers, input first.
    pub fn layers(&self) -> &[Linear] {
        &self.layers
    }

    /// The `Linear` layers, mutably (to quantize or calibrate them in place).
    pub fn layers_mut(&mut self) -> &mut [Linear] {
        &mut self.layers
    }

    /// The layers in the order `forward` runs them, as the profiler reads them: `flatten` (for
    /// inputs of more than two dims), then `layers.{i}` with the activation `act.{i}` between
    /// them. Each is the model's own module (its parameter names are the model's under the
    /// layer's name); dropout is left out, so a profile measures the deterministic path.
    pub fn profile_layers(&self, input_ndim: usize) -> Vec<ProfileLayer<'_>> {
        let act = &self.config.activation;
        let mut stack = Vec::with_capacity(2 * self.layers.len() + 1);
        if input_ndim > 2 {
            stack.push(ProfileLayer::owned("flatten", Box::new(Flatten::new())));
        }
        for (i, layer) in self.layers.iter().enumerate() {
            if i > 0 {
                stack.push(ProfileLayer::new(format!("act.{}", i - 1), act).kind(act.name()));
            }
            stack.push(ProfileLayer::new(format!("layers.{i}"), layer));
        }
        stack
    }

    /// The number of input features.
    pub fn in_features(&self) -> usize {
        self.config.sizes[0]
    }

    /// One line per layer (name, shape, parameters) and the total, counted from the model.
    pub fn summary(&self) -> String {
        let mut out = format!("{:<10} {:<22} {:>9}\n", "layer", "type", "params");
        for (i, l) in self.layers.iter().enumerate() {
            let n: usize = l.parameters().iter().map(|p| p.numel()).sum();
            let name = format!("layers.{i}");
            let kind = format!("Linear({} -> {})", l.in_features(), l.out_features());
            out += &format!("{name:<10} {kind:<22} {n:>9}\n");
            if i + 1 < self.layers.len() {
                let act = self.config.activation.name();
                out += &format!("{:<10} {act:<22} {:>9}\n", "", 0);
            }
        }
        out += &format!("total {} parameters", self.num_parameters());
        out
    }
}

impl Module for Mlp {
    fn forward(&self, input: &Variable) -> nn::Result<Variable> {
        let shape = input.shape();
        let features: usize = shape.iter().skip(1).product();
        if shape.len() < 2 || features != self.in_features() {
            return Err(NnError::Invalid {
                op: "Mlp",
                reason: format!(
                    "input must be (N, {}) or (N, ...) with {} features per sample, got shape {shape:?}",
                    self.in_features(),
                    self.in_features()
                ),
            });
        }
        // HINT: flatten (N, ...) to (N, features) in the graph; after every layer but the last,
        // HINT: apply the activation, then dropout if there is one.
        // BEGIN SOLUTION
        let mut x = if shape.len() > 2 {
            input.flatten(1, -1)?
        } else {
            input.clone()
        };
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x)?;
            if i < last {
                x = self.config.activation.apply(&x)?;
                if let Some(d) = &self.dropout {
                    x = d.forward(&x)?;
                }
            }
        }
        Ok(x)
        // END SOLUTION
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| prefixed(&format!("layers.{i}"), l.named_parameters()))
            .collect()
    }

    fn named_buffers(&self) -> Vec<(String, Variable)> {
        self.dropout
            .as_ref()
            .map(|d| prefixed("dropout", d.named_buffers()))
            .unwrap_or_default()
    }

    fn set_training(&mut self, training: bool) {
        if let Some(d) = &mut self.dropout {
            d.set_training(training);
        }
    }
}

impl fmt::Debug for Mlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Mlp(sizes={:?}, activation={}, dropout={}, bias={})",
            self.config.sizes,
            self.config.activation.name(),
            self.config.dropout,
            self.config.bias
        )
    }
}

impl fmt::Display for Mlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{self:?}")?;
        write!(f, "{}", self.summary())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dropout draw counter survives the f32 buffer past 2^24 draws.
    #[test]
    fn dropout_draw_counter_round_trips_past_2_pow_24() {
        let d = SeededDropout::new(0.5, 1).unwrap();
        let n = (1u64 << 24) * 3 + 12345;
        d.set_draws(n).unwrap();
        assert_eq!(d.draws(), n);
    }

    /// The same draw count gives the same dropout mask (resumable randomness).
    #[test]
    fn same_draw_count_same_mask() {
        let a = SeededDropout::new(0.5, 9).unwrap();
        let b = SeededDropout::new(0.5, 9).unwrap();
        let m1 = a.next_mask(&[64]).unwrap();
        let m2 = a.next_mask(&[64]).unwrap();
        assert_eq!(a.draws(), 2);
        assert_ne!(m1, m2);
        assert_eq!(b.next_mask(&[64]).unwrap(), m1);
        b.set_draws(1).unwrap();
        assert_eq!(b.next_mask(&[64]).unwrap(), m2);
        // Survivors are scaled by 1 / (1 - p) = 2.
        assert!(m1.to_vec().iter().all(|&v| v == 0.0 || v == 2.0));
    }
}
