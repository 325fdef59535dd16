//! The int8 GEMM: `C[m, n] = sum_k A[m, k] * B[n, k]` in exact `i32`, and the fused int8 linear
//! layer built on it (quantize activations, multiply, dequantize and add the bias).
//!
//! `B` holds the weight rows (`(out, in)` like a `Linear`'s weight), so `A·Bᵀ` is the layer.
//!
//! **Number formats.** Weights are any `i8`. Activations are symmetric `i8` codes in
//! `[-127, 127]` (the code -128 is refused): one scheme at every dispatch level, and one that lets
//! the AVX2 kernel multiply without ever saturating (below). Results are bit-identical at every
//! level.
//!
//! **Packing.** The weights are packed once ([`PackedI8Weights::pack`]) into panels of 64 output
//! columns; inside a panel, for each group of 4 consecutive `k`, the 64 columns' 4 bytes lie side
//! by side (256 bytes). One 64-byte load then holds 16 columns x 4 `k`, the operand layout of
//! `vpdpbusd`. `k` is padded to a multiple of 4 and `n` to a multiple of 64 with zero weights.
//!
//! **Kernels** (chosen at run time, or explicitly with the `_with` functions):
//! - [`I8Kernel::Avx512Vnni`]: `vpdpbusd` multiplies unsigned by signed bytes and adds each group
//!   of 4 products into an `i32` lane, with no intermediate rounding or saturation. The activations
//!   are made unsigned by `a + 128` (an xor of the sign bit, done when the codes are written), and the extra `128 * sum_k B[n, k]`
//!   is removed by starting each accumulator at `-128 * colsum[n]` (computed at packing).
//! - [`I8Kernel::Avx2`]: `vpmaddubsw` multiplies unsigned by signed bytes but adds pairs into a
//!   *saturating* `i16`. It is fed `|b|` (unsigned, at most 128) and `sign(a, b) = a * sgn(b)`
//!   (signed, at most 127 in magnitude because activations avoid -128): each pair sums to at most
//!   `2 * 128 * 127 = 32512 < 32767`, so it never saturates. `vpmaddwd` with ones then widens
//!   pairs of `i16` to `i32`.
//! - [`I8Kernel::Scalar`]: plain loops on the same packed layout, for any CPU.
//!
//! **Threading** follows [`crate::gemm`]: products below [`I8_THREADING_THRESHOLD`]
//! multiply-adds stay on the calling thread; larger ones split their rows (tall products) or their
//! column panels (short ones) over rayon's pool, never nested in another parallel loop.

use std::ops::Range;

use rayon::prelude::*;

use crate::error::{Result, TensorError};
use crate::gemm::Parallelism;
use crate::simd::{simd_level, with_simd_at, SimdLevel};

/// A product with fewer multiply-adds (`m * k * n`) than this runs on the calling thread. The
/// VNNI kernel does 170-240 G multiply-adds per second on one core here (about twice the `f32`
/// kernel), so 16M of them take 70-100 us: about where the `f32` GEMM starts to gain from a
/// second thread (see [`crate::gemm::THREADING_THRESHOLD`]); below, waking the pool costs more
/// than it saves.
pub const I8_THREADING_THRESHOLD: usize = 1 << 24;

/// Output columns per packed panel.
const PANEL: usize = 64;
/// Bytes of one `k`-group (4 values of `k`) of one panel.
const GROUP_BYTES: usize = 4 * PANEL;
/// Rows of activations per micro-tile.
const MR: usize = 4;
/// Rows quantized and multiplied together on one thread (their codes stay in cache).
const ROW_BLOCK: usize = 64;

/// An int8 GEMM implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum I8Kernel {
    /// Portable loops.
    Scalar,
    /// `vpmaddubsw` + `vpmaddwd` on 256-bit registers (with the sign trick, no saturation).
    Avx2,
    /// `vpdpbusd` on 512-bit registers.
    Avx512Vnni,
}

impl I8Kernel {
    /// Whether this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        match self {
            I8Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            I8Kernel::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            I8Kernel::Avx512Vnni => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Every kernel this CPU can run, slowest first.
    pub fn available() -> Vec<I8Kernel> {
        [I8Kernel::Scalar, I8Kernel::Avx2, I8Kernel::Avx512Vnni]
            .into_iter()
            .filter(|k| k.is_available())
            .collect()
    }

    /// The fastest kernel this CPU can run at the dispatch level ([`simd_level`], which
    /// `TINYTORCH_SIMD` can cap).
    pub fn best() -> I8Kernel {
        let level = simd_level();
        I8Kernel::available()
            .into_iter()
            .rfind(|k| k.simd_level() <= level)
            .unwrap_or(I8Kernel::Scalar)
    }

    /// The vector level the kernel (and the activation quantization before it) runs at.
    pub fn simd_level(self) -> SimdLevel {
        match self {
            I8Kernel::Scalar => SimdLevel::Scalar,
            I8Kernel::Avx2 => SimdLevel::Avx2,
            I8Kernel::Avx512Vnni => SimdLevel::Avx512,
        }
    }

    /// Whether the kernel reads activations as `a + 128` (unsigned bytes, sign bit flipped).
    fn flips_sign(self) -> bool {
        self == I8Kernel::Avx512Vnni
    }

    fn check(self) -> Result<()> {
        if self.is_available() {
            Ok(())
        } else {
            Err(TensorError::invalid(
                "gemm_i8",
                &[],
                format!("the {self:?} kernel needs CPU features this machine does not have"),
            ))
        }
    }
}

/// Weight rows `B (n x k)` packed once into the kernels' panel layout, with their column sums and,
/// for the fused linear layer, the per-row dequantization scales and the bias.
#[derive(Clone, Debug)]
pub struct PackedI8Weights {
    n: usize,
    k: usize,
    /// `k` rounded up to a multiple of 4.
    kp: usize,
    data: Vec<i8>,
    /// `-128 * sum_k B[j, k]` per (padded) column: the VNNI kernel's zero-point correction.
    compensation: Vec<i32>,
    /// Dequantization scale per (padded) column; 0 until [`PackedI8Weights::with_dequant`].
    scales: Vec<f32>,
    /// Bias per (padded) column (0 when none).
    bias: Vec<f32>,
    has_dequant: bool,
}

impl PackedI8Weights {
    /// Pack `n` weight rows of `k` values (`weights` row-major, `n * k` long).
    pub fn pack(weights: &[i8], n: usize, k: usize) -> Result<PackedI8Weights> {
        if weights.len() != n * k {
            return Err(TensorError::DataLength {
                op: "gemm_i8",
                len: weights.len(),
                shape: vec![n, k],
                numel: n * k,
            });
        }
        let kp = k.div_ceil(4) * 4;
        let panels = n.div_ceil(PANEL);
        let mut data = vec![0i8; panels * (kp / 4) * GROUP_BYTES];
        let mut compensation = vec![0i32; panels * PANEL];
        for (j, row) in weights.chunks_exact(k.max(1)).enumerate().take(n) {
            let (p, c) = (j / PANEL, j % PANEL);
            let base = p * (kp / 4) * GROUP_BYTES;
            for (kk, &v) in row.iter().enumerate() {
                data[base + (kk / 4) * GROUP_BYTES + c * 4 + kk % 4] = v;
            }
            compensation[j] = -128 * row.iter().map(|&v| v as i32).sum::<i32>();
        }
        Ok(PackedI8Weights {
            n,
            k,
            kp,
            data,
            compensation,
            scales: vec![0.0; panels * PANEL],
            bias: vec![0.0; panels * PANEL],
            has_dequant: false,
        })
    }

    /// Attach the per-row dequantization scales (weight scale of each output) and an optional
    /// bias, as [`quantized_linear`] needs. Fails on wrong lengths or non-finite values, or a
    /// scale that is not positive.
    pub fn with_dequant(mut self, scales: &[f32], bias: Option<&[f32]>) -> Result<PackedI8Weights> {
        let shape = [self.n, self.k];
        if scales.len() != self.n {
            return Err(TensorError::mismatch(
                "gemm_i8",
                &shape,
                &[scales.len()],
                format!("one scale per weight row is needed ({})", self.n),
            ));
        }
        if let Some(s) = scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(TensorError::invalid(
                "gemm_i8",
                &shape,
                format!("weight scales must be finite and positive, got {s}"),
            ));
        }
        self.scales[..self.n].copy_from_slice(scales);
        if let Some(b) = bias {
            if b.len() != self.n {
                return Err(TensorError::mismatch(
                    "gemm_i8",
                    &shape,
                    &[b.len()],
                    format!("bias needs one value per weight row ({})", self.n),
                ));
            }
            if let Some(v) = b.iter().find(|v| !v.is_finite()) {
                return Err(TensorError::invalid(
                    "gemm_i8",
                    &shape,
                    format!("bias must be finite, got {v}"),
                ));
            }
            self.bias[..self.n].copy_from_slice(b);
        }
        self.has_dequant = true;
        Ok(self)
    }

    /// Number of weight rows (output features).
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Length of each weight row (input features).
    pub fn cols(&self) -> usize {
        self.k
    }

    /// Bytes of the packed weights (padding included).
    pub fn packed_bytes(&self) -> usize {
        self.data.len()
    }

    fn panels(&self) -> usize {
        self.n.div_ceil(PANEL)
    }
}

/// The plain reference: `C[i, j] = sum_p A[i, p] * B[j, p]` in `i32` (`a` is `m x k`, `b` is
/// `n x k`, both row-major). Slow and obviously right; the kernels are tested against it.
pub fn gemm_i8_reference(a: &[i8], b: &[i8], m: usize, k: usize, n: usize) -> Vec<i32> {
    // HINT: one dot product of a row of A with a row of B per output, widened to i32 before
    // HINT: multiplying (an i8 product needs 15 bits, a sum of k of them more).
    // BEGIN SOLUTION
    assert_eq!(
        (a.len(), b.len()),
        (m * k, n * k),
        "gemm_i8_reference shapes"
    );
    let mut c = vec![0i32; m * n];
    for i in 0..m {
        for j in 0..n {
            let (x, w) = (&a[i * k..(i + 1) * k], &b[j * k..(j + 1) * k]);
            c[i * n + j] = x.iter().zip(w).map(|(&x, &w)| x as i32 * w as i32).sum();
        }
    }
    c
    // END SOLUTION
}

/// `c = a · bᵀ` in exact `i32` with the fastest kernel: `a` is `m x k` row-major activation codes
/// in `[-127, 127]`, `b` the packed `n x k` weights, `c` row-major `m x n`.
pub fn gemm_i8(
    a: &[i8],
    m: usize,
    b: &PackedI8Weights,
    c: &mut [i32],
    parallelism: Parallelism,
) -> Result<()> {
    gemm_i8_with(I8Kernel::best(), a, m, b, c, parallelism)
}

/// [`gemm_i8`] with an explicit kernel (fails if the CPU cannot run it).
pub fn gemm_i8_with(
    kernel: I8Kernel,
    a: &[i8],
    m: usize,
    b: &PackedI8Weights,
    c: &mut [i32],
    parallelism: Parallelism,
) -> Result<()> {
    kernel.check()?;
    let (k, n, kp) = (b.k, b.n, b.kp);
    if a.len() != m * k {
        return Err(TensorError::mismatch(
            "gemm_i8",
            &[a.len()],
            &[n, k],
            format!("activations must be m x k = {m} x {k}"),
        ));
    }
    if c.len() != m * n {
        return Err(TensorError::DataLength {
            op: "gemm_i8",
            len: c.len(),
            shape: vec![m, n],
            numel: m * n,
        });
    }
    if let Some(at) = a.iter().position(|&v| v == i8::MIN) {
        return Err(TensorError::invalid(
            "gemm_i8",
            &[m, k],
            format!(
                "activation ({}, {}) is -128: activation codes must be in [-127, 127] \
                 (symmetric quantization)",
                at / k.max(1),
                at % k.max(1)
            ),
        ));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    // Rows padded to a multiple of 4 bytes, so the kernels read whole k-groups, and in the
    // kernel's activation format (sign bit flipped for VNNI).
    let flip = kernel.flips_sign();
    let padded;
    let a = if kp == k && !flip {
        a
    } else {
        let mut p = vec![0i8; m * kp];
        for (dst, src) in p.chunks_exact_mut(kp).zip(a.chunks_exact(k.max(1))) {
            for (d, &v) in dst.iter_mut().zip(src) {
                *d = if flip { v ^ i8::MIN } else { v };
            }
        }
        padded = p;
        &padded
    };
    let out = SendPtr(c.as_mut_ptr());
    let ap = SendPtr(a.as_ptr() as *mut i8);
    let run = |rows: Range<usize>, panels: Range<usize>| {
        // SAFETY: `a` holds `m` rows of `kp` codes; `rows` lies in `0..m` and `panels` in the
        // packed panels; the tile writes only rows `rows` x the columns of `panels` of the
        // `m x n` output, which no other task writes.
        unsafe {
            run_block(
                kernel,
                ap.get().add(rows.start * kp),
                rows.len(),
                panels,
                b,
                Out::I32(out.get().add(rows.start * n)),
            )
        }
    };
    split_work(m, b, parallelism, |rows, panels| {
        run(rows, panels);
        Ok(())
    })
}

/// How the fused linear layer quantizes its activations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ActivationQuant {
    /// Per row, from the row's own largest magnitude, at every call (dynamic quantization).
    Dynamic,
    /// One fixed symmetric scale for every value (static quantization, from calibration);
    /// values beyond `127 * scale` are clamped.
    Static(f32),
}

/// The int8 linear layer in one pass: `out[i, j] = (sum_k qa[i, k] * w[j, k]) * sa_i * sw_j + bias_j`
/// where `qa` are the symmetric codes of the rows of `x` (`m x k` row-major f32) and `sa_i` their
/// scale. `w` must carry its scales ([`PackedI8Weights::with_dequant`]). Each thread quantizes a
/// block of rows into a buffer that stays in cache, multiplies, and dequantizes in the kernel's
/// epilogue, so the `i32` products are never stored.
///
/// Fails (op `quantized_linear`) on wrong lengths, weights without scales, or inf/NaN input.
pub fn quantized_linear(
    x: &[f32],
    m: usize,
    w: &PackedI8Weights,
    activation: ActivationQuant,
    out: &mut [f32],
    parallelism: Parallelism,
) -> Result<()> {
    quantized_linear_with(I8Kernel::best(), x, m, w, activation, out, parallelism)
}

/// [`quantized_linear`] with an explicit kernel (fails if the CPU cannot run it).
pub fn quantized_linear_with(
    kernel: I8Kernel,
    x: &[f32],
    m: usize,
    w: &PackedI8Weights,
    activation: ActivationQuant,
    out: &mut [f32],
    parallelism: Parallelism,
) -> Result<()> {
    kernel.check()?;
    let (k, n, kp) = (w.k, w.n, w.kp);
    let op = "quantized_linear";
    if !w.has_dequant {
        return Err(TensorError::invalid(
            op,
            &[n, k],
            "the packed weights carry no scales: call with_dequant first",
        ));
    }
    if x.len() != m * k {
        return Err(TensorError::mismatch(
            op,
            &[x.len()],
            &[n, k],
            format!("input must be m x k = {m} x {k}"),
        ));
    }
    if out.len() != m * n {
        return Err(TensorError::DataLength {
            op,
            len: out.len(),
            shape: vec![m, n],
            numel: m * n,
        });
    }
    if let ActivationQuant::Static(s) = activation {
        if !(s.is_finite() && s > 0.0) {
            return Err(TensorError::invalid(
                op,
                &[m, k],
                format!("static activation scale must be finite and positive, got {s}"),
            ));
        }
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    let threaded = parallelism == Parallelism::Threaded
        && rayon::current_num_threads() > 1
        && m * k * n >= I8_THREADING_THRESHOLD;
    let out_ptr = SendPtr(out.as_mut_ptr());
    if threaded && !split_rows(m) {
        // Few rows: quantize them all once, then share the column panels among the threads.
        let mut codes = vec![0i8; m * kp];
        let mut scales = vec![0f32; m];
        quantize_rows(x, k, kp, activation, kernel, &mut codes, &mut scales)?;
        let (cp, sp) = (SendPtr(codes.as_mut_ptr()), SendPtr(scales.as_mut_ptr()));
        return split_work(m, w, parallelism, |rows, panels| {
            // SAFETY: as in `gemm_i8_with`: disjoint output columns per task, rows in range.
            unsafe {
                run_block(
                    kernel,
                    cp.get().add(rows.start * kp),
                    rows.len(),
                    panels,
                    w,
                    Out::F32 {
                        ptr: out_ptr.get().add(rows.start * n),
                        row_scales: sp.get().add(rows.start),
                    },
                )
            };
            Ok(())
        });
    }
    let block = |rows: Range<usize>| -> Result<()> {
        let r = rows.len();
        let mut codes = vec![0i8; r * kp];
        let mut scales = vec![0f32; r];
        quantize_rows(
            &x[rows.start * k..rows.end * k],
            k,
            kp,
            activation,
            kernel,
            &mut codes,
            &mut scales,
        )?;
        // SAFETY: `codes` holds `r` rows of `kp` codes; the block writes rows `rows` of the
        // `m x n` output, which no other block writes.
        unsafe {
            run_block(
                kernel,
                codes.as_ptr(),
                r,
                0..w.panels(),
                w,
                Out::F32 {
                    ptr: out_ptr.get().add(rows.start * n),
                    row_scales: scales.as_ptr(),
                },
            )
        };
        Ok(())
    };
    if threaded {
        let chunk = row_chunk(m);
        (0..m.div_ceil(chunk))
            .into_par_iter()
            .try_for_each(|t| block(t * chunk..((t + 1) * chunk).min(m)))
    } else {
        (0..m.div_ceil(ROW_BLOCK))
            .try_for_each(|t| block(t * ROW_BLOCK..((t + 1) * ROW_BLOCK).min(m)))
    }
}

/// Quantize rows of `k` floats to symmetric codes (`kp`-strided, padding zeroed) and their scales.
fn quantize_rows(
    x: &[f32],
    k: usize,
    kp: usize,
    activation: ActivationQuant,
    kernel: I8Kernel,
    codes: &mut [i8],
    scales: &mut [f32],
) -> Result<()> {
    let rows = scales.len();
    let flip = kernel.flips_sign();
    // The kernel's own level: an explicit kernel runs the quantization pass of its level too.
    let bad = with_simd_at(
        kernel.simd_level(),
        #[inline(always)]
        || {
            for i in 0..rows {
                let row = &x[i * k..(i + 1) * k];
                let (top, finite) = abs_max(row);
                if !finite {
                    return Some(i);
                }
                let scale = match activation {
                    ActivationQuant::Dynamic if top > 0.0 => top / 127.0,
                    ActivationQuant::Dynamic => 1.0,
                    ActivationQuant::Static(s) => s,
                };
                scales[i] = scale;
                let dst = &mut codes[i * kp..(i + 1) * kp];
                if flip {
                    quantize_row::<true>(row, 1.0 / scale, dst);
                } else {
                    quantize_row::<false>(row, 1.0 / scale, dst);
                }
            }
            None
        },
    );
    match bad {
        Some(i) => Err(TensorError::invalid(
            "quantized_linear",
            &[rows, k],
            format!("row {i} of the input holds inf or NaN, which cannot be quantized"),
        )),
        None => Ok(()),
    }
}

/// Lanes of the row reductions: a running maximum in one register cannot be vectorized (the
/// compiler keeps the order of `max`), one per lane can.
const LANES: usize = 16;

/// The largest `|x|` of a row, and whether every value is finite.
#[inline(always)]
fn abs_max(row: &[f32]) -> (f32, bool) {
    let mut top = [0.0f32; LANES];
    let mut ok = [true; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            let a = c[l].abs();
            // NaN compares false with everything, so `a <= MAX` rejects NaN and inf alike.
            ok[l] &= a <= f32::MAX;
            top[l] = if a > top[l] { a } else { top[l] };
        }
    }
    let mut m = 0.0f32;
    let mut all_ok = ok.iter().all(|&o| o);
    for &v in top.iter() {
        m = if v > m { v } else { m };
    }
    for &v in tail {
        let a = v.abs();
        all_ok &= a <= f32::MAX;
        m = if a > m { a } else { m };
    }
    (m, all_ok)
}

/// Symmetric codes of one row: `clamp(round(x * inv), -127, 127)`, rounded to nearest, ties to
/// even (adding `1.5 * 2^23` leaves the rounded integer in the low mantissa bits); the padding
/// past the row is zeroed. With `FLIP`, the codes are stored with their sign bit flipped
/// (`a + 128` as unsigned bytes, the VNNI kernel's operand).
#[inline(always)]
fn quantize_row<const FLIP: bool>(row: &[f32], inv: f32, dst: &mut [i8]) {
    const ROUND: f32 = 12_582_912.0;
    let (codes, pad) = dst.split_at_mut(row.len());
    for (q, &v) in codes.iter_mut().zip(row) {
        let t = (v * inv).clamp(-127.0, 127.0) + ROUND;
        let c = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32) as i8;
        *q = if FLIP { c ^ i8::MIN } else { c };
    }
    pad.fill(0);
}

/// Whether a threaded product splits its rows (true) or its column panels (false). Each row
/// task reads all the weights, each panel task all the activations: rows pay when there are many
/// (the weights are read from cache by every task), panels when there are few.
fn split_rows(m: usize) -> bool {
    m >= 64 * rayon::current_num_threads()
}

/// Rows per task when rows are split: about 4 tasks per thread, a multiple of the micro-tile.
fn row_chunk(m: usize) -> usize {
    let per = m.div_ceil(4 * rayon::current_num_threads());
    per.div_ceil(MR).max(1) * MR
}

/// Run `f(rows, panels)` over the whole `m x n` product: on the calling thread when small or
/// sequential, else split by rows (tall products) or by column panels (short ones).
fn split_work(
    m: usize,
    w: &PackedI8Weights,
    parallelism: Parallelism,
    f: impl Fn(Range<usize>, Range<usize>) -> Result<()> + Sync,
) -> Result<()> {
    let np = w.panels();
    let threads = rayon::current_num_threads();
    let threaded = parallelism == Parallelism::Threaded
        && threads > 1
        && m * w.k * w.n >= I8_THREADING_THRESHOLD;
    if !threaded {
        return f(0..m, 0..np);
    }
    if split_rows(m) {
        let chunk = row_chunk(m);
        (0..m.div_ceil(chunk))
            .into_par_iter()
            .try_for_each(|t| f(t * chunk..((t + 1) * chunk).min(m), 0..np))
    } else {
        let per = np.div_ceil(threads).max(1);
        (0..np.div_ceil(per))
            .into_par_iter()
            .try_for_each(|t| f(0..m, t * per..((t + 1) * per).min(np)))
    }
}

/// A raw pointer that tasks may share; each task writes a disjoint part (see the call sites).
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
impl<T> SendPtr<T> {
    /// The pointer. (A method, so closures capture the whole `Send` wrapper, not its field.)
    fn get(self) -> *mut T {
        self.0
    }
}

// SAFETY: used only to hand disjoint output regions (and read-only inputs) to rayon tasks.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}

/// Where a block's results go: rows of `n` values starting at `ptr` (the block's first row).
#[derive(Clone, Copy)]
enum Out {
    /// The raw `i32` sums.
    I32(*mut i32),
    /// `sum * row_scale * col_scale + bias` as `f32`; `row_scales` has one entry per block row.
    F32 {
        ptr: *mut f32,
        row_scales: *const f32,
    },
}

/// The product of `rows` activation rows (`kp`-strided codes at `a`) with the given panels.
///
/// # Safety
/// `a` points at `rows * w.kp` readable codes in `[-127, 127]` (sign bits flipped for VNNI); `out` points at `rows` writable
/// rows of `w.n` values (and `rows` row scales); `panels` lies within `w`'s panels; the CPU supports
/// `kernel`.
unsafe fn run_block(
    kernel: I8Kernel,
    a: *const i8,
    rows: usize,
    panels: Range<usize>,
    w: &PackedI8Weights,
    out: Out,
) {
    match kernel {
        I8Kernel::Scalar => block_scalar(a, rows, panels, w, out),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller checked the CPU features.
        I8Kernel::Avx2 => unsafe { x86::block_avx2(a, rows, panels, w, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        I8Kernel::Avx512Vnni => unsafe { x86::block_vnni(a, rows, panels, w, out) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => block_scalar(a, rows, panels, w, out),
    }
}

/// The portable kernel: the same tiles as the SIMD ones, in plain loops.
///
/// # Safety
/// As [`run_block`].
unsafe fn block_scalar(
    a: *const i8,
    rows: usize,
    panels: Range<usize>,
    w: &PackedI8Weights,
    out: Out,
) {
    let (kp, n) = (w.kp, w.n);
    let groups = kp / 4;
    for p in panels {
        let panel = &w.data[p * groups * GROUP_BYTES..(p + 1) * groups * GROUP_BYTES];
        let col0 = p * PANEL;
        let valid = PANEL.min(n - col0);
        for r in 0..rows {
            // SAFETY: row `r < rows` of `kp` codes (caller's contract).
            let x = unsafe { std::slice::from_raw_parts(a.add(r * kp), kp) };
            let mut acc = [0i32; PANEL];
            for (g, group) in panel.chunks_exact(GROUP_BYTES).enumerate() {
                let xs = &x[4 * g..4 * g + 4];
                for (c, wc) in group.chunks_exact(4).enumerate() {
                    acc[c] += (0..4).map(|t| xs[t] as i32 * wc[t] as i32).sum::<i32>();
                }
            }
            for (c, &v) in acc.iter().enumerate().take(valid) {
                let j = col0 + c;
                // SAFETY: row `r` and column `j < n` of the output (caller's contract).
                unsafe {
                    match out {
                        Out::I32(ptr) => *ptr.add(r * n + j) = v,
                        Out::F32 { ptr, row_scales } => {
                            *ptr.add(r * n + j) =
                                dequantize(v, *row_scales.add(r), w.scales[j], w.bias[j])
                        }
                    }
                }
            }
        }
    }
}

/// One output's dequantization: `sum * (row_scale * col_scale) + bias`, one fused multiply-add
/// (the SIMD epilogues compute exactly this, so every kernel gives the same bits).
#[inline(always)]
fn dequantize(sum: i32, row_scale: f32, col_scale: f32, bias: f32) -> f32 {
    // HINT: the integer sum counts units of (activation scale x weight scale).
    // BEGIN SOLUTION
    (sum as f32).mul_add(row_scale * col_scale, bias)
    // END SOLUTION
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::{Out, PackedI8Weights, GROUP_BYTES, MR, PANEL};

    /// The VNNI kernel over a block (see the module docs).
    ///
    /// # Safety
    /// As [`super::run_block`], on a CPU with AVX-512F/BW and AVX-512 VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn block_vnni(
        a: *const i8,
        rows: usize,
        panels: Range<usize>,
        w: &PackedI8Weights,
        out: Out,
    ) {
        let groups = w.kp / 4;
        for p in panels {
            // SAFETY (whole loop): panel `p` exists; tiles read rows `i..i + mr < rows`.
            let panel = unsafe { w.data.as_ptr().add(p * groups * GROUP_BYTES) };
            let mut i = 0;
            while i < rows {
                let mr = MR.min(rows - i);
                unsafe {
                    match mr {
                        4 => tile_vnni::<4>(a, i, groups, panel, p, w, out),
                        3 => tile_vnni::<3>(a, i, groups, panel, p, w, out),
                        2 => tile_vnni::<2>(a, i, groups, panel, p, w, out),
                        _ => tile_vnni::<1>(a, i, groups, panel, p, w, out),
                    }
                }
                i += mr;
            }
        }
    }

    /// `R` rows x one 64-column panel, 4 x R accumulators of 16 `i32`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn tile_vnni<const R: usize>(
        a: *const i8,
        row0: usize,
        groups: usize,
        panel: *const i8,
        p: usize,
        w: &PackedI8Weights,
        out: Out,
    ) {
        let kp = w.kp;
        let col0 = p * PANEL;
        // SAFETY (whole function): reads stay inside the panel (`groups` groups of 256 bytes),
        // rows `row0..row0 + R` of `a` (whole 4-byte groups, `kp` is a multiple of 4), and the
        // padded per-column vectors; writes are masked to the valid columns of rows in the block.
        unsafe {
            let comp = w.compensation.as_ptr().add(col0);
            let c = [
                _mm512_loadu_si512(comp as *const _),
                _mm512_loadu_si512(comp.add(16) as *const _),
                _mm512_loadu_si512(comp.add(32) as *const _),
                _mm512_loadu_si512(comp.add(48) as *const _),
            ];
            let mut acc = [c; R];
            let rows: [*const i8; R] = std::array::from_fn(|r| a.add((row0 + r) * kp));
            for g in 0..groups {
                let bp = panel.add(g * GROUP_BYTES);
                let b = [
                    _mm512_loadu_si512(bp as *const _),
                    _mm512_loadu_si512(bp.add(64) as *const _),
                    _mm512_loadu_si512(bp.add(128) as *const _),
                    _mm512_loadu_si512(bp.add(192) as *const _),
                ];
                for r in 0..R {
                    // a + 128 as unsigned bytes: flip each byte's sign bit.
                    // Already `a + 128` (sign bits flipped when the codes were written).
                    let av = _mm512_set1_epi32((rows[r].add(4 * g) as *const i32).read_unaligned());
                    for v in 0..4 {
                        acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], av, b[v]);
                    }
                }
            }
            let valid = PANEL.min(w.n - col0);
            for (r, acc) in acc.iter().enumerate() {
                for (v, &sum) in acc.iter().enumerate() {
                    let lanes = valid.saturating_sub(16 * v).min(16);
                    if lanes == 0 {
                        break;
                    }
                    let mask: __mmask16 = if lanes == 16 {
                        0xffff
                    } else {
                        (1u16 << lanes) - 1
                    };
                    let at = (row0 + r) * w.n + col0 + 16 * v;
                    match out {
                        Out::I32(ptr) => _mm512_mask_storeu_epi32(ptr.add(at), mask, sum),
                        Out::F32 { ptr, row_scales } => {
                            let cs = _mm512_loadu_ps(w.scales.as_ptr().add(col0 + 16 * v));
                            let bias = _mm512_loadu_ps(w.bias.as_ptr().add(col0 + 16 * v));
                            let s = _mm512_mul_ps(_mm512_set1_ps(*row_scales.add(row0 + r)), cs);
                            let y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), s, bias);
                            _mm512_mask_storeu_ps(ptr.add(at), mask, y);
                        }
                    }
                }
            }
        }
    }

    /// The AVX2 kernel over a block (see the module docs).
    ///
    /// # Safety
    /// As [`super::run_block`], on a CPU with AVX2 (FMA is used in the f32 epilogue only when
    /// present; it is on every AVX2 CPU this targets, and checked).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn block_avx2(
        a: *const i8,
        rows: usize,
        panels: Range<usize>,
        w: &PackedI8Weights,
        out: Out,
    ) {
        let groups = w.kp / 4;
        for p in panels {
            // SAFETY (whole loop): as in `block_vnni`; sub-panels of 16 columns past the last
            // valid column are skipped.
            let panel = unsafe { w.data.as_ptr().add(p * groups * GROUP_BYTES) };
            let valid = PANEL.min(w.n - p * PANEL);
            for sub in 0..valid.div_ceil(16) {
                let mut i = 0;
                while i < rows {
                    let mr = MR.min(rows - i);
                    unsafe {
                        match mr {
                            4 => tile_avx2::<4>(a, i, groups, panel, p, sub, w, out),
                            3 => tile_avx2::<3>(a, i, groups, panel, p, sub, w, out),
                            2 => tile_avx2::<2>(a, i, groups, panel, p, sub, w, out),
                            _ => tile_avx2::<1>(a, i, groups, panel, p, sub, w, out),
                        }
                    }
                    i += mr;
                }
            }
        }
    }

    /// `R` rows x 16 columns (sub-panel `sub` of panel `p`), 2 x R accumulators of 8 `i32`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_avx2<const R: usize>(
        a: *const i8,
        row0: usize,
        groups: usize,
        panel: *const i8,
        p: usize,
        sub: usize,
        w: &PackedI8Weights,
        out: Out,
    ) {
        let kp = w.kp;
        let col0 = p * PANEL + 16 * sub;
        // SAFETY (whole function): as in `tile_vnni`, with 32-byte loads at offset `64 * sub` of
        // each 256-byte group, and masked stores.
        unsafe {
            let ones = _mm256_set1_epi16(1);
            let mut acc = [[_mm256_setzero_si256(); 2]; R];
            let rows: [*const i8; R] = std::array::from_fn(|r| a.add((row0 + r) * kp));
            for g in 0..groups {
                let bp = panel.add(g * GROUP_BYTES + 64 * sub);
                let b0 = _mm256_loadu_si256(bp as *const _);
                let b1 = _mm256_loadu_si256(bp.add(32) as *const _);
                let (u0, u1) = (_mm256_abs_epi8(b0), _mm256_abs_epi8(b1));
                for r in 0..R {
                    let four = (rows[r].add(4 * g) as *const i32).read_unaligned();
                    let av = _mm256_set1_epi32(four);
                    // |b| (unsigned, <= 128) x a*sgn(b) (|.| <= 127): pairs stay below 32767.
                    let p0 = _mm256_maddubs_epi16(u0, _mm256_sign_epi8(av, b0));
                    let p1 = _mm256_maddubs_epi16(u1, _mm256_sign_epi8(av, b1));
                    acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(p0, ones));
                    acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(p1, ones));
                }
            }
            let valid = (w.n - col0).min(16);
            let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            for (r, acc) in acc.iter().enumerate() {
                for (v, &sum) in acc.iter().enumerate() {
                    let lanes = valid.saturating_sub(8 * v).min(8);
                    if lanes == 0 {
                        break;
                    }
                    let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes as i32), lane);
                    let at = (row0 + r) * w.n + col0 + 8 * v;
                    match out {
                        Out::I32(ptr) => _mm256_maskstore_epi32(ptr.add(at), mask, sum),
                        Out::F32 { ptr, row_scales } => {
                            let cs = _mm256_loadu_ps(w.scales.as_ptr().add(col0 + 8 * v));
                            let bias = _mm256_loadu_ps(w.bias.as_ptr().add(col0 + 8 * v));
                            let s = _mm256_mul_ps(_mm256_set1_ps(*row_scales.add(row0 + r)), cs);
                            let y = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), s, bias);
                            _mm256_maskstore_ps(ptr.add(at), mask, y);
                        }
                    }
                }
            }
        }
    }
}
