//! The causal attention softmax: masked-fill composition, never reading masked scores, backward,
//! errors.

use crate::helpers::{
    assert_close, contiguous_copy, numeric_grad, numeric_grad_f32, randn, ref_causal_softmax,
    to_f64, transposed, weighted_sum, weighted_sum64,
};
use tensor::causal_softmax::causal_softmax_backward;
use tensor::Tensor;

/// Causal softmax of small score matrices equals hand-computed values, including queries that are
/// the last positions of a longer key sequence (KV cache).
#[test]
fn causal_softmax_hand_values() {
    let y = Tensor::zeros(&[2, 2]).causal_softmax(1.0).unwrap();
    assert_eq!(y.to_vec(), vec![1.0, 0.0, 0.5, 0.5]);
    // Two queries that are the last two of three positions (KV cache): row 0 sees keys 0..=1.
    let x = Tensor::from_vec(vec![0.0, 2.0, 5.0, 1.0, 2.0, 3.0], &[2, 3]).unwrap();
    let y = x.causal_softmax(0.5).unwrap().to_vec();
    let (a, b) = (1.0f64, 1f64.exp());
    assert_close(
        &y[..3],
        &[a / (a + b), b / (a + b), 0.0],
        1e-7,
        1e-6,
        "row 0",
    );
    assert_eq!(y[2], 0.0);
    let (e1, e2, e3) = (0.5f64.exp(), 1f64.exp(), 1.5f64.exp());
    let s = e1 + e2 + e3;
    assert_close(&y[3..], &[e1 / s, e2 / s, e3 / s], 1e-7, 1e-6, "row 1");
}

/// Causal softmax matches the f64 composition "scale, fill future positions with -inf, softmax",
/// and future positions are exactly 0.
#[test]
fn causal_softmax_matches_masked_fill_composition() {
    for shape in [[2, 3, 5, 5], [2, 3, 4, 9], [1, 2, 1, 7]] {
        let x = randn(&shape, 31).map(|v| 3.0 * v);
        let scale = 0.35;
        let y = x.causal_softmax(scale).unwrap();
        assert_close(
            &y.to_vec(),
            &ref_causal_softmax(&to_f64(&x), &shape, scale as f64),
            1e-7,
            2e-6,
            "causal",
        );
        let (t, s) = (shape[2], shape[3]);
        for (r, row) in y.to_vec().chunks(s).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                if j > r % t + (s - t) {
                    assert_eq!(v, 0.0, "masked entry must be exactly 0");
                }
            }
        }
    }
}

/// NaNs placed in the masked (future) scores do not change the output: the kernel never reads them.
#[test]
fn causal_softmax_never_reads_masked_scores() {
    let shape = [3, 4, 4];
    let x = randn(&shape, 32);
    let mut poisoned = x.to_vec();
    for (r, row) in poisoned.chunks_mut(4).enumerate() {
        for v in row.iter_mut().skip(r % 4 + 1) {
            *v = f32::NAN;
        }
    }
    let p = Tensor::from_vec(poisoned, &shape).unwrap();
    assert!(p.causal_softmax(0.5).unwrap() == x.causal_softmax(0.5).unwrap());
}

/// The causal-softmax backward equals finite differences of both the f64 reference and the f32
/// kernel itself.
#[test]
fn causal_softmax_backward_matches_finite_differences() {
    let shape = [2, 3, 5];
    let x = randn(&shape, 33);
    let w = randn(&shape, 34).to_vec();
    let wt = Tensor::from_vec(w.clone(), &shape).unwrap();
    let scale = 0.7f32;
    let y = x.causal_softmax(scale).unwrap();
    let dx = causal_softmax_backward(&y, &wt, scale).unwrap().to_vec();
    let num = numeric_grad(&to_f64(&x), 1e-5, |v| {
        weighted_sum64(&ref_causal_softmax(v, &shape, scale as f64), &w)
    });
    assert_close(&dx, &num, 1e-6, 1e-4, "causal backward vs f64 differences");
    let num32 = numeric_grad_f32(&x.to_vec(), 1e-2, |v| {
        let t = Tensor::from_vec(v.to_vec(), &shape).unwrap();
        weighted_sum(&t.causal_softmax(scale).unwrap().to_vec(), &w)
    });
    assert_close(
        &dx,
        &num32,
        1e-3,
        1e-2,
        "causal backward vs kernel differences",
    );
    // Masked positions get exactly zero gradient.
    for (r, row) in dx.chunks(5).enumerate() {
        assert!(row[r % 3 + 3..].iter().all(|&v| v == 0.0));
    }
}

/// On the GPT benchmark shape (threaded path) causal softmax and its backward match the f64
/// reference.
#[test]
fn causal_softmax_large_tensor_matches_reference() {
    // 12 x 4 x 64 x 64 = 196,608 elements, the GPT benchmark shape: threaded path.
    let shape = [12, 4, 64, 64];
    let x = randn(&shape, 35);
    let scale = 0.125;
    let y = x.causal_softmax(scale).unwrap();
    assert_close(
        &y.to_vec(),
        &ref_causal_softmax(&to_f64(&x), &shape, scale as f64),
        1e-7,
        2e-6,
        "big causal",
    );
    let g = randn(&shape, 36);
    let dx = causal_softmax_backward(&y, &g, scale).unwrap().to_vec();
    let (yv, gv) = (y.to_vec(), g.to_vec());
    let mut want = vec![0.0f64; yv.len()];
    for (r, (yr, gr)) in yv.chunks(64).zip(gv.chunks(64)).enumerate() {
        let allowed = r % 64 + 1;
        let dot: f64 = (0..allowed).map(|j| yr[j] as f64 * gr[j] as f64).sum();
        for j in 0..allowed {
            want[r * 64 + j] = scale as f64 * yr[j] as f64 * (gr[j] as f64 - dot);
        }
    }
    assert_close(&dx, &want, 1e-7, 1e-4, "big causal backward");
}

/// Transposed scores and gradients give bit-identical causal softmax forward and backward to
/// contiguous copies.
#[test]
fn causal_softmax_of_non_contiguous_input_equals_contiguous() {
    let x = transposed(&randn(&[6, 4, 3], 37)); // shape [3, 4, 6]: T = 4, S = 6
    let c = contiguous_copy(&x);
    assert!(x.causal_softmax(0.5).unwrap() == c.causal_softmax(0.5).unwrap());
    let y = c.causal_softmax(0.5).unwrap();
    let g = transposed(&randn(&[6, 4, 3], 38));
    let gc = contiguous_copy(&g);
    assert!(
        causal_softmax_backward(&y, &g, 0.5).unwrap()
            == causal_softmax_backward(&y, &gc, 0.5).unwrap()
    );
}

/// More queries than keys, a 1-d input, a NaN scale or mismatched backward shapes are errors naming
/// causal_softmax and the shapes.
#[test]
fn causal_softmax_errors_name_the_op_and_shapes() {
    let e = Tensor::zeros(&[2, 5, 3]).causal_softmax(1.0).unwrap_err();
    assert_eq!(e.op(), "causal_softmax");
    let msg = e.to_string();
    assert!(
        msg.contains("[2, 5, 3]") && msg.contains("T = 5") && msg.contains("S = 3"),
        "{msg}"
    );
    assert_eq!(
        Tensor::zeros(&[4]).causal_softmax(1.0).unwrap_err().op(),
        "causal_softmax"
    );
    assert!(Tensor::zeros(&[2, 2]).causal_softmax(f32::NAN).is_err());
    let y = Tensor::zeros(&[2, 3]);
    let e = causal_softmax_backward(&y, &Tensor::zeros(&[3, 2]), 1.0).unwrap_err();
    assert_eq!(e.op(), "causal_softmax_backward");
    assert!(e.to_string().contains("[3, 2]"), "{e}");
    assert!(
        Tensor::zeros(&[2, 0, 4])
            .causal_softmax(1.0)
            .unwrap()
            .shape()
            == [2, 0, 4]
    );
}
