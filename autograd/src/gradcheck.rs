//! `gradcheck`: the proof that a backward is right.
//!
//! For a function `f` of some tensors, compare the gradient backward computes with central finite
//! differences, `(L(x + eps) - L(x - eps)) / 2 eps`, for every element of every input. A non-scalar
//! output is reduced to `L = sum(f(x) * w)` with fixed random weights `w`, so every output element
//! is checked. Losses are accumulated in f64 to keep the difference quotient accurate.

use tensor::{Tensor, TensorRng};

use crate::error::{AutogradError, Result};
use crate::grad_mode::no_grad;
use crate::variable::Variable;

/// What a passing check measured.
#[derive(Debug, Clone, PartialEq)]
pub struct GradcheckReport {
    /// Elements compared across all inputs.
    pub checked: usize,
    /// The largest `|analytic - numeric|` seen.
    pub max_abs_error: f64,
}

fn weighted_sum(out: &Tensor, weights: &[f32]) -> f64 {
    out.to_vec()
        .iter()
        .zip(weights)
        .map(|(&a, &w)| a as f64 * w as f64)
        .sum()
}

/// Check `f`'s gradients at `inputs` with step `eps`, accepting `|analytic - numeric| <=
/// tolerance * (1 + |numeric|)`. On failure the error reports the worst element: which input,
/// its index, and both values.
pub fn gradcheck(
    f: impl Fn(&[Variable]) -> Result<Variable>,
    inputs: &[Tensor],
    eps: f64,
    tolerance: f64,
) -> Result<GradcheckReport> {
    // HINT: Backpropagate L = sum(f(x) * w) with fixed random weights w, then for every element of
    // HINT: every input compare the analytic gradient with the central difference (L(x + eps) - L(x
    // HINT: - eps)) / (2 eps) and report the worst element above tolerance * (1 + |numeric|).
    // BEGIN SOLUTION
    let leaves: Vec<Variable> = inputs
        .iter()
        .map(|t| Variable::parameter(t.clone()))
        .collect();
    let out = f(&leaves)?;
    let mut rng = TensorRng::new(0x5eed);
    let weights = rng.normal(&out.shape(), 0.0, 1.0)?;
    let loss = out.mul(&Variable::constant(weights.clone()))?.sum_all()?;
    loss.backward()?;
    let w = weights.to_vec();

    let mut checked = 0;
    let mut max_abs_error = 0.0f64;
    let mut worst: Option<AutogradError> = None;
    let mut worst_ratio = 1.0f64;
    for (k, input) in inputs.iter().enumerate() {
        let analytic = leaves[k]
            .grad()
            .unwrap_or_else(|| Tensor::zeros(input.shape()))
            .to_vec();
        let base = input.to_vec();
        for i in 0..base.len() {
            let eval = |delta: f64| -> Result<f64> {
                let mut values = base.clone();
                values[i] = (values[i] as f64 + delta) as f32;
                let mut args: Vec<Variable> = inputs
                    .iter()
                    .map(|t| Variable::constant(t.clone()))
                    .collect();
                args[k] = Variable::constant(Tensor::from_vec(values, input.shape())?);
                no_grad(|| Ok(weighted_sum(&f(&args)?.value(), &w)))
            };
            // The step actually taken in f32, so the quotient divides by the true difference.
            let step_plus = (base[i] as f64 + eps) as f32 as f64 - base[i] as f64;
            let step_minus = base[i] as f64 - (base[i] as f64 - eps) as f32 as f64;
            let numeric = (eval(eps)? - eval(-eps)?) / (step_plus + step_minus);
            let a = analytic[i] as f64;
            let error = (a - numeric).abs();
            let allowed = tolerance * (1.0 + numeric.abs());
            max_abs_error = max_abs_error.max(error);
            checked += 1;
            if error > allowed && error / allowed > worst_ratio {
                worst_ratio = error / allowed;
                worst = Some(AutogradError::GradcheckFailed {
                    input: k,
                    index: tensor::shape::unravel_index(i, input.shape()),
                    analytic: a,
                    numeric,
                    error,
                    tolerance: allowed,
                });
            }
        }
    }
    match worst {
        Some(e) => Err(e),
        None => Ok(GradcheckReport {
            checked,
            max_abs_error,
        }),
    }
    // END SOLUTION
}
