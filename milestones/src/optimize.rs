//! The optimization pipeline of `mlperf-2018`: from a trained image classifier to smaller and
//! faster ones. Each step is a library call of `models::compress`, `models::quantize`, `optim`
//! and `nn`; this module strings them together with the data and a short fine-tuning run.
//!
//! - [`prune_and_fine_tune`]: unstructured magnitude pruning (global), then fine-tuning with the
//!   masks held by `optim::Masked`, so pruned weights stay exactly zero;
//! - [`shrink_and_fine_tune`]: structured pruning of hidden neurons (the layers really shrink),
//!   then fine-tuning;
//! - [`distill`]: a small student trained on a teacher's softened outputs plus the labels.
//!
//! Quantization needs no data: `Mlp::quantized()` converts a trained model as it is.

use autograd::{no_grad, Variable};
use models::compress::{magnitude_prune_global, prune_neurons, sparsity};
use models::mlp::{Mlp, MlpConfig};
use nn::{distillation_loss, Module};
use optim::schedule::CosineAnnealing;
use optim::{LrSchedule, Masked, Optimizer};

use crate::progress::bar;
use crate::vision::{adam_for, fit_classifier_with, FitSettings, ImageData};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// A copy of `mlp` with the same configuration and weights.
pub fn copy_mlp(mlp: &Mlp) -> BoxResult<Mlp> {
    let copy = Mlp::new(mlp.config().clone())?;
    copy.load_state_dict(&mlp.state_dict())?;
    Ok(copy)
}

/// Zero the `fraction` of `mlp`'s weights with the smallest magnitudes (one threshold across all
/// layers), then fine-tune with the masks enforced by the optimizer. Returns the pruned model
/// (in eval mode) and its measured weight sparsity.
pub fn prune_and_fine_tune(
    mlp: &Mlp,
    fraction: f32,
    data: &ImageData,
    settings: &FitSettings,
) -> BoxResult<(Mlp, f32)> {
    let model = copy_mlp(mlp)?;
    let masks = magnitude_prune_global(&model, fraction)?;
    masks.apply(&model)?;
    let optimizer = Masked::new(adam_for(&model, settings.lr)?, masks)?;
    let (mut tuned, _) = fit_classifier_with(model, data, settings, optimizer)?;
    tuned.eval();
    let zeros = sparsity(&tuned).global().unwrap_or(0.0);
    Ok((tuned, zeros))
}

/// Keep the `keep_fraction` of each hidden layer's neurons with the largest L2 norms (the layers
/// and the next layer's inputs really shrink), then fine-tune. Returns the smaller model.
pub fn shrink_and_fine_tune(
    mlp: &Mlp,
    keep_fraction: f32,
    data: &ImageData,
    settings: &FitSettings,
) -> BoxResult<Mlp> {
    let small = prune_neurons(mlp, keep_fraction)?;
    let optimizer = adam_for(&small, settings.lr)?;
    let (mut tuned, _) = fit_classifier_with(small, data, settings, optimizer)?;
    tuned.eval();
    Ok(tuned)
}

/// How a student learns from its teacher.
#[derive(Clone, Copy, Debug)]
pub struct DistillSettings {
    /// Softening temperature `T` (> 0).
    pub temperature: f32,
    /// Weight of the soft targets; `1 - alpha` goes to the labels.
    pub alpha: f32,
}

/// Train a student MLP with the `sizes` given (input first) on `teacher`'s softened outputs and
/// the labels: Adam with cosine annealing, the teacher run under `no_grad`. `teacher_flat` says
/// whether the teacher reads flat vectors (an MLP) or `(C, H, W)` images (a CNN).
pub fn distill(
    teacher: &dyn Module,
    teacher_flat: bool,
    sizes: &[usize],
    data: &ImageData,
    settings: &FitSettings,
    kd: DistillSettings,
) -> BoxResult<Mlp> {
    let mut student = Mlp::new(MlpConfig::new(sizes).seed(settings.seed))?;
    let mut optimizer = adam_for(&student, settings.lr)?;
    let loader = data
        .loader(&data.train, settings.batch_size, true)?
        .shuffle(settings.seed);
    let batches = data.train.len().div_ceil(settings.batch_size);
    let steps = settings.epochs * batches;
    let schedule = CosineAnnealing::new(settings.lr, steps as u64, 0.0)?;
    let [c, h, w] = data.train.image_shape();
    let progress = bar(steps as u64, "distill");
    let mut step = 0u64;
    for epoch in 0..settings.epochs {
        for batch in loader.epoch(epoch) {
            let batch = batch?;
            let labels = batch.classes()?;
            let x = Variable::constant(batch.inputs.clone());
            let teacher_input = if teacher_flat {
                x.clone()
            } else {
                let n = batch.inputs.shape()[0];
                Variable::constant(batch.inputs.reshape_to(&[n, c, h, w])?)
            };
            let teacher_logits = no_grad(|| teacher.forward(&teacher_input))?.value();
            let logits = student.forward(&x)?;
            let loss =
                distillation_loss(&logits, &teacher_logits, labels, kd.temperature, kd.alpha)?;
            let value = loss.item()?;
            if !value.is_finite() {
                return Err(
                    format!("distillation stopped at step {step}: the loss is {value}").into(),
                );
            }
            optimizer.set_lr(schedule.lr_at(step));
            optimizer.zero_grad();
            loss.backward()?;
            optimizer.step()?;
            step += 1;
            progress.set_message(format!("loss {value:.3}"));
            progress.inc(1);
        }
    }
    progress.finish_and_clear();
    student.eval();
    Ok(student)
}
