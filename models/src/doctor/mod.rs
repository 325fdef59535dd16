//! The training doctor: seven checks that tell why a model does not learn, and an LR range test.
//!
//! A model that does not learn rarely says why: a detached layer, targets that are not shifted,
//! a loss computed outside the graph and a loader that never shuffles all look the same from
//! the loss curve. The doctor runs the seven checks the course relied on, each bounded in steps
//! and seconds, and reports each as pass or fail with its numbers:
//!
//! 1. **data alignment**: for language-model data every target is the next input; for labelled
//!    data one finite target per sample and more than one class;
//! 2. **loss finite and attached**: one finite number that requires grad and has a `grad_fn`;
//! 3. **gradient flow**: every parameter receives a non-zero, finite gradient (failures named);
//! 4. **parameters update**: every parameter changes after one optimizer step (failures named);
//! 5. **single-batch overfit**: on one repeated batch the loss falls by half within a bounded
//!    number of steps (a model that cannot memorise one batch cannot learn the data set);
//! 6. **multi-batch decrease**: over many batches the mean loss of the last steps is below the
//!    mean of the first ones;
//! 7. **loader integration**: batch shapes agree, targets match the batch size, no sample repeats
//!    within an epoch, and the order changes between epochs (shuffling is on).
//!
//! Plus a learning-rate range test ([`lr_range_test`]): the learning rate grows exponentially
//! step by step on a fresh copy; the suggested rate is the one at the minimum of the smoothed
//! loss divided by 10 (a rate well below the one where the loss is lowest while still rising:
//! that one is already at the edge of divergence).
//!
//! The doctor works on what the trainer trains: any [`TrainTask`](crate::trainer::TrainTask)
//! (a [`Classification`](crate::trainer::Classification), a
//! [`LanguageModel`](crate::trainer::LanguageModel) or a task of your own). It needs no more than
//! the trainer does: named parameters, the next batch, the loss on the current batch, and a look
//! at that batch for the data checks. The task is built by a closure, so every check that
//! trains starts from a fresh copy and the caller's model is never touched, and so is the
//! optimizer (from the parameters, as `optim` builds them).
//!
//! ```
//! use autograd::Variable;
//! use data::{DataLoader, TensorDataset, Targets};
//! use models::doctor::{diagnose, DoctorConfig};
//! use models::trainer::Classification;
//! use nn::{activation::ReLU, linear::Linear, sequential::Sequential};
//! use optim::{Optimizer, Sgd, SgdConfig};
//! use tensor::{Tensor, TensorRng};
//!
//! // Two well separated blobs.
//! let mut rng = TensorRng::new(0);
//! let x = rng.normal(&[64, 2], 0.0, 0.5).unwrap();
//! let labels: Vec<usize> = (0..64).map(|i| i % 2).collect();
//! let shift: Vec<f32> = labels.iter().flat_map(|&c| [c as f32 * 4.0 - 2.0; 2]).collect();
//! let x = x.add(&Tensor::from_vec(shift, &[64, 2]).unwrap()).unwrap();
//! let ds = TensorDataset::new(x, Targets::Classes(labels)).unwrap();
//! let loader = DataLoader::new(ds, 16).unwrap().shuffle(1);
//!
//! // The same task the trainer would fit, built fresh for each check.
//! let build = || {
//!     let mut rng = TensorRng::new(7);
//!     let model = Sequential::new()
//!         .add(Linear::new(2, 8, true, &mut rng))
//!         .add(ReLU)
//!         .add(Linear::new(8, 2, true, &mut rng));
//!     Ok(Classification::new(model, loader.clone()))
//! };
//! let sgd = |p: Vec<(String, Variable)>| -> optim::Result<Box<dyn Optimizer>> {
//!     Ok(Box::new(Sgd::new(p, SgdConfig { lr: 0.1, ..Default::default() })?))
//! };
//! let report = diagnose(build, sgd, &DoctorConfig::default()).unwrap();
//! println!("{}", report.table());
//! assert!(report.all_passed());
//! ```

mod batches;
mod checks;
mod diagnose;
mod lr_range;
mod report;

pub use batches::epoch_batches;
pub use checks::{
    check_data_alignment, check_gradient_flow, check_loader, check_loss_attached,
    check_multi_batch_decrease, check_overfit_single_batch, check_parameters_update, train_step,
    CHECK_NAMES, DATA_ALIGNMENT, GRADIENT_FLOW, LOADER_INTEGRATION, LOSS_ATTACHED,
    MULTI_BATCH_DECREASE, PARAMETERS_UPDATE, SINGLE_BATCH_OVERFIT,
};
pub use diagnose::{diagnose, OptimizerFactory};
pub use lr_range::{lr_range_test, LrRangeConfig, LrRangeResult};
pub use report::{CheckResult, DoctorConfig, DoctorReport};
