//! Attention straight from a packed `(B, T, 3C)` projection: one shape check for every user of
//! the layout, heads read in place, output `(B, T, C)`, gradient `(B, T, 3C)`.

use rayon::prelude::*;

use crate::error::{Result, TensorError};
use crate::tensor::Tensor;

use super::kernel::{backward_task, forward_task, Packed, Saved, Scratch};
use super::separate::check_saved;
use super::shapes::{check, heads, pairs_of};
use super::PACKED_OP;

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

pub(super) fn check_packed(qkv: &Tensor, n_head: usize) -> Result<(usize, usize, usize)> {
    packed_dims(PACKED_OP, qkv.shape(), n_head)
}

/// The `(B, H, T, D)` views of q, k and v inside a packed `(B, T, 3C)` tensor (no copy when it
/// is contiguous): `(B, T, 3, H, D)` permuted to `(3, B, H, T, D)`.
pub(super) fn unpack(qkv: &Tensor, n_head: usize) -> Result<[Tensor; 3]> {
    let (b, t, c) = check_packed(qkv, n_head)?;
    let heads = qkv
        .reshape_to(&[b, t, 3, n_head, c / n_head])?
        .permute(&[2, 0, 3, 1, 4])?;
    let part = |i: usize| heads.narrow(0, i, 1)?.squeeze(0);
    Ok([part(0)?, part(1)?, part(2)?])
}

/// `(B, T, C)` seen as its heads `(B, H, T, D)` (a view).
pub(super) fn split_heads(x: &Tensor, n_head: usize) -> Result<Tensor> {
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
                        || Scratch::new(&dims),
                        |sc, (i, (o, l))| task(i, o, l, sc),
                    )?;
            } else {
                let mut sc = Scratch::new(&dims);
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
                    .try_for_each_init(|| Scratch::new(&dims), |sc, (i, x)| task(i, x, sc))?;
            } else {
                let mut sc = Scratch::new(&dims);
                for (i, x) in dqkv.chunks_mut(t * 3 * c).enumerate() {
                    task(i, x, &mut sc)?;
                }
            }
        }
        Tensor::from_vec(dqkv, &[b, t, 3 * c])
    })
}
