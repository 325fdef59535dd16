//! The SIMD row toolkit every fused `f32` kernel of the crate is built from.
//!
//! The crate is compiled for baseline x86-64, yet its kernels run 8 or 16 floats per instruction:
//! they are plain loops, marked `#[inline(always)]`, run inside [`with_simd`], which calls them
//! from a function compiled for AVX2+FMA or AVX-512 when the CPU has it. This file holds that
//! dispatch, a vectorizable `exp` ([`fast_exp`]), lane-split reductions with a fixed order (so
//! results are the same on every CPU and every run), and the row drivers ([`for_each_row`],
//! [`map_along_dim`]) that hand blocks of rows to threads for big tensors. Users: softmax, causal
//! softmax, cross-entropy, layer norm, SDPA, the KV-cache attention rows, activations and the
//! int8 GEMM's quantization pass.

use std::cell::Cell;
use std::sync::OnceLock;

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use crate::error::{Result, TensorError};
use crate::tensor::{Tensor, PARALLEL_THRESHOLD};

/// Each thread task gets at least this many elements, so scheduling stays cheap for short rows.
const MIN_TASK_ELEMS: usize = 4096;

/// Independent accumulators in the reductions below. A sum written as one running `f32` cannot
/// be vectorized (the compiler may not reorder float additions); splitting it over a fixed
/// number of lanes can, and the fixed split keeps results identical from run to run.
const LANES: usize = 8;

/// `e^x` in `f32`, written so the compiler can vectorize loops that call it (libm's `expf` is an
/// opaque call per element). Range reduction `x = n ln2 + r` with `|r| <= ln2 / 2`, a degree-7
/// Taylor polynomial for `e^r` (truncation error below 1e-8 relative), and `2^n` built from the
/// exponent bits. Relative error is a few ulp. Inputs below about -87.3 give exactly 0 (so
/// `exp(-inf) = 0`), NaN stays NaN; inputs above 88 saturate near `f32::MAX`.
///
/// `mul_add` is one fused instruction on every CPU the kernels are tuned for (AVX2 or AVX-512)
/// and is exactly rounded everywhere, so the result does not depend on the machine.
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    const LOW: f32 = -87.3;
    const HIGH: f32 = 88.0;
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two: the high part has few mantissa bits, so `n * LN2_HI` is exact.
    const LN2_HI: f32 = 0.693_359_4; // 355 / 512
    const LN2_LO: f32 = -2.121_944_4e-4; // ln 2 - 355 / 512

    // Adding 1.5 * 2^23 rounds to the nearest integer and leaves it in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    // Comparisons are false for NaN, so NaN passes through the clamp untouched.
    let xc = if x < LOW { LOW } else { x };
    let xc = if xc > HIGH { HIGH } else { xc };
    let t = xc.mul_add(LOG2_E, ROUND);
    let n = t - ROUND;
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, xc));
    let mut p: f32 = 1.0 / 5040.0;
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p.mul_add(r, c);
    }
    let n_int = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let two_n = f32::from_bits((n_int.wrapping_add(127) << 23) as u32);
    if x < LOW {
        0.0
    } else {
        p * two_n
    }
}

/// Sum of `f(v)` over a slice, accumulated in [`LANES`] fixed lanes (vectorizes, deterministic).
#[inline(always)]
pub(crate) fn sum_map(a: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = a.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for k in 0..LANES {
            acc[k] += f(c[k]);
        }
    }
    let mut rest = 0.0f32;
    for &v in tail {
        rest += f(v);
    }
    acc.iter().sum::<f32>() + rest
}

/// Sum of `f(a_i, b_i)` over two slices of equal length, in fixed lanes.
#[inline(always)]
pub(crate) fn sum_map2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..LANES {
            acc[k] += f(x[k], y[k]);
        }
    }
    let mut rest = 0.0f32;
    for (&x, &y) in ta.iter().zip(tb) {
        rest += f(x, y);
    }
    acc.iter().sum::<f32>() + rest
}

/// The row maximum of `scale * a_i` (`-inf` for an empty row). NaN entries are skipped here; they
/// still poison the row through `exp(NaN - m)`.
#[inline(always)]
pub(crate) fn max_scaled(a: &[f32], scale: f32) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = a.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for k in 0..LANES {
            let v = scale * c[k];
            acc[k] = if v > acc[k] { v } else { acc[k] };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for &v in acc.iter() {
        m = if v > m { v } else { m };
    }
    for &v in tail {
        let v = scale * v;
        m = if v > m { v } else { m };
    }
    m
}

/// The row maximum (`-inf` for an empty row).
#[inline(always)]
pub(crate) fn row_max(a: &[f32]) -> f32 {
    max_scaled(a, 1.0)
}

/// Write `y_i = exp(scale * x_i - shift)` and return their sum. (Two simple loops, a map and a
/// sum, vectorize more reliably than one loop doing both.)
#[inline(always)]
pub(crate) fn exp_shifted_into(x: &[f32], scale: f32, shift: f32, y: &mut [f32]) -> f32 {
    for (yv, &xv) in y.iter_mut().zip(x) {
        *yv = fast_exp(scale * xv - shift);
    }
    sum_map(y, |v| v)
}

/// Multiply a row in place by `s`.
#[inline(always)]
pub(crate) fn scale_in_place(y: &mut [f32], s: f32) {
    for v in y.iter_mut() {
        *v *= s;
    }
}

/// Whether a row-wise kernel over `numel` elements should use threads: only for big buffers, and
/// only when the pool has more than one thread (waking a pool of one costs more than it saves).
pub(crate) fn parallel(numel: usize) -> bool {
    numel >= PARALLEL_THRESHOLD && rayon::current_num_threads() > 1
}

/// A vector instruction level the kernels can be compiled for, lowest first.
///
/// - `Scalar`: the crate's baseline target (x86-64 with SSE2: 4-wide, no FMA instruction).
/// - `Avx2`: 256-bit registers with AVX2 and FMA.
/// - `Avx512`: 512-bit registers with AVX-512F (plus VNNI for the int8 GEMM when present).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimdLevel {
    Scalar,
    Avx2,
    Avx512,
}

/// The environment variable that caps the dispatch of every kernel of the project.
pub const SIMD_ENV: &str = "TINYTORCH_SIMD";

/// Whether the `gemm` crate was built with its AVX-512 kernels (the `avx512` feature of this
/// crate, on by default). Without it the `f32` GEMM runs AVX2 kernels on every CPU, which is
/// how an AVX-512 machine measures the AVX2 build.
pub const GEMM_AVX512_BUILT: bool = cfg!(feature = "avx512");

impl SimdLevel {
    /// Every level, lowest first.
    pub const ALL: [SimdLevel; 3] = [SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512];

    /// The name used by [`SIMD_ENV`] and in every measured figure.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Scalar => "scalar",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run code compiled for the level.
    pub fn is_supported(self) -> bool {
        self <= cpu_simd_level()
    }

    /// Parse a level name (`scalar`, `avx2` or `avx512`, any case).
    pub fn parse(value: &str) -> Result<SimdLevel> {
        let wanted = value.trim().to_ascii_lowercase();
        SimdLevel::ALL
            .into_iter()
            .find(|l| l.name() == wanted)
            .ok_or_else(|| TensorError::InvalidSetting {
                op: "simd_level",
                variable: SIMD_ENV,
                value: value.to_string(),
                valid: "scalar, avx2, avx512",
            })
    }
}

impl std::fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The highest level this CPU supports (detected once).
pub fn cpu_simd_level() -> SimdLevel {
    static CPU: OnceLock<SimdLevel> = OnceLock::new();
    *CPU.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            let fma = std::arch::is_x86_feature_detected!("fma");
            if std::arch::is_x86_feature_detected!("avx512f") && fma {
                return SimdLevel::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") && fma {
                return SimdLevel::Avx2;
            }
        }
        SimdLevel::Scalar
    })
}

/// The cap [`SIMD_ENV`] sets: `Ok(None)` when unset, an error naming the variable and the valid
/// values when it holds anything else. Read once per process.
pub fn simd_cap_from_env() -> Result<Option<SimdLevel>> {
    static CAP: OnceLock<Result<Option<SimdLevel>>> = OnceLock::new();
    CAP.get_or_init(|| match std::env::var(SIMD_ENV) {
        Ok(value) => SimdLevel::parse(&value).map(Some),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(raw)) => Err(TensorError::InvalidSetting {
            op: "simd_level",
            variable: SIMD_ENV,
            value: raw.to_string_lossy().into_owned(),
            valid: "scalar, avx2, avx512",
        }),
    })
    .clone()
}

/// The process-wide level: the CPU's, lowered by [`SIMD_ENV`]. An invalid value is reported
/// once on stderr (naming the variable and the valid values) and the CPU's level is used; a
/// level above the CPU's is reported and lowered to it. Programs that prefer to stop call
/// [`simd_cap_from_env`] at start-up.
fn process_simd_level() -> SimdLevel {
    static LEVEL: OnceLock<SimdLevel> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cpu = cpu_simd_level();
        match simd_cap_from_env() {
            Ok(None) => cpu,
            Ok(Some(cap)) if cap > cpu => {
                eprintln!(
                    "warning: {SIMD_ENV}={cap} asks for more than this CPU supports; using {cpu}"
                );
                cpu
            }
            Ok(Some(cap)) => cap,
            Err(e) => {
                eprintln!("warning: {e}; using this CPU's level {cpu}");
                cpu
            }
        }
    })
}

thread_local! {
    /// A tighter cap for the current thread, set by [`at_simd_level`].
    static THREAD_CAP: Cell<Option<SimdLevel>> = const { Cell::new(None) };
}

/// The level the kernels dispatch to on this thread: the CPU's level, capped by [`SIMD_ENV`]
/// and by an enclosing [`at_simd_level`]. Every measured figure names it.
pub fn simd_level() -> SimdLevel {
    let level = process_simd_level();
    match THREAD_CAP.with(Cell::get) {
        Some(cap) => level.min(cap),
        None => level,
    }
}

/// Every level the kernels can run at here (up to [`simd_level`]), lowest first. Tests loop
/// over it so each dispatch path is checked against its reference, not only the fastest.
pub fn supported_levels() -> Vec<SimdLevel> {
    let top = simd_level();
    SimdLevel::ALL.into_iter().filter(|&l| l <= top).collect()
}

/// Run `f` with every kernel it calls (on this thread and in the thread-pool tasks it starts)
/// dispatched at most at `level`. The previous cap is restored afterwards, even on a panic.
pub fn at_simd_level<R>(level: SimdLevel, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<SimdLevel>);
    impl Drop for Restore {
        fn drop(&mut self) {
            THREAD_CAP.with(|c| c.set(self.0));
        }
    }
    let previous = THREAD_CAP.with(Cell::get);
    let cap = previous.map_or(level, |p| p.min(level));
    THREAD_CAP.with(|c| c.set(Some(cap)));
    let _restore = Restore(previous);
    f()
}

/// Run `f` compiled for the vector unit at [`simd_level`]: AVX-512 or AVX2 (+FMA) when allowed.
///
/// The crate is built for baseline x86-64 (4-wide SSE2), but the row kernels are plain loops the
/// compiler vectorizes for whatever target it is told. Inlined into a function marked
/// `#[target_feature(enable = ...)]`, the same loops use 16- or 8-wide registers, and
/// `f32::mul_add` becomes one instruction. This is why the row kernels and the closures that
/// call them are `#[inline(always)]`: code that is not inlined here runs at baseline speed.
/// Every path does the same arithmetic in the same order (`mul_add` is exactly rounded
/// everywhere, and each sum has a fixed lane order), so results do not depend on the CPU.
#[inline(always)]
pub fn with_simd<R>(f: impl FnOnce() -> R) -> R {
    with_simd_at(simd_level(), f)
}

/// [`with_simd`] at an explicit level. Thread-pool tasks call it with the level their caller
/// read (a thread-local cap does not follow work onto other threads). A level above the CPU's
/// runs at the CPU's.
#[inline(always)]
pub fn with_simd_at<R>(level: SimdLevel, f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    match level.min(cpu_simd_level()) {
        // SAFETY: the CPU supports AVX-512F and FMA (`cpu_simd_level` checked it).
        SimdLevel::Avx512 => return unsafe { with_avx512(f) },
        // SAFETY: the CPU supports AVX2 and FMA (`cpu_simd_level` checked it).
        SimdLevel::Avx2 => return unsafe { with_avx2(f) },
        SimdLevel::Scalar => {}
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = level;
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Run `f(row_index, out_row, aux)` on every row of length `n` of `out`, with one auxiliary
/// per-row output (`aux.len()` must be the row count). When [`parallel`] says so, blocks of rows
/// go to the thread pool; each row is computed the same way either way, so results do not depend
/// on the thread count.
pub(crate) fn for_each_row_aux<A: Send>(
    out: &mut [f32],
    n: usize,
    aux: &mut [A],
    f: impl Fn(usize, &mut [f32], &mut A) + Sync + Send,
) {
    if n == 0 || out.is_empty() {
        return;
    }
    debug_assert_eq!(out.len() / n, aux.len());
    // Runs outside the vector region itself, so it needs no inlining; `f` is inlined below.
    // The level is read here, on the calling thread, so pool tasks honour its cap.
    let level = simd_level();
    let block = |first: usize, rows: &mut [f32], aux: &mut [A]| {
        with_simd_at(
            level,
            #[inline(always)]
            || {
                for (k, (row, a)) in rows.chunks_mut(n).zip(aux.iter_mut()).enumerate() {
                    f(first + k, row, a);
                }
            },
        )
    };
    if parallel(out.len()) {
        let rows_per_task = (MIN_TASK_ELEMS / n).max(1);
        out.par_chunks_mut(rows_per_task * n)
            .zip(aux.par_chunks_mut(rows_per_task))
            .enumerate()
            .for_each(|(t, (rows, aux))| block(t * rows_per_task, rows, aux));
    } else {
        block(0, out, aux);
    }
}

/// Run `f(row_index, out_row)` on every row of length `n` of `out` (threads for big buffers).
pub(crate) fn for_each_row(out: &mut [f32], n: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if n == 0 {
        return;
    }
    let mut units = vec![(); out.len() / n];
    for_each_row_aux(
        out,
        n,
        &mut units,
        #[inline(always)]
        |r, row, _| f(r, row),
    );
}

/// Apply a row kernel along dimension `d` of `K` tensors of one shape. `kernel(inputs, out)`
/// receives the `K` input rows and writes the output row. The last dimension of contiguous
/// inputs needs no copy; otherwise each input is copied once with `d` moved last, and the output
/// is moved back to the original layout.
pub(crate) fn map_along_dim<const K: usize>(
    inputs: [&Tensor; K],
    d: usize,
    kernel: impl Fn([&[f32]; K], &mut [f32]) + Sync + Send,
) -> Tensor {
    let shape = inputs[0].shape().to_vec();
    let numel: usize = shape.iter().product();
    if numel == 0 {
        return Tensor::zeros(&shape);
    }
    let last = shape.len() - 1;
    let n = shape[d];
    // Axis order with `d` moved last, and its inverse.
    let perm: Vec<usize> = (0..shape.len()).filter(|&a| a != d).chain([d]).collect();
    let rows: Vec<Tensor> = inputs
        .iter()
        .map(|t| {
            if d == last {
                t.contiguous()
            } else {
                let moved = t.data.view().permuted_axes(IxDyn(&perm));
                Tensor::from_array(moved.as_standard_layout().into_owned())
            }
        })
        .collect();
    let slices: Vec<&[f32]> = rows
        .iter()
        .map(|t| t.as_slice().expect("made contiguous above"))
        .collect();
    let mut out = vec![0.0f32; numel];
    for_each_row(
        &mut out,
        n,
        #[inline(always)]
        |r, row| {
            let ins: [&[f32]; K] = std::array::from_fn(|k| &slices[k][r * n..(r + 1) * n]);
            kernel(ins, row);
        },
    );
    if d == last {
        Tensor::from_array(ArrayD::from_shape_vec(IxDyn(&shape), out).expect("numel matches"))
    } else {
        let moved_shape: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
        let mut inverse = vec![0usize; perm.len()];
        for (j, &a) in perm.iter().enumerate() {
            inverse[a] = j;
        }
        let moved = ArrayD::from_shape_vec(IxDyn(&moved_shape), out).expect("numel matches");
        let back = moved.permuted_axes(IxDyn(&inverse));
        Tensor::from_array(back.as_standard_layout().into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The polynomial fast_exp stays within 5e-7 relative error of f64 exp over the whole f32 range
    /// where exp is finite.
    #[test]
    fn fast_exp_matches_f64_exp() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let got = fast_exp(x) as f64;
            let want = (x as f64).exp();
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
    }

    /// fast_exp gives exactly 1 at 0, 0 for -inf and very negative inputs, NaN for NaN, and a
    /// finite value at 88.
    #[test]
    fn fast_exp_edges() {
        assert_eq!(fast_exp(0.0), 1.0);
        assert_eq!(fast_exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(fast_exp(-1000.0), 0.0);
        assert!(fast_exp(f32::NAN).is_nan());
        assert!(fast_exp(88.0).is_finite());
    }

    /// The SIMD sum, dot and max reductions include the tail elements past the last full vector,
    /// and the max of an empty row is -inf.
    #[test]
    fn lane_reductions_cover_tails() {
        let a: Vec<f32> = (0..37).map(|i| i as f32).collect();
        assert_eq!(sum_map(&a, |v| v), 666.0);
        assert_eq!(
            sum_map2(&a, &a, |x, y| x * y),
            (0..37).map(|i| (i * i) as f32).sum()
        );
        assert_eq!(row_max(&a), 36.0);
        assert_eq!(max_scaled(&a, -1.0), 0.0);
        assert_eq!(row_max(&[]), f32::NEG_INFINITY);
    }
}
