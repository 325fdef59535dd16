//! The [`History`] of a run: one [`Record`] per logged step, written as CSV and JSON.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{json, Value};

use crate::checkpoint::write_atomic;
use crate::error::{ModelError, Result};

/// The columns of the history CSV, in order.
pub const HISTORY_COLUMNS: [&str; 9] = [
    "step",
    "epoch",
    "train_loss",
    "val_loss",
    "val_metric",
    "lr",
    "throughput",
    "grad_norm",
    "seconds",
];

/// One row of the history: the state after `step` optimizer steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Optimizer steps taken so far.
    pub step: usize,
    /// `step / steps_per_epoch` when the data has epochs.
    pub epoch: Option<f64>,
    /// The mean training loss since the previous row.
    pub train_loss: f64,
    /// The validation loss, on evaluation rows.
    pub val_loss: Option<f64>,
    /// The validation metric, on evaluation rows.
    pub val_metric: Option<f64>,
    /// The learning rate of the last step.
    pub lr: f64,
    /// Samples (or tokens) per second of training since the previous row.
    pub throughput: f64,
    /// The gradient norm before clipping at the last step (when clipping).
    pub grad_norm: Option<f64>,
    /// Training seconds so far (evaluation excluded).
    pub seconds: f64,
}

/// Every record of a run, plus what the throughput and metric columns measure.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// `"samples"` or `"tokens"` (throughput is this unit per second).
    pub unit: String,
    /// The name of `val_metric` (`"accuracy"`, `"perplexity"`), if any.
    pub metric: Option<String>,
    /// The rows, in step order.
    pub records: Vec<Record>,
}

fn opt_num(v: Option<f64>) -> Value {
    v.filter(|x| x.is_finite()).map_or(Value::Null, Value::from)
}

impl History {
    /// The rows that carry an evaluation.
    pub fn evaluations(&self) -> impl Iterator<Item = &Record> {
        self.records.iter().filter(|r| r.val_loss.is_some())
    }

    /// The last row with an evaluation.
    pub fn last_eval(&self) -> Option<&Record> {
        self.evaluations().last()
    }

    /// The history as CSV with the [`HISTORY_COLUMNS`] header (empty cells for missing values).
    pub fn to_csv(&self) -> String {
        let mut out = HISTORY_COLUMNS.join(",");
        out.push('\n');
        let cell = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        for r in &self.records {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{}",
                r.step,
                cell(r.epoch),
                r.train_loss,
                cell(r.val_loss),
                cell(r.val_metric),
                r.lr,
                r.throughput,
                cell(r.grad_norm),
                r.seconds
            );
        }
        out
    }

    /// The history as JSON: `{"unit", "metric", "columns", "records": [{column: value}]}`
    /// (missing or non-finite values are `null`).
    pub fn to_json(&self) -> Value {
        let records: Vec<Value> = self
            .records
            .iter()
            .map(|r| {
                json!({
                    "step": r.step,
                    "epoch": opt_num(r.epoch),
                    "train_loss": opt_num(Some(r.train_loss)),
                    "val_loss": opt_num(r.val_loss),
                    "val_metric": opt_num(r.val_metric),
                    "lr": opt_num(Some(r.lr)),
                    "throughput": opt_num(Some(r.throughput)),
                    "grad_norm": opt_num(r.grad_norm),
                    "seconds": opt_num(Some(r.seconds)),
                })
            })
            .collect();
        json!({
            "unit": self.unit,
            "metric": self.metric,
            "columns": HISTORY_COLUMNS,
            "records": records,
        })
    }

    /// Parse [`History::to_json`].
    pub fn from_json(v: &Value) -> Result<History> {
        let bad = |reason: String| ModelError::Invalid {
            op: "History::from_json",
            reason,
        };
        let num = |r: &Value, k: &str| r.get(k).and_then(Value::as_f64);
        let records = v
            .get("records")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no 'records' array".into()))?
            .iter()
            .map(|r| {
                Ok(Record {
                    step: r
                        .get("step")
                        .and_then(Value::as_u64)
                        .ok_or_else(|| bad(format!("record {r} has no step")))?
                        as usize,
                    epoch: num(r, "epoch"),
                    train_loss: num(r, "train_loss").unwrap_or(f64::NAN),
                    val_loss: num(r, "val_loss"),
                    val_metric: num(r, "val_metric"),
                    lr: num(r, "lr").unwrap_or(f64::NAN),
                    throughput: num(r, "throughput").unwrap_or(f64::NAN),
                    grad_norm: num(r, "grad_norm"),
                    seconds: num(r, "seconds").unwrap_or(f64::NAN),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(History {
            unit: v
                .get("unit")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            metric: v.get("metric").and_then(Value::as_str).map(str::to_string),
            records,
        })
    }

    /// Write `<stem>.csv` and `<stem>.json` (creating the parent directory).
    pub fn write(&self, stem: &Path) -> Result<()> {
        let csv = stem.with_extension("csv");
        let json_path = stem.with_extension("json");
        write_atomic(&csv, self.to_csv().as_bytes())?;
        let text = serde_json::to_string_pretty(&self.to_json()).map_err(|e| ModelError::File {
            path: json_path.clone(),
            reason: e.to_string(),
        })?;
        write_atomic(&json_path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CSV has the header columns and empty cells for missing values; JSON round-trips.
    #[test]
    fn csv_has_the_columns_and_empty_cells() {
        let h = History {
            unit: "samples".into(),
            metric: Some("accuracy".into()),
            records: vec![Record {
                step: 5,
                epoch: None,
                train_loss: 0.5,
                val_loss: Some(0.25),
                val_metric: None,
                lr: 0.1,
                throughput: 100.0,
                grad_norm: None,
                seconds: 1.5,
            }],
        };
        assert_eq!(
            h.to_csv(),
            "step,epoch,train_loss,val_loss,val_metric,lr,throughput,grad_norm,seconds\n5,,0.5,0.25,,0.1,100,,1.5\n"
        );
        assert_eq!(History::from_json(&h.to_json()).unwrap(), h);
    }
}
