//! Low-rank factorization of a `Linear`: replace `W` (`out x in`) by two thin matrices whose
//! product is the best rank-`r` approximation of `W`.
//!
//! With the singular value decomposition `W = U S V^T` (singular values in decreasing order),
//! `W_r = U_r S_r V_r^T` keeps the `r` largest. By the Eckart-Young theorem no rank-`r` matrix is
//! closer to `W` in the Frobenius norm, and the error is exactly the norm of what was dropped:
//! `||W - W_r||_F = sqrt(sum_{i > r} s_i^2)`. The layer becomes `Linear(in, r, no bias)` with
//! weight `S_r^{1/2} V_r^T` followed by `Linear(r, out)` with weight `U_r S_r^{1/2}` and the
//! original bias (the square root splits the scale evenly so both factors train well). It costs
//! `r (in + out)` weights instead of `in * out`: a saving when `r < in * out / (in + out)`.
//!
//! The SVD is `faer`'s (pure Rust, maintained), computed in `f64`.

use autograd::Variable;
use faer::Mat;
use tensor::Tensor;

use crate::error::{NnError, Result};
use crate::linear::Linear;
use crate::module::{prefixed, Module};

/// The thin SVD of a row-major `rows x cols` matrix: `(U (rows x k), s (k), V (cols x k))`,
/// `k = min(rows, cols)`, singular values in decreasing order, all row-major `f64`.
pub struct Svd {
    /// Left singular vectors, `rows x k`, row-major.
    pub u: Vec<f64>,
    /// Singular values, decreasing.
    pub s: Vec<f64>,
    /// Right singular vectors, `cols x k`, row-major.
    pub v: Vec<f64>,
    /// `rows`, `cols`, `k`.
    pub dims: (usize, usize, usize),
}

/// The thin SVD of a 2-D tensor (computed by `faer` in `f64`).
pub fn svd(matrix: &Tensor) -> Result<Svd> {
    if matrix.ndim() != 2 {
        return Err(NnError::Invalid {
            op: "svd",
            reason: format!("matrix must be 2-D, got shape {:?}", matrix.shape()),
        });
    }
    let (rows, cols) = (matrix.shape()[0], matrix.shape()[1]);
    let k = rows.min(cols);
    let values = matrix.contiguous().to_vec();
    let m = Mat::<f64>::from_fn(rows, cols, |i, j| values[i * cols + j] as f64);
    let decomposition = m.thin_svd().map_err(|e| NnError::Invalid {
        op: "svd",
        reason: format!("the SVD of a {rows}x{cols} matrix did not converge: {e:?}"),
    })?;
    let (u, s, v) = (
        decomposition.U(),
        decomposition.S().column_vector(),
        decomposition.V(),
    );
    Ok(Svd {
        u: (0..rows * k).map(|x| u[(x / k, x % k)]).collect(),
        s: (0..k).map(|i| s[i]).collect(),
        v: (0..cols * k).map(|x| v[(x / k, x % k)]).collect(),
        dims: (rows, cols, k),
    })
}

/// The singular values of a 2-D tensor, decreasing.
pub fn singular_values(matrix: &Tensor) -> Result<Vec<f32>> {
    Ok(svd(matrix)?.s.iter().map(|&s| s as f32).collect())
}

/// The two factors of the rank-`rank` truncation of `svd`'s matrix (`out x in`), row-major:
/// `down = S_r^{1/2} V_r^T` (`rank x in`) and `up = U_r S_r^{1/2}` (`out x rank`).
pub fn split_factors(svd: &Svd, rank: usize) -> (Vec<f32>, Vec<f32>) {
    // HINT: keep the first `rank` singular triplets (U and V are row-major with k columns);
    // HINT: down[r][j] = sqrt(s_r) * V[j][r] and up[i][r] = U[i][r] * sqrt(s_r), so that
    // HINT: up @ down = U_r S_r V_r^T.
    // BEGIN SOLUTION
    let (out, inp, k) = svd.dims;
    let root: Vec<f64> = svd.s[..rank].iter().map(|s| s.sqrt()).collect();
    let down = (0..rank * inp)
        .map(|x| {
            let (r, j) = (x / inp, x % inp);
            (root[r] * svd.v[j * k + r]) as f32
        })
        .collect();
    let up = (0..out * rank)
        .map(|x| {
            let (i, r) = (x / rank, x % rank);
            (svd.u[i * k + r] * root[r]) as f32
        })
        .collect();
    (down, up)
    // END SOLUTION
}

/// A `Linear` factorized as `up(down(x))`: `down` is `Linear(in, rank, no bias)`, `up` is
/// `Linear(rank, out)` with the original bias. Parameters: `down.weight`, `up.weight`,
/// `up.bias`.
pub struct LowRankLinear {
    /// `(rank, in)`, no bias.
    pub down: Linear,
    /// `(out, rank)`, with the original layer's bias.
    pub up: Linear,
}

impl LowRankLinear {
    /// The best rank-`rank` factorization of `linear` (truncated SVD). Errors for `rank == 0` or
    /// `rank > min(in, out)`. At full rank the layer's outputs are reproduced up to rounding.
    pub fn from_linear(linear: &Linear, rank: usize) -> Result<LowRankLinear> {
        let (out, inp) = (linear.out_features(), linear.in_features());
        if rank == 0 || rank > out.min(inp) {
            return Err(NnError::Invalid {
                op: "LowRankLinear",
                reason: format!(
                    "rank must be in 1..={} for a Linear({inp} -> {out}) (weight shape {:?}), got {rank}",
                    out.min(inp),
                    linear.weight.shape()
                ),
            });
        }
        let (down, up) = split_factors(&svd(&linear.weight.value())?, rank);
        Ok(LowRankLinear {
            down: Linear::from_tensors(Tensor::from_vec(down, &[rank, inp])?, None)?,
            up: Linear::from_tensors(
                Tensor::from_vec(up, &[out, rank])?,
                linear.bias.as_ref().map(|b| b.value()),
            )?,
        })
    }

    /// The rank `r` (the width between the two factors).
    pub fn rank(&self) -> usize {
        self.down.out_features()
    }

    /// The size of each input's last dim.
    pub fn in_features(&self) -> usize {
        self.down.in_features()
    }

    /// The size of each output's last dim.
    pub fn out_features(&self) -> usize {
        self.up.out_features()
    }

    /// The rank-`r` weight `up.weight @ down.weight`, `(out, in)`.
    pub fn weight(&self) -> Result<Tensor> {
        Ok(self.up.weight.value().matmul(&self.down.weight.value())?)
    }
}

impl Module for LowRankLinear {
    fn forward(&self, input: &Variable) -> Result<Variable> {
        self.up.forward(&self.down.forward(input)?)
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        let mut params = prefixed("down", self.down.named_parameters());
        params.extend(prefixed("up", self.up.named_parameters()));
        params
    }
}

impl std::fmt::Debug for LowRankLinear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LowRankLinear(in_features={}, rank={}, out_features={})",
            self.in_features(),
            self.rank(),
            self.out_features()
        )
    }
}
