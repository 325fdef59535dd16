//! Attention as functions of `q`, `k`, `v`: the composed definition ([`attention`]), the same
//! computation as one fused graph node ([`scaled_dot_product_attention`]), and the fused node read
//! straight out of a packed `(B, T, 3C)` projection ([`packed_attention`]), whose shape `tensor`
//! checks once ([`tensor::sdpa::packed_dims`]) for every user of the packed layout.

use autograd::Variable;
use tensor::sdpa::packed_dims;

use super::mask::AttentionMask;
use crate::dropout::Dropout;
use crate::error::{NnError, Result};
use crate::module::Module;

/// The shape `(B, H, T, S)` of the scores of `q` `(B, H, T, D)` against `k` `(B, H, S, D)`.
fn scores_shape(q: &Variable, k: &Variable, v: &Variable) -> Result<[usize; 4]> {
    let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
    if qs.len() != 4
        || ks.len() != 4
        || vs.len() != 4
        || qs[..2] != ks[..2]
        || ks[..3] != vs[..3]
        || qs[3] != ks[3]
    {
        return Err(NnError::Invalid {
            op: "attention",
            reason: format!(
                "q, k, v must be (B, H, T, D), (B, H, S, D), (B, H, S, Dv), got {qs:?}, {ks:?}, {vs:?}"
            ),
        });
    }
    Ok([qs[0], qs[1], qs[2], ks[2]])
}

/// The attention of `q` `(B, H, T, D)` over `k`, `v` `(B, H, S, D)` written out step by step:
/// scores, mask, softmax, optional dropout on the weights, weighted sum. Returns the output
/// `(B, H, T, Dv)` and the attention weights `(B, H, T, S)` (before dropout; each row sums to 1).
///
/// This is the definition (and the path for `Keep` masks, attention dropout and inspecting the
/// weights); [`scaled_dot_product_attention`] computes the same in one fused node.
pub fn attention(
    q: &Variable,
    k: &Variable,
    v: &Variable,
    mask: &AttentionMask,
    dropout: Option<&Dropout>,
) -> Result<(Variable, Variable)> {
    let shape = scores_shape(q, k, v)?;
    mask.check(shape)?;
    attention_core(q, k, v, mask, dropout)
}

/// [`attention`] on checked shapes.
fn attention_core(
    q: &Variable,
    k: &Variable,
    v: &Variable,
    mask: &AttentionMask,
    dropout: Option<&Dropout>,
) -> Result<(Variable, Variable)> {
    // HINT: scores = q @ k^T (a transposed view) scaled by 1/sqrt(d); Causal -> causal_softmax
    // HINT: (fused scale + mask + softmax); Keep -> fill dropped scores with -inf, then softmax.
    // BEGIN SOLUTION
    let scale = 1.0 / (shape_head(q) as f32).sqrt();
    let scores = q.matmul(&k.transpose(-1, -2)?)?;
    let weights = match mask {
        AttentionMask::None => scores.mul_scalar(scale)?.softmax(-1)?,
        AttentionMask::Causal => scores.causal_softmax(scale)?,
        AttentionMask::Keep(keep) => scores
            .mul_scalar(scale)?
            .masked_fill(&keep.eq_scalar(0.0), f32::NEG_INFINITY)?
            .softmax(-1)?,
    };
    let dropped = match dropout {
        Some(drop) => drop.forward(&weights)?,
        None => weights.clone(),
    };
    Ok((dropped.matmul(v)?, weights))
    // END SOLUTION
}

fn shape_head(q: &Variable) -> usize {
    q.shape().last().copied().unwrap_or(1).max(1)
}

/// `softmax(q k^T / sqrt(d) + mask) v` for `q` `(B, H, T, D)`, `k` `(B, H, S, D)`, `v`
/// `(B, H, S, Dv)`. `None` and `Causal` run as one fused node
/// ([`Variable::scaled_dot_product_attention`], whose backward lives with autograd's other ops);
/// a `Keep` mask uses the composed [`attention`]. Strided views (heads) are read in place.
pub fn scaled_dot_product_attention(
    q: &Variable,
    k: &Variable,
    v: &Variable,
    mask: &AttentionMask,
) -> Result<Variable> {
    let shape = scores_shape(q, k, v)?;
    mask.check(shape)?;
    let causal = match mask {
        AttentionMask::None => false,
        AttentionMask::Causal => true,
        AttentionMask::Keep(_) => return Ok(attention(q, k, v, mask, None)?.0),
    };
    let scale = 1.0 / (shape_head(q) as f32).sqrt();
    Ok(q.scaled_dot_product_attention(k, v, scale, causal)?)
}

/// Multi-head attention (no mask, or causal) straight from a fused projection `qkv` of shape
/// `(B, T, 3C)`: queries, keys and values of `n_head` heads side by side. Returns `(B, T, C)`
/// with the heads merged, as one graph node whose gradient lands in `qkv`'s layout
/// ([`Variable::packed_attention`]). The same as
/// [`MultiHeadAttention::split_heads`](super::MultiHeadAttention::split_heads),
/// [`scaled_dot_product_attention`] and a merge.
pub fn packed_attention(qkv: &Variable, n_head: usize, causal: bool) -> Result<Variable> {
    let (_, _, c) = packed_dims("packed_attention", &qkv.shape(), n_head)?;
    let scale = 1.0 / ((c / n_head) as f32).sqrt();
    Ok(qkv.packed_attention(n_head, scale, causal)?)
}
