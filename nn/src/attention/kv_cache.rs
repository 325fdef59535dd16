//! [`KvCache`]: the keys and values of every position seen so far, written in place into buffers
//! preallocated for a whole context, and the per-query-row loop that attends over them.

use tensor::kv_attention::{dot, weighted_sum};
use tensor::sdpa::packed_dims;
use tensor::simd::fast_exp;
use tensor::Tensor;

use crate::error::{NnError, Result};

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
/// [`MultiHeadAttention::forward_cached`](super::MultiHeadAttention::forward_cached) must run
/// under `no_grad` (generation does).
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
    pub(crate) fn append_packed_row(&mut self, qkv: &[f32], t: usize, n_head: usize) -> Result<()> {
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
    pub(crate) fn attend_rows_simd(
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
pub(crate) struct RowLayout {
    pub(crate) batch: usize,
    pub(crate) head: usize,
    pub(crate) row: usize,
}
