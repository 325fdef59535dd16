//! What a milestone shows at the end: a results table on the terminal and, with `--json`, a file
//! `{"milestone", "dataset", "metrics": {...}, "params", "seconds", "threads"}`.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{json, Map, Value};

/// One finished run: a name, its dataset, its metrics in display order, its size and duration.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub milestone: String,
    pub dataset: String,
    pub metrics: Vec<(String, f64)>,
    pub params: usize,
    pub seconds: f64,
    /// Worker threads of the parallel kernels (rayon's global pool, set by `--threads`).
    pub threads: usize,
}

impl RunReport {
    /// Start a report for `milestone` on `dataset`.
    pub fn new(milestone: &str, dataset: &str) -> Self {
        RunReport {
            milestone: milestone.to_string(),
            dataset: dataset.to_string(),
            metrics: Vec::new(),
            params: 0,
            seconds: 0.0,
            threads: rayon::current_num_threads(),
        }
    }

    /// Add (or replace) a metric.
    pub fn metric(&mut self, name: &str, value: f64) -> &mut Self {
        match self.metrics.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.metrics.push((name.to_string(), value)),
        }
        self
    }

    /// The value of a metric, if recorded.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    /// The report as the JSON object written by `--json`.
    pub fn to_json(&self) -> Value {
        let metrics: Map<String, Value> = self
            .metrics
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        json!({
            "milestone": self.milestone,
            "dataset": self.dataset,
            "metrics": metrics,
            "params": self.params,
            "seconds": self.seconds,
            "threads": self.threads,
        })
    }

    /// Write the JSON file, naming the path in the error.
    pub fn write_json(&self, path: &Path) -> Result<(), String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("{}: cannot create directory: {e}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(&self.to_json()).expect("a JSON value serialises");
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("{}: cannot write: {e}", path.display()))
    }

    /// The results table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String)> = vec![
            ("milestone".into(), self.milestone.clone()),
            ("dataset".into(), self.dataset.clone()),
        ];
        for (k, v) in &self.metrics {
            rows.push((k.clone(), format_metric(k, *v)));
        }
        rows.push(("parameters".into(), format_count(self.params)));
        rows.push(("time".into(), format!("{:.1} s", self.seconds)));
        rows.push(("threads".into(), self.threads.to_string()));
        table(
            &["result", "value"],
            &rows
                .iter()
                .map(|(a, b)| vec![a.clone(), b.clone()])
                .collect::<Vec<_>>(),
        )
    }
}

/// Accuracy-like metrics print as percentages, the rest with 4 decimals.
fn format_metric(name: &str, v: f64) -> String {
    if name.contains("accuracy") {
        format!("{:.2}%", v * 100.0)
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

/// `1234567` as `1,234,567`.
pub fn format_count(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A plain box-drawn table with a header row.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(cols) {
            width[i] = width[i].max(cell.chars().count());
        }
    }
    let line = |l: &str, m: &str, r: &str| {
        let mut s = String::from(l);
        for (i, w) in width.iter().enumerate() {
            s.push_str(&"─".repeat(w + 2));
            s.push_str(if i + 1 < cols { m } else { r });
        }
        s
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}", line("┌", "┬", "┐"));
    let fmt_row = |cells: Vec<String>| {
        let mut s = String::from("│");
        for (i, w) in width.iter().enumerate() {
            let c = cells.get(i).cloned().unwrap_or_default();
            let pad = w - c.chars().count();
            s.push_str(&format!(" {c}{} │", " ".repeat(pad)));
        }
        s
    };
    let _ = writeln!(
        out,
        "{}",
        fmt_row(header.iter().map(|h| h.to_string()).collect())
    );
    let _ = writeln!(out, "{}", line("├", "┼", "┤"));
    for row in rows {
        let _ = writeln!(out, "{}", fmt_row(row.clone()));
    }
    let _ = write!(out, "{}", line("└", "┴", "┘"));
    out
}

/// The end of every milestone's `main`: print the results table and write `--json`, or print the
/// error and exit non-zero (never a panic).
pub fn finish(result: Result<RunReport, Box<dyn std::error::Error>>, json: Option<&Path>) {
    match result {
        Ok(report) => {
            println!("{}", report.table());
            if let Some(path) = json {
                if let Err(e) = report.write_json(path) {
                    eprintln!("error: {e}");
                    std::process::exit(1);
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
