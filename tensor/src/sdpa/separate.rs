//! Attention of separate `q`, `k`, `v` tensors (any strides, read in place).

use rayon::prelude::*;

use crate::error::{Result, TensorError};
use crate::tensor::Tensor;

use super::kernel::{backward_task, forward_task, Saved, Scratch, Separate};
use super::shapes::{check, gemm_friendly, heads, pairs_of};

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
                        || Scratch::new(&dims),
                        |sc, (p, (o, l))| task(p, o, l, sc),
                    )?;
            } else {
                let mut sc = Scratch::new(&dims);
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
pub(super) fn check_saved(op: &'static str, name: &str, t: &Tensor, want: &[usize]) -> Result<()> {
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
                        || Scratch::new(&dims),
                        |sc, (p, ((a, b), c))| task(p, a, b, c, sc),
                    )?;
            } else {
                let mut sc = Scratch::new(&dims);
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
