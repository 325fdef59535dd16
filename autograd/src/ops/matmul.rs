//! Matrix products. For `C = A @ B`: `dA = dC @ B^T` and `dB = A^T @ dC`, where the transposes are
//! stride swaps (no copies) handed to the one GEMM of `tensor`. Broadcast batch dims are summed
//! back with `sum_to_shape`; a batched `(B, T, K) @ (K, N)` weight gradient is computed as one
//! `(K, B*T) @ (B*T, N)` product rather than B small ones and a sum. When `B` is a transposed
//! view (a linear layer's `W^T`), its gradient is computed transposed, in the layout of `W`.

use tensor::Tensor;

use super::{grad_if, record};
use crate::error::Result;
use crate::variable::{GradFn, Variable};

/// The backward of a matmul of two operands with at least 2 dims each.
pub struct MatMulBackward {
    a: Variable,
    b: Variable,
}

impl GradFn for MatMulBackward {
    fn name(&self) -> &'static str {
        "MatMulBackward"
    }

    fn inputs(&self) -> Vec<Variable> {
        vec![self.a.clone(), self.b.clone()]
    }

    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: For C = A @ B, dA = dC @ B^T and dB = A^T @ dC, each summed back to its operand's
        // HINT: shape with sum_to_shape (broadcast batch dims).
        // BEGIN SOLUTION
        let (a, b) = (self.a.value(), self.b.value());
        let da = grad_if(&self.a, || {
            g.matmul(&b.transpose(-1, -2)?)?.sum_to_shape(a.shape())
        })?;
        let db = grad_if(&self.b, || {
            if b.ndim() == 2 {
                // Fold the batch into the rows: one GEMM instead of a batch and a sum.
                let (a2, g2) = if a.ndim() > 2 {
                    let k = a.shape()[a.ndim() - 1];
                    let n = g.shape()[g.ndim() - 1];
                    (
                        a.reshape_to(&[a.numel() / k, k])?,
                        g.reshape_to(&[g.numel() / n, n])?,
                    )
                } else {
                    (a.clone(), g.clone())
                };
                if !b.is_contiguous() && b.t()?.is_contiguous() {
                    // `b` is a transposed view (a linear layer's `W^T`): compute the gradient
                    // as `(g2^T a2)^T`, so it arrives in `W`'s own row-major layout and the
                    // optimizer needs no transposing copy.
                    g2.t()?.matmul(&a2)?.t()
                } else {
                    a2.t()?.matmul(&g2)
                }
            } else {
                a.transpose(-1, -2)?.matmul(g)?.sum_to_shape(b.shape())
            }
        })?;
        Ok(vec![da, db])
        // END SOLUTION
    }
}

impl Variable {
    /// Matrix product with PyTorch's rules: 2-D, batched N-D with broadcast batch dims, and 1-D
    /// operands treated as a row (left) or column (right) vector.
    pub fn matmul(&self, other: &Variable) -> Result<Variable> {
        if self.ndim() == 1 {
            return self.unsqueeze(0)?.matmul(other)?.squeeze(-2);
        }
        if other.ndim() == 1 {
            return self.matmul(&other.unsqueeze(-1)?)?.squeeze(-1);
        }
        let out = self.value().matmul(&other.value())?;
        record(
            out,
            &[self, other],
            MatMulBackward {
                a: self.clone(),
                b: other.clone(),
            },
        )
    }
}
