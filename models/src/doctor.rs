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
//! The doctor works on any model through two small traits: [`DoctorSubject`] (named parameters
//! and a loss on a batch; [`ModuleSubject`] adapts any `nn::Module` with the standard losses) and
//! [`DoctorData`] (the batches of an epoch; implemented for `data::DataLoader` and, through
//! [`LmData`], for `data::LmBatcher`). The model is built by a closure, so every check that trains
//! starts from a fresh copy and the caller's model is never touched, and so is the optimizer
//! (from the parameters, as `optim` builds them).
//!
//! ```
//! use autograd::Variable;
//! use data::{DataLoader, TensorDataset, Targets};
//! use models::doctor::{diagnose, DoctorConfig, ModuleSubject};
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
//! let build = || {
//!     let mut rng = TensorRng::new(7);
//!     Ok(ModuleSubject::new(
//!         Sequential::new()
//!             .add(Linear::new(2, 8, true, &mut rng))
//!             .add(ReLU)
//!             .add(Linear::new(8, 2, true, &mut rng)),
//!     ))
//! };
//! let sgd = |p: Vec<(String, Variable)>| -> optim::Result<Box<dyn Optimizer>> {
//!     Ok(Box::new(Sgd::new(p, SgdConfig { lr: 0.1, ..Default::default() })?))
//! };
//! let report = diagnose(build, sgd, &loader, &DoctorConfig::default()).unwrap();
//! println!("{}", report.table());
//! assert!(report.all_passed());
//! ```

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write;
use std::time::{Duration, Instant};

use autograd::Variable;
use data::{Batch, DataLoader, LmBatch, LmBatcher, Targets};
use nn::loss::{cross_entropy, mse_loss, Reduction};
use nn::Module;
use optim::Optimizer;

use crate::error::{ModelError, Result};

/// Check 1's name.
pub const DATA_ALIGNMENT: &str = "data alignment";
/// Check 2's name.
pub const LOSS_ATTACHED: &str = "loss finite and attached";
/// Check 3's name.
pub const GRADIENT_FLOW: &str = "gradient flow";
/// Check 4's name.
pub const PARAMETERS_UPDATE: &str = "parameters update";
/// Check 5's name.
pub const SINGLE_BATCH_OVERFIT: &str = "single-batch overfit";
/// Check 6's name.
pub const MULTI_BATCH_DECREASE: &str = "multi-batch decrease";
/// Check 7's name.
pub const LOADER_INTEGRATION: &str = "loader integration";

/// The seven checks in the order the doctor runs them.
pub const CHECK_NAMES: [&str; 7] = [
    DATA_ALIGNMENT,
    LOSS_ATTACHED,
    GRADIENT_FLOW,
    PARAMETERS_UPDATE,
    SINGLE_BATCH_OVERFIT,
    MULTI_BATCH_DECREASE,
    LOADER_INTEGRATION,
];

// ----- data -----

/// One batch as the doctor sees it: labelled samples or language-model windows.
#[derive(Clone, Debug)]
pub enum DoctorBatch {
    /// Samples with class or value targets (what a `DataLoader` yields).
    Supervised(Batch),
    /// Windows of token ids with their next-token targets (what an `LmBatcher` yields).
    Lm(LmBatch),
}

impl DoctorBatch {
    /// The number of rows (samples or windows).
    pub fn len(&self) -> usize {
        match self {
            DoctorBatch::Supervised(b) => b.inputs.shape().first().copied().unwrap_or(0),
            DoctorBatch::Lm(b) => b.batch_size,
        }
    }

    /// Whether the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of the inputs (`[B, ...]` or `[B, T]`).
    pub fn input_shape(&self) -> Vec<usize> {
        match self {
            DoctorBatch::Supervised(b) => b.inputs.shape().to_vec(),
            DoctorBatch::Lm(b) => vec![b.batch_size, b.block_size],
        }
    }

    /// The number of targets (one per sample, or one per token).
    pub fn targets_len(&self) -> usize {
        match self {
            DoctorBatch::Supervised(b) => b.targets.len(),
            DoctorBatch::Lm(b) => b.targets.len(),
        }
    }

    /// Whether two batches hold the same samples in the same order (dataset indices for labelled
    /// data, token ids for windows).
    fn same_samples(&self, other: &DoctorBatch) -> bool {
        match (self, other) {
            (DoctorBatch::Supervised(a), DoctorBatch::Supervised(b)) => a.indices == b.indices,
            (DoctorBatch::Lm(a), DoctorBatch::Lm(b)) => a.inputs == b.inputs,
            _ => false,
        }
    }
}

/// A source of training batches, epoch by epoch.
pub trait DoctorData {
    /// Up to `max_batches` batches of `epoch`, in the order training would see them.
    fn epoch(&self, epoch: usize, max_batches: usize) -> Result<Vec<DoctorBatch>>;
}

impl DoctorData for DataLoader {
    fn epoch(&self, epoch: usize, max_batches: usize) -> Result<Vec<DoctorBatch>> {
        DataLoader::epoch(self, epoch)
            .take(max_batches)
            .map(|b| Ok(DoctorBatch::Supervised(b?)))
            .collect()
    }
}

/// Random language-model windows as epochs: epoch `e` is the `e`-th run of `batches_per_epoch`
/// batches drawn by the batcher (so epochs differ, and the same epoch is the same every time).
#[derive(Clone, Debug)]
pub struct LmData {
    batcher: LmBatcher,
    batches_per_epoch: usize,
}

impl LmData {
    /// Epochs of `batches_per_epoch` random batches from `batcher` (its current generator state
    /// is the start of epoch 0).
    pub fn new(batcher: LmBatcher, batches_per_epoch: usize) -> Result<LmData> {
        if batches_per_epoch == 0 {
            return Err(ModelError::Invalid {
                op: "LmData::new",
                reason: "batches_per_epoch must be at least 1".into(),
            });
        }
        Ok(LmData {
            batcher,
            batches_per_epoch,
        })
    }
}

impl DoctorData for LmData {
    fn epoch(&self, epoch: usize, max_batches: usize) -> Result<Vec<DoctorBatch>> {
        let mut batcher = self.batcher.clone();
        for _ in 0..epoch * self.batches_per_epoch {
            batcher.sample();
        }
        Ok((0..self.batches_per_epoch.min(max_batches))
            .map(|_| DoctorBatch::Lm(batcher.sample()))
            .collect())
    }
}

// ----- the model -----

/// What the doctor needs from a model: its parameters and a loss on a batch.
pub trait DoctorSubject {
    /// Trainable parameters with dotted names (as `Module::named_parameters`).
    fn named_parameters(&self) -> Vec<(String, Variable)>;

    /// The scalar training loss on `batch`, attached to the graph.
    fn loss(&mut self, batch: &DoctorBatch) -> Result<Variable>;
}

/// Any `nn::Module` with the standard losses of [`standard_loss`], in training mode.
pub struct ModuleSubject<M: Module> {
    /// The model.
    pub model: M,
}

impl<M: Module> ModuleSubject<M> {
    /// Wrap `model`, switched to training mode.
    pub fn new(mut model: M) -> ModuleSubject<M> {
        model.train();
        ModuleSubject { model }
    }
}

impl<M: Module> DoctorSubject for ModuleSubject<M> {
    fn named_parameters(&self) -> Vec<(String, Variable)> {
        self.model.named_parameters()
    }

    fn loss(&mut self, batch: &DoctorBatch) -> Result<Variable> {
        standard_loss(&self.model, batch)
    }
}

/// The usual loss for each kind of batch: cross-entropy of `(N, C)` outputs against class
/// targets, mean squared error against value targets, and for language-model windows
/// cross-entropy of `(B, T, V)` logits (the model gets the ids as an `f32` tensor `[B, T]`)
/// against the next-token targets.
pub fn standard_loss(model: &dyn Module, batch: &DoctorBatch) -> Result<Variable> {
    match batch {
        DoctorBatch::Supervised(b) => {
            let out = model.forward(&Variable::constant(b.inputs.clone()))?;
            match &b.targets {
                Targets::Classes(c) => Ok(cross_entropy(&out, c, None, 0.0, Reduction::Mean)?),
                Targets::Values(v) => Ok(mse_loss(
                    &out,
                    &Variable::constant(v.clone()),
                    Reduction::Mean,
                )?),
            }
        }
        DoctorBatch::Lm(b) => {
            let logits = model.forward(&Variable::constant(b.inputs_tensor()?))?;
            Ok(cross_entropy(
                &logits,
                &b.targets,
                None,
                0.0,
                Reduction::Mean,
            )?)
        }
    }
}

/// Builds an optimizer over named parameters (how `optim`'s constructors take them).
pub type OptimizerFactory<'a> =
    dyn Fn(Vec<(String, Variable)>) -> optim::Result<Box<dyn Optimizer>> + 'a;

// ----- configuration and report -----

/// The bounds of the doctor's checks.
#[derive(Clone, Debug, PartialEq)]
pub struct DoctorConfig {
    /// Batches fetched per epoch for the data, loader and multi-batch checks.
    pub max_batches: usize,
    /// Step limit of the single-batch overfit check.
    pub overfit_steps: usize,
    /// The fraction by which the single-batch loss must fall (0.5: to half its first value).
    pub overfit_drop: f64,
    /// Steps of the multi-batch check.
    pub multi_batch_steps: usize,
    /// Steps averaged at each end of the multi-batch run.
    pub multi_batch_window: usize,
    /// The fraction by which the mean loss of the last window must be below the first's.
    pub multi_batch_drop: f64,
    /// Wall-clock limit of each training check (it stops early and says so).
    pub check_seconds: f64,
    /// The learning-rate range test (`None` skips it).
    pub lr_range: Option<LrRangeConfig>,
}

impl Default for DoctorConfig {
    fn default() -> DoctorConfig {
        DoctorConfig {
            max_batches: 16,
            overfit_steps: 100,
            overfit_drop: 0.5,
            multi_batch_steps: 60,
            multi_batch_window: 10,
            multi_batch_drop: 0.05,
            check_seconds: 30.0,
            lr_range: Some(LrRangeConfig::default()),
        }
    }
}

impl DoctorConfig {
    fn validate(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(ModelError::Invalid {
                op: "DoctorConfig",
                reason,
            })
        };
        if self.max_batches == 0 || self.overfit_steps == 0 {
            return bad(format!(
                "max_batches ({}) and overfit_steps ({}) must be at least 1",
                self.max_batches, self.overfit_steps
            ));
        }
        if self.multi_batch_window == 0 || self.multi_batch_steps < 2 * self.multi_batch_window {
            return bad(format!(
                "multi_batch_steps ({}) must hold two windows of multi_batch_window ({}) >= 1 steps",
                self.multi_batch_steps, self.multi_batch_window
            ));
        }
        if !(0.0..1.0).contains(&self.overfit_drop) || !(0.0..1.0).contains(&self.multi_batch_drop)
        {
            return bad(format!(
                "overfit_drop ({}) and multi_batch_drop ({}) must be in [0, 1)",
                self.overfit_drop, self.multi_batch_drop
            ));
        }
        if self.check_seconds.is_nan() || self.check_seconds <= 0.0 {
            return bad(format!(
                "check_seconds must be > 0, got {}",
                self.check_seconds
            ));
        }
        if let Some(lr) = &self.lr_range {
            lr.validate()?;
        }
        Ok(())
    }

    fn budget(&self) -> Duration {
        Duration::from_secs_f64(self.check_seconds)
    }
}

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckResult {
    /// The check's name (one of [`CHECK_NAMES`]).
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// What was measured, with the numbers (and on failure, the likely cause).
    pub detail: String,
    /// What the check blames: parameter names for checks 3 and 4, empty otherwise.
    pub failing: Vec<String>,
}

impl CheckResult {
    fn pass(name: &str, detail: String) -> CheckResult {
        CheckResult {
            name: name.to_string(),
            passed: true,
            detail,
            failing: Vec::new(),
        }
    }

    fn fail(name: &str, detail: String) -> CheckResult {
        CheckResult {
            name: name.to_string(),
            passed: false,
            detail,
            failing: Vec::new(),
        }
    }
}

/// All checks, the LR range test and how long the doctor took.
#[derive(Clone, Debug)]
pub struct DoctorReport {
    /// The seven checks, in [`CHECK_NAMES`] order.
    pub checks: Vec<CheckResult>,
    /// The LR range test's suggestion, if it ran and found one.
    pub suggested_lr: Option<f64>,
    /// The whole LR range test, if it ran.
    pub lr_range: Option<LrRangeResult>,
    /// Wall-clock seconds of the whole diagnosis.
    pub seconds: f64,
}

impl DoctorReport {
    /// Whether every check passed.
    pub fn all_passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The check called `name`.
    pub fn check(&self, name: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The checks that failed.
    pub fn failed(&self) -> Vec<&CheckResult> {
        self.checks.iter().filter(|c| !c.passed).collect()
    }

    /// A plain-text table: one row per check, then the LR range test and a summary line.
    pub fn table(&self) -> String {
        let width = self
            .checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = String::new();
        let _ = writeln!(out, " #  {:<width$}  result  detail", "check");
        let _ = writeln!(out, "{}", "-".repeat(width + 24));
        for (i, c) in self.checks.iter().enumerate() {
            let verdict = if c.passed { "PASS" } else { "FAIL" };
            let _ = writeln!(
                out,
                "{:>2}  {:<width$}  {verdict:<6}  {}",
                i + 1,
                c.name,
                c.detail
            );
        }
        match &self.lr_range {
            Some(lr) => {
                let _ = writeln!(out, "LR range test: {}", lr.summary());
            }
            None => {
                let _ = writeln!(out, "LR range test: not run");
            }
        }
        let passed = self.checks.iter().filter(|c| c.passed).count();
        let _ = writeln!(
            out,
            "{passed}/{} checks passed in {:.2} s",
            self.checks.len(),
            self.seconds
        );
        out
    }
}

// ----- the doctor -----

/// Run the seven checks and the LR range test.
///
/// `build` makes a fresh model (with its loss) each time a check needs one: checks 2-4 share
/// one copy, checks 5 and 6 and the LR range test each get their own. `optimizer` builds the
/// optimizer (with the learning rate to diagnose) from the parameters; the doctor lets it skip
/// parameters without a gradient, so one broken layer shows in checks 3 and 4 rather than
/// stopping every training check. Only a bad `config` is an error: a failing model, loss or
/// data source is a failed check with the error in its detail.
pub fn diagnose<S, B, O>(
    build: B,
    optimizer: O,
    data: &dyn DoctorData,
    config: &DoctorConfig,
) -> Result<DoctorReport>
where
    S: DoctorSubject,
    B: Fn() -> Result<S>,
    O: Fn(Vec<(String, Variable)>) -> optim::Result<Box<dyn Optimizer>>,
{
    config.validate()?;
    let start = Instant::now();
    let mut checks = Vec::with_capacity(CHECK_NAMES.len());

    let epoch0 = data.epoch(0, config.max_batches);
    let epoch1 = data.epoch(1, config.max_batches);
    checks.push(match &epoch0 {
        Ok(batches) => check_data_alignment(batches),
        Err(e) => CheckResult::fail(DATA_ALIGNMENT, format!("the data source failed: {e}")),
    });
    let batches: Vec<DoctorBatch> = epoch0.as_ref().map(|b| b.clone()).unwrap_or_default();
    let mut training_batches = batches.clone();
    if let Ok(more) = &epoch1 {
        training_batches.extend(more.iter().cloned());
    }

    let mut lr_range = None;
    match batches.first() {
        None => {
            for name in &CHECK_NAMES[1..6] {
                checks.push(CheckResult::fail(
                    name,
                    "skipped: the data source yielded no batch".into(),
                ));
            }
        }
        Some(first) => {
            // 2-4: one fresh copy, one batch, one step.
            match fresh(&build, &optimizer, false) {
                Ok((mut subject, mut opt)) => {
                    checks.extend(first_step_checks(&mut subject, opt.as_mut(), first));
                }
                Err(e) => {
                    for name in &CHECK_NAMES[1..4] {
                        checks.push(CheckResult::fail(name, e.clone()));
                    }
                }
            }
            // 5: a fresh copy memorises one batch.
            checks.push(match fresh(&build, &optimizer, true) {
                Ok((mut subject, mut opt)) => {
                    check_overfit_single_batch(&mut subject, opt.as_mut(), first, config)
                }
                Err(e) => CheckResult::fail(SINGLE_BATCH_OVERFIT, e),
            });
            // 6: a fresh copy learns from many batches.
            checks.push(match fresh(&build, &optimizer, true) {
                Ok((mut subject, mut opt)) => check_multi_batch_decrease(
                    &mut subject,
                    opt.as_mut(),
                    &training_batches,
                    config,
                ),
                Err(e) => CheckResult::fail(MULTI_BATCH_DECREASE, e),
            });
            if let Some(lr_config) = &config.lr_range {
                if let Ok((mut subject, mut opt)) = fresh(&build, &optimizer, true) {
                    lr_range = lr_range_test(
                        &mut subject,
                        opt.as_mut(),
                        &training_batches,
                        lr_config,
                        config.budget(),
                    )
                    .ok();
                }
            }
        }
    }

    // 7: the loader across two epochs.
    checks.push(match (&epoch0, &epoch1) {
        (Ok(a), Ok(b)) => check_loader(a, b),
        (Err(e), _) | (_, Err(e)) => {
            CheckResult::fail(LOADER_INTEGRATION, format!("the data source failed: {e}"))
        }
    });

    Ok(DoctorReport {
        checks,
        suggested_lr: lr_range.as_ref().and_then(|r| r.suggested_lr),
        lr_range,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// A fresh model and its optimizer, or why not. With `allow_unused` the optimizer skips
/// parameters without a gradient (the training checks: a broken layer is checks 3 and 4's news).
fn fresh<S, B, O>(
    build: &B,
    optimizer: &O,
    allow_unused: bool,
) -> std::result::Result<(S, Box<dyn Optimizer>), String>
where
    S: DoctorSubject,
    B: Fn() -> Result<S>,
    O: Fn(Vec<(String, Variable)>) -> optim::Result<Box<dyn Optimizer>>,
{
    let subject = build().map_err(|e| format!("building the model failed: {e}"))?;
    let mut opt = optimizer(subject.named_parameters())
        .map_err(|e| format!("building the optimizer failed: {e}"))?;
    if allow_unused {
        opt.groups_mut().set_allow_unused(true);
    }
    Ok((subject, opt))
}

/// Checks 2, 3 and 4 on one batch: the loss, its gradients, one optimizer step.
fn first_step_checks(
    subject: &mut dyn DoctorSubject,
    optimizer: &mut dyn Optimizer,
    batch: &DoctorBatch,
) -> Vec<CheckResult> {
    let params = subject.named_parameters();
    optimizer.zero_grad();
    let loss = match subject.loss(batch) {
        Ok(loss) => loss,
        Err(e) => {
            let why = format!("computing the loss failed: {e}");
            return vec![
                CheckResult::fail(LOSS_ATTACHED, why.clone()),
                CheckResult::fail(GRADIENT_FLOW, format!("skipped: {why}")),
                CheckResult::fail(PARAMETERS_UPDATE, format!("skipped: {why}")),
            ];
        }
    };
    let attached = check_loss_attached(&loss);
    let flow = if !loss.requires_grad() {
        let mut c = CheckResult::fail(
            GRADIENT_FLOW,
            format!(
                "no gradient can reach the {} parameters: the loss is not in the graph",
                params.len()
            ),
        );
        c.failing = params.iter().map(|(n, _)| n.clone()).collect();
        c
    } else if let Err(e) = loss.backward() {
        CheckResult::fail(GRADIENT_FLOW, format!("backward failed: {e}"))
    } else {
        check_gradient_flow(&params)
    };
    let update = check_parameters_update(optimizer);
    vec![attached, flow, update]
}

/// Check 1: targets belong to their inputs. Language-model windows: every target is the next
/// input (`target[t] == input[t + 1]`, the last position has no next input in the window).
/// Labelled batches: one target per sample, finite inputs and values, more than one class.
pub fn check_data_alignment(batches: &[DoctorBatch]) -> CheckResult {
    if batches.is_empty() {
        return CheckResult::fail(DATA_ALIGNMENT, "the data source yielded no batch".into());
    }
    let mut problems: Vec<String> = Vec::new();
    let (mut positions, mut shifted_wrong, mut unshifted) = (0usize, 0usize, 0usize);
    let mut first_wrong: Option<String> = None;
    let mut classes = BTreeSet::new();
    let (mut samples, mut has_classes, mut lm) = (0usize, false, false);
    for (bi, batch) in batches.iter().enumerate() {
        match batch {
            DoctorBatch::Lm(b) => {
                lm = true;
                let (rows, t) = (b.batch_size, b.block_size);
                if b.inputs.len() != rows * t || b.targets.len() != rows * t {
                    problems.push(format!(
                        "batch {bi}: {} inputs and {} targets for windows [{rows}, {t}]",
                        b.inputs.len(),
                        b.targets.len()
                    ));
                    continue;
                }
                for r in 0..rows {
                    let (inp, tgt) = (
                        &b.inputs[r * t..(r + 1) * t],
                        &b.targets[r * t..(r + 1) * t],
                    );
                    for k in 0..t.saturating_sub(1) {
                        positions += 1;
                        if tgt[k] == inp[k] {
                            unshifted += 1;
                        }
                        if tgt[k] != inp[k + 1] {
                            shifted_wrong += 1;
                            first_wrong.get_or_insert_with(|| {
                                format!(
                                    "first at batch {bi}, row {r}, t {k}: target {} but next input {}",
                                    tgt[k],
                                    inp[k + 1]
                                )
                            });
                        }
                    }
                }
            }
            DoctorBatch::Supervised(b) => {
                let n = b.inputs.shape().first().copied().unwrap_or(0);
                samples += n;
                if b.targets.len() != n || b.indices.len() != n {
                    problems.push(format!(
                        "batch {bi}: inputs {:?} but {} targets and {} indices",
                        b.inputs.shape(),
                        b.targets.len(),
                        b.indices.len()
                    ));
                }
                if !b.inputs.all_finite() {
                    problems.push(format!("batch {bi}: inputs hold NaN or Inf"));
                }
                match &b.targets {
                    Targets::Classes(c) => {
                        has_classes = true;
                        classes.extend(c.iter().copied());
                    }
                    Targets::Values(v) => {
                        if !v.all_finite() {
                            problems.push(format!("batch {bi}: targets hold NaN or Inf"));
                        }
                    }
                }
            }
        }
    }
    if shifted_wrong > 0 {
        let mut p = format!(
            "{shifted_wrong} of {positions} positions ({:.0}%) have target[t] != input[t+1] ({})",
            100.0 * shifted_wrong as f64 / positions as f64,
            first_wrong.unwrap_or_default()
        );
        if unshifted == positions {
            p.push_str("; every target equals its own input: the targets are not shifted");
        }
        problems.push(p);
    }
    if has_classes && classes.len() < 2 {
        problems.push(format!(
            "every target of {samples} samples is class {:?}: nothing to tell apart",
            classes.iter().next()
        ));
    }
    if !problems.is_empty() {
        return CheckResult::fail(DATA_ALIGNMENT, problems.join("; "));
    }
    let detail = if lm {
        format!(
            "{} batches, {positions} positions: every target is the next input",
            batches.len()
        )
    } else if has_classes {
        format!(
            "{} batches, {samples} samples: one target each, inputs finite, {} classes seen",
            batches.len(),
            classes.len()
        )
    } else {
        format!(
            "{} batches, {samples} samples: one finite target each, inputs finite",
            batches.len()
        )
    };
    CheckResult::pass(DATA_ALIGNMENT, detail)
}

/// Check 2: the loss is one finite number, requires grad and was produced by an op (has a
/// `grad_fn`): a loss rebuilt from raw values, computed under `no_grad` or from detached outputs
/// fails here.
pub fn check_loss_attached(loss: &Variable) -> CheckResult {
    if loss.numel() != 1 {
        return CheckResult::fail(
            LOSS_ATTACHED,
            format!(
                "the loss has shape {:?}; reduce it to one number (mean or sum)",
                loss.shape()
            ),
        );
    }
    let value = loss.item().unwrap_or(f32::NAN);
    if !value.is_finite() {
        return CheckResult::fail(
            LOSS_ATTACHED,
            format!("the loss is {value} on the first batch"),
        );
    }
    match (loss.requires_grad(), loss.grad_fn()) {
        (true, Some(op)) => CheckResult::pass(
            LOSS_ATTACHED,
            format!("loss {} from {op}, requires grad", fmt_num(value as f64)),
        ),
        (true, None) => CheckResult::fail(
            LOSS_ATTACHED,
            format!(
                "loss {} is a leaf (no grad_fn): it was rebuilt from a value instead of computed \
                 by graph ops",
                fmt_num(value as f64)
            ),
        ),
        (false, _) => CheckResult::fail(
            LOSS_ATTACHED,
            format!(
                "loss {} does not require grad: it was computed outside the graph (no_grad, \
                 detached outputs, or values re-wrapped as constants)",
                fmt_num(value as f64)
            ),
        ),
    }
}

/// Check 3, after `loss.backward()`: every trainable parameter holds a gradient that is finite
/// and not all zero. The failing parameters are named, each with its reason; on success the
/// detail gives the smallest and largest gradient norms.
pub fn check_gradient_flow(params: &[(String, Variable)]) -> CheckResult {
    // HINT: for each trainable parameter look at p.grad(): None (no path from the loss),
    // HINT: non-finite, or all zeros are failures; report the L2 norms of the others.
    // BEGIN SOLUTION
    let mut failing = Vec::new();
    let mut reasons = Vec::new();
    let mut norms: Vec<(f64, &str)> = Vec::new();
    let mut trainable = 0;
    for (name, p) in params {
        if !p.requires_grad() {
            continue;
        }
        trainable += 1;
        let problem = match p.grad() {
            None => Some("no gradient"),
            Some(g) => {
                let values = g.to_vec();
                if values.iter().any(|v| !v.is_finite()) {
                    Some("non-finite gradient")
                } else if values.iter().all(|&v| v == 0.0) {
                    Some("all-zero gradient")
                } else {
                    let norm = values.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
                    norms.push((norm.sqrt(), name.as_str()));
                    None
                }
            }
        };
        if let Some(why) = problem {
            failing.push(name.clone());
            reasons.push(format!("{name} ({why})"));
        }
    }
    if trainable == 0 {
        return CheckResult::fail(GRADIENT_FLOW, "the model has no trainable parameter".into());
    }
    if !failing.is_empty() {
        let mut c = CheckResult::fail(
            GRADIENT_FLOW,
            format!(
                "{} of {trainable} parameters get no usable gradient: {}; look for .detach(), \
                 values re-wrapped as constants, or layers the forward pass skips",
                failing.len(),
                reasons.join(", ")
            ),
        );
        c.failing = failing;
        return c;
    }
    let min = norms.iter().min_by(|a, b| a.0.total_cmp(&b.0));
    let max = norms.iter().max_by(|a, b| a.0.total_cmp(&b.0));
    let (min, max) = (
        min.copied().unwrap_or_default(),
        max.copied().unwrap_or_default(),
    );
    CheckResult::pass(
        GRADIENT_FLOW,
        format!(
            "all {trainable} parameters get a non-zero finite gradient; norms from {} ({}) to {} ({})",
            fmt_num(min.0),
            min.1,
            fmt_num(max.0),
            max.1
        ),
    )
    // END SOLUTION
}

/// Check 4, after `backward()`: one optimizer step changes every trainable parameter. If the
/// optimizer refuses to step (a parameter without gradient), its message is kept and the step
/// is retried skipping those parameters, so every unchanged parameter can be named.
pub fn check_parameters_update(optimizer: &mut dyn Optimizer) -> CheckResult {
    let params: Vec<(String, Variable)> = optimizer
        .named_parameters()
        .into_iter()
        .filter(|(_, p)| p.requires_grad())
        .collect();
    let before: Vec<Vec<f32>> = params.iter().map(|(_, p)| p.value().to_vec()).collect();
    let mut refused = None;
    let allow = optimizer.groups().allow_unused();
    if let Err(e) = optimizer.step() {
        refused = Some(e.to_string());
        optimizer.groups_mut().set_allow_unused(true);
        let retry = optimizer.step();
        optimizer.groups_mut().set_allow_unused(allow);
        if let Err(e) = retry {
            return CheckResult::fail(PARAMETERS_UPDATE, format!("the optimizer step failed: {e}"));
        }
    }
    let mut failing = Vec::new();
    let mut smallest: Option<(f64, &str)> = None;
    for ((name, p), old) in params.iter().zip(&before) {
        let new = p.value().to_vec();
        let (mut diff2, mut norm2) = (0.0f64, 0.0f64);
        for (a, b) in new.iter().zip(old) {
            diff2 += ((a - b) as f64).powi(2);
            norm2 += (*b as f64).powi(2);
        }
        if diff2 == 0.0 {
            failing.push(name.clone());
            continue;
        }
        let rel = diff2.sqrt() / norm2.sqrt().max(1e-12);
        if smallest.is_none_or(|(s, _)| rel < s) {
            smallest = Some((rel, name));
        }
    }
    let what = format!(
        "one {} step (lr {})",
        optimizer.name(),
        fmt_num(optimizer.lr())
    );
    if failing.is_empty() {
        let (rel, name) = smallest.unwrap_or((0.0, "-"));
        return CheckResult::pass(
            PARAMETERS_UPDATE,
            format!(
                "all {} parameters changed after {what}; smallest relative change {} ({name})",
                params.len(),
                fmt_num(rel)
            ),
        );
    }
    let mut detail = format!(
        "{} of {} parameters unchanged after {what}: {}",
        failing.len(),
        params.len(),
        failing.join(", ")
    );
    if let Some(msg) = refused {
        let _ = write!(detail, " (without help the optimizer refuses: {msg})");
    }
    let mut c = CheckResult::fail(PARAMETERS_UPDATE, detail);
    c.failing = failing;
    c
}

/// Zero the gradients, compute the loss on `batch`, backpropagate and step; the loss before the
/// step. A non-finite loss is returned without stepping.
pub fn train_step(
    subject: &mut dyn DoctorSubject,
    optimizer: &mut dyn Optimizer,
    batch: &DoctorBatch,
) -> Result<f32> {
    optimizer.zero_grad();
    let loss = subject.loss(batch)?;
    let value = loss.item()?;
    if !value.is_finite() {
        return Ok(value);
    }
    loss.backward()?;
    optimizer.step()?;
    Ok(value)
}

/// Check 5: train on one batch, again and again. The loss must fall to `1 - overfit_drop` of its
/// first value (half, by default) within `overfit_steps` steps and `check_seconds` seconds. A
/// model that cannot memorise 32 samples has a bug (or an lr far off), not too little data.
pub fn check_overfit_single_batch(
    subject: &mut dyn DoctorSubject,
    optimizer: &mut dyn Optimizer,
    batch: &DoctorBatch,
    config: &DoctorConfig,
) -> CheckResult {
    // HINT: record the first loss; step on the same batch until loss <= first * (1 - overfit_drop),
    // HINT: a non-finite loss, an error, or the step/time limit.
    // BEGIN SOLUTION
    let start = Instant::now();
    let mut first = None;
    let mut last = f32::NAN;
    for step in 0..config.overfit_steps {
        let loss = match train_step(subject, optimizer, batch) {
            Ok(loss) => loss,
            Err(e) => {
                return CheckResult::fail(SINGLE_BATCH_OVERFIT, format!("step {step} failed: {e}"))
            }
        };
        if !loss.is_finite() {
            return CheckResult::fail(
                SINGLE_BATCH_OVERFIT,
                format!("the loss became {loss} at step {step}: lower the learning rate"),
            );
        }
        let initial = *first.get_or_insert(loss);
        last = loss;
        let target = initial as f64 * (1.0 - config.overfit_drop);
        if step > 0 && loss as f64 <= target {
            return CheckResult::pass(
                SINGLE_BATCH_OVERFIT,
                format!(
                    "loss {} -> {} ({}) in {step} of at most {} steps on one batch of {}",
                    fmt_num(initial as f64),
                    fmt_num(loss as f64),
                    fmt_change(initial, loss),
                    config.overfit_steps,
                    batch.len()
                ),
            );
        }
        if start.elapsed() > config.budget() {
            return CheckResult::fail(
                SINGLE_BATCH_OVERFIT,
                format!(
                    "stopped by the {} s limit after {} steps: loss {} -> {} ({})",
                    config.check_seconds,
                    step + 1,
                    fmt_num(initial as f64),
                    fmt_num(loss as f64),
                    fmt_change(initial, loss)
                ),
            );
        }
    }
    let initial = first.unwrap_or(f32::NAN);
    CheckResult::fail(
        SINGLE_BATCH_OVERFIT,
        format!(
            "loss {} -> {} ({}) after {} steps on one batch; needed -{:.0}%: check the lr, the \
             gradient flow and the loss",
            fmt_num(initial as f64),
            fmt_num(last as f64),
            fmt_change(initial, last),
            config.overfit_steps,
            100.0 * config.overfit_drop
        ),
    )
    // END SOLUTION
}

/// Check 6: train on successive batches (cycling through `batches`) for `multi_batch_steps`
/// steps; the mean loss of the last `multi_batch_window` steps must be at least
/// `multi_batch_drop` below the mean of the first ones.
pub fn check_multi_batch_decrease(
    subject: &mut dyn DoctorSubject,
    optimizer: &mut dyn Optimizer,
    batches: &[DoctorBatch],
    config: &DoctorConfig,
) -> CheckResult {
    if batches.is_empty() {
        return CheckResult::fail(MULTI_BATCH_DECREASE, "no batch to train on".into());
    }
    let start = Instant::now();
    let mut losses = Vec::with_capacity(config.multi_batch_steps);
    let mut stopped = false;
    for step in 0..config.multi_batch_steps {
        let batch = &batches[step % batches.len()];
        match train_step(subject, optimizer, batch) {
            Ok(l) if l.is_finite() => losses.push(l as f64),
            Ok(l) => {
                return CheckResult::fail(
                    MULTI_BATCH_DECREASE,
                    format!("the loss became {l} at step {step}: lower the learning rate"),
                )
            }
            Err(e) => {
                return CheckResult::fail(MULTI_BATCH_DECREASE, format!("step {step} failed: {e}"))
            }
        }
        if start.elapsed() > config.budget() {
            stopped = true;
            break;
        }
    }
    let w = config.multi_batch_window.min(losses.len() / 2);
    if w == 0 {
        return CheckResult::fail(
            MULTI_BATCH_DECREASE,
            format!(
                "stopped by the {} s limit after {} steps: too few to compare",
                config.check_seconds,
                losses.len()
            ),
        );
    }
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let head = mean(&losses[..w]);
    let tail = mean(&losses[losses.len() - w..]);
    let distinct = batches.len().min(losses.len());
    let detail = format!(
        "mean loss of the first {w} steps {}, of the last {w} {} ({}) over {} steps on {distinct} batches{}",
        fmt_num(head),
        fmt_num(tail),
        fmt_change(head as f32, tail as f32),
        losses.len(),
        if stopped { " (time limit)" } else { "" }
    );
    if tail < head * (1.0 - config.multi_batch_drop) {
        CheckResult::pass(MULTI_BATCH_DECREASE, detail)
    } else {
        CheckResult::fail(
            MULTI_BATCH_DECREASE,
            format!(
                "{detail}; needed -{:.0}%: check the lr and whether single-batch overfit passes",
                100.0 * config.multi_batch_drop
            ),
        )
    }
}

/// Check 7: two epochs of the loader agree on shapes (every batch but an epoch's last has the
/// first batch's size, every sample the same shape, one target per sample or token), no sample
/// repeats within an epoch, and epoch 1 is not epoch 0 again (shuffling is on).
pub fn check_loader(epoch0: &[DoctorBatch], epoch1: &[DoctorBatch]) -> CheckResult {
    if epoch0.is_empty() || epoch1.is_empty() {
        return CheckResult::fail(
            LOADER_INTEGRATION,
            format!(
                "epoch 0 yielded {} batches and epoch 1 {}",
                epoch0.len(),
                epoch1.len()
            ),
        );
    }
    let mut problems = Vec::new();
    let first_shape = epoch0[0].input_shape();
    let (size, sample_shape) = (first_shape[0], &first_shape[1..]);
    let mut last_size = size;
    for (e, epoch) in [epoch0, epoch1].iter().enumerate() {
        let mut seen = HashSet::new();
        for (bi, b) in epoch.iter().enumerate() {
            let shape = b.input_shape();
            let is_last = bi + 1 == epoch.len();
            if &shape[1..] != sample_shape {
                problems.push(format!(
                    "epoch {e} batch {bi}: inputs {shape:?}, but the first batch's are {first_shape:?}"
                ));
            } else if shape[0] > size || (shape[0] < size && !is_last) {
                problems.push(format!(
                    "epoch {e} batch {bi}: {} samples where batches hold {size} (only an epoch's last batch may be shorter)",
                    shape[0]
                ));
            }
            if is_last {
                last_size = shape[0];
            }
            let expected = match b {
                DoctorBatch::Supervised(_) => shape[0],
                DoctorBatch::Lm(l) => l.batch_size * l.block_size,
            };
            if b.targets_len() != expected {
                problems.push(format!(
                    "epoch {e} batch {bi}: {} targets for inputs {shape:?} (expected {expected})",
                    b.targets_len()
                ));
            }
            if let DoctorBatch::Supervised(s) = b {
                for &i in &s.indices {
                    if !seen.insert(i) {
                        problems.push(format!(
                            "epoch {e} batch {bi}: sample {i} was already seen this epoch"
                        ));
                        break;
                    }
                }
            }
        }
    }
    let same =
        epoch0.len() == epoch1.len() && epoch0.iter().zip(epoch1).all(|(a, b)| a.same_samples(b));
    if same {
        problems.push(
            "epoch 1 repeats epoch 0 batch for batch: shuffling is off (or its seed ignores the epoch)"
                .into(),
        );
    }
    if !problems.is_empty() {
        return CheckResult::fail(LOADER_INTEGRATION, problems.join("; "));
    }
    let order = match (&epoch0[0], &epoch1[0]) {
        (DoctorBatch::Supervised(a), DoctorBatch::Supervised(b)) => {
            let first: HashSet<usize> = a.indices.iter().copied().collect();
            let shared = b.indices.iter().filter(|i| first.contains(i)).count();
            format!(
                "epoch orders differ (first batches share {shared} of {} samples)",
                a.indices.len()
            )
        }
        _ => "epochs draw different batches".to_string(),
    };
    let tail = if last_size != size {
        format!(", last batch {last_size}")
    } else {
        String::new()
    };
    CheckResult::pass(
        LOADER_INTEGRATION,
        format!(
            "{} + {} batches of inputs {first_shape:?}{tail}, targets match; {order}",
            epoch0.len(),
            epoch1.len()
        ),
    )
}

// ----- learning-rate range test -----

/// The sweep of [`lr_range_test`].
#[derive(Clone, Debug, PartialEq)]
pub struct LrRangeConfig {
    /// The first learning rate.
    pub start_lr: f64,
    /// The last learning rate.
    pub end_lr: f64,
    /// Steps from `start_lr` to `end_lr` (each multiplies the lr by the same factor).
    pub steps: usize,
    /// Exponential smoothing of the loss (`0`: none; `0.9`: about the last 10 steps).
    pub smoothing: f64,
    /// Stop when the smoothed loss exceeds this many times its minimum (divergence).
    pub divergence: f64,
}

impl Default for LrRangeConfig {
    fn default() -> LrRangeConfig {
        LrRangeConfig {
            start_lr: 1e-6,
            end_lr: 1.0,
            steps: 100,
            smoothing: 0.9,
            divergence: 4.0,
        }
    }
}

impl LrRangeConfig {
    fn validate(&self) -> Result<()> {
        let ok = self.start_lr > 0.0
            && self.end_lr > self.start_lr
            && self.end_lr.is_finite()
            && self.steps >= 2
            && (0.0..1.0).contains(&self.smoothing)
            && self.divergence > 1.0;
        if ok {
            return Ok(());
        }
        Err(ModelError::Invalid {
            op: "LrRangeConfig",
            reason: format!(
                "need 0 < start_lr < end_lr (got {} and {}), steps >= 2 (got {}), smoothing in \
                 [0, 1) (got {}) and divergence > 1 (got {})",
                self.start_lr, self.end_lr, self.steps, self.smoothing, self.divergence
            ),
        })
    }

    /// The learning rate of step `i`: `start * (end / start)^(i / (steps - 1))`.
    pub fn lr_at(&self, i: usize) -> f64 {
        let t = i as f64 / (self.steps - 1) as f64;
        self.start_lr * (self.end_lr / self.start_lr).powf(t)
    }
}

/// What the LR range test saw.
#[derive(Clone, Debug, PartialEq)]
pub struct LrRangeResult {
    /// The learning rate of each step run.
    pub lrs: Vec<f64>,
    /// The raw loss of each step (before that step's update).
    pub losses: Vec<f32>,
    /// The bias-corrected exponentially smoothed loss of each step.
    pub smoothed: Vec<f64>,
    /// The learning rate at the minimum smoothed loss.
    pub min_loss_lr: f64,
    /// The minimum smoothed loss.
    pub min_loss: f64,
    /// `min_loss_lr / 10`, when the loss fell at all during the sweep.
    pub suggested_lr: Option<f64>,
    /// The learning rate at which the sweep stopped because the loss diverged (or became
    /// non-finite), if it did.
    pub diverged_at: Option<f64>,
}

impl LrRangeResult {
    /// One line: the suggestion, the minimum and where the sweep stopped.
    pub fn summary(&self) -> String {
        let first = self.lrs.first().copied().unwrap_or(0.0);
        let last = self.lrs.last().copied().unwrap_or(0.0);
        let suggestion = match self.suggested_lr {
            Some(lr) => format!("suggested lr {} (lr at the minimum / 10)", fmt_num(lr)),
            None => "no suggestion: the loss never fell".into(),
        };
        let stop = match self.diverged_at {
            Some(lr) => format!(", diverged at lr {}", fmt_num(lr)),
            None if self.min_loss_lr >= last => {
                ", the loss still fell at the last lr (raise end_lr to see where it diverges)"
                    .into()
            }
            None => String::new(),
        };
        format!(
            "{suggestion}; smoothed loss minimum {} at lr {}; {} steps from lr {} to {}{stop}",
            fmt_num(self.min_loss),
            fmt_num(self.min_loss_lr),
            self.lrs.len(),
            fmt_num(first),
            fmt_num(last)
        )
    }
}

/// The learning-rate range test: train `subject` (a fresh copy) on successive batches while
/// the learning rate grows exponentially from `start_lr` to `end_lr`; smooth the loss
/// exponentially (bias-corrected), stop when it exceeds `divergence` times its minimum or is not
/// finite, and suggest the learning rate at the minimum smoothed loss divided by 10.
pub fn lr_range_test(
    subject: &mut dyn DoctorSubject,
    optimizer: &mut dyn Optimizer,
    batches: &[DoctorBatch],
    config: &LrRangeConfig,
    budget: Duration,
) -> Result<LrRangeResult> {
    config.validate()?;
    if batches.is_empty() {
        return Err(ModelError::Invalid {
            op: "lr_range_test",
            reason: "no batch to train on".into(),
        });
    }
    let start = Instant::now();
    let (mut lrs, mut losses, mut smoothed) = (Vec::new(), Vec::new(), Vec::new());
    let mut avg = 0.0f64;
    let (mut best, mut best_lr, mut best_step) = (f64::INFINITY, config.start_lr, 0usize);
    let mut diverged_at = None;
    for i in 0..config.steps {
        let lr = config.lr_at(i);
        optimizer.set_lr(lr);
        let loss = train_step(subject, optimizer, &batches[i % batches.len()])?;
        if !loss.is_finite() {
            diverged_at = Some(lr);
            break;
        }
        avg = config.smoothing * avg + (1.0 - config.smoothing) * loss as f64;
        let s = avg / (1.0 - config.smoothing.powi(i as i32 + 1));
        lrs.push(lr);
        losses.push(loss);
        smoothed.push(s);
        if s < best {
            (best, best_lr, best_step) = (s, lr, i);
        }
        if i > 0 && s > config.divergence * best {
            diverged_at = Some(lr);
            break;
        }
        if start.elapsed() > budget {
            break;
        }
    }
    if lrs.is_empty() {
        return Err(ModelError::NonFiniteLoss {
            step: 0,
            loss: f32::NAN,
            op: None,
        });
    }
    Ok(LrRangeResult {
        suggested_lr: (best_step > 0).then_some(best_lr / 10.0),
        lrs,
        losses,
        smoothed,
        min_loss_lr: best_lr,
        min_loss: best,
        diverged_at,
    })
}

// ----- formatting -----

/// A number with four significant-ish digits, scientific when very small or large.
fn fmt_num(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        format!("{x}")
    } else if (1e-3..1e4).contains(&x.abs()) {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

/// The relative change from `a` to `b` as a signed percentage.
fn fmt_change(a: f32, b: f32) -> String {
    if a == 0.0 {
        return "n/a".into();
    }
    format!("{:+.0}%", 100.0 * (b as f64 - a as f64) / a.abs() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lr_schedule_is_exponential() {
        let c = LrRangeConfig {
            start_lr: 1e-4,
            end_lr: 1.0,
            steps: 5,
            ..Default::default()
        };
        let lrs: Vec<f64> = (0..5).map(|i| c.lr_at(i)).collect();
        for (got, want) in lrs.iter().zip([1e-4, 1e-3, 1e-2, 1e-1, 1.0]) {
            assert!((got / want - 1.0).abs() < 1e-12, "{got} vs {want}");
        }
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_num(1.234567), "1.2346");
        assert_eq!(fmt_num(1.5e-5), "1.500e-5");
        assert_eq!(fmt_change(2.0, 1.0), "-50%");
    }

    #[test]
    fn bad_configs_are_refused() {
        let c = DoctorConfig {
            multi_batch_steps: 5,
            ..Default::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("multi_batch_steps (5)"));
        let c = DoctorConfig {
            lr_range: Some(LrRangeConfig {
                start_lr: 1.0,
                end_lr: 0.1,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("start_lr < end_lr"));
    }
}
