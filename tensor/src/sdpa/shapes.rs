//! Checked sizes of an attention problem and the (batch, head) matrices it reads.

use ndarray::{ArrayView2, ArrayViewD, Axis, Ix2};

use crate::error::{Result, TensorError};
use crate::gemm::THREADING_THRESHOLD;
use crate::simd::{simd_level, SimdLevel};
use crate::tensor::Tensor;

use super::OP;

/// The sizes of one attention problem, checked.
#[derive(Clone, Copy, Debug)]
pub(super) struct Dims {
    pub(super) pairs: usize,
    pub(super) t: usize,
    pub(super) s: usize,
    pub(super) d: usize,
    pub(super) dv: usize,
    pub(super) causal: bool,
    /// The vector level of the caller (read on its thread, so pool tasks honour its cap).
    pub(super) level: SimdLevel,
}

impl Dims {
    /// Keys visible to query row `r`.
    pub(super) fn allowed(&self, r: usize) -> usize {
        if self.causal {
            r + (self.s - self.t) + 1
        } else {
            self.s
        }
    }

    /// Keys any row of the block `r0..r1` may see (the GEMM width of that block).
    pub(super) fn block_keys(&self, r1: usize) -> usize {
        if self.causal {
            r1 + (self.s - self.t)
        } else {
            self.s
        }
    }

    /// Enough work (multiply-adds of both products) in more than one task to pay for threads?
    pub(super) fn threaded(&self, tasks: usize) -> bool {
        tasks > 1
            && self.pairs * self.t * self.s * (self.d + self.dv) >= THREADING_THRESHOLD
            && rayon::current_num_threads() > 1
    }
}

/// Validate shapes and scale; return the sizes.
pub(super) fn check(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32, causal: bool) -> Result<Dims> {
    let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
    if qs.len() < 2 || ks.len() != qs.len() || vs.len() != qs.len() {
        return Err(TensorError::mismatch(
            OP,
            qs,
            ks,
            format!(
                "q, k and v must have the same number of dims (at least 2), got {qs:?}, {ks:?} and {vs:?}"
            ),
        ));
    }
    let nd = qs.len();
    if qs[..nd - 2] != ks[..nd - 2] || qs[..nd - 2] != vs[..nd - 2] {
        return Err(TensorError::mismatch(
            OP,
            qs,
            ks,
            format!("q, k and v need the same leading (batch, head) dims, got {qs:?}, {ks:?} and {vs:?}"),
        ));
    }
    let (t, d, s, dv) = (qs[nd - 2], qs[nd - 1], ks[nd - 2], vs[nd - 1]);
    if ks[nd - 1] != d {
        return Err(TensorError::mismatch(
            OP,
            qs,
            ks,
            format!("q has head size {d} but k has {}", ks[nd - 1]),
        ));
    }
    if vs[nd - 2] != s {
        return Err(TensorError::mismatch(
            OP,
            ks,
            vs,
            format!("k has {s} keys but v has {} values", vs[nd - 2]),
        ));
    }
    if causal && s < t {
        return Err(TensorError::mismatch(
            OP,
            qs,
            ks,
            format!("causal attention needs at least as many keys as queries, got T = {t} queries and S = {s} keys"),
        ));
    }
    if s == 0 && t > 0 {
        return Err(TensorError::mismatch(
            OP,
            qs,
            ks,
            "there are no keys to attend to",
        ));
    }
    if !scale.is_finite() {
        return Err(TensorError::invalid(
            OP,
            qs,
            format!("scale must be finite, got {scale}"),
        ));
    }
    Ok(Dims {
        pairs: qs[..nd - 2].iter().product(),
        t,
        s,
        d,
        dv,
        causal,
        level: simd_level(),
    })
}

/// Every matrix of a `(batch.., rows, cols)` view, in row-major batch order, without copies.
pub(super) fn matrices<'a>(
    v: ArrayViewD<'a, f32>,
    out: &mut Vec<ArrayView2<'a, f32>>,
) -> Result<()> {
    if v.ndim() == 2 {
        let shape = v.shape().to_vec();
        out.push(
            v.into_dimensionality::<Ix2>()
                .map_err(|e| TensorError::invalid(OP, &shape, e.to_string()))?,
        );
        return Ok(());
    }
    for i in 0..v.len_of(Axis(0)) {
        matrices(v.clone().index_axis_move(Axis(0), i), out)?;
    }
    Ok(())
}

/// A view the GEMM reads fast: its matrices need a unit stride in one of their two dims.
pub(super) fn gemm_friendly(t: &Tensor) -> Tensor {
    let (nd, st, sh) = (t.ndim(), t.strides(), t.shape());
    if sh[nd - 2] <= 1 || sh[nd - 1] <= 1 || st[nd - 1] == 1 || st[nd - 2] == 1 {
        t.clone()
    } else {
        t.contiguous()
    }
}

pub(super) fn pairs_of(t: &Tensor) -> Result<Vec<ArrayView2<'_, f32>>> {
    let mut out = Vec::new();
    matrices(t.view(), &mut out)?;
    Ok(out)
}

/// The matrices of one (batch, head) pair: `q` `(T, D)`, `k` `(S, D)`, `v` `(S, Dv)`.
#[derive(Clone, Copy)]
pub(super) struct Head<'a> {
    pub(super) q: ArrayView2<'a, f32>,
    pub(super) k: ArrayView2<'a, f32>,
    pub(super) v: ArrayView2<'a, f32>,
}

/// The per-pair matrices of q, k and v (views; a matrix with no unit stride is copied first).
pub(super) fn heads<'a>(q: &'a Tensor, k: &'a Tensor, v: &'a Tensor) -> Result<Vec<Head<'a>>> {
    let (qm, km, vm) = (pairs_of(q)?, pairs_of(k)?, pairs_of(v)?);
    Ok(qm
        .into_iter()
        .zip(km)
        .zip(vm)
        .map(|((q, k), v)| Head { q, k, v })
        .collect())
}
