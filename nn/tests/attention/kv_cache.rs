//! The KV cache: cached decoding equals the full forward, in-place writes, growth, the sliding
//! window, equal tokens with less work.

use crate::helpers::{assert_close, block_config, config, randn, TinyGpt};
use autograd::{no_grad, Variable};
use nn::attention::{attention, AttentionMask, KvCache, MultiHeadAttention};
use nn::transformer::TransformerBlock;
use nn::Module;
use tensor::Tensor;

/// Feeding a sequence through the KV cache in pieces (prompt, then single tokens) gives the same
/// outputs as one full forward.
#[test]
fn kv_cached_attention_equals_the_full_forward() {
    let mha = MultiHeadAttention::new(&config(16, 4, 0.0, 9)).unwrap();
    let x = randn(&[2, 9, 16], 1.0, 50);
    let full = no_grad(|| mha.forward(&Variable::constant(x.clone())).unwrap().value());
    // Feed the sequence in pieces: a 4-token prompt, then 1, 1, 3 tokens.
    let mut cache = KvCache::new();
    let mut start = 0;
    for len in [4, 1, 1, 3] {
        let piece = Variable::constant(x.narrow(1, start, len).unwrap());
        let out = no_grad(|| mha.forward_cached(&piece, &mut cache).unwrap().value());
        let want = full.narrow(1, start, len).unwrap();
        assert_close(
            &out,
            &want,
            1e-5,
            &format!("positions {start}..{}", start + len),
        );
        start += len;
        assert_eq!(cache.len(), start);
    }
    cache.clear();
    assert!(cache.is_empty());
}

/// Decoding token by token through a two-block stack with per-layer caches gives the full forward's
/// logits at every position.
#[test]
fn kv_cached_stack_decodes_like_the_full_forward() {
    let (vocab, t, n_embd) = (13, 10, 16);
    let gpt = TinyGpt::new(vocab, t, n_embd, 2);
    let ids: Vec<usize> = (0..t).map(|i| (i * 7 + 3) % vocab).collect();
    let full = no_grad(|| gpt.logits(&ids, 1, t).value());
    // Token by token, each layer with its own cache, positions offset by the cache length.
    let mut caches = [KvCache::new(), KvCache::new()];
    for pos in 0..t {
        let logits = no_grad(|| {
            let tok = gpt.wte.forward_ids(&ids[pos..pos + 1], &[1, 1]).unwrap();
            let mut x = gpt.wpe.forward_at(&tok, caches[0].len()).unwrap();
            for (block, cache) in gpt.blocks.iter().zip(caches.iter_mut()) {
                x = block.forward_cached(&x, cache).unwrap();
            }
            gpt.head
                .forward(&gpt.ln_f.forward(&x).unwrap())
                .unwrap()
                .value()
        });
        let want = full.narrow(1, pos, 1).unwrap();
        assert_close(&logits, &want, 1e-5, &format!("position {pos}"));
        // Greedy decoding picks the same token either way.
        let argmax = |v: Vec<f32>| {
            v.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i)
        };
        assert_eq!(argmax(logits.to_vec()), argmax(want.contiguous().to_vec()));
    }
}

/// The reference for the cache: causal attention of the last `T` of `S` positions, composed
/// from matmul and softmax on the full keys and values.
fn reference_tail_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
    let (q, k, v) = (
        Variable::constant(q.clone()),
        Variable::constant(k.clone()),
        Variable::constant(v.clone()),
    );
    attention(&q, &k, &v, &AttentionMask::Causal, None)
        .unwrap()
        .0
        .value()
}

/// A KV cache with capacity is filled in place without regrowing, and attending over it matches
/// plain attention on the stored keys and values.
#[test]
fn kv_cache_writes_in_place_and_attends_like_the_reference() {
    let (b, h, d) = (2, 3, 12);
    let k = randn(&[b, h, 7, d], 1.0, 70);
    let v = randn(&[b, h, 7, d], 1.0, 71);
    let q = randn(&[b, h, 7, d], 1.0, 72);
    // Room for 7 positions, filled in pieces of 4, 1, 2: the capacity never changes.
    let mut cache = KvCache::with_capacity(7);
    assert_eq!((cache.len(), cache.capacity(), cache.dims()), (0, 7, None));
    let mut start = 0;
    for t in [4, 1, 2] {
        let first = start;
        let piece = move |x: &Tensor| x.narrow(2, first, t).unwrap().contiguous();
        cache.append(&piece(&k), &piece(&v)).unwrap();
        start += t;
        assert_eq!((cache.len(), cache.capacity()), (start, 7));
        // The new queries against every cached key: the last t rows of full causal attention.
        let got = cache.attend(&piece(&q)).unwrap();
        let all = |x: &Tensor| x.narrow(2, 0, start).unwrap().contiguous();
        let want = reference_tail_attention(&all(&q), &all(&k), &all(&v));
        let want = want.narrow(2, start - t, t).unwrap().contiguous();
        assert_close(
            &got,
            &want,
            1e-5,
            &format!("queries {}..{start}", start - t),
        );
    }
    assert_eq!(cache.dims(), Some([b, h, d]));
    assert_eq!(cache.keys().to_vec(), k.contiguous().to_vec());
    assert_eq!(cache.values().to_vec(), v.contiguous().to_vec());
    // Clearing keeps the buffers: a new sequence of another batch size reuses the room.
    cache.clear();
    assert!(cache.is_empty() && cache.dims().is_none());
    cache
        .append(&k.narrow(0, 0, 1).unwrap(), &v.narrow(0, 0, 1).unwrap())
        .unwrap();
    assert_eq!(cache.dims(), Some([1, h, d]));
    assert_eq!(cache.keys().to_vec(), k.narrow(0, 0, 1).unwrap().to_vec());
}

/// A cache without capacity doubles as it grows (1, 2, 4, 8, 16) and keeps every appended key and
/// value intact.
#[test]
fn kv_cache_without_capacity_grows_and_keeps_its_contents() {
    let (b, h, d) = (1, 2, 4);
    let k = randn(&[b, h, 9, d], 1.0, 80);
    let v = randn(&[b, h, 9, d], 1.0, 81);
    let mut cache = KvCache::new();
    let mut capacities = Vec::new();
    for s in 0..9 {
        let one = |x: &Tensor| x.narrow(2, s, 1).unwrap();
        cache.append(&one(&k), &one(&v)).unwrap();
        capacities.push(cache.capacity());
    }
    // Doubling: 1, 2, 4, 4, 8, 8, 8, 8, 16 (a logarithmic number of regrowths).
    assert_eq!(capacities, vec![1, 2, 4, 4, 8, 8, 8, 8, 16]);
    assert_eq!(cache.keys().to_vec(), k.to_vec());
    assert_eq!(cache.values().to_vec(), v.to_vec());
}

/// Sliding the window past the block size by clearing and refilling the cache gives the full
/// forward of the new window and reuses the buffers.
#[test]
fn kv_cached_window_slides_by_refilling() {
    // A model with learned positions can hold `block` positions. When the window moves by one
    // token every position changes, so the cache is cleared and refilled with the last `block`
    // inputs: its outputs are then those of the full forward on the new window, and the buffers
    // are reused (same capacity).
    let block = 6;
    let mha = MultiHeadAttention::new(&config(16, 4, 0.0, 12)).unwrap();
    let x = randn(&[1, block + 3, 16], 1.0, 90);
    let mut cache = KvCache::with_capacity(block);
    for shift in 0..=3 {
        let window = x.narrow(1, shift, block).unwrap().contiguous();
        let full = no_grad(|| {
            mha.forward(&Variable::constant(window.clone()))
                .unwrap()
                .value()
        });
        cache.clear();
        // Refill: a prefill of block - 1 positions, then one decoded position.
        let prefill = Variable::constant(window.narrow(1, 0, block - 1).unwrap());
        let last = Variable::constant(window.narrow(1, block - 1, 1).unwrap());
        let a = no_grad(|| mha.forward_cached(&prefill, &mut cache).unwrap().value());
        let b = no_grad(|| mha.forward_cached(&last, &mut cache).unwrap().value());
        assert_eq!(cache.capacity(), block);
        assert_close(&a, &full.narrow(1, 0, block - 1).unwrap(), 1e-6, "prefill");
        assert_close(&b, &full.narrow(1, block - 1, 1).unwrap(), 1e-5, "decoded");
    }
}

/// Greedy decoding of `steps` tokens after `prompt`, with or without per-layer KV caches.
fn greedy(gpt: &TinyGpt, prompt: &[usize], steps: usize, cached: bool) -> Vec<usize> {
    let argmax = |row: &[f32]| {
        row.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .unwrap()
    };
    let vocab = gpt.head.out_features();
    let mut ids = prompt.to_vec();
    let mut caches = [KvCache::new(), KvCache::new()];
    no_grad(|| {
        for _ in 0..steps {
            let last = if cached {
                // Only the tokens the caches have not seen yet (the whole prompt the first time).
                let start = caches[0].len();
                let new = &ids[start..];
                let tok = gpt.wte.forward_ids(new, &[1, new.len()]).unwrap();
                let mut x = gpt.wpe.forward_at(&tok, start).unwrap();
                for (block, cache) in gpt.blocks.iter().zip(caches.iter_mut()) {
                    x = block.forward_cached(&x, cache).unwrap();
                }
                let logits = gpt.head.forward(&gpt.ln_f.forward(&x).unwrap()).unwrap();
                logits.value().narrow(1, new.len() - 1, 1).unwrap().to_vec()
            } else {
                let logits = gpt.logits(&ids, 1, ids.len()).value();
                logits.narrow(1, ids.len() - 1, 1).unwrap().to_vec()
            };
            assert_eq!(last.len(), vocab);
            ids.push(argmax(&last));
        }
    });
    ids
}

/// Systems question: what does a KV cache buy? Same tokens, measured time (printed with
/// `--nocapture`). Without a cache, step `t` re-runs all `t` positions through every layer.
#[test]
fn systems_kv_cache_generation_same_tokens_less_work() {
    let (vocab, block, n_embd) = (32, 96, 64);
    let gpt = TinyGpt::new(vocab, block, n_embd, 4);
    let prompt = [1, 5, 9, 3];
    let steps = block - prompt.len();
    let timed = |cached: bool| {
        let start = std::time::Instant::now();
        let ids = greedy(&gpt, &prompt, steps, cached);
        (ids, start.elapsed().as_secs_f64() * 1e3)
    };
    let (uncached, ms_uncached) = timed(false);
    let (cached, ms_cached) = timed(true);
    assert_eq!(
        cached, uncached,
        "cached decoding must produce the same tokens"
    );
    // Positions pushed through the blocks: sum of the prefix lengths vs one per token.
    let work_uncached: usize = (prompt.len()..block).sum();
    let work_cached = block - 1; // every token but the last generated one, once
    println!(
        "greedy decoding of {steps} tokens, 2 blocks, C = {n_embd}: uncached {ms_uncached:.1} ms \
         ({work_uncached} positions through the blocks), cached {ms_cached:.1} ms ({work_cached} positions), \
         speedup {:.1}x",
        ms_uncached / ms_cached
    );
}

/// A cached block computing only the last position gives that position's output of the full cached
/// forward, and the caches stay equal.
#[test]
fn cached_block_can_finish_only_the_last_position() {
    let block = TransformerBlock::new(&block_config(16, 4, 31)).unwrap();
    let x = randn(&[2, 7, 16], 1.0, 95);
    let (mut all, mut last) = (KvCache::new(), KvCache::new());
    let (prompt, next) = (x.narrow(1, 0, 5).unwrap(), x.narrow(1, 5, 2).unwrap());
    no_grad(|| {
        for piece in [prompt, next] {
            let piece = Variable::constant(piece);
            let want = block.forward_cached(&piece, &mut all).unwrap().value();
            let got = block
                .forward_cached_last(&piece, &mut last)
                .unwrap()
                .value();
            let t = want.shape()[1];
            assert_close(&got, &want.narrow(1, t - 1, 1).unwrap(), 1e-5, "last row");
            // Every position's keys and values were cached all the same.
            assert_eq!(last.len(), all.len());
            assert_eq!(last.keys().to_vec(), all.keys().to_vec());
        }
    });
}
