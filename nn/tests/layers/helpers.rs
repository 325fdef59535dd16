//! Helpers of the layer tests: seeded tensors, gradcheck of a layer with respect to its inputs and
//! parameters, comparisons, error text.

use autograd::Variable;
use tensor::Tensor;

pub use crate::common::{check, randn, t};

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
