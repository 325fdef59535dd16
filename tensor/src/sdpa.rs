//! Fused scaled-dot-product attention, `softmax(scale * Q K^T) V`, forward and backward.
//!
//! `q` is `(..., T, D)`, `k` is `(..., S, D)`, `v` is `(..., S, Dv)` with the same leading
//! (batch, head) dims. With `causal`, query `i` of `T` sees keys `j <= i + (S - T)` (the
//! convention of [`crate::attention`]: the queries are the last `T` positions, so `S > T` is
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
//! Q, K and V are read in place through their strides, so the head views of a fused qkv
//! projection (`(B, T, 3, H, D)` permuted to `(3, B, H, T, D)`) need no copy.

use ndarray::{s, ArrayView2, ArrayViewD, Axis, Ix2};
use rayon::prelude::*;

use crate::error::{Result, TensorError};
use crate::gemm::{gemm, MatRef, Parallelism, THREADING_THRESHOLD};
use crate::softmax::{exp_shifted_into, max_scaled, scale_in_place, sum_map2};
use crate::tensor::Tensor;

/// Query rows per block: a block multiplies `QUERY_BLOCK x D` queries by the keys its last row
/// may see. Smaller blocks skip more of the masked triangle; larger ones make better GEMMs.
pub const QUERY_BLOCK: usize = 32;

const OP: &str = "scaled_dot_product_attention";

/// The sizes of one attention problem, checked.
#[derive(Clone, Copy, Debug)]
struct Dims {
    pairs: usize,
    t: usize,
    s: usize,
    d: usize,
    dv: usize,
    causal: bool,
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

    /// Multiply-adds of one pass of both products: enough to pay for threads?
    fn threaded(&self) -> bool {
        self.pairs > 1
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

/// Scratch of one worker: a block of scores and one of probabilities (or their gradients).
type Scratch = (Vec<f32>, Vec<f32>);

fn scratch(dims: &Dims) -> Scratch {
    let n = QUERY_BLOCK.min(dims.t.max(1)) * dims.s;
    (vec![0.0; n], vec![0.0; n])
}

/// The matrices of one (batch, head) pair: `q` `(T, D)`, `k` `(S, D)`, `v` `(S, Dv)`.
#[derive(Clone, Copy)]
struct Head<'a> {
    q: ArrayView2<'a, f32>,
    k: ArrayView2<'a, f32>,
    v: ArrayView2<'a, f32>,
}

/// Forward of one (batch, head) pair: `out = P V` and `lse` per query row.
#[inline(always)]
fn forward_pair(
    dims: &Dims,
    scale: f32,
    Head { q, k, v }: Head<'_>,
    out: &mut [f32],
    lse: &mut [f32],
    (scores, probs): &mut Scratch,
) -> Result<()> {
    // HINT: per block of query rows r0..r1: scores = Q[r0..r1] K[..n]^T with n the keys the last
    // HINT: row sees; a softmax per row (softmax_row_lse); out[r0..r1] = P V[..n].
    // BEGIN SOLUTION
    let dv = dims.dv;
    for r0 in (0..dims.t).step_by(QUERY_BLOCK) {
        let r1 = (r0 + QUERY_BLOCK).min(dims.t);
        let (rows, n) = (r1 - r0, dims.block_keys(r1));
        let (sc, pr) = (&mut scores[..rows * n], &mut probs[..rows * n]);
        let q_blk = MatRef::from_view(q.slice(s![r0..r1, ..]));
        let k_t = MatRef::from_view(k.slice(s![..n, ..])).t();
        gemm(q_blk, k_t, sc, false, Parallelism::Sequential)?;
        for i in 0..rows {
            let row = i * n..(i + 1) * n;
            let allowed = dims.allowed(r0 + i);
            lse[r0 + i] = softmax_row_lse(&sc[row.clone()], allowed, scale, &mut pr[row]);
        }
        let p = MatRef::row_major(pr, rows, n)?;
        let v_blk = MatRef::from_view(v.slice(s![..n, ..]));
        gemm(
            p,
            v_blk,
            &mut out[r0 * dv..r1 * dv],
            false,
            Parallelism::Sequential,
        )?;
    }
    Ok(())
    // END SOLUTION
}

/// What backward reads for one pair: the forward's output, log-sum-exp and the upstream
/// gradient, each contiguous.
#[derive(Clone, Copy)]
struct Saved<'a> {
    out: &'a [f32],
    lse: &'a [f32],
    dout: &'a [f32],
}

/// Backward of one pair: `dq`, `dk`, `dv` from `dout`, recomputing the probabilities.
#[inline(always)]
fn backward_pair(
    dims: &Dims,
    scale: f32,
    Head { q, k, v }: Head<'_>,
    Saved { out, lse, dout }: Saved<'_>,
    (dq, dk, dv): (&mut [f32], &mut [f32], &mut [f32]),
    (probs, dprobs): &mut Scratch,
) -> Result<()> {
    // HINT: per query block: P = exp(scale * Q K^T - lse); dV += P^T dO; dP = dO V^T;
    // HINT: dS = scale * P * (dP - rowsum(dO * O)); dQ = dS K; dK += dS^T Q.
    // BEGIN SOLUTION
    let (d, vd) = (dims.d, dims.dv);
    dk.fill(0.0);
    dv.fill(0.0);
    for r0 in (0..dims.t).step_by(QUERY_BLOCK) {
        let r1 = (r0 + QUERY_BLOCK).min(dims.t);
        let (rows, n) = (r1 - r0, dims.block_keys(r1));
        let (p, dp) = (&mut probs[..rows * n], &mut dprobs[..rows * n]);
        let q_blk = MatRef::from_view(q.slice(s![r0..r1, ..]));
        let k_blk = MatRef::from_view(k.slice(s![..n, ..]));
        let v_blk = MatRef::from_view(v.slice(s![..n, ..]));
        let do_blk = MatRef::row_major(&dout[r0 * vd..r1 * vd], rows, vd)?;
        // Rebuild P from the scores and the saved log-sum-exp.
        gemm(q_blk, k_blk.t(), dp, false, Parallelism::Sequential)?;
        for i in 0..rows {
            let allowed = dims.allowed(r0 + i);
            let (row_in, row_out) = (&dp[i * n..i * n + allowed], &mut p[i * n..(i + 1) * n]);
            exp_shifted_into(row_in, scale, lse[r0 + i], &mut row_out[..allowed]);
            row_out[allowed..].fill(0.0);
        }
        // dV[..n] += P^T dO
        let p_ref = MatRef::row_major(p, rows, n)?;
        gemm(
            p_ref.t(),
            do_blk,
            &mut dv[..n * vd],
            true,
            Parallelism::Sequential,
        )?;
        // dP = dO V^T, then dS = scale * P * (dP - <dO, O>) in place.
        gemm(do_blk, v_blk.t(), dp, false, Parallelism::Sequential)?;
        for i in 0..rows {
            let r = r0 + i;
            let delta = sum_map2(
                &dout[r * vd..(r + 1) * vd],
                &out[r * vd..(r + 1) * vd],
                |a, b| a * b,
            );
            let allowed = dims.allowed(r);
            let (p_row, dp_row) = (&p[i * n..(i + 1) * n], &mut dp[i * n..(i + 1) * n]);
            for (g, &pv) in dp_row[..allowed].iter_mut().zip(&p_row[..allowed]) {
                *g = scale * pv * (*g - delta);
            }
            dp_row[allowed..].fill(0.0);
        }
        let ds = MatRef::row_major(dp, rows, n)?;
        gemm(
            ds,
            k_blk,
            &mut dq[r0 * d..r1 * d],
            false,
            Parallelism::Sequential,
        )?;
        gemm(
            ds.t(),
            q_blk,
            &mut dk[..n * d],
            true,
            Parallelism::Sequential,
        )?;
    }
    Ok(())
    // END SOLUTION
}

/// The vector instructions the per-head code is compiled for, chosen once per call. The row
/// loops (max, exp, sums) are written so the compiler vectorizes them; built for the baseline
/// x86-64 target they would use 4-wide SSE, so each head runs through a copy compiled with
/// AVX-512 or AVX2 when the CPU has it. The GEMMs dispatch on their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Simd {
    Avx512,
    Avx2,
    Baseline,
}

impl Simd {
    fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Simd::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Simd::Avx2;
            }
        }
        Simd::Baseline
    }
}

/// [`forward_pair`] compiled for AVX-512.
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn forward_pair_avx512(
    dims: &Dims,
    scale: f32,
    head: Head<'_>,
    out: &mut [f32],
    lse: &mut [f32],
    scratch: &mut Scratch,
) -> Result<()> {
    forward_pair(dims, scale, head, out, lse, scratch)
}

/// [`forward_pair`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_pair_avx2(
    dims: &Dims,
    scale: f32,
    head: Head<'_>,
    out: &mut [f32],
    lse: &mut [f32],
    scratch: &mut Scratch,
) -> Result<()> {
    forward_pair(dims, scale, head, out, lse, scratch)
}

/// [`backward_pair`] compiled for AVX-512.
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn backward_pair_avx512(
    dims: &Dims,
    scale: f32,
    head: Head<'_>,
    saved: Saved<'_>,
    grads: (&mut [f32], &mut [f32], &mut [f32]),
    scratch: &mut Scratch,
) -> Result<()> {
    backward_pair(dims, scale, head, saved, grads, scratch)
}

/// [`backward_pair`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn backward_pair_avx2(
    dims: &Dims,
    scale: f32,
    head: Head<'_>,
    saved: Saved<'_>,
    grads: (&mut [f32], &mut [f32], &mut [f32]),
    scratch: &mut Scratch,
) -> Result<()> {
    backward_pair(dims, scale, head, saved, grads, scratch)
}

/// One pair's forward with the best instructions available.
fn forward_head(
    simd: Simd,
    dims: &Dims,
    scale: f32,
    head: Head<'_>,
    out: &mut [f32],
    lse: &mut [f32],
    scratch: &mut Scratch,
) -> Result<()> {
    match simd {
        // SAFETY: `Simd::detect` found these features on this CPU.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { forward_pair_avx512(dims, scale, head, out, lse, scratch) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => unsafe { forward_pair_avx2(dims, scale, head, out, lse, scratch) },
        _ => forward_pair(dims, scale, head, out, lse, scratch),
    }
}

/// One pair's backward with the best instructions available.
fn backward_head(
    simd: Simd,
    dims: &Dims,
    scale: f32,
    head: Head<'_>,
    saved: Saved<'_>,
    grads: (&mut [f32], &mut [f32], &mut [f32]),
    scratch: &mut Scratch,
) -> Result<()> {
    match simd {
        // SAFETY: `Simd::detect` found these features on this CPU.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { backward_pair_avx512(dims, scale, head, saved, grads, scratch) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => unsafe { backward_pair_avx2(dims, scale, head, saved, grads, scratch) },
        _ => backward_pair(dims, scale, head, saved, grads, scratch),
    }
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
    let dims = check(q, k, v, scale, causal)?;
    let (q, k, v) = (gemm_friendly(q), gemm_friendly(k), gemm_friendly(v));
    let heads = heads(&q, &k, &v)?;
    let simd = Simd::detect();
    let mut out = vec![0.0f32; dims.pairs * dims.t * dims.dv];
    let mut lse = vec![0.0f32; dims.pairs * dims.t];
    let (out_step, lse_step) = (dims.t * dims.dv, dims.t);
    if out_step > 0 {
        let run = |p: usize, o: &mut [f32], l: &mut [f32], sc: &mut Scratch| {
            forward_head(simd, &dims, scale, heads[p], o, l, sc)
        };
        if dims.threaded() {
            out.par_chunks_mut(out_step)
                .zip(lse.par_chunks_mut(lse_step))
                .enumerate()
                .try_for_each_init(|| scratch(&dims), |sc, (p, (o, l))| run(p, o, l, sc))?;
        } else {
            let mut sc = scratch(&dims);
            for (p, (o, l)) in out
                .chunks_mut(out_step)
                .zip(lse.chunks_mut(lse_step))
                .enumerate()
            {
                run(p, o, l, &mut sc)?;
            }
        }
    }
    let mut out_shape = q.shape().to_vec();
    let nd = out_shape.len();
    out_shape[nd - 1] = dims.dv;
    let lse_shape = &q.shape()[..nd - 1];
    Ok((
        Tensor::from_vec(out, &out_shape)?,
        Tensor::from_vec(lse, lse_shape)?,
    ))
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
    const BOP: &str = "scaled_dot_product_attention_backward";
    let dims = check(q, k, v, scale, causal)?;
    let nd = q.ndim();
    let mut out_shape = q.shape().to_vec();
    out_shape[nd - 1] = dims.dv;
    for (name, t, want) in [
        ("output", out, &out_shape[..]),
        ("grad_out", grad_out, &out_shape[..]),
        ("lse", lse, &q.shape()[..nd - 1]),
    ] {
        if t.shape() != want {
            return Err(TensorError::mismatch(
                BOP,
                t.shape(),
                want,
                format!("the {name} does not have the shape the forward produced"),
            ));
        }
    }
    let (q, k, v) = (gemm_friendly(q), gemm_friendly(k), gemm_friendly(v));
    let heads = heads(&q, &k, &v)?;
    let simd = Simd::detect();
    let (out, lse, grad_out) = (out.contiguous(), lse.contiguous(), grad_out.contiguous());
    let (o, l, g) = (
        out.as_slice().expect("contiguous"),
        lse.as_slice().expect("contiguous"),
        grad_out.as_slice().expect("contiguous"),
    );
    let (t, s, d, dvs) = (dims.t, dims.s, dims.d, dims.dv);
    let mut dq = vec![0.0f32; dims.pairs * t * d];
    let mut dk = vec![0.0f32; dims.pairs * s * d];
    let mut dv = vec![0.0f32; dims.pairs * s * dvs];
    if t > 0 && d > 0 && dvs > 0 {
        let run = |p: usize, grads: (&mut [f32], &mut [f32], &mut [f32]), sc: &mut Scratch| {
            let (span, rows) = (p * t * dvs..(p + 1) * t * dvs, p * t..(p + 1) * t);
            let saved = Saved {
                out: &o[span.clone()],
                lse: &l[rows],
                dout: &g[span],
            };
            backward_head(simd, &dims, scale, heads[p], saved, grads, sc)
        };
        if dims.threaded() {
            dq.par_chunks_mut(t * d)
                .zip(dk.par_chunks_mut(s * d))
                .zip(dv.par_chunks_mut(s * dvs))
                .enumerate()
                .try_for_each_init(
                    || scratch(&dims),
                    |sc, (p, ((a, b), c))| run(p, (a, b, c), sc),
                )?;
        } else {
            let mut sc = scratch(&dims);
            for (p, ((a, b), c)) in dq
                .chunks_mut(t * d)
                .zip(dk.chunks_mut(s * d))
                .zip(dv.chunks_mut(s * dvs))
                .enumerate()
            {
                run(p, (a, b, c), &mut sc)?;
            }
        }
    }
    Ok((
        Tensor::from_vec(dq, q.shape())?,
        Tensor::from_vec(dk, k.shape())?,
        Tensor::from_vec(dv, v.shape())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::causal_softmax_backward;
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

    #[test]
    fn matches_the_composition_forward_and_backward() {
        // Shapes around the block size, T < S (KV cache), non-square heads, causal and not.
        // (batch dims, T, S, D, Dv, causal)
        type Case = (&'static [usize], usize, usize, usize, usize, bool);
        let cases: &[Case] = &[
            (&[2, 3], 5, 5, 4, 4, true),
            (&[2, 2], 70, 70, 8, 8, true),
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
}
