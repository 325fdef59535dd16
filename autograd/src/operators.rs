//! `&a + &b`, `&a * 2.0`, `-&a` and friends on variables. Operators cannot return `Result`, so a
//! shape error panics with the op's message (pointing at the caller's line); use the named methods
//! (`a.add(&b)?`) to handle errors instead.

use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::variable::Variable;

macro_rules! binary_operator {
    ($trait:ident, $method:ident) => {
        impl $trait<&Variable> for &Variable {
            type Output = Variable;
            #[track_caller]
            fn $method(self, rhs: &Variable) -> Variable {
                match Variable::$method(self, rhs) {
                    Ok(v) => v,
                    Err(e) => panic!("{e}"),
                }
            }
        }
    };
}

binary_operator!(Add, add);
binary_operator!(Sub, sub);
binary_operator!(Mul, mul);
binary_operator!(Div, div);

macro_rules! scalar_operator {
    ($trait:ident, $method:ident, $scalar_method:ident) => {
        impl $trait<f32> for &Variable {
            type Output = Variable;
            #[track_caller]
            fn $method(self, rhs: f32) -> Variable {
                match self.$scalar_method(rhs) {
                    Ok(v) => v,
                    Err(e) => panic!("{e}"),
                }
            }
        }
    };
}

scalar_operator!(Add, add, add_scalar);
scalar_operator!(Sub, sub, sub_scalar);
scalar_operator!(Mul, mul, mul_scalar);
scalar_operator!(Div, div, div_scalar);

impl Neg for &Variable {
    type Output = Variable;
    #[track_caller]
    fn neg(self) -> Variable {
        match Variable::neg(self) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }
}
