//! NumPy-style printing: nested brackets, aligned values, and the shape. Tensors with more than
//! 1,000 elements are abbreviated to the first and last three entries of every dimension.

use std::fmt;

use ndarray::{ArrayViewD, Axis};

use crate::tensor::Tensor;

const SUMMARY_THRESHOLD: usize = 1000;
const EDGE_ITEMS: usize = 3;

fn format_value(v: f32) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-4) {
        format!("{v:.4e}")
    } else {
        format!("{v:.4}")
    }
}

fn write_array(
    out: &mut String,
    view: &ArrayViewD<'_, f32>,
    width: usize,
    indent: usize,
    summarize: bool,
) {
    if view.ndim() == 0 {
        let v = view.iter().next().copied().unwrap_or(0.0);
        out.push_str(&format!("{:>width$}", format_value(v)));
        return;
    }
    let n = view.shape()[0];
    let shown: Vec<Option<usize>> = if summarize && n > 2 * EDGE_ITEMS {
        (0..EDGE_ITEMS)
            .map(Some)
            .chain(std::iter::once(None))
            .chain((n - EDGE_ITEMS..n).map(Some))
            .collect()
    } else {
        (0..n).map(Some).collect()
    };
    out.push('[');
    for (k, entry) in shown.iter().enumerate() {
        if k > 0 {
            if view.ndim() == 1 {
                out.push_str(", ");
            } else {
                out.push(',');
                out.push_str(&"\n".repeat(view.ndim() - 1));
                out.push_str(&" ".repeat(indent + 1));
            }
        }
        match entry {
            Some(i) => write_array(
                out,
                &view.index_axis(Axis(0), *i),
                width,
                indent + 1,
                summarize,
            ),
            None => out.push_str("..."),
        }
    }
    out.push(']');
}

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let summarize = self.numel() > SUMMARY_THRESHOLD;
        let width = self
            .data
            .iter()
            .map(|&v| format_value(v).len())
            .max()
            .unwrap_or(1);
        let prefix = "tensor(";
        let mut body = String::new();
        write_array(&mut body, &self.data.view(), width, prefix.len(), summarize);
        write!(f, "{prefix}{body}, shape={:?})", self.shape())
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
