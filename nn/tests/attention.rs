//! Grader tests for attention, positional encodings and the transformer block (chapter 3, `nn`):
//! gradients of multi-head attention under every mask, attention rows that are distributions,
//! exact causality, a 2-block GPT-style stack where every parameter learns, KV-cached decoding
//! equal to the full forward, and clear errors for bad masks and too-long sequences.

use autograd::{gradcheck, no_grad, Variable};
use nn::attention::{
    attention, scaled_dot_product_attention, AttentionConfig, AttentionMask, KvCache,
    MultiHeadAttention,
};
use nn::embedding::Embedding;
use nn::layer_norm::LayerNorm;
use nn::linear::Linear;
use nn::positional::{sinusoidal_table, LearnedPositionalEmbedding, SinusoidalPositionalEncoding};
use nn::transformer::{TransformerBlock, TransformerConfig};
use nn::{Module, NnError};
use tensor::{Tensor, TensorRng};

fn randn(shape: &[usize], std: f32, seed: u64) -> Tensor {
    Tensor::rand_normal(shape, 0.0, std, seed).unwrap()
}

fn config(n_embd: usize, n_head: usize, dropout: f32, seed: u64) -> AttentionConfig {
    AttentionConfig {
        n_embd,
        n_head,
        dropout,
        bias: true,
        seed,
    }
}

fn block_config(n_embd: usize, n_head: usize, seed: u64) -> TransformerConfig {
    TransformerConfig {
        n_embd,
        n_head,
        dropout: 0.0,
        bias: true,
        seed,
    }
}

fn assert_close(a: &Tensor, b: &Tensor, tol: f32, what: &str) {
    assert_eq!(a.shape(), b.shape(), "{what}: shapes");
    let diff = a.max_abs_diff(b).unwrap();
    assert!(diff <= tol, "{what}: max abs diff {diff} > {tol}");
}

/// Gradcheck multi-head attention w.r.t. its input and all four parameters (B=2, T=4, C=8, H=2).
fn gradcheck_mha(mask: AttentionMask) {
    let (b, t, c) = (2, 4, 8);
    let inputs = [
        randn(&[b, t, c], 1.0, 1),
        randn(&[3 * c, c], 0.3, 2),
        randn(&[3 * c], 0.1, 3),
        randn(&[c, c], 0.3, 4),
        randn(&[c], 0.1, 5),
    ];
    let f = |v: &[Variable]| -> autograd::Result<Variable> {
        let qkv = Linear::from_weights(v[1].clone(), Some(v[2].clone())).unwrap();
        let proj = Linear::from_weights(v[3].clone(), Some(v[4].clone())).unwrap();
        let mha = MultiHeadAttention::from_projections(qkv, proj, 2).unwrap();
        Ok(mha.forward_masked(&v[0], &mask).unwrap())
    };
    let report = gradcheck(f, &inputs, 1e-2, 1e-2).unwrap_or_else(|e| panic!("{mask:?}: {e}"));
    assert_eq!(report.checked, 64 + 192 + 24 + 64 + 8);
}

/// Multi-head attention without a mask passes gradcheck: its gradients for the input and every
/// weight match finite differences.
#[test]
fn gradcheck_multi_head_attention_without_mask() {
    gradcheck_mha(AttentionMask::None);
}

/// Multi-head attention with the causal mask passes gradcheck (gradients match finite differences).
#[test]
fn gradcheck_multi_head_attention_causal() {
    gradcheck_mha(AttentionMask::Causal);
}

/// Multi-head attention with keep-masks (per-sample padding and a shared (T, S) pattern) passes
/// gradcheck.
#[test]
fn gradcheck_multi_head_attention_keep_mask() {
    // A padding mask per sample (B, 1, 1, S): the second sample ignores its last two keys.
    let keep = Tensor::from_vec(vec![1., 1., 1., 1., 1., 1., 0., 0.], &[2, 1, 1, 4]).unwrap();
    gradcheck_mha(AttentionMask::Keep(keep));
    // A (T, S) mask shared by every sample and head.
    let keep = Tensor::from_vec(
        vec![
            1., 0., 1., 0., 1., 1., 0., 0., 0., 1., 1., 1., 1., 1., 1., 1.,
        ],
        &[4, 4],
    )
    .unwrap();
    gradcheck_mha(AttentionMask::Keep(keep));
}

/// The fused attention node with more keys than queries (the KV-cache case) and a strided query
/// view passes gradcheck, causal and not.
#[test]
fn gradcheck_fused_attention_with_more_keys_than_queries() {
    // The KV-cache case of the fused kernel: T = 3 queries, S = 5 keys, and a head-split-like
    // strided view for q.
    for causal in [false, true] {
        let inputs = [
            randn(&[1, 2, 3, 4], 1.0, 10),
            randn(&[1, 2, 5, 4], 1.0, 11),
            randn(&[1, 2, 5, 3], 1.0, 12),
        ];
        let mask = if causal {
            AttentionMask::Causal
        } else {
            AttentionMask::None
        };
        let f = |v: &[Variable]| -> autograd::Result<Variable> {
            let q = v[0].transpose(2, 3)?.transpose(2, 3)?;
            Ok(scaled_dot_product_attention(&q, &v[1], &v[2], &mask).unwrap())
        };
        gradcheck(f, &inputs, 1e-2, 1e-2).unwrap_or_else(|e| panic!("causal {causal}: {e}"));
    }
}

/// Fused attention records one ScaledDotProductAttentionBackward node and matches the step-by-step
/// composition in values and gradients.
#[test]
fn fused_attention_is_one_node_and_matches_the_composition() {
    let (q, k, v) = (
        Variable::parameter(randn(&[2, 3, 37, 8], 1.0, 20)),
        Variable::parameter(randn(&[2, 3, 37, 8], 1.0, 21)),
        Variable::parameter(randn(&[2, 3, 37, 8], 1.0, 22)),
    );
    let up = Variable::constant(randn(&[2, 3, 37, 8], 1.0, 23));
    for mask in [AttentionMask::None, AttentionMask::Causal] {
        let fused = scaled_dot_product_attention(&q, &k, &v, &mask).unwrap();
        assert_eq!(fused.grad_fn(), Some("ScaledDotProductAttentionBackward"));
        let (composed, _) = attention(&q, &k, &v, &mask, None).unwrap();
        assert_close(
            &fused.value(),
            &composed.value(),
            1e-5,
            "fused vs composed output",
        );
        let mut grads = Vec::new();
        for out in [fused, composed] {
            for p in [&q, &k, &v] {
                p.zero_grad();
            }
            out.mul(&up).unwrap().sum_all().unwrap().backward().unwrap();
            grads.push([q.grad().unwrap(), k.grad().unwrap(), v.grad().unwrap()]);
        }
        for (i, (a, b)) in grads[0].iter().zip(&grads[1]).enumerate() {
            assert_close(a, b, 1e-4, &format!("{mask:?} grad {i}"));
        }
    }
}

/// Every row of the attention weights sums to 1 and masked positions (causal or keep-mask) get
/// weight exactly 0.
#[test]
fn attention_rows_sum_to_one_and_masked_weights_are_zero() {
    let mha = MultiHeadAttention::new(&config(16, 4, 0.0, 3)).unwrap();
    let x = Variable::constant(randn(&[2, 6, 16], 1.0, 30));
    let keep = Tensor::from_vec(
        vec![1., 1., 1., 1., 1., 1., 0., 1., 0., 1., 1., 1.],
        &[2, 1, 1, 6],
    )
    .unwrap();
    for mask in [
        AttentionMask::None,
        AttentionMask::Causal,
        AttentionMask::Keep(keep.clone()),
    ] {
        let (_, weights) = mha.forward_with_weights(&x, &mask).unwrap();
        assert_eq!(weights.shape(), vec![2, 4, 6, 6]);
        let w = weights.value().to_vec();
        for (row_index, row) in w.chunks(6).enumerate() {
            let sum: f32 = row.iter().sum();
            assert!(
                (sum - 1.0).abs() < 1e-5,
                "{mask:?} row {row_index} sums to {sum}"
            );
            assert!(row.iter().all(|&p| (0.0..=1.0).contains(&p)));
            let (b, i) = (row_index / (4 * 6), row_index % 6);
            for (j, &p) in row.iter().enumerate() {
                let dropped = match &mask {
                    AttentionMask::None => false,
                    AttentionMask::Causal => j > i,
                    AttentionMask::Keep(k) => k.get(&[b, 0, 0, j]).unwrap() == 0.0,
                };
                if dropped {
                    assert_eq!(p, 0.0, "{mask:?}: weight ({b}, {i}, {j}) should be masked");
                } else {
                    assert!(
                        p > 0.0,
                        "{mask:?}: weight ({b}, {i}, {j}) should be positive"
                    );
                }
            }
        }
    }
}

/// The packed-QKV fast path and the composed reference path of MultiHeadAttention give the same
/// outputs and the same gradients.
#[test]
fn packed_path_and_composed_path_agree_values_and_gradients() {
    let mha = MultiHeadAttention::new(&config(16, 2, 0.0, 4)).unwrap();
    let x = Variable::parameter(randn(&[3, 37, 16], 1.0, 31));
    let up = Variable::constant(randn(&[3, 37, 16], 1.0, 32));
    for mask in [AttentionMask::None, AttentionMask::Causal] {
        let packed = mha.forward_masked(&x, &mask).unwrap();
        let (composed, _) = mha.forward_with_weights(&x, &mask).unwrap();
        assert_close(
            &packed.value(),
            &composed.value(),
            1e-5,
            &format!("{mask:?}"),
        );
        // The packed layer's graph: one attention node, no head split or merge.
        let dot = autograd::to_dot(&packed);
        assert!(dot.contains("PackedAttentionBackward"), "{dot}");
        assert!(
            !dot.contains("PermuteBackward") && !dot.contains("SliceBackward"),
            "{dot}"
        );
        let mut grads = Vec::new();
        for out in [packed, composed] {
            mha.zero_grad();
            x.zero_grad();
            out.mul(&up).unwrap().sum_all().unwrap().backward().unwrap();
            let mut g = vec![x.grad().unwrap()];
            g.extend(mha.parameters().iter().map(|p| p.grad().unwrap()));
            grads.push(g);
        }
        for (i, (a, b)) in grads[0].iter().zip(&grads[1]).enumerate() {
            assert_close(a, b, 1e-4, &format!("{mask:?} gradient {i}"));
        }
    }
}

/// Packed (B, T, 3C) attention passes gradcheck causal and not, and a channel count not divisible
/// by n_head is an error naming n_head.
#[test]
fn gradcheck_packed_attention() {
    for causal in [false, true] {
        let f = |v: &[Variable]| -> autograd::Result<Variable> {
            Ok(nn::attention::packed_attention(&v[0], 2, causal).unwrap())
        };
        gradcheck(f, &[randn(&[2, 3, 12], 1.0, 33)], 1e-2, 1e-2)
            .unwrap_or_else(|e| panic!("causal {causal}: {e}"));
    }
    let err =
        nn::attention::packed_attention(&Variable::constant(Tensor::ones(&[2, 3, 10])), 2, true)
            .unwrap_err();
    assert!(err.to_string().contains("n_head = 2"), "{err}");
}

/// Change tokens `t + 1 ..` of a `(B, T, C)` input and check positions `..= t` are bit-identical.
fn assert_causal(f: impl Fn(&Variable) -> Variable, b: usize, t_len: usize, c: usize) {
    let x = randn(&[b, t_len, c], 1.0, 40);
    let base = f(&Variable::constant(x.clone())).value();
    for t in 0..t_len - 1 {
        let mut changed = x.to_vec();
        for bi in 0..b {
            for pos in t + 1..t_len {
                for ci in 0..c {
                    changed[(bi * t_len + pos) * c + ci] += 3.0 + pos as f32;
                }
            }
        }
        let out = f(&Variable::constant(
            Tensor::from_vec(changed, &[b, t_len, c]).unwrap(),
        ))
        .value();
        let past = |y: &Tensor| y.narrow(1, 0, t + 1).unwrap().contiguous().to_vec();
        assert_eq!(
            past(&out),
            past(&base),
            "changing tokens after {t} changed outputs at <= {t}"
        );
        let future = |y: &Tensor| y.narrow(1, t + 1, 1).unwrap().contiguous().to_vec();
        assert_ne!(
            future(&out),
            future(&base),
            "token {} should see its own change",
            t + 1
        );
    }
}

/// Changing a future token never changes an earlier output, for attention, a transformer block and
/// the composed path.
#[test]
fn causal_attention_never_looks_ahead() {
    let mha = MultiHeadAttention::new(&config(16, 4, 0.0, 5)).unwrap();
    assert_causal(|x| mha.forward(x).unwrap(), 2, 7, 16);
    let block = TransformerBlock::new(&block_config(16, 4, 6)).unwrap();
    assert_causal(|x| block.forward(x).unwrap(), 2, 7, 16);
    // The composed path too (it is what the fused kernel is checked against).
    assert_causal(
        |x| {
            mha.forward_with_weights(x, &AttentionMask::Causal)
                .unwrap()
                .0
        },
        1,
        5,
        16,
    );
}

/// A tiny GPT: token + learned position embeddings, two blocks, final norm, vocabulary head.
struct TinyGpt {
    wte: Embedding,
    wpe: LearnedPositionalEmbedding,
    blocks: Vec<TransformerBlock>,
    ln_f: LayerNorm,
    head: Linear,
}

impl TinyGpt {
    fn new(vocab: usize, block: usize, n_embd: usize, n_head: usize) -> TinyGpt {
        let mut rng = TensorRng::new(7);
        TinyGpt {
            wte: Embedding::new(vocab, n_embd, &mut rng),
            wpe: LearnedPositionalEmbedding::new(block, n_embd, &mut rng),
            blocks: (0..2)
                .map(|i| TransformerBlock::new(&block_config(n_embd, n_head, 100 + i)).unwrap())
                .collect(),
            ln_f: LayerNorm::new(n_embd),
            head: Linear::new(n_embd, vocab, false, &mut rng),
        }
    }

    fn logits(&self, ids: &[usize], b: usize, t: usize) -> Variable {
        let mut x = self
            .wpe
            .forward(&self.wte.forward_ids(ids, &[b, t]).unwrap())
            .unwrap();
        for block in &self.blocks {
            x = block.forward(&x).unwrap();
        }
        self.head.forward(&self.ln_f.forward(&x).unwrap()).unwrap()
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        let mut all = nn::module::prefixed("wte", self.wte.named_parameters());
        all.extend(nn::module::prefixed("wpe", self.wpe.named_parameters()));
        for (i, block) in self.blocks.iter().enumerate() {
            all.extend(nn::module::prefixed(
                &format!("blocks.{i}"),
                block.named_parameters(),
            ));
        }
        all.extend(nn::module::prefixed("ln_f", self.ln_f.named_parameters()));
        all.extend(nn::module::prefixed("head", self.head.named_parameters()));
        all
    }
}

/// After one backward through a two-block GPT every parameter has a non-zero finite gradient (no
/// graph break).
#[test]
fn every_parameter_of_a_two_block_stack_gets_a_gradient() {
    let (vocab, b, t) = (11, 2, 8);
    let gpt = TinyGpt::new(vocab, t, 16, 4);
    let mut rng = TensorRng::new(8);
    let ids: Vec<usize> = (0..b * t).map(|_| rng.below(vocab)).collect();
    let targets: Vec<usize> = (0..b * t).map(|_| rng.below(vocab)).collect();
    let loss = gpt
        .logits(&ids, b, t)
        .cross_entropy(&targets, None, 0.0)
        .unwrap();
    assert!(loss.item().unwrap().is_finite());
    loss.backward().unwrap();
    let params = gpt.named_parameters();
    // wte, wpe, 2 x 12 block tensors, ln_f weight and bias, head weight.
    assert_eq!(params.len(), 2 + 2 * 12 + 3);
    for (name, p) in &params {
        let g = p
            .grad()
            .unwrap_or_else(|| panic!("{name} received no gradient"));
        assert_eq!(g.shape(), p.shape().as_slice(), "{name}");
        let norm: f32 = g.to_vec().iter().map(|v| v * v).sum();
        assert!(
            norm > 0.0 && norm.is_finite(),
            "{name} has gradient norm {norm}"
        );
    }
    // T equals the table length here, so every row of the position table is used.
    let wpe_grad = gpt.wpe.weight.grad().unwrap().to_vec();
    assert!(wpe_grad.chunks(16).all(|row| row.iter().any(|&v| v != 0.0)));
}

/// A transformer block names its parameters ln1, attn.qkv, attn.proj, ln2, mlp.fc, mlp.proj in
/// order, like PyTorch's state_dict.
#[test]
fn parameter_names_follow_the_layout() {
    let block = TransformerBlock::new(&block_config(8, 2, 1)).unwrap();
    let names: Vec<String> = block
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "ln1.weight",
            "ln1.bias",
            "attn.qkv.weight",
            "attn.qkv.bias",
            "attn.proj.weight",
            "attn.proj.bias",
            "ln2.weight",
            "ln2.bias",
            "mlp.fc.weight",
            "mlp.fc.bias",
            "mlp.proj.weight",
            "mlp.proj.bias",
        ]
    );
    let shapes: Vec<Vec<usize>> = block
        .named_parameters()
        .iter()
        .map(|(_, p)| p.shape())
        .collect();
    assert_eq!(shapes[2], vec![24, 8]);
    assert_eq!(shapes[8], vec![32, 8]);
    assert_eq!(shapes[10], vec![8, 32]);
    // 2 * (8 + 8) norms + (24*8 + 24) + (64 + 8) + (32*8 + 32) + (8*32 + 8)
    assert_eq!(block.num_parameters(), 32 + 216 + 72 + 288 + 264);
    let no_bias = TransformerBlock::new(&TransformerConfig {
        bias: false,
        ..block_config(8, 2, 1)
    })
    .unwrap();
    assert_eq!(no_bias.named_parameters().len(), 6);
    assert!(no_bias
        .named_parameters()
        .iter()
        .all(|(n, _)| n.ends_with("weight")));
}

/// The same seed builds identical weights, a different seed different ones, and attention and MLP
/// draw from different random streams.
#[test]
fn same_seed_same_block_and_different_seeds_differ() {
    let a = TransformerBlock::new(&block_config(8, 2, 42)).unwrap();
    let b = TransformerBlock::new(&block_config(8, 2, 42)).unwrap();
    let c = TransformerBlock::new(&block_config(8, 2, 43)).unwrap();
    let w = |blk: &TransformerBlock| blk.attn.qkv.weight.value().to_vec();
    assert_eq!(w(&a), w(&b));
    assert_ne!(w(&a), w(&c));
    // The attention and the MLP draw from different streams.
    assert_ne!(
        a.attn.proj.weight.value().to_vec()[..8],
        a.mlp.fc.weight.value().to_vec()[..8]
    );
}

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

fn invalid_reason(err: NnError) -> String {
    let msg = err.to_string();
    assert!(
        matches!(err, NnError::Invalid { .. }),
        "expected NnError::Invalid, got {msg}"
    );
    msg
}

/// A mask that does not broadcast, a wrong input width or rank, or a full cache are errors naming
/// both shapes, not panics.
#[test]
fn bad_masks_and_inputs_are_clear_errors() {
    let mha = MultiHeadAttention::new(&config(8, 2, 0.0, 1)).unwrap();
    let x = Variable::constant(randn(&[2, 4, 8], 1.0, 60));
    // A keep-mask that does not broadcast to (B, H, T, S) = (2, 2, 4, 4).
    let bad = AttentionMask::Keep(Tensor::ones(&[3, 4]));
    let msg = invalid_reason(mha.forward_masked(&x, &bad).unwrap_err());
    assert!(
        msg.contains("[3, 4]") && msg.contains("[2, 2, 4, 4]"),
        "{msg}"
    );
    let bad = AttentionMask::Keep(Tensor::ones(&[1, 2, 2, 4, 4]));
    let msg = invalid_reason(mha.forward_with_weights(&x, &bad).unwrap_err());
    assert!(msg.contains("(B, H, T, S)"), "{msg}");
    // A query that keeps no key at all.
    let mut rows = vec![1.0; 16];
    rows[8..12].fill(0.0);
    let bad = AttentionMask::Keep(Tensor::from_vec(rows, &[4, 4]).unwrap());
    let msg = invalid_reason(mha.forward_masked(&x, &bad).unwrap_err());
    assert!(msg.contains("row 2"), "{msg}");
    // Causal attention with fewer keys than queries.
    let q = Variable::constant(randn(&[1, 1, 5, 4], 1.0, 61));
    let kv = Variable::constant(randn(&[1, 1, 3, 4], 1.0, 62));
    let msg = invalid_reason(
        scaled_dot_product_attention(&q, &kv, &kv, &AttentionMask::Causal).unwrap_err(),
    );
    assert!(msg.contains("T = 5") && msg.contains("S = 3"), "{msg}");
    // Inputs of the wrong rank or width, and impossible head counts.
    let msg = invalid_reason(
        mha.forward(&Variable::constant(Tensor::ones(&[4, 8])))
            .unwrap_err(),
    );
    assert!(msg.contains("(B, T, C)") && msg.contains("[4, 8]"), "{msg}");
    let msg = invalid_reason(
        mha.forward(&Variable::constant(Tensor::ones(&[1, 4, 6])))
            .unwrap_err(),
    );
    assert!(msg.contains("n_embd = 8"), "{msg}");
    let msg = invalid_reason(MultiHeadAttention::new(&config(10, 4, 0.0, 1)).unwrap_err());
    assert!(msg.contains("10") && msg.contains('4'), "{msg}");
    assert!(MultiHeadAttention::new(&config(8, 2, 1.5, 1)).is_err());
    let msg = invalid_reason(
        scaled_dot_product_attention(&q, &q.transpose(2, 3).unwrap(), &q, &AttentionMask::None)
            .unwrap_err(),
    );
    assert!(msg.contains("(B, H, T, D)"), "{msg}");
    // A cache refuses keys from another batch size.
    let mut cache = KvCache::new();
    no_grad(|| mha.forward_cached(&x, &mut cache)).unwrap();
    let other = Variable::constant(randn(&[1, 1, 8], 1.0, 63));
    let msg = invalid_reason(no_grad(|| mha.forward_cached(&other, &mut cache)).unwrap_err());
    assert!(
        msg.contains("KvCache") && msg.contains("[1, 2, 4]"),
        "{msg}"
    );
    // Cached attention builds no graph: with gradients on it refuses instead of cutting one.
    let msg = invalid_reason(mha.forward_cached(&other, &mut KvCache::new()).unwrap_err());
    assert!(msg.contains("no_grad"), "{msg}");
    // Keys and values of different shapes, queries that do not match the cache.
    let mut cache = KvCache::new();
    let msg = invalid_reason(
        cache
            .append(&Tensor::zeros(&[1, 2, 3, 4]), &Tensor::zeros(&[1, 2, 3, 5]))
            .unwrap_err(),
    );
    assert!(msg.contains("[1, 2, 3, 5]"), "{msg}");
    cache
        .append(&Tensor::zeros(&[1, 2, 3, 4]), &Tensor::zeros(&[1, 2, 3, 4]))
        .unwrap();
    let msg = invalid_reason(cache.attend(&Tensor::zeros(&[1, 2, 4, 4])).unwrap_err());
    assert!(msg.contains("T <= 3"), "{msg}");
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

/// Dropout inside a transformer block changes the output in training and does nothing after eval().
#[test]
fn dropout_is_active_in_training_only() {
    let x = Variable::constant(randn(&[2, 5, 16], 1.0, 70));
    let mut with = TransformerBlock::new(&TransformerConfig {
        dropout: 0.2,
        ..block_config(16, 4, 11)
    })
    .unwrap();
    let without = TransformerBlock::new(&block_config(16, 4, 11)).unwrap();
    let reference = without.forward(&x).unwrap().value();
    let train = with.forward(&x).unwrap().value();
    assert!(train.max_abs_diff(&reference).unwrap() > 1e-3);
    with.eval();
    let eval = with.forward(&x).unwrap().value();
    assert_close(&eval, &reference, 1e-6, "eval mode ignores dropout");
    // Back in training mode, every call draws fresh masks.
    with.train();
    let a = with.forward(&x).unwrap().value();
    let b = with.forward(&x).unwrap().value();
    assert!(a.max_abs_diff(&b).unwrap() > 0.0, "fresh masks per call");
}

/// The sinusoidal position table equals sin and cos of p / 10000^(2i/d) in alternating columns.
#[test]
fn sinusoidal_table_follows_the_formula() {
    let (max_len, dim) = (12, 6);
    let table = sinusoidal_table(max_len, dim);
    assert_eq!(table.shape(), &[12, 6]);
    // Position 0: sin(0) = 0 and cos(0) = 1 alternate.
    assert_eq!(
        table.narrow(0, 0, 1).unwrap().to_vec(),
        vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    );
    for p in 0..max_len {
        for i in 0..dim / 2 {
            let angle = p as f64 / 10000f64.powf(2.0 * i as f64 / dim as f64);
            let (s, c) = (
                table.get(&[p, 2 * i]).unwrap(),
                table.get(&[p, 2 * i + 1]).unwrap(),
            );
            assert!((s as f64 - angle.sin()).abs() < 1e-6, "PE[{p}, {}]", 2 * i);
            assert!(
                (c as f64 - angle.cos()).abs() < 1e-6,
                "PE[{p}, {}]",
                2 * i + 1
            );
        }
    }
    // Hand values: PE[1, 0] = sin 1, PE[1, 2] = sin(1 / 10000^(1/3)).
    assert!((table.get(&[1, 0]).unwrap() - 0.841_470_96).abs() < 1e-6);
    assert!((table.get(&[1, 2]).unwrap() - (1.0f64 / 21.544_346_9).sin() as f32).abs() < 1e-6);
    // An odd width ends with a sine column.
    let odd = sinusoidal_table(3, 5);
    assert!((odd.get(&[2, 4]).unwrap() - (2.0f64 / 10000f64.powf(0.8)).sin() as f32).abs() < 1e-6);
    // The module adds the table and has no parameters.
    let pe = SinusoidalPositionalEncoding::new(max_len, dim);
    assert!(pe.named_parameters().is_empty());
    let x = Variable::parameter(Tensor::zeros(&[2, 4, dim]));
    let y = pe.forward_at(&x, 3).unwrap();
    assert_eq!(
        y.value()
            .narrow(0, 1, 1)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec(),
        table.narrow(0, 3, 4).unwrap().to_vec()
    );
    y.sum_all().unwrap().backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec(), vec![1.0; 2 * 4 * dim]);
}

/// Learned positions start as N(0, 0.02), and a sequence longer than the table is an error for both
/// encodings, not a panic.
#[test]
fn positional_encodings_refuse_sequences_longer_than_the_table() {
    let mut rng = TensorRng::new(1);
    let wpe = LearnedPositionalEmbedding::new(4, 8, &mut rng);
    assert_eq!(wpe.weight.shape(), vec![4, 8]);
    // N(0, 0.02) initialisation.
    let w = wpe.weight.value().to_vec();
    let std = (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt();
    assert!((0.01..0.03).contains(&std), "std {std}");
    let ok = Variable::constant(Tensor::zeros(&[2, 4, 8]));
    assert_eq!(wpe.forward(&ok).unwrap().shape(), vec![2, 4, 8]);
    let long = Variable::constant(Tensor::zeros(&[2, 5, 8]));
    let msg = invalid_reason(wpe.forward(&long).unwrap_err());
    assert!(
        msg.contains("T = 5") && msg.contains("max_len = 4"),
        "{msg}"
    );
    let msg = invalid_reason(wpe.forward_at(&ok.narrow(1, 0, 2).unwrap(), 3).unwrap_err());
    assert!(msg.contains("3..5") && msg.contains("max_len = 4"), "{msg}");
    let pe = SinusoidalPositionalEncoding::new(4, 8);
    let msg = invalid_reason(pe.forward(&long).unwrap_err());
    assert!(
        msg.contains("T = 5") && msg.contains("max_len = 4"),
        "{msg}"
    );
    let msg = invalid_reason(
        pe.forward(&Variable::constant(Tensor::zeros(&[2, 3, 7])))
            .unwrap_err(),
    );
    assert!(msg.contains("C = 8"), "{msg}");
    // Gradients reach exactly the rows that were used.
    let x = Variable::constant(Tensor::zeros(&[3, 2, 8]));
    wpe.forward_at(&x, 1)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g = wpe.weight.grad().unwrap();
    let rows: Vec<f32> = g.to_vec().chunks(8).map(|r| r[0]).collect();
    assert_eq!(rows, vec![0.0, 3.0, 3.0, 0.0]);
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
