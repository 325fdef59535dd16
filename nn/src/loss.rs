//! Loss functions: one number that says how wrong a prediction is, and whose gradient says how to
//! fix it. Every loss reduces by the mean by default ([`Reduction::Mean`]), like PyTorch.
//!
//! | loss | input | target | per element |
//! |---|---|---|---|
//! | [`MseLoss`] | any shape | same shape | `(x - y)^2` |
//! | [`CrossEntropyLoss`] | logits `(N, C)` or `(N, T, C)` | class ids `&[usize]` | `-log softmax(x)[t]` (smoothed) |
//! | [`NllLoss`] | log-probabilities `(N, C)` or `(N, T, C)` | class ids | `-x[t]` |
//! | [`BceWithLogitsLoss`] | logits, any shape | same shape, in `[0, 1]` | `max(x, 0) - x y + log(1 + e^-abs(x))` |
//! | [`BceLoss`] | probabilities in `[0, 1]` | same shape | `-(y log p + (1 - y) log(1 - p))`, logs floored at -100 |
//!
//! Numerical stability is the theme: cross-entropy never forms `softmax` and then its `log`
//! (logits of 1e4 overflow `e^x`); it uses the fused max-shifted log-softmax of `tensor`.
//! BCE-with-logits computes `log sigmoid(x)` as a 2-class log-softmax of `[0, x]`, which is
//! stable for any `x` and, unlike the literal `max(x, 0) + log(1 + e^-abs(x))` composition, has
//! the right gradient `sigmoid(x) - y` at `x = 0` too (`max` and `abs` have kinks there whose
//! one-sided derivatives do not add up).
//!
//! Note on layout: for sequences, the class dim is the *last* one (`(N, T, C)`, the GPT layout);
//! PyTorch's `CrossEntropyLoss` wants `(N, C, T)` instead.

use autograd::Variable;

use crate::error::{NnError, Result};

/// How per-element losses become one number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The mean over elements (over counted rows for the class losses): the default.
    #[default]
    Mean,
    /// The sum.
    Sum,
}

/// Reduce per-element losses to a 0-d variable.
fn reduce(per_element: &Variable, reduction: Reduction) -> Result<Variable> {
    Ok(match reduction {
        Reduction::Mean => per_element.mean_all()?,
        Reduction::Sum => per_element.sum_all()?,
    })
}

fn same_shape(layer: &'static str, input: &Variable, target: &Variable) -> Result<()> {
    if input.shape() != target.shape() {
        return Err(NnError::Invalid {
            op: layer,
            reason: format!(
                "input shape {:?} and target shape {:?} must be equal",
                input.shape(),
                target.shape()
            ),
        });
    }
    Ok(())
}

// ----- mean squared error -----

/// `reduce((input - target)^2)`.
pub fn mse_loss(input: &Variable, target: &Variable, reduction: Reduction) -> Result<Variable> {
    same_shape("MseLoss", input, target)?;
    mse_formula(input, target, reduction)
}

/// `reduce((input - target)^2)` for inputs already checked to have equal shapes.
fn mse_formula(input: &Variable, target: &Variable, reduction: Reduction) -> Result<Variable> {
    // HINT: the squared difference (input - target)^2, reduced by the mean or the sum.
    // BEGIN SOLUTION
    let diff = input.sub(target)?;
    reduce(&diff.mul(&diff)?, reduction)
    // END SOLUTION
}

/// Mean squared error, for regression.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MseLoss {
    /// Mean (default) or sum.
    pub reduction: Reduction,
}

impl MseLoss {
    /// The mean of squared differences.
    pub fn new() -> MseLoss {
        MseLoss::default()
    }

    /// Use `reduction` instead of the mean.
    pub fn with_reduction(mut self, reduction: Reduction) -> MseLoss {
        self.reduction = reduction;
        self
    }

    /// The loss of `input` against `target` (same shape).
    pub fn forward(&self, input: &Variable, target: &Variable) -> Result<Variable> {
        mse_loss(input, target, self.reduction)
    }
}

// ----- cross-entropy and negative log-likelihood -----

/// Cross-entropy of `logits` `(N, C)` or `(N, T, C)` against class ids (one per row, `N` or
/// `N*T` of them): `-(1 - eps) log p[t] - eps/C sum_j log p[j]` with `p = softmax(logits)`.
/// Rows whose target is `ignore_index` count neither in the loss nor in the mean; when every row
/// is ignored the loss is 0 (not NaN).
pub fn cross_entropy(
    logits: &Variable,
    targets: &[usize],
    ignore_index: Option<usize>,
    label_smoothing: f32,
    reduction: Reduction,
) -> Result<Variable> {
    // HINT: Variable::cross_entropy is the fused, max-shifted mean; a sum is the mean times the
    // HINT: count.
    // BEGIN SOLUTION
    let mean = logits.cross_entropy(targets, ignore_index, label_smoothing)?;
    match reduction {
        Reduction::Mean => Ok(mean),
        Reduction::Sum => {
            let count = targets.iter().filter(|&&t| Some(t) != ignore_index).count();
            Ok(mean.mul_scalar(count as f32)?)
        }
    }
    // END SOLUTION
}

/// Cross-entropy from logits with integer targets (log-softmax and NLL fused).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CrossEntropyLoss {
    /// A target value whose rows are skipped (e.g. padding).
    pub ignore_index: Option<usize>,
    /// Mix `eps` of the uniform distribution into the one-hot target, in `[0, 1]`.
    pub label_smoothing: f32,
    /// Mean over counted rows (default) or sum.
    pub reduction: Reduction,
}

impl CrossEntropyLoss {
    /// Plain mean cross-entropy.
    pub fn new() -> CrossEntropyLoss {
        CrossEntropyLoss::default()
    }

    /// Skip rows whose target is `index`.
    pub fn ignore_index(mut self, index: usize) -> CrossEntropyLoss {
        self.ignore_index = Some(index);
        self
    }

    /// Smooth the targets by `eps`.
    pub fn label_smoothing(mut self, eps: f32) -> CrossEntropyLoss {
        self.label_smoothing = eps;
        self
    }

    /// Use `reduction` instead of the mean.
    pub fn with_reduction(mut self, reduction: Reduction) -> CrossEntropyLoss {
        self.reduction = reduction;
        self
    }

    /// The loss of `logits` `(N, C)` or `(N, T, C)` against one class id per row.
    pub fn forward(&self, logits: &Variable, targets: &[usize]) -> Result<Variable> {
        cross_entropy(
            logits,
            targets,
            self.ignore_index,
            self.label_smoothing,
            self.reduction,
        )
    }
}

/// Negative log-likelihood of log-probabilities `(N, C)` or `(N, T, C)` against class ids:
/// `-log_probs[row, target]`, reduced over the rows whose target is not `ignore_index` (0 when
/// every row is ignored). Composed from a flat `index_select`, so the gradient is exact.
pub fn nll_loss(
    log_probs: &Variable,
    targets: &[usize],
    ignore_index: Option<usize>,
    reduction: Reduction,
) -> Result<Variable> {
    let shape = log_probs.shape();
    if shape.len() < 2 || shape.len() > 3 {
        return Err(NnError::Invalid {
            op: "NllLoss",
            reason: format!("input must be (N, C) or (N, T, C), got shape {shape:?}"),
        });
    }
    let c = shape[shape.len() - 1];
    let rows = log_probs.numel() / c.max(1);
    if targets.len() != rows {
        return Err(NnError::Invalid {
            op: "NllLoss",
            reason: format!(
                "{} targets for input of shape {shape:?} ({rows} rows)",
                targets.len()
            ),
        });
    }
    for (row, &t) in targets.iter().enumerate() {
        if Some(t) != ignore_index && t >= c {
            return Err(NnError::Invalid {
                op: "NllLoss",
                reason: format!("target {t} in row {row} is out of range for {c} classes"),
            });
        }
    }
    nll_formula(log_probs, targets, ignore_index, reduction)
}

/// `-reduce(log_probs[row, target])` over the rows not ignored, for checked inputs.
fn nll_formula(
    log_probs: &Variable,
    targets: &[usize],
    ignore_index: Option<usize>,
    reduction: Reduction,
) -> Result<Variable> {
    // HINT: flatten to (rows * C) and index_select the entries row * C + target.
    // BEGIN SOLUTION
    let c = log_probs.shape()[log_probs.ndim() - 1];
    let rows = targets.len();
    let picks: Vec<usize> = targets
        .iter()
        .enumerate()
        .filter(|(_, &t)| Some(t) != ignore_index)
        .map(|(row, &t)| row * c + t)
        .collect();
    if picks.is_empty() {
        // Nothing to average: a zero loss that is still connected to the graph.
        return Ok(log_probs.sum_all()?.mul_scalar(0.0)?);
    }
    let picked = log_probs.reshape_to(&[rows * c])?.index_select(0, &picks)?;
    Ok(reduce(&picked, reduction)?.neg()?)
    // END SOLUTION
}

/// Negative log-likelihood on log-probabilities (e.g. the output of `LogSoftmax`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NllLoss {
    /// A target value whose rows are skipped.
    pub ignore_index: Option<usize>,
    /// Mean over counted rows (default) or sum.
    pub reduction: Reduction,
}

impl NllLoss {
    /// Plain mean NLL.
    pub fn new() -> NllLoss {
        NllLoss::default()
    }

    /// Skip rows whose target is `index`.
    pub fn ignore_index(mut self, index: usize) -> NllLoss {
        self.ignore_index = Some(index);
        self
    }

    /// Use `reduction` instead of the mean.
    pub fn with_reduction(mut self, reduction: Reduction) -> NllLoss {
        self.reduction = reduction;
        self
    }

    /// The loss of `log_probs` against one class id per row.
    pub fn forward(&self, log_probs: &Variable, targets: &[usize]) -> Result<Variable> {
        nll_loss(log_probs, targets, self.ignore_index, self.reduction)
    }
}

// ----- binary cross-entropy -----

/// `log sigmoid(x)`, stable for any `x`: the second entry of `log_softmax([0, x])`.
pub fn log_sigmoid(x: &Variable) -> Result<Variable> {
    // HINT: sigmoid(x) = e^x / (e^0 + e^x) is a 2-class softmax; log_softmax is max-shifted.
    // BEGIN SOLUTION
    let last = x.ndim() as isize;
    let zeros = Variable::constant(tensor::Tensor::zeros(&x.shape()));
    let pair = Variable::stack(&[zeros, x.clone()], last)?;
    Ok(pair.log_softmax(last)?.narrow(last, 1, 1)?.squeeze(last)?)
    // END SOLUTION
}

/// Binary cross-entropy from logits: `max(x, 0) - x y + log(1 + e^-abs(x))` per element, computed
/// as `(1 - y) x - log sigmoid(x)` (the same function) so the gradient is `sigmoid(x) - y`
/// everywhere. Targets may be soft (any value in `[0, 1]`).
pub fn binary_cross_entropy_with_logits(
    logits: &Variable,
    target: &Variable,
    reduction: Reduction,
) -> Result<Variable> {
    same_shape("BceWithLogitsLoss", logits, target)?;
    bce_with_logits_formula(logits, target, reduction)
}

/// `(1 - y) x - log sigmoid(x)`, reduced, for checked inputs.
fn bce_with_logits_formula(
    logits: &Variable,
    target: &Variable,
    reduction: Reduction,
) -> Result<Variable> {
    // HINT: with z the logits, the per-element loss is (1 - y) z - log_sigmoid(z), which never
    // HINT: takes the log of a rounded probability; then reduce.
    // BEGIN SOLUTION
    let one_minus_y = target.neg()?.add_scalar(1.0)?;
    let per_element = one_minus_y.mul(logits)?.sub(&log_sigmoid(logits)?)?;
    reduce(&per_element, reduction)
    // END SOLUTION
}

/// Binary cross-entropy on logits (sigmoid and BCE fused, stable).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BceWithLogitsLoss {
    /// Mean (default) or sum.
    pub reduction: Reduction,
}

impl BceWithLogitsLoss {
    /// The mean BCE-with-logits.
    pub fn new() -> BceWithLogitsLoss {
        BceWithLogitsLoss::default()
    }

    /// Use `reduction` instead of the mean.
    pub fn with_reduction(mut self, reduction: Reduction) -> BceWithLogitsLoss {
        self.reduction = reduction;
        self
    }

    /// The loss of `logits` against `target` (same shape).
    pub fn forward(&self, logits: &Variable, target: &Variable) -> Result<Variable> {
        binary_cross_entropy_with_logits(logits, target, self.reduction)
    }
}

/// The floor PyTorch puts under each log of `BCELoss`, so `p = 0` or `1` gives a finite loss.
pub const BCE_LOG_FLOOR: f32 = -100.0;

/// A positive input below `e^-100`: flooring `p` there keeps `log` finite (so its backward never
/// computes `0 / 0`) while `log` still lands under [`BCE_LOG_FLOOR`].
const BCE_INPUT_FLOOR: f32 = 1e-44;

/// `max(log(v), -100)` with a zero gradient where the floor binds.
fn floored_log(v: &Variable) -> Result<Variable> {
    Ok(v.clamp(BCE_INPUT_FLOOR, f32::INFINITY)?
        .log()?
        .clamp(BCE_LOG_FLOOR, f32::INFINITY)?)
}

/// Binary cross-entropy of probabilities `p` in `[0, 1]` against targets `y`:
/// `-(y log p + (1 - y) log(1 - p))` with each log floored at -100 (PyTorch's clamp).
pub fn binary_cross_entropy(
    probs: &Variable,
    target: &Variable,
    reduction: Reduction,
) -> Result<Variable> {
    same_shape("BceLoss", probs, target)?;
    let values = probs.value().to_vec();
    if let Some((i, v)) = values
        .iter()
        .enumerate()
        .find(|(_, v)| !(0.0..=1.0).contains(*v))
    {
        return Err(NnError::Invalid {
            op: "BceLoss",
            reason: format!(
                "every input must be a probability in [0, 1]; element {i} of shape {:?} is {v}",
                probs.shape()
            ),
        });
    }
    bce_formula(probs, target, reduction)
}

/// `-(y log p + (1 - y) log(1 - p))` with floored logs, reduced, for checked inputs.
fn bce_formula(probs: &Variable, target: &Variable, reduction: Reduction) -> Result<Variable> {
    // HINT: the per-element loss is -(y log p + (1 - y) log(1 - p)), with both logs floored so a p
    // HINT: of 0 or 1 stays finite; then reduce.
    // BEGIN SOLUTION
    let log_p = floored_log(probs)?;
    let log_q = floored_log(&probs.neg()?.add_scalar(1.0)?)?;
    let one_minus_y = target.neg()?.add_scalar(1.0)?;
    let per_element = target.mul(&log_p)?.add(&one_minus_y.mul(&log_q)?)?.neg()?;
    reduce(&per_element, reduction)
    // END SOLUTION
}

/// Binary cross-entropy on probabilities (after a `Sigmoid`); prefer [`BceWithLogitsLoss`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BceLoss {
    /// Mean (default) or sum.
    pub reduction: Reduction,
}

impl BceLoss {
    /// The mean BCE.
    pub fn new() -> BceLoss {
        BceLoss::default()
    }

    /// Use `reduction` instead of the mean.
    pub fn with_reduction(mut self, reduction: Reduction) -> BceLoss {
        self.reduction = reduction;
        self
    }

    /// The loss of `probs` against `target` (same shape).
    pub fn forward(&self, probs: &Variable, target: &Variable) -> Result<Variable> {
        binary_cross_entropy(probs, target, self.reduction)
    }
}
