//! `HarnessError`: what can go wrong while measuring, comparing or checking a report. Every
//! variant names the quantity (or the report field) at fault.

use thiserror::Error;

/// A failure of the benchmarking harness.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum HarnessError {
    /// A statistic was asked of too few samples.
    #[error("{what}: needs at least {needed} samples, got {got}")]
    TooFewSamples {
        /// The statistic or measurement.
        what: &'static str,
        /// How many it needs.
        needed: usize,
        /// How many it got.
        got: usize,
    },
    /// A sample is NaN or infinite.
    #[error("{what}: sample {index} is not finite ({value})")]
    NonFinite {
        /// The statistic or measurement.
        what: &'static str,
        /// Position of the bad sample.
        index: usize,
        /// Its value.
        value: f64,
    },
    /// A setting of the harness is out of range.
    #[error("invalid setting {name}: {reason}")]
    InvalidSetting {
        /// The setting.
        name: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// The benchmarked closure failed.
    #[error("the benchmarked code failed: {0}")]
    Workload(String),
    /// A report does not follow the schema or contradicts itself.
    #[error("invalid report: field `{field}`: {reason}")]
    Report {
        /// JSON path of the field, e.g. `improvements.speedup`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl HarnessError {
    /// A report error at `field`.
    pub fn report(field: impl Into<String>, reason: impl Into<String>) -> HarnessError {
        HarnessError::Report {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The harness's result type.
pub type Result<T> = std::result::Result<T, HarnessError>;
