//! Fused scaled-dot-product attention as graph nodes: `softmax(q k^T * scale) v` (optionally
//! causal) in one op whose backward recomputes the probabilities from the saved per-row
//! log-sum-exp instead of storing them (the kernels are `tensor::sdpa`). Masks other than
//! causal, dropout and returned weights are composed from ordinary ops in `nn`.

use tensor::sdpa::{
    packed_attention, packed_attention_backward, scaled_dot_product_attention,
    scaled_dot_product_attention_backward,
};
use tensor::Tensor;

use super::record;
use crate::error::Result;
use crate::variable::{GradFn, Variable};

/// d(sdpa(q, k, v)): gradients of `q`, `k`, `v` from the saved output and per-row log-sum-exp.
pub struct ScaledDotProductAttentionBackward {
    q: Variable,
    k: Variable,
    v: Variable,
    out: Tensor,
    lse: Tensor,
    scale: f32,
    causal: bool,
}

impl GradFn for ScaledDotProductAttentionBackward {
    fn name(&self) -> &'static str {
        "ScaledDotProductAttentionBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.q.clone(), self.k.clone(), self.v.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (dq, dk, dv) = scaled_dot_product_attention_backward(
            &self.q.value(),
            &self.k.value(),
            &self.v.value(),
            &self.out,
            &self.lse,
            g,
            self.scale,
            self.causal,
        )?;
        let keep = |input: &Variable, grad: Tensor| input.requires_grad().then_some(grad);
        Ok(vec![
            keep(&self.q, dq),
            keep(&self.k, dk),
            keep(&self.v, dv),
        ])
    }
}

/// d(packed attention(qkv)): the gradient of the whole `(B, T, 3C)` projection in one buffer,
/// in the projection's own layout.
pub struct PackedAttentionBackward {
    qkv: Variable,
    out: Tensor,
    lse: Tensor,
    n_head: usize,
    scale: f32,
    causal: bool,
}

impl GradFn for PackedAttentionBackward {
    fn name(&self) -> &'static str {
        "PackedAttentionBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.qkv.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let dqkv = packed_attention_backward(
            &self.qkv.value(),
            &self.out,
            &self.lse,
            g,
            self.n_head,
            self.scale,
            self.causal,
        )?;
        Ok(vec![Some(dqkv)])
    }
}

impl Variable {
    /// `softmax(q k^T * scale) v` (keys after each query masked out when `causal`) for `q`
    /// `(B, H, T, D)`, `k` `(B, H, S, D)`, `v` `(B, H, S, Dv)`, as one graph node. Strided views
    /// (heads) are read in place.
    pub fn scaled_dot_product_attention(
        &self,
        k: &Variable,
        v: &Variable,
        scale: f32,
        causal: bool,
    ) -> Result<Variable> {
        let (out, lse) =
            scaled_dot_product_attention(&self.value(), &k.value(), &v.value(), scale, causal)?;
        let grad_fn = ScaledDotProductAttentionBackward {
            q: self.clone(),
            k: k.clone(),
            v: v.clone(),
            out: out.clone(),
            lse,
            scale,
            causal,
        };
        record(out, &[self, k, v], grad_fn)
    }

    /// Multi-head attention straight from a fused projection `self` of shape `(B, T, 3C)`
    /// (queries, keys and values of `n_head` heads side by side): returns `(B, T, C)` with the
    /// heads merged, as one graph node whose gradient lands in the projection's layout.
    pub fn packed_attention(&self, n_head: usize, scale: f32, causal: bool) -> Result<Variable> {
        let (out, lse) = packed_attention(&self.value(), n_head, scale, causal)?;
        let grad_fn = PackedAttentionBackward {
            qkv: self.clone(),
            out: out.clone(),
            lse,
            n_head,
            scale,
            causal,
        };
        record(out, &[self], grad_fn)
    }
}
