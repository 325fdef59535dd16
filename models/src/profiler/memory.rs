//! Activation memory: the bytes a layer's autograd graph keeps alive until backward, read
//! from the graph's DOT export.

use autograd::Variable;

/// Ops whose output is a view of their input (no new buffer).
const VIEW_OPS: [&str; 7] = [
    "TransposeBackward",
    "ReshapeBackward",
    "PermuteBackward",
    "ExpandBackward",
    "SliceBackward",
    "SqueezeBackward",
    "UnsqueezeBackward",
];

struct DotNode {
    label: String,
    shape: Vec<usize>,
    op: bool,
    constant: bool,
}

/// Parse one `n{id} [label="{name}\n{shape}", {style}];` line.
fn parse_node(line: &str) -> Option<(u64, DotNode)> {
    let rest = line.trim().strip_prefix('n')?;
    let (id, rest) = rest.split_once(' ')?;
    let id = id.parse().ok()?;
    let label_start = rest.find("label=\"")? + "label=\"".len();
    let label_end = label_start + rest[label_start..].find('"')?;
    let (name, shape) = rest[label_start..label_end].split_once("\\n")?;
    let shape = shape
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().ok())
        .collect::<Option<Vec<usize>>>()?;
    let style = &rest[label_end..];
    Some((
        id,
        DotNode {
            label: name.to_string(),
            shape,
            op: style.contains("shape=box"),
            constant: !style.contains("shape=box") && !style.contains("filled"),
        },
    ))
}

/// Parse one `n{from} -> n{to};` line.
fn parse_edge(line: &str) -> Option<(u64, u64)> {
    let (a, b) = line.trim().trim_end_matches(';').split_once(" -> ")?;
    Some((
        a.strip_prefix('n')?.parse().ok()?,
        b.strip_prefix('n')?.parse().ok()?,
    ))
}

/// The bytes the graph behind `output` keeps alive for backward, not counting `input` (the
/// layer's input leaf) or parameters: non-view op outputs, constants (masks), convolution
/// columns and max-pool indices. See the module docs for what is and is not counted.
pub fn graph_activation_bytes(output: &Variable, input: &Variable) -> usize {
    if !output.requires_grad() {
        // No graph: nothing is kept for a backward pass.
        return 0;
    }
    let dot = autograd::to_dot(output);
    let mut nodes = std::collections::HashMap::new();
    let mut edges: std::collections::HashMap<u64, Vec<u64>> = std::collections::HashMap::new();
    for line in dot.lines() {
        if line.contains(" -> ") {
            if let Some((from, to)) = parse_edge(line) {
                edges.entry(to).or_default().push(from);
            }
        } else if let Some((id, node)) = parse_node(line) {
            nodes.insert(id, node);
        }
    }
    let f32_bytes = std::mem::size_of::<f32>();
    let mut bytes = 0;
    for (id, node) in &nodes {
        let numel: usize = node.shape.iter().product();
        if node.constant {
            if *id != input.id() {
                bytes += numel * f32_bytes;
            }
            continue;
        }
        if !node.op || VIEW_OPS.contains(&node.label.as_str()) {
            continue;
        }
        bytes += numel * f32_bytes;
        match node.label.as_str() {
            "ConvolutionBackward" => {
                // im2col columns: (N, C*KH*KW, OH*OW); the weight is the op's second input.
                let weight = edges
                    .get(id)
                    .and_then(|e| e.get(1))
                    .and_then(|w| nodes.get(w));
                if let (Some(w), [n, o, oh, ow]) = (weight, node.shape.as_slice()) {
                    let ckk = w.shape.iter().product::<usize>() / (*o).max(1);
                    bytes += n * ckk * oh * ow * f32_bytes;
                }
            }
            "MaxPool2DBackward" => bytes += numel * std::mem::size_of::<u32>(),
            _ => {}
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Graph dump lines parse into the op and shape the activation count needs.
    #[test]
    fn dot_lines_parse() {
        let (id, n) = parse_node("  n12 [label=\"MatMulBackward\\n[4, 8]\", shape=box];").unwrap();
        assert_eq!(
            (id, n.label.as_str(), n.shape, n.op, n.constant),
            (12, "MatMulBackward", vec![4, 8], true, false)
        );
        let (_, n) = parse_node("  n3 [label=\"constant\\n[]\", shape=ellipse];").unwrap();
        assert!(n.constant && n.shape.is_empty());
        let (_, n) = parse_node(
            "  n4 [label=\"leaf (requires_grad)\\n[2]\", shape=ellipse, style=filled, fillcolor=lightblue];",
        )
        .unwrap();
        assert!(!n.constant && !n.op);
        assert_eq!(parse_edge("  n3 -> n12;"), Some((3, 12)));
    }
}
