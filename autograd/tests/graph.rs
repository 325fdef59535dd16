//! Grader tests for chapter 2 (`autograd`), part 2: how the graph behaves: accumulation, shared inputs, deep
//! chains, memory release, no_grad, detach, anomaly mode, grad_fn names and the DOT picture.

use autograd::{detect_anomaly, live_nodes, no_grad, to_dot, AutogradError, NoGradGuard, Variable};
use tensor::Tensor;

fn param(values: &[f32], shape: &[usize]) -> Variable {
    Variable::parameter(Tensor::from_vec(values.to_vec(), shape).unwrap())
}

/// A linear layer's `x @ W^T` hands `W` its gradient in `W`'s own row-major layout (no
/// transposing copy left for the optimizer), with the values of `dY^T x`.
#[test]
fn weight_gradient_of_a_transposed_operand_arrives_contiguous() {
    let w = param(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]);
    let x = Variable::constant(Tensor::from_vec(vec![1.0, -1.0, 0.5, 2.0], &[2, 1, 2]).unwrap());
    let y = x.matmul(&w.t().unwrap()).unwrap();
    assert_eq!(y.shape(), &[2, 1, 3]);
    y.sum_all().unwrap().backward().unwrap();
    let g = w.grad().unwrap();
    assert!(g.is_contiguous(), "W's gradient is (out, in) row-major");
    // dW[o][i] = sum over rows of dY[r][o] * x[r][i], dY all ones: column sums of x.
    assert_eq!(g.to_vec(), vec![1.5, 1.0, 1.5, 1.0, 1.5, 1.0]);
}

/// Gradients add up across two backward() calls, and zero_grad resets them.
#[test]
fn accumulation_and_zero_grad() {
    let w = param(&[1.0, 2.0], &[2]);
    for _ in 0..2 {
        let loss = w.mul_scalar(3.0).unwrap().sum_all().unwrap();
        loss.backward().unwrap();
    }
    assert_eq!(w.grad().unwrap().to_vec(), vec![6.0, 6.0]);
    w.zero_grad();
    assert!(w.grad().is_none());
    w.mul_scalar(3.0)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(w.grad().unwrap().to_vec(), vec![3.0, 3.0]);
}

/// A value used twice receives the sum of both gradients.
#[test]
fn shared_input_gets_summed_gradient() {
    let x = param(&[3.0], &[1]);
    // y = x*x + x  => dy/dx = 2x + 1 = 7
    let y = x.mul(&x).unwrap().add(&x).unwrap().sum_all().unwrap();
    y.backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec(), vec![7.0]);
    // a diamond: a = 2x, b = 3x, y = a*b = 6x^2 => 12x = 36
    let x = param(&[3.0], &[1]);
    let a = x.mul_scalar(2.0).unwrap();
    let b = x.mul_scalar(3.0).unwrap();
    a.mul(&b).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec(), vec![36.0]);
}

/// A chain of 100,000 ops backpropagates (and is dropped) without overflowing the stack.
#[test]
fn deep_chain_does_not_overflow() {
    let x = param(&[1.0], &[1]);
    let mut y = x.clone();
    for _ in 0..100_000 {
        y = y.mul_scalar(1.0).unwrap().add_scalar(0.0).unwrap();
    }
    let loss = y.sum_all().unwrap();
    loss.backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec(), vec![1.0]);
    drop((y, loss));
    // and a deep graph dropped without backward is dismantled iteratively too
    let mut z = x.clone();
    for _ in 0..100_000 {
        z = z.add_scalar(1.0).unwrap();
    }
    drop(z);
}

/// After backward the graph is released: only the leaves and the outputs we hold stay alive.
#[test]
fn graph_memory_is_released_after_backward() {
    let before = live_nodes();
    let w = param(&[1.0, 2.0, 3.0], &[3]);
    let x = Variable::constant(Tensor::from_vec(vec![1.0, 1.0, 1.0], &[3]).unwrap());
    let loss = {
        let h = w.mul(&x).unwrap().relu().unwrap().exp().unwrap();
        h.sum_all().unwrap()
    };
    // w, x, mul, relu, exp, sum
    assert_eq!(live_nodes() - before, 6);
    loss.backward().unwrap();
    // intermediate nodes are freed once their grad_fns are dropped: w, x and loss remain
    assert_eq!(live_nodes() - before, 3);
    assert!(w.grad().is_some());
    // backward again through a freed graph is a clear error
    let err = loss.backward().unwrap_err();
    assert!(
        matches!(err, AutogradError::GraphFreed { op: "SumBackward" }),
        "{err}"
    );
    drop((loss, w, x));
    assert_eq!(live_nodes(), before);
}

/// backward_retain keeps the graph for a second pass.
#[test]
fn retained_graph_allows_second_backward() {
    let w = param(&[2.0], &[1]);
    let loss = w.mul(&w).unwrap().sum_all().unwrap();
    loss.backward_retain().unwrap();
    loss.backward().unwrap();
    assert_eq!(w.grad().unwrap().to_vec(), vec![8.0]);
}

/// no_grad and its guard record nothing; ops on constants record nothing either.
#[test]
fn no_grad_records_nothing() {
    let w = param(&[1.0], &[1]);
    let before = live_nodes();
    let y = no_grad(|| w.mul_scalar(2.0).unwrap().exp().unwrap());
    assert!(!y.requires_grad());
    assert!(y.grad_fn().is_none());
    assert_eq!(
        live_nodes() - before,
        1,
        "only the output exists, no graph behind it"
    );
    {
        let _guard = NoGradGuard::new();
        assert!(!autograd::is_grad_enabled());
        assert!(w.add_scalar(1.0).unwrap().grad_fn().is_none());
    }
    assert!(autograd::is_grad_enabled());
    let c = Variable::constant(Tensor::ones(&[2]));
    assert!(c.exp().unwrap().grad_fn().is_none());
    assert!(matches!(
        c.exp().unwrap().sum_all().unwrap().backward(),
        Err(AutogradError::NoGraph)
    ));
}

/// Gradients flow through a reshape/transpose/slice round trip.
#[test]
fn round_trip_keeps_gradients_flowing() {
    let w = Variable::parameter(
        Tensor::arange(0.0, 12.0, 1.0)
            .unwrap()
            .reshape(&[3, 4])
            .unwrap(),
    );
    let y = w
        .reshape(&[2, 6])
        .unwrap()
        .transpose(0, 1)
        .unwrap()
        .narrow(0, 1, 4)
        .unwrap()
        .reshape(&[-1])
        .unwrap();
    assert_eq!(y.grad_fn(), Some("ReshapeBackward"));
    y.mul_scalar(2.0)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g = w.grad().unwrap().reshape(&[2, 6]).unwrap();
    // columns 1..5 of the (2, 6) view were used
    assert_eq!(
        g.to_vec(),
        vec![0., 2., 2., 2., 2., 0., 0., 2., 2., 2., 2., 0.]
    );
}

/// detach() is the one way to cut the graph; the value is shared, the history is not.
#[test]
fn detach_cuts_the_graph() {
    let w = param(&[2.0], &[1]);
    let d = w.mul_scalar(3.0).unwrap().detach();
    assert!(d.is_leaf() && !d.requires_grad());
    assert_eq!(d.value().to_vec(), vec![6.0]);
    let loss = d.mul(&w).unwrap().sum_all().unwrap();
    loss.backward().unwrap();
    assert_eq!(w.grad().unwrap().to_vec(), vec![6.0]); // not 12: d is a constant
}

/// Anomaly mode names the op whose forward produced NaN (log of a negative number).
#[test]
fn anomaly_mode_names_the_op() {
    let x = param(&[1.0, -1.0], &[2]);
    let err = detect_anomaly(|| x.mul_scalar(2.0).and_then(|y| y.log())).unwrap_err();
    match &err {
        AutogradError::Anomaly {
            op,
            phase,
            what,
            shapes,
        } => {
            assert_eq!((*op, *phase, *what), ("LogBackward", "forward", "NaN"));
            assert_eq!(shapes, &vec![vec![2]]);
        }
        other => panic!("expected an anomaly, got {other}"),
    }
    assert!(err.to_string().contains("LogBackward"));
    // without anomaly mode the NaN flows silently
    assert!(x.log().unwrap().value().to_vec()[1].is_nan());
    // a backward that produces infinity: sqrt at 0 has an infinite derivative
    let z = param(&[0.0, 4.0], &[2]);
    let err = detect_anomaly(|| {
        z.sqrt()
            .and_then(|s| s.sum_all())
            .and_then(|l| l.backward())
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            AutogradError::Anomaly {
                op: "SqrtBackward",
                phase: "backward",
                ..
            }
        ),
        "{err}"
    );
}

/// Ops are named like PyTorch's grad_fns, and backward errors are clear.
#[test]
fn grad_fn_names_and_errors() {
    let a = param(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    assert_eq!(a.matmul(&a).unwrap().grad_fn(), Some("MatMulBackward"));
    assert_eq!(a.softmax(-1).unwrap().grad_fn(), Some("SoftmaxBackward"));
    assert_eq!(
        a.cross_entropy(&[0, 1], None, 0.0).unwrap().grad_fn(),
        Some("CrossEntropyBackward")
    );
    assert_eq!((&a + &a).grad_fn(), Some("AddBackward"));
    assert!(a.grad_fn().is_none() && a.is_leaf());
    assert!(matches!(
        a.exp().unwrap().backward(),
        Err(AutogradError::NotScalar { .. })
    ));
    let err = a
        .matmul(&param(&[1.0; 3], &[3, 1]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("matmul") && err.contains("[2, 2]") && err.contains("[3, 1]"),
        "{err}"
    );
    // backward_with takes the output gradient of a non-scalar output
    let y = a.mul_scalar(2.0).unwrap();
    y.backward_with(Tensor::ones(&[2, 2])).unwrap();
    assert_eq!(a.grad().unwrap().to_vec(), vec![2.0; 4]);
}

/// Operators panic with the op's message, pointing at the caller.
#[test]
#[should_panic(expected = "add: shapes [2] and [3] are incompatible")]
fn operator_shape_error_panics_with_message() {
    let _ = &param(&[1.0, 2.0], &[2]) + &param(&[1.0, 2.0, 3.0], &[3]);
}

/// Leaves can be updated in place only through the narrow doors, and never non-leaves.
#[test]
fn in_place_updates() {
    let w = param(&[1.0, 2.0], &[2]);
    let shared = w.value();
    w.update_data(|v| v[0] = 10.0).unwrap();
    assert_eq!(w.value().to_vec(), vec![10.0, 2.0]);
    assert_eq!(
        shared.to_vec(),
        vec![1.0, 2.0],
        "copy-on-write protects old handles"
    );
    let y = w.mul_scalar(2.0).unwrap();
    assert!(y.update_data(|_| ()).is_err());
    assert!(w.set_value(Tensor::zeros(&[3])).is_err());
}

/// The DOT picture shows ops, shapes and which leaves require grad.
#[test]
fn dot_graph() {
    let w = param(&[1.0, 2.0], &[2]);
    let x = Variable::constant(Tensor::ones(&[2]));
    let loss = w.mul(&x).unwrap().sum_all().unwrap();
    let dot = to_dot(&loss);
    assert!(dot.starts_with("digraph"));
    assert!(dot.contains("MulBackward\\n[2]") && dot.contains("SumBackward\\n[]"));
    assert!(dot.contains("leaf (requires_grad)") && dot.contains("constant"));
    assert_eq!(dot.matches("->").count(), 3);
}
