//! `to_dot`: the graph as Graphviz DOT, for the chapter's pictures and for debugging.
//!
//! Ops are boxes labelled with their grad_fn name and output shape; leaves are ellipses, filled
//! when they require grad (parameters) and plain otherwise (data). Render with
//! `dot -Tsvg graph.dot > graph.svg`.

use std::collections::HashSet;
use std::fmt::Write;

use crate::variable::Variable;

/// The graph behind `root` in DOT format (reachable nodes that require grad, plus constants that
/// feed them).
pub fn to_dot(root: &Variable) -> String {
    let mut out =
        String::from("digraph autograd {\n  rankdir=BT;\n  node [fontname=\"monospace\"];\n");
    let mut seen = HashSet::new();
    let mut stack = vec![root.clone()];
    while let Some(var) = stack.pop() {
        if !seen.insert(var.id()) {
            continue;
        }
        let shape = var.shape();
        let label = match var.grad_fn() {
            Some(name) => format!("{name}\\n{shape:?}"),
            None if var.requires_grad() => format!("leaf (requires_grad)\\n{shape:?}"),
            None => format!("constant\\n{shape:?}"),
        };
        let style = match (var.grad_fn(), var.requires_grad()) {
            (Some(_), _) => "shape=box",
            (None, true) => "shape=ellipse, style=filled, fillcolor=lightblue",
            (None, false) => "shape=ellipse",
        };
        let _ = writeln!(out, "  n{} [label=\"{label}\", {style}];", var.id());
        if let Some(grad_fn) = var.0.grad_fn.borrow().as_ref() {
            for input in grad_fn.inputs() {
                let _ = writeln!(out, "  n{} -> n{};", input.id(), var.id());
                stack.push(input);
            }
        }
    }
    out.push_str("}\n");
    out
}
