//! The backward pass: one walk over the graph in reverse topological order.
//!
//! 1. Topological sort from the output with an explicit stack (no recursion, so a 100,000-op chain
//!    cannot overflow the call stack): every node comes after all of its inputs.
//! 2. Walk the order backwards. Each node's gradient is complete when it is reached (everything
//!    that uses it came later in the forward pass, so earlier in this walk); hand it to the node's
//!    `grad_fn`, and add each input's share into a map. A value used twice receives the sum.
//! 3. Leaves accumulate into `grad()`; intermediate gradients are dropped as soon as consumed, and
//!    each `grad_fn` (with the tensors it saved) is freed once used unless the graph is retained.

use std::collections::{HashMap, HashSet};

use tensor::Tensor;

use crate::error::{AutogradError, Result};
use crate::grad_mode::{is_anomaly_enabled, NoGradGuard};
use crate::variable::Variable;

/// Nodes that require grad reachable from `root`, each after all of its inputs.
pub(crate) fn topological_order(root: &Variable) -> Vec<Variable> {
    // HINT: Depth-first search with an explicit stack of (node, children_pushed) pairs: skip
    // HINT: visited ids, push a node back marked expanded before its inputs that require grad, and
    // HINT: emit it when popped expanded (post-order), so every node comes after its inputs.
    // BEGIN SOLUTION
    let mut order = Vec::new();
    let mut visited = HashSet::new();
    // (node, children_pushed): a node is emitted when popped the second time.
    let mut stack = vec![(root.clone(), false)];
    while let Some((var, expanded)) = stack.pop() {
        if expanded {
            order.push(var);
            continue;
        }
        if !visited.insert(var.id()) {
            continue;
        }
        stack.push((var.clone(), true));
        if let Some(grad_fn) = var.0.grad_fn.borrow().as_ref() {
            for input in grad_fn.inputs() {
                if input.requires_grad() && !visited.contains(&input.id()) {
                    stack.push((input, false));
                }
            }
        }
    }
    order
    // END SOLUTION
}

pub(crate) fn run_backward(root: &Variable, seed: Tensor, retain_graph: bool) -> Result<()> {
    if !root.requires_grad() {
        return Err(AutogradError::NoGraph);
    }
    // Backward itself records nothing.
    let _no_grad = NoGradGuard::new();
    let order = topological_order(root);
    let mut grads: HashMap<u64, Tensor> = HashMap::new();
    grads.insert(root.id(), seed);
    // HINT: Walk the order in reverse; take each node's gradient out of `grads`, add it into `grad`
    // HINT: for a leaf, otherwise call its grad_fn's backward and add each input's share into
    // HINT: `grads` (a value used twice receives the sum), checking shapes and anomalies, then drop
    // HINT: the grad_fn unless retain_graph.
    // BEGIN SOLUTION
    for var in order.iter().rev() {
        let Some(grad) = grads.remove(&var.id()) else {
            continue;
        };
        let node = &var.0;
        if var.is_leaf() {
            let mut slot = node.grad.borrow_mut();
            *slot = Some(match slot.take() {
                Some(old) => old.add(&grad)?,
                None => grad,
            });
            continue;
        }
        let grad_fn_ref = node.grad_fn.borrow();
        let Some(grad_fn) = grad_fn_ref.as_ref() else {
            return Err(AutogradError::GraphFreed {
                op: var.grad_fn().unwrap_or("an op"),
            });
        };
        let inputs = grad_fn.inputs();
        let input_grads = grad_fn.backward(&grad)?;
        for (input, g) in inputs.iter().zip(input_grads) {
            let Some(g) = g else { continue };
            if !input.requires_grad() {
                continue;
            }
            if g.shape() != input.shape().as_slice() {
                return Err(AutogradError::GradShape {
                    op: grad_fn.name(),
                    grad: g.shape().to_vec(),
                    value: input.shape(),
                });
            }
            if is_anomaly_enabled() && !g.all_finite() {
                return Err(AutogradError::Anomaly {
                    op: grad_fn.name(),
                    phase: "backward",
                    what: non_finite_kind(&g),
                    shapes: inputs.iter().map(|v| v.shape()).collect(),
                });
            }
            match grads.remove(&input.id()) {
                Some(acc) => grads.insert(input.id(), acc.add(&g)?),
                None => grads.insert(input.id(), g),
            };
        }
        drop(grad_fn_ref);
        if !retain_graph {
            // Free the saved tensors and the references to the inputs now.
            node.grad_fn.borrow_mut().take();
        }
    }
    Ok(())
    // END SOLUTION
}

/// "NaN" or "infinity", for anomaly messages.
pub(crate) fn non_finite_kind(t: &Tensor) -> &'static str {
    if t.array().iter().any(|v| v.is_nan()) {
        "NaN"
    } else {
        "infinity"
    }
}
