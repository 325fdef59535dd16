//! Fused scaled-dot-product attention, `softmax(scale * Q K^T) V`, forward and backward.
//!
//! `q` is `(..., T, D)`, `k` is `(..., S, D)`, `v` is `(..., S, Dv)` with the same leading
//! (batch, head) dims. With `causal`, query `i` of `T` sees keys `j <= i + (S - T)` (the
//! convention of [`crate::causal_softmax`]: the queries are the last `T` positions, so `S > T` is
//! decoding with a KV cache).
//!
//! Why fuse: the composed path (`matmul`, `causal_softmax`, `matmul`) writes the whole
//! `(..., T, S)` score and probability tensors to memory and reads them back, four times more in
//! backward. Here each (batch, head) pair is one task of a parallel loop; inside it, blocks of
//! [`QUERY_BLOCK`] query rows go through small single-threaded GEMMs whose scratch stays in
//! cache, and a causal block only multiplies the keys its last row can see (the masked upper
//! triangle is skipped, not computed and zeroed). Forward keeps only the output and one
//! log-sum-exp per query row; backward recomputes the probabilities from them (as
//! FlashAttention does) instead of storing `T x S` numbers per head.
//!
//! Two layouts:
//! - [`scaled_dot_product_attention`]: separate `q`, `k`, `v` (any strides, read in place),
//!   output `(..., T, Dv)`;
//! - [`packed_attention`]: the `(B, T, 3C)` output of a fused qkv projection, heads read in
//!   place, output written straight into `(B, T, C)` (heads side by side) and the gradient into
//!   `(B, T, 3C)`. Multi-head attention then needs no head split or merge in its graph: no
//!   transposed copies forward, and no zero-padded slice gradients to scatter and sum backward.

use ndarray::{s, ArrayView1, ArrayView2, ArrayViewD, Axis, Ix2};
use rayon::prelude::*;

use crate::error::{Result, TensorError};
use crate::gemm::{gemm, MatRef, Parallelism, THREADING_THRESHOLD};
use crate::simd::{
    exp_shifted_into, max_scaled, scale_in_place, simd_level, sum_map2, with_simd_at, SimdLevel,
};
use crate::tensor::Tensor;

/// Query rows per block: a block multiplies `QUERY_BLOCK x D` queries by the keys its last row
/// may see. Smaller blocks skip more of the masked triangle; larger ones make better GEMMs.
/// Measured single-threaded (page faults excluded), fwd+bwd, D = 32: 16 / 32 / 48 / 64 rows took
/// 892 / 785 / 800 / 777 us on (12, 4, 64, 32) and 18.8 / 15.8 / 15.0 / 14.9 ms on (32, 8, 128, 32).
pub const QUERY_BLOCK: usize = 64;

const OP: &str = "scaled_dot_product_attention";
const PACKED_OP: &str = "packed_attention";

/// The sizes of one attention problem, checked.
#[derive(Clone, Copy, Debug)]
struct Dims {
    pairs: usize,
    t: usize,
    s: usize,
    d: usize,
    dv: usize,
    causal: bool,
    /// The vector level of the caller (read on its thread, so pool tasks honour its cap).
    level: SimdLevel,
}

impl Dims {
    /// Keys visible to query row `r`.
    fn allowed(&self, r: usize) -> usize {
        if self.causal {
            r + (self.s - self.t) + 1
        } else {
            self.s
        }
    }

    /// Keys any row of the block `r0..r1` may see (the GEMM width of that block).
    fn block_keys(&self, r1: usize) -> usize {
        if self.causal {
            r1 + (self.s - self.t)
        } else {
            self.s
        }
    }

    /// Enough work (multiply-adds of both products) in more than one task to pay for threads?
    fn threaded(&self, tasks: usize) -> bool {
        tasks > 1
            && self.pairs * self.t * self.s * (self.d + self.dv) >= THREADING_THRESHOLD
            && rayon::current_num_threads() > 1
    }
}

/// Validate shapes and scale; return the sizes.
fn check(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32, causal: bool) -> Result<Dims> {
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
fn matrices<'a>(v: ArrayViewD<'a, f32>, out: &mut Vec<ArrayView2<'a, f32>>) -> Result<()> {
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
fn gemm_friendly(t: &Tensor) -> Tensor {
    let (nd, st, sh) = (t.ndim(), t.strides(), t.shape());
    if sh[nd - 2] <= 1 || sh[nd - 1] <= 1 || st[nd - 1] == 1 || st[nd - 2] == 1 {
        t.clone()
    } else {
        t.contiguous()
    }
}

fn pairs_of(t: &Tensor) -> Result<Vec<ArrayView2<'_, f32>>> {
    let mut out = Vec::new();
    matrices(t.view(), &mut out)?;
    Ok(out)
}

/// The matrices of one (batch, head) pair: `q` `(T, D)`, `k` `(S, D)`, `v` `(S, Dv)`.
#[derive(Clone, Copy)]
struct Head<'a> {
    q: ArrayView2<'a, f32>,
    k: ArrayView2<'a, f32>,
    v: ArrayView2<'a, f32>,
}

/// The per-pair matrices of q, k and v (views; a matrix with no unit stride is copied first).
fn heads<'a>(q: &'a Tensor, k: &'a Tensor, v: &'a Tensor) -> Result<Vec<Head<'a>>> {
    let (qm, km, vm) = (pairs_of(q)?, pairs_of(k)?, pairs_of(v)?);
    Ok(qm
        .into_iter()
        .zip(km)
        .zip(vm)
        .map(|((q, k), v)| Head { q, k, v })
        .collect())
}

/// Where the rows of one pair's result go: row `i` is `data[offset + i * stride ..][..cols]`.
/// A contiguous `(T, D)` block has `stride = D`; one head of a `(B, T, C)` output has
/// `offset = h * D` and `stride = C`.
struct Rows<'a> {
    data: &'a mut [f32],
    offset: usize,
    stride: usize,
}

impl Rows<'_> {
    /// Copy the row-major `block` (`cols` wide) to rows `row0..`.
    #[inline(always)]
    fn write(&mut self, row0: usize, block: &[f32], cols: usize) {
        for (i, src) in block.chunks_exact(cols).enumerate() {
            let at = self.offset + (row0 + i) * self.stride;
            self.data[at..at + cols].copy_from_slice(src);
        }
    }
}

/// Where one pair's three gradients go.
trait GradRows {
    fn dq(&mut self) -> Rows<'_>;
    fn dk(&mut self) -> Rows<'_>;
    fn dv(&mut self) -> Rows<'_>;
}

/// Three contiguous per-pair blocks (the separate q, k, v layout).
struct Separate<'a> {
    dq: &'a mut [f32],
    dk: &'a mut [f32],
    dv: &'a mut [f32],
    d: usize,
    d_v: usize,
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
struct Packed<'a> {
    sample: &'a mut [f32],
    h: usize,
    d: usize,
    c: usize,
}

impl Packed<'_> {
    fn part(&mut self, which: usize) -> Rows<'_> {
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
fn softmax_row_lse(x: &[f32], allowed: usize, scale: f32, y: &mut [f32]) -> f32 {
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
fn dot(a: ArrayView1<'_, f32>, b: ArrayView1<'_, f32>) -> f32 {
    match (a.as_slice(), b.as_slice()) {
        (Some(x), Some(y)) => sum_map2(x, y, |p, q| p * q),
        _ => a.iter().zip(b.iter()).map(|(p, q)| p * q).sum(),
    }
}

/// One worker's buffers: two blocks of scores / probabilities, one block of result rows, and
/// the key and value gradient accumulators (backward only).
struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
    rows: Vec<f32>,
    dk: Vec<f32>,
    dv: Vec<f32>,
}

impl Scratch {
    fn new(dims: &Dims, backward: bool) -> Scratch {
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
fn forward_pair(
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
struct Saved<'a> {
    out: ArrayView2<'a, f32>,
    lse: &'a [f32],
    dout: ArrayView2<'a, f32>,
}

/// Backward of one pair: `dq`, `dk`, `dv` from `dout`, recomputing the probabilities.
#[inline(always)]
fn backward_pair<G: GradRows>(
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
fn forward_task(
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
fn backward_task<G: GradRows>(
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

/// `softmax(scale * q k^T) v` over the last two dims, causal or not. Returns the output
/// `(..., T, Dv)` and the log-sum-exp of each query row `(..., T)`, which
/// [`scaled_dot_product_attention_backward`] needs.
pub fn scaled_dot_product_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f32,
    causal: bool,
) -> Result<(Tensor, Tensor)> {
    crate::profile::timed(crate::profile::OpFamily::Attention, || {
        let dims = check(q, k, v, scale, causal)?;
        let (q, k, v) = (gemm_friendly(q), gemm_friendly(k), gemm_friendly(v));
        let heads = heads(&q, &k, &v)?;
        let (t, dv) = (dims.t, dims.dv);
        let mut out = vec![0.0f32; dims.pairs * t * dv];
        let mut lse = vec![0.0f32; dims.pairs * t];
        if t * dv > 0 {
            let task = |p: usize, o: &mut [f32], l: &mut [f32], sc: &mut Scratch| {
                forward_task(&dims, scale, &heads[p..p + 1], o, l, |_| (0, dv), sc)
            };
            if dims.threaded(dims.pairs) {
                out.par_chunks_mut(t * dv)
                    .zip(lse.par_chunks_mut(t))
                    .enumerate()
                    .try_for_each_init(
                        || Scratch::new(&dims, false),
                        |sc, (p, (o, l))| task(p, o, l, sc),
                    )?;
            } else {
                let mut sc = Scratch::new(&dims, false);
                for (p, (o, l)) in out.chunks_mut(t * dv).zip(lse.chunks_mut(t)).enumerate() {
                    task(p, o, l, &mut sc)?;
                }
            }
        }
        let nd = q.ndim();
        let mut out_shape = q.shape().to_vec();
        out_shape[nd - 1] = dv;
        Ok((
            Tensor::from_vec(out, &out_shape)?,
            Tensor::from_vec(lse, &q.shape()[..nd - 1])?,
        ))
    })
}

/// Error unless `t` has shape `want` (the backward's inputs must be the forward's).
fn check_saved(op: &'static str, name: &str, t: &Tensor, want: &[usize]) -> Result<()> {
    if t.shape() != want {
        return Err(TensorError::mismatch(
            op,
            t.shape(),
            want,
            format!("the {name} does not have the shape the forward produced"),
        ));
    }
    Ok(())
}

/// Gradients `(dq, dk, dv)` of [`scaled_dot_product_attention`] from the upstream gradient of its
/// output, given the inputs, the output and the log-sum-exp it returned.
#[allow(clippy::too_many_arguments)]
pub fn scaled_dot_product_attention_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    out: &Tensor,
    lse: &Tensor,
    grad_out: &Tensor,
    scale: f32,
    causal: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    crate::profile::timed(crate::profile::OpFamily::Attention, || {
        const BOP: &str = "scaled_dot_product_attention_backward";
        let dims = check(q, k, v, scale, causal)?;
        let nd = q.ndim();
        let mut out_shape = q.shape().to_vec();
        out_shape[nd - 1] = dims.dv;
        check_saved(BOP, "output", out, &out_shape)?;
        check_saved(BOP, "grad_out", grad_out, &out_shape)?;
        check_saved(BOP, "lse", lse, &q.shape()[..nd - 1])?;
        let (q, k, v) = (gemm_friendly(q), gemm_friendly(k), gemm_friendly(v));
        let heads = heads(&q, &k, &v)?;
        let (out, grad_out) = (gemm_friendly(out), gemm_friendly(grad_out));
        let (outs, douts) = (pairs_of(&out)?, pairs_of(&grad_out)?);
        let lse = lse.contiguous();
        let l = lse.as_slice().expect("contiguous");
        let (t, s, d, dvs) = (dims.t, dims.s, dims.d, dims.dv);
        let mut dq = vec![0.0f32; dims.pairs * t * d];
        let mut dk = vec![0.0f32; dims.pairs * s * d];
        let mut dv = vec![0.0f32; dims.pairs * s * dvs];
        if t > 0 && d > 0 && dvs > 0 {
            let task =
                |p: usize, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32], sc: &mut Scratch| {
                    let saved = Saved {
                        out: outs[p],
                        lse: &l[p * t..(p + 1) * t],
                        dout: douts[p],
                    };
                    let mut grads = Separate {
                        dq,
                        dk,
                        dv,
                        d,
                        d_v: dvs,
                    };
                    backward_task(&dims, scale, heads[p], saved, &mut grads, sc)
                };
            if dims.threaded(dims.pairs) {
                dq.par_chunks_mut(t * d)
                    .zip(dk.par_chunks_mut(s * d))
                    .zip(dv.par_chunks_mut(s * dvs))
                    .enumerate()
                    .try_for_each_init(
                        || Scratch::new(&dims, true),
                        |sc, (p, ((a, b), c))| task(p, a, b, c, sc),
                    )?;
            } else {
                let mut sc = Scratch::new(&dims, true);
                for (p, ((a, b), c)) in dq
                    .chunks_mut(t * d)
                    .zip(dk.chunks_mut(s * d))
                    .zip(dv.chunks_mut(s * dvs))
                    .enumerate()
                {
                    task(p, a, b, c, &mut sc)?;
                }
            }
        }
        Ok((
            Tensor::from_vec(dq, q.shape())?,
            Tensor::from_vec(dk, k.shape())?,
            Tensor::from_vec(dv, v.shape())?,
        ))
    })
}

/// `(B, T, C)` of a packed projection of shape `(B, T, 3C)` (queries, keys and values of
/// `n_head` heads side by side) with `C` a multiple of `n_head`, or an error naming `op`. The
/// one check of the packed layout: the fused kernels here and every user of the layout in `nn`
/// (multi-head attention, the KV cache) call it.
pub fn packed_dims(
    op: &'static str,
    shape: &[usize],
    n_head: usize,
) -> Result<(usize, usize, usize)> {
    if shape.len() != 3 || n_head == 0 || !shape[2].is_multiple_of(3 * n_head) {
        return Err(TensorError::invalid(
            op,
            shape,
            format!("qkv must be (B, T, 3C) with C a multiple of n_head = {n_head}"),
        ));
    }
    Ok((shape[0], shape[1], shape[2] / 3))
}

fn check_packed(qkv: &Tensor, n_head: usize) -> Result<(usize, usize, usize)> {
    packed_dims(PACKED_OP, qkv.shape(), n_head)
}

/// The `(B, H, T, D)` views of q, k and v inside a packed `(B, T, 3C)` tensor (no copy when it
/// is contiguous): `(B, T, 3, H, D)` permuted to `(3, B, H, T, D)`.
fn unpack(qkv: &Tensor, n_head: usize) -> Result<[Tensor; 3]> {
    let (b, t, c) = check_packed(qkv, n_head)?;
    let heads = qkv
        .reshape_to(&[b, t, 3, n_head, c / n_head])?
        .permute(&[2, 0, 3, 1, 4])?;
    let part = |i: usize| heads.narrow(0, i, 1)?.squeeze(0);
    Ok([part(0)?, part(1)?, part(2)?])
}

/// `(B, T, C)` seen as its heads `(B, H, T, D)` (a view).
fn split_heads(x: &Tensor, n_head: usize) -> Result<Tensor> {
    let s = x.shape();
    x.reshape_to(&[s[0], s[1], n_head, s[2] / n_head])?
        .permute(&[0, 2, 1, 3])
}

/// Multi-head self-attention straight from a fused projection: `qkv` is `(B, T, 3C)` (queries,
/// keys, values of all heads side by side, head `h` at columns `h * D ..` of each third, `D =
/// C / n_head`). Returns the output `(B, T, C)` with the heads already merged (ready for the
/// output projection) and the log-sum-exp `(B, H, T)` for
/// [`packed_attention_backward`]. Samples run in parallel, the heads of a sample in sequence.
pub fn packed_attention(
    qkv: &Tensor,
    n_head: usize,
    scale: f32,
    causal: bool,
) -> Result<(Tensor, Tensor)> {
    crate::profile::timed(crate::profile::OpFamily::Attention, || {
        let (b, t, c) = check_packed(qkv, n_head)?;
        let qkv = qkv.contiguous();
        let [q, k, v] = unpack(&qkv, n_head)?;
        let dims = check(&q, &k, &v, scale, causal)?;
        let heads = heads(&q, &k, &v)?;
        let d = c / n_head;
        let mut out = vec![0.0f32; b * t * c];
        let mut lse = vec![0.0f32; b * n_head * t];
        if t * c > 0 {
            let task = |i: usize, o: &mut [f32], l: &mut [f32], sc: &mut Scratch| {
                let group = &heads[i * n_head..(i + 1) * n_head];
                forward_task(&dims, scale, group, o, l, |h| (h * d, c), sc)
            };
            if dims.threaded(b) {
                out.par_chunks_mut(t * c)
                    .zip(lse.par_chunks_mut(n_head * t))
                    .enumerate()
                    .try_for_each_init(
                        || Scratch::new(&dims, false),
                        |sc, (i, (o, l))| task(i, o, l, sc),
                    )?;
            } else {
                let mut sc = Scratch::new(&dims, false);
                for (i, (o, l)) in out
                    .chunks_mut(t * c)
                    .zip(lse.chunks_mut(n_head * t))
                    .enumerate()
                {
                    task(i, o, l, &mut sc)?;
                }
            }
        }
        Ok((
            Tensor::from_vec(out, &[b, t, c])?,
            Tensor::from_vec(lse, &[b, n_head, t])?,
        ))
    })
}

/// The gradient `(B, T, 3C)` of [`packed_attention`] w.r.t. `qkv`, from the upstream gradient of
/// its `(B, T, C)` output, given the forward's output and log-sum-exp.
pub fn packed_attention_backward(
    qkv: &Tensor,
    out: &Tensor,
    lse: &Tensor,
    grad_out: &Tensor,
    n_head: usize,
    scale: f32,
    causal: bool,
) -> Result<Tensor> {
    crate::profile::timed(crate::profile::OpFamily::Attention, || {
        const BOP: &str = "packed_attention_backward";
        let (b, t, c) = check_packed(qkv, n_head)?;
        check_saved(BOP, "output", out, &[b, t, c])?;
        check_saved(BOP, "grad_out", grad_out, &[b, t, c])?;
        check_saved(BOP, "lse", lse, &[b, n_head, t])?;
        let qkv = qkv.contiguous();
        let [q, k, v] = unpack(&qkv, n_head)?;
        let dims = check(&q, &k, &v, scale, causal)?;
        let heads = heads(&q, &k, &v)?;
        let (out, grad_out) = (out.contiguous(), grad_out.contiguous());
        let (out_h, dout_h) = (split_heads(&out, n_head)?, split_heads(&grad_out, n_head)?);
        let (outs, douts) = (pairs_of(&out_h)?, pairs_of(&dout_h)?);
        let lse = lse.contiguous();
        let l = lse.as_slice().expect("contiguous");
        let d = c / n_head;
        let mut dqkv = vec![0.0f32; b * t * 3 * c];
        if t * c > 0 {
            let task = |i: usize, sample: &mut [f32], sc: &mut Scratch| {
                for h in 0..n_head {
                    let p = i * n_head + h;
                    let saved = Saved {
                        out: outs[p],
                        lse: &l[p * t..(p + 1) * t],
                        dout: douts[p],
                    };
                    let mut grads = Packed {
                        sample: &mut *sample,
                        h,
                        d,
                        c,
                    };
                    backward_task(&dims, scale, heads[p], saved, &mut grads, sc)?;
                }
                Ok(())
            };
            if dims.threaded(b) {
                dqkv.par_chunks_mut(t * 3 * c)
                    .enumerate()
                    .try_for_each_init(|| Scratch::new(&dims, true), |sc, (i, x)| task(i, x, sc))?;
            } else {
                let mut sc = Scratch::new(&dims, true);
                for (i, x) in dqkv.chunks_mut(t * 3 * c).enumerate() {
                    task(i, x, &mut sc)?;
                }
            }
        }
        Tensor::from_vec(dqkv, &[b, t, 3 * c])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::causal_softmax::causal_softmax_backward;
    use crate::softmax::softmax_backward;

    /// The composition this kernel replaces: matmul, (causal) softmax, matmul, and its backward
    /// from the same primitives' kernels.
    fn composed(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        go: &Tensor,
        scale: f32,
        causal: bool,
    ) -> (Tensor, [Tensor; 3]) {
        let scores = q.matmul(&k.transpose(-1, -2).unwrap()).unwrap();
        let p = if causal {
            scores.causal_softmax(scale).unwrap()
        } else {
            scores.mul_scalar(scale).softmax(-1).unwrap()
        };
        let out = p.matmul(v).unwrap();
        let dv = p.transpose(-1, -2).unwrap().matmul(go).unwrap();
        let dp = go.matmul(&v.transpose(-1, -2).unwrap()).unwrap();
        let ds = if causal {
            causal_softmax_backward(&p, &dp, scale).unwrap()
        } else {
            softmax_backward(&p, &dp, -1).unwrap().mul_scalar(scale)
        };
        let dq = ds.matmul(k).unwrap();
        let dk = ds.transpose(-1, -2).unwrap().matmul(q).unwrap();
        (out, [dq, dk, dv])
    }

    fn close(a: &Tensor, b: &Tensor, tol: f32, what: &str) {
        assert_eq!(a.shape(), b.shape(), "{what}");
        let diff = a.max_abs_diff(b).unwrap();
        assert!(diff <= tol, "{what}: max abs diff {diff}");
    }

    /// Fused attention on a tiny case equals the values computed by hand.
    #[test]
    fn tiny_case_by_hand() {
        // One query row against two keys: scores (1*1 + 0*0, 1*0 + 0*1) = (1, 0), scale 1.
        let q = Tensor::from_vec(vec![1.0, 0.0], &[1, 2]).unwrap();
        let k = Tensor::from_vec(vec![1.0, 0.0, 0.0, 1.0], &[2, 2]).unwrap();
        let v = Tensor::from_vec(vec![10.0, 20.0], &[2, 1]).unwrap();
        let (out, lse) = scaled_dot_product_attention(&q, &k, &v, 1.0, false).unwrap();
        let e = std::f32::consts::E;
        let want = (10.0 * e + 20.0) / (e + 1.0);
        assert!((out.to_vec()[0] - want).abs() < 1e-5);
        assert!((lse.to_vec()[0] - (e + 1.0).ln()).abs() < 1e-6);
        // Causal with S = T = 2: the first query sees only the first key.
        let q2 = Tensor::from_vec(vec![1.0, 0.0, 1.0, 0.0], &[2, 2]).unwrap();
        let (out, _) = scaled_dot_product_attention(&q2, &k, &v, 1.0, true).unwrap();
        assert!((out.to_vec()[0] - 10.0).abs() < 1e-6);
        assert!((out.to_vec()[1] - want).abs() < 1e-5);
    }

    /// Fused attention equals its composition from primitives, values and gradients.
    #[test]
    fn matches_the_composition_forward_and_backward() {
        // Shapes around the block size, T < S (KV cache), non-square heads, causal and not.
        // (batch dims, T, S, D, Dv, causal)
        type Case = (&'static [usize], usize, usize, usize, usize, bool);
        let cases: &[Case] = &[
            (&[2, 3], 5, 5, 4, 4, true),
            (&[2, 2], 70, 70, 8, 8, true),
            (&[1], 130, 140, 8, 8, true),
            (&[3], 33, 40, 6, 5, true),
            (&[1, 2], 1, 9, 4, 4, true),
            (&[2, 2], 37, 45, 8, 3, false),
            (&[4], 64, 64, 16, 16, false),
        ];
        for (i, &(batch, t, s, d, dv, causal)) in cases.iter().enumerate() {
            let shape = |r: usize, c: usize| -> Vec<usize> {
                batch.iter().copied().chain([r, c]).collect()
            };
            let seed = 100 * i as u64;
            let q = Tensor::rand_normal(&shape(t, d), 0.0, 1.0, seed).unwrap();
            let k = Tensor::rand_normal(&shape(s, d), 0.0, 1.0, seed + 1).unwrap();
            let v = Tensor::rand_normal(&shape(s, dv), 0.0, 1.0, seed + 2).unwrap();
            let go = Tensor::rand_normal(&shape(t, dv), 0.0, 1.0, seed + 3).unwrap();
            let scale = 1.0 / (d as f32).sqrt();
            let (out, lse) = scaled_dot_product_attention(&q, &k, &v, scale, causal).unwrap();
            let (want, grads) = composed(&q, &k, &v, &go, scale, causal);
            close(&out, &want, 1e-5, &format!("case {i} output"));
            let got =
                scaled_dot_product_attention_backward(&q, &k, &v, &out, &lse, &go, scale, causal)
                    .unwrap();
            close(&got.0, &grads[0], 1e-4, &format!("case {i} dq"));
            close(&got.1, &grads[1], 1e-4, &format!("case {i} dk"));
            close(&got.2, &grads[2], 1e-4, &format!("case {i} dv"));
        }
    }

    /// Strided views as inputs give the same result as contiguous copies.
    #[test]
    fn strided_views_need_no_copy_and_agree() {
        // q, k, v as the head views of one fused (B, T, 3, H, D) buffer.
        let (b, t, h, d) = (2, 40, 3, 8);
        let qkv = Tensor::rand_normal(&[b, t, 3, h, d], 0.0, 1.0, 7).unwrap();
        let heads = qkv.permute(&[2, 0, 3, 1, 4]).unwrap();
        let view = |i: usize| heads.narrow(0, i, 1).unwrap().squeeze(0).unwrap();
        let (q, k, v) = (view(0), view(1), view(2));
        assert!(!q.is_contiguous());
        let go = Tensor::rand_normal(&[b, h, t, d], 0.0, 1.0, 8).unwrap();
        let (out, lse) = scaled_dot_product_attention(&q, &k, &v, 0.3, true).unwrap();
        let (qc, kc, vc) = (q.contiguous(), k.contiguous(), v.contiguous());
        let (want, grads) = composed(&qc, &kc, &vc, &go, 0.3, true);
        close(&out, &want, 1e-5, "strided output");
        let got =
            scaled_dot_product_attention_backward(&q, &k, &v, &out, &lse, &go, 0.3, true).unwrap();
        close(&got.0, &grads[0], 1e-4, "strided dq");
        close(&got.1, &grads[1], 1e-4, "strided dk");
        close(&got.2, &grads[2], 1e-4, "strided dv");
    }

    /// Attention rows sum to one and very large scores stay finite.
    #[test]
    fn rows_are_probabilities_and_large_scores_stay_finite() {
        // Huge scores: the max shift keeps everything finite; v = 1 makes every output row 1.
        let q = Tensor::full(&[1, 6, 4], 100.0);
        let k = Tensor::full(&[1, 6, 4], 100.0);
        let v = Tensor::ones(&[1, 6, 3]);
        let (out, lse) = scaled_dot_product_attention(&q, &k, &v, 1.0, true).unwrap();
        assert!(out.to_vec().iter().all(|&x| (x - 1.0).abs() < 1e-5));
        assert!(lse.all_finite());
    }

    /// Mismatched shapes are errors naming the op and the shapes.
    #[test]
    fn bad_shapes_are_named_errors() {
        let q = Tensor::zeros(&[2, 4, 8]);
        let err = |k: &Tensor, v: &Tensor, causal: bool| {
            let e = scaled_dot_product_attention(&q, k, v, 1.0, causal).unwrap_err();
            assert_eq!(e.op(), OP);
            e.to_string()
        };
        let msg = err(
            &Tensor::zeros(&[2, 4, 7]),
            &Tensor::zeros(&[2, 4, 8]),
            false,
        );
        assert!(msg.contains("head size"), "{msg}");
        let msg = err(
            &Tensor::zeros(&[2, 4, 8]),
            &Tensor::zeros(&[2, 5, 8]),
            false,
        );
        assert!(msg.contains("4 keys but v has 5"), "{msg}");
        let msg = err(&Tensor::zeros(&[2, 3, 8]), &Tensor::zeros(&[2, 3, 8]), true);
        assert!(msg.contains("T = 4") && msg.contains("S = 3"), "{msg}");
        let msg = err(
            &Tensor::zeros(&[3, 4, 8]),
            &Tensor::zeros(&[3, 4, 8]),
            false,
        );
        assert!(msg.contains("leading"), "{msg}");
        let msg = err(&Tensor::zeros(&[4, 8]), &Tensor::zeros(&[4, 8]), false);
        assert!(msg.contains("number of dims"), "{msg}");
        let (out, lse) = scaled_dot_product_attention(&q, &q, &q, 1.0, true).unwrap();
        let bad = scaled_dot_product_attention_backward(
            &q,
            &q,
            &q,
            &out,
            &lse,
            &Tensor::zeros(&[2, 4, 7]),
            1.0,
            true,
        )
        .unwrap_err();
        assert!(bad.to_string().contains("grad_out"), "{bad}");
    }

    /// `(B, H, T, D)` heads merged to `(B, T, C)`.
    fn merge(x: &Tensor) -> Tensor {
        let s = x.shape().to_vec();
        x.permute(&[0, 2, 1, 3])
            .unwrap()
            .reshape_to(&[s[0], s[2], s[1] * s[3]])
            .unwrap()
    }

    /// The packed (B, T, 3C) layout gives the same result as separate head tensors.
    #[test]
    fn packed_layout_matches_separate_heads() {
        // (B, T, C, H) around the query block size, causal and not.
        for (i, &(b, t, c, h, causal)) in [
            (2, 5, 8, 2, true),
            (3, 37, 12, 3, true),
            (2, 150, 8, 2, true),
            (1, 33, 16, 4, false),
            (2, 64, 32, 1, true),
        ]
        .iter()
        .enumerate()
        {
            let seed = 50 + 10 * i as u64;
            let qkv = Tensor::rand_normal(&[b, t, 3 * c], 0.0, 1.0, seed).unwrap();
            let go = Tensor::rand_normal(&[b, t, c], 0.0, 1.0, seed + 1).unwrap();
            let scale = 1.0 / ((c / h) as f32).sqrt();
            let (out, lse) = packed_attention(&qkv, h, scale, causal).unwrap();
            assert_eq!(lse.shape(), &[b, h, t]);
            // The same problem through the separate-heads entry point.
            let [q, k, v] = unpack(&qkv, h).unwrap();
            let (want, want_lse) = scaled_dot_product_attention(&q, &k, &v, scale, causal).unwrap();
            close(
                &out,
                &merge(&want),
                1e-6,
                &format!("case {i} packed output"),
            );
            close(&lse, &want_lse, 1e-6, &format!("case {i} packed lse"));
            let go_heads = split_heads(&go, h).unwrap();
            let (dq, dk, dv) = scaled_dot_product_attention_backward(
                &q, &k, &v, &want, &want_lse, &go_heads, scale, causal,
            )
            .unwrap();
            let want_grad = Tensor::cat(&[merge(&dq), merge(&dk), merge(&dv)], -1).unwrap();
            let got = packed_attention_backward(&qkv, &out, &lse, &go, h, scale, causal).unwrap();
            close(&got, &want_grad, 1e-6, &format!("case {i} packed gradient"));
        }
    }

    /// The one packed-shape check returns `(B, T, C)` and names the caller's op and the shape.
    #[test]
    fn packed_dims_names_the_callers_op() {
        assert_eq!(packed_dims("any", &[2, 5, 24], 4).unwrap(), (2, 5, 8));
        for (shape, n_head) in [(vec![2, 5, 20], 4), (vec![10, 24], 4), (vec![2, 5, 24], 0)] {
            let e = packed_dims("KvCache::append_packed", &shape, n_head).unwrap_err();
            assert_eq!(e.op(), "KvCache::append_packed");
            assert!(e.to_string().contains(&format!("{shape:?}")), "{e}");
        }
    }

    /// Bad packed shapes are errors naming the op and the shape.
    #[test]
    fn packed_shape_errors_are_named() {
        let qkv = Tensor::zeros(&[2, 4, 24]);
        let e = packed_attention(&qkv, 5, 1.0, true).unwrap_err();
        assert_eq!(e.op(), PACKED_OP);
        assert!(e.to_string().contains("n_head = 5"), "{e}");
        assert!(packed_attention(&Tensor::zeros(&[4, 24]), 2, 1.0, true).is_err());
        let (out, lse) = packed_attention(&qkv, 2, 1.0, true).unwrap();
        let e =
            packed_attention_backward(&qkv, &out, &lse, &Tensor::zeros(&[2, 4, 7]), 2, 1.0, true)
                .unwrap_err();
        assert!(e.to_string().contains("grad_out"), "{e}");
        let e = packed_attention_backward(&qkv, &out, &out, &out, 2, 1.0, true).unwrap_err();
        assert!(e.to_string().contains("lse"), "{e}");
    }
}
