//! [`Classification`]: a classifier, its `DataLoader`s and cross-entropy as a [`TrainTask`]
//! (metric: accuracy).

use std::collections::BTreeMap;

use autograd::Variable;
use data::{Batch, DataLoader, EpochIter};
use nn::loss::CrossEntropyLoss;
use nn::Module;
use serde_json::{json, Value};
use tensor::Tensor;

use crate::error::{ModelError, Result};

use super::task::{
    count_correct, load_module_state, usize_field, EvalResult, TaskBatch, TrainTask,
};

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

    fn current_batch(&self) -> Option<TaskBatch> {
        self.current.clone().map(TaskBatch::Supervised)
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        self.model.named_parameters()
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
