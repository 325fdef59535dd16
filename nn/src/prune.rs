//! Pruning masks: measure sparsity and zero the smallest weights by magnitude.
//!
//! *Which tensors.* Pruning and sparsity concern a module's **weights**: its parameters with two
//! or more dims (`Linear` matrices, convolution kernels, embeddings). Biases and norm scales are
//! 1-D, tiny, and pruning them saves nothing, so they are neither pruned nor counted by
//! [`sparsity`]; [`sparsity_of`] measures any list of parameters you choose (biases included).
//!
//! *0 / 0.* The sparsity of an empty layer (or of a model with no weights) is undefined, so the
//! fractions are `Option<f32>`: `None` for zero elements. An all-zero layer is well-defined:
//! `Some(1.0)`.
//!
//! *Magnitude pruning.* [`magnitude_prune_global`] ranks the magnitudes of every weight of the
//! model together (one threshold: layers with many small weights lose more); [`magnitude_prune_per_layer`]
//! prunes the same fraction of each layer. Both prune exactly `round(fraction * n)` elements
//! (ties at the threshold are broken by position), and return [`Masks`] (1 keep, 0 pruned) by
//! parameter name. [`Masks::apply`] zeroes the pruned weights once; to keep them zero through
//! training, wrap the optimizer in `optim::Masked`, which gates every update by the masks.

use std::collections::BTreeMap;

use autograd::Variable;
use tensor::Tensor;

use crate::error::{NnError, Result};
use crate::module::Module;

/// Binary masks by parameter name: 1.0 where a weight is kept, 0.0 where it is pruned.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Masks {
    masks: BTreeMap<String, Tensor>,
}

impl Masks {
    /// No masks.
    pub fn new() -> Masks {
        Masks::default()
    }

    /// Add (or replace) the mask of parameter `name`. Errors unless every value is 0 or 1.
    pub fn insert(&mut self, name: impl Into<String>, mask: Tensor) -> Result<()> {
        let name = name.into();
        if mask.to_vec().iter().any(|&v| v != 0.0 && v != 1.0) {
            return Err(NnError::Invalid {
                op: "Masks",
                reason: format!("mask of '{name}' must hold only 0.0 and 1.0"),
            });
        }
        self.masks.insert(name, mask);
        Ok(())
    }

    /// The mask of parameter `name`, if it has one.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.masks.get(name)
    }

    /// `(name, mask)` pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.masks.iter().map(|(n, m)| (n.as_str(), m))
    }

    /// How many parameters are masked.
    pub fn len(&self) -> usize {
        self.masks.len()
    }

    /// Whether there are no masks.
    pub fn is_empty(&self) -> bool {
        self.masks.is_empty()
    }

    /// The fraction of masked elements that are pruned (`None` when there are no elements).
    pub fn pruned_fraction(&self) -> Option<f32> {
        let (zeros, numel) = self.masks.values().fold((0, 0), |(z, n), m| {
            (z + count_zeros(&m.to_vec()), n + m.numel())
        });
        fraction(zeros, numel)
    }

    /// Multiply each masked parameter of `module` by its mask, in place (the pruning itself).
    /// Errors, changing nothing, if a mask names no parameter or has another shape.
    pub fn apply(&self, module: &dyn Module) -> Result<()> {
        let params: BTreeMap<String, Variable> = module.named_parameters().into_iter().collect();
        let mut problems = Vec::new();
        for (name, mask) in &self.masks {
            match params.get(name) {
                None => problems.push(format!("mask '{name}' names no parameter of the module")),
                Some(p) if p.shape() != mask.shape() => problems.push(format!(
                    "mask '{name}' has shape {:?} but the parameter has shape {:?}",
                    mask.shape(),
                    p.shape()
                )),
                Some(_) => {}
            }
        }
        if !problems.is_empty() {
            return Err(NnError::Invalid {
                op: "Masks::apply",
                reason: problems.join("; "),
            });
        }
        for (name, mask) in &self.masks {
            let m = mask.contiguous();
            let m = m.as_slice().expect("contiguous");
            params[name].update_data(|w| {
                for (w, &k) in w.iter_mut().zip(m) {
                    *w *= k;
                }
            })?;
        }
        Ok(())
    }
}

impl IntoIterator for Masks {
    type Item = (String, Tensor);
    type IntoIter = std::collections::btree_map::IntoIter<String, Tensor>;
    fn into_iter(self) -> Self::IntoIter {
        self.masks.into_iter()
    }
}

/// How many zeros one tensor (a layer's weight) holds.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSparsity {
    /// The parameter's dotted name.
    pub name: String,
    /// Elements exactly equal to zero.
    pub zeros: usize,
    /// All elements.
    pub numel: usize,
}

impl LayerSparsity {
    /// `zeros / numel`, or `None` for an empty tensor.
    pub fn fraction(&self) -> Option<f32> {
        fraction(self.zeros, self.numel)
    }
}

/// Per-layer and global sparsity of a set of parameters.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SparsityReport {
    /// One entry per measured parameter, in the module's order.
    pub layers: Vec<LayerSparsity>,
}

impl SparsityReport {
    /// Zeros over all measured parameters.
    pub fn zeros(&self) -> usize {
        self.layers.iter().map(|l| l.zeros).sum()
    }

    /// Elements over all measured parameters.
    pub fn numel(&self) -> usize {
        self.layers.iter().map(|l| l.numel).sum()
    }

    /// The global fraction of zeros, or `None` when nothing was measured (an empty model).
    pub fn global(&self) -> Option<f32> {
        fraction(self.zeros(), self.numel())
    }

    /// The entry of parameter `name`.
    pub fn layer(&self, name: &str) -> Option<&LayerSparsity> {
        self.layers.iter().find(|l| l.name == name)
    }
}

fn fraction(part: usize, whole: usize) -> Option<f32> {
    (whole > 0).then(|| (part as f64 / whole as f64) as f32)
}

fn count_zeros(values: &[f32]) -> usize {
    values.iter().filter(|&&v| v == 0.0).count()
}

/// The parameters pruning works on: those with two or more dims (biases are left alone).
pub fn prunable_weights(module: &dyn Module) -> Vec<(String, Variable)> {
    module
        .named_parameters()
        .into_iter()
        .filter(|(_, p)| p.ndim() >= 2)
        .collect()
}

/// Sparsity of the given parameters (any of them, biases included if listed).
pub fn sparsity_of(params: &[(String, Variable)]) -> SparsityReport {
    SparsityReport {
        layers: params
            .iter()
            .map(|(name, p)| LayerSparsity {
                name: name.clone(),
                zeros: count_zeros(&p.value().to_vec()),
                numel: p.numel(),
            })
            .collect(),
    }
}

/// Sparsity of a module's weights (parameters with >= 2 dims; biases are not counted).
pub fn sparsity(module: &dyn Module) -> SparsityReport {
    sparsity_of(&prunable_weights(module))
}

fn check_fraction(op: &'static str, fraction: f32) -> Result<()> {
    if !(0.0..=1.0).contains(&fraction) {
        return Err(NnError::Invalid {
            op,
            reason: format!("fraction to prune must be in [0, 1], got {fraction}"),
        });
    }
    Ok(())
}

/// A 0/1 mask over `magnitudes` that prunes exactly `k` of them: every value below the k-th
/// smallest, then values equal to it in order of position until `k` are pruned.
pub fn smallest_k_mask(magnitudes: &[f32], k: usize) -> Vec<f32> {
    // HINT: (k = 0 keeps everything) find the k-th smallest magnitude t (select_nth_unstable_by,
    // HINT: O(n)); prune every value < t, then values == t in order until exactly k are pruned
    // HINT: (ties, e.g. weights that are already 0, must not prune more than asked).
    // BEGIN SOLUTION
    let k = k.min(magnitudes.len());
    if k == 0 {
        return vec![1.0; magnitudes.len()];
    }
    let mut sorted = magnitudes.to_vec();
    let (_, &mut threshold, _) = sorted.select_nth_unstable_by(k - 1, |a, b| a.total_cmp(b));
    let below = magnitudes.iter().filter(|&&m| m < threshold).count();
    let mut ties_to_prune = k - below;
    magnitudes
        .iter()
        .map(|&m| {
            if m < threshold {
                0.0
            } else if m == threshold && ties_to_prune > 0 {
                ties_to_prune -= 1;
                0.0
            } else {
                1.0
            }
        })
        .collect()
    // END SOLUTION
}

/// How many of `n` elements a fraction prunes (rounded to nearest).
fn prune_count(fraction: f32, n: usize) -> usize {
    ((fraction as f64 * n as f64).round() as usize).min(n)
}

/// Masks pruning the `fraction` of smallest-magnitude weights across all of `module`'s weights
/// at once (one global threshold). Does not change the module: call [`Masks::apply`].
pub fn magnitude_prune_global(module: &dyn Module, fraction: f32) -> Result<Masks> {
    check_fraction("magnitude_prune_global", fraction)?;
    let weights = prunable_weights(module);
    let values: Vec<Vec<f32>> = weights.iter().map(|(_, p)| p.value().to_vec()).collect();
    let magnitudes: Vec<f32> = values.iter().flatten().map(|v| v.abs()).collect();
    let flat = smallest_k_mask(&magnitudes, prune_count(fraction, magnitudes.len()));
    let mut masks = Masks::new();
    let mut offset = 0;
    for (name, p) in &weights {
        let n = p.numel();
        let mask = Tensor::from_vec(flat[offset..offset + n].to_vec(), &p.shape())?;
        masks.insert(name.clone(), mask)?;
        offset += n;
    }
    Ok(masks)
}

/// Masks pruning the `fraction` of smallest-magnitude weights of each weight tensor separately.
/// Does not change the module: call [`Masks::apply`].
pub fn magnitude_prune_per_layer(module: &dyn Module, fraction: f32) -> Result<Masks> {
    check_fraction("magnitude_prune_per_layer", fraction)?;
    let mut masks = Masks::new();
    for (name, p) in prunable_weights(module) {
        let magnitudes: Vec<f32> = p.value().to_vec().iter().map(|v| v.abs()).collect();
        let mask = smallest_k_mask(&magnitudes, prune_count(fraction, magnitudes.len()));
        masks.insert(name, Tensor::from_vec(mask, &p.shape())?)?;
    }
    Ok(masks)
}
