//! The small products inside one attention block, multiplied straight from where the operands
//! lie: no packing, no call into the general GEMM.
//!
//! Every product of a block has a short side (the head size, 32 or 64 in the models here, or a
//! block of at most [`QUERY_BLOCK`](super::QUERY_BLOCK) rows) and operands already in cache. The
//! general GEMM first packs its operands into panels, which pays off over long products but
//! here cost about a quarter of the attention time (measured: `benches/README.md`). This kernel
//! reads `A` one element at a time (any strides: a block of queries, the probabilities, or
//! their transpose) and `B` by rows (a unit column stride), and keeps an `MR x NR` block of `C`
//! in vector registers while it runs down the shared dimension: each step loads one row piece
//! of `B` and does `MR x NR` multiply-adds with it.
//!
//! The block size follows the vector unit: 8 x 32 on AVX-512 (sixteen 16-wide registers of
//! sums), 4 x 16 on AVX2 (eight 8-wide), 4 x 8 at the baseline. Edges take narrower and
//! shorter blocks, down to one element. Every element of `C` is one running sum over the shared
//! dimension in order, with fused multiply-adds (`mul_add`, exactly rounded everywhere: one
//! instruction with AVX2 or AVX-512, a library call at the baseline), so the result is the same
//! bit for bit at every level.

use std::marker::PhantomData;

use ndarray::ArrayView2;

use crate::error::{Result, TensorError};
use crate::simd::{cpu_simd_level, SimdLevel};

use super::kernel::Rows;
use super::OP;

/// A read-only matrix as a base pointer and strides. Only built from an ndarray view, whose
/// invariants make every element `(i, j)` with `i < rows`, `j < cols` readable.
#[derive(Clone, Copy)]
struct Raw<'a> {
    ptr: *const f32,
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
    _borrow: PhantomData<&'a f32>,
}

impl<'a> Raw<'a> {
    fn of(view: ArrayView2<'a, f32>) -> Raw<'a> {
        let (rows, cols) = view.dim();
        let strides = view.strides();
        Raw {
            ptr: view.as_ptr(),
            rows,
            cols,
            row_stride: strides[0],
            col_stride: strides[1],
            _borrow: PhantomData,
        }
    }

    /// Pointer to element `(i, j)`.
    ///
    /// # Safety
    /// `i < rows` and `j < cols`.
    #[inline(always)]
    unsafe fn at(&self, i: usize, j: usize) -> *const f32 {
        self.ptr
            .offset(i as isize * self.row_stride + j as isize * self.col_stride)
    }
}

/// What the blocks below need of a vector register: `LANES` floats.
trait Vector: Copy {
    const LANES: usize;
    /// # Safety
    /// The CPU runs this type's instructions (true of every caller below).
    unsafe fn splat(x: f32) -> Self;
    /// # Safety
    /// `p` is valid for reading `LANES` floats.
    unsafe fn load(p: *const f32) -> Self;
    /// # Safety
    /// `p` is valid for writing `LANES` floats.
    unsafe fn store(self, p: *mut f32);
    /// `self * b + c`, one rounding.
    /// # Safety
    /// As [`Vector::splat`].
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
}

impl Vector for f32 {
    const LANES: usize = 1;
    #[inline(always)]
    unsafe fn splat(x: f32) -> f32 {
        x
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> f32 {
        *p
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        *p = self
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: f32, c: f32) -> f32 {
        f32::mul_add(self, b, c)
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{product_at, Raw, Vector};

    impl Vector for __m256 {
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn splat(x: f32) -> __m256 {
            _mm256_set1_ps(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            _mm256_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm256_storeu_ps(p, self)
        }
        #[inline(always)]
        unsafe fn mul_add(self, b: __m256, c: __m256) -> __m256 {
            _mm256_fmadd_ps(self, b, c)
        }
    }

    impl Vector for __m512 {
        const LANES: usize = 16;
        #[inline(always)]
        unsafe fn splat(x: f32) -> __m512 {
            _mm512_set1_ps(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            _mm512_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm512_storeu_ps(p, self)
        }
        #[inline(always)]
        unsafe fn mul_add(self, b: __m512, c: __m512) -> __m512 {
            _mm512_fmadd_ps(self, b, c)
        }
    }

    /// `m^T` of an `(rows, cols)` matrix with unit column stride into `dst` (row-major
    /// `(cols, rows)`), in 8 x 8 blocks moved through registers; returns the first row not
    /// done (the last `rows % 8` rows, and the last `cols % 8` columns, are left to the caller).
    ///
    /// # Safety
    /// `src` valid for reading `(rows, cols)` at row stride `ld` and unit column stride, `dst`
    /// has `rows * cols` elements, and the CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn transpose_8x8_blocks(
        src: *const f32,
        ld: isize,
        rows: usize,
        cols: usize,
        dst: &mut [f32],
    ) -> (usize, usize) {
        let (full_rows, full_cols) = (rows / 8 * 8, cols / 8 * 8);
        for i0 in (0..full_rows).step_by(8) {
            for j0 in (0..full_cols).step_by(8) {
                let at = |r: usize| src.offset((i0 + r) as isize * ld + j0 as isize);
                let r: [__m256; 8] = std::array::from_fn(|k| _mm256_loadu_ps(at(k)));
                // Interleave pairs of rows, then pairs of pairs, then swap 128-bit halves.
                let t0 = _mm256_unpacklo_ps(r[0], r[1]);
                let t1 = _mm256_unpackhi_ps(r[0], r[1]);
                let t2 = _mm256_unpacklo_ps(r[2], r[3]);
                let t3 = _mm256_unpackhi_ps(r[2], r[3]);
                let t4 = _mm256_unpacklo_ps(r[4], r[5]);
                let t5 = _mm256_unpackhi_ps(r[4], r[5]);
                let t6 = _mm256_unpacklo_ps(r[6], r[7]);
                let t7 = _mm256_unpackhi_ps(r[6], r[7]);
                let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                let out = [
                    _mm256_permute2f128_ps::<0x20>(u0, u4),
                    _mm256_permute2f128_ps::<0x20>(u1, u5),
                    _mm256_permute2f128_ps::<0x20>(u2, u6),
                    _mm256_permute2f128_ps::<0x20>(u3, u7),
                    _mm256_permute2f128_ps::<0x31>(u0, u4),
                    _mm256_permute2f128_ps::<0x31>(u1, u5),
                    _mm256_permute2f128_ps::<0x31>(u2, u6),
                    _mm256_permute2f128_ps::<0x31>(u3, u7),
                ];
                for (k, v) in out.into_iter().enumerate() {
                    let row = &mut dst[(j0 + k) * rows + i0..][..8];
                    _mm256_storeu_ps(row.as_mut_ptr(), v);
                }
            }
        }
        (full_rows, full_cols)
    }

    /// The product with 8 x 32 blocks (sixteen 16-float registers of sums).
    ///
    /// # Safety
    /// As [`product_at`], on a CPU with AVX-512F and FMA.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn product_avx512(
        a: &Raw<'_>,
        b: &Raw<'_>,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        product_at::<__m512, 8, 2>(a, b, c, ldc, accumulate)
    }

    /// The product with 4 x 16 blocks (eight 8-float registers of sums).
    ///
    /// # Safety
    /// As [`product_at`], on a CPU with AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn product_avx2(
        a: &Raw<'_>,
        b: &Raw<'_>,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        product_at::<__m256, 6, 2>(a, b, c, ldc, accumulate)
    }
}

/// One block of `C`, `MR` rows by `NV` vectors: rows `i0..`, columns `j0..`, summed over all
/// of `A`'s columns.
///
/// # Safety
/// `i0 + MR <= a.rows`, `j0 + NV * V::LANES <= b.cols`, `a.cols == b.rows`, `b.col_stride == 1`
/// (or `NV * V::LANES == 1`), `c` valid for reads and writes at `c + r * ldc + j` for `r < MR`,
/// `j < NV * V::LANES`, and the CPU runs `V`'s instructions.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // fixed-size register blocks read best as index loops
unsafe fn block<V: Vector, const MR: usize, const NV: usize>(
    a: &Raw<'_>,
    b: &Raw<'_>,
    i0: usize,
    j0: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let mut acc = [[V::splat(0.0); NV]; MR];
    if accumulate {
        for r in 0..MR {
            for v in 0..NV {
                acc[r][v] = V::load(c.add(r * ldc + v * V::LANES));
            }
        }
    }
    for p in 0..a.cols {
        let mut b_row = [V::splat(0.0); NV];
        for v in 0..NV {
            b_row[v] = V::load(b.at(p, j0 + v * V::LANES));
        }
        for r in 0..MR {
            let a_rp = V::splat(*a.at(i0 + r, p));
            for v in 0..NV {
                acc[r][v] = a_rp.mul_add(b_row[v], acc[r][v]);
            }
        }
    }
    for r in 0..MR {
        for v in 0..NV {
            acc[r][v].store(c.add(r * ldc + v * V::LANES));
        }
    }
}

/// Rows `i0..i0 + MR` of `C`, all columns: blocks of `NV` vectors, then of one, then single
/// columns.
///
/// # Safety
/// As [`block`], for every column of `b`.
#[inline(always)]
unsafe fn row_panel<V: Vector, const MR: usize, const NV: usize>(
    a: &Raw<'_>,
    b: &Raw<'_>,
    i0: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let (n, wide) = (b.cols, NV * V::LANES);
    let mut j = 0;
    while j + wide <= n {
        block::<V, MR, NV>(a, b, i0, j, c.add(j), ldc, accumulate);
        j += wide;
    }
    while NV > 1 && j + V::LANES <= n {
        block::<V, MR, 1>(a, b, i0, j, c.add(j), ldc, accumulate);
        j += V::LANES;
    }
    while j < n {
        block::<f32, MR, 1>(a, b, i0, j, c.add(j), ldc, accumulate);
        j += 1;
    }
}

/// All of `C`: panels of `MR` rows, then of 4, then the last `m % 4` rows.
///
/// # Safety
/// `a.cols == b.rows`, `b.col_stride == 1` (or `b.cols <= 1`), `c` valid for reads and writes
/// at `c + i * ldc + j` for `i < a.rows`, `j < b.cols`, and the CPU runs `V`'s instructions.
#[inline(always)]
unsafe fn product_at<V: Vector, const MR: usize, const NV: usize>(
    a: &Raw<'_>,
    b: &Raw<'_>,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let m = a.rows;
    let mut i = 0;
    while i + MR <= m {
        row_panel::<V, MR, NV>(a, b, i, c.add(i * ldc), ldc, accumulate);
        i += MR;
    }
    while i + 4 <= m {
        row_panel::<V, 4, NV>(a, b, i, c.add(i * ldc), ldc, accumulate);
        i += 4;
    }
    let c = c.add(i * ldc);
    match m - i {
        3 => row_panel::<V, 3, NV>(a, b, i, c, ldc, accumulate),
        2 => row_panel::<V, 2, NV>(a, b, i, c, ldc, accumulate),
        1 => row_panel::<V, 1, NV>(a, b, i, c, ldc, accumulate),
        _ => {}
    }
}

/// `m^T` written row-major into `buf`, returned as a `(cols, rows)` view: the keys (or values)
/// of one pair laid out so the score products can read them by rows.
pub(super) fn transpose_into<'a>(
    level: SimdLevel,
    m: ArrayView2<'_, f32>,
    buf: &'a mut Vec<f32>,
) -> ArrayView2<'a, f32> {
    let (rows, cols) = m.dim();
    buf.clear();
    buf.resize(rows * cols, 0.0);
    let mut done = (0, 0);
    #[cfg(target_arch = "x86_64")]
    if level.min(cpu_simd_level()) >= SimdLevel::Avx2 && m.strides()[1] == 1 {
        // SAFETY: the view has unit column stride and `rows * cols` readable elements at its
        // row stride; `buf` holds `rows * cols`; the CPU has AVX2 (checked above).
        done = unsafe { x86::transpose_8x8_blocks(m.as_ptr(), m.strides()[0], rows, cols, buf) };
    }
    let _ = level;
    let (done_rows, done_cols) = done;
    for (i, row) in m.rows().into_iter().enumerate() {
        let from = if i < done_rows { done_cols } else { 0 };
        for (j, &x) in row.iter().enumerate().skip(from) {
            buf[j * rows + i] = x;
        }
    }
    let buf: &'a Vec<f32> = buf;
    ArrayView2::from_shape((cols, rows), &buf[..]).expect("cols * rows elements")
}

/// `C = A B` (or `C += A B` with `accumulate`) into the rows `out` describes (row `i` of `C` at
/// `out.data[out.offset + i * out.stride ..]`), at the vector `level`.
///
/// `A` may have any strides; `B` needs a unit column stride (a row of it is read as one vector
/// load). Errors (naming the attention op) on mismatched sizes or rows outside `out`.
pub(super) fn product(
    level: SimdLevel,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    out: &mut Rows<'_>,
    accumulate: bool,
) -> Result<()> {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let bad = |reason: String| Err(TensorError::invalid(OP, &[m, k, n], reason));
    if b.nrows() != k {
        return bad(format!(
            "inner sizes differ: A is {m}x{k}, B is {}x{n}",
            b.nrows()
        ));
    }
    if n > 1 && b.strides()[1] != 1 {
        return bad(format!(
            "B needs a unit column stride, got {:?}",
            b.strides()
        ));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    let last_row_end = (m - 1)
        .checked_mul(out.stride)
        .and_then(|x| x.checked_add(out.offset + n));
    if out.stride < n || last_row_end.is_none_or(|end| end > out.data.len()) {
        return bad(format!(
            "{m} rows of {n} at offset {} with stride {} do not fit {} elements",
            out.offset,
            out.stride,
            out.data.len()
        ));
    }
    let (a, b) = (Raw::of(a), Raw::of(b));
    // SAFETY: in bounds (checked just above); `c` points into `out.data`, borrowed mutably.
    let c = unsafe { out.data.as_mut_ptr().add(out.offset) };
    let ldc = out.stride;
    // SAFETY (each arm): the sizes, B's unit column stride and C's extent were checked above, so
    // every element read or written is inside its view or `out`; the level is capped by the CPU's.
    match level.min(cpu_simd_level()) {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => unsafe { x86::product_avx512(&a, &b, c, ldc, accumulate) },
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => unsafe { x86::product_avx2(&a, &b, c, ldc, accumulate) },
        _ => unsafe { product_at::<f32, 4, 4>(&a, &b, c, ldc, accumulate) },
    }
    Ok(())
}
