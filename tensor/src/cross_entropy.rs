//! Cross-entropy from logits with integer targets: log-softmax and negative log-likelihood fused.
//!
//! For a row of logits `x` (length `C`) with target `t`, `log p = (x - m) - ln(sum exp(x - m))`
//! (max-shifted, so logits of 1e4 are fine) and the loss is `-sum_j q_j log p_j` where the target
//! distribution is `q = (1 - eps) * onehot(t) + eps / C` (label smoothing, as PyTorch). The loss is
//! the mean over the rows whose target is not `ignore_index`.
//!
//! The gradient w.r.t. the logits is `(softmax(x) - q) / count` for counted rows and 0 for ignored
//! ones, so the forward keeps the softmax rows in a [`CrossEntropyCache`].
//!
//! When every row is ignored there is nothing to average: this kernel returns a loss of 0 and a
//! zero gradient (PyTorch returns NaN there, which then poisons a whole training run).

use crate::error::{Result, TensorError};
use crate::simd::{
    exp_shifted_into, for_each_row, for_each_row_aux, row_max, scale_in_place, sum_map,
};
use crate::tensor::Tensor;

/// What the forward saves for backward.
#[derive(Clone)]
pub struct CrossEntropyCache {
    /// `softmax(logits)` per row, shape `(N, C)`. Rows whose target is ignored are left at 0.
    pub probs: Tensor,
    /// How many rows were counted (not ignored): the loss is the sum over them divided by this.
    pub count: usize,
}

/// Loss of one row given its logits `x` and target `t`; writes `softmax(x)` into `probs`.
#[inline(always)]
pub fn cross_entropy_row(x: &[f32], target: usize, label_smoothing: f32, probs: &mut [f32]) -> f32 {
    // HINT: log p_j = (x_j - m) - ln(sum exp(x - m)); loss = -(1 - eps) log p_t - eps / C * sum_j log p_j; probs = exp(x - m) / sum.
    // BEGIN SOLUTION
    let c = x.len() as f32;
    let m = row_max(x);
    let sum = exp_shifted_into(x, 1.0, m, probs);
    let log_sum = sum.ln();
    scale_in_place(probs, 1.0 / sum);
    let log_p_target = (x[target] - m) - log_sum;
    let mut loss = -(1.0 - label_smoothing) * log_p_target;
    if label_smoothing > 0.0 {
        let sum_log_p = sum_map(x, |v| v - m) - c * log_sum;
        loss -= label_smoothing / c * sum_log_p;
    }
    loss
    // END SOLUTION
}

/// Gradient of one counted row: `grad_row = scale * (probs - q)`, `q` the smoothed target.
#[inline(always)]
pub fn cross_entropy_backward_row(
    probs: &[f32],
    target: usize,
    label_smoothing: f32,
    scale: f32,
    grad_row: &mut [f32],
) {
    // HINT: d loss / d x = softmax(x) - q with q = (1 - eps) onehot(t) + eps / C; scale is grad_loss / count.
    // BEGIN SOLUTION
    let uniform = label_smoothing / probs.len() as f32;
    for (g, &p) in grad_row.iter_mut().zip(probs) {
        *g = scale * (p - uniform);
    }
    grad_row[target] -= scale * (1.0 - label_smoothing);
    // END SOLUTION
}

/// Check the logits shape, the targets and the smoothing; return `(N, C)`.
fn validate(
    op: &'static str,
    shape: &[usize],
    targets: &[usize],
    ignore_index: Option<usize>,
    label_smoothing: f32,
) -> Result<(usize, usize)> {
    if shape.len() != 2 {
        return Err(TensorError::invalid(
            op,
            shape,
            "logits must be 2-D (N, C); flatten (B, T, C) to (B*T, C) first",
        ));
    }
    let (n, c) = (shape[0], shape[1]);
    if targets.len() != n {
        return Err(TensorError::mismatch(
            op,
            shape,
            &[targets.len()],
            format!("{} targets for {n} rows of logits", targets.len()),
        ));
    }
    if !(0.0..=1.0).contains(&label_smoothing) {
        return Err(TensorError::invalid(
            op,
            shape,
            format!("label_smoothing must be in [0, 1], got {label_smoothing}"),
        ));
    }
    for (row, &t) in targets.iter().enumerate() {
        if Some(t) != ignore_index && t >= c {
            return Err(TensorError::invalid(
                op,
                shape,
                format!("target {t} in row {row} is out of range for {c} classes"),
            ));
        }
    }
    Ok((n, c))
}

/// Mean cross-entropy of `logits` (N, C) against class indices `targets` (length N).
/// Rows whose target equals `ignore_index` are skipped (neither counted nor given a gradient).
/// Returns the loss and the cache [`cross_entropy_backward`] needs.
pub fn cross_entropy(
    logits: &Tensor,
    targets: &[usize],
    ignore_index: Option<usize>,
    label_smoothing: f32,
) -> Result<(f32, CrossEntropyCache)> {
    crate::profile::timed(crate::profile::OpFamily::Loss, || {
        const OP: &str = "cross_entropy";
        let (n, c) = validate(OP, logits.shape(), targets, ignore_index, label_smoothing)?;
        let xs = logits.contiguous();
        let x = xs.as_slice().expect("contiguous");
        let mut probs = vec![0.0f32; n * c];
        let mut losses = vec![0.0f32; n];
        if c > 0 {
            for_each_row_aux(
                &mut probs,
                c,
                &mut losses,
                #[inline(always)]
                |r, p, loss| {
                    if Some(targets[r]) != ignore_index {
                        *loss = cross_entropy_row(
                            &x[r * c..(r + 1) * c],
                            targets[r],
                            label_smoothing,
                            p,
                        );
                    }
                },
            );
        }
        let count = targets.iter().filter(|&&t| Some(t) != ignore_index).count();
        // Summed in row order in f64: the same loss whatever the thread count.
        let total: f64 = losses.iter().map(|&l| l as f64).sum();
        let loss = if count == 0 {
            0.0
        } else {
            (total / count as f64) as f32
        };
        let probs = Tensor::from_vec(probs, &[n, c])?;
        Ok((loss, CrossEntropyCache { probs, count }))
    })
}

/// Gradient of the mean loss w.r.t. the logits, scaled by the upstream `grad_loss`; shape (N, C).
pub fn cross_entropy_backward(
    cache: &CrossEntropyCache,
    targets: &[usize],
    ignore_index: Option<usize>,
    label_smoothing: f32,
    grad_loss: f32,
) -> Result<Tensor> {
    crate::profile::timed(crate::profile::OpFamily::Loss, || {
        const OP: &str = "cross_entropy_backward";
        let (n, c) = validate(
            OP,
            cache.probs.shape(),
            targets,
            ignore_index,
            label_smoothing,
        )?;
        let mut grad = vec![0.0f32; n * c];
        if cache.count > 0 && c > 0 {
            let ps = cache.probs.contiguous();
            let p = ps.as_slice().expect("contiguous");
            let scale = grad_loss / cache.count as f32;
            for_each_row(
                &mut grad,
                c,
                #[inline(always)]
                |r, g| {
                    if Some(targets[r]) != ignore_index {
                        let row = &p[r * c..(r + 1) * c];
                        cross_entropy_backward_row(row, targets[r], label_smoothing, scale, g);
                    }
                },
            );
        }
        Tensor::from_vec(grad, &[n, c])
    })
}
