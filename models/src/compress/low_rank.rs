//! Low-rank compression of an [`Mlp`]: each chosen `Linear` becomes a [`LowRankLinear`] (two
//! thin layers from its truncated SVD), the rest are copied. See `nn::low_rank` for the math.

use autograd::Variable;
use nn::linear::Linear;
use nn::low_rank::LowRankLinear;
use nn::module::{prefixed, Module};
use nn::NnError;

use crate::error::{ModelError, Result};
use crate::mlp::{Activation, Mlp};

/// One layer of a [`LowRankMlp`]: kept as it was, or factorized.
pub enum MaybeFactorized {
    /// A copy of the original layer.
    Dense(Linear),
    /// The layer's rank-`r` factorization.
    Factorized(LowRankLinear),
}

impl MaybeFactorized {
    fn module(&self) -> &dyn Module {
        match self {
            MaybeFactorized::Dense(l) => l,
            MaybeFactorized::Factorized(l) => l,
        }
    }
}

/// An MLP some of whose layers are low-rank factorizations. Parameters are named
/// `layers.{i}.weight` / `.bias` for dense layers and `layers.{i}.down.weight`,
/// `layers.{i}.up.weight`, `layers.{i}.up.bias` for factorized ones.
pub struct LowRankMlp {
    layers: Vec<MaybeFactorized>,
    activation: Activation,
    in_features: usize,
}

impl LowRankMlp {
    /// The layers, input first.
    pub fn layers(&self) -> &[MaybeFactorized] {
        &self.layers
    }

    /// The rank of each layer (`None` for a dense one).
    pub fn ranks(&self) -> Vec<Option<usize>> {
        self.layers
            .iter()
            .map(|l| match l {
                MaybeFactorized::Dense(_) => None,
                MaybeFactorized::Factorized(f) => Some(f.rank()),
            })
            .collect()
    }
}

fn copy_linear(l: &Linear) -> Result<Linear> {
    Ok(Linear::from_tensors(
        l.weight.value(),
        l.bias.as_ref().map(|b| b.value()),
    )?)
}

fn build(mlp: &Mlp, rank_of: impl Fn(usize, &Linear) -> Option<usize>) -> Result<LowRankMlp> {
    let layers = mlp
        .layers()
        .iter()
        .enumerate()
        .map(|(i, l)| {
            Ok(match rank_of(i, l) {
                Some(r) => MaybeFactorized::Factorized(LowRankLinear::from_linear(l, r)?),
                None => MaybeFactorized::Dense(copy_linear(l)?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(LowRankMlp {
        layers,
        activation: mlp.config().activation,
        in_features: mlp.in_features(),
    })
}

/// Factorize every layer of `mlp` whose smaller side exceeds `rank` at that rank (narrower
/// layers, e.g. a 10-class output layer, are copied unchanged). Errors for `rank == 0`.
pub fn low_rank(mlp: &Mlp, rank: usize) -> Result<LowRankMlp> {
    if rank == 0 {
        return Err(ModelError::Invalid {
            op: "low_rank",
            reason: "rank must be at least 1".into(),
        });
    }
    build(mlp, |_, l| {
        (l.in_features().min(l.out_features()) > rank).then_some(rank)
    })
}

/// Factorize layer `layer` of `mlp` at `rank`, copying the others. Errors for a layer index out
/// of range, `rank == 0` or `rank > min(in, out)` of that layer.
pub fn low_rank_layer(mlp: &Mlp, layer: usize, rank: usize) -> Result<LowRankMlp> {
    if layer >= mlp.layers().len() {
        return Err(ModelError::Invalid {
            op: "low_rank_layer",
            reason: format!(
                "layer {layer} is out of range for an Mlp of {} layers",
                mlp.layers().len()
            ),
        });
    }
    build(mlp, |i, _| (i == layer).then_some(rank))
}

impl Module for LowRankMlp {
    fn forward(&self, input: &Variable) -> nn::Result<Variable> {
        let shape = input.shape();
        let features: usize = shape.iter().skip(1).product();
        if shape.len() < 2 || features != self.in_features {
            return Err(NnError::Invalid {
                op: "LowRankMlp",
                reason: format!(
                    "input must be (N, {}) or (N, ...) with {} features per sample, got shape {shape:?}",
                    self.in_features, self.in_features
                ),
            });
        }
        let mut x = if shape.len() > 2 {
            input.flatten(1, -1)?
        } else {
            input.clone()
        };
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.module().forward(&x)?;
            if i < last {
                x = self.activation.apply(&x)?;
            }
        }
        Ok(x)
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| prefixed(&format!("layers.{i}"), l.module().named_parameters()))
            .collect()
    }
}

impl std::fmt::Debug for MaybeFactorized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaybeFactorized::Dense(l) => write!(f, "{l:?}"),
            MaybeFactorized::Factorized(l) => write!(f, "{l:?}"),
        }
    }
}

impl std::fmt::Debug for LowRankMlp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LowRankMlp")
            .field("layers", &self.layers)
            .field("activation", &self.activation.name())
            .finish()
    }
}
