//! Grader tests: gradient clipping keeps the direction, returns the norm before clipping, and
//! reports a NaN/Inf norm by parameter name.

use autograd::Variable;
use optim::{clip_grad_norm, clip_grad_value, grad_norm, OptimError};
use tensor::Tensor;

fn with_grad(shape: &[usize], grad: Vec<f32>) -> Variable {
    let v = Variable::parameter(Tensor::zeros(shape));
    v.set_grad(Some(Tensor::from_vec(grad, shape).unwrap()))
        .unwrap();
    v
}

/// `clip_grad_norm`: a (3, 4, 12) split over two parameters has norm 13; clipped to 1 every
/// gradient is scaled by 1 / (13 + 1e-6), so the direction is unchanged.
#[test]
fn clip_norm_preserves_direction() {
    let a = with_grad(&[2], vec![3.0, 4.0]);
    let b = with_grad(&[1], vec![12.0]);
    let params = vec![("a".to_string(), a.clone()), ("b".to_string(), b.clone())];
    let norm = clip_grad_norm(&params, 1.0).unwrap();
    assert_eq!(norm, 13.0, "the norm before clipping");
    let scale = (1.0 / (13.0 + 1e-6)) as f32;
    let clipped: Vec<f32> = a
        .grad()
        .unwrap()
        .to_vec()
        .into_iter()
        .chain(b.grad().unwrap().to_vec())
        .collect();
    for (got, orig) in clipped.iter().zip([3.0f32, 4.0, 12.0]) {
        assert!(
            (got - orig * scale).abs() <= 1e-7,
            "{got} vs {}",
            orig * scale
        );
        assert!(
            (got / orig - scale).abs() <= 1e-6,
            "direction changed: ratio {}",
            got / orig
        );
    }
    let after = grad_norm(&params);
    assert!((after - 1.0).abs() < 1e-6, "norm after clipping {after}");

    // Below the threshold: untouched, and the norm is still reported.
    let norm = clip_grad_norm(&params, 5.0).unwrap();
    assert!((norm - 1.0).abs() < 1e-6);
    assert_eq!(a.grad().unwrap().to_vec(), clipped[..2].to_vec());
}

/// The norm is accumulated in f64: a million gradients of 1e-3 have norm exactly 1.
#[test]
fn clip_norm_accumulates_in_f64() {
    let n = 1_000_000;
    let v = with_grad(&[n], vec![1e-3; n]);
    let norm = clip_grad_norm(&[&v], 10.0).unwrap();
    assert!((norm - 1.0).abs() < 1e-6, "norm {norm}");
    // Unnamed parameters and parameters without a gradient work too.
    let no_grad = Variable::parameter(Tensor::zeros(&[3]));
    let norm = clip_grad_norm(&[&v, &no_grad], 0.5).unwrap();
    assert!((norm - 1.0).abs() < 1e-6);
    assert!((grad_norm(&[&v]) - 0.5).abs() < 1e-6);
}

/// A NaN or infinite norm is an error naming the first bad parameter; nothing is scaled.
#[test]
fn non_finite_norm_is_reported() {
    let ok = with_grad(&[2], vec![1.0, 2.0]);
    let bad = with_grad(&[3], vec![1.0, f32::NAN, 0.0]);
    let params = vec![
        ("encoder.weight".to_string(), ok.clone()),
        ("head.bias".to_string(), bad),
    ];
    let err = clip_grad_norm(&params, 1.0).unwrap_err();
    assert!(
        matches!(err, OptimError::NonFiniteNorm { norm, ref first_bad } if norm.is_nan() && first_bad.as_deref() == Some("head.bias"))
    );
    let msg = err.to_string();
    assert!(
        msg.contains("norm is NaN") && msg.contains("parameter 'head.bias'"),
        "{msg}"
    );
    assert_eq!(ok.grad().unwrap().to_vec(), vec![1.0, 2.0]);

    let inf = with_grad(&[1], vec![f32::INFINITY]);
    let msg = clip_grad_norm(&[inf], 1.0).unwrap_err().to_string();
    assert!(msg.contains("norm is inf"), "{msg}");
    // f32 overflow is not a problem for the f64 accumulator: 1e30^2 fits.
    let big = with_grad(&[2], vec![1e30, 1e30]);
    let norm = clip_grad_norm(&[&big], 1.0).unwrap();
    assert!((f64::from(norm) / (2f64.sqrt() * 1e30) - 1.0).abs() < 1e-6);
    assert!((grad_norm(&[big]) - 1.0).abs() < 1e-6);

    assert!(clip_grad_norm(&[ok], -1.0)
        .unwrap_err()
        .to_string()
        .contains("max_norm must be >= 0"));
}

/// `clip_grad_value` clamps each element into [-clip, clip].
#[test]
fn clip_value_clamps_elements() {
    let v = with_grad(&[4], vec![-3.0, -0.5, 0.25, 7.0]);
    clip_grad_value(&[&v], 1.0).unwrap();
    assert_eq!(v.grad().unwrap().to_vec(), vec![-1.0, -0.5, 0.25, 1.0]);
    assert!(clip_grad_value(&[v], f32::NAN)
        .unwrap_err()
        .to_string()
        .contains("clip must be >= 0"));
}
