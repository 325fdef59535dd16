//! Switches that change what ops record: `no_grad` and anomaly mode.
//!
//! Both are thread-local flags (the graph itself is single-threaded, built from `Rc`s). `no_grad`
//! is for evaluation and for optimizer updates: ops inside it record nothing, so no graph is
//! kept alive. Anomaly mode checks every forward and backward result for NaN/Inf and turns the
//! first one into an error naming the op.

use std::cell::Cell;

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
    static ANOMALY: Cell<bool> = const { Cell::new(false) };
}

/// Whether ops currently record a graph.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// While alive, ops record nothing; dropping it restores the previous mode.
#[must_use = "gradient recording resumes as soon as the guard is dropped"]
pub struct NoGradGuard {
    previous: bool,
}

impl NoGradGuard {
    /// Turn recording off until the guard is dropped.
    pub fn new() -> Self {
        let previous = GRAD_ENABLED.with(|g| g.replace(false));
        NoGradGuard { previous }
    }
}

impl Default for NoGradGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

/// Run `f` without recording a graph (like `with torch.no_grad():`).
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = NoGradGuard::new();
    f()
}

/// Whether anomaly mode is on.
pub fn is_anomaly_enabled() -> bool {
    ANOMALY.with(|a| a.get())
}

/// While alive, anomaly mode is on; dropping it restores the previous mode.
#[must_use = "anomaly mode ends as soon as the guard is dropped"]
pub struct AnomalyGuard {
    previous: bool,
}

impl Drop for AnomalyGuard {
    fn drop(&mut self) {
        ANOMALY.with(|a| a.set(self.previous));
    }
}

/// Turn anomaly mode on (or off) until the returned guard is dropped.
pub fn set_detect_anomaly(on: bool) -> AnomalyGuard {
    let previous = ANOMALY.with(|a| a.replace(on));
    AnomalyGuard { previous }
}

/// Run `f` with anomaly mode on: the first op producing NaN/Inf, forward or backward, is an error.
pub fn detect_anomaly<R>(f: impl FnOnce() -> R) -> R {
    let _guard = set_detect_anomaly(true);
    f()
}
