//! Bad masks and inputs are clear errors naming both shapes.

use crate::helpers::{config, invalid_reason, randn};
use autograd::{no_grad, Variable};
use nn::attention::{scaled_dot_product_attention, AttentionMask, KvCache, MultiHeadAttention};
use nn::Module;
use tensor::Tensor;

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
