//! Multi-head self-attention: every token builds a query, compares it with every visible token's
//! key, and takes the softmax-weighted average of their values, a *soft* dictionary lookup.
//!
//! `attention(Q, K, V) = softmax(Q K^T / sqrt(d_head) + mask) V`, computed for `n_head` heads of
//! width `d_head = n_embd / n_head` side by side.
//!
//! - One fused projection `qkv` (`C -> 3C`) makes queries, keys and values in one GEMM; the heads
//!   are *views* of its output (`(B, T, 3, H, D)` permuted to `(3, B, H, T, D)`), never copies.
//! - One mask convention, a type: [`AttentionMask`] (`None`, `Causal`, or an explicit `Keep`
//!   tensor with 1 = attend, 0 = drop). Causal means query `i` of `T` sees keys
//!   `j <= i + (S - T)`: with a KV cache the queries are the last `T` of `S` positions.
//! - `None` and `Causal` attention run as one fused graph node ([`tensor::sdpa`]: per-head
//!   parallel, masked blocks skipped, probabilities recomputed in backward). In the layer that
//!   node reads the heads straight out of the `(B, T, 3C)` projection and writes `(B, T, C)`
//!   ([`packed_attention`]), so the graph holds no head split or merge at all. A `Keep` mask,
//!   attention dropout in training, or asking for the weights takes the composed path
//!   ([`attention`] on the views of [`MultiHeadAttention::split_heads`]: matmul, masked softmax,
//!   matmul), which is also the reference the fused kernels are tested against.
//! - [`KvCache`] makes generation incremental: each step projects only the new tokens, appends
//!   their keys and values, and attends over everything cached. The output equals the uncached
//!   forward on the whole sequence.

use autograd::{custom_op, GradFn, Variable};
use tensor::sdpa::{
    packed_attention as packed_kernel, packed_attention_backward,
    scaled_dot_product_attention as sdpa, scaled_dot_product_attention_backward,
};
use tensor::{Tensor, TensorRng};

use crate::dropout::Dropout;
use crate::error::{NnError, Result};
use crate::linear::Linear;
use crate::module::{prefixed, Module};

/// Which keys each query may attend to. Scores have shape `(B, H, T, S)`.
#[derive(Clone, Debug, Default)]
pub enum AttentionMask {
    /// Every query sees every key (an encoder).
    #[default]
    None,
    /// Query `i` of `T` sees keys `j <= i + (S - T)`: no peeking at the future (a decoder).
    Causal,
    /// An explicit mask broadcastable to `(B, H, T, S)`: non-zero = attend, 0 = drop (e.g. a
    /// `(B, 1, 1, S)` padding mask). Every query must keep at least one key.
    Keep(Tensor),
}

impl AttentionMask {
    /// Check the mask against scores of shape `(B, H, T, S)`: a `Keep` tensor must broadcast to
    /// it and keep at least one key per query; causal attention needs `S >= T`.
    pub fn check(&self, scores: [usize; 4]) -> Result<()> {
        let [_, _, t, s] = scores;
        match self {
            AttentionMask::None => Ok(()),
            AttentionMask::Causal if s < t => Err(NnError::Invalid {
                layer: "MultiHeadAttention",
                reason: format!(
                    "a causal mask needs at least as many keys as queries, got T = {t} queries and S = {s} keys"
                ),
            }),
            AttentionMask::Causal => Ok(()),
            AttentionMask::Keep(mask) => {
                let shape = mask.shape();
                let fits = shape.len() <= 4
                    && shape
                        .iter()
                        .rev()
                        .zip(scores.iter().rev())
                        .all(|(&m, &want)| m == 1 || m == want);
                if !fits {
                    return Err(NnError::Invalid {
                        layer: "MultiHeadAttention",
                        reason: format!(
                            "keep-mask of shape {shape:?} does not broadcast to the attention scores (B, H, T, S) = {scores:?}"
                        ),
                    });
                }
                // A row of the mask with no kept key would give a softmax over nothing.
                let values = mask.contiguous().to_vec();
                let width = shape.last().copied().unwrap_or(1).max(1);
                if let Some(row) = values.chunks(width).position(|r| r.iter().all(|&v| v == 0.0)) {
                    return Err(NnError::Invalid {
                        layer: "MultiHeadAttention",
                        reason: format!(
                            "keep-mask of shape {shape:?} drops every key of its row {row}: each query must keep at least one key"
                        ),
                    });
                }
                Ok(())
            }
        }
    }
}

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
            layer: "attention",
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

/// The backward of the fused attention node: gradients of `q`, `k`, `v` from the saved output
/// and per-row log-sum-exp (the probabilities are recomputed, never stored).
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

    fn backward(&self, grad_output: &Tensor) -> autograd::Result<Vec<Option<Tensor>>> {
        let (dq, dk, dv) = scaled_dot_product_attention_backward(
            &self.q.value(),
            &self.k.value(),
            &self.v.value(),
            &self.out,
            &self.lse,
            grad_output,
            self.scale,
            self.causal,
        )?;
        let keep = |v: &Variable, g: Tensor| v.requires_grad().then_some(g);
        Ok(vec![
            keep(&self.q, dq),
            keep(&self.k, dk),
            keep(&self.v, dv),
        ])
    }
}

/// `softmax(q k^T / sqrt(d) + mask) v` for `q` `(B, H, T, D)`, `k` `(B, H, S, D)`, `v`
/// `(B, H, S, Dv)`. `None` and `Causal` run as one fused node (`ScaledDotProductAttentionBackward`);
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
    let (qv, kv, vv) = (q.value(), k.value(), v.value());
    let (out, lse) = sdpa(&qv, &kv, &vv, scale, causal)?;
    let grad_fn = ScaledDotProductAttentionBackward {
        q: q.clone(),
        k: k.clone(),
        v: v.clone(),
        out: out.clone(),
        lse,
        scale,
        causal,
    };
    Ok(custom_op(out, &[q, k, v], grad_fn)?)
}

/// The backward of [`packed_attention`]: the gradient of the whole `(B, T, 3C)` projection in
/// one buffer, in the projection's own layout.
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

    fn backward(&self, grad_output: &Tensor) -> autograd::Result<Vec<Option<Tensor>>> {
        let dqkv = packed_attention_backward(
            &self.qkv.value(),
            &self.out,
            &self.lse,
            grad_output,
            self.n_head,
            self.scale,
            self.causal,
        )?;
        Ok(vec![Some(dqkv)])
    }
}

/// Multi-head attention (no mask, or causal) straight from a fused projection `qkv` of shape
/// `(B, T, 3C)`: queries, keys and values of `n_head` heads side by side. Returns `(B, T, C)`
/// with the heads merged, as one graph node whose gradient lands in `qkv`'s layout. The same
/// as [`MultiHeadAttention::split_heads`], [`scaled_dot_product_attention`] and a merge.
pub fn packed_attention(qkv: &Variable, n_head: usize, causal: bool) -> Result<Variable> {
    let shape = qkv.shape();
    if shape.len() != 3 || n_head == 0 || !shape[2].is_multiple_of(3 * n_head) {
        return Err(NnError::Invalid {
            layer: "packed_attention",
            reason: format!(
                "qkv must be (B, T, 3C) with C a multiple of n_head = {n_head}, got {shape:?}"
            ),
        });
    }
    let scale = 1.0 / ((shape[2] / 3 / n_head) as f32).sqrt();
    let (out, lse) = packed_kernel(&qkv.value(), n_head, scale, causal)?;
    let grad_fn = PackedAttentionBackward {
        qkv: qkv.clone(),
        out: out.clone(),
        lse,
        n_head,
        scale,
        causal,
    };
    Ok(custom_op(out, &[qkv], grad_fn)?)
}

/// Sizes of a [`MultiHeadAttention`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionConfig {
    /// Model width `C`; must be a multiple of `n_head`.
    pub n_embd: usize,
    /// Number of heads `H`; each has width `C / H`.
    pub n_head: usize,
    /// Dropout on the attention weights and on the output (0 disables both).
    pub dropout: f32,
    /// Whether `qkv` and `proj` have biases.
    pub bias: bool,
    /// Seed of the weights and of the dropout masks.
    pub seed: u64,
}

/// The keys and values of every position seen so far, per layer, for incremental decoding.
/// Shapes `(B, H, S, D)`. Use it under `no_grad` when generating.
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    k: Option<Variable>,
    v: Option<Variable>,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> KvCache {
        KvCache::default()
    }

    /// The number of cached positions `S`.
    pub fn len(&self) -> usize {
        self.k.as_ref().map_or(0, |k| k.shape()[2])
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forget every cached position (start a new sequence).
    pub fn clear(&mut self) {
        self.k = None;
        self.v = None;
    }

    /// Append the keys and values of new positions (along the sequence dim) and return all of
    /// them.
    pub fn append(&mut self, k: &Variable, v: &Variable) -> Result<(Variable, Variable)> {
        let (k_all, v_all) = match (&self.k, &self.v) {
            (Some(k0), Some(v0)) => {
                let (ks, k0s) = (k.shape(), k0.shape());
                if ks.len() != 4 || ks[..2] != k0s[..2] || ks[3] != k0s[3] {
                    return Err(NnError::Invalid {
                        layer: "KvCache",
                        reason: format!(
                            "new keys of shape {ks:?} do not continue the cached {k0s:?} (same B, H and D needed)"
                        ),
                    });
                }
                (
                    Variable::cat(&[k0.clone(), k.clone()], 2)?,
                    Variable::cat(&[v0.clone(), v.clone()], 2)?,
                )
            }
            _ => (k.clone(), v.clone()),
        };
        self.k = Some(k_all.clone());
        self.v = Some(v_all.clone());
        Ok((k_all, v_all))
    }
}

/// Multi-head self-attention with a fused `qkv` projection and an output projection `proj`:
/// `(B, T, C) -> (B, T, C)`. Parameters: `qkv.weight (3C, C)`, `proj.weight (C, C)` (+ biases).
pub struct MultiHeadAttention {
    /// `C -> 3C`: queries, keys and values of all heads in one product.
    pub qkv: Linear,
    /// `C -> C`: mixes the heads' outputs.
    pub proj: Linear,
    attn_dropout: Dropout,
    resid_dropout: Dropout,
    n_head: usize,
    n_embd: usize,
}

impl MultiHeadAttention {
    /// A layer with PyTorch's default `Linear` initialisation, seeded by `config.seed`.
    pub fn new(config: &AttentionConfig) -> Result<MultiHeadAttention> {
        let AttentionConfig {
            n_embd,
            n_head,
            dropout,
            bias,
            seed,
        } = *config;
        if n_head == 0 || n_embd == 0 || !n_embd.is_multiple_of(n_head) {
            return Err(NnError::Invalid {
                layer: "MultiHeadAttention",
                reason: format!(
                    "n_embd ({n_embd}) must be a positive multiple of n_head ({n_head})"
                ),
            });
        }
        let mut rng = TensorRng::new(seed);
        let qkv = Linear::new(n_embd, 3 * n_embd, bias, &mut rng);
        let proj = Linear::new(n_embd, n_embd, bias, &mut rng);
        let attn_dropout = Dropout::new(dropout, rng.next_u64())?;
        let resid_dropout = Dropout::new(dropout, rng.next_u64())?;
        Ok(MultiHeadAttention {
            qkv,
            proj,
            attn_dropout,
            resid_dropout,
            n_head,
            n_embd,
        })
    }

    /// A layer around given projections (`qkv`: `C -> 3C`, `proj`: `C -> C`), without dropout.
    pub fn from_projections(
        qkv: Linear,
        proj: Linear,
        n_head: usize,
    ) -> Result<MultiHeadAttention> {
        let c = proj.in_features();
        let fits = n_head > 0
            && c.is_multiple_of(n_head)
            && proj.out_features() == c
            && qkv.in_features() == c
            && qkv.out_features() == 3 * c;
        if !fits {
            return Err(NnError::Invalid {
                layer: "MultiHeadAttention",
                reason: format!(
                    "needs qkv weight (3C, C) and proj weight (C, C) with C a multiple of n_head = {n_head}, got {:?} and {:?}",
                    qkv.weight.shape(),
                    proj.weight.shape()
                ),
            });
        }
        Ok(MultiHeadAttention {
            qkv,
            proj,
            attn_dropout: Dropout::new(0.0, 0)?,
            resid_dropout: Dropout::new(0.0, 0)?,
            n_head,
            n_embd: c,
        })
    }

    /// The number of heads `H`.
    pub fn n_head(&self) -> usize {
        self.n_head
    }

    /// The model width `C`.
    pub fn n_embd(&self) -> usize {
        self.n_embd
    }

    /// The width of one head, `C / H`.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    fn check_input(&self, x: &Variable) -> Result<()> {
        let shape = x.shape();
        if shape.len() != 3 || shape[2] != self.n_embd {
            return Err(NnError::Invalid {
                layer: "MultiHeadAttention",
                reason: format!(
                    "input must be (B, T, C) with C = n_embd = {}, got shape {shape:?}",
                    self.n_embd
                ),
            });
        }
        Ok(())
    }

    /// Queries, keys and values of every head, each `(B, H, T, D)`: one `qkv` product, then
    /// views of it (no copy).
    pub fn split_heads(&self, x: &Variable) -> Result<(Variable, Variable, Variable)> {
        self.check_input(x)?;
        self.split_checked(x)
    }

    /// [`MultiHeadAttention::split_heads`] on a checked `(B, T, C)` input.
    fn split_checked(&self, x: &Variable) -> Result<(Variable, Variable, Variable)> {
        // HINT: qkv(x) is (B, T, 3C) = (B, T, 3, H, D) in memory; permute it to (3, B, H, T, D)
        // HINT: and take the three slices of dim 0 (narrow + squeeze): all views of one buffer.
        // BEGIN SOLUTION
        let shape = x.shape();
        let (b, t, h, d) = (shape[0], shape[1], self.n_head, self.head_dim());
        let qkv = self.qkv.forward(x)?;
        let heads = qkv
            .reshape_to(&[b, t, 3, h, d])?
            .permute(&[2, 0, 3, 1, 4])?;
        let part = |i: usize| heads.narrow(0, i, 1)?.squeeze(0);
        Ok((part(0)?, part(1)?, part(2)?))
        // END SOLUTION
    }

    /// `(B, H, T, D)` heads back to `(B, T, C)`, then the output projection and dropout.
    fn merge_heads(&self, y: &Variable) -> Result<Variable> {
        let s = y.shape();
        let merged = y.transpose(1, 2)?.reshape_to(&[s[0], s[2], self.n_embd])?;
        self.resid_dropout.forward(&self.proj.forward(&merged)?)
    }

    fn attention_dropout_active(&self) -> bool {
        self.attn_dropout.is_training() && self.attn_dropout.p() > 0.0
    }

    /// Self-attention of `x` `(B, T, C)` under `mask` (scores `(B, H, T, T)`). Without a mask or
    /// with the causal one (and no attention dropout) this is one [`packed_attention`] node
    /// between the two projections; otherwise the composed [`attention`] on the head views.
    pub fn forward_masked(&self, x: &Variable, mask: &AttentionMask) -> Result<Variable> {
        self.check_input(x)?;
        let causal = match mask {
            AttentionMask::None => Some(false),
            AttentionMask::Causal => Some(true),
            AttentionMask::Keep(_) => None,
        };
        match causal {
            Some(causal) if !self.attention_dropout_active() => {
                let y = packed_attention(&self.qkv.forward(x)?, self.n_head, causal)?;
                self.resid_dropout.forward(&self.proj.forward(&y)?)
            }
            _ => {
                let (q, k, v) = self.split_heads(x)?;
                let dropout = self
                    .attention_dropout_active()
                    .then_some(&self.attn_dropout);
                self.merge_heads(&attention(&q, &k, &v, mask, dropout)?.0)
            }
        }
    }

    /// Like [`MultiHeadAttention::forward_masked`], also returning the attention weights
    /// `(B, H, T, T)` (before dropout; each row sums to 1). Takes the composed path.
    pub fn forward_with_weights(
        &self,
        x: &Variable,
        mask: &AttentionMask,
    ) -> Result<(Variable, Variable)> {
        let (q, k, v) = self.split_heads(x)?;
        let dropout = self
            .attention_dropout_active()
            .then_some(&self.attn_dropout);
        let (y, weights) = attention(&q, &k, &v, mask, dropout)?;
        Ok((self.merge_heads(&y)?, weights))
    }

    /// Causal attention of new positions `x_new` `(B, T, C)` that follow the `cache.len()`
    /// cached ones: their keys and values are appended to `cache`, and each new query attends
    /// to every cached position and the new ones up to itself. Feeding a sequence in pieces
    /// gives the outputs of [`Module::forward`] on the whole sequence.
    pub fn forward_cached(&self, x_new: &Variable, cache: &mut KvCache) -> Result<Variable> {
        let (q, k, v) = self.split_heads(x_new)?;
        let (k_all, v_all) = cache.append(&k, &v)?;
        let y = if self.attention_dropout_active() {
            attention(
                &q,
                &k_all,
                &v_all,
                &AttentionMask::Causal,
                Some(&self.attn_dropout),
            )?
            .0
        } else {
            scaled_dot_product_attention(&q, &k_all, &v_all, &AttentionMask::Causal)?
        };
        self.merge_heads(&y)
    }
}

impl Module for MultiHeadAttention {
    /// Causal self-attention (the decoder default; other masks via `forward_masked`).
    fn forward(&self, input: &Variable) -> Result<Variable> {
        self.forward_masked(input, &AttentionMask::Causal)
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        let mut params = prefixed("qkv", self.qkv.named_parameters());
        params.extend(prefixed("proj", self.proj.named_parameters()));
        params
    }

    fn set_training(&mut self, training: bool) {
        self.attn_dropout.set_training(training);
        self.resid_dropout.set_training(training);
    }
}

impl std::fmt::Debug for MultiHeadAttention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MultiHeadAttention(n_embd={}, n_head={}, dropout={}, bias={})",
            self.n_embd,
            self.n_head,
            self.attn_dropout.p(),
            self.qkv.bias.is_some()
        )
    }
}
