//! The per-(batch, head) kernels: blocked forward with a log-sum-exp per row, and the
//! backward that recomputes the probabilities from it; the gradient rows of both layouts.

use ndarray::{s, ArrayView1, ArrayView2};

use crate::error::Result;
use crate::gemm::{gemm, MatRef, Parallelism};
use crate::simd::{exp_shifted_into, max_scaled, scale_in_place, sum_map2, with_simd_at};

use super::shapes::{Dims, Head};
use super::QUERY_BLOCK;

/// Where the rows of one pair's result go: row `i` is `data[offset + i * stride ..][..cols]`.
/// A contiguous `(T, D)` block has `stride = D`; one head of a `(B, T, C)` output has
/// `offset = h * D` and `stride = C`.
pub(super) struct Rows<'a> {
    pub(super) data: &'a mut [f32],
    pub(super) offset: usize,
    pub(super) stride: usize,
}

impl Rows<'_> {
    /// Copy the row-major `block` (`cols` wide) to rows `row0..`.
    #[inline(always)]
    pub(super) fn write(&mut self, row0: usize, block: &[f32], cols: usize) {
        for (i, src) in block.chunks_exact(cols).enumerate() {
            let at = self.offset + (row0 + i) * self.stride;
            self.data[at..at + cols].copy_from_slice(src);
        }
    }
}

/// Where one pair's three gradients go.
pub(super) trait GradRows {
    fn dq(&mut self) -> Rows<'_>;
    fn dk(&mut self) -> Rows<'_>;
    fn dv(&mut self) -> Rows<'_>;
}

/// Three contiguous per-pair blocks (the separate q, k, v layout).
pub(super) struct Separate<'a> {
    pub(super) dq: &'a mut [f32],
    pub(super) dk: &'a mut [f32],
    pub(super) dv: &'a mut [f32],
    pub(super) d: usize,
    pub(super) d_v: usize,
}

impl GradRows for Separate<'_> {
    fn dq(&mut self) -> Rows<'_> {
        let stride = self.d;
        Rows {
            data: self.dq,
            offset: 0,
            stride,
        }
    }
    fn dk(&mut self) -> Rows<'_> {
        let stride = self.d;
        Rows {
            data: self.dk,
            offset: 0,
            stride,
        }
    }
    fn dv(&mut self) -> Rows<'_> {
        let stride = self.d_v;
        Rows {
            data: self.dv,
            offset: 0,
            stride,
        }
    }
}

/// Head `h` of one sample's `(T, 3C)` packed gradient: `[dq | dk | dv]` per row, head `h` at
/// columns `h * D ..` of each third.
pub(super) struct Packed<'a> {
    pub(super) sample: &'a mut [f32],
    pub(super) h: usize,
    pub(super) d: usize,
    pub(super) c: usize,
}

impl Packed<'_> {
    pub(super) fn part(&mut self, which: usize) -> Rows<'_> {
        let (offset, stride) = (which * self.c + self.h * self.d, 3 * self.c);
        Rows {
            data: self.sample,
            offset,
            stride,
        }
    }
}

impl GradRows for Packed<'_> {
    fn dq(&mut self) -> Rows<'_> {
        self.part(0)
    }
    fn dk(&mut self) -> Rows<'_> {
        self.part(1)
    }
    fn dv(&mut self) -> Rows<'_> {
        self.part(2)
    }
}

/// `softmax(scale * x[..allowed])` into `y[..allowed]`, zeros after; returns the log-sum-exp
/// `ln sum_j exp(scale * x_j)` of the row, all backward needs to rebuild it.
#[inline(always)]
pub(super) fn softmax_row_lse(x: &[f32], allowed: usize, scale: f32, y: &mut [f32]) -> f32 {
    // HINT: max-shift like softmax (m = max(scale * x)); the log-sum-exp is m + ln(sum).
    // BEGIN SOLUTION
    let (y_on, y_off) = y.split_at_mut(allowed);
    let m = max_scaled(&x[..allowed], scale);
    let sum = exp_shifted_into(&x[..allowed], scale, m, y_on);
    scale_in_place(y_on, 1.0 / sum);
    y_off.fill(0.0);
    m + sum.ln()
    // END SOLUTION
}

/// `<a, b>` of two rows (contiguous rows take the vectorized path).
#[inline(always)]
pub(super) fn dot(a: ArrayView1<'_, f32>, b: ArrayView1<'_, f32>) -> f32 {
    match (a.as_slice(), b.as_slice()) {
        (Some(x), Some(y)) => sum_map2(x, y, |p, q| p * q),
        _ => a.iter().zip(b.iter()).map(|(p, q)| p * q).sum(),
    }
}

/// One worker's buffers: two blocks of scores / probabilities, one block of result rows, and
/// the key and value gradient accumulators (backward only).
pub(super) struct Scratch {
    pub(super) a: Vec<f32>,
    pub(super) b: Vec<f32>,
    pub(super) rows: Vec<f32>,
    pub(super) dk: Vec<f32>,
    pub(super) dv: Vec<f32>,
}

impl Scratch {
    pub(super) fn new(dims: &Dims, backward: bool) -> Scratch {
        let block = QUERY_BLOCK.min(dims.t.max(1));
        let acc = |cols: usize| vec![0.0; if backward { dims.s * cols } else { 0 }];
        Scratch {
            a: vec![0.0; block * dims.s],
            b: vec![0.0; block * dims.s],
            rows: vec![0.0; block * dims.d.max(dims.dv)],
            dk: acc(dims.d),
            dv: acc(dims.dv),
        }
    }
}

/// Forward of one (batch, head) pair: the output rows `P V` and the `lse` of each query row.
#[inline(always)]
pub(super) fn forward_pair(
    dims: &Dims,
    scale: f32,
    Head { q, k, v }: Head<'_>,
    out: &mut Rows<'_>,
    lse: &mut [f32],
    sc: &mut Scratch,
) -> Result<()> {
    // HINT: per block of query rows r0..r1: scores = Q[r0..r1] K[..n]^T with n the keys the last
    // HINT: row sees; a softmax per row (softmax_row_lse); out rows r0..r1 = P V[..n].
    // BEGIN SOLUTION
    let dv = dims.dv;
    for r0 in (0..dims.t).step_by(QUERY_BLOCK) {
        let r1 = (r0 + QUERY_BLOCK).min(dims.t);
        let (rows, n) = (r1 - r0, dims.block_keys(r1));
        let (scores, probs) = (&mut sc.a[..rows * n], &mut sc.b[..rows * n]);
        let q_blk = MatRef::from_view(q.slice(s![r0..r1, ..]));
        let k_t = MatRef::from_view(k.slice(s![..n, ..])).t();
        gemm(q_blk, k_t, scores, false, Parallelism::Sequential)?;
        for i in 0..rows {
            let row = i * n..(i + 1) * n;
            let allowed = dims.allowed(r0 + i);
            lse[r0 + i] = softmax_row_lse(&scores[row.clone()], allowed, scale, &mut probs[row]);
        }
        let p = MatRef::row_major(probs, rows, n)?;
        let v_blk = MatRef::from_view(v.slice(s![..n, ..]));
        let o = &mut sc.rows[..rows * dv];
        gemm(p, v_blk, o, false, Parallelism::Sequential)?;
        out.write(r0, o, dv);
    }
    Ok(())
    // END SOLUTION
}

/// What backward reads for one pair: the forward's output rows `(T, Dv)`, their log-sum-exp,
/// and the upstream gradient rows `(T, Dv)`.
#[derive(Clone, Copy)]
pub(super) struct Saved<'a> {
    pub(super) out: ArrayView2<'a, f32>,
    pub(super) lse: &'a [f32],
    pub(super) dout: ArrayView2<'a, f32>,
}

/// Backward of one pair: `dq`, `dk`, `dv` from `dout`, recomputing the probabilities.
#[inline(always)]
pub(super) fn backward_pair<G: GradRows>(
    dims: &Dims,
    scale: f32,
    Head { q, k, v }: Head<'_>,
    Saved { out, lse, dout }: Saved<'_>,
    grads: &mut G,
    sc: &mut Scratch,
) -> Result<()> {
    // HINT: per query block: P = exp(scale * Q K^T - lse); dV += P^T dO; dP = dO V^T;
    // HINT: dS = scale * P * (dP - rowsum(dO * O)); dQ = dS K; dK += dS^T Q.
    // BEGIN SOLUTION
    let (d, vd) = (dims.d, dims.dv);
    let (dk_acc, dv_acc) = (&mut sc.dk[..dims.s * d], &mut sc.dv[..dims.s * vd]);
    dk_acc.fill(0.0);
    dv_acc.fill(0.0);
    for r0 in (0..dims.t).step_by(QUERY_BLOCK) {
        let r1 = (r0 + QUERY_BLOCK).min(dims.t);
        let (rows, n) = (r1 - r0, dims.block_keys(r1));
        let (a, p) = (&mut sc.a[..rows * n], &mut sc.b[..rows * n]);
        let q_blk = MatRef::from_view(q.slice(s![r0..r1, ..]));
        let k_blk = MatRef::from_view(k.slice(s![..n, ..]));
        let v_blk = MatRef::from_view(v.slice(s![..n, ..]));
        let do_blk = MatRef::from_view(dout.slice(s![r0..r1, ..]));
        // Rebuild P from the scores and the saved log-sum-exp.
        gemm(q_blk, k_blk.t(), a, false, Parallelism::Sequential)?;
        for i in 0..rows {
            let allowed = dims.allowed(r0 + i);
            let (x, y) = (&a[i * n..i * n + allowed], &mut p[i * n..(i + 1) * n]);
            exp_shifted_into(x, scale, lse[r0 + i], &mut y[..allowed]);
            y[allowed..].fill(0.0);
        }
        // dV[..n] += P^T dO
        let p_ref = MatRef::row_major(p, rows, n)?;
        gemm(
            p_ref.t(),
            do_blk,
            &mut dv_acc[..n * vd],
            true,
            Parallelism::Sequential,
        )?;
        // dP = dO V^T, then dS = scale * P * (dP - <dO, O>) in place.
        gemm(do_blk, v_blk.t(), a, false, Parallelism::Sequential)?;
        for i in 0..rows {
            let r = r0 + i;
            let delta = dot(dout.row(r), out.row(r));
            let allowed = dims.allowed(r);
            let (p_row, ds_row) = (&p[i * n..(i + 1) * n], &mut a[i * n..(i + 1) * n]);
            for (g, &pv) in ds_row[..allowed].iter_mut().zip(&p_row[..allowed]) {
                *g = scale * pv * (*g - delta);
            }
            ds_row[allowed..].fill(0.0);
        }
        let ds = MatRef::row_major(a, rows, n)?;
        let dq_blk = &mut sc.rows[..rows * d];
        gemm(ds, k_blk, dq_blk, false, Parallelism::Sequential)?;
        grads.dq().write(r0, dq_blk, d);
        gemm(
            ds.t(),
            q_blk,
            &mut dk_acc[..n * d],
            true,
            Parallelism::Sequential,
        )?;
    }
    grads.dk().write(0, dk_acc, d);
    grads.dv().write(0, dv_acc, vd);
    Ok(())
    // END SOLUTION
}

/// The forward of `heads.len()` pairs sharing one output chunk: pair `h` writes its rows at
/// `place(h)` = (offset, stride) in `out` and its log-sum-exp at `lse[h * T ..]`. Compiled for
/// the CPU's vector unit (the row loops are inlined into `with_simd_at`).
pub(super) fn forward_task(
    dims: &Dims,
    scale: f32,
    heads: &[Head<'_>],
    out: &mut [f32],
    lse: &mut [f32],
    place: impl Fn(usize) -> (usize, usize),
    sc: &mut Scratch,
) -> Result<()> {
    with_simd_at(
        dims.level,
        #[inline(always)]
        || {
            for (h, (head, l)) in heads.iter().zip(lse.chunks_mut(dims.t)).enumerate() {
                let (offset, stride) = place(h);
                let mut rows = Rows {
                    data: &mut *out,
                    offset,
                    stride,
                };
                forward_pair(dims, scale, *head, &mut rows, l, sc)?;
            }
            Ok(())
        },
    )
}

/// The backward of one pair into `grads`, compiled for the CPU's vector unit.
pub(super) fn backward_task<G: GradRows>(
    dims: &Dims,
    scale: f32,
    head: Head<'_>,
    saved: Saved<'_>,
    grads: &mut G,
    sc: &mut Scratch,
) -> Result<()> {
    with_simd_at(
        dims.level,
        #[inline(always)]
        || backward_pair(dims, scale, head, saved, grads, sc),
    )
}
