//! The fused knowledge-distillation loss as one graph node: `alpha * T^2 * KL(softmax(t / T) ||
//! softmax(s / T)) + (1 - alpha) * cross_entropy(s, labels)`, mean over rows, with the forward
//! and backward kernels of `tensor::distillation`. The teacher's logits are a constant: they are
//! passed as a `Tensor`, not a `Variable`, so only the student can receive a gradient and the
//! teacher cannot be trained by accident.

use tensor::distillation::{distillation, distillation_backward, DistillationCache};
use tensor::Tensor;

use super::record;
use crate::error::{AutogradError, Result};
use crate::variable::{GradFn, Variable};

/// d mean distillation loss w.r.t. the student logits:
/// `(alpha * T * (softmax(s / T) - softmax(t / T)) + (1 - alpha) * (softmax(s) - onehot)) / N`.
pub struct DistillationBackward {
    student: Variable,
    labels: Vec<usize>,
    temperature: f32,
    alpha: f32,
    cache: DistillationCache,
}

impl GradFn for DistillationBackward {
    fn name(&self) -> &'static str {
        "DistillationBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.student.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let d = distillation_backward(
            &self.cache,
            &self.labels,
            self.temperature,
            self.alpha,
            g.item()?,
        )?;
        Ok(vec![Some(d)])
    }
}

impl Variable {
    /// Mean knowledge-distillation loss of these student logits `(N, C)` against the teacher's
    /// logits (same shape, a constant: compute them under `no_grad`) and class `labels`.
    /// Errors on other shapes, a label out of range, `temperature <= 0` or `alpha` outside
    /// `[0, 1]`.
    pub fn distillation_loss(
        &self,
        teacher: &Tensor,
        labels: &[usize],
        temperature: f32,
        alpha: f32,
    ) -> Result<Variable> {
        if self.ndim() != 2 {
            return Err(AutogradError::Invalid {
                op: "distillation",
                reason: format!(
                    "student logits must be (N, C), got shape {:?} (teacher shape {:?})",
                    self.shape(),
                    teacher.shape()
                ),
            });
        }
        let (loss, cache) = distillation(&self.value(), teacher, labels, temperature, alpha)?;
        let grad_fn = DistillationBackward {
            student: self.clone(),
            labels: labels.to_vec(),
            temperature,
            alpha,
            cache,
        };
        record(Tensor::scalar(loss), &[self], grad_fn)
    }
}
