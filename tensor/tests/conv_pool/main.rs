//! Grader for convolution (im2col / col2im) and pooling kernels.
//!
//! Forward kernels are checked against hand-computed values and the direct-loop oracle
//! `conv2d_naive`; backward kernels against the adjoint identity (col2im) and central finite
//! differences accumulated in f64 (pooling).

mod edge_cases;
mod geometry;
mod helpers;
mod im2col;
mod pooling;
