//! Grader tests for chapter 2 (`autograd`), part 1: every differentiable op passes `gradcheck` at random
//! shapes, including broadcast inputs and non-contiguous views.

#![allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads better than `from_ref` in tests
use autograd::{gradcheck, Result, Variable};
use tensor::conv::Conv2dGeometry;
use tensor::{Tensor, TensorRng};

const EPS: f64 = 1e-2;
const TOL: f64 = 1e-2;

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::rand_normal(shape, 0.0, 1.0, seed).unwrap()
}

/// Values bounded away from zero (for log, sqrt, div, pow).
fn positive(shape: &[usize], seed: u64) -> Tensor {
    Tensor::rand_uniform(shape, 0.5, 2.0, seed).unwrap()
}

/// A random shape with `ndim` dims of size 1..=4.
fn random_shape(rng: &mut TensorRng, ndim: usize) -> Vec<usize> {
    (0..ndim).map(|_| 1 + rng.below(4)).collect()
}

fn check(f: impl Fn(&[Variable]) -> Result<Variable>, inputs: &[Tensor]) {
    if let Err(e) = gradcheck(f, inputs, EPS, TOL) {
        panic!("{e}");
    }
}

/// Elementwise binary ops at random shapes, with both operands broadcast.
#[test]
fn binary_ops_with_broadcasting() {
    let mut rng = TensorRng::new(1);
    for trial in 0..4 {
        let shape = random_shape(&mut rng, 3);
        // b broadcasts: drop the leading dim and set one dim to 1
        let mut b_shape = shape[1..].to_vec();
        b_shape[0] = 1;
        let a = randn(&shape, trial);
        let b = randn(&b_shape, 100 + trial);
        check(|v| v[0].add(&v[1]), &[a.clone(), b.clone()]);
        check(|v| v[0].sub(&v[1]), &[a.clone(), b.clone()]);
        check(|v| v[0].mul(&v[1]), &[a.clone(), b.clone()]);
        check(|v| v[0].div(&v[1]), &[a.clone(), positive(&b_shape, 7)]);
        check(|v| v[0].pow(&v[1]), &[positive(&shape, 8), b.clone()]);
        // reversed roles: the broadcast operand on the left
        check(|v| v[1].sub(&v[0]), &[a.clone(), b.clone()]);
    }
}

/// maximum / minimum / where / masked_fill route gradients to the selected elements.
#[test]
fn selection_ops() {
    let a = Tensor::from_vec(vec![0.1, 2.0, -1.0, 0.7, -0.3, 1.5], &[2, 3]).unwrap();
    let b = Tensor::from_vec(vec![0.5, 1.0, -2.0], &[3]).unwrap();
    check(|v| v[0].maximum(&v[1]), &[a.clone(), b.clone()]);
    check(|v| v[0].minimum(&v[1]), &[a.clone(), b.clone()]);
    let cond = a.gt_scalar(0.0);
    check(
        |v| Variable::where_cond(&cond, &v[0], &v[1]),
        &[a.clone(), b.clone()],
    );
    let mask = Tensor::from_vec(vec![1.0, 0.0, 1.0], &[3]).unwrap();
    check(|v| v[0].masked_fill(&mask, -5.0), &[a.clone()]);
}

/// Scalar ops and unary math functions.
#[test]
fn unary_ops() {
    let x = randn(&[3, 4], 2);
    let p = positive(&[3, 4], 3);
    check(|v| v[0].neg(), &[x.clone()]);
    check(|v| v[0].exp(), &[x.clone()]);
    check(|v| v[0].log(), &[p.clone()]);
    check(|v| v[0].sqrt(), &[p.clone()]);
    check(|v| v[0].powf(3.0), &[x.clone()]);
    check(|v| v[0].powf(-0.5), &[p.clone()]);
    check(
        |v| v[0].add_scalar(2.0)?.mul_scalar(-3.0)?.div_scalar(2.0),
        &[x.clone()],
    );
    // abs and clamp away from their kinks
    let away = Tensor::from_vec(vec![-1.5, -0.5, 0.4, 1.2, 2.5, -2.2], &[2, 3]).unwrap();
    check(|v| v[0].abs(), &[away.clone()]);
    check(|v| v[0].clamp(-1.0, 1.0), &[away.clone()]);
    check(|v| v[0].relu(), &[away.clone()]);
    check(|v| v[0].leaky_relu(0.1), &[away.clone()]);
    check(|v| v[0].sigmoid(), &[x.clone()]);
    check(|v| v[0].tanh(), &[x.clone()]);
    check(|v| v[0].gelu(), &[x.clone()]);
}

/// Shape ops, also applied to non-contiguous views.
#[test]
fn shape_ops() {
    let x = randn(&[2, 3, 4], 4);
    check(|v| v[0].reshape(&[4, -1]), &[x.clone()]);
    check(|v| v[0].flatten(1, 2), &[x.clone()]);
    check(|v| v[0].transpose(0, 2), &[x.clone()]);
    check(|v| v[0].permute(&[1, 2, 0]), &[x.clone()]);
    check(|v| v[0].unsqueeze(1)?.squeeze(1), &[x.clone()]);
    check(|v| v[0].narrow(2, 1, 2), &[x.clone()]);
    check(|v| v[0].slice(1, 0, 3, 2), &[x.clone()]);
    check(|v| v[0].index_select(1, &[2, 0, 2]), &[x.clone()]);
    check(|v| v[0].index_select(0, &[1, 1]), &[x.clone()]);
    check(|v| v[0].broadcast_to(&[5, 2, 3, 4]), &[x.clone()]);
    check(
        |v| Variable::cat(&[v[0].clone(), v[1].clone()], 1),
        &[x.clone(), randn(&[2, 2, 4], 5)],
    );
    check(
        |v| Variable::stack(&[v[0].clone(), v[1].clone()], 2),
        &[x.clone(), randn(&[2, 3, 4], 6)],
    );
    check(
        |v| {
            let parts = v[0].split(3, 2)?;
            parts[0]
                .sum_all()?
                .add(&parts[1].mul_scalar(2.0)?.sum_all()?)
        },
        &[x.clone()],
    );
    check(|v| Ok(v[0].chunk(2, 0)?[1].clone()), &[x.clone()]);
    // non-contiguous: transpose then reshape (copies inside the op) and elementwise on views
    check(|v| v[0].transpose(0, 1)?.reshape(&[-1]), &[x.clone()]);
    check(
        |v| v[0].transpose(1, 2)?.mul(&v[1]),
        &[x.clone(), randn(&[4, 3], 7)],
    );
}

/// Reductions along axes, with and without keepdim.
#[test]
fn reductions() {
    let x = randn(&[3, 4, 2], 8);
    for dim in [0isize, 1, -1] {
        for keepdim in [false, true] {
            check(|v| v[0].sum(dim, keepdim), &[x.clone()]);
            check(|v| v[0].mean(dim, keepdim), &[x.clone()]);
            check(|v| v[0].max(dim, keepdim), &[x.clone()]);
            check(|v| v[0].min(dim, keepdim), &[x.clone()]);
            check(|v| v[0].var(dim, keepdim, true), &[x.clone()]);
        }
    }
    check(|v| v[0].sum_all(), &[x.clone()]);
    check(|v| v[0].mean_all(), &[x.clone()]);
    check(|v| v[0].var(1, false, false), &[x.clone()]);
}

/// Matmul: 2-D, vectors, batched with broadcast batch dims, transposed and sliced operands.
#[test]
fn matmul() {
    let mut rng = TensorRng::new(9);
    for trial in 0..3 {
        let (m, k, n) = (1 + rng.below(4), 1 + rng.below(4), 1 + rng.below(4));
        check(
            |v| v[0].matmul(&v[1]),
            &[randn(&[m, k], trial), randn(&[k, n], trial + 10)],
        );
        // batched with broadcasting of the batch dims
        check(
            |v| v[0].matmul(&v[1]),
            &[
                randn(&[2, 1, m, k], trial + 20),
                randn(&[3, k, n], trial + 30),
            ],
        );
        // (B, T, K) @ (K, N): the folded weight-gradient path
        check(
            |v| v[0].matmul(&v[1]),
            &[randn(&[2, m, k], trial + 40), randn(&[k, n], trial + 50)],
        );
    }
    // vectors
    check(|v| v[0].matmul(&v[1]), &[randn(&[3], 1), randn(&[3, 2], 2)]);
    check(|v| v[0].matmul(&v[1]), &[randn(&[2, 3], 3), randn(&[3], 4)]);
    // transposed (stride-swapped) and sliced operands
    check(
        |v| v[0].t()?.matmul(&v[1]),
        &[randn(&[3, 2], 5), randn(&[3, 4], 6)],
    );
    check(
        |v| v[0].narrow(1, 1, 3)?.matmul(&v[1].transpose(0, 1)?),
        &[randn(&[2, 5], 7), randn(&[4, 3], 8)],
    );
    // (B, T, K) @ W^T: a linear layer, whose weight gradient is computed in W's layout
    check(
        |v| v[0].matmul(&v[1].t()?),
        &[randn(&[2, 3, 4], 9), randn(&[5, 4], 10)],
    );
}

/// Fused kernels: softmax, log-softmax, causal softmax, layer norm, bias + GELU, cross-entropy.
#[test]
fn fused_ops() {
    let x = randn(&[2, 3, 5], 10);
    check(|v| v[0].softmax(-1), &[x.clone()]);
    check(|v| v[0].softmax(1), &[x.clone()]);
    check(|v| v[0].log_softmax(-1), &[x.clone()]);
    check(|v| v[0].log_softmax(0), &[x.clone()]);
    check(|v| v[0].causal_softmax(0.5), &[randn(&[2, 4, 4], 11)]);
    check(|v| v[0].causal_softmax(1.0), &[randn(&[3, 5], 12)]); // T=3 queries over S=5 keys
    let w = Tensor::rand_uniform(&[5], 0.5, 1.5, 13).unwrap();
    let b = randn(&[5], 14);
    check(
        |v| v[0].layer_norm(Some(&v[1]), Some(&v[2]), 1e-5),
        &[x.clone(), w.clone(), b.clone()],
    );
    check(|v| v[0].layer_norm(None, None, 1e-5), &[x.clone()]);
    // Bias + GELU: short rows, and rows past one 64-lane kernel block (inputs reaching the
    // exact left tail below -4 and the clamp above 6).
    check(|v| v[0].bias_gelu(&v[1]), &[x.clone(), b.clone()]);
    let wide = randn(&[2, 70], 16).mul_scalar(3.0);
    check(|v| v[0].bias_gelu(&v[1]), &[wide, randn(&[70], 17)]);
    let logits = randn(&[4, 5], 15);
    check(
        |v| v[0].cross_entropy(&[1, 0, 4, 2], None, 0.0),
        &[logits.clone()],
    );
    check(
        |v| v[0].cross_entropy(&[1, 0, 4, 2], Some(0), 0.1),
        &[logits.clone()],
    );
    check(
        |v| v[0].cross_entropy(&[1, 0, 4, 2, 3, 3], None, 0.0),
        &[x.clone()],
    ); // (N, T, C)
}

/// Fused attention on q, k, v and on a packed (B, T, 3C) projection, with and without the causal
/// mask (T < S too), against finite differences and against the composed ops.
#[test]
fn fused_attention() {
    let (q, k, v) = (
        randn(&[1, 2, 3, 4], 40),
        randn(&[1, 2, 5, 4], 41),
        randn(&[1, 2, 5, 3], 42),
    );
    for causal in [false, true] {
        check(
            |x| x[0].scaled_dot_product_attention(&x[1], &x[2], 0.5, causal),
            &[q.clone(), k.clone(), v.clone()],
        );
        // The composed reference: softmax(q k^T * scale) v, causal over the last T of S keys.
        let vars: Vec<Variable> = [&q, &k, &v]
            .iter()
            .map(|t| Variable::parameter((*t).clone()))
            .collect();
        let fused = vars[0]
            .scaled_dot_product_attention(&vars[1], &vars[2], 0.5, causal)
            .unwrap();
        assert_eq!(fused.grad_fn(), Some("ScaledDotProductAttentionBackward"));
        let scores = vars[0].matmul(&vars[1].transpose(-1, -2).unwrap()).unwrap();
        let weights = if causal {
            scores.causal_softmax(0.5).unwrap()
        } else {
            scores.mul_scalar(0.5).unwrap().softmax(-1).unwrap()
        };
        let composed = weights.matmul(&vars[2]).unwrap();
        let (a, b) = (fused.value().to_vec(), composed.value().to_vec());
        assert!(
            a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5),
            "causal={causal}: {a:?} vs {b:?}"
        );
    }
    let qkv = randn(&[2, 3, 12], 43); // C = 4, two heads of width 2
    for causal in [false, true] {
        check(|x| x[0].packed_attention(2, 0.7, causal), &[qkv.clone()]);
    }
    let packed = Variable::parameter(qkv)
        .packed_attention(2, 0.7, true)
        .unwrap();
    assert_eq!(packed.shape(), vec![2, 3, 4]);
    assert_eq!(packed.grad_fn(), Some("PackedAttentionBackward"));
}

/// Convolution through im2col and both poolings.
#[test]
fn conv_and_pool() {
    let x = randn(&[2, 2, 5, 5], 16);
    let w = randn(&[3, 2, 3, 3], 17);
    let b = randn(&[3], 18);
    let plain = Conv2dGeometry::with_kernel((3, 3));
    check(
        |v| v[0].conv2d(&v[1], Some(&v[2]), plain),
        &[x.clone(), w.clone(), b.clone()],
    );
    let strided = Conv2dGeometry::new((3, 3), (2, 2), (1, 1), (1, 1));
    check(
        |v| v[0].conv2d(&v[1], None, strided),
        &[x.clone(), w.clone()],
    );
    let dilated = Conv2dGeometry::new((3, 3), (1, 1), (2, 2), (2, 2));
    check(
        |v| v[0].conv2d(&v[1], Some(&v[2]), dilated),
        &[x.clone(), w.clone(), b.clone()],
    );
    // distinct values so the max is unique
    let distinct = Tensor::arange(0.0, 50.0, 1.0)
        .unwrap()
        .mul_scalar(0.37)
        .map(|v| (v * 7.0).sin() * 3.0)
        .reshape(&[1, 2, 5, 5])
        .unwrap();
    check(
        |v| v[0].max_pool2d((2, 2), (2, 2), (0, 0)),
        &[distinct.clone()],
    );
    check(
        |v| v[0].max_pool2d((3, 3), (1, 1), (1, 1)),
        &[distinct.clone()],
    );
    check(|v| v[0].avg_pool2d((2, 2), (1, 1), (0, 0)), &[x.clone()]);
    check(|v| v[0].avg_pool2d((3, 3), (2, 2), (1, 1)), &[x.clone()]);
}

/// gradcheck itself must fail on a wrong backward: a deliberately wrong "gradient" is caught.
#[test]
fn gradcheck_catches_a_wrong_gradient() {
    // d/dx of x.detach() * x is x (not 2x): treating the detached factor as a constant is a
    // different function than x*x, so checking it as x^2 must fail.
    let x = randn(&[4], 19);
    let err = gradcheck(|v| v[0].detach().mul(&v[0]), &[x.clone()], EPS, TOL).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("gradcheck") && msg.contains("analytic") && msg.contains("numeric"),
        "{msg}"
    );
}
