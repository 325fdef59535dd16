//! The model side of the doctor: a [`DoctorSubject`] is named parameters and a loss on a
//! batch; [`ModuleSubject`] adapts any float-in `nn::Module`, and a [`Gpt`] is a subject itself.

use autograd::Variable;
use data::Targets;
use nn::loss::{cross_entropy, mse_loss, Reduction};
use nn::Module;
use optim::Optimizer;

use crate::error::{ModelError, Result};
use crate::gpt::Gpt;

use super::*;

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

/// The usual loss of a labelled batch: cross-entropy of `(N, C)` outputs against class targets,
/// mean squared error against value targets. Language-model windows hold token ids, which a
/// float-in `Module` cannot read: a model of token ids is a subject itself (as [`Gpt`] is).
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
        DoctorBatch::Lm(b) => Err(ModelError::Invalid {
            op: "standard_loss",
            reason: format!(
                "a language-model batch ({} x {} token ids) needs a model of token ids: \
                 implement DoctorSubject for it (as Gpt does)",
                b.batch_size, b.block_size
            ),
        }),
    }
}

/// A GPT is diagnosed as it trains: next-token cross-entropy of language-model windows.
impl DoctorSubject for Gpt {
    fn named_parameters(&self) -> Vec<(String, Variable)> {
        Module::named_parameters(self)
    }

    fn loss(&mut self, batch: &DoctorBatch) -> Result<Variable> {
        match batch {
            DoctorBatch::Lm(b) => {
                self.train();
                Gpt::loss(self, &b.inputs, &b.targets, b.batch_size, b.block_size)
            }
            DoctorBatch::Supervised(_) => Err(ModelError::Invalid {
                op: "Gpt (doctor)",
                reason: "a GPT needs language-model batches (token windows), got labelled samples"
                    .into(),
            }),
        }
    }
}

/// Builds an optimizer over named parameters (how `optim`'s constructors take them).
pub type OptimizerFactory<'a> =
    dyn Fn(Vec<(String, Variable)>) -> optim::Result<Box<dyn Optimizer>> + 'a;
