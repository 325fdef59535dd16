//! `OptimError`: what an optimizer, a schedule, clipping or a saved state can refuse.
//!
//! Every variant carries the facts needed to fix the problem: the parameter's dotted name, the
//! offending value, the file. The most important one is [`OptimError::MissingGrad`]: a trainable
//! parameter that received no gradient almost always means the graph was cut somewhere, and an
//! optimizer that silently skipped it would hide the bug for the whole training run.

use thiserror::Error;

use autograd::AutogradError;

/// The error type of every fallible operation of this crate.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum OptimError {
    /// `step()` found trainable parameters without a gradient (all of them are named).
    #[error("{}", missing_grad_message(optimizer, names))]
    MissingGrad {
        /// The optimizer that refused to step (`"Adam"`, `"Sgd"`, ...).
        optimizer: &'static str,
        /// The dotted names of every parameter without a gradient.
        names: Vec<String>,
    },
    /// A hyper-parameter or a parameter list that cannot work.
    #[error("{op}: {reason}")]
    Config {
        /// The optimizer, schedule or function that was misconfigured.
        op: &'static str,
        /// What is wrong, with the offending value.
        reason: String,
    },
    /// The gradient norm is NaN or infinite, so clipping cannot rescue the step.
    #[error("clip_grad_norm: the global gradient norm is {norm}{}; the loss or a backward pass produced NaN/Inf (try autograd's anomaly mode to find the op)", first_bad.as_ref().map(|n| format!(" (first non-finite gradient: parameter '{n}')")).unwrap_or_default())]
    NonFiniteNorm {
        /// The norm as computed (NaN or infinity).
        norm: f64,
        /// The first parameter whose gradient holds a NaN or infinity, when names are known.
        first_bad: Option<String>,
    },
    /// `load_state_dict` found a state that does not fit this optimizer; every problem is listed.
    #[error("load_state_dict: {}", problems.join("; "))]
    State {
        /// One line per mismatch (missing buffer, wrong shape, other optimizer, ...).
        problems: Vec<String>,
    },
    /// Bytes that are not a saved optimizer state.
    #[error("optimizer state: {reason}")]
    Format {
        /// What could not be parsed.
        reason: String,
    },
    /// Reading or writing a state file failed.
    #[error("optimizer state file {path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's message.
        reason: String,
    },
    /// The in-place update was refused by autograd (e.g. the parameter is not a leaf).
    #[error(transparent)]
    Autograd(#[from] AutogradError),
}

/// Shorthand used across the crate.
pub type Result<T> = std::result::Result<T, OptimError>;

impl OptimError {
    /// A configuration error for `op`.
    pub fn config(op: &'static str, reason: impl Into<String>) -> OptimError {
        OptimError::Config {
            op,
            reason: reason.into(),
        }
    }
}

fn missing_grad_message(optimizer: &str, names: &[String]) -> String {
    const SHOWN: usize = 5;
    let quoted: Vec<String> = names.iter().take(SHOWN).map(|n| format!("'{n}'")).collect();
    let more = if names.len() > SHOWN {
        format!(" and {} more", names.len() - SHOWN)
    } else {
        String::new()
    };
    let (noun, verb) = if names.len() == 1 {
        (
            "parameter",
            "received no gradient: is it part of the loss's graph?",
        )
    } else {
        (
            "parameters",
            "received no gradient: are they part of the loss's graph?",
        )
    };
    format!(
        "{optimizer}.step: {noun} {}{more} {verb} (build the optimizer with allow_unused to skip such parameters)",
        quoted.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The missing-gradient error names the optimizer and every parameter without a gradient (a
    /// long list is shortened) and says how to allow it.
    #[test]
    fn missing_grad_names_every_parameter() {
        let one = OptimError::MissingGrad {
            optimizer: "Adam",
            names: vec!["blocks.1.attn.qkv.weight".into()],
        };
        assert_eq!(
            one.to_string(),
            "Adam.step: parameter 'blocks.1.attn.qkv.weight' received no gradient: is it part of \
             the loss's graph? (build the optimizer with allow_unused to skip such parameters)"
        );
        let many = OptimError::MissingGrad {
            optimizer: "Sgd",
            names: (0..7).map(|i| format!("p{i}")).collect(),
        };
        let msg = many.to_string();
        assert!(
            msg.contains("parameters 'p0', 'p1', 'p2', 'p3', 'p4' and 2 more"),
            "{msg}"
        );
    }

    /// A non-finite gradient norm error says NaN (or inf) and names the first parameter with a bad
    /// gradient.
    #[test]
    fn non_finite_norm_says_so() {
        let e = OptimError::NonFiniteNorm {
            norm: f64::NAN,
            first_bad: Some("fc.bias".into()),
        };
        let msg = e.to_string();
        assert!(msg.contains("NaN") && msg.contains("'fc.bias'"), "{msg}");
    }
}
