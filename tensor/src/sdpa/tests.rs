//! The fused attention kernels against hand values and their composition from primitives.

use super::packed::{split_heads, unpack};
use super::*;
use crate::causal_softmax::causal_softmax_backward;
use crate::simd::{at_simd_level, supported_levels, SimdLevel};
use crate::softmax::softmax_backward;
use crate::tensor::Tensor;

/// The composition this kernel replaces: matmul, (causal) softmax, matmul, and its backward
/// from the same primitives' kernels.
fn composed(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    go: &Tensor,
    scale: f32,
    causal: bool,
) -> (Tensor, [Tensor; 3]) {
    let scores = q.matmul(&k.transpose(-1, -2).unwrap()).unwrap();
    let p = if causal {
        scores.causal_softmax(scale).unwrap()
    } else {
        scores.mul_scalar(scale).softmax(-1).unwrap()
    };
    let out = p.matmul(v).unwrap();
    let dv = p.transpose(-1, -2).unwrap().matmul(go).unwrap();
    let dp = go.matmul(&v.transpose(-1, -2).unwrap()).unwrap();
    let ds = if causal {
        causal_softmax_backward(&p, &dp, scale).unwrap()
    } else {
        softmax_backward(&p, &dp, -1).unwrap().mul_scalar(scale)
    };
    let dq = ds.matmul(k).unwrap();
    let dk = ds.transpose(-1, -2).unwrap().matmul(q).unwrap();
    (out, [dq, dk, dv])
}

fn close(a: &Tensor, b: &Tensor, tol: f32, what: &str) {
    assert_eq!(a.shape(), b.shape(), "{what}");
    let diff = a.max_abs_diff(b).unwrap();
    assert!(diff <= tol, "{what}: max abs diff {diff}");
}

/// Fused attention on a tiny case equals the values computed by hand.
#[test]
fn tiny_case_by_hand() {
    // One query row against two keys: scores (1*1 + 0*0, 1*0 + 0*1) = (1, 0), scale 1.
    let q = Tensor::from_vec(vec![1.0, 0.0], &[1, 2]).unwrap();
    let k = Tensor::from_vec(vec![1.0, 0.0, 0.0, 1.0], &[2, 2]).unwrap();
    let v = Tensor::from_vec(vec![10.0, 20.0], &[2, 1]).unwrap();
    let (out, lse) = scaled_dot_product_attention(&q, &k, &v, 1.0, false).unwrap();
    let e = std::f32::consts::E;
    let want = (10.0 * e + 20.0) / (e + 1.0);
    assert!((out.to_vec()[0] - want).abs() < 1e-5);
    assert!((lse.to_vec()[0] - (e + 1.0).ln()).abs() < 1e-6);
    // Causal with S = T = 2: the first query sees only the first key.
    let q2 = Tensor::from_vec(vec![1.0, 0.0, 1.0, 0.0], &[2, 2]).unwrap();
    let (out, _) = scaled_dot_product_attention(&q2, &k, &v, 1.0, true).unwrap();
    assert!((out.to_vec()[0] - 10.0).abs() < 1e-6);
    assert!((out.to_vec()[1] - want).abs() < 1e-5);
}

/// Fused attention equals its composition from primitives, values and gradients.
#[test]
fn matches_the_composition_forward_and_backward() {
    // Shapes around the block size, T < S (KV cache), non-square heads, causal and not.
    // (batch dims, T, S, D, Dv, causal)
    let cases: &[Case] = &[
        (&[2, 3], 5, 5, 4, 4, true),
        (&[2, 2], 70, 70, 8, 8, true),
        (&[1], 130, 140, 8, 8, true),
        (&[3], 33, 40, 6, 5, true),
        (&[1, 2], 1, 9, 4, 4, true),
        (&[2, 2], 37, 45, 8, 3, false),
        (&[4], 64, 64, 16, 16, false),
        // The models' head sizes (32, 64) and register-block edges (24 = 16 + 8, 40 = 32 + 8).
        (&[2, 2], 128, 128, 32, 32, true),
        (&[3], 100, 100, 64, 64, true),
        (&[2], 45, 59, 24, 40, false),
        (&[1], 13, 77, 32, 33, true),
    ];
    for level in supported_levels() {
        at_simd_level(level, || composition_cases(cases, level));
    }
}

type Case = (&'static [usize], usize, usize, usize, usize, bool);

fn composition_cases(cases: &[Case], level: SimdLevel) {
    for (i, &(batch, t, s, d, dv, causal)) in cases.iter().enumerate() {
        let shape =
            |r: usize, c: usize| -> Vec<usize> { batch.iter().copied().chain([r, c]).collect() };
        let seed = 100 * i as u64;
        let q = Tensor::rand_normal(&shape(t, d), 0.0, 1.0, seed).unwrap();
        let k = Tensor::rand_normal(&shape(s, d), 0.0, 1.0, seed + 1).unwrap();
        let v = Tensor::rand_normal(&shape(s, dv), 0.0, 1.0, seed + 2).unwrap();
        let go = Tensor::rand_normal(&shape(t, dv), 0.0, 1.0, seed + 3).unwrap();
        let scale = 1.0 / (d as f32).sqrt();
        let (out, lse) = scaled_dot_product_attention(&q, &k, &v, scale, causal).unwrap();
        let (want, grads) = composed(&q, &k, &v, &go, scale, causal);
        close(&out, &want, 1e-5, &format!("case {i} output at {level}"));
        let got = scaled_dot_product_attention_backward(&q, &k, &v, &out, &lse, &go, scale, causal)
            .unwrap();
        close(&got.0, &grads[0], 1e-4, &format!("case {i} dq at {level}"));
        close(&got.1, &grads[1], 1e-4, &format!("case {i} dk at {level}"));
        close(&got.2, &grads[2], 1e-4, &format!("case {i} dv at {level}"));
    }
}

/// Strided views as inputs give the same result as contiguous copies.
#[test]
fn strided_views_need_no_copy_and_agree() {
    // q, k, v as the head views of one fused (B, T, 3, H, D) buffer.
    let (b, t, h, d) = (2, 40, 3, 8);
    let qkv = Tensor::rand_normal(&[b, t, 3, h, d], 0.0, 1.0, 7).unwrap();
    let heads = qkv.permute(&[2, 0, 3, 1, 4]).unwrap();
    let view = |i: usize| heads.narrow(0, i, 1).unwrap().squeeze(0).unwrap();
    let (q, k, v) = (view(0), view(1), view(2));
    assert!(!q.is_contiguous());
    let go = Tensor::rand_normal(&[b, h, t, d], 0.0, 1.0, 8).unwrap();
    let (out, lse) = scaled_dot_product_attention(&q, &k, &v, 0.3, true).unwrap();
    let (qc, kc, vc) = (q.contiguous(), k.contiguous(), v.contiguous());
    let (want, grads) = composed(&qc, &kc, &vc, &go, 0.3, true);
    close(&out, &want, 1e-5, "strided output");
    let got =
        scaled_dot_product_attention_backward(&q, &k, &v, &out, &lse, &go, 0.3, true).unwrap();
    close(&got.0, &grads[0], 1e-4, "strided dq");
    close(&got.1, &grads[1], 1e-4, "strided dk");
    close(&got.2, &grads[2], 1e-4, "strided dv");
}

/// Inputs stored transposed (unit row stride, so each matrix is read through a row-major copy)
/// give the same result as contiguous inputs, at every level: the forward bit for bit; the
/// gradients to rounding (the row dot product `<dO, O>` sums a strided row in another order).
#[test]
fn transposed_inputs_agree_with_contiguous_ones() {
    let (b, h, t, d) = (2, 2, 45, 32);
    // Each of q, k, v, go is made (B, H, D, T) and viewed as (B, H, T, D): column stride T.
    let stored = |seed: u64| {
        let x = Tensor::rand_normal(&[b, h, d, t], 0.0, 1.0, seed).unwrap();
        x.transpose(-1, -2).unwrap()
    };
    let (q, k, v, go) = (stored(1), stored(2), stored(3), stored(4));
    assert_eq!(q.strides()[3], t as isize);
    for level in supported_levels() {
        at_simd_level(level, || {
            let (out, lse) = scaled_dot_product_attention(&q, &k, &v, 0.2, true).unwrap();
            let (qc, kc, vc, gc) = (
                q.contiguous(),
                k.contiguous(),
                v.contiguous(),
                go.contiguous(),
            );
            let (want, want_lse) = scaled_dot_product_attention(&qc, &kc, &vc, 0.2, true).unwrap();
            close(&out, &want, 0.0, &format!("transposed output at {level}"));
            close(&lse, &want_lse, 0.0, &format!("transposed lse at {level}"));
            let got = scaled_dot_product_attention_backward(&q, &k, &v, &out, &lse, &go, 0.2, true)
                .unwrap();
            let wants = scaled_dot_product_attention_backward(
                &qc, &kc, &vc, &want, &want_lse, &gc, 0.2, true,
            )
            .unwrap();
            close(&got.0, &wants.0, 1e-5, &format!("transposed dq at {level}"));
            close(&got.1, &wants.1, 1e-5, &format!("transposed dk at {level}"));
            close(&got.2, &wants.2, 1e-5, &format!("transposed dv at {level}"));
        });
    }
}

/// Attention rows sum to one and very large scores stay finite.
#[test]
fn rows_are_probabilities_and_large_scores_stay_finite() {
    // Huge scores: the max shift keeps everything finite; v = 1 makes every output row 1.
    let q = Tensor::full(&[1, 6, 4], 100.0);
    let k = Tensor::full(&[1, 6, 4], 100.0);
    let v = Tensor::ones(&[1, 6, 3]);
    let (out, lse) = scaled_dot_product_attention(&q, &k, &v, 1.0, true).unwrap();
    assert!(out.to_vec().iter().all(|&x| (x - 1.0).abs() < 1e-5));
    assert!(lse.all_finite());
}

/// Mismatched shapes are errors naming the op and the shapes.
#[test]
fn bad_shapes_are_named_errors() {
    let q = Tensor::zeros(&[2, 4, 8]);
    let err = |k: &Tensor, v: &Tensor, causal: bool| {
        let e = scaled_dot_product_attention(&q, k, v, 1.0, causal).unwrap_err();
        assert_eq!(e.op(), OP);
        e.to_string()
    };
    let msg = err(
        &Tensor::zeros(&[2, 4, 7]),
        &Tensor::zeros(&[2, 4, 8]),
        false,
    );
    assert!(msg.contains("head size"), "{msg}");
    let msg = err(
        &Tensor::zeros(&[2, 4, 8]),
        &Tensor::zeros(&[2, 5, 8]),
        false,
    );
    assert!(msg.contains("4 keys but v has 5"), "{msg}");
    let msg = err(&Tensor::zeros(&[2, 3, 8]), &Tensor::zeros(&[2, 3, 8]), true);
    assert!(msg.contains("T = 4") && msg.contains("S = 3"), "{msg}");
    let msg = err(
        &Tensor::zeros(&[3, 4, 8]),
        &Tensor::zeros(&[3, 4, 8]),
        false,
    );
    assert!(msg.contains("leading"), "{msg}");
    let msg = err(&Tensor::zeros(&[4, 8]), &Tensor::zeros(&[4, 8]), false);
    assert!(msg.contains("number of dims"), "{msg}");
    let (out, lse) = scaled_dot_product_attention(&q, &q, &q, 1.0, true).unwrap();
    let bad = scaled_dot_product_attention_backward(
        &q,
        &q,
        &q,
        &out,
        &lse,
        &Tensor::zeros(&[2, 4, 7]),
        1.0,
        true,
    )
    .unwrap_err();
    assert!(bad.to_string().contains("grad_out"), "{bad}");
}

/// `(B, H, T, D)` heads merged to `(B, T, C)`.
fn merge(x: &Tensor) -> Tensor {
    let s = x.shape().to_vec();
    x.permute(&[0, 2, 1, 3])
        .unwrap()
        .reshape_to(&[s[0], s[2], s[1] * s[3]])
        .unwrap()
}

/// The packed (B, T, 3C) layout gives the same result as separate head tensors.
#[test]
fn packed_layout_matches_separate_heads() {
    // (B, T, C, H) around the query block size, causal and not.
    for (i, &(b, t, c, h, causal)) in [
        (2, 5, 8, 2, true),
        (3, 37, 12, 3, true),
        (2, 150, 8, 2, true),
        (1, 33, 16, 4, false),
        (2, 64, 32, 1, true),
    ]
    .iter()
    .enumerate()
    {
        let seed = 50 + 10 * i as u64;
        let qkv = Tensor::rand_normal(&[b, t, 3 * c], 0.0, 1.0, seed).unwrap();
        let go = Tensor::rand_normal(&[b, t, c], 0.0, 1.0, seed + 1).unwrap();
        let scale = 1.0 / ((c / h) as f32).sqrt();
        let (out, lse) = packed_attention(&qkv, h, scale, causal).unwrap();
        assert_eq!(lse.shape(), &[b, h, t]);
        // The same problem through the separate-heads entry point.
        let [q, k, v] = unpack(&qkv, h).unwrap();
        let (want, want_lse) = scaled_dot_product_attention(&q, &k, &v, scale, causal).unwrap();
        close(
            &out,
            &merge(&want),
            1e-6,
            &format!("case {i} packed output"),
        );
        close(&lse, &want_lse, 1e-6, &format!("case {i} packed lse"));
        let go_heads = split_heads(&go, h).unwrap();
        let (dq, dk, dv) = scaled_dot_product_attention_backward(
            &q, &k, &v, &want, &want_lse, &go_heads, scale, causal,
        )
        .unwrap();
        let want_grad = Tensor::cat(&[merge(&dq), merge(&dk), merge(&dv)], -1).unwrap();
        let got = packed_attention_backward(&qkv, &out, &lse, &go, h, scale, causal).unwrap();
        close(&got, &want_grad, 1e-6, &format!("case {i} packed gradient"));
    }
}

/// The one packed-shape check returns `(B, T, C)` and names the caller's op and the shape.
#[test]
fn packed_dims_names_the_callers_op() {
    assert_eq!(packed_dims("any", &[2, 5, 24], 4).unwrap(), (2, 5, 8));
    for (shape, n_head) in [(vec![2, 5, 20], 4), (vec![10, 24], 4), (vec![2, 5, 24], 0)] {
        let e = packed_dims("KvCache::append_packed", &shape, n_head).unwrap_err();
        assert_eq!(e.op(), "KvCache::append_packed");
        assert!(e.to_string().contains(&format!("{shape:?}")), "{e}");
    }
}

/// Bad packed shapes are errors naming the op and the shape.
#[test]
fn packed_shape_errors_are_named() {
    let qkv = Tensor::zeros(&[2, 4, 24]);
    let e = packed_attention(&qkv, 5, 1.0, true).unwrap_err();
    assert_eq!(e.op(), PACKED_OP);
    assert!(e.to_string().contains("n_head = 5"), "{e}");
    assert!(packed_attention(&Tensor::zeros(&[4, 24]), 2, 1.0, true).is_err());
    let (out, lse) = packed_attention(&qkv, 2, 1.0, true).unwrap();
    let e = packed_attention_backward(&qkv, &out, &lse, &Tensor::zeros(&[2, 4, 7]), 2, 1.0, true)
        .unwrap_err();
    assert!(e.to_string().contains("grad_out"), "{e}");
    let e = packed_attention_backward(&qkv, &out, &out, &out, 2, 1.0, true).unwrap_err();
    assert!(e.to_string().contains("lse"), "{e}");
}
