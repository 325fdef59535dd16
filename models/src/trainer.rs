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
//! One safetensors file: the model's state dict as `model/<name>` tensors, the optimizer's
//! buffers as `optimizer/<buffer>` tensors, and in the metadata the optimizer's JSON header
//! (with exact bits of every float), the trainer's step and history, and the task's data
//! position (epoch and batch, or how many LM batches were drawn). Model randomness lives in
//! buffers (dropout draw counts, see [`crate::mlp::SeededDropout`]) and the learning-rate
//! schedule is a function of the step, so restoring these is everything a run needs to continue
//! as if it had never stopped.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use autograd::{AutogradError, Variable};
use data::{Batch, DataLoader, EpochIter, LmBatch, LmBatcher};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nn::loss::CrossEntropyLoss;
use nn::{Module, NnError};
use optim::{clip_grad_norm, LrSchedule, Optimizer, OptimizerState};
use serde_json::{json, Value};
use tensor::Tensor;

use crate::error::{ModelError, Result};

// ----- tasks -----

/// The result of one evaluation pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalResult {
    /// The mean loss over the evaluation data.
    pub loss: f64,
    /// The task's metric (accuracy, perplexity, ...), if it has one.
    pub metric: Option<f64>,
}

/// What the trainer needs from a model + data + loss. The trainer calls, per step,
/// [`next_batch`](TrainTask::next_batch) then [`loss`](TrainTask::loss) (and may call `loss`
/// again on the same batch to locate a NaN in anomaly mode).
pub trait TrainTask {
    /// The throughput unit: `"samples"` or `"tokens"`.
    fn unit(&self) -> &'static str;

    /// The name of [`EvalResult::metric`] (`"accuracy"`, `"perplexity"`), if any.
    fn metric_name(&self) -> Option<&'static str> {
        None
    }

    /// Batches in one epoch, when the data has epochs (`None`: only step budgets work).
    fn steps_per_epoch(&self) -> Option<usize> {
        None
    }

    /// Advance to the next training batch; returns how many samples or tokens it holds.
    fn next_batch(&mut self) -> Result<usize>;

    /// The loss of the current batch, in training mode, attached to the graph.
    fn loss(&mut self) -> Result<Variable>;

    /// Evaluate on the validation data (eval mode, no graph); `None` without validation data.
    fn evaluate(&mut self) -> Result<Option<EvalResult>>;

    /// Every parameter and buffer of the model by name (what a checkpoint stores).
    fn state_dict(&self) -> BTreeMap<String, Tensor>;

    /// Load a state dict saved by [`TrainTask::state_dict`].
    fn load_state_dict(&mut self, state: &BTreeMap<String, Tensor>) -> Result<()>;

    /// Where the data stream is (and any random state outside the model), as JSON.
    fn position(&self) -> Value;

    /// Go back to a position returned by [`TrainTask::position`].
    fn set_position(&mut self, position: &Value) -> Result<()>;
}

/// How many rows of `logits` `(N, C)` have their largest entry at the target class (the first
/// maximum wins ties).
pub fn count_correct(logits: &Tensor, targets: &[usize]) -> usize {
    let c = logits.shape().last().copied().unwrap_or(0);
    if c == 0 {
        return 0;
    }
    let owned;
    let values = match logits.as_slice() {
        Some(v) => v,
        None => {
            owned = logits.to_vec();
            &owned
        }
    };
    values
        .chunks_exact(c)
        .zip(targets)
        .filter(|(row, &t)| {
            let mut best = 0;
            for (j, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = j;
                }
            }
            best == t
        })
        .count()
}

fn usize_field(v: &Value, key: &str, what: &'static str) -> Result<usize> {
    v.get(key)
        .and_then(Value::as_u64)
        .map(|n| n as usize)
        .ok_or_else(|| ModelError::Invalid {
            op: what,
            reason: format!("position {v} has no integer '{key}'"),
        })
}

fn load_module_state(model: &dyn Module, state: &BTreeMap<String, Tensor>) -> Result<()> {
    Ok(model.load_state_dict(state)?)
}

/// A classifier trained with cross-entropy on a [`DataLoader`] of class-target batches; the
/// metric is accuracy on the validation loader.
pub struct Classification<M> {
    model: M,
    train: DataLoader,
    val: Option<DataLoader>,
    loss_fn: CrossEntropyLoss,
    epoch: usize,
    /// Batches of `epoch` already handed out.
    batch: usize,
    iter: Option<EpochIter>,
    current: Option<Batch>,
    training: bool,
}

impl<M: Module> Classification<M> {
    /// Train `model` on `train` (cross-entropy, no validation data).
    pub fn new(model: M, train: DataLoader) -> Classification<M> {
        Classification {
            model,
            train,
            val: None,
            loss_fn: CrossEntropyLoss::new(),
            epoch: 0,
            batch: 0,
            iter: None,
            current: None,
            training: false,
        }
    }

    /// Evaluate on `val` (loss and accuracy).
    pub fn with_val(mut self, val: DataLoader) -> Classification<M> {
        self.val = Some(val);
        self
    }

    /// Use another cross-entropy (label smoothing, ignore index).
    pub fn with_loss(mut self, loss_fn: CrossEntropyLoss) -> Classification<M> {
        self.loss_fn = loss_fn;
        self
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The model, mutably.
    pub fn model_mut(&mut self) -> &mut M {
        &mut self.model
    }

    /// Take the model back.
    pub fn into_model(self) -> M {
        self.model
    }

    /// The current epoch (counted from 0).
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Loss and accuracy of the model on every batch of `loader` (eval mode, no graph).
    pub fn evaluate_on(&mut self, loader: &DataLoader) -> Result<EvalResult> {
        self.model.eval();
        self.training = false;
        let _no_grad = autograd::NoGradGuard::new();
        let (mut loss_sum, mut correct, mut n) = (0.0f64, 0usize, 0usize);
        for batch in loader.epoch(0) {
            let batch = batch?;
            let classes = batch.classes()?;
            let logits = self
                .model
                .forward(&Variable::constant(batch.inputs.clone()))?;
            let loss = self.loss_fn.forward(&logits, classes)?.item()?;
            loss_sum += f64::from(loss) * classes.len() as f64;
            correct += count_correct(&logits.value(), classes);
            n += classes.len();
        }
        if n == 0 {
            return Err(ModelError::Invalid {
                op: "Classification::evaluate",
                reason: "the validation loader has no samples".into(),
            });
        }
        Ok(EvalResult {
            loss: loss_sum / n as f64,
            metric: Some(correct as f64 / n as f64),
        })
    }
}

impl<M: Module> TrainTask for Classification<M> {
    fn unit(&self) -> &'static str {
        "samples"
    }

    fn metric_name(&self) -> Option<&'static str> {
        Some("accuracy")
    }

    fn steps_per_epoch(&self) -> Option<usize> {
        Some(self.train.len())
    }

    fn next_batch(&mut self) -> Result<usize> {
        if self.train.is_empty() {
            return Err(ModelError::Invalid {
                op: "Classification",
                reason: "the training loader has no batches".into(),
            });
        }
        loop {
            let iter = match &mut self.iter {
                Some(it) => it,
                None => {
                    // (Re)start the epoch, skipping batches already used (after a resume).
                    let mut it = self.train.epoch(self.epoch);
                    for _ in 0..self.batch {
                        if let Some(b) = it.next() {
                            b?;
                        }
                    }
                    self.iter.insert(it)
                }
            };
            match iter.next() {
                Some(batch) => {
                    let batch = batch?;
                    self.batch += 1;
                    let n = batch.len();
                    self.current = Some(batch);
                    return Ok(n);
                }
                None => {
                    self.epoch += 1;
                    self.batch = 0;
                    self.iter = None;
                }
            }
        }
    }

    fn loss(&mut self) -> Result<Variable> {
        let batch = self.current.as_ref().ok_or(ModelError::Invalid {
            op: "Classification::loss",
            reason: "no batch yet: call next_batch first".into(),
        })?;
        if !self.training {
            self.model.train();
            self.training = true;
        }
        let logits = self
            .model
            .forward(&Variable::constant(batch.inputs.clone()))?;
        Ok(self.loss_fn.forward(&logits, batch.classes()?)?)
    }

    fn evaluate(&mut self) -> Result<Option<EvalResult>> {
        match self.val.take() {
            None => Ok(None),
            Some(val) => {
                let result = self.evaluate_on(&val);
                self.val = Some(val);
                result.map(Some)
            }
        }
    }

    fn state_dict(&self) -> BTreeMap<String, Tensor> {
        self.model.state_dict()
    }

    fn load_state_dict(&mut self, state: &BTreeMap<String, Tensor>) -> Result<()> {
        load_module_state(&self.model, state)
    }

    fn position(&self) -> Value {
        json!({ "epoch": self.epoch, "batch": self.batch })
    }

    fn set_position(&mut self, position: &Value) -> Result<()> {
        self.epoch = usize_field(position, "epoch", "Classification::set_position")?;
        self.batch = usize_field(position, "batch", "Classification::set_position")?;
        self.iter = None;
        self.current = None;
        Ok(())
    }
}

/// A language model trained on random windows of a token stream ([`LmBatcher::sample`]), its
/// loss computed by a closure `(model, batch) -> loss` (e.g. a GPT's forward + cross-entropy);
/// evaluation walks the first windows of the validation stream in order and reports perplexity
/// (`exp` of the mean loss).
///
/// The batcher must be fresh (nothing sampled yet): the position saved in checkpoints counts
/// batches drawn since then, and resuming replays that many draws from a clone of it.
pub struct LanguageModel<M, F> {
    model: M,
    start: LmBatcher,
    train: LmBatcher,
    val: Vec<LmBatch>,
    loss_fn: F,
    drawn: u64,
    current: Option<LmBatch>,
    training: bool,
}

impl<M, F> LanguageModel<M, F>
where
    M: Module,
    F: FnMut(&M, &LmBatch) -> Result<Variable>,
{
    /// Train `model` on batches of `train` with `loss_fn`.
    pub fn new(model: M, train: LmBatcher, loss_fn: F) -> LanguageModel<M, F> {
        LanguageModel {
            model,
            start: train.clone(),
            train,
            val: Vec::new(),
            loss_fn,
            drawn: 0,
            current: None,
            training: false,
        }
    }

    /// Evaluate on the first `max_batches` sequential batches of `val`.
    pub fn with_val(mut self, val: &LmBatcher, max_batches: usize) -> LanguageModel<M, F> {
        self.val = val.sequential().into_iter().take(max_batches).collect();
        self
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The model, mutably.
    pub fn model_mut(&mut self) -> &mut M {
        &mut self.model
    }

    /// Take the model back.
    pub fn into_model(self) -> M {
        self.model
    }
}

impl<M, F> TrainTask for LanguageModel<M, F>
where
    M: Module,
    F: FnMut(&M, &LmBatch) -> Result<Variable>,
{
    fn unit(&self) -> &'static str {
        "tokens"
    }

    fn metric_name(&self) -> Option<&'static str> {
        Some("perplexity")
    }

    fn next_batch(&mut self) -> Result<usize> {
        let batch = self.train.sample();
        self.drawn += 1;
        let n = batch.inputs.len();
        self.current = Some(batch);
        Ok(n)
    }

    fn loss(&mut self) -> Result<Variable> {
        let batch = self.current.as_ref().ok_or(ModelError::Invalid {
            op: "LanguageModel::loss",
            reason: "no batch yet: call next_batch first".into(),
        })?;
        if !self.training {
            self.model.train();
            self.training = true;
        }
        (self.loss_fn)(&self.model, batch)
    }

    fn evaluate(&mut self) -> Result<Option<EvalResult>> {
        if self.val.is_empty() {
            return Ok(None);
        }
        self.model.eval();
        self.training = false;
        let _no_grad = autograd::NoGradGuard::new();
        let (mut sum, mut tokens) = (0.0f64, 0usize);
        for batch in &self.val {
            let loss = (self.loss_fn)(&self.model, batch)?.item()?;
            sum += f64::from(loss) * batch.inputs.len() as f64;
            tokens += batch.inputs.len();
        }
        let loss = sum / tokens as f64;
        Ok(Some(EvalResult {
            loss,
            metric: Some(loss.exp()),
        }))
    }

    fn state_dict(&self) -> BTreeMap<String, Tensor> {
        self.model.state_dict()
    }

    fn load_state_dict(&mut self, state: &BTreeMap<String, Tensor>) -> Result<()> {
        load_module_state(&self.model, state)
    }

    fn position(&self) -> Value {
        json!({ "batches_drawn": self.drawn })
    }

    fn set_position(&mut self, position: &Value) -> Result<()> {
        let n = usize_field(position, "batches_drawn", "LanguageModel::set_position")?;
        self.train = self.start.clone();
        for _ in 0..n {
            self.train.sample();
        }
        self.drawn = n as u64;
        self.current = None;
        Ok(())
    }
}

// ----- history -----

/// The columns of the history CSV, in order.
pub const HISTORY_COLUMNS: [&str; 9] = [
    "step",
    "epoch",
    "train_loss",
    "val_loss",
    "val_metric",
    "lr",
    "throughput",
    "grad_norm",
    "seconds",
];

/// One row of the history: the state after `step` optimizer steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Optimizer steps taken so far.
    pub step: usize,
    /// `step / steps_per_epoch` when the data has epochs.
    pub epoch: Option<f64>,
    /// The mean training loss since the previous row.
    pub train_loss: f64,
    /// The validation loss, on evaluation rows.
    pub val_loss: Option<f64>,
    /// The validation metric, on evaluation rows.
    pub val_metric: Option<f64>,
    /// The learning rate of the last step.
    pub lr: f64,
    /// Samples (or tokens) per second of training since the previous row.
    pub throughput: f64,
    /// The gradient norm before clipping at the last step (when clipping).
    pub grad_norm: Option<f64>,
    /// Training seconds so far (evaluation excluded).
    pub seconds: f64,
}

/// Every record of a run, plus what the throughput and metric columns measure.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// `"samples"` or `"tokens"` (throughput is this unit per second).
    pub unit: String,
    /// The name of `val_metric` (`"accuracy"`, `"perplexity"`), if any.
    pub metric: Option<String>,
    /// The rows, in step order.
    pub records: Vec<Record>,
}

fn opt_num(v: Option<f64>) -> Value {
    v.filter(|x| x.is_finite()).map_or(Value::Null, Value::from)
}

impl History {
    /// The rows that carry an evaluation.
    pub fn evaluations(&self) -> impl Iterator<Item = &Record> {
        self.records.iter().filter(|r| r.val_loss.is_some())
    }

    /// The last row with an evaluation.
    pub fn last_eval(&self) -> Option<&Record> {
        self.evaluations().last()
    }

    /// The history as CSV with the [`HISTORY_COLUMNS`] header (empty cells for missing values).
    pub fn to_csv(&self) -> String {
        let mut out = HISTORY_COLUMNS.join(",");
        out.push('\n');
        let cell = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        for r in &self.records {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{}",
                r.step,
                cell(r.epoch),
                r.train_loss,
                cell(r.val_loss),
                cell(r.val_metric),
                r.lr,
                r.throughput,
                cell(r.grad_norm),
                r.seconds
            );
        }
        out
    }

    /// The history as JSON: `{"unit", "metric", "columns", "records": [{column: value}]}`
    /// (missing or non-finite values are `null`).
    pub fn to_json(&self) -> Value {
        let records: Vec<Value> = self
            .records
            .iter()
            .map(|r| {
                json!({
                    "step": r.step,
                    "epoch": opt_num(r.epoch),
                    "train_loss": opt_num(Some(r.train_loss)),
                    "val_loss": opt_num(r.val_loss),
                    "val_metric": opt_num(r.val_metric),
                    "lr": opt_num(Some(r.lr)),
                    "throughput": opt_num(Some(r.throughput)),
                    "grad_norm": opt_num(r.grad_norm),
                    "seconds": opt_num(Some(r.seconds)),
                })
            })
            .collect();
        json!({
            "unit": self.unit,
            "metric": self.metric,
            "columns": HISTORY_COLUMNS,
            "records": records,
        })
    }

    /// Parse [`History::to_json`].
    pub fn from_json(v: &Value) -> Result<History> {
        let bad = |reason: String| ModelError::Invalid {
            op: "History::from_json",
            reason,
        };
        let num = |r: &Value, k: &str| r.get(k).and_then(Value::as_f64);
        let records = v
            .get("records")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no 'records' array".into()))?
            .iter()
            .map(|r| {
                Ok(Record {
                    step: r
                        .get("step")
                        .and_then(Value::as_u64)
                        .ok_or_else(|| bad(format!("record {r} has no step")))?
                        as usize,
                    epoch: num(r, "epoch"),
                    train_loss: num(r, "train_loss").unwrap_or(f64::NAN),
                    val_loss: num(r, "val_loss"),
                    val_metric: num(r, "val_metric"),
                    lr: num(r, "lr").unwrap_or(f64::NAN),
                    throughput: num(r, "throughput").unwrap_or(f64::NAN),
                    grad_norm: num(r, "grad_norm"),
                    seconds: num(r, "seconds").unwrap_or(f64::NAN),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(History {
            unit: v
                .get("unit")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            metric: v.get("metric").and_then(Value::as_str).map(str::to_string),
            records,
        })
    }

    /// Write `<stem>.csv` and `<stem>.json` (creating the parent directory).
    pub fn write(&self, stem: &Path) -> Result<()> {
        let csv = stem.with_extension("csv");
        let json_path = stem.with_extension("json");
        write_atomic(&csv, self.to_csv().as_bytes())?;
        let text = serde_json::to_string_pretty(&self.to_json()).map_err(|e| ModelError::File {
            path: json_path.clone(),
            reason: e.to_string(),
        })?;
        write_atomic(&json_path, text.as_bytes())
    }
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Write through a temporary file and a rename, so a crash never leaves half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| file_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| file_err(path, e))
}

// ----- configuration -----

/// How long to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// This many optimizer steps in total.
    Steps(usize),
    /// This many passes over the training data (needs [`TrainTask::steps_per_epoch`]).
    Epochs(usize),
}

/// The trainer's knobs; build with [`TrainerConfig::steps`] or [`TrainerConfig::epochs`] and the
/// builder methods.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainerConfig {
    /// How long to train (counted from step 0, so a resumed run stops at the same place).
    pub budget: Budget,
    /// Evaluate every this many steps (`None`: at the end of every epoch when the data has
    /// epochs). The last step is always evaluated.
    pub eval_every: Option<usize>,
    /// Write a history row every this many steps (and at every evaluation and checkpoint).
    pub log_every: usize,
    /// Clip the global gradient norm to this value.
    pub clip_grad_norm: Option<f32>,
    /// Save a checkpoint every this many steps (to `checkpoint_path`).
    pub checkpoint_every: Option<usize>,
    /// Checkpoint file; `{step}` in it is replaced by the step.
    pub checkpoint_path: Option<PathBuf>,
    /// Write the history to `<path>.csv` and `<path>.json` (at the end, at every checkpoint
    /// and when training stops on an error).
    pub history_path: Option<PathBuf>,
    /// Show a progress bar (only when stderr is a terminal).
    pub progress: bool,
    /// When the loss is NaN/Inf, re-run that step's forward in anomaly mode to name the first
    /// op that produced it.
    pub anomaly_on_nan: bool,
}

impl TrainerConfig {
    /// Train for `steps` optimizer steps.
    pub fn steps(steps: usize) -> TrainerConfig {
        TrainerConfig::with_budget(Budget::Steps(steps))
    }

    /// Train for `epochs` passes over the data.
    pub fn epochs(epochs: usize) -> TrainerConfig {
        TrainerConfig::with_budget(Budget::Epochs(epochs))
    }

    /// Defaults: evaluate per epoch, a row every 10 steps, no clipping, no checkpoints, no
    /// history files, a progress bar, anomaly re-run on NaN.
    pub fn with_budget(budget: Budget) -> TrainerConfig {
        TrainerConfig {
            budget,
            eval_every: None,
            log_every: 10,
            clip_grad_norm: None,
            checkpoint_every: None,
            checkpoint_path: None,
            history_path: None,
            progress: true,
            anomaly_on_nan: true,
        }
    }

    /// Evaluate every `steps` steps.
    pub fn eval_every(mut self, steps: usize) -> TrainerConfig {
        self.eval_every = Some(steps);
        self
    }

    /// A history row every `steps` steps.
    pub fn log_every(mut self, steps: usize) -> TrainerConfig {
        self.log_every = steps;
        self
    }

    /// Clip the global gradient norm at `max_norm`.
    pub fn clip_grad_norm(mut self, max_norm: f32) -> TrainerConfig {
        self.clip_grad_norm = Some(max_norm);
        self
    }

    /// Save a checkpoint to `path` (`{step}` is replaced by the step) every `every` steps.
    pub fn checkpoint(mut self, path: impl Into<PathBuf>, every: usize) -> TrainerConfig {
        self.checkpoint_path = Some(path.into());
        self.checkpoint_every = Some(every);
        self
    }

    /// Write the history to `<stem>.csv` and `<stem>.json`.
    pub fn history(mut self, stem: impl Into<PathBuf>) -> TrainerConfig {
        self.history_path = Some(stem.into());
        self
    }

    /// No progress bar.
    pub fn quiet(mut self) -> TrainerConfig {
        self.progress = false;
        self
    }

    /// Whether to re-run a NaN step in anomaly mode.
    pub fn anomaly_on_nan(mut self, on: bool) -> TrainerConfig {
        self.anomaly_on_nan = on;
        self
    }

    fn validate(&self) -> Result<()> {
        let zero = |what: &str, v: Option<usize>| {
            if v == Some(0) {
                Err(ModelError::Invalid {
                    op: "TrainerConfig",
                    reason: format!("{what} must be at least 1"),
                })
            } else {
                Ok(())
            }
        };
        zero("eval_every", self.eval_every)?;
        zero("log_every", Some(self.log_every))?;
        zero("checkpoint_every", self.checkpoint_every)?;
        if self.checkpoint_every.is_some() && self.checkpoint_path.is_none() {
            return Err(ModelError::Invalid {
                op: "TrainerConfig",
                reason: "checkpoint_every is set but there is no checkpoint_path".into(),
            });
        }
        Ok(())
    }
}

// ----- the trainer -----

/// What one step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// The loss of the batch (before the update).
    pub loss: f32,
    /// The learning rate used.
    pub lr: f64,
    /// The gradient norm before clipping (when clipping).
    pub grad_norm: Option<f32>,
    /// Samples or tokens in the batch.
    pub units: usize,
}

/// The outcome of [`Trainer::fit`].
#[derive(Clone, Debug, PartialEq)]
pub struct FitReport {
    /// Optimizer steps taken in total.
    pub steps: usize,
    /// Training seconds in this call (evaluation excluded).
    pub seconds: f64,
    /// Samples or tokens per second in this call.
    pub throughput: f64,
    /// The loss of the last step.
    pub last_loss: f32,
    /// The last evaluation, if any.
    pub eval: Option<EvalResult>,
}

/// Running sums between two history rows.
#[derive(Default)]
struct Window {
    loss_sum: f64,
    steps: usize,
    units: usize,
    seconds: f64,
}

/// Runs the training loop: see the module documentation.
pub struct Trainer {
    config: TrainerConfig,
    optimizer: Box<dyn Optimizer>,
    schedule: Option<Box<dyn LrSchedule>>,
    /// The optimizer's parameters, fetched once (for clipping).
    params: Vec<(String, Variable)>,
    step: usize,
    seconds: f64,
    history: History,
}

const CHECKPOINT_FORMAT: &str = "tinytorch-trainer-checkpoint";
const MODEL_PREFIX: &str = "model/";
const OPTIM_PREFIX: &str = "optimizer/";

impl Trainer {
    /// A trainer at step 0 with `optimizer` (which must hold the task's trainable parameters).
    pub fn new(config: TrainerConfig, optimizer: impl Optimizer + 'static) -> Trainer {
        Trainer::from_boxed(config, Box::new(optimizer))
    }

    /// Like [`Trainer::new`] for an optimizer chosen at run time.
    pub fn from_boxed(config: TrainerConfig, optimizer: Box<dyn Optimizer>) -> Trainer {
        let params = optimizer.named_parameters();
        Trainer {
            config,
            optimizer,
            schedule: None,
            params,
            step: 0,
            seconds: 0.0,
            history: History::default(),
        }
    }

    /// Set the learning rate of every parameter group to `schedule.lr_at(step)` before each step.
    pub fn with_schedule(mut self, schedule: impl LrSchedule + 'static) -> Trainer {
        self.schedule = Some(Box::new(schedule));
        self
    }

    /// Optimizer steps taken so far.
    pub fn step(&self) -> usize {
        self.step
    }

    /// The configuration.
    pub fn config(&self) -> &TrainerConfig {
        &self.config
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &dyn Optimizer {
        self.optimizer.as_ref()
    }

    /// The history so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The step at which training ends for `task`.
    pub fn total_steps<T: TrainTask + ?Sized>(&self, task: &T) -> Result<usize> {
        match self.config.budget {
            Budget::Steps(n) => Ok(n),
            Budget::Epochs(e) => task.steps_per_epoch().map(|s| s * e).ok_or(ModelError::Invalid {
                op: "Trainer",
                reason: format!(
                    "a budget of {e} epochs needs a task with epochs; this one draws batches without end, give a number of steps"
                ),
            }),
        }
    }

    /// One optimizer step on the task's next batch. A NaN/Inf loss is
    /// [`ModelError::NonFiniteLoss`] naming the step (counted from 0) and, with
    /// [`TrainerConfig::anomaly_on_nan`] or anomaly mode on, the first op that produced it.
    pub fn train_step<T: TrainTask + ?Sized>(&mut self, task: &mut T) -> Result<StepStats> {
        let units = task.next_batch()?;
        match self.optimize(task) {
            Ok(stats) => Ok(StepStats { units, ..stats }),
            Err(e) => Err(self.explain(task, e)),
        }
    }

    /// The body of a training step on the current batch: schedule, zero_grad, forward + loss,
    /// the finiteness check, backward, clipping, the optimizer step.
    fn optimize<T: TrainTask + ?Sized>(&mut self, task: &mut T) -> Result<StepStats> {
        // HINT: one step of gradient descent: set the lr from the schedule at this step (if any),
        // HINT: zero the gradients, compute the task's loss (a non-finite value is NonFiniteLoss),
        // HINT: backpropagate, clip the global gradient norm when configured, step the optimizer,
        // HINT: count the step, and return the loss, lr and gradient norm.
        // BEGIN SOLUTION
        let lr = match &self.schedule {
            Some(schedule) => {
                let lr = schedule.lr_at(self.step as u64);
                self.optimizer.set_lr(lr);
                lr
            }
            None => self.optimizer.lr(),
        };
        self.optimizer.zero_grad();
        let loss = task.loss()?;
        let value = loss.item()?;
        if !value.is_finite() {
            return Err(ModelError::NonFiniteLoss {
                step: self.step,
                loss: value,
                op: None,
            });
        }
        loss.backward()?;
        let grad_norm = match self.config.clip_grad_norm {
            Some(max_norm) => Some(clip_grad_norm(&self.params, max_norm)?),
            None => None,
        };
        self.optimizer.step()?;
        self.step += 1;
        Ok(StepStats {
            loss: value,
            lr,
            grad_norm,
            units: 0,
        })
        // END SOLUTION
    }

    /// Turn a failed step into the most useful error: anomaly errors of the forward pass and
    /// NaN losses become `NonFiniteLoss` naming the step and, when it can be found, the op.
    fn explain<T: TrainTask + ?Sized>(&mut self, task: &mut T, e: ModelError) -> ModelError {
        let step = self.step;
        match e {
            ModelError::NonFiniteLoss { loss, op: None, .. } if self.config.anomaly_on_nan => {
                // Re-run the same batch with every op checking its output.
                let found = autograd::detect_anomaly(|| match task.loss() {
                    Err(e) => anomaly_op(&e),
                    Ok(l) => l
                        .backward()
                        .err()
                        .and_then(|e| anomaly_op(&ModelError::from(e))),
                });
                let op = found.map(|(op, phase, _)| match phase {
                    "forward" => op,
                    _ => format!("{op} in the {phase} pass"),
                });
                self.optimizer.zero_grad();
                ModelError::NonFiniteLoss { step, loss, op }
            }
            e => match anomaly_op(&e) {
                Some((op, "forward", what)) => ModelError::NonFiniteLoss {
                    step,
                    loss: if what == "NaN" {
                        f32::NAN
                    } else {
                        f32::INFINITY
                    },
                    op: Some(op),
                },
                _ => e,
            },
        }
    }

    /// Evaluate the task and return the result (no history row).
    pub fn evaluate<T: TrainTask + ?Sized>(&mut self, task: &mut T) -> Result<Option<EvalResult>> {
        task.evaluate()
    }

    /// Train until the budget is spent (continuing from [`Trainer::step`], e.g. after
    /// [`Trainer::resume`]), evaluating, logging and checkpointing as configured.
    pub fn fit<T: TrainTask + ?Sized>(&mut self, task: &mut T) -> Result<FitReport> {
        self.config.validate()?;
        let total = self.total_steps(task)?;
        let per_epoch = task.steps_per_epoch();
        let eval_every = self.config.eval_every.or(per_epoch).filter(|&n| n > 0);
        self.history.unit = task.unit().to_string();
        self.history.metric = task.metric_name().map(str::to_string);
        let bar = self.progress_bar(total);
        let (mut window, mut run_units, mut run_seconds) = (Window::default(), 0usize, 0.0f64);
        let mut last = None;
        let mut last_eval = None;
        let mut last_message = Instant::now() - Duration::from_secs(1);
        while self.step < total {
            let started = Instant::now();
            let stats = match self.train_step(task) {
                Ok(s) => s,
                Err(e) => {
                    bar.abandon();
                    if let Some(stem) = &self.config.history_path {
                        // Best effort: the run's error matters more than the history file's.
                        let _ = self.history.write(stem);
                    }
                    return Err(e);
                }
            };
            let seconds = started.elapsed().as_secs_f64();
            self.seconds += seconds;
            run_seconds += seconds;
            run_units += stats.units;
            window.loss_sum += f64::from(stats.loss);
            window.steps += 1;
            window.units += stats.units;
            window.seconds += seconds;
            last = Some(stats);

            let step = self.step;
            let at_eval = eval_every.is_some_and(|n| step.is_multiple_of(n)) || step == total;
            let at_checkpoint = self
                .config
                .checkpoint_every
                .is_some_and(|n| step.is_multiple_of(n));
            if at_eval || at_checkpoint || step.is_multiple_of(self.config.log_every) {
                let eval = if at_eval { task.evaluate()? } else { None };
                if eval.is_some() {
                    last_eval = eval;
                }
                self.history.records.push(Record {
                    step,
                    epoch: per_epoch.map(|s| step as f64 / s as f64),
                    train_loss: window.loss_sum / window.steps as f64,
                    val_loss: eval.map(|e| e.loss),
                    val_metric: eval.and_then(|e| e.metric),
                    lr: stats.lr,
                    throughput: window.units as f64 / window.seconds.max(1e-9),
                    grad_norm: stats.grad_norm.map(f64::from),
                    seconds: self.seconds,
                });
                if let Some(e) = eval {
                    let metric = match (task.metric_name(), e.metric) {
                        (Some(name), Some(m)) => format!(" {name} {m:.4}"),
                        _ => String::new(),
                    };
                    bar.println(format!("step {step}: val loss {:.4}{metric}", e.loss));
                }
                window = Window::default();
            }
            if at_checkpoint {
                if let Some(path) = &self.config.checkpoint_path {
                    let path =
                        PathBuf::from(path.to_string_lossy().replace("{step}", &step.to_string()));
                    self.save_checkpoint(task, &path)?;
                }
                if let Some(stem) = &self.config.history_path {
                    self.history.write(stem)?;
                }
            }
            bar.set_position(step as u64);
            if !bar.is_hidden() && last_message.elapsed() >= Duration::from_millis(100) {
                last_message = Instant::now();
                bar.set_message(format!(
                    "loss {:.4} lr {:.2e} {:.0} {}/s",
                    stats.loss,
                    stats.lr,
                    run_units as f64 / run_seconds.max(1e-9),
                    task.unit()
                ));
            }
        }
        bar.finish();
        if let Some(stem) = &self.config.history_path {
            self.history.write(stem)?;
        }
        Ok(FitReport {
            steps: self.step,
            seconds: run_seconds,
            throughput: run_units as f64 / run_seconds.max(1e-9),
            last_loss: last.map_or(f32::NAN, |s| s.loss),
            eval: last_eval,
        })
    }

    fn progress_bar(&self, total: usize) -> ProgressBar {
        if !self.config.progress || !std::io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{bar:30.cyan/blue} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
        ) {
            bar.set_style(style);
        }
        bar.set_position(self.step as u64);
        bar
    }

    /// Save everything needed to resume: the task's state dict, the optimizer's state, the step,
    /// the history and the task's data position (one safetensors file, written atomically).
    pub fn save_checkpoint<T: TrainTask + ?Sized>(&self, task: &T, path: &Path) -> Result<()> {
        let optimizer = self.optimizer.state_dict();
        let mut tensors: Vec<(String, Tensor)> = Vec::new();
        for (name, t) in task.state_dict() {
            tensors.push((format!("{MODEL_PREFIX}{name}"), t));
        }
        for (name, t) in &optimizer.buffers {
            tensors.push((format!("{OPTIM_PREFIX}{name}"), t.clone()));
        }
        let trainer = json!({
            "step": self.step,
            "seconds": self.seconds,
            "schedule": self.schedule.as_ref().map(|s| s.name()),
            "history": self.history.to_json(),
        });
        let metadata = HashMap::from([
            ("format".to_string(), CHECKPOINT_FORMAT.to_string()),
            ("trainer".to_string(), trainer.to_string()),
            ("optimizer".to_string(), optimizer.metadata_json()),
            ("task".to_string(), task.position().to_string()),
        ]);
        let bytes = safetensors_bytes(&tensors, metadata).map_err(|e| file_err(path, e))?;
        write_atomic(path, &bytes)
    }

    /// Restore a checkpoint written by [`Trainer::save_checkpoint`] into this trainer (step,
    /// optimizer state, history) and `task` (model state, data position). The task and the
    /// optimizer must be built the same way as for the saved run; every mismatch is reported.
    pub fn resume<T: TrainTask + ?Sized>(&mut self, task: &mut T, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|e| file_err(path, e))?;
        let problem = |p: String| ModelError::Checkpoint {
            path: path.to_path_buf(),
            problems: vec![p],
        };
        let (tensors, metadata) = read_safetensors(&bytes).map_err(problem)?;
        let meta = |key: &str| {
            metadata
                .get(key)
                .ok_or_else(|| problem(format!("metadata has no '{key}' entry")))
        };
        if meta("format")? != CHECKPOINT_FORMAT {
            return Err(problem(format!(
                "format is '{}', expected '{CHECKPOINT_FORMAT}'",
                meta("format")?
            )));
        }
        let parse = |key: &str| -> Result<Value> {
            serde_json::from_str(meta(key)?)
                .map_err(|e| problem(format!("'{key}' metadata is not JSON: {e}")))
        };
        let trainer = parse("trainer")?;
        let position = parse("task")?;
        let step = trainer
            .get("step")
            .and_then(Value::as_u64)
            .ok_or_else(|| problem("trainer metadata has no step".into()))?
            as usize;
        let seconds = trainer
            .get("seconds")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let history = History::from_json(trainer.get("history").unwrap_or(&Value::Null))?;
        let (mut model, mut buffers) = (BTreeMap::new(), BTreeMap::new());
        for (name, t) in tensors {
            if let Some(n) = name.strip_prefix(MODEL_PREFIX) {
                model.insert(n.to_string(), t);
            } else if let Some(n) = name.strip_prefix(OPTIM_PREFIX) {
                buffers.insert(n.to_string(), t);
            } else {
                return Err(problem(format!("unexpected tensor '{name}'")));
            }
        }
        let optimizer = OptimizerState::from_metadata_json(meta("optimizer")?, buffers)
            .map_err(|e| problem(e.to_string()))?;
        task.load_state_dict(&model).map_err(|e| match e {
            ModelError::Nn(NnError::StateDict { problems }) => ModelError::Checkpoint {
                path: path.to_path_buf(),
                problems,
            },
            e => e,
        })?;
        self.optimizer
            .load_state_dict(&optimizer)
            .map_err(|e| problem(e.to_string()))?;
        task.set_position(&position)?;
        self.step = step;
        self.seconds = seconds;
        self.history = history;
        Ok(())
    }
}

/// `(op, phase, what)` of an anomaly error, however deeply it is wrapped.
fn anomaly_op(e: &ModelError) -> Option<(String, &'static str, &'static str)> {
    match e.autograd_error()? {
        AutogradError::Anomaly {
            op, phase, what, ..
        } => Some((op.to_string(), phase, what)),
        _ => None,
    }
}

/// Serialise named f32 tensors and string metadata as safetensors bytes.
fn safetensors_bytes(
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> std::result::Result<Vec<u8>, String> {
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            let t = t.contiguous();
            let values = t
                .as_slice()
                .map(<[f32]>::to_vec)
                .unwrap_or_else(|| t.to_vec());
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), t.shape().to_vec(), bytes)
        })
        .collect();
    let views = raw
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.as_str(), v))
                .map_err(|e| format!("tensor '{name}': {e}"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    safetensors::serialize(views, Some(metadata)).map_err(|e| e.to_string())
}

type TensorsAndMetadata = (Vec<(String, Tensor)>, HashMap<String, String>);

/// Parse safetensors bytes holding f32 tensors.
fn read_safetensors(bytes: &[u8]) -> std::result::Result<TensorsAndMetadata, String> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| format!("not a safetensors file: {e}"))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| format!("not a safetensors file: {e}"))?;
    let mut tensors = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(format!(
                "tensor '{name}' is {:?}, expected F32",
                view.dtype()
            ));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let t =
            Tensor::from_vec(values, view.shape()).map_err(|e| format!("tensor '{name}': {e}"))?;
        tensors.push((name, t));
    }
    Ok((tensors, meta.metadata().clone().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_correct_takes_the_first_maximum() {
        let logits = Tensor::from_vec(vec![0.1, 0.9, 0.0, 2.0, 2.0, 1.0], &[2, 3]).unwrap();
        assert_eq!(count_correct(&logits, &[1, 0]), 2);
        assert_eq!(count_correct(&logits, &[0, 1]), 0);
    }

    #[test]
    fn csv_has_the_columns_and_empty_cells() {
        let h = History {
            unit: "samples".into(),
            metric: Some("accuracy".into()),
            records: vec![Record {
                step: 5,
                epoch: None,
                train_loss: 0.5,
                val_loss: Some(0.25),
                val_metric: None,
                lr: 0.1,
                throughput: 100.0,
                grad_norm: None,
                seconds: 1.5,
            }],
        };
        assert_eq!(
            h.to_csv(),
            "step,epoch,train_loss,val_loss,val_metric,lr,throughput,grad_norm,seconds\n5,,0.5,0.25,,0.1,100,,1.5\n"
        );
        assert_eq!(History::from_json(&h.to_json()).unwrap(), h);
    }

    #[test]
    fn safetensors_round_trip_keeps_bits_and_scalars() {
        let a = Tensor::from_vec(vec![1.0, -0.0, f32::MIN_POSITIVE, 3.5e-12], &[2, 2]).unwrap();
        let s = Tensor::scalar(7.0);
        let meta = HashMap::from([("k".to_string(), "v".to_string())]);
        let bytes =
            safetensors_bytes(&[("a".into(), a.clone()), ("s".into(), s.clone())], meta).unwrap();
        let (tensors, meta) = read_safetensors(&bytes).unwrap();
        let map: BTreeMap<_, _> = tensors.into_iter().collect();
        let bits = |t: &Tensor| t.to_vec().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&map["a"]), bits(&a));
        assert_eq!(map["s"].shape(), s.shape());
        assert_eq!(meta["k"], "v");
        assert!(read_safetensors(b"junk").is_err());
    }
}
