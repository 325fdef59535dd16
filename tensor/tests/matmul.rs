//! Grader tests for `Tensor::matmul`: values against hand computations and against the
//! triple-loop reference `matmul_naive`, on 2-D, 1-D, batched and broadcast operands, including
//! transposed, sliced and reversed views that reach the GEMM through their strides.

use ndarray::{Axis, Slice};
use tensor::matmul::matmul_naive;
use tensor::{Tensor, TensorRng};

fn rand(rng: &mut TensorRng, shape: &[usize]) -> Tensor {
    rng.normal(shape, 0.0, 1.0).unwrap()
}

/// `got` equals the reference within a tolerance that grows with the reduction length `k`.
fn assert_matches_naive(a: &Tensor, b: &Tensor, k: usize) {
    let got = a.matmul(b).unwrap();
    let want = matmul_naive(a, b).unwrap();
    assert_eq!(
        got.shape(),
        want.shape(),
        "shape of {:?} @ {:?}",
        a.shape(),
        b.shape()
    );
    assert!(got.is_contiguous(), "matmul output must be contiguous");
    let tol = 1e-5 + 2e-6 * k as f32;
    let diff = got.max_abs_diff(&want).unwrap();
    assert!(
        diff <= tol,
        "{:?} @ {:?}: max diff {diff} > {tol}",
        a.shape(),
        b.shape()
    );
}

/// A non-contiguous tensor whose values equal `t`: the transpose of a contiguous copy of `t`'s
/// transpose (last two dims swapped in memory).
fn transposed_layout(t: &Tensor) -> Tensor {
    let nd = t.ndim();
    let mut swapped = t.array().clone();
    swapped.swap_axes(nd - 2, nd - 1);
    let stored = Tensor::from_array(swapped.as_standard_layout().into_owned());
    let mut view = stored.array().clone();
    view.swap_axes(nd - 2, nd - 1);
    let out = Tensor::from_shared(view);
    assert!(!out.is_contiguous() || t.shape()[nd - 2] <= 1 || t.shape()[nd - 1] <= 1);
    out
}

/// A 2x3 by 3x2 product equals the hand-computed [[58, 64], [139, 154]], the naive triple loop
/// agrees, and the identity changes nothing.
#[test]
fn two_by_three_times_three_by_two_by_hand() {
    let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    let b = Tensor::from_vec(vec![7.0, 8.0, 9.0, 10.0, 11.0, 12.0], &[3, 2]).unwrap();
    let c = a.matmul(&b).unwrap();
    assert_eq!(c.shape(), &[2, 2]);
    assert_eq!(c.to_vec(), vec![58.0, 64.0, 139.0, 154.0]);
    assert_eq!(matmul_naive(&a, &b).unwrap(), c);
    // The identity changes nothing.
    assert_eq!(a.matmul(&Tensor::eye(3)).unwrap(), a);
    assert_eq!(Tensor::eye(2).matmul(&a).unwrap(), a);
}

/// 1-d operands follow PyTorch: vector @ vector is a 0-d dot product, vector @ matrix and matrix @
/// vector drop the vector's dimension.
#[test]
fn vectors_follow_torch_semantics() {
    let v = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]).unwrap();
    let w = Tensor::from_vec(vec![4.0, -5.0, 6.0], &[3]).unwrap();
    // dot product: a 0-d tensor
    let d = v.matmul(&w).unwrap();
    assert_eq!(d.shape(), &[] as &[usize]);
    assert_eq!(d.item().unwrap(), 4.0 - 10.0 + 18.0);
    let m = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]).unwrap();
    // (3,) @ (3, 2) -> (2,)
    let r = v.matmul(&m).unwrap();
    assert_eq!(r.shape(), &[2]);
    assert_eq!(r.to_vec(), vec![1.0 + 6.0 + 15.0, 2.0 + 8.0 + 18.0]);
    // (2, 3) @ (3,) -> (2,)
    let mt = Tensor::from_vec(vec![1.0, 3.0, 5.0, 2.0, 4.0, 6.0], &[2, 3]).unwrap();
    let r = mt.matmul(&v).unwrap();
    assert_eq!(r.shape(), &[2]);
    assert_eq!(r.to_vec(), vec![22.0, 28.0]);
    // batched with a vector on either side
    let mut rng = TensorRng::new(11);
    let batch = rand(&mut rng, &[4, 5, 3]);
    assert_eq!(batch.matmul(&v).unwrap().shape(), &[4, 5]);
    assert_matches_naive(&batch, &v, 3);
    let batch = rand(&mut rng, &[2, 4, 3, 6]);
    assert_eq!(v.matmul(&batch).unwrap().shape(), &[2, 4, 6]);
    assert_matches_naive(&v, &batch, 3);
}

/// The fast GEMM matches the naive triple loop on many shapes: thin, single-row, single-column,
/// threaded and past the kernel's tile edges.
#[test]
fn random_2d_shapes_match_the_reference() {
    let mut rng = TensorRng::new(2024);
    let mut shapes = vec![
        (1, 1, 1),
        (1, 7, 1),
        (1, 33, 40),
        (40, 33, 1),
        (17, 1, 23),
        (1, 1, 50),
        (50, 1, 1),
        (64, 64, 64),
        (3, 200, 5),
        (129, 65, 31),
        (200, 300, 250), // large enough to be threaded
        (300, 128, 65),  // a few columns past the kernel's 64-column tile
        (70, 40, 66),
        (9, 5, 132),
        (2, 3, 129),
    ];
    for _ in 0..12 {
        shapes.push((1 + rng.below(70), 1 + rng.below(70), 1 + rng.below(70)));
    }
    for (m, k, n) in shapes {
        let a = rand(&mut rng, &[m, k]);
        let b = rand(&mut rng, &[k, n]);
        assert_matches_naive(&a, &b, k);
    }
}

/// Transposed operands (strided views) give the same product as the naive reference, without being
/// copied wrong.
#[test]
fn transposed_inputs_use_their_strides() {
    let mut rng = TensorRng::new(7);
    for &(m, k, n) in &[
        (5, 7, 3),
        (64, 48, 80),
        (1, 9, 4),
        (9, 1, 4),
        (150, 120, 170),
    ] {
        let a = rand(&mut rng, &[m, k]);
        let b = rand(&mut rng, &[k, n]);
        let want = matmul_naive(&a, &b).unwrap();
        let (at, bt) = (transposed_layout(&a), transposed_layout(&b));
        assert_eq!(at.to_vec(), a.to_vec());
        assert_eq!(bt.to_vec(), b.to_vec());
        for (x, y) in [(&at, &b), (&a, &bt), (&at, &bt)] {
            let got = x.matmul(y).unwrap();
            assert!(got.max_abs_diff(&want).unwrap() <= 1e-5 + 2e-6 * k as f32);
        }
        // A^T via reversed axes: (k, m)^T @ (k, n) is the "gradient" form A^T B.
        let akm = rand(&mut rng, &[k, m]);
        let a_t = Tensor::from_shared(akm.array().clone().reversed_axes());
        assert!(!a_t.is_contiguous() || m == 1 || k == 1);
        assert_matches_naive(&a_t, &b, k);
    }
}

/// Sliced views (row stride larger than the width) and reversed views (negative strides) multiply
/// correctly.
#[test]
fn sliced_and_reversed_views() {
    let mut rng = TensorRng::new(99);
    let big = rand(&mut rng, &[40, 50]);
    let rhs = rand(&mut rng, &[30, 20]);
    // Rows 3..23 and columns 10..40 of a 40x50 matrix: unit column stride, row stride 50.
    let mut view = big.array().clone();
    view.slice_axis_inplace(Axis(0), Slice::from(3..23));
    view.slice_axis_inplace(Axis(1), Slice::from(10..40));
    let a = Tensor::from_shared(view);
    assert_eq!(a.shape(), &[20, 30]);
    assert!(!a.is_contiguous());
    assert_matches_naive(&a, &rhs, 30);
    // Reversed rows (negative stride).
    let mut rev = big.array().clone();
    rev.slice_axis_inplace(Axis(1), Slice::from(0..30));
    rev.slice_axis_inplace(Axis(0), Slice::new(0, None, -1));
    let a = Tensor::from_shared(rev);
    assert_matches_naive(&a, &rhs, 30);
    // Every other row and column: no unit stride anywhere, so matmul copies once.
    let mut strided = big.array().clone();
    strided.slice_axis_inplace(Axis(0), Slice::new(0, None, 2));
    strided.slice_axis_inplace(Axis(1), Slice::new(0, Some(50), 2));
    let a = Tensor::from_shared(strided);
    assert_eq!(a.shape(), &[20, 25]);
    let r = rand(&mut rng, &[25, 6]);
    assert_matches_naive(&a, &r, 25);
    // A narrowed right operand (columns 5..25 of a 30x40 matrix).
    let wide = rand(&mut rng, &[30, 40]);
    let mut nb = wide.array().clone();
    nb.slice_axis_inplace(Axis(1), Slice::from(5..25));
    let b = Tensor::from_shared(nb);
    let lhs = rand(&mut rng, &[11, 30]);
    assert_matches_naive(&lhs, &b, 30);
}

/// A (B, H, T, D) @ (B, H, D, T) product with a permuted key view (attention scores) matches the
/// naive reference and a hand-summed entry.
#[test]
fn batched_attention_shapes() {
    let mut rng = TensorRng::new(3);
    let (bsz, h, t, d) = (2, 3, 9, 8);
    let q = rand(&mut rng, &[bsz, h, t, d]);
    let kk = rand(&mut rng, &[bsz, h, t, d]);
    // q @ k^T with k^T a strided view (B, H, D, T).
    let k_t = Tensor::from_shared(kk.array().clone().permuted_axes(vec![0, 1, 3, 2]));
    assert!(!k_t.is_contiguous());
    let scores = q.matmul(&k_t).unwrap();
    assert_eq!(scores.shape(), &[bsz, h, t, t]);
    assert_matches_naive(&q, &k_t, d);
    // Check one entry by hand.
    let mut s = 0.0;
    for p in 0..d {
        s += q.get(&[1, 2, 4, p]).unwrap() * kk.get(&[1, 2, 7, p]).unwrap();
    }
    assert!((scores.get(&[1, 2, 4, 7]).unwrap() - s).abs() < 1e-5);
    // att @ v
    let v = rand(&mut rng, &[bsz, h, t, d]);
    assert_matches_naive(&scores, &v, t);
    // The benchmark's batched shape: 48 products of 64x32 @ 32x64.
    let a = rand(&mut rng, &[48, 64, 32]);
    let b = rand(&mut rng, &[48, 32, 64]);
    assert_matches_naive(&a, &b, 32);
}

/// Batch dimensions broadcast like PyTorch ((B, T, C) @ (C, N), permuted batch axes, batch of 1
/// against batch of B) and match the reference.
#[test]
fn batch_dimensions_broadcast() {
    let mut rng = TensorRng::new(5);
    // (B, T, C) @ (C, N): one weight for every sample.
    let x = rand(&mut rng, &[4, 10, 16]);
    let w = rand(&mut rng, &[16, 12]);
    assert_eq!(x.matmul(&w).unwrap().shape(), &[4, 10, 12]);
    assert_matches_naive(&x, &w, 16);
    // The same with a lhs whose batch dims are permuted (cannot fold into one GEMM).
    let xp = Tensor::from_shared(
        rand(&mut rng, &[10, 4, 16])
            .array()
            .clone()
            .permuted_axes(vec![1, 0, 2]),
    );
    assert_matches_naive(&xp, &w, 16);
    // And with a transposed weight (C, N) viewed from (N, C).
    let wt = Tensor::from_shared(rand(&mut rng, &[12, 16]).array().clone().reversed_axes());
    assert_matches_naive(&x, &wt, 16);
    // (2, 1, 3, 4) @ (5, 4, 2) -> (2, 5, 3, 2)
    let a = rand(&mut rng, &[2, 1, 3, 4]);
    let b = rand(&mut rng, &[5, 4, 2]);
    assert_eq!(a.matmul(&b).unwrap().shape(), &[2, 5, 3, 2]);
    assert_matches_naive(&a, &b, 4);
    // (3, 4) @ (2, 4, 5) -> (2, 3, 5): the matrix on the left is reused for each batch entry.
    let a = rand(&mut rng, &[3, 4]);
    let b = rand(&mut rng, &[2, 4, 5]);
    assert_eq!(a.matmul(&b).unwrap().shape(), &[2, 3, 5]);
    assert_matches_naive(&a, &b, 4);
    // Size-1 batch dims on both sides, and a rhs with batch dims of length 1 only.
    let a = rand(&mut rng, &[1, 6, 1, 3, 7]);
    let b = rand(&mut rng, &[4, 1, 1, 7, 2]);
    assert_eq!(a.matmul(&b).unwrap().shape(), &[4, 6, 1, 3, 2]);
    assert_matches_naive(&a, &b, 7);
    let a = rand(&mut rng, &[3, 5, 7]);
    let b = rand(&mut rng, &[1, 1, 7, 2]);
    assert_eq!(a.matmul(&b).unwrap().shape(), &[1, 3, 5, 2]);
    assert_matches_naive(&a, &b, 7);
    // Few large products (the sequential loop of threaded GEMMs).
    let a = rand(&mut rng, &[2, 220, 200]);
    let b = rand(&mut rng, &[2, 200, 200]);
    assert_matches_naive(&a, &b, 200);
    // Many small products (one parallel loop over the batch).
    let a = rand(&mut rng, &[64, 40, 40]);
    let b = rand(&mut rng, &[64, 40, 40]);
    assert_matches_naive(&a, &b, 40);
}

/// Products with an empty dimension have the right empty shape, and an inner dimension of 0 gives
/// all zeros (a sum over nothing).
#[test]
fn empty_dimensions() {
    let a = Tensor::zeros(&[0, 3]);
    let b = Tensor::ones(&[3, 4]);
    assert_eq!(a.matmul(&b).unwrap().shape(), &[0, 4]);
    // k = 0: a sum over nothing is zero.
    let a = Tensor::ones(&[2, 0]);
    let b = Tensor::ones(&[0, 3]);
    assert_eq!(a.matmul(&b).unwrap(), Tensor::zeros(&[2, 3]));
    let a = Tensor::ones(&[0, 2, 3]);
    let b = Tensor::ones(&[3, 3]);
    assert_eq!(a.matmul(&b).unwrap().shape(), &[0, 2, 3]);
}

/// Incompatible operands (inner dimensions, vector lengths, batch dimensions, 0-d tensors) are
/// errors naming matmul and both shapes.
#[test]
fn errors_name_matmul_and_both_shapes() {
    let cases: Vec<(Vec<usize>, Vec<usize>)> = vec![
        (vec![2, 3], vec![4, 5]),       // inner dimensions differ
        (vec![3], vec![4]),             // vector lengths differ
        (vec![2, 3], vec![2]),          // matrix-vector mismatch
        (vec![2, 2, 3], vec![3, 3, 4]), // batch dims 2 and 3 do not broadcast
        (vec![], vec![3]),              // 0-d operand
        (vec![3, 3], vec![]),
    ];
    for (ls, rs) in cases {
        let a = Tensor::zeros(&ls);
        let b = Tensor::zeros(&rs);
        let err = a.matmul(&b).unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.op(), "matmul");
        assert!(msg.contains("matmul"), "{msg}");
        assert!(msg.contains(&format!("{ls:?}")), "{msg} should name {ls:?}");
        assert!(msg.contains(&format!("{rs:?}")), "{msg} should name {rs:?}");
        let naive = matmul_naive(&a, &b).unwrap_err();
        assert_eq!(naive.op(), "matmul");
    }
}
