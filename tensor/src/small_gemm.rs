//! The product for small operands: register blocks read straight from where the operands lie,
//! with no packing.
//!
//! The general GEMM ([`crate::gemm`]) first packs its operands into panels, which pays off over
//! long products but costs most of the time when one side is short and everything is already in
//! cache: the products inside an attention block (head size 32 or 64, blocks of 32 query rows;
//! the packing was 15% of the attention time and copying results out of scratch 4.5% more,
//! `benches/README.md`) and batches of
//! small products. This kernel reads `A` one element at a time (any strides: a block of
//! queries, the probabilities, or their transpose) and `B` by rows (a unit column stride), and
//! keeps an `MR x NR` block of `C` in vector registers while it runs down the shared dimension:
//! each step loads one row piece of `B` and does `MR x NR` multiply-adds with it. `B` is read
//! once per block of rows, so it should fit in the L1 cache ([`fits`]).
//!
//! The block size follows the vector unit: 8 x 32 on AVX-512 (sixteen 16-wide registers of
//! sums), 6 x 16 on AVX2 (twelve 8-wide), 4 x 4 at the baseline. Edges take narrower and
//! shorter blocks, down to one element. Every element of `C` is one running sum over the shared
//! dimension in order, with fused multiply-adds (`mul_add`, exactly rounded everywhere: one
//! instruction with AVX2 or AVX-512, a library call at the baseline), so the result is the same
//! bit for bit at every level.

use ndarray::ArrayView2;

use crate::error::{Result, TensorError};
use crate::gemm::MatRef;
use crate::simd::{cpu_simd_level, SimdLevel};

/// `B` with at most this many elements (32 KB) counts as small: [`fits`].
pub const SMALL_B_ELEMS: usize = 8192;

/// Pointer to element `(i, j)` of `m`.
///
/// # Safety
/// `i < m.rows()` and `j < m.cols()` (then the element is readable: [`MatRef`]'s invariant).
#[inline(always)]
unsafe fn at(m: &MatRef<'_>, i: usize, j: usize) -> *const f32 {
    let (row_stride, col_stride) = m.strides();
    // SAFETY: the caller's contract.
    unsafe {
        m.as_ptr()
            .offset(i as isize * row_stride + j as isize * col_stride)
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

    use super::{product_at, MatRef, Vector};

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
    /// `(cols, rows)`), in 8 x 8 blocks moved through registers. Returns how many rows and
    /// columns it did (`rows` and `cols` rounded down to multiples of 8); the rest of the rows
    /// and columns are left to the caller.
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
        a: &MatRef<'_>,
        b: &MatRef<'_>,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        product_at::<__m512, 8, 2>(a, b, c, ldc, accumulate)
    }

    /// The product with 6 x 16 blocks (twelve 8-float registers of sums).
    ///
    /// # Safety
    /// As [`product_at`], on a CPU with AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn product_avx2(
        a: &MatRef<'_>,
        b: &MatRef<'_>,
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
    a: &MatRef<'_>,
    b: &MatRef<'_>,
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
    for p in 0..a.cols() {
        let mut b_row = [V::splat(0.0); NV];
        for v in 0..NV {
            b_row[v] = V::load(at(b, p, j0 + v * V::LANES));
        }
        for r in 0..MR {
            let a_rp = V::splat(*at(a, i0 + r, p));
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
    a: &MatRef<'_>,
    b: &MatRef<'_>,
    i0: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let (n, wide) = (b.cols(), NV * V::LANES);
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
    a: &MatRef<'_>,
    b: &MatRef<'_>,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let m = a.rows();
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

/// `m^T` written row-major into `buf`, returned as a `(cols, rows)` view: an operand laid out so
/// that [`product`] can read it by rows (the keys of an attention pair for its scores).
pub fn transpose_into<'a>(
    level: SimdLevel,
    m: ArrayView2<'_, f32>,
    buf: &'a mut Vec<f32>,
) -> ArrayView2<'a, f32> {
    let (rows, cols) = m.dim();
    // Every element is written below: only a buffer of another size needs resizing (a reused
    // buffer of the right size is not zeroed first).
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

/// Whether `a b` suits this kernel: `B` read by rows (unit column stride) and small enough to
/// stay in the L1 cache while every block of rows of `A` runs over it.
pub fn fits(a: &MatRef<'_>, b: &MatRef<'_>) -> bool {
    let unit_cols = b.cols() <= 1 || b.strides().1 == 1;
    a.cols() == b.rows() && unit_cols && b.rows() * b.cols() <= SMALL_B_ELEMS
}

/// `C = A B` (or `C += A B` with `accumulate`), row `i` of `C` at `out[offset + i * stride ..]`,
/// at the vector `level`.
///
/// `A` may have any strides; `B` needs a unit column stride (a row of it is read as one vector
/// load). Errors (naming `op`) on mismatched sizes or rows outside `out`.
#[allow(clippy::too_many_arguments)]
pub fn product(
    op: &'static str,
    level: SimdLevel,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    out: &mut [f32],
    offset: usize,
    stride: usize,
    accumulate: bool,
) -> Result<()> {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let bad = |reason: String| Err(TensorError::invalid(op, &[m, k, n], reason));
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
        .checked_mul(stride)
        .and_then(|x| x.checked_add(offset + n));
    if stride < n || last_row_end.is_none_or(|end| end > out.len()) {
        return bad(format!(
            "{m} rows of {n} at offset {offset} with stride {stride} do not fit {} elements",
            out.len()
        ));
    }
    // SAFETY: in bounds (checked just above); `c` points into `out`, borrowed mutably; B's unit
    // column stride and the sizes were checked.
    unsafe {
        let c = out.as_mut_ptr().add(offset);
        run(
            level,
            &MatRef::from_view(a),
            &MatRef::from_view(b),
            c,
            stride,
            accumulate,
        );
    }
    Ok(())
}

/// [`product`] on [`MatRef`]s into a raw block, for [`crate::gemm`] (shapes checked there).
///
/// # Safety
/// `a.cols() == b.rows()`, `b` has unit column stride (or one column), and `c` is valid for
/// reads (when `accumulate`) and writes at `c + i * ldc + j`, `i < a.rows()`, `j < b.cols()`,
/// not aliasing `a` or `b`.
pub(crate) unsafe fn product_unchecked(
    level: SimdLevel,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    // SAFETY: the caller's contract.
    unsafe { run(level, &a, &b, c, ldc, accumulate) }
}

/// The level's block sizes over the whole product.
///
/// # Safety
/// As [`product_at`] (the level is capped by the CPU's here).
unsafe fn run(
    level: SimdLevel,
    a: &MatRef<'_>,
    b: &MatRef<'_>,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    // SAFETY (each arm): the caller's contract; the CPU runs the arm's instructions.
    match level.min(cpu_simd_level()) {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => unsafe { x86::product_avx512(a, b, c, ldc, accumulate) },
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => unsafe { x86::product_avx2(a, b, c, ldc, accumulate) },
        _ => unsafe { product_at::<f32, 4, 4>(a, b, c, ldc, accumulate) },
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, ArrayView2, ShapeBuilder};

    use super::*;
    use crate::simd::supported_levels;
    use crate::tensor::Tensor;

    /// `c (+)= a b` the plain way: each element one running sum over `p` in order, with the same
    /// fused multiply-adds the kernel uses, so the two must agree bit for bit.
    fn reference_product(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, c: &mut Array2<f32>) {
        for i in 0..a.nrows() {
            for j in 0..b.ncols() {
                let mut acc = c[(i, j)];
                for p in 0..a.ncols() {
                    acc = a[(i, p)].mul_add(b[(p, j)], acc);
                }
                c[(i, j)] = acc;
            }
        }
    }

    /// The product equals the plain triple loop bit for bit at every level: sizes around every
    /// register-block edge, `A` row-major and transposed, `C` overwritten and accumulated, rows
    /// written at an offset and stride inside a larger buffer (the rest left untouched).
    #[test]
    fn product_matches_the_plain_loop_bit_for_bit() {
        let sizes = [1, 3, 4, 7, 8, 9, 12, 13, 16, 17, 31, 32, 33, 40, 64, 65];
        let mut seed = 0;
        let mut rand = |r: usize, c: usize| {
            seed += 1;
            let t = Tensor::rand_normal(&[r, c], 0.0, 1.0, seed).unwrap();
            Array2::from_shape_vec((r, c), t.to_vec()).unwrap()
        };
        for level in supported_levels() {
            for &m in &sizes {
                for &(k, n) in &[(32, 33), (5, 64), (64, 32), (17, 1), (1, 17), (40, 40)] {
                    let (a, a_t, b) = (rand(m, k), rand(k, m), rand(k, n));
                    let start = rand(m, n);
                    for (transposed, accumulate) in [(false, false), (true, false), (true, true)] {
                        let a_view = if transposed { a_t.t() } else { a.view() };
                        // C's rows at offset 3, stride n + 5, in a buffer with 7 spare elements.
                        let (offset, stride) = (3, n + 5);
                        let len = offset + (m - 1) * stride + n + 7;
                        let mut buf = vec![-9.0f32; len];
                        for i in 0..m {
                            for j in 0..n {
                                buf[offset + i * stride + j] = start[(i, j)];
                            }
                        }
                        product(
                            "t",
                            level,
                            a_view,
                            b.view(),
                            &mut buf,
                            offset,
                            stride,
                            accumulate,
                        )
                        .unwrap();
                        let mut want = if accumulate {
                            start.clone()
                        } else {
                            Array2::zeros((m, n))
                        };
                        reference_product(a_view, b.view(), &mut want);
                        let what =
                            format!("{m}x{k}x{n} at {level}, A^T {transposed}, += {accumulate}");
                        for (at, &x) in buf.iter().enumerate() {
                            let inside = at >= offset
                                && (at - offset) / stride < m
                                && (at - offset) % stride < n;
                            let expect = if inside {
                                want[((at - offset) / stride, (at - offset) % stride)]
                            } else {
                                -9.0
                            };
                            assert_eq!(x.to_bits(), expect.to_bits(), "{what}: element {at}");
                        }
                    }
                }
            }
        }
    }

    /// Misused, the product returns errors naming the op instead of reading or writing out of
    /// bounds.
    #[test]
    fn product_refuses_bad_operands() {
        let a = Array2::<f32>::ones((4, 3));
        let b = Array2::<f32>::ones((3, 5));
        let mut buf = vec![0.0f32; 20];
        let mut run = |b: ArrayView2<'_, f32>, stride: usize| {
            product(
                "my_op",
                SimdLevel::Scalar,
                a.view(),
                b,
                &mut buf,
                0,
                stride,
                false,
            )
            .map_err(|e| (e.op(), e.to_string()))
        };
        assert!(run(b.view(), 5).is_ok());
        let (op, msg) = run(b.view(), 6).unwrap_err();
        assert_eq!(op, "my_op");
        assert!(msg.contains("do not fit 20"), "{msg}");
        let (_, msg) = run(b.view(), 4).unwrap_err();
        assert!(msg.contains("stride 4"), "{msg}");
        let tall = Array2::<f32>::ones((4, 5));
        let (_, msg) = run(tall.view(), 5).unwrap_err();
        assert!(msg.contains("inner sizes differ"), "{msg}");
        let b_cols = Array2::<f32>::ones((3, 5).f());
        let (_, msg) = run(b_cols.view(), 5).unwrap_err();
        assert!(msg.contains("unit column stride"), "{msg}");
    }

    /// The transposed copy of keys or values equals `m^T` at every level, for sizes around the 8 x 8
    /// blocks and for a view without a unit column stride, into a fresh or a reused buffer.
    #[test]
    fn transpose_into_is_the_transpose_at_every_level() {
        for level in supported_levels() {
            for &(r, c) in &[
                (1, 1),
                (1, 9),
                (8, 8),
                (13, 21),
                (64, 32),
                (130, 24),
                (7, 40),
            ] {
                let m = Array2::from_shape_fn((r, c), |(i, j)| (i * 1000 + j) as f32);
                let col_major = Array2::from_shape_fn((r, c).f(), |(i, j)| (i * 1000 + j) as f32);
                for view in [m.view(), col_major.view()] {
                    let mut buf = vec![f32::NAN; 3];
                    let t = transpose_into(level, view, &mut buf);
                    assert_eq!(t, m.t(), "{r}x{c} at {level}");
                    // A reused buffer of the right size (not zeroed first) is fully overwritten.
                    let mut stale = vec![f32::NAN; r * c];
                    let t = transpose_into(level, view, &mut stale);
                    assert_eq!(t, m.t(), "{r}x{c} at {level}, reused buffer");
                }
            }
        }
    }
}
