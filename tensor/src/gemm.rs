//! The one GEMM entry point every matrix product of the project goes through.
//!
//! `C = A·B` (or `C += A·B`) for `f32` matrices given as [`MatRef`]s: a base pointer plus a row and
//! a column stride, so a transposed operand (swapped strides) or a narrowed view is multiplied in
//! place, without a copy. The output is a contiguous row-major `m x n` slice.
//!
//! The kernel is the `gemm` crate (pure Rust, AVX-512 / AVX2 / SSE chosen at run time). It was
//! chosen over ndarray's `matrixmultiply` by measurement on the project's shapes: see
//! `benches/README.md` for the numbers. Keeping every product behind [`gemm`] and [`gemm_batch`]
//! means a better kernel can replace it in one place. One already does for small operands: a
//! single-threaded product whose `B` is read by rows and fits in the L1 cache goes to
//! [`crate::small_gemm`], which skips the packing (batches of small products).
//!
//! Threading uses rayon's global pool. Small products stay on the calling thread (thread
//! start-up costs more than the work), and a batch of products is either one parallel loop over
//! the batch with single-threaded products, or a sequential loop of threaded products: never a
//! threaded product nested inside a parallel loop.

use std::marker::PhantomData;
use std::mem::MaybeUninit;

use ndarray::ArrayView2;
use rayon::prelude::*;

use crate::error::{Result, TensorError};
use crate::simd::simd_level;
use crate::small_gemm;

/// A single product with fewer multiply-adds (`m * k * n`) than this runs on the calling thread.
///
/// Splitting a product into one row (or column) block per thread costs one fork-join. Measured
/// on a 2-core AMD EPYC (Zen 4, AVX-512), row-major squares, one thread against two (best of 7
/// runs of 2000 products): 64^3 0.5x, 96^3 0.85x, 128^3 (2.1M) 1.15x, 160^3 1.4x, 192^3 1.7x,
/// and the language-model head 768x128x65 (6.4M) 1.7x; `benches/README.md`. (Before the split,
/// the kernel's own threading only broke even around 7M, so this was 8M.)
pub const THREADING_THRESHOLD: usize = 1 << 21;

/// A batch of products with fewer multiply-adds in total than this runs on the calling thread;
/// above it, products too small to thread one by one share the threads through one parallel
/// loop over the batch (one fork-join for the whole batch, about 10 us of overhead here).
pub const BATCH_THRESHOLD: usize = 1 << 22;

/// How a product may use threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parallelism {
    /// Run on the calling thread. Use this from inside a rayon parallel loop.
    Sequential,
    /// Use rayon's global pool when the product is large enough to pay for it.
    Threaded,
}

/// A read-only `f32` matrix: a base pointer, its size, and a row and a column stride in elements.
///
/// Element `(i, j)` lives at `base + i * row_stride + j * col_stride`. Strides may be any value,
/// including 0 (a broadcast row or column) or negative (a reversed view). A `MatRef` can only be
/// built from a slice whose bounds have been checked against the strides, or from an ndarray view
/// (whose own invariants guarantee every element is readable), so using one is always safe.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    ptr: *const f32,
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
    _borrow: PhantomData<&'a [f32]>,
}

// SAFETY: a `MatRef<'a>` is a shared borrow of `f32`s for `'a` (like `&'a [f32]`, which is Send and
// Sync); it never writes through its pointer.
unsafe impl Send for MatRef<'_> {}
// SAFETY: see `Send` above.
unsafe impl Sync for MatRef<'_> {}

impl<'a> MatRef<'a> {
    /// A `rows x cols` matrix inside `data`, whose element `(0, 0)` is `data[offset]` and element
    /// `(i, j)` is `data[offset + i * row_stride + j * col_stride]`.
    ///
    /// Fails (naming op `gemm`) when some element would fall outside `data`.
    pub fn new(
        data: &'a [f32],
        offset: usize,
        rows: usize,
        cols: usize,
        row_stride: isize,
        col_stride: isize,
    ) -> Result<MatRef<'a>> {
        let bad = |reason: String| TensorError::invalid("gemm", &[rows, cols], reason);
        if rows == 0 || cols == 0 {
            if offset > data.len() {
                return Err(bad(format!(
                    "offset {offset} is past the end of a slice of {} elements",
                    data.len()
                )));
            }
            return Ok(MatRef {
                // An empty matrix is never read; `offset <= len` keeps the pointer in bounds.
                ptr: data[offset..].as_ptr(),
                rows,
                cols,
                row_stride,
                col_stride,
                _borrow: PhantomData,
            });
        }
        // The extreme element positions, in i128 so no product or sum can overflow.
        let span = |n: usize, s: isize| (n as i128 - 1) * s as i128;
        let (r, c) = (span(rows, row_stride), span(cols, col_stride));
        let lowest = offset as i128 + r.min(0) + c.min(0);
        let highest = offset as i128 + r.max(0) + c.max(0);
        if lowest < 0 || highest >= data.len() as i128 {
            return Err(bad(format!(
                "offset {offset} with strides ({row_stride}, {col_stride}) reaches elements \
                 {lowest}..={highest} of a slice of {} elements",
                data.len()
            )));
        }
        Ok(MatRef {
            // `offset <= highest < len`, so this is an in-bounds element.
            ptr: &data[offset] as *const f32,
            rows,
            cols,
            row_stride,
            col_stride,
            _borrow: PhantomData,
        })
    }

    /// A contiguous row-major `rows x cols` matrix (`data.len()` must be `rows * cols`).
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Result<MatRef<'a>> {
        if data.len() != rows * cols {
            return Err(TensorError::DataLength {
                op: "gemm",
                len: data.len(),
                shape: vec![rows, cols],
                numel: rows * cols,
            });
        }
        MatRef::new(data, 0, rows, cols, cols as isize, 1)
    }

    /// The matrix an ndarray view describes, strides included (no copy).
    pub fn from_view(view: ArrayView2<'a, f32>) -> MatRef<'a> {
        let (rows, cols) = view.dim();
        let strides = view.strides();
        MatRef {
            ptr: view.as_ptr(),
            rows,
            cols,
            row_stride: strides[0],
            col_stride: strides[1],
            _borrow: PhantomData,
        }
    }

    /// The transpose, as a view (strides swapped, no copy).
    pub fn t(self) -> MatRef<'a> {
        MatRef {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Pointer to element `(0, 0)`.
    pub(crate) fn as_ptr(&self) -> *const f32 {
        self.ptr
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `(row_stride, col_stride)` in elements.
    pub fn strides(&self) -> (isize, isize) {
        (self.row_stride, self.col_stride)
    }

    /// Whether consecutive elements of a row or of a column are adjacent in memory, the layouts
    /// the kernel reads at full speed.
    pub fn has_unit_stride(&self) -> bool {
        self.rows <= 1 || self.cols <= 1 || self.row_stride == 1 || self.col_stride == 1
    }

    /// Element `(i, j)`, or `None` outside the matrix.
    pub fn get(&self, i: usize, j: usize) -> Option<f32> {
        if i >= self.rows || j >= self.cols {
            return None;
        }
        let at = i as isize * self.row_stride + j as isize * self.col_stride;
        // SAFETY: construction checked (or ndarray guarantees) that every `(i, j)` inside the
        // matrix is a readable element borrowed for `'a`.
        Some(unsafe { *self.ptr.offset(at) })
    }

    fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }
}

/// `c = a·b`, or `c += a·b` when `accumulate` is true.
///
/// `a` is `m x k`, `b` is `k x n`, and `c` is a contiguous row-major `m x n` slice. Fails (op
/// `gemm`) when the inner dimensions differ or `c` has the wrong length.
pub fn gemm(
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    accumulate: bool,
    parallelism: Parallelism,
) -> Result<()> {
    gemm_batch(&[a], &[b], c, accumulate, parallelism)
}

/// `c[i] = a[i]·b[i]` (or `+=` when `accumulate`) for a batch of products of equal shapes.
///
/// `c` holds the outputs one after another, each contiguous row-major `m x n`. Many small
/// products run as one parallel loop over the batch, each single-threaded; a few large ones run
/// one after another, each threaded.
pub fn gemm_batch(
    a: &[MatRef<'_>],
    b: &[MatRef<'_>],
    c: &mut [f32],
    accumulate: bool,
    parallelism: Parallelism,
) -> Result<()> {
    let len = check_batch(a, b)?;
    if c.len() != len {
        let (m, n) = (a[0].rows, b[0].cols);
        return Err(TensorError::DataLength {
            op: "gemm",
            len: c.len(),
            shape: vec![a.len(), m, n],
            numel: len,
        });
    }
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, and `run_batch` only ever stores
    // initialised `f32` values through this view, so `c` stays initialised, as `accumulate` needs.
    let out = unsafe { &mut *(c as *mut [f32] as *mut [MaybeUninit<f32>]) };
    // SAFETY: `out` is initialised (it is `c`).
    crate::profile::timed(crate::profile::OpFamily::Gemm, || unsafe {
        run_batch(a, b, out, accumulate, parallelism)
    });
    Ok(())
}

/// The products of a batch (`a[i]·b[i]`, one after another, each row-major `m x n`) in a new
/// vector. Cheaper than [`gemm_batch`] on a zeroed buffer: the output is written once, not
/// zeroed first.
pub fn gemm_batch_new(
    a: &[MatRef<'_>],
    b: &[MatRef<'_>],
    parallelism: Parallelism,
) -> Result<Vec<f32>> {
    let len = check_batch(a, b)?;
    let mut out = Vec::with_capacity(len);
    // SAFETY: with `accumulate = false`, `run_batch` reads nothing from the output and stores an
    // initialised value into each of its `len` elements (the kernel writes every element of every
    // non-empty `m x n` product, and `k = 0` products are filled with zeros), so all `len`
    // elements are initialised before `set_len`.
    crate::profile::timed(crate::profile::OpFamily::Gemm, || unsafe {
        run_batch(
            a,
            b,
            &mut out.spare_capacity_mut()[..len],
            false,
            parallelism,
        );
        out.set_len(len);
    });
    Ok(out)
}

/// Equal batch lengths, equal shapes throughout, inner dimensions that agree; returns the number
/// of output elements.
fn check_batch(a: &[MatRef<'_>], b: &[MatRef<'_>]) -> Result<usize> {
    if a.len() != b.len() {
        return Err(TensorError::invalid(
            "gemm",
            &[a.len(), b.len()],
            "the batch needs as many left as right operands",
        ));
    }
    let (Some(a0), Some(b0)) = (a.first(), b.first()) else {
        return Ok(0);
    };
    for (x, y) in a.iter().zip(b) {
        if x.shape() != a0.shape() || y.shape() != b0.shape() {
            return Err(TensorError::mismatch(
                "gemm",
                &a0.shape(),
                &x.shape(),
                format!(
                    "all products of a batch need the same shapes, found {:?}x{:?} and {:?}x{:?}",
                    a0.shape(),
                    b0.shape(),
                    x.shape(),
                    y.shape()
                ),
            ));
        }
    }
    if a0.cols != b0.rows {
        return Err(TensorError::mismatch(
            "gemm",
            &a0.shape(),
            &b0.shape(),
            format!(
                "inner dimensions differ: {} columns against {} rows",
                a0.cols, b0.rows
            ),
        ));
    }
    Ok(a.len() * a0.rows * b0.cols)
}

/// The threading policy over a checked batch.
///
/// # Safety
/// `c` has exactly the batch's output length; when `accumulate` is true it must be initialised.
unsafe fn run_batch(
    a: &[MatRef<'_>],
    b: &[MatRef<'_>],
    c: &mut [MaybeUninit<f32>],
    accumulate: bool,
    parallelism: Parallelism,
) {
    let (Some(a0), Some(b0)) = (a.first(), b.first()) else {
        return;
    };
    let chunk = a0.rows * b0.cols;
    if chunk == 0 {
        return;
    }
    let per_product = a0.rows * a0.cols * b0.cols;
    let threads = rayon::current_num_threads();
    let threaded = parallelism == Parallelism::Threaded && threads > 1;
    // SAFETY (all three loops): each chunk is one product's exclusive output, of the length
    // `kernel` expects; initialised whenever `c` is.
    if threaded && per_product >= THREADING_THRESHOLD && a.len() < 4 * threads {
        // A few large products: one after another, each split over the threads.
        for ((x, y), out) in a.iter().zip(b).zip(c.chunks_exact_mut(chunk)) {
            unsafe { kernel(*x, *y, out, accumulate, threads) };
        }
    } else if !threaded || a.len() == 1 || per_product * a.len() < BATCH_THRESHOLD {
        for ((x, y), out) in a.iter().zip(b).zip(c.chunks_exact_mut(chunk)) {
            unsafe { kernel(*x, *y, out, accumulate, 1) };
        }
    } else {
        a.par_iter()
            .zip(b.par_iter())
            .zip(c.par_chunks_exact_mut(chunk))
            .for_each(|((x, y), out)| unsafe { kernel(*x, *y, out, accumulate, 1) });
    }
}

/// One product on `threads` threads; shapes already checked.
///
/// With more than one thread, the output is cut into `threads` blocks of whole rows (or of whole
/// columns, when it is wider than tall), and each block is one single-threaded kernel call on
/// its own thread. The kernel's own threading (`gemm::Parallelism::Rayon`) was measured slower:
/// on a 2-core Intel Xeon it reached 1.3x one thread on 1024^3 where the split reaches 1.9x
/// (`benches/README.md`).
///
/// # Safety
/// `c.len() == a.rows() * b.cols()`, `a.cols() == b.rows()`; `c` must be initialised when
/// `accumulate` is true. Every element of `c` is written.
unsafe fn kernel(
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [MaybeUninit<f32>],
    accumulate: bool,
    threads: usize,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    debug_assert!(b.rows == k && c.len() == m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(MaybeUninit::new(0.0));
        }
        return;
    }
    let dst = SendPtr(c.as_mut_ptr().cast::<f32>());
    let by_rows = m >= n;
    let (len, align) = if by_rows {
        (m, ROW_ALIGN)
    } else {
        (n, EDGE_TILE)
    };
    let parts = split_points(len, threads, align);
    if parts.len() <= 2 {
        // SAFETY: the caller's contract, for the whole `m x n` output.
        unsafe { block(a, b, dst.0, n, accumulate) };
        return;
    }
    parts.par_windows(2).for_each(|w| {
        let (lo, hi) = (w[0], w[1]);
        // SAFETY: the blocks `lo..hi` are disjoint rows (or columns) of the exclusive output, so
        // no two threads write the same element; each sub-view stays inside its operand.
        unsafe {
            if by_rows {
                block(a.rows_from(lo, hi), b, dst.at(lo * n), n, accumulate)
            } else {
                block(a, b.cols_from(lo, hi), dst.at(lo), n, accumulate)
            }
        }
    });
}

/// A raw output pointer handed to the threads of one product (each writes its own block).
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: the threads of `kernel` write disjoint blocks through it while `kernel` holds the
// exclusive borrow of the output.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The element `offset` places further (a method, so closures capture the whole wrapper).
    ///
    /// # Safety
    /// `offset` stays inside the output this pointer was taken from.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: the caller's contract.
        unsafe { self.0.add(offset) }
    }
}

/// Row blocks start at multiples of this (the kernel's row tiles stay whole).
const ROW_ALIGN: usize = 16;

/// `0 = p_0 < p_1 < ... = len`: at most `threads` near-equal parts, each boundary a multiple
/// of `align` (fewer parts when `len` is too short to give each at least `align`).
fn split_points(len: usize, threads: usize, align: usize) -> Vec<usize> {
    let units = len.div_ceil(align);
    let parts = threads.clamp(1, units.max(1));
    let mut points: Vec<usize> = (0..parts)
        .map(|p| (units * p / parts * align).min(len))
        .collect();
    points.push(len);
    points.dedup();
    points
}

impl<'a> MatRef<'a> {
    /// Rows `lo..hi` (no copy); `lo <= hi <= rows`.
    fn rows_from(self, lo: usize, hi: usize) -> MatRef<'a> {
        debug_assert!(lo <= hi && hi <= self.rows);
        MatRef {
            // SAFETY: row `lo` is inside the matrix (or one past it, for an empty view that is
            // never read), so the offset stays within the borrowed allocation.
            ptr: unsafe { self.ptr.offset(lo as isize * self.row_stride) },
            rows: hi - lo,
            ..self
        }
    }

    /// Columns `lo..hi` (no copy); `lo <= hi <= cols`.
    fn cols_from(self, lo: usize, hi: usize) -> MatRef<'a> {
        self.t().rows_from(lo, hi).t()
    }
}

/// One `m x n` product block, single-threaded, into `dst` (row stride `ldc`, column stride 1).
///
/// # Safety
/// `dst` points at an exclusive `a.rows() x b.cols()` block of row stride `ldc`, initialised
/// when `accumulate` is true; `a.cols() == b.rows() > 0`.
unsafe fn block(a: MatRef<'_>, b: MatRef<'_>, dst: *mut f32, ldc: usize, accumulate: bool) {
    if small_gemm::fits(&a, &b) {
        // SAFETY: the caller's contract; `fits` checked B's unit column stride. The small kernel
        // reads the destination only when `accumulate` is true and writes every element.
        unsafe { small_gemm::product_unchecked(simd_level(), a, b, dst, ldc, accumulate) };
        return;
    }
    let (m, k, n) = (a.rows, a.cols, b.cols);
    // The kernel tiles the output's columns by 64 (AVX-512) or 32 (AVX2). A few columns past a
    // multiple of 64 (the 65-symbol language-model head) would run a whole extra tile almost
    // empty: they are computed as matrix-vector products instead, one column at a time, each
    // from a contiguous copy of its column of `b` (k values) so the kernel's gemv path applies.
    let tail = if n > EDGE_TILE { n % EDGE_TILE } else { 0 };
    let split = if (1..=EDGE_MAX).contains(&tail) {
        n - tail
    } else {
        n
    };
    // SAFETY: `a` and `b` point at `m x k` and `k x split` readable elements (MatRef's invariant)
    // that stay borrowed during the call; `dst` is an exclusive `m x n` block (column stride 1,
    // row stride ldc) whose first `split` columns this call writes, and it cannot alias `a` or
    // `b`. With `read_dst = accumulate` false the kernel only stores into it (it sets its
    // `alpha` to zero and never loads the destination before writing it); when true, the block
    // is initialised by the caller's contract and the kernel computes `c = 1·c + 1·a·b`.
    unsafe {
        gemm::gemm(
            m,
            split,
            k,
            dst,
            1,
            ldc as isize,
            accumulate,
            a.ptr,
            a.col_stride,
            a.row_stride,
            b.ptr,
            b.col_stride,
            b.row_stride,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    let mut column = Vec::new();
    for j in split..n {
        column.clear();
        column.extend((0..k).map(|p| b.get(p, j).unwrap_or(0.0)));
        // SAFETY: as above, for the `m x 1` column `j < n` of the block (row stride ldc) and the
        // `k x 1` contiguous `column`, which lives until the call returns.
        unsafe {
            gemm::gemm(
                m,
                1,
                k,
                dst.add(j),
                1,
                ldc as isize,
                accumulate,
                a.ptr,
                a.col_stride,
                a.row_stride,
                column.as_ptr(),
                1,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
}

/// The kernel's column tile (64 with AVX-512) and the largest remainder split off it.
const EDGE_TILE: usize = 64;
const EDGE_MAX: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &MatRef<'_>, b: &MatRef<'_>) -> Vec<f32> {
        let mut out = vec![0.0; a.rows() * b.cols()];
        for i in 0..a.rows() {
            for j in 0..b.cols() {
                out[i * b.cols() + j] = (0..a.cols())
                    .map(|p| a.get(i, p).unwrap() * b.get(p, j).unwrap())
                    .sum();
            }
        }
        out
    }

    /// A 2x3 by 3x2 GEMM equals the hand-computed product, and accumulate mode adds the product to
    /// what the output held.
    #[test]
    fn small_product_by_hand() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [7.0, 8.0, 9.0, 10.0, 11.0, 12.0];
        let mut c = [0.0; 4];
        gemm(
            MatRef::row_major(&a, 2, 3).unwrap(),
            MatRef::row_major(&b, 3, 2).unwrap(),
            &mut c,
            false,
            Parallelism::Threaded,
        )
        .unwrap();
        assert_eq!(c, [58.0, 64.0, 139.0, 154.0]);
        // Accumulate adds the product again.
        gemm(
            MatRef::row_major(&a, 2, 3).unwrap(),
            MatRef::row_major(&b, 3, 2).unwrap(),
            &mut c,
            true,
            Parallelism::Sequential,
        )
        .unwrap();
        assert_eq!(c, [116.0, 128.0, 278.0, 308.0]);
        // Accumulating on a width that is split into a 64-column part and a 2-column tail.
        let (m, k, n) = (5, 3, 66);
        let a: Vec<f32> = (0..m * k).map(|v| v as f32).collect();
        let b: Vec<f32> = (0..k * n).map(|v| (v % 9) as f32).collect();
        let (a, b) = (
            MatRef::row_major(&a, m, k).unwrap(),
            MatRef::row_major(&b, k, n).unwrap(),
        );
        let mut c = vec![1.0; m * n];
        gemm(a, b, &mut c, true, Parallelism::Threaded).unwrap();
        let want: Vec<f32> = naive(&a, &b).iter().map(|v| v + 1.0).collect();
        assert_eq!(c, want);
    }

    /// Views with an offset, a row stride wider than the row, and a transpose multiply correctly
    /// (against a naive loop) without a copy.
    #[test]
    fn transposed_and_offset_operands_need_no_copy() {
        let data: Vec<f32> = (0..40).map(|v| (v as f32 * 0.37).sin()).collect();
        // A 4x5 window starting at element 3 of an 8-wide buffer, and the transpose of a 3x5 block.
        let a = MatRef::new(&data, 3, 4, 5, 8, 1).unwrap();
        let b = MatRef::new(&data, 1, 3, 5, 5, 1).unwrap().t();
        assert_eq!((b.rows(), b.cols(), b.strides()), (5, 3, (1, 5)));
        let mut c = vec![0.0; 12];
        gemm(a, b, &mut c, false, Parallelism::Threaded).unwrap();
        let want = naive(&a, &b);
        for (x, y) in c.iter().zip(&want) {
            assert!((x - y).abs() < 1e-5, "{c:?} vs {want:?}");
        }
    }

    /// Rows read backwards (negative stride) and a broadcast row (stride 0) give the naive
    /// reference product.
    #[test]
    fn negative_and_zero_strides() {
        let data: Vec<f32> = (0..12).map(|v| v as f32).collect();
        // Rows read backwards, and a broadcast row (row stride 0).
        let a = MatRef::new(&data, 8, 3, 4, -4, 1).unwrap();
        let b = MatRef::new(&data, 0, 4, 2, 0, 1).unwrap();
        let mut c = vec![0.0; 6];
        gemm(a, b, &mut c, false, Parallelism::Sequential).unwrap();
        assert_eq!(c, naive(&a, &b));
        assert_eq!(c[0], (8.0 + 9.0 + 10.0 + 11.0) * 0.0);
        assert_eq!(c[1], 8.0 + 9.0 + 10.0 + 11.0);
    }

    /// An inner dimension of 0 leaves the output unchanged when accumulating and zeroes it
    /// otherwise.
    #[test]
    fn empty_and_k_zero() {
        let mut c = vec![5.0; 6];
        let a = MatRef::new(&[], 0, 2, 0, 0, 1).unwrap();
        let b = MatRef::new(&[], 0, 0, 3, 3, 1).unwrap();
        gemm(a, b, &mut c, true, Parallelism::Threaded).unwrap();
        assert_eq!(c, vec![5.0; 6]);
        gemm(a, b, &mut c, false, Parallelism::Threaded).unwrap();
        assert_eq!(c, vec![0.0; 6]);
    }

    /// A matrix view reaching past either end of its buffer is refused when it is built, so the
    /// kernel never reads out of bounds.
    #[test]
    fn out_of_bounds_views_are_refused() {
        let data = [0.0f32; 10];
        assert!(MatRef::new(&data, 0, 3, 4, 4, 1).is_err()); // needs 12 elements
        assert!(MatRef::new(&data, 2, 2, 2, -4, 1).is_err()); // reaches element -2
        assert!(MatRef::new(&data, 11, 0, 3, 3, 1).is_err());
        assert!(MatRef::new(&data, 0, 2, 5, 5, 1).is_ok());
        assert!(MatRef::row_major(&data, 3, 3).is_err());
    }

    /// Operands whose inner dimensions or output length do not fit are errors naming gemm and the
    /// shapes.
    #[test]
    fn shape_errors_name_gemm() {
        let a = [0.0f32; 6];
        let mut c = [0.0f32; 4];
        let err = gemm(
            MatRef::row_major(&a, 2, 3).unwrap(),
            MatRef::row_major(&a, 2, 3).unwrap(),
            &mut c,
            false,
            Parallelism::Sequential,
        )
        .unwrap_err();
        assert_eq!(err.op(), "gemm");
        assert!(err.to_string().contains("[2, 3]"), "{err}");
        let err = gemm(
            MatRef::row_major(&a, 2, 3).unwrap(),
            MatRef::row_major(&a, 3, 2).unwrap(),
            &mut c[..3],
            false,
            Parallelism::Sequential,
        )
        .unwrap_err();
        assert_eq!(err.op(), "gemm");
    }

    /// The batched GEMM gives the naive result on each of its paths (sequential, parallel over the
    /// batch, threaded large products; each with `B` transposed, which the `gemm` crate takes, and
    /// row-major, which `small_gemm` takes when it is small) and refuses mixed shapes.
    #[test]
    fn batch_paths_agree() {
        // Sequential small products, a parallel loop over the batch, large threaded products,
        // and a mixed-shape batch (error).
        for &(batch, m, k, n) in &[
            (7, 9, 5, 11),
            (60, 40, 40, 40),
            (2, 210, 200, 200),
            (1, 3, 4, 5),
            (0, 2, 2, 2),
        ] {
            let av: Vec<f32> = (0..batch * m * k)
                .map(|v| ((v * 7 % 13) as f32) - 6.0)
                .collect();
            let bv: Vec<f32> = (0..batch * k * n)
                .map(|v| ((v * 5 % 11) as f32) - 5.0)
                .collect();
            let a: Vec<MatRef<'_>> = (0..batch)
                .map(|i| MatRef::row_major(&av[i * m * k..(i + 1) * m * k], m, k).unwrap())
                .collect();
            for transposed in [true, false] {
                // The right operands: transposed views of n x k blocks, or row-major k x n.
                let b: Vec<MatRef<'_>> = (0..batch)
                    .map(|i| {
                        let block = &bv[i * k * n..(i + 1) * k * n];
                        if transposed {
                            MatRef::row_major(block, n, k).unwrap().t()
                        } else {
                            MatRef::row_major(block, k, n).unwrap()
                        }
                    })
                    .collect();
                if let (Some(a0), Some(b0)) = (a.first(), b.first()) {
                    let small = !transposed && k * n <= small_gemm::SMALL_B_ELEMS;
                    assert_eq!(small_gemm::fits(a0, b0), small, "{m}x{k}x{n}");
                }
                let mut c = vec![0.0; batch * m * n];
                gemm_batch(&a, &b, &mut c, false, Parallelism::Threaded).unwrap();
                for i in 0..batch {
                    // Integer-valued inputs: every path must be exact.
                    assert_eq!(
                        &c[i * m * n..(i + 1) * m * n],
                        naive(&a[i], &b[i]).as_slice()
                    );
                }
            }
        }
        let x = [1.0f32; 6];
        let a = [
            MatRef::row_major(&x, 2, 3).unwrap(),
            MatRef::row_major(&x, 3, 2).unwrap(),
        ];
        let b = [
            MatRef::row_major(&x, 3, 2).unwrap(),
            MatRef::row_major(&x, 2, 3).unwrap(),
        ];
        let mut c = vec![0.0; 8];
        let err = gemm_batch(&a, &b, &mut c, false, Parallelism::Threaded).unwrap_err();
        assert_eq!(err.op(), "gemm");
    }

    /// A product split over 2, 3, 4 or 7 threads, by rows (tall) or by columns (wide), with
    /// transposed operands and a narrow column tail, equals the naive loop exactly, writing fresh
    /// or accumulating; and the split points cover the range with aligned, increasing cuts.
    #[test]
    fn split_products_match_the_naive_loop() {
        for &(m, k, n) in &[(100, 13, 70), (17, 9, 200), (40, 8, 261), (3, 5, 7)] {
            let av: Vec<f32> = (0..m * k).map(|v| ((v * 7 % 13) as f32) - 6.0).collect();
            let bv: Vec<f32> = (0..k * n).map(|v| ((v * 5 % 11) as f32) - 5.0).collect();
            let a = MatRef::row_major(&av, m, k).unwrap();
            // The right operand is a transposed view of an n x k block.
            let b = MatRef::row_major(&bv, n, k).unwrap().t();
            let want = naive(&a, &b);
            for threads in [2, 3, 4, 7] {
                for accumulate in [false, true] {
                    let mut c = vec![if accumulate { 1.0 } else { f32::NAN }; m * n];
                    // SAFETY: c is m x n and initialised; the shapes agree.
                    unsafe {
                        let out =
                            &mut *(c.as_mut_slice() as *mut [f32] as *mut [MaybeUninit<f32>]);
                        kernel(a, b, out, accumulate, threads);
                    }
                    let expect: Vec<f32> = want
                        .iter()
                        .map(|v| if accumulate { v + 1.0 } else { *v })
                        .collect();
                    assert_eq!(c, expect, "{m}x{k}x{n}, {threads} threads, {accumulate}");
                }
            }
        }
        for (len, threads, align) in [(768, 2, 16), (65, 2, 64), (10, 4, 16), (1000, 7, 16)] {
            let p = split_points(len, threads, align);
            assert_eq!((p[0], *p.last().unwrap()), (0, len));
            assert!(p.len() - 1 <= threads && p.windows(2).all(|w| w[0] < w[1]));
            assert!(p[..p.len() - 1].iter().all(|x| x % align == 0));
        }
        assert_eq!(split_points(768, 2, 16), vec![0, 384, 768]);
    }

    /// Writing a batch into a fresh output gives the same values as accumulating into a zeroed one,
    /// including empty dimensions.
    #[test]
    fn new_output_matches_zeroed_output() {
        for &(batch, m, k, n) in &[(1, 33, 17, 65), (5, 8, 0, 3), (3, 0, 4, 2), (12, 16, 9, 7)] {
            let av: Vec<f32> = (0..batch * m * k).map(|v| (v % 7) as f32 - 3.0).collect();
            let bv: Vec<f32> = (0..batch * k * n).map(|v| (v % 5) as f32 - 2.0).collect();
            let a: Vec<MatRef<'_>> = (0..batch)
                .map(|i| MatRef::row_major(&av[i * m * k..(i + 1) * m * k], m, k).unwrap())
                .collect();
            let b: Vec<MatRef<'_>> = (0..batch)
                .map(|i| MatRef::row_major(&bv[i * k * n..(i + 1) * k * n], k, n).unwrap())
                .collect();
            let mut zeroed = vec![f32::NAN; batch * m * n];
            gemm_batch(&a, &b, &mut zeroed, false, Parallelism::Threaded).unwrap();
            let fresh = gemm_batch_new(&a, &b, Parallelism::Threaded).unwrap();
            assert_eq!(fresh, zeroed);
            assert!(fresh.iter().all(|v| v.is_finite()));
        }
    }
}
