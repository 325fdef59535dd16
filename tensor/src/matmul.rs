//! Matrix multiplication with PyTorch's `matmul` semantics.
//!
//! - `(m, k) @ (k, n) -> (m, n)`, the plain matrix product;
//! - a 1-D left operand `(k,)` is a row vector and a 1-D right operand `(k,)` a column vector; the
//!   added dimension is dropped from the result (`(k,) @ (k,)` is a 0-d dot product);
//! - more dimensions are a batch of matrices: everything but the last two dimensions broadcasts
//!   like an elementwise op, so `(B, H, T, D) @ (B, H, D, T)` gives `(B, H, T, T)` and
//!   `(B, T, C) @ (C, N)` applies one weight matrix to every sample.
//!
//! Every product goes through [`crate::gemm`], which reads transposed and sliced operands in
//! place through their strides. [`matmul_naive`] is the definition written as a triple loop: the
//! reference the tests compare against.

use ndarray::{ArrayViewD, Axis, CowArray, Dimension, Ix2, IxDyn};

use crate::broadcast::broadcast_shapes;
use crate::error::{Result, TensorError};
use crate::gemm::{gemm_batch_new, MatRef, Parallelism};
use crate::tensor::Tensor;

impl Tensor {
    /// Matrix product with PyTorch's semantics (1-D operands, broadcast batch dimensions).
    ///
    /// Fails (op `matmul`, both shapes in the message) for a 0-d operand, inner dimensions that
    /// differ, or batch dimensions that do not broadcast. The result is contiguous.
    ///
    /// ```
    /// use tensor::Tensor;
    /// let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    /// let b = Tensor::from_vec(vec![1.0, 0.0, -1.0], &[3]).unwrap();
    /// assert_eq!(a.matmul(&b).unwrap().to_vec(), vec![-2.0, -2.0]);
    /// ```
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        // HINT: view a 1-D lhs as (1, k) and a 1-D rhs as (k, 1) (`insert_axis_inplace`), check the
        // HINT: inner dimensions, broadcast the batch dimensions (all but the last two) with
        // HINT: `broadcast_shapes`, let `batched_product` do the arithmetic, then drop the added dims.
        // BEGIN SOLUTION
        let (ls, rs) = (self.shape(), other.shape());
        if ls.is_empty() || rs.is_empty() {
            return Err(TensorError::mismatch(
                "matmul",
                ls,
                rs,
                "both operands need at least one dimension (multiply by a 0-d scalar with `mul`)",
            ));
        }
        // A vector on the left is a row (1, k); on the right, a column (k, 1).
        let mut lhs = self.view();
        if lhs.ndim() == 1 {
            lhs.insert_axis_inplace(Axis(0));
        }
        let mut rhs = other.view();
        if rhs.ndim() == 1 {
            rhs.insert_axis_inplace(Axis(1));
        }
        let (l_batch, l_mat) = lhs.shape().split_at(lhs.ndim() - 2);
        let (r_batch, r_mat) = rhs.shape().split_at(rhs.ndim() - 2);
        let (m, k, n) = (l_mat[0], l_mat[1], r_mat[1]);
        if r_mat[0] != k {
            return Err(TensorError::mismatch(
                "matmul",
                ls,
                rs,
                format!(
                    "inner dimensions differ: the left operand has {k} columns, the right one {} rows",
                    r_mat[0]
                ),
            ));
        }
        // The batch dimensions broadcast like an elementwise op.
        let batch = broadcast_shapes("matmul", l_batch, r_batch).map_err(|_| {
            TensorError::mismatch(
                "matmul",
                ls,
                rs,
                format!("batch dimensions {l_batch:?} and {r_batch:?} do not broadcast"),
            )
        })?;
        let values = batched_product(lhs.view(), rhs.view(), &batch)?;
        // The result has the batch shape, then m unless lhs was a vector, then n unless rhs was.
        let mut shape = batch;
        if ls.len() > 1 {
            shape.push(m);
        }
        if rs.len() > 1 {
            shape.push(n);
        }
        Tensor::from_vec(values, &shape)
        // END SOLUTION
    }
}

/// The values of `lhs @ rhs` in row-major order, for operands of at least two dimensions whose
/// matrices fit (`(.., m, k)` and `(.., k, n)`) and whose batch dimensions broadcast to `batch`.
///
/// An operand whose matrices have a unit stride in neither dimension is copied once to row-major
/// (the kernel would otherwise gather every element). When `rhs` is one matrix and the rows of
/// `lhs` can be walked with one stride (the common `(B, T, C) @ (C, N)`), the whole product is a
/// single `(B*T, C) @ (C, N)` GEMM; otherwise it is a batch of GEMMs.
pub(crate) fn batched_product(
    lhs: ArrayViewD<'_, f32>,
    rhs: ArrayViewD<'_, f32>,
    batch: &[usize],
) -> Result<Vec<f32>> {
    let lhs = unit_stride_or_copy(lhs);
    let rhs = unit_stride_or_copy(rhs);
    let (ld, rd) = (lhs.ndim(), rhs.ndim());
    let (m, k, n) = (
        lhs.shape()[ld - 2],
        lhs.shape()[ld - 1],
        rhs.shape()[rd - 1],
    );
    let count: usize = batch.iter().product();
    if count * m * n == 0 {
        return Ok(Vec::new());
    }
    let rhs_count: usize = rhs.shape()[..rd - 2].iter().product();
    if rhs_count == 1 {
        if let Some(a) = fold_rows(lhs.view()) {
            let b = squeeze_to_matrix(rhs.view())?;
            return gemm_batch_new(&[a], &[b], Parallelism::Threaded);
        }
    }
    // The general case: one GEMM per batch entry, broadcast operands repeating their matrices.
    let full_l: Vec<usize> = batch.iter().copied().chain([m, k]).collect();
    let full_r: Vec<usize> = batch.iter().copied().chain([k, n]).collect();
    let bad = |shape: &[usize], full: &[usize]| {
        TensorError::mismatch("matmul", shape, full, "batch dimensions do not broadcast")
    };
    let lb = lhs
        .broadcast(IxDyn(&full_l))
        .ok_or_else(|| bad(lhs.shape(), &full_l))?;
    let rb = rhs
        .broadcast(IxDyn(&full_r))
        .ok_or_else(|| bad(rhs.shape(), &full_r))?;
    let mut a = Vec::with_capacity(count);
    let mut b = Vec::with_capacity(count);
    matrices(lb, &mut a)?;
    matrices(rb, &mut b)?;
    gemm_batch_new(&a, &b, Parallelism::Threaded)
}

/// The view itself when its matrices (last two dims) have a unit stride in one dimension,
/// otherwise a row-major copy.
fn unit_stride_or_copy(v: ArrayViewD<'_, f32>) -> CowArray<'_, f32, IxDyn> {
    let nd = v.ndim();
    let (shape, strides) = (v.shape(), v.strides());
    let fine =
        shape[nd - 2] <= 1 || shape[nd - 1] <= 1 || strides[nd - 2] == 1 || strides[nd - 1] == 1;
    if fine {
        CowArray::from(v)
    } else {
        CowArray::from(v.as_standard_layout().into_owned())
    }
}

/// `(.., m, k)` seen as one `(rows, k)` matrix when all leading dimensions merge into the row
/// dimension with a single stride (true of any row-major array), without copying.
fn fold_rows(mut v: ArrayViewD<'_, f32>) -> Option<MatRef<'_>> {
    let rows_axis = Axis(v.ndim() - 2);
    for axis in (0..v.ndim() - 2).rev() {
        if !v.merge_axes(Axis(axis), rows_axis) {
            return None;
        }
    }
    squeeze_to_matrix(v).ok()
}

/// A view whose leading dimensions all have length 1, as its last two dimensions.
fn squeeze_to_matrix(mut v: ArrayViewD<'_, f32>) -> Result<MatRef<'_>> {
    let shape = v.shape().to_vec();
    while v.ndim() > 2 {
        if v.len_of(Axis(0)) != 1 {
            return Err(TensorError::invalid(
                "matmul",
                &shape,
                "internal: expected batch dimensions of length 1",
            ));
        }
        v = v.index_axis_move(Axis(0), 0);
    }
    let v = v
        .into_dimensionality::<Ix2>()
        .map_err(|e| TensorError::invalid("matmul", &shape, e.to_string()))?;
    Ok(MatRef::from_view(v))
}

/// Every matrix of a `(batch.., rows, cols)` view, in row-major batch order, as strided refs.
fn matrices<'a>(v: ArrayViewD<'a, f32>, out: &mut Vec<MatRef<'a>>) -> Result<()> {
    if v.ndim() == 2 {
        out.push(squeeze_to_matrix(v)?);
        return Ok(());
    }
    for i in 0..v.len_of(Axis(0)) {
        matrices(v.clone().index_axis_move(Axis(0), i), out)?;
    }
    Ok(())
}

/// The reference matmul: `c[.., i, j] = Σ_p a[.., i, p] · b[.., p, j]` as a plain triple loop
/// per batch entry, accumulated in `f64`.
///
/// Same semantics and errors as [`Tensor::matmul`] (1-D operands, broadcast batch dimensions),
/// but slow on purpose: it is the definition, used by the tests as the ground truth and by the
/// chapter as the starting point before blocking, packing and threads.
pub fn matmul_naive(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (ls, rs) = (a.shape(), b.shape());
    if ls.is_empty() || rs.is_empty() {
        return Err(TensorError::mismatch(
            "matmul",
            ls,
            rs,
            "both operands need at least one dimension",
        ));
    }
    let l2: Vec<usize> = if ls.len() == 1 {
        vec![1, ls[0]]
    } else {
        ls.to_vec()
    };
    let r2: Vec<usize> = if rs.len() == 1 {
        vec![rs[0], 1]
    } else {
        rs.to_vec()
    };
    let (lb, lm) = l2.split_at(l2.len() - 2);
    let (rb, rm) = r2.split_at(r2.len() - 2);
    let (m, k, n) = (lm[0], lm[1], rm[1]);
    if rm[0] != k {
        return Err(TensorError::mismatch(
            "matmul",
            ls,
            rs,
            format!("inner dimensions differ: {k} and {}", rm[0]),
        ));
    }
    let batch = broadcast_shapes("matmul", lb, rb)
        .map_err(|e| TensorError::mismatch("matmul", ls, rs, e.to_string()))?;
    let a_full: Vec<usize> = batch.iter().copied().chain([m, k]).collect();
    let b_full: Vec<usize> = batch.iter().copied().chain([k, n]).collect();
    let a_view = a.view();
    let b_view = b.view();
    let a_b = a_view
        .to_shape(l2.as_slice())
        .map_err(|e| TensorError::invalid("matmul", ls, e.to_string()))?;
    let b_b = b_view
        .to_shape(r2.as_slice())
        .map_err(|e| TensorError::invalid("matmul", rs, e.to_string()))?;
    let no_broadcast =
        || TensorError::mismatch("matmul", ls, rs, "batch dimensions do not broadcast");
    let a_all = a_b.broadcast(IxDyn(&a_full)).ok_or_else(no_broadcast)?;
    let b_all = b_b.broadcast(IxDyn(&b_full)).ok_or_else(no_broadcast)?;
    let mut values = Vec::with_capacity(batch.iter().product::<usize>() * m * n);
    for index in ndarray::indices(IxDyn(&batch)) {
        let mut av = a_all.view();
        let mut bv = b_all.view();
        for &i in index.slice() {
            av = av.index_axis_move(Axis(0), i);
            bv = bv.index_axis_move(Axis(0), i);
        }
        let (av, bv) = (to_2d(ls, av)?, to_2d(rs, bv)?);
        for i in 0..m {
            for j in 0..n {
                let mut sum = 0.0f64;
                for p in 0..k {
                    sum += av[[i, p]] as f64 * bv[[p, j]] as f64;
                }
                values.push(sum as f32);
            }
        }
    }
    let mut shape = batch;
    if ls.len() > 1 {
        shape.push(m);
    }
    if rs.len() > 1 {
        shape.push(n);
    }
    Tensor::from_vec(values, &shape)
}

/// A view known to have two dimensions, as an `Ix2` view.
fn to_2d<'a>(shape: &[usize], v: ArrayViewD<'a, f32>) -> Result<ndarray::ArrayView2<'a, f32>> {
    v.into_dimensionality::<Ix2>()
        .map_err(|e| TensorError::invalid("matmul", shape, e.to_string()))
}
