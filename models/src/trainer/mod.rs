//! The training loop: one [`Trainer`] for classifiers and language models alike.
//!
//! What changes between an MLP on MNIST and a GPT on Shakespeare is where batches come from,
//! how the loss is computed and what "evaluation" means. That part is a [`TrainTask`]:
//! [`Classification`] (a `Module` + `DataLoader`s + cross-entropy, metric: accuracy) and
//! [`LanguageModel`] (a `Module` + `LmBatcher`s + a loss closure, metric: perplexity) are
//! provided; anything else implements the trait's handful of methods.
//!
//! The trainer owns the rest: the optimizer and learning-rate schedule, gradient clipping,
//! evaluation every N steps, an indicatif progress bar (loss, lr, samples or tokens per second;
//! hidden when stderr is not a terminal or [`TrainerConfig::quiet`]), a [`History`] written as
//! CSV and JSON, a NaN/Inf loss stopping the run with [`ModelError::NonFiniteLoss`] naming the
//! step (and, by re-running that step in anomaly mode, the op), and checkpoints from which
//! [`Trainer::resume`] continues bit-identically.
//!
//! ```ignore
//! let model = Mlp::new(MlpConfig::new(&[784, 128, 64, 10]))?;
//! let opt = Adam::new(model.named_parameters(), AdamConfig { lr: 1e-3, ..Default::default() })?;
//! let mut task = Classification::new(model, train_loader).with_val(test_loader);
//! let mut trainer = Trainer::new(TrainerConfig::epochs(3).history("runs/mlp"), opt);
//! let report = trainer.fit(&mut task)?;
//! ```
//!
//! # Checkpoints
//!
//! One safetensors file, written and read by [`crate::checkpoint`] like every checkpoint of the
//! project (atomic write, dtype conversion, metadata): the model's state dict as `model/<name>` tensors, the optimizer's
//! buffers as `optimizer/<buffer>` tensors, and in the metadata the optimizer's JSON header
//! (with exact bits of every float), the trainer's step and history, and the task's data
//! position (epoch and batch, or how many LM batches were drawn). Model randomness lives in
//! buffers (dropout draw counts, see [`crate::mlp::SeededDropout`]) and the learning-rate
//! schedule is a function of the step, so restoring these is everything a run needs to continue
//! as if it had never stopped.

mod checkpoint;
mod classification;
mod config;
mod fit;
mod history;
mod language_model;
mod task;

pub use classification::Classification;
pub use config::{Budget, TrainerConfig};
pub use fit::{Control, FitReport, StepEvent, StepStats, Trainer};
pub use history::{History, Record, HISTORY_COLUMNS};
pub use language_model::LanguageModel;
pub use task::{count_correct, EvalResult, TaskBatch, TrainTask};
