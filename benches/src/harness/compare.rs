//! Comparing models: the metrics of one model (accuracy on held-out data, latency, throughput,
//! size, memory) and a table of several with the Pareto frontiers marked (accuracy vs latency,
//! accuracy vs size).

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::harness::memory::PeakMemory;
use crate::harness::pareto::pareto_front;
use crate::harness::stats::Summary;

/// Everything measured about one model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelMetrics {
    /// Short name, e.g. `mlp`.
    pub name: String,
    /// How it was obtained from the baseline (`baseline`, `int8 quantization`, ...).
    pub technique: String,
    /// Fraction of the held-out set classified correctly, in `[0, 1]`.
    pub accuracy: f64,
    /// Milliseconds per batch-1 inference.
    pub latency_b1_ms: Summary,
    /// Milliseconds per inference on a batch of [`ModelMetrics::batch_size`].
    pub latency_batch_ms: Summary,
    /// The large batch size (256).
    pub batch_size: usize,
    /// Bytes of the checkpoint file on disk.
    pub size_bytes: u64,
    /// Bytes of the parameters in memory.
    pub param_bytes: u64,
    /// Peak resident memory of the process while the large batch ran.
    pub peak_memory: PeakMemory,
}

impl ModelMetrics {
    /// Samples per second at the large batch (from its mean latency).
    pub fn throughput(&self) -> f64 {
        self.batch_size as f64 / (self.latency_batch_ms.mean / 1e3)
    }

    /// The model as a JSON object (the report's `baseline`, `optimized` and `variants[]`).
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "technique": self.technique,
            "accuracy": self.accuracy,
            "latency_b1_ms": self.latency_b1_ms.to_json(),
            "latency_batch_ms": self.latency_batch_ms.to_json(),
            "batch_size": self.batch_size,
            "throughput_per_s": self.throughput(),
            "size_bytes": self.size_bytes,
            "param_bytes": self.param_bytes,
            "peak_memory_bytes": self.peak_memory.bytes,
            "peak_memory_source": self.peak_memory.source.name(),
        })
    }
}

/// Which frontiers each model is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrontierMarks {
    /// On the accuracy-vs-latency (batch 1) frontier.
    pub latency: bool,
    /// On the accuracy-vs-size (on disk) frontier.
    pub size: bool,
}

/// The frontier marks of every model, in order.
pub fn frontiers(models: &[ModelMetrics]) -> Vec<FrontierMarks> {
    let latency = pareto_front(
        &models
            .iter()
            .map(|m| (m.accuracy, m.latency_b1_ms.mean))
            .collect::<Vec<_>>(),
    );
    let size = pareto_front(
        &models
            .iter()
            .map(|m| (m.accuracy, m.size_bytes as f64))
            .collect::<Vec<_>>(),
    );
    latency
        .into_iter()
        .zip(size)
        .map(|(latency, size)| FrontierMarks { latency, size })
        .collect()
}

/// Bytes as `12.3 KB` / `4.5 MB` (powers of 1000, like file sizes in most tools).
pub fn format_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.2} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} KB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

/// Milliseconds with three significant figures or so.
pub fn format_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 1.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.4}")
    }
}

/// The comparison table: one row per model, the frontier marks in the last column (`L`: on the
/// accuracy-vs-latency frontier, `S`: on the accuracy-vs-size frontier).
pub fn comparison_table(models: &[ModelMetrics]) -> String {
    let marks = frontiers(models);
    let header = [
        "model",
        "technique",
        "accuracy",
        "batch-1 ms (95% CI)",
        "batch ms",
        "samples/s",
        "size",
        "params",
        "peak RSS",
        "frontier",
    ];
    let rows: Vec<Vec<String>> = models
        .iter()
        .zip(&marks)
        .map(|(m, f)| {
            vec![
                m.name.clone(),
                m.technique.clone(),
                format!("{:.2}%", 100.0 * m.accuracy),
                format!(
                    "{} ± {}",
                    format_ms(m.latency_b1_ms.mean),
                    format_ms(m.latency_b1_ms.ci95_half_width())
                ),
                format!("{} (b{})", format_ms(m.latency_batch_ms.mean), m.batch_size),
                format!("{:.0}", m.throughput()),
                format_bytes(m.size_bytes),
                format_bytes(m.param_bytes),
                m.peak_memory
                    .bytes
                    .map_or_else(|| "n/a".to_string(), format_bytes),
                format!(
                    "{}{}",
                    if f.latency { "L" } else { "" },
                    if f.size { "S" } else { "" }
                ),
            ]
        })
        .collect();
    text_table(&header, &rows)
}

/// A plain text table: a header, a rule, the rows, columns padded to their widest cell.
pub fn text_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, w) in width.iter().enumerate() {
            let c = cells.get(i).map_or("", String::as_str);
            let _ = write!(s, "{c}{}  ", " ".repeat(w - c.chars().count()));
        }
        s.trim_end().to_string()
    };
    let mut out = line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    out.push('\n');
    out.push_str(&"-".repeat(width.iter().sum::<usize>() + 2 * (width.len().saturating_sub(1))));
    for row in rows {
        out.push('\n');
        out.push_str(&line(row));
    }
    out
}
