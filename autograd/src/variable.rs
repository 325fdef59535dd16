//! `Variable`: a node of the computation graph wrapping a `Tensor`.
//!
//! A variable is either a *leaf* (a parameter or an input, created by the user) or the output of
//! an op, in which case it holds a `grad_fn`: a named struct that keeps the op's inputs and what
//! it saved, and knows how to turn the output's gradient into the inputs' gradients.
//!
//! There is deliberately no way to build a variable from another variable's raw data while
//! staying in the graph: `value()` hands out a read-only tensor, and the only ways to make a new
//! leaf are [`Variable::parameter`], [`Variable::constant`] and [`Variable::detach`]. Re-wrapping
//! `.data` is exactly how a graph silently breaks (the reshape/loss bug of the course this one
//! replaces): making the cut explicit makes it visible.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use tensor::Tensor;

use crate::error::{AutogradError, Result};

/// The backward half of an op: turns the gradient of its output into gradients of its inputs.
pub trait GradFn {
    /// PyTorch-style name, e.g. `"MatMulBackward"`.
    fn name(&self) -> &'static str;
    /// The op's inputs, in the order [`GradFn::backward`] returns their gradients.
    fn inputs(&self) -> Vec<Variable>;
    /// Given dL/d(output), return dL/d(input) for each input (`None` for inputs that need none).
    fn backward(&self, grad_output: &Tensor) -> Result<Vec<Option<Tensor>>>;
}

thread_local! {
    static NEXT_ID: Cell<u64> = const { Cell::new(0) };
    static LIVE_NODES: Cell<usize> = const { Cell::new(0) };
}

/// How many graph nodes are alive on this thread (for tests that check the graph is freed).
pub fn live_nodes() -> usize {
    LIVE_NODES.with(|c| c.get())
}

pub(crate) struct Node {
    pub(crate) id: u64,
    pub(crate) value: RefCell<Tensor>,
    pub(crate) grad: RefCell<Option<Tensor>>,
    pub(crate) requires_grad: bool,
    pub(crate) grad_fn: RefCell<Option<Box<dyn GradFn>>>,
    /// The grad_fn's name, kept after the graph is freed (for messages and `grad_fn()`).
    pub(crate) grad_fn_name: Option<&'static str>,
}

impl Drop for Node {
    /// Dismantle the graph behind this node iteratively: dropping a 100,000-op chain recursively
    /// would overflow the stack.
    fn drop(&mut self) {
        LIVE_NODES.with(|c| c.set(c.get() - 1));
        let mut pending: Vec<Box<dyn GradFn>> = self.grad_fn.get_mut().take().into_iter().collect();
        while let Some(grad_fn) = pending.pop() {
            let inputs = grad_fn.inputs();
            drop(grad_fn);
            for input in inputs {
                if Rc::strong_count(&input.0) == 1 {
                    if let Some(next) = input.0.grad_fn.borrow_mut().take() {
                        pending.push(next);
                    }
                }
            }
        }
    }
}

/// A tensor in the computation graph. Cloning is O(1) and shares the node.
#[derive(Clone)]
pub struct Variable(pub(crate) Rc<Node>);

impl Variable {
    fn make(value: Tensor, requires_grad: bool, grad_fn: Option<Box<dyn GradFn>>) -> Variable {
        let id = NEXT_ID.with(|c| {
            let id = c.get();
            c.set(id + 1);
            id
        });
        LIVE_NODES.with(|c| c.set(c.get() + 1));
        let grad_fn_name = grad_fn.as_ref().map(|f| f.name());
        Variable(Rc::new(Node {
            id,
            value: RefCell::new(value),
            grad: RefCell::new(None),
            requires_grad,
            grad_fn: RefCell::new(grad_fn),
            grad_fn_name,
        }))
    }

    /// A leaf that requires grad: a trainable parameter.
    pub fn parameter(value: Tensor) -> Variable {
        Variable::make(value, true, None)
    }

    /// A leaf that does not require grad: data, targets, masks.
    pub fn constant(value: Tensor) -> Variable {
        Variable::make(value, false, None)
    }

    /// A leaf with an explicit `requires_grad` flag.
    pub fn new(value: Tensor, requires_grad: bool) -> Variable {
        Variable::make(value, requires_grad, None)
    }

    /// The output of an op (used by the op implementations).
    pub(crate) fn from_op(value: Tensor, grad_fn: Box<dyn GradFn>) -> Variable {
        Variable::make(value, true, Some(grad_fn))
    }

    /// The value (a cheap clone of a read-only tensor).
    pub fn value(&self) -> Tensor {
        self.0.value.borrow().clone()
    }

    /// The shape of the value.
    pub fn shape(&self) -> Vec<usize> {
        self.0.value.borrow().shape().to_vec()
    }

    /// The number of dimensions.
    pub fn ndim(&self) -> usize {
        self.0.value.borrow().ndim()
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.0.value.borrow().numel()
    }

    /// The single value of a one-element variable.
    pub fn item(&self) -> Result<f32> {
        Ok(self.0.value.borrow().item()?)
    }

    /// The accumulated gradient, if backward reached this leaf.
    pub fn grad(&self) -> Option<Tensor> {
        self.0.grad.borrow().clone()
    }

    /// Clear the accumulated gradient (gradients add up across `backward()` calls until cleared).
    pub fn zero_grad(&self) {
        *self.0.grad.borrow_mut() = None;
    }

    /// Whether gradients flow to (or through) this variable.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }

    /// Whether this variable was created by the user rather than by an op.
    pub fn is_leaf(&self) -> bool {
        self.0.grad_fn_name.is_none()
    }

    /// The name of the op that produced this variable (`None` for leaves), e.g. `"MatMulBackward"`.
    pub fn grad_fn(&self) -> Option<&'static str> {
        self.0.grad_fn_name
    }

    /// A unique id (stable for the variable's lifetime).
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// Whether two handles refer to the same node.
    pub fn same_node(&self, other: &Variable) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }

    /// A new leaf holding the same value, outside the graph: gradients stop here. The only way to
    /// cut a graph on purpose.
    pub fn detach(&self) -> Variable {
        Variable::constant(self.value())
    }

    /// Replace a leaf's value (loading a checkpoint). The shape must stay the same.
    pub fn set_value(&self, value: Tensor) -> Result<()> {
        self.check_leaf("set_value")?;
        let old = self.shape();
        if value.shape() != old.as_slice() {
            return Err(AutogradError::GradShape {
                op: "set_value",
                grad: value.shape().to_vec(),
                value: old,
            });
        }
        *self.0.value.borrow_mut() = value;
        Ok(())
    }

    /// Update a leaf's value in place through a mutable row-major slice: the one narrow door
    /// optimizers use (no graph is recorded, no allocation when the buffer is not shared).
    pub fn update_data<R>(&self, f: impl FnOnce(&mut [f32]) -> R) -> Result<R> {
        self.check_leaf("update_data")?;
        let mut value = self.0.value.borrow_mut();
        Ok(f(value.as_mut_slice()))
    }

    /// Update the accumulated gradient in place (gradient clipping). Does nothing without a grad.
    pub fn update_grad<R>(&self, f: impl FnOnce(&mut [f32]) -> R) -> Option<R> {
        let mut grad = self.0.grad.borrow_mut();
        grad.as_mut().map(|g| f(g.as_mut_slice()))
    }

    /// Set (or clear) the accumulated gradient directly.
    pub fn set_grad(&self, grad: Option<Tensor>) -> Result<()> {
        if let Some(g) = &grad {
            if g.shape() != self.shape().as_slice() {
                return Err(AutogradError::GradShape {
                    op: "set_grad",
                    grad: g.shape().to_vec(),
                    value: self.shape(),
                });
            }
        }
        *self.0.grad.borrow_mut() = grad;
        Ok(())
    }

    fn check_leaf(&self, op: &'static str) -> Result<()> {
        if !self.is_leaf() {
            return Err(AutogradError::Invalid {
                op,
                reason: format!(
                    "only leaves can be modified in place; this variable comes from {}",
                    self.grad_fn().unwrap_or("an op")
                ),
            });
        }
        Ok(())
    }

    /// Backpropagate from a one-element output: fills `grad()` of every leaf that requires grad.
    /// The graph is freed afterwards.
    pub fn backward(&self) -> Result<()> {
        if self.numel() != 1 {
            return Err(AutogradError::NotScalar {
                shape: self.shape(),
            });
        }
        let seed = Tensor::ones(&self.shape());
        crate::backward::run_backward(self, seed, false)
    }

    /// Like [`Variable::backward`] but keeps the graph, so backward can run through it again.
    pub fn backward_retain(&self) -> Result<()> {
        if self.numel() != 1 {
            return Err(AutogradError::NotScalar {
                shape: self.shape(),
            });
        }
        let seed = Tensor::ones(&self.shape());
        crate::backward::run_backward(self, seed, true)
    }

    /// Backpropagate from a non-scalar output given dL/d(output).
    pub fn backward_with(&self, grad: Tensor) -> Result<()> {
        if grad.shape() != self.shape().as_slice() {
            return Err(AutogradError::GradShape {
                op: "backward_with",
                grad: grad.shape().to_vec(),
                value: self.shape(),
            });
        }
        crate::backward::run_backward(self, grad, false)
    }
}

impl std::fmt::Debug for Variable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Variable({}", self.0.value.borrow())?;
        match self.grad_fn() {
            Some(name) => write!(f, ", grad_fn={name})"),
            None if self.requires_grad() => write!(f, ", requires_grad=true)"),
            None => write!(f, ")"),
        }
    }
}
