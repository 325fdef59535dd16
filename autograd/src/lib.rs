//! # autograd: reverse-mode automatic differentiation (chapter 2)
//!
//! A [`Variable`] wraps a `tensor::Tensor` and remembers how it was computed. Calling
//! [`Variable::backward`] on a loss walks that record backwards and fills `grad()` of every
//! parameter. Table of contents:
//!
//! | module | concept |
//! |---|---|
//! | [`variable`] | `Variable`, the `GradFn` trait every op's backward implements, leaves and `detach` |
//! | [`backward`] | topological order and the one backward pass |
//! | [`grad_mode`] | `no_grad`, anomaly mode |
//! | [`ops`] | every differentiable op, one named grad_fn struct each |
//! | [`gradcheck`] | finite-difference proof of each backward |
//! | [`dot`] | the graph as a Graphviz picture |
//! | [`operators`] | `&a + &b` and friends |
//!
//! ```
//! use autograd::Variable;
//! use tensor::Tensor;
//!
//! let w = Variable::parameter(Tensor::from_vec(vec![2.0, -1.0], &[2]).unwrap());
//! let x = Variable::constant(Tensor::from_vec(vec![3.0, 4.0], &[2]).unwrap());
//! let loss = w.mul(&x).unwrap().sum_all().unwrap(); // 2*3 - 1*4 = 2
//! loss.backward().unwrap();
//! assert_eq!(w.grad().unwrap().to_vec(), vec![3.0, 4.0]); // d loss / d w = x
//! ```

pub mod backward;
pub mod dot;
pub mod error;
pub mod grad_mode;
pub mod gradcheck;
pub mod operators;
pub mod ops;
pub mod variable;

pub use dot::to_dot;
pub use error::{AutogradError, Result};
pub use grad_mode::{
    detect_anomaly, is_anomaly_enabled, is_grad_enabled, no_grad, set_detect_anomaly, NoGradGuard,
};
pub use gradcheck::{gradcheck, GradcheckReport};
pub use ops::custom_op;
pub use variable::{live_nodes, GradFn, Variable};
