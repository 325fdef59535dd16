//! Broadcasting binary ops. The backward of a broadcast is a sum: every input gradient goes
//! through `Tensor::sum_to_shape`, the one helper that undoes broadcasting.

use tensor::Tensor;

use super::{grad_if, record};
use crate::error::Result;
use crate::variable::{GradFn, Variable};

/// d(a + b): the gradient passes to both, summed down to each input's shape.
pub struct AddBackward {
    a: Variable,
    b: Variable,
}

impl GradFn for AddBackward {
    fn name(&self) -> &'static str {
        "AddBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.a.clone(), self.b.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: For a + b both inputs receive g, each reduced to its own shape with sum_to_shape to
        // HINT: undo broadcasting.
        // BEGIN SOLUTION
        Ok(vec![
            grad_if(&self.a, || g.sum_to_shape(&self.a.shape()))?,
            grad_if(&self.b, || g.sum_to_shape(&self.b.shape()))?,
        ])
        // END SOLUTION
    }
}

/// d(a - b).
pub struct SubBackward {
    a: Variable,
    b: Variable,
}

impl GradFn for SubBackward {
    fn name(&self) -> &'static str {
        "SubBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.a.clone(), self.b.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: For a - b, a receives g and b receives -g, each reduced to its own shape with
        // HINT: sum_to_shape.
        // BEGIN SOLUTION
        Ok(vec![
            grad_if(&self.a, || g.sum_to_shape(&self.a.shape()))?,
            grad_if(&self.b, || g.neg().sum_to_shape(&self.b.shape()))?,
        ])
        // END SOLUTION
    }
}

/// d(a * b): each input receives the gradient times the other input.
pub struct MulBackward {
    a: Variable,
    b: Variable,
}

impl GradFn for MulBackward {
    fn name(&self) -> &'static str {
        "MulBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.a.clone(), self.b.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: For a * b, a receives g * b and b receives g * a (the other input), each reduced to
        // HINT: its own shape with sum_to_shape.
        // BEGIN SOLUTION
        Ok(vec![
            grad_if(&self.a, || {
                g.mul(&self.b.value())?.sum_to_shape(&self.a.shape())
            })?,
            grad_if(&self.b, || {
                g.mul(&self.a.value())?.sum_to_shape(&self.b.shape())
            })?,
        ])
        // END SOLUTION
    }
}

/// d(a / b): `g / b` and `-g a / b^2`.
pub struct DivBackward {
    a: Variable,
    b: Variable,
}

impl GradFn for DivBackward {
    fn name(&self) -> &'static str {
        "DivBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.a.clone(), self.b.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: For a / b, a receives g / b and b receives -g * a / b^2, each reduced to its own
        // HINT: shape with sum_to_shape.
        // BEGIN SOLUTION
        let b = self.b.value();
        Ok(vec![
            grad_if(&self.a, || g.div(&b)?.sum_to_shape(&self.a.shape()))?,
            grad_if(&self.b, || {
                let a = self.a.value();
                g.mul(&a)?
                    .div(&b.mul(&b)?)?
                    .neg()
                    .sum_to_shape(&self.b.shape())
            })?,
        ])
        // END SOLUTION
    }
}

/// d(a ^ b) elementwise: `g b a^(b-1)` and `g a^b ln a`.
pub struct PowBackward {
    a: Variable,
    b: Variable,
    out: Tensor,
}

impl GradFn for PowBackward {
    fn name(&self) -> &'static str {
        "PowBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.a.clone(), self.b.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: For a^b elementwise, a receives g * b * a^(b-1) and b receives g * a^b * ln a (zero
        // HINT: where a <= 0), each reduced to its own shape with sum_to_shape.
        // BEGIN SOLUTION
        let a = self.a.value();
        let b = self.b.value();
        Ok(vec![
            grad_if(&self.a, || {
                let d = a.zip_with(&b, "pow_backward", |a, b| {
                    if b == 0.0 {
                        0.0
                    } else {
                        b * a.powf(b - 1.0)
                    }
                })?;
                g.mul(&d)?.sum_to_shape(&self.a.shape())
            })?,
            grad_if(&self.b, || {
                let d = self.out.zip_with(&a, "pow_backward", |o, a| {
                    if a > 0.0 {
                        o * a.ln()
                    } else {
                        0.0
                    }
                })?;
                g.mul(&d)?.sum_to_shape(&self.b.shape())
            })?,
        ])
        // END SOLUTION
    }
}

/// d(maximum(a, b)) or d(minimum(a, b)): the gradient goes to the selected input (`a` on ties).
pub struct SelectBackward {
    name: &'static str,
    a: Variable,
    b: Variable,
    /// 1 where `a` was selected.
    a_selected: Tensor,
}

impl GradFn for SelectBackward {
    fn name(&self) -> &'static str {
        self.name
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.a.clone(), self.b.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: The gradient goes where the value came from: a receives g times the saved
        // HINT: a_selected mask and b receives g times (1 - mask), each reduced to its own shape
        // HINT: with sum_to_shape.
        // BEGIN SOLUTION
        Ok(vec![
            grad_if(&self.a, || {
                g.mul(&self.a_selected)?.sum_to_shape(&self.a.shape())
            })?,
            grad_if(&self.b, || {
                g.zip_with(&self.a_selected, "select_backward", |g, s| g * (1.0 - s))?
                    .sum_to_shape(&self.b.shape())
            })?,
        ])
        // END SOLUTION
    }
}

/// d(where(cond, a, b)): the gradient goes to `a` where the condition holds, to `b` elsewhere.
pub struct WhereBackward {
    condition: Tensor,
    a: Variable,
    b: Variable,
}

impl GradFn for WhereBackward {
    fn name(&self) -> &'static str {
        "WhereBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.a.clone(), self.b.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: a receives g where the condition holds and 0 elsewhere, b the opposite
        // HINT: (Tensor::where_cond with a zero), each reduced to its own shape with sum_to_shape.
        // BEGIN SOLUTION
        let zero = Tensor::scalar(0.0);
        Ok(vec![
            grad_if(&self.a, || {
                Tensor::where_cond(&self.condition, g, &zero)?.sum_to_shape(&self.a.shape())
            })?,
            grad_if(&self.b, || {
                Tensor::where_cond(&self.condition, &zero, g)?.sum_to_shape(&self.b.shape())
            })?,
        ])
        // END SOLUTION
    }
}

/// d(a + s) or d(a - s) for a scalar `s`: the gradient passes through.
pub struct AddScalarBackward {
    a: Variable,
}

impl GradFn for AddScalarBackward {
    fn name(&self) -> &'static str {
        "AddBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.a.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Adding a constant has derivative 1: the gradient passes through unchanged.
        // BEGIN SOLUTION
        Ok(vec![Some(g.clone())])
        // END SOLUTION
    }
}

/// d(a * s) for a scalar `s`.
pub struct MulScalarBackward {
    a: Variable,
    s: f32,
}

impl GradFn for MulScalarBackward {
    fn name(&self) -> &'static str {
        "MulBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.a.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Scaling by a constant s has derivative s: the gradient is g * s.
        // BEGIN SOLUTION
        Ok(vec![Some(g.mul_scalar(self.s))])
        // END SOLUTION
    }
}

/// d(a ^ p) for a scalar exponent: `g p a^(p-1)`.
pub struct PowScalarBackward {
    a: Variable,
    p: f32,
}

impl GradFn for PowScalarBackward {
    fn name(&self) -> &'static str {
        "PowBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.a.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: For a^p with a scalar p, the gradient is g * p * a^(p-1) (zero when p is 0).
        // BEGIN SOLUTION
        let p = self.p;
        let d = self
            .a
            .value()
            .map(move |a| if p == 0.0 { 0.0 } else { p * a.powf(p - 1.0) });
        Ok(vec![Some(g.mul(&d)?)])
        // END SOLUTION
    }
}

/// d(masked_fill(a, mask, v)): zero where the mask replaced the value.
pub struct MaskedFillBackward {
    a: Variable,
    mask: Tensor,
}

impl GradFn for MaskedFillBackward {
    fn name(&self) -> &'static str {
        "MaskedFillBackward"
    }
    fn inputs(&self) -> Vec<Variable> {
        vec![self.a.clone()]
    }
    fn backward(&self, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        // HINT: Replaced elements no longer depend on the input, so the gradient is g with zeros
        // HINT: where the mask is set.
        // BEGIN SOLUTION
        Ok(vec![Some(g.masked_fill(&self.mask, 0.0)?)])
        // END SOLUTION
    }
}

impl Variable {
    /// `self + other`, broadcasting.
    pub fn add(&self, other: &Variable) -> Result<Variable> {
        let out = self.value().add(&other.value())?;
        record(
            out,
            &[self, other],
            AddBackward {
                a: self.clone(),
                b: other.clone(),
            },
        )
    }

    /// `self - other`, broadcasting.
    pub fn sub(&self, other: &Variable) -> Result<Variable> {
        let out = self.value().sub(&other.value())?;
        record(
            out,
            &[self, other],
            SubBackward {
                a: self.clone(),
                b: other.clone(),
            },
        )
    }

    /// `self * other`, broadcasting.
    pub fn mul(&self, other: &Variable) -> Result<Variable> {
        let out = self.value().mul(&other.value())?;
        record(
            out,
            &[self, other],
            MulBackward {
                a: self.clone(),
                b: other.clone(),
            },
        )
    }

    /// `self / other`, broadcasting.
    pub fn div(&self, other: &Variable) -> Result<Variable> {
        let out = self.value().div(&other.value())?;
        record(
            out,
            &[self, other],
            DivBackward {
                a: self.clone(),
                b: other.clone(),
            },
        )
    }

    /// `self ^ other` elementwise, broadcasting.
    pub fn pow(&self, other: &Variable) -> Result<Variable> {
        let out = self.value().pow(&other.value())?;
        let grad_fn = PowBackward {
            a: self.clone(),
            b: other.clone(),
            out: out.clone(),
        };
        record(out, &[self, other], grad_fn)
    }

    /// Elementwise maximum, broadcasting (ties send the gradient to `self`).
    pub fn maximum(&self, other: &Variable) -> Result<Variable> {
        let (a, b) = (self.value(), other.value());
        let out = a.maximum(&b)?;
        let a_selected = a.ge(&b)?;
        let grad_fn = SelectBackward {
            name: "MaximumBackward",
            a: self.clone(),
            b: other.clone(),
            a_selected,
        };
        record(out, &[self, other], grad_fn)
    }

    /// Elementwise minimum, broadcasting (ties send the gradient to `self`).
    pub fn minimum(&self, other: &Variable) -> Result<Variable> {
        let (a, b) = (self.value(), other.value());
        let out = a.minimum(&b)?;
        let a_selected = a.le(&b)?;
        let grad_fn = SelectBackward {
            name: "MinimumBackward",
            a: self.clone(),
            b: other.clone(),
            a_selected,
        };
        record(out, &[self, other], grad_fn)
    }

    /// Pick `on_true` where `condition` is non-zero, else `on_false` (all three broadcast).
    pub fn where_cond(
        condition: &Tensor,
        on_true: &Variable,
        on_false: &Variable,
    ) -> Result<Variable> {
        let out = Tensor::where_cond(condition, &on_true.value(), &on_false.value())?;
        let grad_fn = WhereBackward {
            condition: condition.clone(),
            a: on_true.clone(),
            b: on_false.clone(),
        };
        record(out, &[on_true, on_false], grad_fn)
    }

    /// Replace elements where `mask` is non-zero by `value`.
    pub fn masked_fill(&self, mask: &Tensor, value: f32) -> Result<Variable> {
        let out = self.value().masked_fill(mask, value)?;
        record(
            out,
            &[self],
            MaskedFillBackward {
                a: self.clone(),
                mask: mask.clone(),
            },
        )
    }

    /// `self + s`.
    pub fn add_scalar(&self, s: f32) -> Result<Variable> {
        record(
            self.value().add_scalar(s),
            &[self],
            AddScalarBackward { a: self.clone() },
        )
    }

    /// `self - s`.
    pub fn sub_scalar(&self, s: f32) -> Result<Variable> {
        self.add_scalar(-s)
    }

    /// `self * s`.
    pub fn mul_scalar(&self, s: f32) -> Result<Variable> {
        record(
            self.value().mul_scalar(s),
            &[self],
            MulScalarBackward { a: self.clone(), s },
        )
    }

    /// `self / s`.
    pub fn div_scalar(&self, s: f32) -> Result<Variable> {
        self.mul_scalar(1.0 / s)
    }

    /// `self ^ p` for a scalar exponent.
    pub fn powf(&self, p: f32) -> Result<Variable> {
        record(
            self.value().powf(p),
            &[self],
            PowScalarBackward { a: self.clone(), p },
        )
    }
}
