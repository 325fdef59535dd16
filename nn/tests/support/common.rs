//! Helpers shared by nn's test binaries (each includes this file by path): seeded tensors and the
//! gradcheck of an nn function with respect to its inputs (a layer's parameters passed as inputs).

// Each test binary uses a subset of these helpers.
#![allow(dead_code)]

use autograd::{gradcheck, AutogradError, Variable};
use nn::NnError;
use tensor::Tensor;

/// Finite-difference step of [`check`].
pub const EPS: f64 = 1e-2;
/// Tolerance of [`check`].
pub const TOL: f64 = 1e-2;

/// A tensor of N(0, 1) values from `seed`.
pub fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::rand_normal(shape, 0.0, 1.0, seed).unwrap()
}

/// A tensor of `values` in `shape`.
pub fn t(values: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(values.to_vec(), shape).unwrap()
}

/// An nn error as the autograd error gradcheck reports.
pub fn to_autograd(e: NnError) -> AutogradError {
    match e {
        NnError::Autograd(a) => a,
        other => AutogradError::Invalid {
            op: "nn",
            reason: other.to_string(),
        },
    }
}

/// Gradcheck of an nn function of its inputs (parameters are passed as inputs too): panics with
/// the first gradient that differs from central finite differences.
pub fn check(f: impl Fn(&[Variable]) -> nn::Result<Variable>, inputs: &[Tensor]) {
    if let Err(e) = gradcheck(|v| f(v).map_err(to_autograd), inputs, EPS, TOL) {
        panic!("{e}");
    }
}
