//! Activation functions and their backward kernels.
//!
//! Each forward has a backward kernel taking the upstream gradient `grad_y` and whatever the
//! forward saved (the input `x` or the output `y`), so `autograd` never re-derives a formula.
//! GELU is the exact form `x * Phi(x)` with the Gaussian CDF `Phi(x) = (1 + erf(x / sqrt 2)) / 2`
//! (PyTorch's default `nn.GELU()`); forward and backward use the same formula. The tensor
//! kernels evaluate it by polynomials fitted to it ([`crate::gelu_poly`], within 2e-7); the
//! scalar functions here are the exact form they are checked against.

use crate::error::{Result, TensorError};
use crate::gelu_poly;
use crate::simd::fast_exp;
use crate::tensor::Tensor;

const INV_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// The error function, with fractional error below 1.2e-7 (Chebyshev fit of erfc), computed in f64.
pub fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 {
        1.0 - erfc
    } else {
        erfc - 1.0
    }
}

/// Logistic sigmoid of one value, stable for large |x| (never computes `exp` of a large positive).
pub fn sigmoid_scalar(x: f32) -> f32 {
    // BEGIN SOLUTION
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
    // END SOLUTION
}

/// `erfc(z)` for `z >= 0` in `f32`: the same Chebyshev fit as [`erf`], with the vectorizable
/// [`fast_exp`], so loops over it compile to SIMD instead of one libm call per element.
#[inline(always)]
fn erfc_nonneg(z: f32) -> f32 {
    let t = 1.0 / 0.5f32.mul_add(z, 1.0);
    // The coefficients are written as in the f64 fit and rounded to f32 when used.
    let mut p: f32 = 0.170_872_77;
    for c in [
        -0.822_152_23,
        1.488_515_87,
        -1.135_203_98,
        0.278_868_07,
        -0.186_288_06,
        0.096_784_18,
        0.374_091_96,
        1.000_023_68,
        -1.265_512_23f64,
    ] {
        p = p.mul_add(t, c as f32);
    }
    t * fast_exp(p - z * z)
}

/// The Gaussian CDF `Phi(x)`, computed from `erfc(|x| / sqrt 2)` on both sides so that the far
/// left tail keeps its relative precision (`1 + erf(x)` would cancel to zero in `f32`).
#[inline(always)]
pub fn gaussian_cdf(x: f32) -> f32 {
    let half_tail = 0.5 * erfc_nonneg(x.abs() * INV_SQRT_2 as f32);
    if x >= 0.0 {
        1.0 - half_tail
    } else {
        half_tail
    }
}

/// GELU of one value: `x * Phi(x)`.
#[inline(always)]
pub fn gelu_scalar(x: f32) -> f32 {
    // HINT: GELU(x) = x * Phi(x), with Phi the standard normal CDF (use gaussian_cdf).
    // BEGIN SOLUTION
    x * gaussian_cdf(x)
    // END SOLUTION
}

/// Derivative of GELU at one value: `Phi(x) + x * phi(x)`.
#[inline(always)]
pub fn gelu_grad_scalar(x: f32) -> f32 {
    // HINT: product rule on x * Phi(x): Phi(x) + x * phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
    // BEGIN SOLUTION
    let pdf = INV_SQRT_2PI as f32 * fast_exp(-0.5 * x * x);
    gaussian_cdf(x) + x * pdf
    // END SOLUTION
}

impl Tensor {
    /// `max(x, 0)`.
    pub fn relu(&self) -> Tensor {
        crate::profile::timed(crate::profile::OpFamily::Activation, || {
            self.map(|v| v.max(0.0))
        })
    }

    /// `x` where positive, `slope * x` elsewhere.
    pub fn leaky_relu(&self, slope: f32) -> Tensor {
        self.map(move |v| if v > 0.0 { v } else { slope * v })
    }

    /// Logistic sigmoid, stable for large |x|.
    pub fn sigmoid(&self) -> Tensor {
        crate::profile::timed(crate::profile::OpFamily::Activation, || {
            self.map(sigmoid_scalar)
        })
    }

    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Tensor {
        crate::profile::timed(crate::profile::OpFamily::Activation, || self.map(f32::tanh))
    }

    /// Exact GELU, `x * Phi(x)` (to within 1e-7: [`crate::gelu_poly`]).
    pub fn gelu(&self) -> Tensor {
        crate::profile::timed(crate::profile::OpFamily::Activation, || {
            match self.as_slice() {
                Some(x) => crate::elementwise::from_parts(
                    crate::elementwise::map_chunks(
                        x,
                        // A closure, not the fn item: only a closure is inlined into the
                        // vectorized caller (the fn item ran 60x slower, measured).
                        #[allow(clippy::redundant_closure)]
                        #[inline(always)]
                        |d, x| gelu_poly::gelu_into(d, x, None),
                    ),
                    self.shape(),
                ),
                None => self.map(gelu_poly::gelu_value),
            }
        })
    }
}

impl Tensor {
    /// `gelu(self + bias)` in one pass over `self` `(..., N)`, with `bias` `(N,)` added to every
    /// row: a linear layer's bias and its GELU without the intermediate tensor. The same values
    /// as `self.add(bias)?.gelu()`.
    pub fn bias_gelu(&self, bias: &Tensor) -> Result<Tensor> {
        crate::profile::timed(crate::profile::OpFamily::Activation, || {
            check_bias("bias_gelu", self, bias)?;
            match (self.as_slice(), bias.as_slice()) {
                (Some(x), Some(b)) if !x.is_empty() => Ok(crate::elementwise::from_parts(
                    gelu_poly::bias_gelu_rows(x, b),
                    self.shape(),
                )),
                _ => Ok(self.add(bias)?.gelu()),
            }
        })
    }
}

/// The bias of [`Tensor::bias_gelu`] must be 1-D and as long as the input's last dimension.
fn check_bias(op: &'static str, x: &Tensor, bias: &Tensor) -> Result<()> {
    if bias.ndim() != 1 || x.shape().last() != bias.shape().first() {
        return Err(TensorError::mismatch(
            op,
            x.shape(),
            bias.shape(),
            "the bias must be 1-D and as long as the input's last dimension",
        ));
    }
    Ok(())
}

/// [`Tensor::bias_gelu`] backward from its input `x`, the bias and the upstream gradient:
/// `(dx, dbias)` with `dx = grad_y * GELU'(x + bias)` and `dbias` the sum of `dx` over every
/// dimension but the last, computed in the same pass.
pub fn bias_gelu_backward(x: &Tensor, bias: &Tensor, grad_y: &Tensor) -> Result<(Tensor, Tensor)> {
    crate::profile::timed(crate::profile::OpFamily::Activation, || {
        check_bias("bias_gelu_backward", x, bias)?;
        check_same("bias_gelu_backward", x, grad_y)?;
        match (x.as_slice(), bias.as_slice(), grad_y.as_slice()) {
            (Some(xs), Some(b), Some(g)) if !xs.is_empty() => {
                let (dx, db) = gelu_poly::bias_gelu_backward_rows(xs, b, g);
                Ok((
                    crate::elementwise::from_parts(dx, x.shape()),
                    crate::elementwise::from_parts(db, bias.shape()),
                ))
            }
            _ => {
                let dx = gelu_backward(&x.add(bias)?, grad_y)?;
                let db = dx.sum_to_shape(bias.shape())?;
                Ok((dx, db))
            }
        }
    })
}

fn check_same(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(TensorError::mismatch(
            op,
            a.shape(),
            b.shape(),
            "the gradient must have the shape of the saved tensor",
        ));
    }
    Ok(())
}

/// ReLU backward: `grad_y` where `x > 0`, else 0.
pub fn relu_backward(x: &Tensor, grad_y: &Tensor) -> Result<Tensor> {
    crate::profile::timed(crate::profile::OpFamily::Activation, || {
        check_same("relu_backward", x, grad_y)?;
        x.zip_with(
            grad_y,
            "relu_backward",
            |x, g| if x > 0.0 { g } else { 0.0 },
        )
    })
}

/// Leaky ReLU backward.
pub fn leaky_relu_backward(x: &Tensor, grad_y: &Tensor, slope: f32) -> Result<Tensor> {
    check_same("leaky_relu_backward", x, grad_y)?;
    x.zip_with(grad_y, "leaky_relu_backward", move |x, g| {
        if x > 0.0 {
            g
        } else {
            slope * g
        }
    })
}

/// Sigmoid backward from the output `y`: `grad_y * y * (1 - y)`.
pub fn sigmoid_backward(y: &Tensor, grad_y: &Tensor) -> Result<Tensor> {
    crate::profile::timed(crate::profile::OpFamily::Activation, || {
        check_same("sigmoid_backward", y, grad_y)?;
        // BEGIN SOLUTION
        y.zip_with(grad_y, "sigmoid_backward", |y, g| g * y * (1.0 - y))
        // END SOLUTION
    })
}

/// Tanh backward from the output `y`: `grad_y * (1 - y^2)`.
pub fn tanh_backward(y: &Tensor, grad_y: &Tensor) -> Result<Tensor> {
    crate::profile::timed(crate::profile::OpFamily::Activation, || {
        check_same("tanh_backward", y, grad_y)?;
        // BEGIN SOLUTION
        y.zip_with(grad_y, "tanh_backward", |y, g| g * (1.0 - y * y))
        // END SOLUTION
    })
}

/// GELU backward from the input `x`: `grad_y * (Phi(x) + x phi(x))`.
pub fn gelu_backward(x: &Tensor, grad_y: &Tensor) -> Result<Tensor> {
    crate::profile::timed(crate::profile::OpFamily::Activation, || {
        check_same("gelu_backward", x, grad_y)?;
        if let (Some(xs), Some(gs)) = (x.as_slice(), grad_y.as_slice()) {
            return Ok(crate::elementwise::from_parts(
                crate::elementwise::zip_chunks(
                    xs,
                    gs,
                    // A closure, as in `gelu`.
                    #[allow(clippy::redundant_closure)]
                    #[inline(always)]
                    |d, x, g| gelu_poly::gelu_backward_into(d, x, None, g, None),
                ),
                x.shape(),
            ));
        }
        x.zip_with(grad_y, "gelu_backward", |x, g| {
            g * gelu_poly::gelu_grad_value(x)
        })
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// GELU and its derivative in f64 from the f64 `erf`, the reference for the f32 kernels.
    fn gelu_f64(x: f64) -> (f64, f64) {
        let cdf = 0.5 * (1.0 + erf(x * INV_SQRT_2));
        let pdf = INV_SQRT_2PI * (-0.5 * x * x).exp();
        (x * cdf, cdf + x * pdf)
    }

    /// The worst errors of f32 `gelu` and `grad` against [`gelu_f64`] on `from..to` in steps of
    /// `step`: absolute where the reference is below 1, relative above.
    pub(crate) fn worst_gelu_errors(
        gelu: impl Fn(f32) -> f32,
        grad: impl Fn(f32) -> f32,
        (from, to, step): (f32, f32, f32),
    ) -> (f64, f64) {
        let (mut worst_y, mut worst_g) = (0.0f64, 0.0f64);
        let mut x = from;
        while x < to {
            let (y, g) = gelu_f64(x as f64);
            worst_y = worst_y.max((gelu(x) as f64 - y).abs() / y.abs().max(1.0));
            worst_g = worst_g.max((grad(x) as f64 - g).abs() / g.abs().max(1.0));
            x += step;
        }
        (worst_y, worst_g)
    }

    /// The f32 GELU and its derivative stay within 1e-6 (relative) of an f64 x * Phi(x) reference
    /// over [-9, 9].
    #[test]
    fn f32_gelu_matches_f64_reference() {
        let (worst_y, worst_g) =
            worst_gelu_errors(gelu_scalar, gelu_grad_scalar, (-9.0, 9.0, 0.00731));
        assert!(worst_y < 1e-6, "gelu worst error {worst_y}");
        assert!(worst_g < 1e-6, "gelu grad worst error {worst_g}");
    }

    /// The normal CDF keeps tiny left-tail values (Phi(-5) = 2.87e-7) that 1 + erf in f32 would
    /// round away, and GELU propagates NaN.
    #[test]
    fn gaussian_cdf_keeps_the_left_tail() {
        // Phi(-5) = 2.866516e-7: `1 + erf` in f32 would round it to a multiple of 6e-8.
        let got = gaussian_cdf(-5.0) as f64;
        assert!((got - 2.866_515_7e-7).abs() < 1e-12, "Phi(-5) = {got}");
        assert_eq!(gaussian_cdf(0.0), 0.5);
        assert_eq!(gaussian_cdf(f32::INFINITY), 1.0);
        assert_eq!(gaussian_cdf(f32::NEG_INFINITY), 0.0);
        assert!(gelu_scalar(f32::NAN).is_nan());
        assert!(gelu_grad_scalar(f32::NAN).is_nan());
    }
}
