//! Helpers of the layer tests: seeded tensors, gradcheck of a layer with respect to its inputs and
//! parameters, comparisons, error text.

use autograd::{gradcheck, AutogradError, Variable};
use nn::NnError;
use tensor::Tensor;

pub const EPS: f64 = 1e-2;
pub const TOL: f64 = 1e-2;

pub fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::rand_normal(shape, 0.0, 1.0, seed).unwrap()
}

pub fn t(values: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(values.to_vec(), shape).unwrap()
}

pub fn to_autograd(e: NnError) -> AutogradError {
    match e {
        NnError::Autograd(a) => a,
        other => AutogradError::Invalid {
            op: "nn",
            reason: other.to_string(),
        },
    }
}

/// gradcheck of an nn function of its inputs (parameters are passed as inputs too).
pub fn check(f: impl Fn(&[Variable]) -> nn::Result<Variable>, inputs: &[Tensor]) {
    if let Err(e) = gradcheck(|v| f(v).map_err(to_autograd), inputs, EPS, TOL) {
        panic!("{e}");
    }
}

pub fn assert_close(got: &Tensor, want: &[f32], tol: f32) {
    let g = got.to_vec();
    assert_eq!(g.len(), want.len(), "length of {g:?} vs {want:?}");
    for (i, (a, b)) in g.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol * b.abs().max(1.0),
            "element {i}: got {a}, want {b}\n got {g:?}\nwant {want:?}"
        );
    }
}

pub fn err_text(r: nn::Result<Variable>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got shape {:?}", v.shape()),
        Err(e) => e.to_string(),
    }
}
