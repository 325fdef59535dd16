//! [`MultiHeadAttention`]: the layer. A fused `qkv` projection, heads as views, the fused or the
//! composed attention, an output projection, dropout; plus the cached forward for generation.

use autograd::Variable;
use tensor::sdpa::packed_dims;
use tensor::{Tensor, TensorRng};

use super::functional::{attention, packed_attention};
use super::kv_cache::{KvCache, RowLayout};
use super::mask::AttentionMask;
use crate::dropout::Dropout;
use crate::error::{NnError, Result};
use crate::linear::Linear;
use crate::module::{prefixed, Module};

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

/// The packed projection of new positions, as the cached paths read it.
struct NewPositions {
    /// `(B, T, 3C)`, contiguous.
    qkv: Tensor,
    b: usize,
    t: usize,
    c: usize,
    /// `1 / sqrt(D)`.
    scale: f32,
    /// Where each query row sits in `qkv`.
    q_at: RowLayout,
    /// Where each output row goes in `(B, T, C)`.
    out_at: RowLayout,
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
                op: "MultiHeadAttention",
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
                op: "MultiHeadAttention",
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
                op: "MultiHeadAttention",
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
    /// cached ones: their keys and values are written into `cache`, and each new query attends
    /// to every cached position and the new ones up to itself. Feeding a sequence in pieces
    /// gives the outputs of [`Module::forward`] on the whole sequence.
    ///
    /// Inference only: fails unless gradients are off (`no_grad`) or nothing requires them, and
    /// in training mode with attention dropout. A prefill (empty cache) runs the same fused
    /// kernel as the uncached forward; later pieces attend over the cache in place.
    pub fn forward_cached(&self, x_new: &Variable, cache: &mut KvCache) -> Result<Variable> {
        let p = self.project_new(x_new)?;
        let y = if cache.is_empty() {
            // Prefill: exactly the uncached causal attention of these positions.
            let (y, _) = tensor::sdpa::packed_attention(&p.qkv, self.n_head, p.scale, true)?;
            cache.append_packed(&p.qkv, self.n_head)?;
            y
        } else {
            cache.append_packed(&p.qkv, self.n_head)?;
            let mut out = vec![0.0f32; p.b * p.t * p.c];
            let rows = p.qkv.as_slice().unwrap_or(&[]);
            cache.attend_rows_simd(rows, p.q_at, p.t, &mut out, p.out_at, p.scale);
            Tensor::from_vec(out, &[p.b, p.t, p.c])?
        };
        self.project_out(y)
    }

    /// Cached attention of `B` independent sequences decoded together, each with its own cache
    /// (and so its own length): row `b` of `x_new` `(B, T, C)` holds the next `T` positions of
    /// sequence `b`, which follow the `caches[b].len()` positions cached there. One `qkv` and one
    /// `proj` product serve the whole batch (a GEMM of `B * T` rows instead of `B` products of
    /// `T` rows); then each row writes its keys and values into its own cache and attends over
    /// it alone. Row `b` of the output equals [`MultiHeadAttention::forward_cached`] on row `b`
    /// alone with `caches[b]` (the same per-row arithmetic); a cache must hold one sequence
    /// (`B = 1`) or be empty.
    ///
    /// The batched decode of a server: prompts of different lengths sit at different positions,
    /// which one shared cache (a single length for the whole batch) cannot express without
    /// padding. Inference only, like `forward_cached`.
    pub fn forward_cached_rows(
        &self,
        x_new: &Variable,
        caches: &mut [&mut KvCache],
    ) -> Result<Variable> {
        self.check_cached(x_new)?;
        let shape = x_new.shape();
        if caches.len() != shape[0] {
            return Err(NnError::Invalid {
                op: "KvCache",
                reason: format!(
                    "{} caches for a batch of {} sequences (one cache per row of (B, T, C) = {shape:?})",
                    caches.len(),
                    shape[0]
                ),
            });
        }
        let p = self.project_new(x_new)?;
        let (b, t, c) = (p.b, p.t, p.c);
        let rows = p.qkv.as_slice().unwrap_or(&[]);
        let mut out = vec![0.0f32; b * t * c];
        // HINT: row b's projection is rows[b * t * 3C ..][.. t * 3C] and its output
        // HINT: out[b * t * C ..][.. t * C]: append that row's keys and values to caches[b] (a
        // HINT: one-sequence cache), then let caches[b] attend with the layouts p.q_at and
        // HINT: p.out_at; finally the output projection of all rows at once (project_out).
        // BEGIN SOLUTION
        let row_in = t * 3 * c;
        let row_out = t * c;
        for ((cache, q), y) in caches
            .iter_mut()
            .zip(rows.chunks_exact(row_in))
            .zip(out.chunks_exact_mut(row_out))
        {
            cache.append_packed_row(q, t, self.n_head)?;
            cache.attend_rows_simd(q, p.q_at, t, y, p.out_at, p.scale);
        }
        self.project_out(Tensor::from_vec(out, &[b, t, c])?)
        // END SOLUTION
    }

    /// The cached paths' start: the checks, then the packed projection `(B, T, 3C)` of the new
    /// positions (contiguous) with the layouts the cache reads its queries with and writes the
    /// `(B, T, C)` output with.
    fn project_new(&self, x_new: &Variable) -> Result<NewPositions> {
        self.check_cached(x_new)?;
        let qkv = self.qkv.forward(x_new)?.value().contiguous();
        let (b, t, c) = packed_dims("MultiHeadAttention", qkv.shape(), self.n_head)?;
        let d = c / self.n_head;
        Ok(NewPositions {
            qkv,
            b,
            t,
            c,
            scale: 1.0 / (d as f32).sqrt(),
            q_at: RowLayout {
                batch: t * 3 * c,
                head: d,
                row: 3 * c,
            },
            out_at: RowLayout {
                batch: t * c,
                head: d,
                row: c,
            },
        })
    }

    /// The cached paths' end: the output projection (and its dropout) of the merged heads.
    fn project_out(&self, y: Tensor) -> Result<Variable> {
        self.resid_dropout
            .forward(&self.proj.forward(&Variable::constant(y))?)
    }

    /// The checks of every cached forward: a `(B, T, C)` input, no gradients wanted, no active
    /// attention dropout.
    fn check_cached(&self, x_new: &Variable) -> Result<()> {
        self.check_input(x_new)?;
        let trainable = |l: &Linear| {
            l.weight.requires_grad() || l.bias.as_ref().is_some_and(Variable::requires_grad)
        };
        let needs_graph = autograd::is_grad_enabled()
            && (x_new.requires_grad() || trainable(&self.qkv) || trainable(&self.proj));
        if needs_graph {
            return Err(NnError::Invalid {
                op: "KvCache",
                reason: "cached attention computes no gradients: run it under no_grad (as generation does)"
                    .to_string(),
            });
        }
        if self.attention_dropout_active() {
            return Err(NnError::Invalid {
                op: "KvCache",
                reason: format!(
                    "attention dropout {} is active: call eval() before decoding with a cache",
                    self.attn_dropout.p()
                ),
            });
        }
        Ok(())
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
