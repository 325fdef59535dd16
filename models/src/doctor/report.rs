//! The doctor's bounds ([`DoctorConfig`]) and what it found ([`CheckResult`], [`DoctorReport`]).

use std::fmt::Write;
use std::time::Duration;

use crate::error::{ModelError, Result};

#[cfg(doc)]
use super::checks::CHECK_NAMES;
use super::lr_range::{LrRangeConfig, LrRangeResult};

/// The bounds of the doctor's checks.
#[derive(Clone, Debug, PartialEq)]
pub struct DoctorConfig {
    /// Batches fetched per epoch for the data, loader and multi-batch checks.
    pub max_batches: usize,
    /// Step limit of the single-batch overfit check.
    pub overfit_steps: usize,
    /// The fraction by which the single-batch loss must fall (0.5: to half its first value).
    pub overfit_drop: f64,
    /// Steps of the multi-batch check.
    pub multi_batch_steps: usize,
    /// Steps averaged at each end of the multi-batch run.
    pub multi_batch_window: usize,
    /// The fraction by which the mean loss of the last window must be below the first's.
    pub multi_batch_drop: f64,
    /// Wall-clock limit of each training check (it stops early and says so).
    pub check_seconds: f64,
    /// The learning-rate range test (`None` skips it).
    pub lr_range: Option<LrRangeConfig>,
}

impl Default for DoctorConfig {
    fn default() -> DoctorConfig {
        DoctorConfig {
            max_batches: 16,
            overfit_steps: 100,
            overfit_drop: 0.5,
            multi_batch_steps: 60,
            multi_batch_window: 10,
            multi_batch_drop: 0.05,
            check_seconds: 30.0,
            lr_range: Some(LrRangeConfig::default()),
        }
    }
}

impl DoctorConfig {
    pub(super) fn validate(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(ModelError::Invalid {
                op: "DoctorConfig",
                reason,
            })
        };
        if self.max_batches == 0 || self.overfit_steps == 0 {
            return bad(format!(
                "max_batches ({}) and overfit_steps ({}) must be at least 1",
                self.max_batches, self.overfit_steps
            ));
        }
        if self.multi_batch_window == 0 || self.multi_batch_steps < 2 * self.multi_batch_window {
            return bad(format!(
                "multi_batch_steps ({}) must hold two windows of multi_batch_window ({}) >= 1 steps",
                self.multi_batch_steps, self.multi_batch_window
            ));
        }
        if !(0.0..1.0).contains(&self.overfit_drop) || !(0.0..1.0).contains(&self.multi_batch_drop)
        {
            return bad(format!(
                "overfit_drop ({}) and multi_batch_drop ({}) must be in [0, 1)",
                self.overfit_drop, self.multi_batch_drop
            ));
        }
        if self.check_seconds.is_nan() || self.check_seconds <= 0.0 {
            return bad(format!(
                "check_seconds must be > 0, got {}",
                self.check_seconds
            ));
        }
        if let Some(lr) = &self.lr_range {
            lr.validate()?;
        }
        Ok(())
    }

    pub(super) fn budget(&self) -> Duration {
        Duration::from_secs_f64(self.check_seconds)
    }
}

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckResult {
    /// The check's name (one of [`CHECK_NAMES`]).
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// What was measured, with the numbers (and on failure, the likely cause).
    pub detail: String,
    /// What the check blames: parameter names for checks 3 and 4, empty otherwise.
    pub failing: Vec<String>,
}

impl CheckResult {
    pub(super) fn pass(name: &str, detail: String) -> CheckResult {
        CheckResult {
            name: name.to_string(),
            passed: true,
            detail,
            failing: Vec::new(),
        }
    }

    pub(super) fn fail(name: &str, detail: String) -> CheckResult {
        CheckResult {
            name: name.to_string(),
            passed: false,
            detail,
            failing: Vec::new(),
        }
    }
}

/// All checks, the LR range test and how long the doctor took.
#[derive(Clone, Debug)]
pub struct DoctorReport {
    /// The seven checks, in [`CHECK_NAMES`] order.
    pub checks: Vec<CheckResult>,
    /// The LR range test's suggestion, if it ran and found one.
    pub suggested_lr: Option<f64>,
    /// The whole LR range test, if it ran.
    pub lr_range: Option<LrRangeResult>,
    /// Wall-clock seconds of the whole diagnosis.
    pub seconds: f64,
}

impl DoctorReport {
    /// Whether every check passed.
    pub fn all_passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The check called `name`.
    pub fn check(&self, name: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The checks that failed.
    pub fn failed(&self) -> Vec<&CheckResult> {
        self.checks.iter().filter(|c| !c.passed).collect()
    }

    /// A plain-text table: one row per check, then the LR range test and a summary line.
    pub fn table(&self) -> String {
        let width = self
            .checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = String::new();
        let _ = writeln!(out, " #  {:<width$}  result  detail", "check");
        let _ = writeln!(out, "{}", "-".repeat(width + 24));
        for (i, c) in self.checks.iter().enumerate() {
            let verdict = if c.passed { "PASS" } else { "FAIL" };
            let _ = writeln!(
                out,
                "{:>2}  {:<width$}  {verdict:<6}  {}",
                i + 1,
                c.name,
                c.detail
            );
        }
        match &self.lr_range {
            Some(lr) => {
                let _ = writeln!(out, "LR range test: {}", lr.summary());
            }
            None => {
                let _ = writeln!(out, "LR range test: not run");
            }
        }
        let passed = self.checks.iter().filter(|c| c.passed).count();
        let _ = writeln!(
            out,
            "{passed}/{} checks passed in {:.2} s",
            self.checks.len(),
            self.seconds
        );
        out
    }
}

/// A number with four significant-ish digits, scientific when very small or large.
pub(super) fn fmt_num(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        format!("{x}")
    } else if (1e-3..1e4).contains(&x.abs()) {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

/// The relative change from `a` to `b` as a signed percentage.
pub(super) fn fmt_change(a: f32, b: f32) -> String {
    if a == 0.0 {
        return "n/a".into();
    }
    format!("{:+.0}%", 100.0 * (b as f64 - a as f64) / a.abs() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers and relative changes are formatted as the report prints them.
    #[test]
    fn formatting() {
        assert_eq!(fmt_num(1.234567), "1.2346");
        assert_eq!(fmt_num(1.5e-5), "1.500e-5");
        assert_eq!(fmt_change(2.0, 1.0), "-50%");
    }

    /// Bad doctor and LR range configurations are refused, naming the field.
    #[test]
    fn bad_configs_are_refused() {
        let c = DoctorConfig {
            multi_batch_steps: 5,
            ..Default::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("multi_batch_steps (5)"));
        let c = DoctorConfig {
            lr_range: Some(LrRangeConfig {
                start_lr: 1.0,
                end_lr: 0.1,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("start_lr < end_lr"));
    }
}
