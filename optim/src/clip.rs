//! Gradient clipping: bound the step when a batch produces an unusually large gradient.
//!
//! [`clip_grad_norm`] treats all gradients as one long vector: if its L2 norm exceeds
//! `max_norm`, every gradient is scaled by the same factor `max_norm / (norm + 1e-6)`, so the
//! direction of the step is kept and only its length shrinks (nanoGPT clips at 1.0). The norm is
//! accumulated in f64 (millions of squares summed in f32 lose digits) and returned *before*
//! clipping, the number worth logging. A NaN or infinite norm cannot be fixed by scaling and is
//! an error that names the first parameter with a non-finite gradient.
//!
//! [`clip_grad_value`] clamps each element into `[-clip, clip]` (this changes the direction).
//!
//! Both accept any slice of parameters: `&[Variable]`, or named pairs `&[(String, Variable)]`
//! as `Module::named_parameters` and `Optimizer::named_parameters` return them (then errors name
//! the parameter). Parameters without a gradient are skipped.

use autograd::Variable;

use crate::error::{OptimError, Result};

/// Something that is, or names, a parameter.
pub trait ParamRef {
    /// The parameter.
    fn variable(&self) -> &Variable;
    /// Its dotted name, when known.
    fn param_name(&self) -> Option<&str> {
        None
    }
}

impl ParamRef for Variable {
    fn variable(&self) -> &Variable {
        self
    }
}

impl ParamRef for (String, Variable) {
    fn variable(&self) -> &Variable {
        &self.1
    }
    fn param_name(&self) -> Option<&str> {
        Some(&self.0)
    }
}

impl<T: ParamRef + ?Sized> ParamRef for &T {
    fn variable(&self) -> &Variable {
        (**self).variable()
    }
    fn param_name(&self) -> Option<&str> {
        (**self).param_name()
    }
}

/// The global L2 norm of all gradients, accumulated in f64 (parameters without a gradient
/// count as zero). Does not check finiteness.
pub fn grad_norm<P: ParamRef>(params: &[P]) -> f64 {
    let mut sum = 0.0f64;
    for p in params {
        if let Some(g) = p.variable().grad() {
            sum += g
                .array()
                .iter()
                .map(|&x| f64::from(x) * f64::from(x))
                .sum::<f64>();
        }
    }
    sum.sqrt()
}

/// Scale all gradients in place so that their global L2 norm is at most `max_norm`; returns the
/// norm before clipping. Errors on a NaN/Inf norm (naming the first bad parameter when the
/// parameters are named) and on a negative or NaN `max_norm`.
pub fn clip_grad_norm<P: ParamRef>(params: &[P], max_norm: f32) -> Result<f32> {
    // HINT: refuse a NaN/negative max_norm; norm = sqrt(sum of g^2 over every gradient) in f64
    // HINT: (grad_norm); if it is not finite, return NonFiniteNorm naming the first parameter whose
    // HINT: gradient is not all finite; if norm > max_norm, multiply every gradient by max_norm /
    // HINT: (norm + 1e-6) through update_grad; return the norm as f32
    // BEGIN SOLUTION
    if max_norm.is_nan() || max_norm < 0.0 {
        return Err(OptimError::config(
            "clip_grad_norm",
            format!("max_norm must be >= 0, got {max_norm}"),
        ));
    }
    let norm = grad_norm(params);
    if !norm.is_finite() {
        let first_bad = params
            .iter()
            .find(|p| p.variable().grad().is_some_and(|g| !g.all_finite()))
            .and_then(|p| p.param_name().map(str::to_string));
        return Err(OptimError::NonFiniteNorm { norm, first_bad });
    }
    if norm > f64::from(max_norm) {
        let scale = (f64::from(max_norm) / (norm + 1e-6)) as f32;
        for p in params {
            p.variable()
                .update_grad(|g| g.iter_mut().for_each(|x| *x *= scale));
        }
    }
    Ok(norm as f32)
    // END SOLUTION
}

/// Clamp every gradient element into `[-clip, clip]`, in place.
pub fn clip_grad_value<P: ParamRef>(params: &[P], clip: f32) -> Result<()> {
    // HINT: refuse a NaN/negative clip, then clamp every element of every gradient into [-clip,
    // HINT: clip] through update_grad
    // BEGIN SOLUTION
    if clip.is_nan() || clip < 0.0 {
        return Err(OptimError::config(
            "clip_grad_value",
            format!("clip must be >= 0, got {clip}"),
        ));
    }
    for p in params {
        p.variable()
            .update_grad(|g| g.iter_mut().for_each(|x| *x = x.clamp(-clip, clip)));
    }
    Ok(())
    // END SOLUTION
}
