//! Time spent per op family (GEMM, attention, norm, activations, loss), for benchmarks.
//!
//! A training step's time is spread over many kernels; to know where to optimize, a benchmark
//! wants it summed by family. Each family's kernels wrap their body in [`timed`]: when
//! [`set_enabled`] turned profiling on, the wall time of the outermost timed call is added to
//! its family's counter (a kernel that calls another, such as attention calling the GEMM, is
//! counted once, under the outer family). Off (the default), a timed call costs one atomic load.
//! Ops run one after another from the calling thread, so outermost calls never overlap.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

/// The op families a step's time is broken down into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpFamily {
    /// Matrix products (every `f32` GEMM, forward and backward).
    Gemm,
    /// Attention: fused SDPA and causal softmax, forward and backward.
    Attention,
    /// Layer norm forward and backward.
    Norm,
    /// Activation functions (GELU, ReLU, sigmoid, tanh) and their backward kernels.
    Activation,
    /// Loss functions (cross-entropy) and their backward kernels.
    Loss,
}

impl OpFamily {
    /// Every family, in report order.
    pub const ALL: [OpFamily; 5] = [
        OpFamily::Gemm,
        OpFamily::Attention,
        OpFamily::Norm,
        OpFamily::Activation,
        OpFamily::Loss,
    ];

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            OpFamily::Gemm => "gemm",
            OpFamily::Attention => "attention",
            OpFamily::Norm => "norm",
            OpFamily::Activation => "activations",
            OpFamily::Loss => "loss",
        }
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static DEPTH: AtomicUsize = AtomicUsize::new(0);
static NANOS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

/// Turn the per-family counters on or off.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Zero every counter.
pub fn reset() {
    for n in &NANOS {
        n.store(0, Ordering::Relaxed);
    }
}

/// Seconds counted per family since the last [`reset`], in [`OpFamily::ALL`] order.
pub fn totals() -> Vec<(OpFamily, f64)> {
    OpFamily::ALL
        .iter()
        .zip(&NANOS)
        .map(|(&f, n)| (f, n.load(Ordering::Relaxed) as f64 * 1e-9))
        .collect()
}

/// Run `f`, adding its wall time to `family` when profiling is on and no timed call encloses it.
#[inline]
pub fn timed<R>(family: OpFamily, f: impl FnOnce() -> R) -> R {
    if !ENABLED.load(Ordering::Relaxed) {
        return f();
    }
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            DEPTH.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let outermost = DEPTH.fetch_add(1, Ordering::Relaxed) == 0;
    let _leave = Leave;
    let start = Instant::now();
    let out = f();
    if outermost {
        let index = OpFamily::ALL.iter().position(|&x| x == family).unwrap_or(0);
        NANOS[index].fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
    out
}
