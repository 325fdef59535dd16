//! Knowledge-distillation loss, fused: a soft-target KL term and the hard-label cross-entropy
//! of a student's logits, forward and backward in one kernel each.
//!
//! For a row of student logits `s`, teacher logits `t` (a constant), label `y`, temperature `T`
//! and mixing weight `alpha`:
//!
//! ```text
//! q = softmax(s / T)       p = softmax(t / T)       r = softmax(s)
//! loss = alpha * T^2 * KL(p || q) + (1 - alpha) * (-log r_y)
//!      = alpha * T^2 * sum_j p_j (log p_j - log q_j) + (1 - alpha) * (-log r_y)
//! d loss / d s = alpha * T * (q - p) + (1 - alpha) * (r - onehot(y))
//! ```
//!
//! and the loss is the mean over the `N` rows (so the gradient is divided by `N`). The `T^2`
//! (Hinton et al., 2015) keeps the soft term's gradient the same size whatever `T`: the softmax
//! of `s / T` brings a factor `1 / T`, so without it a higher temperature would silently weaken
//! the teacher. Every log-probability is a max-shifted log-softmax (logits of 1e4 are fine), and
//! a teacher probability that underflows to 0 contributes exactly 0 (`0 log 0 = 0`), never NaN.
//!
//! The rows are short (one per class), so the kernel is plain per-row loops with no SIMD
//! dispatch: the same code, and the same result, on every CPU.

use crate::error::{Result, TensorError};
use crate::tensor::Tensor;

/// What the forward saves for backward: the three distributions of every row, `(N, C)` each.
#[derive(Clone)]
pub struct DistillationCache {
    /// `softmax(student / T)`.
    pub student_soft: Tensor,
    /// `softmax(teacher / T)`.
    pub teacher_soft: Tensor,
    /// `softmax(student)` (temperature 1, for the cross-entropy term).
    pub student_probs: Tensor,
}

/// `log softmax(x * scale)` of one row into `out`, max-shifted.
fn log_softmax_scaled(x: &[f32], scale: f32, out: &mut [f32]) {
    let m = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v * scale));
    let sum: f32 = x.iter().map(|&v| (v * scale - m).exp()).sum();
    let log_sum = sum.ln();
    for (o, &v) in out.iter_mut().zip(x) {
        *o = (v * scale - m) - log_sum;
    }
}

/// The distillation loss of one row; writes `softmax(s / T)`, `softmax(t / T)` and `softmax(s)`.
#[allow(clippy::too_many_arguments)]
pub fn distillation_row(
    student: &[f32],
    teacher: &[f32],
    label: usize,
    temperature: f32,
    alpha: f32,
    student_soft: &mut [f32],
    teacher_soft: &mut [f32],
    student_probs: &mut [f32],
) -> f32 {
    // HINT: three max-shifted log-softmaxes (s / T, t / T, s); KL = sum_j p_j (log p_j - log q_j)
    // HINT: skipping p_j == 0 (0 log 0 = 0); cross-entropy = -log r_y; then exponentiate the logs
    // HINT: into the three probability rows for backward.
    // BEGIN SOLUTION
    let inv_t = 1.0 / temperature;
    log_softmax_scaled(student, inv_t, student_soft);
    log_softmax_scaled(teacher, inv_t, teacher_soft);
    log_softmax_scaled(student, 1.0, student_probs);
    let mut kl = 0.0f32;
    for (&log_p, &log_q) in teacher_soft.iter().zip(student_soft.iter()) {
        let p = log_p.exp();
        if p > 0.0 {
            kl += p * (log_p - log_q);
        }
    }
    let cross_entropy = -student_probs[label];
    for v in student_soft
        .iter_mut()
        .chain(teacher_soft.iter_mut())
        .chain(student_probs.iter_mut())
    {
        *v = v.exp();
    }
    alpha * temperature * temperature * kl + (1.0 - alpha) * cross_entropy
    // END SOLUTION
}

/// The gradient of one row's loss w.r.t. the student logits, times `scale`.
#[allow(clippy::too_many_arguments)]
pub fn distillation_backward_row(
    student_soft: &[f32],
    teacher_soft: &[f32],
    student_probs: &[f32],
    label: usize,
    temperature: f32,
    alpha: f32,
    scale: f32,
    grad_row: &mut [f32],
) {
    // HINT: d/ds = alpha * T * (q - p) + (1 - alpha) * (r - onehot(y)), all times scale.
    // BEGIN SOLUTION
    let soft = alpha * temperature;
    let hard = 1.0 - alpha;
    for (j, g) in grad_row.iter_mut().enumerate() {
        let onehot = if j == label { 1.0 } else { 0.0 };
        *g = scale
            * (soft * (student_soft[j] - teacher_soft[j]) + hard * (student_probs[j] - onehot));
    }
    // END SOLUTION
}

/// Check shapes, labels and the two hyper-parameters; return `(N, C)`.
fn validate(
    op: &'static str,
    student: &[usize],
    teacher: &[usize],
    labels: &[usize],
    temperature: f32,
    alpha: f32,
) -> Result<(usize, usize)> {
    if student.len() != 2 {
        return Err(TensorError::invalid(
            op,
            student,
            "student logits must be 2-D (N, C)",
        ));
    }
    if student != teacher {
        return Err(TensorError::mismatch(
            op,
            student,
            teacher,
            "student and teacher logits must have the same shape",
        ));
    }
    let (n, c) = (student[0], student[1]);
    if labels.len() != n {
        return Err(TensorError::mismatch(
            op,
            student,
            &[labels.len()],
            format!("{} labels for {n} rows of logits", labels.len()),
        ));
    }
    if !(temperature > 0.0 && temperature.is_finite()) {
        return Err(TensorError::invalid(
            op,
            student,
            format!("temperature must be finite and > 0, got {temperature}"),
        ));
    }
    if !(0.0..=1.0).contains(&alpha) {
        return Err(TensorError::invalid(
            op,
            student,
            format!("alpha must be in [0, 1], got {alpha}"),
        ));
    }
    for (row, &y) in labels.iter().enumerate() {
        if y >= c {
            return Err(TensorError::invalid(
                op,
                student,
                format!("label {y} in row {row} is out of range for {c} classes"),
            ));
        }
    }
    Ok((n, c))
}

/// Mean distillation loss of `student` logits `(N, C)` against `teacher` logits (same shape) and
/// class `labels` (length `N`). Errors on other shapes, a label out of range, `temperature <= 0`
/// or `alpha` outside `[0, 1]`. A batch of zero rows has loss 0.
pub fn distillation(
    student: &Tensor,
    teacher: &Tensor,
    labels: &[usize],
    temperature: f32,
    alpha: f32,
) -> Result<(f32, DistillationCache)> {
    const OP: &str = "distillation";
    let (n, c) = validate(
        OP,
        student.shape(),
        teacher.shape(),
        labels,
        temperature,
        alpha,
    )?;
    let (ss, ts) = (student.contiguous(), teacher.contiguous());
    let (s, t) = (
        ss.as_slice().expect("contiguous"),
        ts.as_slice().expect("contiguous"),
    );
    let mut student_soft = vec![0.0f32; n * c];
    let mut teacher_soft = vec![0.0f32; n * c];
    let mut student_probs = vec![0.0f32; n * c];
    let mut total = 0.0f64;
    if c > 0 {
        for (r, &label) in labels.iter().enumerate() {
            let row = r * c..(r + 1) * c;
            total += distillation_row(
                &s[row.clone()],
                &t[row.clone()],
                label,
                temperature,
                alpha,
                &mut student_soft[row.clone()],
                &mut teacher_soft[row.clone()],
                &mut student_probs[row],
            ) as f64;
        }
    }
    let loss = if n == 0 {
        0.0
    } else {
        (total / n as f64) as f32
    };
    let cache = DistillationCache {
        student_soft: Tensor::from_vec(student_soft, &[n, c])?,
        teacher_soft: Tensor::from_vec(teacher_soft, &[n, c])?,
        student_probs: Tensor::from_vec(student_probs, &[n, c])?,
    };
    Ok((loss, cache))
}

/// Gradient of the mean loss w.r.t. the student logits, scaled by the upstream `grad_loss`;
/// shape `(N, C)`.
pub fn distillation_backward(
    cache: &DistillationCache,
    labels: &[usize],
    temperature: f32,
    alpha: f32,
    grad_loss: f32,
) -> Result<Tensor> {
    const OP: &str = "distillation_backward";
    let shape = cache.student_soft.shape();
    let (n, c) = validate(
        OP,
        shape,
        cache.teacher_soft.shape(),
        labels,
        temperature,
        alpha,
    )?;
    let mut grad = vec![0.0f32; n * c];
    if n > 0 && c > 0 {
        let (q, p, r) = (
            cache.student_soft.contiguous(),
            cache.teacher_soft.contiguous(),
            cache.student_probs.contiguous(),
        );
        let (q, p, r) = (
            q.as_slice().expect("contiguous"),
            p.as_slice().expect("contiguous"),
            r.as_slice().expect("contiguous"),
        );
        let scale = grad_loss / n as f32;
        for (row, (g, &label)) in grad.chunks_mut(c).zip(labels).enumerate() {
            let span = row * c..(row + 1) * c;
            distillation_backward_row(
                &q[span.clone()],
                &p[span.clone()],
                &r[span],
                label,
                temperature,
                alpha,
                scale,
                g,
            );
        }
    }
    Tensor::from_vec(grad, &[n, c])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loss of one row in f64 straight from the definition (softmax, then log).
    fn reference_row(s: &[f64], t: &[f64], y: usize, temp: f64, alpha: f64) -> f64 {
        let softmax = |x: &[f64], scale: f64| {
            let e: Vec<f64> = x.iter().map(|v| (v * scale).exp()).collect();
            let z: f64 = e.iter().sum();
            e.into_iter().map(|v| v / z).collect::<Vec<f64>>()
        };
        let (q, p, r) = (
            softmax(s, 1.0 / temp),
            softmax(t, 1.0 / temp),
            softmax(s, 1.0),
        );
        let kl: f64 = p.iter().zip(&q).map(|(p, q)| p * (p / q).ln()).sum();
        alpha * temp * temp * kl - (1.0 - alpha) * r[y].ln()
    }

    /// The fused distillation loss equals its f64 definition (alpha * T^2 * KL(teacher || student
    /// at temperature T) + (1 - alpha) * cross-entropy) for several T and alpha.
    #[test]
    fn matches_the_definition_in_f64() {
        let s = [0.5f32, -1.0, 2.0, 0.1, 1.5, -0.3];
        let t = [1.0f32, 0.0, 3.0, -2.0, 0.5, 0.25];
        let labels = [2, 0];
        for (temp, alpha) in [(1.0, 0.5), (4.0, 0.9), (2.0, 0.0), (0.5, 1.0)] {
            let st = Tensor::from_vec(s.to_vec(), &[2, 3]).unwrap();
            let tt = Tensor::from_vec(t.to_vec(), &[2, 3]).unwrap();
            let (loss, _) = distillation(&st, &tt, &labels, temp, alpha).unwrap();
            let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
            let expect = (reference_row(&f(&s[..3]), &f(&t[..3]), 2, temp as f64, alpha as f64)
                + reference_row(&f(&s[3..]), &f(&t[3..]), 0, temp as f64, alpha as f64))
                / 2.0;
            assert!(
                (loss as f64 - expect).abs() < 1e-5,
                "T={temp} alpha={alpha}: {loss} vs {expect}"
            );
        }
    }

    /// Logits of 1e4 keep the distillation loss and gradient finite, and teacher probabilities that
    /// underflow to 0 add nothing to the KL term.
    #[test]
    fn huge_logits_stay_finite_and_underflowed_teacher_probs_add_nothing() {
        // The teacher's second class has probability e^-2e4: 0 in f32.
        let s = Tensor::from_vec(vec![1e4, -1e4, 0.0], &[1, 3]).unwrap();
        let t = Tensor::from_vec(vec![1e4, -1e4, 1e4], &[1, 3]).unwrap();
        let (loss, cache) = distillation(&s, &t, &[0], 1.0, 0.5).unwrap();
        assert!(loss.is_finite(), "{loss}");
        let g = distillation_backward(&cache, &[0], 1.0, 0.5, 1.0).unwrap();
        assert!(g.all_finite());
        // KL(p || q) with p = (1/2, 0, 1/2), q = (1, 0, 0 (e^-1e4)): the third term is huge but
        // finite in log space: 0.5 * (ln 0.5 - (-1e4)).
        let expect = 0.5 * (0.5 * (0.5f32.ln() - 0.0) + 0.5 * (0.5f32.ln() + 1e4));
        assert!((loss - expect).abs() / expect < 1e-4, "{loss} vs {expect}");
    }
}
