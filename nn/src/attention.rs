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
//! - [`KvCache`] makes generation incremental: each step projects only the new tokens, writes
//!   their keys and values into buffers preallocated for the whole context (nothing cached is
//!   ever copied again), and attends over everything cached with one tight loop per query row
//!   (for one new token, a matrix-vector product per head). The output equals the uncached
//!   forward on the whole sequence; it runs under `no_grad` (inference only).

use autograd::Variable;
use tensor::kv_attention::{dot, weighted_sum};
use tensor::simd::fast_exp;
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
                op: "MultiHeadAttention",
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
                        op: "MultiHeadAttention",
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
                        op: "MultiHeadAttention",
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
/// ([`Variable::packed_attention`]). The same as [`MultiHeadAttention::split_heads`],
/// [`scaled_dot_product_attention`] and a merge.
pub fn packed_attention(qkv: &Variable, n_head: usize, causal: bool) -> Result<Variable> {
    let (_, _, c) = packed_dims("packed_attention", &qkv.shape(), n_head)?;
    let scale = 1.0 / ((c / n_head) as f32).sqrt();
    Ok(qkv.packed_attention(n_head, scale, causal)?)
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

/// The keys and values of every position seen so far, for one attention layer, for incremental
/// decoding (what PyTorch code calls `past_key_values`, as a preallocated "static" cache).
///
/// Storage is two flat buffers laid out `(B, H, capacity, D)`: position `s` of head `h` of
/// sequence `b` lives at `((b * H + h) * capacity + s) * D`. Appending writes the new positions
/// in place; nothing already cached is copied. [`KvCache::with_capacity`] reserves room for a
/// whole context (a GPT's `block_size`) up front, so a generation never reallocates;
/// [`KvCache::clear`] keeps the buffers for the next sequence. A cache created with
/// [`KvCache::new`] starts empty and grows like a `Vec` (doubling) when it must.
///
/// The cache is an inference tool: cached attention computes values, not a graph, so
/// [`MultiHeadAttention::forward_cached`] must run under `no_grad` (generation does).
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    k: Vec<f32>,
    v: Vec<f32>,
    /// `(B, H, D)` of the cached keys, fixed by the first append after a clear.
    dims: Option<[usize; 3]>,
    /// Positions each head's buffer can hold before it must grow.
    capacity: usize,
    /// Positions cached.
    len: usize,
}

impl KvCache {
    /// An empty cache that allocates on the first append and grows when it must.
    pub fn new() -> KvCache {
        KvCache::default()
    }

    /// An empty cache with room for `capacity` positions per head (allocated by the first append,
    /// when the batch size, heads and head width are known); it grows only past `capacity`.
    pub fn with_capacity(capacity: usize) -> KvCache {
        KvCache {
            capacity,
            ..KvCache::default()
        }
    }

    /// The number of cached positions `S`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions that fit without reallocating.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// `(B, H, D)` of the cached keys and values (`None` while empty).
    pub fn dims(&self) -> Option<[usize; 3]> {
        self.dims.filter(|_| self.len > 0)
    }

    /// Forget every cached position (start a new sequence); the buffers are kept.
    pub fn clear(&mut self) {
        self.len = 0;
        self.dims = None;
    }

    /// Make room for `t` more positions of `(B, H, D)` = `dims`: check they continue the cached
    /// ones, allocate on first use, grow (doubling, copying each head's prefix) past capacity.
    fn reserve(&mut self, dims: [usize; 3], t: usize) -> Result<()> {
        if let Some(have) = self.dims.filter(|_| self.len > 0) {
            if have != dims {
                return Err(NnError::Invalid {
                    op: "KvCache",
                    reason: format!(
                        "new keys with (B, H, D) = {dims:?} do not continue the cached {have:?} (same B, H and D needed; clear() starts a new sequence)"
                    ),
                });
            }
        }
        self.dims = Some(dims);
        let heads = dims[0] * dims[1];
        let d = dims[2];
        let needed = self.len + t;
        let cap = if needed > self.capacity {
            needed.max(2 * self.capacity)
        } else {
            self.capacity
        };
        if self.k.len() != heads * cap * d {
            // A first allocation, a new (B, H, D) after clear(), or growth: lay the buffers out
            // for `cap` positions and move each head's cached prefix to its new place.
            let mut k = vec![0.0; heads * cap * d];
            let mut v = vec![0.0; heads * cap * d];
            if self.len > 0 {
                let old = self.capacity * d;
                for h in 0..heads {
                    let (src, dst) = (h * old, h * cap * d);
                    let n = self.len * d;
                    k[dst..dst + n].copy_from_slice(&self.k[src..src + n]);
                    v[dst..dst + n].copy_from_slice(&self.v[src..src + n]);
                }
            }
            self.k = k;
            self.v = v;
            self.capacity = cap;
        }
        Ok(())
    }

    /// Append the keys and values of `t` new positions, each `(B, H, T, D)`, after the cached
    /// ones (written in place).
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<()> {
        let (ks, vs) = (k.shape(), v.shape());
        if ks.len() != 4 || ks != vs {
            return Err(NnError::Invalid {
                op: "KvCache",
                reason: format!("keys and values must both be (B, H, T, D), got {ks:?} and {vs:?}"),
            });
        }
        let (t, dims) = (ks[2], [ks[0], ks[1], ks[3]]);
        self.reserve(dims, t)?;
        let (k, v) = (k.contiguous(), v.contiguous());
        let (k, v) = (k.to_vec(), v.to_vec());
        let d = dims[2];
        for h in 0..dims[0] * dims[1] {
            let src = h * t * d;
            let dst = (h * self.capacity + self.len) * d;
            self.k[dst..dst + t * d].copy_from_slice(&k[src..src + t * d]);
            self.v[dst..dst + t * d].copy_from_slice(&v[src..src + t * d]);
        }
        self.len += t;
        Ok(())
    }

    /// Append the keys and values of the `t` positions of a fused projection `qkv` `(B, T, 3C)`
    /// (queries, keys, values of `n_head` heads side by side, as [`packed_attention`] reads it).
    pub fn append_packed(&mut self, qkv: &Tensor, n_head: usize) -> Result<()> {
        let (b, t, c) = packed_dims("KvCache::append_packed", qkv.shape(), n_head)?;
        self.reserve([b, n_head, c / n_head], t)?;
        let qkv = qkv.contiguous();
        let rows = qkv.as_slice().unwrap_or(&[]);
        self.write_packed(rows, b, t, n_head);
        self.len += t;
        Ok(())
    }

    /// Append the keys and values of `t` positions of one sequence, given as the row-major
    /// `(1, T, 3C)` projection `qkv` (a row of a batch's projection, read in place). The cache
    /// must hold one sequence (`B = 1`) or nothing.
    fn append_packed_row(&mut self, qkv: &[f32], t: usize, n_head: usize) -> Result<()> {
        let width = qkv.len() / t.max(1);
        let fits =
            t > 0 && n_head > 0 && qkv.len() == t * width && width.is_multiple_of(3 * n_head);
        if !fits {
            return Err(NnError::Invalid {
                op: "KvCache",
                reason: format!(
                    "a row of {} floats is not T = {t} positions of 3C with C a multiple of n_head = {n_head}",
                    qkv.len()
                ),
            });
        }
        self.reserve([1, n_head, width / 3 / n_head], t)?;
        self.write_packed(qkv, 1, t, n_head);
        self.len += t;
        Ok(())
    }

    /// Copy keys and values of `t` new positions out of the row-major `(B, T, 3C)` projection
    /// `qkv` into positions `len .. len + t` of the buffers (room is reserved; `len` unchanged).
    fn write_packed(&mut self, qkv: &[f32], b: usize, t: usize, n_head: usize) {
        // HINT: row (b, i) of qkv holds [q | k | v], each C = H * D wide; head h's key is the
        // HINT: D floats at C + h * D of that row. Its slot: ((b * H + h) * capacity + len + i) * D.
        // BEGIN SOLUTION
        let d = self.dims.map_or(1, |dims| dims[2]);
        let c = n_head * d;
        for bi in 0..b {
            for i in 0..t {
                let row = &qkv[(bi * t + i) * 3 * c..(bi * t + i + 1) * 3 * c];
                for h in 0..n_head {
                    let dst = ((bi * n_head + h) * self.capacity + self.len + i) * d;
                    self.k[dst..dst + d].copy_from_slice(&row[c + h * d..c + (h + 1) * d]);
                    self.v[dst..dst + d].copy_from_slice(&row[2 * c + h * d..2 * c + (h + 1) * d]);
                }
            }
        }
        // END SOLUTION
    }

    /// The cached keys `(B, H, S, D)` (a copy, for inspection).
    pub fn keys(&self) -> Tensor {
        self.gather(&self.k)
    }

    /// The cached values `(B, H, S, D)` (a copy, for inspection).
    pub fn values(&self) -> Tensor {
        self.gather(&self.v)
    }

    fn gather(&self, buffer: &[f32]) -> Tensor {
        let Some([b, h, d]) = self.dims() else {
            return Tensor::zeros(&[0, 0, 0, 0]);
        };
        let mut out = Vec::with_capacity(b * h * self.len * d);
        for head in 0..b * h {
            let start = head * self.capacity * d;
            out.extend_from_slice(&buffer[start..start + self.len * d]);
        }
        Tensor::from_vec(out, &[b, h, self.len, d]).unwrap_or_else(|_| Tensor::zeros(&[0]))
    }

    /// Causal attention of the last `T` cached positions' queries `q` `(B, H, T, D)` over every
    /// cached key: query `i` sees keys `0 ..= S - T + i`. Append the new keys and values first.
    /// Returns `(B, H, T, D)`.
    pub fn attend(&self, q: &Tensor) -> Result<Tensor> {
        let shape = q.shape();
        let fits = shape.len() == 4
            && self.dims() == Some([shape[0], shape[1], shape[3]])
            && shape[2] <= self.len;
        if !fits {
            return Err(NnError::Invalid {
                op: "KvCache",
                reason: format!(
                    "queries must be (B, H, T, D) with (B, H, D) = {:?} and T <= {} cached positions, got {shape:?}",
                    self.dims(),
                    self.len
                ),
            });
        }
        let (b, h, t, d) = (shape[0], shape[1], shape[2], shape[3]);
        let q = q.contiguous();
        let mut out = vec![0.0; b * h * t * d];
        let layout = RowLayout {
            batch: h * t * d,
            head: t * d,
            row: d,
        };
        let scale = 1.0 / (d.max(1) as f32).sqrt();
        self.attend_rows_simd(
            q.as_slice().unwrap_or(&[]),
            layout,
            t,
            &mut out,
            layout,
            scale,
        );
        Ok(Tensor::from_vec(out, shape)?)
    }

    /// `out[b, h, i] = softmax(scale * q[b, h, i] . K[b, h, 0..=S-T+i]) V[b, h, ...]` for every
    /// sequence `b`, head `h` and new position `i < t`: one query row against the cached keys, a
    /// dot product per key, a max-shifted softmax, a weighted sum of value rows. `q` and `out`
    /// rows of `D` floats sit at `b * batch + h * head + i * row` (so packed `(B, T, 3C)`
    /// projections and merged `(B, T, C)` outputs are read and written in place).
    #[inline(always)]
    fn attend_rows(
        &self,
        q: &[f32],
        q_at: RowLayout,
        t: usize,
        out: &mut [f32],
        out_at: RowLayout,
        scale: f32,
    ) {
        // HINT: for each (b, h, i): the visible keys are 0..=len - t + i. scores[s] = scale *
        // HINT: dot(q_row, key s); subtract the max, exponentiate (fast_exp), sum; then out_row =
        // HINT: weighted_sum(values, scores) / total. Keep the scores in one reused buffer.
        // BEGIN SOLUTION
        let Some([b, h, d]) = self.dims() else {
            return;
        };
        let mut scores = vec![0.0f32; self.len];
        for bi in 0..b {
            for hi in 0..h {
                let base = (bi * h + hi) * self.capacity * d;
                let keys = &self.k[base..base + self.len * d];
                let values = &self.v[base..base + self.len * d];
                for i in 0..t {
                    let visible = self.len - t + i + 1;
                    let scores = &mut scores[..visible];
                    let qo = bi * q_at.batch + hi * q_at.head + i * q_at.row;
                    let q_row = &q[qo..qo + d];
                    for (score, key) in scores.iter_mut().zip(keys.chunks_exact(d)) {
                        *score = scale * dot(q_row, key);
                    }
                    let max = scores.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                    for score in scores.iter_mut() {
                        *score = fast_exp(*score - max);
                    }
                    let total: f32 = scores.iter().sum();
                    let oo = bi * out_at.batch + hi * out_at.head + i * out_at.row;
                    let out_row = &mut out[oo..oo + d];
                    weighted_sum(values, scores, out_row);
                    for o in out_row.iter_mut() {
                        *o /= total;
                    }
                }
            }
        }
        // END SOLUTION
    }
}

impl KvCache {
    /// [`KvCache::attend_rows`] compiled for the CPU's vector unit (AVX-512, or AVX2 with FMA)
    /// when it has one: the crate is built for baseline x86-64 (4-wide SSE2), but the dot
    /// products and weighted sums are plain loops the compiler widens when told it may. The
    /// arithmetic and its order are the same on every path, so results do not depend on the CPU.
    fn attend_rows_simd(
        &self,
        q: &[f32],
        q_at: RowLayout,
        t: usize,
        out: &mut [f32],
        out_at: RowLayout,
        scale: f32,
    ) {
        tensor::simd::with_simd(
            #[inline(always)]
            || self.attend_rows(q, q_at, t, out, out_at, scale),
        )
    }
}

/// Where the `D`-float rows of a `(B, H, T)` grid of vectors start: `b * batch + h * head + i *
/// row` elements into a buffer.
#[derive(Clone, Copy, Debug)]
struct RowLayout {
    batch: usize,
    head: usize,
    row: usize,
}

/// `(B, T, C)` of a fused projection `(B, T, 3C)` with `C` a multiple of `n_head`.
fn packed_dims(
    layer: &'static str,
    shape: &[usize],
    n_head: usize,
) -> Result<(usize, usize, usize)> {
    if shape.len() != 3 || n_head == 0 || !shape[2].is_multiple_of(3 * n_head) {
        return Err(NnError::Invalid {
            op: layer,
            reason: format!(
                "qkv must be (B, T, 3C) with C a multiple of n_head = {n_head}, got {shape:?}"
            ),
        });
    }
    Ok((shape[0], shape[1], shape[2] / 3))
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
        self.check_cached(x_new)?;
        let qkv = self.qkv.forward(x_new)?.value();
        let (b, t, c) = packed_dims("MultiHeadAttention", qkv.shape(), self.n_head)?;
        let d = c / self.n_head;
        let scale = 1.0 / (d as f32).sqrt();
        let y = if cache.is_empty() {
            // Prefill: exactly the uncached causal attention of these positions.
            let (y, _) = tensor::sdpa::packed_attention(&qkv, self.n_head, scale, true)?;
            cache.append_packed(&qkv, self.n_head)?;
            y
        } else {
            cache.append_packed(&qkv, self.n_head)?;
            let qkv = qkv.contiguous();
            let mut out = vec![0.0f32; b * t * c];
            let q_at = RowLayout {
                batch: t * 3 * c,
                head: d,
                row: 3 * c,
            };
            let out_at = RowLayout {
                batch: t * c,
                head: d,
                row: c,
            };
            let rows = qkv.as_slice().unwrap_or(&[]);
            cache.attend_rows_simd(rows, q_at, t, &mut out, out_at, scale);
            Tensor::from_vec(out, &[b, t, c])?
        };
        self.resid_dropout
            .forward(&self.proj.forward(&Variable::constant(y))?)
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
        let qkv = self.qkv.forward(x_new)?.value();
        let (b, t, c) = packed_dims("MultiHeadAttention", qkv.shape(), self.n_head)?;
        let d = c / self.n_head;
        let scale = 1.0 / (d as f32).sqrt();
        let qkv = qkv.contiguous();
        let rows = qkv.as_slice().unwrap_or(&[]);
        let mut out = vec![0.0f32; b * t * c];
        // HINT: row b's projection is rows[b * t * 3C ..][.. t * 3C] and its output
        // HINT: out[b * t * C ..][.. t * C]: append that row's keys and values to caches[b] (a
        // HINT: one-sequence cache), then let caches[b] attend with the layouts of forward_cached;
        // HINT: finally the output projection of all rows at once, as in forward_cached.
        // BEGIN SOLUTION
        let q_at = RowLayout {
            batch: t * 3 * c,
            head: d,
            row: 3 * c,
        };
        let out_at = RowLayout {
            batch: t * c,
            head: d,
            row: c,
        };
        let row_in = t * 3 * c;
        let row_out = t * c;
        for ((cache, q), y) in caches
            .iter_mut()
            .zip(rows.chunks_exact(row_in))
            .zip(out.chunks_exact_mut(row_out))
        {
            cache.append_packed_row(q, t, self.n_head)?;
            cache.attend_rows_simd(q, q_at, t, y, out_at, scale);
        }
        let y = Tensor::from_vec(out, &[b, t, c])?;
        self.resid_dropout
            .forward(&self.proj.forward(&Variable::constant(y))?)
        // END SOLUTION
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

#[cfg(test)]
mod tests {
    use super::*;
    use autograd::no_grad;

    fn layer() -> MultiHeadAttention {
        MultiHeadAttention::new(&AttentionConfig {
            n_embd: 16,
            n_head: 4,
            dropout: 0.0,
            bias: true,
            seed: 3,
        })
        .unwrap()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// Three sequences of different cached lengths (5, 1 and 3 positions) decode one position
    /// each in one call: each row equals that sequence's own full forward at its last position
    /// and its own one-sequence cached step.
    #[test]
    fn per_row_caches_decode_like_each_sequence_alone() {
        let mha = layer();
        let lens = [6usize, 2, 4];
        let mut rng = TensorRng::new(11);
        let seqs: Vec<Tensor> = lens
            .iter()
            .map(|&t| rng.normal(&[1, t, 16], 0.0, 1.0).unwrap())
            .collect();
        no_grad(|| {
            let mut row_caches: Vec<KvCache> = Vec::new();
            let mut alone_caches: Vec<KvCache> = Vec::new();
            let mut last_rows = Vec::new();
            for (seq, &t) in seqs.iter().zip(&lens) {
                let prefix = Variable::constant(seq.narrow(1, 0, t - 1).unwrap());
                let mut cache = KvCache::with_capacity(8);
                mha.forward_cached(&prefix, &mut cache).unwrap();
                row_caches.push(cache.clone());
                alone_caches.push(cache);
                last_rows.extend(seq.narrow(1, t - 1, 1).unwrap().contiguous().to_vec());
            }
            let x = Variable::constant(Tensor::from_vec(last_rows, &[3, 1, 16]).unwrap());
            let mut refs: Vec<&mut KvCache> = row_caches.iter_mut().collect();
            let out = mha
                .forward_cached_rows(&x, &mut refs)
                .unwrap()
                .value()
                .to_vec();
            for (r, (seq, &t)) in seqs.iter().zip(&lens).enumerate() {
                let got = &out[r * 16..(r + 1) * 16];
                let full = mha
                    .forward(&Variable::constant(seq.clone()))
                    .unwrap()
                    .value();
                let want = full.narrow(1, t - 1, 1).unwrap().contiguous().to_vec();
                let diff = max_diff(got, &want);
                assert!(diff < 1e-5, "row {r}: {diff} from the full forward");
                let last = Variable::constant(seq.narrow(1, t - 1, 1).unwrap());
                let step = mha.forward_cached(&last, &mut alone_caches[r]).unwrap();
                let diff = max_diff(got, &step.value().to_vec());
                assert!(diff < 1e-5, "row {r}: {diff} from its one-sequence step");
                assert_eq!(row_caches[r].len(), t);
                assert_eq!(
                    row_caches[r].keys().to_vec(),
                    alone_caches[r].keys().to_vec()
                );
                assert_eq!(
                    row_caches[r].values().to_vec(),
                    alone_caches[r].values().to_vec()
                );
            }
        });
    }

    /// An empty cache per row, several positions at once: causal attention of each row.
    #[test]
    fn per_row_prefill_is_causal_attention() {
        let mha = layer();
        let x = TensorRng::new(5).normal(&[2, 3, 16], 0.0, 1.0).unwrap();
        no_grad(|| {
            let full = mha.forward(&Variable::constant(x.clone())).unwrap().value();
            let (mut a, mut b) = (KvCache::new(), KvCache::new());
            let out = mha
                .forward_cached_rows(&Variable::constant(x.clone()), &mut [&mut a, &mut b])
                .unwrap()
                .value();
            let diff = max_diff(&out.to_vec(), &full.contiguous().to_vec());
            assert!(diff < 1e-5, "{diff}");
            assert_eq!((a.len(), b.len()), (3, 3));
            assert_eq!(a.dims(), Some([1, 4, 4]));
        });
    }

    #[test]
    fn per_row_caches_check_their_input() {
        let mha = layer();
        let x = Variable::constant(Tensor::zeros(&[2, 1, 16]));
        let reason = |e: NnError| e.to_string();
        no_grad(|| {
            let mut one = KvCache::new();
            let msg = reason(mha.forward_cached_rows(&x, &mut [&mut one]).unwrap_err());
            assert!(msg.contains("1 caches for a batch of 2"), "{msg}");
            // A cache holding a batch of two cannot serve as one row.
            let mut batch = KvCache::new();
            mha.forward_cached(&x, &mut batch).unwrap();
            let mut other = KvCache::new();
            let msg = reason(
                mha.forward_cached_rows(&x, &mut [&mut batch, &mut other])
                    .unwrap_err(),
            );
            assert!(msg.contains("do not continue"), "{msg}");
            let bad = Variable::constant(Tensor::zeros(&[2, 1, 8]));
            let (mut a, mut b) = (KvCache::new(), KvCache::new());
            let msg = reason(
                mha.forward_cached_rows(&bad, &mut [&mut a, &mut b])
                    .unwrap_err(),
            );
            assert!(msg.contains("C = n_embd = 16"), "{msg}");
        });
        // Gradients on: refused, as for forward_cached.
        let (mut a, mut b) = (KvCache::new(), KvCache::new());
        let msg = reason(
            mha.forward_cached_rows(&x, &mut [&mut a, &mut b])
                .unwrap_err(),
        );
        assert!(msg.contains("no_grad"), "{msg}");
    }
}
