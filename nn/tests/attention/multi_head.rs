//! Multi-head attention: gradchecks under every mask, the fused node against the composition, rows
//! that are distributions, the packed path.

use crate::helpers::{assert_close, config, randn};
use autograd::{gradcheck, Variable};
use nn::attention::{attention, scaled_dot_product_attention, AttentionMask, MultiHeadAttention};
use nn::linear::Linear;
use nn::Module;
use tensor::Tensor;

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
