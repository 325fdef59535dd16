//! The per-(batch, head) kernels: blocked forward with a log-sum-exp per row, and the
//! backward that recomputes the probabilities from it; the gradient rows of both layouts.

use ndarray::{s, ArrayView1, ArrayView2};

use crate::error::Result;
use crate::simd::{
    exp_shifted_into, max_scaled, scale_in_place, sum_map2, with_simd_at, SimdLevel,
};
use crate::small_gemm::{self, transpose_into};

use super::shapes::{Dims, Head};
use super::{OP, QUERY_BLOCK};

/// Where the rows of one pair's result go: row `i` is `data[offset + i * stride ..][..cols]`.
/// A contiguous `(T, D)` block has `stride = D`; one head of a `(B, T, C)` output has
/// `offset = h * D` and `stride = C`.
pub(super) struct Rows<'a> {
    pub(super) data: &'a mut [f32],
    pub(super) offset: usize,
    pub(super) stride: usize,
}

impl<'a> Rows<'a> {
    /// A row-major block: row `i` at `data[i * stride ..]`.
    pub(super) fn whole(data: &'a mut [f32], stride: usize) -> Rows<'a> {
        Rows {
            data,
            offset: 0,
            stride,
        }
    }

    /// The same rows from row `row0` on.
    pub(super) fn starting_at(&mut self, row0: usize) -> Rows<'_> {
        Rows {
            data: &mut *self.data,
            offset: self.offset + row0 * self.stride,
            stride: self.stride,
        }
    }
}

/// `C = A B` (or `+=`) into `out`'s rows, through the small-operand kernel.
#[inline(always)]
fn product(
    level: SimdLevel,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    out: &mut Rows<'_>,
    accumulate: bool,
) -> Result<()> {
    small_gemm::product(
        OP, level, a, b, out.data, out.offset, out.stride, accumulate,
    )
}

/// Where one pair's three gradients go. The rows arrive zeroed: backward sums `dk` and `dv`
/// over the query blocks in place.
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

/// One worker's buffers: two blocks of scores / probabilities, the transposed keys and values
/// (the second operand of the score products is read by rows), and row-major copies of operands
/// that arrive without a unit column stride (empty while unused).
#[derive(Default)]
pub(super) struct Scratch {
    pub(super) a: Vec<f32>,
    pub(super) b: Vec<f32>,
    pub(super) k_t: Vec<f32>,
    pub(super) v_t: Vec<f32>,
    pub(super) copies: [Vec<f32>; 3],
}

impl Scratch {
    pub(super) fn new(dims: &Dims) -> Scratch {
        let block = QUERY_BLOCK.min(dims.t.max(1));
        Scratch {
            a: vec![0.0; block * dims.s],
            b: vec![0.0; block * dims.s],
            ..Scratch::default()
        }
    }
}

/// `m` itself when its rows are contiguous (the product reads them as vectors), else a
/// row-major copy of it in `buf`.
fn unit_cols<'a>(m: ArrayView2<'a, f32>, buf: &'a mut Vec<f32>) -> ArrayView2<'a, f32> {
    if m.ncols() <= 1 || m.strides()[1] == 1 {
        return m;
    }
    buf.clear();
    buf.extend(m.iter());
    let buf: &'a Vec<f32> = buf;
    ArrayView2::from_shape(m.dim(), &buf[..]).expect("rows * cols elements")
}

/// A row-major `rows x cols` block of a scratch buffer, as a view.
fn block_view(buf: &[f32], rows: usize, cols: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((rows, cols), &buf[..rows * cols]).expect("rows * cols elements")
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
    // HINT: K^T once per pair (transpose_into), V with unit column stride (unit_cols); per block
    // HINT: of query rows r0..r1: scores = Q[r0..r1] K^T[.., ..n] with n the keys the last row
    // HINT: sees; a softmax per row (softmax_row_lse); out rows r0..r1 = P V[..n] (`product`).
    // BEGIN SOLUTION
    let level = dims.level;
    let Scratch {
        a, b, k_t, copies, ..
    } = sc;
    let k_t = transpose_into(level, k, k_t);
    let v = unit_cols(v, &mut copies[0]);
    for r0 in (0..dims.t).step_by(QUERY_BLOCK) {
        let r1 = (r0 + QUERY_BLOCK).min(dims.t);
        let (rows, n) = (r1 - r0, dims.block_keys(r1));
        let mut scores = Rows::whole(&mut a[..rows * n], n);
        product(
            level,
            q.slice(s![r0..r1, ..]),
            k_t.slice(s![.., ..n]),
            &mut scores,
            false,
        )?;
        for i in 0..rows {
            let row = i * n..(i + 1) * n;
            let allowed = dims.allowed(r0 + i);
            lse[r0 + i] = softmax_row_lse(&a[row.clone()], allowed, scale, &mut b[row]);
        }
        let p = block_view(b, rows, n);
        product(
            level,
            p,
            v.slice(s![..n, ..]),
            &mut out.starting_at(r0),
            false,
        )?;
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

/// Backward of one pair: `dq`, `dk`, `dv` from `dout`, recomputing the probabilities. The
/// gradient rows arrive zeroed; `dk` and `dv` are summed over the query blocks in place.
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
    let level = dims.level;
    let Scratch {
        a,
        b: p,
        k_t,
        v_t,
        copies,
    } = sc;
    let (k_t, v_t) = (transpose_into(level, k, k_t), transpose_into(level, v, v_t));
    let [c0, c1, c2] = copies;
    let (k_rows, q_rows, do_rows) = (unit_cols(k, c0), unit_cols(q, c1), unit_cols(dout, c2));
    for r0 in (0..dims.t).step_by(QUERY_BLOCK) {
        let r1 = (r0 + QUERY_BLOCK).min(dims.t);
        let (rows, n) = (r1 - r0, dims.block_keys(r1));
        let (q_blk, do_blk) = (q.slice(s![r0..r1, ..]), dout.slice(s![r0..r1, ..]));
        // Rebuild P from the scores and the saved log-sum-exp.
        let mut scores = Rows::whole(&mut a[..rows * n], n);
        product(level, q_blk, k_t.slice(s![.., ..n]), &mut scores, false)?;
        for i in 0..rows {
            let allowed = dims.allowed(r0 + i);
            let (x, y) = (&a[i * n..i * n + allowed], &mut p[i * n..(i + 1) * n]);
            exp_shifted_into(x, scale, lse[r0 + i], &mut y[..allowed]);
            y[allowed..].fill(0.0);
        }
        let p_blk = block_view(p, rows, n);
        // dV[..n] += P^T dO
        let do_b = do_rows.slice(s![r0..r1, ..]);
        product(level, p_blk.t(), do_b, &mut grads.dv(), true)?;
        // dP = dO V^T, then dS = scale * P * (dP - <dO, O>) in place.
        let mut dp = Rows::whole(&mut a[..rows * n], n);
        product(level, do_blk, v_t.slice(s![.., ..n]), &mut dp, false)?;
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
        let ds = block_view(a, rows, n);
        // dQ rows r0..r1 = dS K[..n]; dK[..n] += dS^T Q
        product(
            level,
            ds,
            k_rows.slice(s![..n, ..]),
            &mut grads.dq().starting_at(r0),
            false,
        )?;
        product(
            level,
            ds.t(),
            q_rows.slice(s![r0..r1, ..]),
            &mut grads.dk(),
            true,
        )?;
    }
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
