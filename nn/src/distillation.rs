//! Knowledge distillation (Hinton, Vinyals, Dean, 2015): train a small *student* to match a big
//! *teacher*'s softened output distribution as well as the true labels.
//!
//! ```text
//! loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))
//!      + (1 - alpha) * cross_entropy(student, labels)          (mean over the batch)
//! ```
//!
//! A temperature `T > 1` flattens both distributions so the student also learns the teacher's
//! "dark knowledge" (which wrong classes look alike); `T^2` keeps that term's gradient at the
//! same scale for any `T`. `alpha` mixes soft and hard targets (`alpha = 0` is plain
//! cross-entropy). The loss is one fused, max-shifted op with a hand-written backward
//! (`Variable::distillation_loss`); the teacher's logits are a `Tensor`, a constant computed
//! under `no_grad`, so only the student is trained.

use autograd::Variable;
use tensor::Tensor;

use crate::error::{NnError, Result};

/// Mean distillation loss of `student` logits `(N, C)` against the `teacher`'s logits (same
/// shape) and class `labels`, at `temperature > 0` with soft-target weight `alpha` in `[0, 1]`.
pub fn distillation_loss(
    student: &Variable,
    teacher: &Tensor,
    labels: &[usize],
    temperature: f32,
    alpha: f32,
) -> Result<Variable> {
    if student.shape() != teacher.shape() {
        return Err(NnError::Invalid {
            op: "DistillationLoss",
            reason: format!(
                "student logits shape {:?} and teacher logits shape {:?} must be equal",
                student.shape(),
                teacher.shape()
            ),
        });
    }
    Ok(student.distillation_loss(teacher, labels, temperature, alpha)?)
}

/// The distillation loss as a configured object: `DistillationLoss::new(4.0, 0.9)?`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DistillationLoss {
    /// Softening temperature `T > 0` (common values 2 to 8).
    pub temperature: f32,
    /// Weight of the soft (teacher) term in `[0, 1]`; `1 - alpha` weighs the label term.
    pub alpha: f32,
}

impl DistillationLoss {
    /// Errors for `temperature <= 0` (or not finite) and `alpha` outside `[0, 1]`.
    pub fn new(temperature: f32, alpha: f32) -> Result<DistillationLoss> {
        if !(temperature > 0.0 && temperature.is_finite()) {
            return Err(NnError::Invalid {
                op: "DistillationLoss",
                reason: format!("temperature must be finite and > 0, got {temperature}"),
            });
        }
        if !(0.0..=1.0).contains(&alpha) {
            return Err(NnError::Invalid {
                op: "DistillationLoss",
                reason: format!("alpha must be in [0, 1], got {alpha}"),
            });
        }
        Ok(DistillationLoss { temperature, alpha })
    }

    /// The loss of `student` logits against `teacher` logits and `labels`.
    pub fn forward(
        &self,
        student: &Variable,
        teacher: &Tensor,
        labels: &[usize],
    ) -> Result<Variable> {
        distillation_loss(student, teacher, labels, self.temperature, self.alpha)
    }
}
