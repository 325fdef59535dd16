//! [`LanguageModel`]: a model of token ids on random windows of a token stream as a
//! [`TrainTask`] (metric: perplexity).

use std::collections::BTreeMap;

use autograd::Variable;
use data::{LmBatch, LmBatcher};
use nn::Module;
use serde_json::{json, Value};
use tensor::Tensor;

use crate::error::{ModelError, Result};

use super::task::{load_module_state, usize_field};
use super::*;

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

    fn current_batch(&self) -> Option<TaskBatch> {
        self.current.clone().map(TaskBatch::Lm)
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        self.model.named_parameters()
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
