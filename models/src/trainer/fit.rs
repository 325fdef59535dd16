//! The [`Trainer`] and its loop: one step (schedule, zero_grad, loss, NaN check, backward,
//! clipping, optimizer step), and [`Trainer::fit`] (evaluation, history, progress, checkpoints).
//! [`Trainer::fit_with`] runs the same loop with a hook called after every step: it sees the
//! step's [`StepEvent`] and may save its own checkpoints or stop the run ([`Control::Stop`],
//! e.g. on Ctrl-C), which is how a command line keeps a best-validation copy or finishes cleanly.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use autograd::{AutogradError, Variable};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use optim::{clip_grad_norm, LrSchedule, Optimizer};

use crate::error::{ModelError, Result};

use super::*;

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

/// What a [`Trainer::fit_with`] hook sees after each step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepEvent {
    /// Optimizer steps taken so far (this step included).
    pub step: usize,
    /// The step at which the budget ends.
    pub total: usize,
    /// The loss of this step's batch.
    pub loss: f32,
    /// The evaluation made after this step, if one was due.
    pub eval: Option<EvalResult>,
}

/// What a [`Trainer::fit_with`] hook asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Go on to the next step.
    Continue,
    /// Stop now (the step just taken is complete; the history is written as at the end).
    Stop,
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
    pub(super) config: TrainerConfig,
    pub(super) optimizer: Box<dyn Optimizer>,
    pub(super) schedule: Option<Box<dyn LrSchedule>>,
    /// The optimizer's parameters, fetched once (for clipping).
    pub(super) params: Vec<(String, Variable)>,
    pub(super) step: usize,
    pub(super) seconds: f64,
    pub(super) history: History,
}

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
        self.fit_with(task, |_, _, _| Ok(Control::Continue))
    }

    /// [`Trainer::fit`] calling `hook(trainer, task, event)` after every step (after that step's
    /// evaluation, history row and checkpoint). [`Control::Stop`] ends the run there, with the
    /// report of the steps taken so far ([`FitReport::steps`] below the budget).
    pub fn fit_with<T, H>(&mut self, task: &mut T, mut hook: H) -> Result<FitReport>
    where
        T: TrainTask + ?Sized,
        H: FnMut(&Trainer, &T, &StepEvent) -> Result<Control>,
    {
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
            let mut step_eval = None;
            if at_eval || at_checkpoint || step.is_multiple_of(self.config.log_every) {
                let eval = if at_eval { task.evaluate()? } else { None };
                step_eval = eval;
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
            let event = StepEvent {
                step,
                total,
                loss: stats.loss,
                eval: step_eval,
            };
            if hook(self, task, &event)? == Control::Stop {
                break;
            }
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
