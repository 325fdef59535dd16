//! Fused cross-entropy (log-softmax + NLL): ignore index, label smoothing, huge logits, large
//! batches, errors.

use crate::helpers::{
    assert_close, contiguous_copy, numeric_grad, numeric_grad_f32, randn, ref_cross_entropy,
    ref_softmax, to_f64, transposed,
};
use tensor::cross_entropy::{cross_entropy, cross_entropy_backward};
use tensor::Tensor;

/// Cross-entropy loss and its gradient (softmax minus one-hot, divided by the batch) equal
/// hand-computed values on two rows.
#[test]
fn cross_entropy_hand_values() {
    let logits = Tensor::from_vec(vec![1.0, 2.0, 3.0, 0.0, 0.0, 0.0], &[2, 3]).unwrap();
    let (loss, cache) = cross_entropy(&logits, &[2, 0], None, 0.0).unwrap();
    let want = (0.407_605_96 + 3f64.ln()) / 2.0;
    assert!(
        (loss as f64 - want).abs() < 1e-6,
        "loss {loss}, want {want}"
    );
    assert_eq!(cache.count, 2);
    let g = cross_entropy_backward(&cache, &[2, 0], None, 0.0, 1.0).unwrap();
    let third = 1.0 / 3.0;
    let want_g = [
        0.090_030_57 / 2.0,
        0.244_728_47 / 2.0,
        (0.665_240_96 - 1.0) / 2.0,
        (third - 1.0) / 2.0,
        third / 2.0,
        third / 2.0,
    ];
    assert_close(&g.to_vec(), &want_g, 1e-7, 1e-6, "grad");

    // Smoothing 0.3 on uniform logits: loss is ln 3 whatever the target.
    let (loss, _) = cross_entropy(&Tensor::zeros(&[1, 3]), &[1], None, 0.3).unwrap();
    assert!((loss as f64 - 3f64.ln()).abs() < 1e-6);
}

/// The fused cross-entropy matches an f64 log-softmax + NLL reference with ignored targets and
/// label smoothing, loss and gradient.
#[test]
fn cross_entropy_matches_composition_with_ignore_and_smoothing() {
    let (n, c) = (7, 11);
    let logits = randn(&[n, c], 25).map(|v| 3.0 * v);
    let targets = [3, 99, 0, 10, 99, 5, 5];
    let x64 = to_f64(&logits);
    for &(ignore, eps) in &[
        (None, 0.0),
        (Some(99), 0.0),
        (Some(99), 0.1),
        (Some(5), 0.25),
    ] {
        let t: Vec<usize> = targets
            .iter()
            .map(|&t| if Some(t) == ignore { t } else { t % c })
            .collect();
        let (loss, cache) = cross_entropy(&logits, &t, ignore, eps).unwrap();
        let want = ref_cross_entropy(&x64, c, &t, ignore, eps as f64);
        assert!(
            (loss as f64 - want).abs() < 1e-5 * want.abs().max(1.0),
            "loss {loss}, want {want}"
        );
        assert_eq!(
            cache.count,
            t.iter().filter(|&&v| Some(v) != ignore).count()
        );
    }
}

/// The fused cross-entropy gradient equals central finite differences of the f64 reference; ignored
/// rows get exactly zero gradient.
#[test]
fn cross_entropy_backward_matches_finite_differences() {
    let (n, c) = (5, 4);
    let logits = randn(&[n, c], 26).map(|v| 2.0 * v);
    let targets = [1, 7, 3, 0, 2];
    let (ignore, eps, grad_loss) = (Some(7), 0.15f32, 0.7f32);
    let (_, cache) = cross_entropy(&logits, &targets, ignore, eps).unwrap();
    let g = cross_entropy_backward(&cache, &targets, ignore, eps, grad_loss).unwrap();
    assert_eq!(g.shape(), &[n, c]);
    assert!(
        g.to_vec()[c..2 * c].iter().all(|&v| v == 0.0),
        "ignored row has zero gradient"
    );
    let num = numeric_grad(&to_f64(&logits), 1e-5, |v| {
        grad_loss as f64 * ref_cross_entropy(v, c, &targets, ignore, eps as f64)
    });
    assert_close(&g.to_vec(), &num, 1e-6, 1e-4, "grad vs f64 differences");
    let num32 = numeric_grad_f32(&logits.to_vec(), 1e-2, |v| {
        let t = Tensor::from_vec(v.to_vec(), &[n, c]).unwrap();
        grad_loss as f64 * cross_entropy(&t, &targets, ignore, eps).unwrap().0 as f64
    });
    assert_close(
        &g.to_vec(),
        &num32,
        1e-3,
        1e-2,
        "grad vs kernel differences",
    );
}

/// Logits of size 1e4 give a finite loss equal to the f64 reference and finite gradients whose rows
/// sum to zero.
#[test]
fn cross_entropy_with_huge_logits_is_finite_and_exact() {
    let (n, c) = (6, 9);
    let logits = randn(&[n, c], 27).map(|v| 1e4 * v);
    let targets = [0, 1, 2, 3, 4, 5];
    for eps in [0.0f32, 0.1] {
        let (loss, cache) = cross_entropy(&logits, &targets, None, eps).unwrap();
        assert!(loss.is_finite());
        let want = ref_cross_entropy(&to_f64(&logits), c, &targets, None, eps as f64);
        assert!(
            (loss as f64 - want).abs() <= 1e-5 * want.abs() + 1e-6,
            "loss {loss}, want {want}"
        );
        let g = cross_entropy_backward(&cache, &targets, None, eps, 1.0).unwrap();
        assert!(g.all_finite());
        // Each row of the gradient sums to zero (softmax and q both sum to one).
        for row in g.to_vec().chunks(c) {
            assert!(row.iter().sum::<f32>().abs() < 1e-6);
        }
    }
}

/// When every target is the ignore index, the loss is 0 and the gradient is all zeros (no division
/// by zero).
#[test]
fn cross_entropy_with_every_row_ignored_is_zero() {
    let logits = randn(&[3, 4], 28);
    let (loss, cache) = cross_entropy(&logits, &[9, 9, 9], Some(9), 0.1).unwrap();
    assert_eq!(loss, 0.0);
    assert_eq!(cache.count, 0);
    let g = cross_entropy_backward(&cache, &[9, 9, 9], Some(9), 0.1, 1.0).unwrap();
    assert!(g == Tensor::zeros(&[3, 4]));
}

/// A GPT-sized batch (1024 rows x 65 classes, the threaded path) gives the f64 reference loss and
/// softmax-minus-one-hot gradient.
#[test]
fn cross_entropy_large_batch_matches_reference() {
    // 1024 x 65 (a character-level GPT batch of 16 x 64): above the threading threshold.
    let (n, c) = (1024, 65);
    let logits = randn(&[n, c], 29).map(|v| 2.0 * v);
    let targets: Vec<usize> = (0..n).map(|i| (i * 7) % c).collect();
    let (loss, cache) = cross_entropy(&logits, &targets, None, 0.0).unwrap();
    let want = ref_cross_entropy(&to_f64(&logits), c, &targets, None, 0.0);
    assert!(
        (loss as f64 - want).abs() < 1e-5 * want,
        "loss {loss}, want {want}"
    );
    let g = cross_entropy_backward(&cache, &targets, None, 0.0, 1.0).unwrap();
    let p = ref_softmax(&to_f64(&logits), &[n, c], 1, false);
    let want_g: Vec<f64> = (0..n * c)
        .map(|k| (p[k] - if k % c == targets[k / c] { 1.0 } else { 0.0 }) / n as f64)
        .collect();
    assert_close(&g.to_vec(), &want_g, 1e-9, 1e-5, "grad");
}

/// Transposed logits give exactly the same loss and cached probabilities as their contiguous copy.
#[test]
fn cross_entropy_of_non_contiguous_logits_equals_contiguous() {
    let logits = transposed(&randn(&[5, 3], 30));
    let c = contiguous_copy(&logits);
    let t = [4, 0, 2];
    let (a, ca) = cross_entropy(&logits, &t, None, 0.1).unwrap();
    let (b, cb) = cross_entropy(&c, &t, None, 0.1).unwrap();
    assert_eq!(a, b);
    assert!(ca.probs == cb.probs);
}

/// An out-of-range target is an error naming the row, the value and the class count; wrong target
/// counts or ranks are errors too.
#[test]
fn cross_entropy_errors_name_row_value_and_classes() {
    let logits = Tensor::zeros(&[3, 5]);
    let e = cross_entropy(&logits, &[0, 7, 1], None, 0.0).err().unwrap();
    assert_eq!(e.op(), "cross_entropy");
    let msg = e.to_string();
    assert!(
        msg.contains("row 1")
            && msg.contains("7")
            && msg.contains("5 classes")
            && msg.contains("[3, 5]"),
        "{msg}"
    );
    let e = cross_entropy(&logits, &[0, 1], None, 0.0).err().unwrap();
    assert!(e.to_string().contains("2 targets for 3 rows"), "{e}");
    let e = cross_entropy(&Tensor::zeros(&[2, 3, 5]), &[0, 1], None, 0.0)
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("2-D") && e.to_string().contains("[2, 3, 5]"),
        "{e}"
    );
    assert!(cross_entropy(&logits, &[0, 1, 2], None, 1.5).is_err());
    assert!(cross_entropy(&logits, &[0, 1, 2], None, f32::NAN).is_err());
    let (_, cache) = cross_entropy(&logits, &[0, 1, 2], None, 0.0).unwrap();
    let e = cross_entropy_backward(&cache, &[0, 1, 5], None, 0.0, 1.0).unwrap_err();
    assert_eq!(e.op(), "cross_entropy_backward");
    assert!(e.to_string().contains("row 2"), "{e}");
}
