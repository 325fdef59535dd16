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
//!
//! | file | concept |
//! |---|---|
//! | [`mask`] | [`AttentionMask`]: which keys each query may see, checked against the scores |
//! | [`functional`] | attention as functions: the definition, the fused node, the packed node |
//! | [`kv_cache`] | [`KvCache`]: keys and values of past positions for incremental decoding |
//! | [`multi_head`] | [`MultiHeadAttention`]: projections, heads, dropout, cached forward |

pub mod functional;
pub mod kv_cache;
pub mod mask;
pub mod multi_head;

pub use functional::{attention, packed_attention, scaled_dot_product_attention};
pub use kv_cache::KvCache;
pub use mask::AttentionMask;
pub use multi_head::{AttentionConfig, MultiHeadAttention};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::NnError;
    use crate::module::Module;
    use autograd::no_grad;
    use autograd::Variable;
    use tensor::{Tensor, TensorRng};

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

    /// Per-row caches refuse a wrong count for the batch and a cache that holds a batch of several
    /// rows, with a message saying so.
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
