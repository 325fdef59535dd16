//! Grader tests for chapter 1 (`tensor`): constructors, broadcasting, elementwise ops, reductions, shape ops,
//! activations and their backward kernels, display and errors.

use tensor::activation::{
    bias_gelu_backward, gelu_backward, relu_backward, sigmoid_backward, tanh_backward,
};
use tensor::broadcast::broadcast_shapes;
use tensor::shape::{index_select_backward, slice_backward};
use tensor::{Tensor, TensorError};

fn t(values: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(values.to_vec(), shape).unwrap()
}

/// Constructors produce the documented values and shapes.
#[test]
fn constructors() {
    assert_eq!(Tensor::zeros(&[2, 3]).to_vec(), vec![0.0; 6]);
    assert_eq!(Tensor::ones(&[4]).to_vec(), vec![1.0; 4]);
    assert_eq!(Tensor::full(&[2], 7.5).to_vec(), vec![7.5, 7.5]);
    assert_eq!(
        Tensor::arange(0.0, 5.0, 2.0).unwrap().to_vec(),
        vec![0.0, 2.0, 4.0]
    );
    assert_eq!(
        Tensor::arange(3.0, 0.0, -1.0).unwrap().to_vec(),
        vec![3.0, 2.0, 1.0]
    );
    assert!(Tensor::arange(0.0, 1.0, 0.0).is_err());
    assert_eq!(
        Tensor::eye(3).to_vec(),
        vec![1., 0., 0., 0., 1., 0., 0., 0., 1.]
    );
    assert_eq!(Tensor::scalar(2.0).shape(), &[] as &[usize]);
    let e = Tensor::from_vec(vec![1.0; 5], &[2, 3]).unwrap_err();
    assert!(
        e.to_string().contains("from_vec") && e.to_string().contains("[2, 3]"),
        "{e}"
    );
}

/// Seeded random tensors repeat with the same seed and have the requested statistics.
#[test]
fn seeded_random() {
    let a = Tensor::rand_normal(&[10000], 1.0, 2.0, 7).unwrap();
    let b = Tensor::rand_normal(&[10000], 1.0, 2.0, 7).unwrap();
    let c = Tensor::rand_normal(&[10000], 1.0, 2.0, 8).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    let mean = a.mean_all().item().unwrap();
    let std = a.var(0, false, true).unwrap().item().unwrap().sqrt();
    assert!((mean - 1.0).abs() < 0.08, "mean {mean}");
    assert!((std - 2.0).abs() < 0.08, "std {std}");
    let u = Tensor::rand_uniform(&[1000], -1.0, 3.0, 1).unwrap();
    assert!(u.min_all() >= -1.0 && u.max_all() < 3.0);
}

/// Broadcasting: scalar, row, column, leading dims, and incompatible shapes.
#[test]
fn broadcasting_cases() {
    let m = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
    // scalar (0-d) and one-element
    assert_eq!(
        m.add(&Tensor::scalar(1.0)).unwrap().to_vec(),
        vec![2., 3., 4., 5., 6., 7.]
    );
    // row
    let row = t(&[10., 20., 30.], &[3]);
    assert_eq!(
        m.add(&row).unwrap().to_vec(),
        vec![11., 22., 33., 14., 25., 36.]
    );
    // column
    let col = t(&[100., 200.], &[2, 1]);
    assert_eq!(
        m.add(&col).unwrap().to_vec(),
        vec![101., 102., 103., 204., 205., 206.]
    );
    // outer: (2,1) x (3,) -> (2,3)
    assert_eq!(
        col.mul(&row).unwrap().to_vec(),
        vec![1000., 2000., 3000., 2000., 4000., 6000.]
    );
    // leading dims: (4,1,3) + (2,3) -> (4,2,3)
    let lead = Tensor::ones(&[4, 1, 3]);
    assert_eq!(lead.add(&m).unwrap().shape(), &[4, 2, 3]);
    assert_eq!(
        broadcast_shapes("x", &[5, 1, 4], &[3, 1]).unwrap(),
        vec![5, 3, 4]
    );
    // scalar on the left
    assert_eq!(
        Tensor::scalar(1.0).sub(&row).unwrap().to_vec(),
        vec![-9., -19., -29.]
    );
    // incompatible
    let err = m.add(&t(&[1., 2.], &[2])).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("add") && msg.contains("[2, 3]") && msg.contains("[2]"),
        "{msg}"
    );
    assert!(matches!(err, TensorError::ShapeMismatch { op: "add", .. }));
}

/// A bias gradient, `(B, T, N)` summed to `(N,)`, `(1, N)`, `(1, 1, N)`, `(T, N)`: the one-pass
/// row sum of a contiguous tensor gives the general path's values (the same numbers laid out
/// non-contiguously take the general path), and both equal a plain loop over the rows.
#[test]
fn sum_to_shape_of_trailing_dims_matches_the_general_path() {
    let x = Tensor::rand_normal(&[5, 7, 6], 0.0, 1.0, 3).unwrap();
    let strided = x.transpose(0, 1).unwrap().contiguous();
    let strided = strided.transpose(0, 1).unwrap();
    assert!(x.is_contiguous() && !strided.is_contiguous());
    assert_eq!(strided.to_vec(), x.to_vec());
    for shape in [&[6][..], &[1, 6], &[1, 1, 6], &[7, 6], &[1, 7, 6]] {
        let (fast, general) = (
            x.sum_to_shape(shape).unwrap(),
            strided.sum_to_shape(shape).unwrap(),
        );
        assert_eq!(fast.shape(), shape);
        assert_eq!(general.shape(), shape);
        for (a, b) in fast.to_vec().iter().zip(general.to_vec()) {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "{shape:?}: {a} vs {b}"
            );
        }
    }
    // (N,) against the plain loop over the 35 rows.
    let values = x.to_vec();
    let mut want = [0.0f32; 6];
    for row in values.chunks_exact(6) {
        for (w, v) in want.iter_mut().zip(row) {
            *w += v;
        }
    }
    for (a, b) in x.sum_to_shape(&[6]).unwrap().to_vec().iter().zip(want) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
    }
}

/// sum_to_shape undoes broadcasting (the gradient of a broadcast is a sum).
#[test]
fn sum_to_shape_undoes_broadcast() {
    let g = Tensor::ones(&[4, 2, 3]);
    assert_eq!(g.sum_to_shape(&[3]).unwrap().to_vec(), vec![8., 8., 8.]);
    assert_eq!(g.sum_to_shape(&[2, 1]).unwrap().to_vec(), vec![12., 12.]);
    assert_eq!(g.sum_to_shape(&[4, 1, 3]).unwrap().shape(), &[4, 1, 3]);
    assert_eq!(g.sum_to_shape(&[]).unwrap().to_vec(), vec![24.]);
    assert!(g.sum_to_shape(&[5]).is_err());
    let x = t(&[1., 2.], &[2, 1]);
    assert_eq!(
        x.broadcast_to(&[2, 3]).unwrap().to_vec(),
        vec![1., 1., 1., 2., 2., 2.]
    );
    assert!(x.broadcast_to(&[3, 3]).is_err());
}

/// Elementwise math against hand-computed values.
#[test]
fn elementwise_values() {
    let a = t(&[1., 4., 9.], &[3]);
    let b = t(&[2., 2., 3.], &[3]);
    assert_eq!(a.sub(&b).unwrap().to_vec(), vec![-1., 2., 6.]);
    assert_eq!(a.div(&b).unwrap().to_vec(), vec![0.5, 2., 3.]);
    assert_eq!(a.pow(&b).unwrap().to_vec(), vec![1., 16., 729.]);
    assert_eq!(a.sqrt().to_vec(), vec![1., 2., 3.]);
    assert_eq!(a.neg().to_vec(), vec![-1., -4., -9.]);
    assert_eq!(a.maximum(&b).unwrap().to_vec(), vec![2., 4., 9.]);
    assert_eq!(a.minimum(&b).unwrap().to_vec(), vec![1., 2., 3.]);
    assert_eq!(a.powf(0.5).to_vec(), vec![1., 2., 3.]);
    assert_eq!(a.clamp(2.0, 5.0).unwrap().to_vec(), vec![2., 4., 5.]);
    assert!(a.clamp(5.0, 2.0).is_err());
    assert_eq!(t(&[-1.5, 2.0], &[2]).abs().to_vec(), vec![1.5, 2.0]);
    let e = t(&[0.0, 1.0], &[2]).exp().to_vec();
    assert!((e[1] - std::f32::consts::E).abs() < 1e-6 && e[0] == 1.0);
    assert!((t(&[std::f32::consts::E], &[1]).log().to_vec()[0] - 1.0).abs() < 1e-6);
    assert!(t(&[-1.0], &[1]).log().to_vec()[0].is_nan());
    assert_eq!(
        a.add_scalar(1.0).mul_scalar(2.0).to_vec(),
        vec![4., 10., 20.]
    );
}

/// Comparisons produce masks; where and masked_fill select.
#[test]
fn masks_and_selection() {
    let a = t(&[1., 5., 3.], &[3]);
    let b = t(&[2., 5., 1.], &[3]);
    assert_eq!(a.gt(&b).unwrap().to_vec(), vec![0., 0., 1.]);
    assert_eq!(a.ge(&b).unwrap().to_vec(), vec![0., 1., 1.]);
    assert_eq!(a.lt(&b).unwrap().to_vec(), vec![1., 0., 0.]);
    assert_eq!(a.le(&b).unwrap().to_vec(), vec![1., 1., 0.]);
    assert_eq!(a.eq_mask(&b).unwrap().to_vec(), vec![0., 1., 0.]);
    assert_eq!(a.gt_scalar(2.0).to_vec(), vec![0., 1., 1.]);
    let w = Tensor::where_cond(&a.gt(&b).unwrap(), &a, &Tensor::scalar(-1.0)).unwrap();
    assert_eq!(w.to_vec(), vec![-1., -1., 3.]);
    let m = Tensor::zeros(&[2, 2]);
    let mask = t(&[0., 1.], &[2]);
    assert_eq!(
        m.masked_fill(&mask, 9.0).unwrap().to_vec(),
        vec![0., 9., 0., 9.]
    );
    assert!(mask.masked_fill(&Tensor::ones(&[2, 2]), 1.0).is_err());
}

/// Reductions with and without keepdim, negative dims, NaN propagation.
#[test]
fn reductions() {
    let m = t(&[1., 5., 3., 4., 2., 6.], &[2, 3]);
    assert_eq!(m.sum(0, false).unwrap().to_vec(), vec![5., 7., 9.]);
    assert_eq!(m.sum(-1, true).unwrap().shape(), &[2, 1]);
    assert_eq!(m.sum(1, true).unwrap().to_vec(), vec![9., 12.]);
    assert_eq!(m.mean(1, false).unwrap().to_vec(), vec![3., 4.]);
    assert_eq!(m.max(1, false).unwrap().to_vec(), vec![5., 6.]);
    assert_eq!(m.min(0, false).unwrap().to_vec(), vec![1., 2., 3.]);
    assert_eq!(m.argmax(1, false).unwrap().to_vec(), vec![1., 2.]);
    assert_eq!(m.argmin(1, false).unwrap().to_vec(), vec![0., 1.]);
    assert_eq!(m.sum_all().item().unwrap(), 21.0);
    assert_eq!(m.mean_all().item().unwrap(), 3.5);
    // var of [1,5,3] = mean 3, squares 4+4+0=8 -> unbiased 4, biased 8/3
    let v = m.var(1, false, true).unwrap().to_vec();
    assert_eq!(v[0], 4.0);
    assert!((m.var(1, false, false).unwrap().to_vec()[0] - 8.0 / 3.0).abs() < 1e-6);
    // ties pick the first
    assert_eq!(
        t(&[2., 2., 1.], &[3]).argmax(0, false).unwrap().to_vec(),
        vec![0.]
    );
    // NaN propagates through max
    assert!(t(&[1., f32::NAN, 3.], &[3]).max(0, false).unwrap().to_vec()[0].is_nan());
    let err = m.sum(2, false).unwrap_err();
    assert!(err.to_string().contains("sum") && err.to_string().contains("[2, 3]"));
    assert!(Tensor::zeros(&[0, 2]).max(0, false).is_err());
}

/// Reshape (with -1), views for transpose/permute/narrow, and copies only when needed.
#[test]
fn shape_ops() {
    let x = Tensor::arange(0.0, 24.0, 1.0).unwrap();
    let r = x.reshape(&[2, -1, 4]).unwrap();
    assert_eq!(r.shape(), &[2, 3, 4]);
    assert!(x.reshape(&[5, -1]).is_err());
    assert!(x.reshape(&[-1, -1]).is_err());
    let e = x.reshape_to(&[5, 5]).unwrap_err().to_string();
    assert!(
        e.contains("reshape") && e.contains("[24]") && e.contains("[5, 5]"),
        "{e}"
    );

    let tr = r.transpose(0, 2).unwrap();
    assert_eq!(tr.shape(), &[4, 3, 2]);
    assert!(!tr.is_contiguous());
    assert_eq!(tr.get(&[1, 2, 1]).unwrap(), r.get(&[1, 2, 1]).unwrap());
    // a view shares the buffer
    assert_eq!(tr.array().as_ptr(), r.array().as_ptr());
    // reshape of a non-contiguous view copies into row-major order
    let flat = tr.reshape(&[-1]).unwrap();
    assert_eq!(flat.to_vec()[..4], [0., 12., 4., 16.]);

    let p = r.permute(&[2, 0, 1]).unwrap();
    assert_eq!(p.shape(), &[4, 2, 3]);
    assert_eq!(p.get(&[3, 1, 2]).unwrap(), r.get(&[1, 2, 3]).unwrap());
    assert!(r.permute(&[0, 0, 1]).is_err());

    let u = r.unsqueeze(1).unwrap();
    assert_eq!(u.shape(), &[2, 1, 3, 4]);
    assert_eq!(u.squeeze(1).unwrap().shape(), &[2, 3, 4]);
    assert_eq!(r.unsqueeze(-1).unwrap().shape(), &[2, 3, 4, 1]);
    assert!(r.squeeze(0).is_err());
    assert_eq!(u.squeeze_all().shape(), &[2, 3, 4]);

    let n = r.narrow(2, 1, 2).unwrap();
    assert_eq!(n.shape(), &[2, 3, 2]);
    assert_eq!(n.to_vec()[..4], [1., 2., 5., 6.]);
    assert!(r.narrow(2, 3, 2).is_err());
    let s = x.slice(0, 1, 10, 3).unwrap();
    assert_eq!(s.to_vec(), vec![1., 4., 7.]);

    assert_eq!(r.flatten(1, -1).unwrap().shape(), &[2, 12]);
    assert_eq!(r.flatten(0, 1).unwrap().shape(), &[6, 4]);
}

/// concat, stack, split, chunk and index_select.
#[test]
fn join_split_gather() {
    let a = t(&[1., 2., 3., 4.], &[2, 2]);
    let b = t(&[5., 6.], &[1, 2]);
    let c = Tensor::cat(&[a.clone(), b.clone()], 0).unwrap();
    assert_eq!(c.to_vec(), vec![1., 2., 3., 4., 5., 6.]);
    let err = Tensor::cat(&[a.clone(), b.clone()], 1)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cat") && err.contains("[2, 2]") && err.contains("[1, 2]"),
        "{err}"
    );
    let s = Tensor::stack(&[a.clone(), a.clone()], 1).unwrap();
    assert_eq!(s.shape(), &[2, 2, 2]);
    assert_eq!(s.to_vec(), vec![1., 2., 1., 2., 3., 4., 3., 4.]);
    assert_eq!(
        Tensor::stack(&[a.clone(), a.clone()], -1).unwrap().shape(),
        &[2, 2, 2]
    );
    assert!(Tensor::stack(&[a.clone(), b.clone()], 0).is_err());

    let x = Tensor::arange(0.0, 10.0, 1.0).unwrap();
    let parts = x.split(4, 0).unwrap();
    assert_eq!(
        parts.iter().map(|p| p.numel()).collect::<Vec<_>>(),
        vec![4, 4, 2]
    );
    let chunks = x.chunk(3, 0).unwrap();
    assert_eq!(chunks.len(), 3);
    assert_eq!(chunks[2].to_vec(), vec![8., 9.]);

    let table = t(&[0., 1., 10., 11., 20., 21.], &[3, 2]);
    let g = table.index_select(0, &[2, 0, 2]).unwrap();
    assert_eq!(g.to_vec(), vec![20., 21., 0., 1., 20., 21.]);
    assert_eq!(
        table.index_select(1, &[1]).unwrap().to_vec(),
        vec![1., 11., 21.]
    );
    let err = table.index_select(0, &[3]).unwrap_err();
    assert!(matches!(
        err,
        TensorError::IndexOutOfRange {
            index: 3,
            size: 3,
            ..
        }
    ));
}

/// The scatter kernels are the adjoints of slice and index_select: <f(x), g> == <x, f*(g)>.
#[test]
fn scatter_kernels_are_adjoints() {
    let x = Tensor::rand_normal(&[5, 4], 0.0, 1.0, 1).unwrap();
    let idx = [4, 1, 1, 0];
    let y = x.index_select(0, &idx).unwrap();
    let g = Tensor::rand_normal(y.shape(), 0.0, 1.0, 2).unwrap();
    let lhs = y.mul(&g).unwrap().sum_all().item().unwrap();
    let back = index_select_backward(&g, x.shape(), 0, &idx).unwrap();
    let rhs = x.mul(&back).unwrap().sum_all().item().unwrap();
    assert!((lhs - rhs).abs() < 1e-4, "{lhs} vs {rhs}");

    let s = x.slice(1, 1, 4, 2).unwrap();
    let g = Tensor::rand_normal(s.shape(), 0.0, 1.0, 3).unwrap();
    let lhs = s.mul(&g).unwrap().sum_all().item().unwrap();
    let back = slice_backward(&g, x.shape(), 1, 1, 2).unwrap();
    assert_eq!(back.shape(), x.shape());
    let rhs = x.mul(&back).unwrap().sum_all().item().unwrap();
    assert!((lhs - rhs).abs() < 1e-4, "{lhs} vs {rhs}");
}

/// Activations match hand-computed values; sigmoid is stable for large |x|.
#[test]
fn activations() {
    let x = t(&[-2., 0., 3.], &[3]);
    assert_eq!(x.relu().to_vec(), vec![0., 0., 3.]);
    assert_eq!(x.leaky_relu(0.1).to_vec(), vec![-0.2, 0., 3.]);
    let s = t(&[-1000., 0., 1000.], &[3]).sigmoid().to_vec();
    assert_eq!(s, vec![0., 0.5, 1.]);
    assert!((x.tanh().to_vec()[2] - 3f32.tanh()).abs() < 1e-7);
    // GELU(1) = 0.8413447 (exact erf form); GELU(-1) = -0.1586553
    let g = t(&[1., -1., 0.], &[3]).gelu().to_vec();
    assert!((g[0] - 0.841_344_7).abs() < 1e-6 && (g[1] + 0.158_655_3).abs() < 1e-6 && g[2] == 0.0);
}

fn finite_diff_check(
    f: impl Fn(&Tensor) -> Tensor,
    backward: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor,
    x: &Tensor,
) {
    let y = f(x);
    let w = Tensor::rand_normal(y.shape(), 0.0, 1.0, 99).unwrap();
    let analytic = backward(x, &y, &w).to_vec();
    let xs = x.to_vec();
    let eps = 1e-3f64;
    for i in 0..xs.len() {
        let loss = |delta: f64| -> f64 {
            let mut v = xs.clone();
            v[i] = (v[i] as f64 + delta) as f32;
            let yi = f(&Tensor::from_vec(v, x.shape()).unwrap());
            yi.to_vec()
                .iter()
                .zip(w.to_vec())
                .map(|(&a, b)| a as f64 * b as f64)
                .sum()
        };
        let numeric = (loss(eps) - loss(-eps)) / (2.0 * eps);
        let diff = (numeric - analytic[i] as f64).abs();
        assert!(
            diff < 2e-2 * (1.0 + numeric.abs()),
            "element {i}: numeric {numeric}, analytic {}",
            analytic[i]
        );
    }
}

/// Every activation backward kernel agrees with central finite differences.
#[test]
fn activation_backward_kernels_match_finite_differences() {
    // keep inputs away from ReLU's kink
    let x = t(&[-1.7, -0.6, -0.2, 0.3, 0.9, 2.1], &[2, 3]);
    finite_diff_check(|x| x.relu(), |x, _, g| relu_backward(x, g).unwrap(), &x);
    finite_diff_check(
        |x| x.sigmoid(),
        |_, y, g| sigmoid_backward(y, g).unwrap(),
        &x,
    );
    finite_diff_check(|x| x.tanh(), |_, y, g| tanh_backward(y, g).unwrap(), &x);
    finite_diff_check(|x| x.gelu(), |x, _, g| gelu_backward(x, g).unwrap(), &x);
    let err = relu_backward(&x, &Tensor::ones(&[3]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("relu_backward") && err.contains("[2, 3]") && err.contains("[3]"));
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec().iter().map(|v| v.to_bits()).collect()
}

/// `bias_gelu` is `add` then `gelu`, bit for bit, and its backward is `gelu_backward` of the sum
/// (bit for bit) with the bias gradient summed over rows: for rows shorter and longer than a
/// kernel block, with a remainder, on the parallel path (over 65k elements), with tail and
/// clamped inputs, and for a non-contiguous input (the composed fallback).
#[test]
fn bias_gelu_matches_its_composition() {
    for (shape, seed) in [
        (vec![3, 5, 100], 1u64),
        (vec![4, 128], 2),
        (vec![2, 300, 257], 3),
    ] {
        let n = *shape.last().unwrap();
        let x = Tensor::rand_normal(&shape, 0.0, 3.0, seed).unwrap();
        let b = Tensor::rand_normal(&[n], 0.0, 1.0, seed + 10).unwrap();
        let g = Tensor::rand_normal(&shape, 0.0, 1.0, seed + 20).unwrap();
        let sum = x.add(&b).unwrap();
        assert_eq!(
            bits(&x.bias_gelu(&b).unwrap()),
            bits(&sum.gelu()),
            "{shape:?}"
        );
        let (dx, db) = bias_gelu_backward(&x, &b, &g).unwrap();
        let want_dx = gelu_backward(&sum, &g).unwrap();
        assert_eq!(bits(&dx), bits(&want_dx), "{shape:?}");
        let want_db = want_dx.sum_to_shape(&[n]).unwrap().to_vec();
        for (i, (&got, &want)) in db.to_vec().iter().zip(&want_db).enumerate() {
            let tol = 1e-5 * (1.0 + want.abs()) * (shape.iter().product::<usize>() / n) as f32;
            assert!(
                (got - want).abs() <= tol,
                "{shape:?} db[{i}] {got} vs {want}"
            );
        }
    }
    // A transposed (non-contiguous) input takes the composed path.
    let x = Tensor::rand_normal(&[6, 9], 0.0, 2.0, 7)
        .unwrap()
        .t()
        .unwrap();
    let b = Tensor::rand_normal(&[6], 0.0, 1.0, 8).unwrap();
    let g = Tensor::rand_normal(&[9, 6], 0.0, 1.0, 9).unwrap();
    let sum = x.add(&b).unwrap();
    assert_eq!(bits(&x.bias_gelu(&b).unwrap()), bits(&sum.gelu()));
    let (dx, db) = bias_gelu_backward(&x, &b, &g).unwrap();
    let want_dx = gelu_backward(&sum, &g).unwrap();
    assert_eq!(bits(&dx), bits(&want_dx));
    assert_eq!(bits(&db), bits(&want_dx.sum_to_shape(&[6]).unwrap()));
}

/// The bias gradient does not depend on the thread count (fixed row blocks, summed in order).
#[test]
fn bias_gelu_backward_is_the_same_on_one_thread() {
    let x = Tensor::rand_normal(&[64, 16, 512], 0.0, 1.0, 11).unwrap();
    let b = Tensor::rand_normal(&[512], 0.0, 1.0, 12).unwrap();
    let g = Tensor::rand_normal(&[64, 16, 512], 0.0, 1.0, 13).unwrap();
    let (dx, db) = bias_gelu_backward(&x, &b, &g).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let (dx1, db1) = pool.install(|| bias_gelu_backward(&x, &b, &g).unwrap());
    assert_eq!(bits(&dx), bits(&dx1));
    assert_eq!(bits(&db), bits(&db1));
}

/// A bias of the wrong length or rank, or a gradient of the wrong shape, is refused naming the
/// op and both shapes.
#[test]
fn bias_gelu_refuses_bad_shapes() {
    let x = Tensor::zeros(&[2, 3, 4]);
    for bad in [Tensor::zeros(&[3]), Tensor::zeros(&[1, 4])] {
        let err = x.bias_gelu(&bad).unwrap_err().to_string();
        assert!(
            err.contains("bias_gelu") && err.contains("[2, 3, 4]"),
            "{err}"
        );
        assert!(err.contains(&format!("{:?}", bad.shape())), "{err}");
    }
    let err = bias_gelu_backward(&x, &Tensor::zeros(&[4]), &Tensor::zeros(&[2, 3]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bias_gelu_backward") && err.contains("[2, 3]"),
        "{err}"
    );
    // An empty input gives empty results.
    let empty = Tensor::zeros(&[0, 4]);
    assert_eq!(
        empty.bias_gelu(&Tensor::zeros(&[4])).unwrap().shape(),
        &[0, 4]
    );
    let (dx, db) = bias_gelu_backward(&empty, &Tensor::ones(&[4]), &empty).unwrap();
    assert_eq!((dx.shape(), db.to_vec()), (&[0usize, 4][..], vec![0.0; 4]));
}

/// Large tensors take the parallel path and agree with the sequential one.
#[test]
fn parallel_paths_agree() {
    let a = Tensor::rand_normal(&[300, 300], 0.0, 1.0, 5).unwrap();
    let b = Tensor::rand_normal(&[300], 0.0, 1.0, 6).unwrap();
    let big = a.add(&b).unwrap();
    let v = big.to_vec();
    let (av, bv) = (a.to_vec(), b.to_vec());
    for i in [0, 299, 300, 45_000, 89_999] {
        assert_eq!(v[i], av[i] + bv[i % 300]);
    }
    let tr = a.t().unwrap();
    let sum = tr.add(&tr).unwrap();
    assert_eq!(sum.get(&[3, 7]).unwrap(), 2.0 * a.get(&[7, 3]).unwrap());
}

/// Display prints values and shape and abbreviates large tensors.
#[test]
fn display() {
    let s = format!("{}", t(&[1., 2., 3., 4.], &[2, 2]));
    assert_eq!(
        s,
        "tensor([[1.0000, 2.0000],\n        [3.0000, 4.0000]], shape=[2, 2])"
    );
    let big = format!("{}", Tensor::zeros(&[100, 100]));
    assert!(big.contains("...") && big.contains("shape=[100, 100]"));
    assert!(big.len() < 2000);
}

/// `unravel_index` inverts row-major flattening: every flat position of a (2, 3, 4) tensor maps to
/// the index whose strided offset is that position, and the element at that index is that element.
#[test]
fn unravel_index_inverts_row_major_flattening() {
    use tensor::shape::unravel_index;
    let shape = [2, 3, 4];
    let t = Tensor::arange(0.0, 24.0, 1.0)
        .unwrap()
        .reshape_to(&shape)
        .unwrap();
    for flat in 0..24 {
        let index = unravel_index(flat, &shape);
        assert_eq!((index[0] * 3 + index[1]) * 4 + index[2], flat, "{index:?}");
        assert_eq!(t.get(&index).unwrap(), flat as f32, "{index:?}");
    }
    assert_eq!(unravel_index(23, &shape), vec![1, 2, 3]);
    assert_eq!(unravel_index(5, &[6]), vec![5]);
    assert_eq!(unravel_index(0, &[]), Vec::<usize>::new());
}
