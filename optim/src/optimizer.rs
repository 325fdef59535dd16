//! The `Optimizer` trait and parameter groups.
//!
//! An optimizer owns a list of named parameters split into *groups*, each with its own learning
//! rate and weight decay (the common case: no decay for biases and norm weights, see
//! [`ParamGroup::split_decay`]). `step()` first checks that every trainable parameter received a
//! gradient and refuses, naming them, if some did not: a parameter outside the loss's graph is
//! almost always a bug (a detached layer, a re-wrapped tensor), and skipping it silently would
//! hide that bug for a whole training run. Build with `allow_unused: true` to skip them instead.

use std::collections::HashMap;

use autograd::Variable;

use crate::error::{OptimError, Result};
use crate::state::OptimizerState;

/// What every optimizer does: update parameters from their gradients, in place.
///
/// ```
/// use autograd::Variable;
/// use optim::{Optimizer, Sgd, SgdConfig};
/// use tensor::Tensor;
///
/// let w = Variable::parameter(Tensor::from_vec(vec![1.0, -2.0], &[2]).unwrap());
/// let mut opt = Sgd::new(vec![("w".into(), w.clone())], SgdConfig { lr: 0.1, ..Default::default() }).unwrap();
/// let loss = w.mul(&w).unwrap().sum_all().unwrap(); // d loss / dw = 2w
/// loss.backward().unwrap();
/// opt.step().unwrap();
/// assert_eq!(w.value().to_vec(), vec![0.8, -1.6]); // w - 0.1 * 2w
/// opt.zero_grad();
/// assert!(w.grad().is_none());
/// ```
pub trait Optimizer {
    /// The optimizer's name as used in messages and saved states (`"Sgd"`, `"Adam"`, ...).
    fn name(&self) -> &'static str;

    /// The parameter groups (read-only view).
    fn groups(&self) -> &ParamGroups;

    /// The parameter groups (to change a group's lr or weight decay).
    fn groups_mut(&mut self) -> &mut ParamGroups;

    /// Update every parameter from its gradient. Errors, naming them, if trainable parameters
    /// received no gradient (unless built with `allow_unused`), before changing anything.
    fn step(&mut self) -> Result<()>;

    /// How many `f32` of state the optimizer keeps (moments, buffers): its memory cost.
    fn state_numel(&self) -> usize;

    /// Everything needed to resume bit-identically: step counts, per-group and optimizer-wide
    /// hyper-parameters, and every buffer by `"<param name>.<buffer>"`.
    fn state_dict(&self) -> OptimizerState;

    /// Restore a state saved by [`Optimizer::state_dict`] of the same optimizer over parameters
    /// with the same names and shapes. Every mismatch is reported, and nothing changes unless
    /// all of it fits.
    fn load_state_dict(&mut self, state: &OptimizerState) -> Result<()>;

    /// Clear every parameter's gradient (PyTorch's `set_to_none`: the next backward starts from
    /// nothing rather than adding to the old gradient).
    fn zero_grad(&self) {
        self.groups().zero_grad();
    }

    /// The learning rate of the first group (PyTorch's `param_groups[0]["lr"]`).
    fn lr(&self) -> f64 {
        self.groups().groups().first().map_or(0.0, |g| g.lr)
    }

    /// Set every group's learning rate to `lr` (what a schedule does each step).
    fn set_lr(&mut self, lr: f64) {
        for g in self.groups_mut().groups_mut() {
            g.lr = lr;
        }
    }

    /// Set every group's learning rate to `factor` times its base (configured) rate, keeping the
    /// ratios between groups.
    fn set_lr_factor(&mut self, factor: f64) {
        for g in self.groups_mut().groups_mut() {
            g.lr = g.base_lr * factor;
        }
    }

    /// How many successful `step()` calls this optimizer made (saved in the state; the step a
    /// schedule should be asked about).
    fn steps(&self) -> u64 {
        self.groups().steps()
    }

    /// Every parameter with its name, in group order.
    fn named_parameters(&self) -> Vec<(String, Variable)> {
        self.groups().named_parameters()
    }
}

/// A user-facing group of named parameters with optional overrides of the optimizer's lr and
/// weight decay.
#[derive(Clone)]
pub struct ParamGroup {
    /// Parameters with their dotted names (as `Module::named_parameters` returns them).
    pub params: Vec<(String, Variable)>,
    /// This group's learning rate (`None`: the optimizer's).
    pub lr: Option<f64>,
    /// This group's weight decay (`None`: the optimizer's).
    pub weight_decay: Option<f64>,
}

impl ParamGroup {
    /// A group using the optimizer's lr and weight decay.
    pub fn new(params: Vec<(String, Variable)>) -> ParamGroup {
        ParamGroup {
            params,
            lr: None,
            weight_decay: None,
        }
    }

    /// The same group with its own learning rate.
    pub fn with_lr(mut self, lr: f64) -> ParamGroup {
        self.lr = Some(lr);
        self
    }

    /// The same group with its own weight decay.
    pub fn with_weight_decay(mut self, weight_decay: f64) -> ParamGroup {
        self.weight_decay = Some(weight_decay);
        self
    }

    /// The common split (nanoGPT's): parameters with 2 or more dimensions (matmul weights,
    /// embeddings, convolution kernels) decay with `weight_decay`; 1-D and 0-D ones (biases,
    /// LayerNorm/BatchNorm weights and biases) do not. Always returns two groups, in that order
    /// (either may be empty); the order of parameters inside each group is kept.
    pub fn split_decay(params: Vec<(String, Variable)>, weight_decay: f64) -> Vec<ParamGroup> {
        let (decay, no_decay): (Vec<_>, Vec<_>) =
            params.into_iter().partition(|(_, p)| p.ndim() >= 2);
        vec![
            ParamGroup::new(decay).with_weight_decay(weight_decay),
            ParamGroup::new(no_decay).with_weight_decay(0.0),
        ]
    }
}

impl From<Vec<(String, Variable)>> for ParamGroup {
    fn from(params: Vec<(String, Variable)>) -> ParamGroup {
        ParamGroup::new(params)
    }
}

/// One resolved group inside an optimizer: its parameters and its hyper-parameters.
pub struct Group {
    names: Vec<String>,
    vars: Vec<Variable>,
    /// The current learning rate (schedules change it).
    pub lr: f64,
    /// The learning rate the group was configured with ([`Optimizer::set_lr_factor`] scales it).
    pub base_lr: f64,
    /// The weight decay (L2 for Sgd/Adam/RmsProp, decoupled for AdamW).
    pub weight_decay: f64,
}

impl Group {
    /// The parameters' names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The parameters, in order.
    pub fn params(&self) -> &[Variable] {
        &self.vars
    }

    /// `(name, parameter)` pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Variable)> {
        self.names.iter().map(String::as_str).zip(&self.vars)
    }

    /// The number of scalars in this group.
    pub fn numel(&self) -> usize {
        self.vars.iter().map(Variable::numel).sum()
    }
}

/// The parameters of an optimizer, in groups, plus the bookkeeping every optimizer shares
/// (whether unused parameters are allowed, how many steps were taken).
pub struct ParamGroups {
    groups: Vec<Group>,
    allow_unused: bool,
    steps: u64,
}

impl ParamGroups {
    /// Resolve user groups against the optimizer's defaults, checking that every parameter is a
    /// leaf, appears once, and has a unique name, and that lrs and decays are finite and >= 0.
    pub fn new(
        what: &'static str,
        groups: Vec<ParamGroup>,
        default_lr: f64,
        default_weight_decay: f64,
        allow_unused: bool,
    ) -> Result<ParamGroups> {
        if groups.iter().all(|g| g.params.is_empty()) {
            return Err(OptimError::config(what, "got an empty parameter list"));
        }
        let mut by_id: HashMap<u64, String> = HashMap::new();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        let mut resolved = Vec::with_capacity(groups.len());
        for (gi, group) in groups.into_iter().enumerate() {
            let lr = group.lr.unwrap_or(default_lr);
            let weight_decay = group.weight_decay.unwrap_or(default_weight_decay);
            check_non_negative(what, &format!("group {gi} lr"), lr)?;
            check_non_negative(what, &format!("group {gi} weight_decay"), weight_decay)?;
            let mut names = Vec::with_capacity(group.params.len());
            let mut vars = Vec::with_capacity(group.params.len());
            for (name, var) in group.params {
                if !var.is_leaf() {
                    return Err(OptimError::config(
                        what,
                        format!(
                            "parameter '{name}' is not a leaf (it comes from {}); optimizers update leaves only",
                            var.grad_fn().unwrap_or("an op")
                        ),
                    ));
                }
                if let Some(first) = by_id.get(&var.id()) {
                    return Err(OptimError::config(
                        what,
                        format!("parameter '{name}' is the same variable as '{first}'; each parameter may appear once, in one group"),
                    ));
                }
                if let Some(other) = by_name.get(&name) {
                    return Err(OptimError::config(
                        what,
                        format!("two parameters are named '{name}' (groups {other} and {gi}); names must be unique so saved states can find them"),
                    ));
                }
                by_id.insert(var.id(), name.clone());
                by_name.insert(name.clone(), gi);
                names.push(name);
                vars.push(var);
            }
            resolved.push(Group {
                names,
                vars,
                lr,
                base_lr: lr,
                weight_decay,
            });
        }
        Ok(ParamGroups {
            groups: resolved,
            allow_unused,
            steps: 0,
        })
    }

    /// The groups.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// The groups, to change a group's `lr` or `weight_decay`.
    pub fn groups_mut(&mut self) -> &mut [Group] {
        &mut self.groups
    }

    /// Whether parameters without a gradient are skipped rather than refused.
    pub fn allow_unused(&self) -> bool {
        self.allow_unused
    }

    /// Change whether parameters without a gradient are skipped.
    pub fn set_allow_unused(&mut self, allow: bool) {
        self.allow_unused = allow;
    }

    /// How many successful steps were taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Count one more successful step (called at the end of every `step()`).
    pub fn finish_step(&mut self) {
        self.steps += 1;
    }

    pub(crate) fn set_steps(&mut self, steps: u64) {
        self.steps = steps;
    }

    /// All parameters in group order (what per-parameter state is aligned with).
    pub fn params(&self) -> impl Iterator<Item = (&str, &Variable)> {
        self.groups.iter().flat_map(Group::iter)
    }

    /// The total number of parameters (tensors).
    pub fn len(&self) -> usize {
        self.groups.iter().map(|g| g.vars.len()).sum()
    }

    /// Whether there are no parameters at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every parameter with its name, in group order.
    pub fn named_parameters(&self) -> Vec<(String, Variable)> {
        self.params()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect()
    }

    /// Clear every parameter's gradient.
    pub fn zero_grad(&self) {
        for (_, v) in self.params() {
            v.zero_grad();
        }
    }

    /// Refuse to step when a trainable parameter has no gradient (unless unused ones are
    /// allowed), naming every such parameter. Allocates nothing when all is well.
    pub fn check_grads(&self, optimizer: &'static str) -> Result<()> {
        // HINT: nothing to check when unused parameters are allowed; otherwise collect the names of
        // HINT: the parameters that require grad but have none, and return OptimError::MissingGrad
        // HINT: { optimizer, names } if there are any (without allocating when there are none)
        // BEGIN SOLUTION
        if self.allow_unused {
            return Ok(());
        }
        let missing = |v: &Variable| v.requires_grad() && v.grad().is_none();
        if !self.params().any(|(_, v)| missing(v)) {
            return Ok(());
        }
        let names = self
            .params()
            .filter(|(_, v)| missing(v))
            .map(|(n, _)| n.to_string())
            .collect();
        Err(OptimError::MissingGrad { optimizer, names })
        // END SOLUTION
    }
}

/// Check that a hyper-parameter is finite and >= 0.
pub(crate) fn check_non_negative(what: &'static str, name: &str, value: f64) -> Result<()> {
    if !value.is_finite() || value < 0.0 {
        return Err(OptimError::config(
            what,
            format!("{name} must be finite and >= 0, got {value}"),
        ));
    }
    Ok(())
}

/// Check that a hyper-parameter lies in `[0, 1)`.
pub(crate) fn check_unit(what: &'static str, name: &str, value: f64) -> Result<()> {
    if !(0.0..1.0).contains(&value) {
        return Err(OptimError::config(
            what,
            format!("{name} must be in [0, 1), got {value}"),
        ));
    }
    Ok(())
}

/// The gradient of `var` as a contiguous tensor, or `None` when it has none (or is frozen).
/// A cheap clone (a pointer) when the gradient is already contiguous, which backward ensures in
/// the common case; a non-contiguous gradient is copied once.
pub(crate) fn contiguous_grad(var: &Variable) -> Option<tensor::Tensor> {
    if !var.requires_grad() {
        return None;
    }
    var.grad().map(|g| g.contiguous())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensor::Tensor;

    fn p(shape: &[usize]) -> Variable {
        Variable::parameter(Tensor::zeros(shape))
    }

    /// Splitting parameters for weight decay puts matrices (2-d and up) in the decayed group and
    /// vectors (biases, norm weights) in the undecayed one.
    #[test]
    fn split_decay_by_ndim() {
        let params = vec![
            ("fc.weight".to_string(), p(&[3, 2])),
            ("fc.bias".to_string(), p(&[3])),
            ("ln.weight".to_string(), p(&[3])),
            ("wte.weight".to_string(), p(&[10, 3])),
        ];
        let groups = ParamGroup::split_decay(params, 0.1);
        let names = |g: &ParamGroup| g.params.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&groups[0]), vec!["fc.weight", "wte.weight"]);
        assert_eq!(names(&groups[1]), vec!["fc.bias", "ln.weight"]);
        assert_eq!(groups[0].weight_decay, Some(0.1));
        assert_eq!(groups[1].weight_decay, Some(0.0));
    }

    /// A variable listed twice, two parameters with one name, a non-leaf variable, an empty list or
    /// a negative group lr is refused with an error naming it.
    #[test]
    fn duplicates_and_non_leaves_are_refused() {
        let a = p(&[2]);
        let e = ParamGroups::new(
            "Sgd",
            vec![ParamGroup::new(vec![
                ("a".into(), a.clone()),
                ("b".into(), a.clone()),
            ])],
            0.1,
            0.0,
            false,
        )
        .err()
        .unwrap();
        assert!(
            e.to_string().contains("'b' is the same variable as 'a'"),
            "{e}"
        );
        let e = ParamGroups::new(
            "Sgd",
            vec![
                ParamGroup::new(vec![("a".into(), a.clone())]),
                ParamGroup::new(vec![("a".into(), p(&[1]))]),
            ],
            0.1,
            0.0,
            false,
        )
        .err()
        .unwrap();
        assert!(
            e.to_string().contains("two parameters are named 'a'"),
            "{e}"
        );
        let y = a.mul(&a).unwrap();
        let e = ParamGroups::new(
            "Sgd",
            vec![ParamGroup::new(vec![("y".into(), y)])],
            0.1,
            0.0,
            false,
        )
        .err()
        .unwrap();
        assert!(
            e.to_string()
                .contains("'y' is not a leaf (it comes from MulBackward)"),
            "{e}"
        );
        let e = ParamGroups::new("Sgd", vec![ParamGroup::new(vec![])], 0.1, 0.0, false)
            .err()
            .unwrap();
        assert!(e.to_string().contains("empty parameter list"), "{e}");
        let e = ParamGroups::new(
            "Sgd",
            vec![ParamGroup::new(vec![("a".into(), a)]).with_lr(-1.0)],
            0.1,
            0.0,
            false,
        )
        .err()
        .unwrap();
        assert!(
            e.to_string()
                .contains("group 0 lr must be finite and >= 0, got -1"),
            "{e}"
        );
    }

    /// The gradient check names every trainable parameter without a gradient and skips frozen ones
    /// (those not requiring grad).
    #[test]
    fn check_grads_names_missing_and_skips_frozen() {
        let a = p(&[2]);
        let frozen = Variable::constant(Tensor::zeros(&[2]));
        let b = p(&[2]);
        let groups = ParamGroups::new(
            "Adam",
            vec![ParamGroup::new(vec![
                ("a".into(), a.clone()),
                ("frozen".into(), frozen),
                ("b".into(), b.clone()),
            ])],
            0.1,
            0.0,
            false,
        )
        .unwrap();
        a.set_grad(Some(Tensor::ones(&[2]))).unwrap();
        let e = groups.check_grads("Adam").unwrap_err();
        assert_eq!(
            e,
            OptimError::MissingGrad {
                optimizer: "Adam",
                names: vec!["b".into()]
            }
        );
        b.set_grad(Some(Tensor::ones(&[2]))).unwrap();
        groups.check_grads("Adam").unwrap();
    }
}
