//! Structured pruning: remove whole hidden neurons of an [`Mlp`], so the weight matrices really
//! get smaller (unlike a mask, which keeps the zeros and their cost).
//!
//! A hidden neuron `j` of layer `i` is row `j` of `W_i` (with `b_i[j]`) *and* column `j` of
//! `W_{i+1}`: removing it shrinks both. Neurons are ranked by the L2 norm of their incoming
//! weight row (`torch.nn.utils.prune.ln_structured`'s criterion; the bias is not counted) and the
//! strongest `round(keep_fraction * width)` (at least 1) of every hidden layer are kept, in their
//! original order. The kept neurons compute exactly what they did before; a removed neuron whose
//! weights and bias were zero contributed nothing, so removing it changes no output.

use nn::linear::Linear;
use nn::Module;
use tensor::Tensor;

use crate::error::{ModelError, Result};
use crate::mlp::Mlp;

/// The L2 norm of each row of a `(out, in)` weight: one number per output neuron.
pub fn neuron_norms(weight: &Tensor) -> Result<Vec<f32>> {
    if weight.ndim() != 2 {
        return Err(ModelError::Invalid {
            op: "neuron_norms",
            reason: format!("weight must be (out, in), got shape {:?}", weight.shape()),
        });
    }
    let cols = weight.shape()[1];
    let w = weight.contiguous().to_vec();
    if cols == 0 {
        return Ok(vec![0.0; weight.shape()[0]]);
    }
    Ok(w.chunks(cols)
        .map(|row| row.iter().map(|v| v * v).sum::<f32>().sqrt())
        .collect())
}

/// The indices of the `keep` largest norms, in increasing index order (ties keep the lower
/// index).
fn strongest(norms: &[f32], keep: usize) -> Vec<usize> {
    // HINT: sort the indices by norm, largest first (a stable sort keeps ties in index order),
    // HINT: take `keep` of them, and sort those back into index order.
    // BEGIN SOLUTION
    let mut order: Vec<usize> = (0..norms.len()).collect();
    order.sort_by(|&a, &b| norms[b].total_cmp(&norms[a]));
    order.truncate(keep);
    order.sort_unstable();
    order
    // END SOLUTION
}

/// The rows `rows` of a 2-D tensor.
fn select_rows(t: &Tensor, rows: &[usize]) -> Result<Tensor> {
    Ok(t.index_select(0, rows)?.contiguous())
}

/// The columns `cols` of a 2-D tensor.
fn select_cols(t: &Tensor, cols: &[usize]) -> Result<Tensor> {
    Ok(t.index_select(1, cols)?.contiguous())
}

/// A new, smaller [`Mlp`] keeping the `keep_fraction` (in `(0, 1]`) of each hidden layer's
/// neurons with the largest weight-row L2 norm. The input and output widths do not change; the
/// original model is untouched (the new one has fresh parameters and no dropout).
pub fn prune_neurons(mlp: &Mlp, keep_fraction: f32) -> Result<Mlp> {
    if !(keep_fraction > 0.0 && keep_fraction <= 1.0) {
        return Err(ModelError::Invalid {
            op: "prune_neurons",
            reason: format!("keep_fraction must be in (0, 1], got {keep_fraction}"),
        });
    }
    let layers = mlp.layers();
    let mut weights: Vec<Tensor> = layers.iter().map(|l| l.weight.value()).collect();
    let mut biases: Vec<Option<Tensor>> = layers
        .iter()
        .map(|l| l.bias.as_ref().map(|b| b.value()))
        .collect();
    for i in 0..layers.len() - 1 {
        let width = weights[i].shape()[0];
        let keep = ((keep_fraction as f64 * width as f64).round() as usize).clamp(1, width);
        let kept = strongest(&neuron_norms(&weights[i])?, keep);
        weights[i] = select_rows(&weights[i], &kept)?;
        if let Some(b) = &biases[i] {
            biases[i] = Some(b.index_select(0, &kept)?.contiguous());
        }
        weights[i + 1] = select_cols(&weights[i + 1], &kept)?;
    }
    let new_layers = weights
        .into_iter()
        .zip(biases)
        .map(|(w, b)| Linear::from_tensors(w, b))
        .collect::<nn::Result<Vec<Linear>>>()?;
    let pruned = Mlp::from_layers(new_layers, mlp.config().activation)?;
    debug_assert!(pruned.num_parameters() <= mlp.num_parameters());
    Ok(pruned)
}
