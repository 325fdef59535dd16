//! The per-family profiler: outermost calls count once, under their family, only when enabled.
//! (Its own test binary: the counters are global, and other tests' kernels would add to them.)

use std::time::Instant;

use tensor::profile::{reset, set_enabled, timed, totals, OpFamily};

/// The op profiler charges nested timed calls once to the outermost family, and records nothing
/// while it is disabled.
#[test]
fn outermost_calls_count_once_under_their_family() {
    set_enabled(true);
    reset();
    let spin = || {
        let t = Instant::now();
        while t.elapsed().as_micros() < 2000 {}
    };
    timed(OpFamily::Attention, || timed(OpFamily::Gemm, spin));
    timed(OpFamily::Norm, spin);
    set_enabled(false);
    timed(OpFamily::Loss, spin);
    let t: Vec<f64> = totals().iter().map(|&(_, s)| s).collect();
    assert!(t[1] >= 0.002 && t[2] >= 0.002, "{t:?}");
    assert_eq!(
        (t[0], t[4]),
        (0.0, 0.0),
        "nested or disabled calls were counted"
    );
}
