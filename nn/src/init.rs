//! Seeded weight initialisation, with PyTorch's defaults.
//!
//! A layer's starting weights decide whether signals keep their scale through depth. Every
//! function here draws from a [`TensorRng`] the caller passes, so one seed threaded through
//! model construction gives every layer different but reproducible weights.
//!
//! | function | distribution | used by |
//! |---|---|---|
//! | [`fan_in_uniform`] | `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` | `Linear`/`Conv2d` bias (and weight, see below) |
//! | [`kaiming_uniform`] | `U(-b, b)`, `b = sqrt(2 / (1 + a^2)) * sqrt(3 / fan_in)` | `Linear`/`Conv2d` weight with `a = sqrt(5)` |
//! | [`xavier_uniform`] / [`xavier_normal`] | variance `2 gain^2 / (fan_in + fan_out)` | tanh/sigmoid nets |
//! | [`normal_002`] | `N(0, 0.02^2)` | GPT-style linear and embedding weights |
//! | [`uniform`] / [`normal`] | as given | anything else |
//!
//! PyTorch's `Linear` and `Conv2d` call `kaiming_uniform_(w, a=sqrt(5))`, which works out to
//! `b = sqrt(2/6) * sqrt(3/fan_in) = 1/sqrt(fan_in)`: the same bound as their bias.

use tensor::{Tensor, TensorRng};

use crate::error::{NnError, Result};

/// `(fan_in, fan_out)` of a weight shape, as PyTorch computes them: for `(out, in, k...)`,
/// `fan_in = in * prod(k)` and `fan_out = out * prod(k)`. A 1-D shape `(n)` gives `(n, n)`, a
/// 0-D shape `(1, 1)`.
pub fn fans(shape: &[usize]) -> (usize, usize) {
    match shape.len() {
        0 => (1, 1),
        1 => (shape[0], shape[0]),
        _ => {
            let receptive: usize = shape[2..].iter().product();
            (shape[1] * receptive, shape[0] * receptive)
        }
    }
}

/// `U(-bound, bound)`; a zero, negative or non-finite bound (an empty fan) gives zeros, as
/// PyTorch does for a bias with `fan_in = 0`.
fn symmetric_uniform(rng: &mut TensorRng, shape: &[usize], bound: f32) -> Tensor {
    if bound > 0.0 && bound.is_finite() {
        // The range is valid, so this cannot fail; zeros keep the function total anyway.
        rng.uniform(shape, -bound, bound)
            .unwrap_or_else(|_| Tensor::zeros(shape))
    } else {
        Tensor::zeros(shape)
    }
}

/// `N(0, std^2)` with a computed `std`; a zero or non-finite std gives zeros.
fn centered_normal(rng: &mut TensorRng, shape: &[usize], std: f32) -> Tensor {
    if std > 0.0 && std.is_finite() {
        rng.normal(shape, 0.0, std)
            .unwrap_or_else(|_| Tensor::zeros(shape))
    } else {
        Tensor::zeros(shape)
    }
}

/// Values drawn uniformly from `[low, high)`. Errors when `low >= high` or a bound is not finite.
pub fn uniform(rng: &mut TensorRng, shape: &[usize], low: f32, high: f32) -> Result<Tensor> {
    if low >= high || !low.is_finite() || !high.is_finite() {
        return Err(NnError::Invalid {
            op: "init::uniform",
            reason: format!("needs finite low < high, got [{low}, {high})"),
        });
    }
    Ok(rng.uniform(shape, low, high)?)
}

/// Values drawn from `N(mean, std^2)`. Errors when `std` is negative or not finite.
pub fn normal(rng: &mut TensorRng, shape: &[usize], mean: f32, std: f32) -> Result<Tensor> {
    if std < 0.0 || !std.is_finite() || !mean.is_finite() {
        return Err(NnError::Invalid {
            op: "init::normal",
            reason: format!("needs a finite mean and std >= 0, got mean {mean}, std {std}"),
        });
    }
    Ok(rng.normal(shape, mean, std)?)
}

/// `N(0, 0.02^2)`: the GPT-2 initialisation of linear and embedding weights.
pub fn normal_002(rng: &mut TensorRng, shape: &[usize]) -> Tensor {
    centered_normal(rng, shape, 0.02)
}

/// `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`: PyTorch's default for the bias of `Linear` and `Conv2d`
/// (and, through `kaiming_uniform(a = sqrt(5))`, for their weight).
pub fn fan_in_uniform(rng: &mut TensorRng, shape: &[usize], fan_in: usize) -> Tensor {
    // HINT: sample U(-b, b) with b = 1 / sqrt(fan_in).
    // BEGIN SOLUTION
    let bound = 1.0 / (fan_in as f32).sqrt();
    symmetric_uniform(rng, shape, bound)
    // END SOLUTION
}

/// He (Kaiming) uniform initialisation for a layer followed by a leaky ReLU of negative slope
/// `a` (`a = 0` for ReLU): `U(-b, b)` with `gain = sqrt(2 / (1 + a^2))` and
/// `b = gain * sqrt(3 / fan_in)`, so the output variance is `gain^2` times the input's.
/// `fan_in` comes from `shape` (see [`fans`]).
pub fn kaiming_uniform(rng: &mut TensorRng, shape: &[usize], a: f32) -> Tensor {
    // HINT: Var(U(-b, b)) = b^2 / 3; choose b so that fan_in * Var(w) = gain^2.
    // BEGIN SOLUTION
    let (fan_in, _) = fans(shape);
    let gain = (2.0 / (1.0 + a * a)).sqrt();
    let bound = gain * (3.0 / fan_in as f32).sqrt();
    symmetric_uniform(rng, shape, bound)
    // END SOLUTION
}

/// Glorot (Xavier) uniform: `U(-b, b)` with `b = gain * sqrt(6 / (fan_in + fan_out))`, which
/// keeps the variance of both the forward signal and the backward gradient near `gain^2`.
pub fn xavier_uniform(rng: &mut TensorRng, shape: &[usize], gain: f32) -> Tensor {
    // HINT: sample U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)), so forward and backward
    // HINT: variances are both preserved.
    // BEGIN SOLUTION
    let (fan_in, fan_out) = fans(shape);
    let bound = gain.abs() * (6.0 / (fan_in + fan_out) as f32).sqrt();
    symmetric_uniform(rng, shape, bound)
    // END SOLUTION
}

/// Glorot (Xavier) normal: `N(0, std^2)` with `std = gain * sqrt(2 / (fan_in + fan_out))`.
pub fn xavier_normal(rng: &mut TensorRng, shape: &[usize], gain: f32) -> Tensor {
    let (fan_in, fan_out) = fans(shape);
    let std = gain.abs() * (2.0 / (fan_in + fan_out) as f32).sqrt();
    centered_normal(rng, shape, std)
}

/// `N(0, 1)`: PyTorch's initialisation of `Embedding` weights.
pub fn standard_normal(rng: &mut TensorRng, shape: &[usize]) -> Tensor {
    centered_normal(rng, shape, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(t: &Tensor) -> (f64, f64, f32) {
        let v = t.to_vec();
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        (mean, var, max)
    }

    /// fan_in and fan_out follow PyTorch's convention for linear weights (out, in), conv weights
    /// (out, in, kh, kw) and vectors.
    #[test]
    fn fans_follow_pytorch() {
        assert_eq!(fans(&[3, 4]), (4, 3));
        assert_eq!(fans(&[8, 3, 5, 5]), (75, 200));
        assert_eq!(fans(&[7]), (7, 7));
    }

    /// Kaiming uniform with a = sqrt(5) (PyTorch's Linear default) draws in [-1/sqrt(fan_in),
    /// 1/sqrt(fan_in)] with mean 0 and variance bound^2 / 3.
    #[test]
    fn kaiming_sqrt5_is_the_fan_in_bound() {
        let mut rng = TensorRng::new(0);
        let w = kaiming_uniform(&mut rng, &[64, 100], 5f32.sqrt());
        let (mean, var, max) = stats(&w);
        // bound 1/sqrt(100) = 0.1, variance 0.1^2 / 3
        assert!(max <= 0.1 && max > 0.09, "max {max}");
        assert!(mean.abs() < 0.005, "mean {mean}");
        assert!((var - 0.01 / 3.0).abs() < 3e-4, "var {var}");
    }

    /// Xavier normal and uniform have variance 2 / (fan_in + fan_out), and the GPT initialisation
    /// has standard deviation 0.02.
    #[test]
    fn xavier_and_normal_scales() {
        let mut rng = TensorRng::new(1);
        let (_, var, _) = stats(&xavier_normal(&mut rng, &[200, 300], 1.0));
        assert!((var - 2.0 / 500.0).abs() < 2e-4, "var {var}");
        let (_, var, max) = stats(&xavier_uniform(&mut rng, &[200, 300], 1.0));
        assert!(max <= (6.0f32 / 500.0).sqrt());
        assert!((var - 2.0 / 500.0).abs() < 2e-4, "var {var}");
        let (_, var, _) = stats(&normal_002(&mut rng, &[100, 100]));
        assert!((var.sqrt() - 0.02).abs() < 1e-3, "std {}", var.sqrt());
    }

    /// The same seed gives the same weights, fan_in 0 gives zeros, and an empty range or negative
    /// std is an error.
    #[test]
    fn same_seed_same_weights_and_bad_ranges_error() {
        let a = fan_in_uniform(&mut TensorRng::new(5), &[3, 3], 9);
        let b = fan_in_uniform(&mut TensorRng::new(5), &[3, 3], 9);
        assert_eq!(a, b);
        assert_eq!(
            fan_in_uniform(&mut TensorRng::new(5), &[3], 0),
            Tensor::zeros(&[3])
        );
        assert!(uniform(&mut TensorRng::new(0), &[2], 1.0, 1.0).is_err());
        assert!(normal(&mut TensorRng::new(0), &[2], 0.0, -1.0).is_err());
    }
}
