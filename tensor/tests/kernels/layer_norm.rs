//! Layer norm: hand values, the f64 composition, backward with and without affine parameters, the
//! threaded path, errors.

use crate::helpers::{
    assert_close, contiguous_copy, numeric_grad, numeric_grad_f32, randn, ref_layer_norm, to_f64,
    transposed, weighted_sum, weighted_sum64,
};
use tensor::layer_norm::{layer_norm, layer_norm_backward};
use tensor::Tensor;

/// Layer norm of two small rows equals the hand-computed (x - mean) / sqrt(var + eps), and caches
/// the right mean and 1/std per row.
#[test]
fn layer_norm_hand_values() {
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 2.0, 2.0, 2.0, 2.0], &[2, 4]).unwrap();
    let (y, cache) = layer_norm(&x, None, None, 1e-5).unwrap();
    // Row 0: mean 2.5, biased variance 1.25.
    let r = 1.0 / (1.25f64 + 1e-5).sqrt();
    let want = [-1.5 * r, -0.5 * r, 0.5 * r, 1.5 * r, 0.0, 0.0, 0.0, 0.0];
    assert_close(&y.to_vec(), &want, 1e-6, 1e-6, "layer_norm");
    assert_close(&cache.mean.to_vec(), &[2.5, 2.0], 1e-7, 0.0, "mean");
    assert_close(
        &cache.rstd.to_vec(),
        &[r, 1.0 / 1e-5f64.sqrt()],
        0.0,
        1e-5,
        "rstd",
    );
    assert_eq!(cache.mean.shape(), &[2]);

    let w = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[4]).unwrap();
    let b = Tensor::from_vec(vec![0.5, 0.5, -1.0, 0.0], &[4]).unwrap();
    let (y, _) = layer_norm(&x, Some(&w), Some(&b), 1e-5).unwrap();
    let want = [
        -1.5 * r + 0.5,
        -r + 0.5,
        1.5 * r - 1.0,
        6.0 * r,
        0.5,
        0.5,
        -1.0,
        0.0,
    ];
    assert_close(&y.to_vec(), &want, 1e-6, 1e-6, "layer_norm affine");
}

/// Layer norm with weight and bias matches an f64 reference built from mean, biased variance, scale
/// and shift.
#[test]
fn layer_norm_matches_composition() {
    let shape = [3, 4, 37];
    let x = randn(&shape, 10).map(|v| 2.0 * v + 5.0);
    let w = randn(&[37], 11);
    let b = randn(&[37], 12);
    let (x64, w64, b64) = (to_f64(&x), to_f64(&w), to_f64(&b));
    let (y, cache) = layer_norm(&x, Some(&w), Some(&b), 1e-5).unwrap();
    assert_eq!(y.shape(), &shape);
    assert_eq!(cache.rstd.shape(), &[3, 4]);
    assert_close(
        &y.to_vec(),
        &ref_layer_norm(&x64, 37, Some(&w64), Some(&b64), 1e-5),
        1e-5,
        1e-5,
        "layer_norm",
    );
    let means: Vec<f64> = x64
        .chunks(37)
        .map(|r| r.iter().sum::<f64>() / 37.0)
        .collect();
    assert_close(&cache.mean.to_vec(), &means, 1e-5, 1e-6, "cached mean");
    let (y_plain, _) = layer_norm(&x, None, None, 1e-5).unwrap();
    assert_close(
        &y_plain.to_vec(),
        &ref_layer_norm(&x64, 37, None, None, 1e-5),
        1e-5,
        1e-5,
        "no affine",
    );
}

/// The fused layer-norm backward (dx, dweight, dbias) equals central finite differences of the f64
/// reference.
#[test]
fn layer_norm_backward_matches_finite_differences() {
    let (shape, d) = ([2, 3, 6], 6);
    let x = randn(&shape, 13);
    let w = randn(&[d], 14);
    let b = randn(&[d], 15);
    let gw = randn(&shape, 16).to_vec();
    let g = Tensor::from_vec(gw.clone(), &shape).unwrap();
    let eps = 1e-5;
    let (_, cache) = layer_norm(&x, Some(&w), Some(&b), eps).unwrap();
    let (dx, dw, db) = layer_norm_backward(&x, Some(&w), &cache, &g).unwrap();
    let (dw, db) = (dw.unwrap(), db.unwrap());
    assert_eq!(dw.shape(), &[d]);
    let (x64, w64, b64) = (to_f64(&x), to_f64(&w), to_f64(&b));
    let loss = |x: &[f64], w: &[f64], b: &[f64]| {
        weighted_sum64(&ref_layer_norm(x, d, Some(w), Some(b), eps as f64), &gw)
    };
    let nx = numeric_grad(&x64, 1e-5, |v| loss(v, &w64, &b64));
    let nw = numeric_grad(&w64, 1e-5, |v| loss(&x64, v, &b64));
    let nb = numeric_grad(&b64, 1e-5, |v| loss(&x64, &w64, v));
    assert_close(&dx.to_vec(), &nx, 1e-5, 1e-4, "dx vs f64 differences");
    assert_close(&dw.to_vec(), &nw, 1e-5, 1e-4, "dweight vs f64 differences");
    assert_close(&db.to_vec(), &nb, 1e-5, 1e-4, "dbias vs f64 differences");

    let kernel_loss = |xv: &[f32], wv: &[f32], bv: &[f32]| {
        let xt = Tensor::from_vec(xv.to_vec(), &shape).unwrap();
        let wt = Tensor::from_vec(wv.to_vec(), &[d]).unwrap();
        let bt = Tensor::from_vec(bv.to_vec(), &[d]).unwrap();
        weighted_sum(
            &layer_norm(&xt, Some(&wt), Some(&bt), eps)
                .unwrap()
                .0
                .to_vec(),
            &gw,
        )
    };
    let (xv, wv, bv) = (x.to_vec(), w.to_vec(), b.to_vec());
    let nx32 = numeric_grad_f32(&xv, 1e-2, |v| kernel_loss(v, &wv, &bv));
    let nw32 = numeric_grad_f32(&wv, 1e-2, |v| kernel_loss(&xv, v, &bv));
    assert_close(&dx.to_vec(), &nx32, 5e-3, 2e-2, "dx vs kernel differences");
    assert_close(
        &dw.to_vec(),
        &nw32,
        5e-3,
        2e-2,
        "dweight vs kernel differences",
    );
}

/// Without weight and bias, dx still matches finite differences and each row of dx sums to zero
/// (shifting a row changes nothing).
#[test]
fn layer_norm_backward_without_affine_matches_finite_differences() {
    let (shape, d) = ([4, 5], 5);
    let x = randn(&shape, 17).map(|v| 0.1 * v + 3.0);
    let gw = randn(&shape, 18).to_vec();
    let g = Tensor::from_vec(gw.clone(), &shape).unwrap();
    let (_, cache) = layer_norm(&x, None, None, 1e-5).unwrap();
    let (dx, dw, db) = layer_norm_backward(&x, None, &cache, &g).unwrap();
    assert!(dw.is_none());
    let nx = numeric_grad(&to_f64(&x), 1e-6, |v| {
        weighted_sum64(&ref_layer_norm(v, d, None, None, 1e-5), &gw)
    });
    assert_close(&dx.to_vec(), &nx, 1e-3, 1e-3, "dx without affine");
    // The rows of dx sum to zero: shifting a row does not change its output.
    for row in dx.to_vec().chunks(d) {
        assert!(row.iter().sum::<f32>().abs() < 1e-3);
    }
    // dbias is the column sum of grad_y whether or not there is a bias.
    let want: Vec<f64> = (0..d)
        .map(|i| (0..4).map(|r| gw[r * d + i] as f64).sum())
        .collect();
    assert_close(&db.unwrap().to_vec(), &want, 1e-6, 1e-6, "dbias");
}

/// On a tensor big enough for the threaded forward and blocked weight/bias reduction, forward and
/// backward match the f64 reference.
#[test]
fn layer_norm_large_tensor_matches_reference() {
    // 64 x 8 x 128 = 65,536 elements: threaded forward and blocked weight/bias reduction.
    let (shape, d) = ([64, 8, 128], 128);
    let x = randn(&shape, 19);
    let w = randn(&[d], 20);
    let g = randn(&shape, 21);
    let (y, cache) = layer_norm(&x, Some(&w), None, 1e-5).unwrap();
    let (x64, w64) = (to_f64(&x), to_f64(&w));
    assert_close(
        &y.to_vec(),
        &ref_layer_norm(&x64, d, Some(&w64), None, 1e-5),
        1e-5,
        1e-5,
        "forward",
    );
    let (dx, dw, db) = layer_norm_backward(&x, Some(&w), &cache, &g).unwrap();
    let g64 = to_f64(&g);
    let (m, r) = (to_f64(&cache.mean), to_f64(&cache.rstd));
    let mut want_dw = vec![0.0f64; d];
    let mut want_db = vec![0.0f64; d];
    for row in 0..64 * 8 {
        for i in 0..d {
            let k = row * d + i;
            want_dw[i] += g64[k] * (x64[k] - m[row]) * r[row];
            want_db[i] += g64[k];
        }
    }
    assert_close(&dw.unwrap().to_vec(), &want_dw, 1e-3, 1e-4, "dweight");
    assert_close(&db.unwrap().to_vec(), &want_db, 1e-3, 1e-4, "dbias");
    // The same dx row by row as a small (single-threaded) call.
    let row0 = Tensor::from_vec(x.to_vec()[..d].to_vec(), &[1, d]).unwrap();
    let g0 = Tensor::from_vec(g.to_vec()[..d].to_vec(), &[1, d]).unwrap();
    let (_, c0) = layer_norm(&row0, Some(&w), None, 1e-5).unwrap();
    let (dx0, _, _) = layer_norm_backward(&row0, Some(&w), &c0, &g0).unwrap();
    assert_eq!(&dx.to_vec()[..d], &dx0.to_vec()[..]);
}

/// A transposed input gives bit-identical layer-norm outputs, caches and gradients to its
/// contiguous copy.
#[test]
fn layer_norm_of_non_contiguous_input_equals_contiguous() {
    let x = transposed(&randn(&[7, 3, 2], 22));
    let c = contiguous_copy(&x);
    let w = randn(&[7], 23);
    let (y1, c1) = layer_norm(&x, Some(&w), None, 1e-5).unwrap();
    let (y2, c2) = layer_norm(&c, Some(&w), None, 1e-5).unwrap();
    assert!(y1 == y2 && c1.mean == c2.mean && c1.rstd == c2.rstd);
    let g = randn(&[2, 3, 7], 24);
    let (a, aw, _) = layer_norm_backward(&x, Some(&w), &c1, &g).unwrap();
    let (b, bw, _) = layer_norm_backward(&c, Some(&w), &c2, &g).unwrap();
    assert!(a == b && aw == bw);
}

/// A weight or bias of the wrong shape is an error naming layer_norm, the parameter and both
/// shapes.
#[test]
fn layer_norm_errors_name_the_op_and_shapes() {
    let x = Tensor::zeros(&[2, 6]);
    let bad = Tensor::ones(&[5]);
    let e = layer_norm(&x, Some(&bad), None, 1e-5).err().unwrap();
    assert_eq!(e.op(), "layer_norm");
    let msg = e.to_string();
    assert!(
        msg.contains("[2, 6]") && msg.contains("[5]") && msg.contains("weight"),
        "{msg}"
    );
    let e = layer_norm(&x, None, Some(&Tensor::ones(&[1, 6])), 1e-5)
        .err()
        .unwrap();
    assert!(e.to_string().contains("bias"), "{e}");
    assert_eq!(
        layer_norm(&Tensor::scalar(1.0), None, None, 1e-5)
            .err()
            .unwrap()
            .op(),
        "layer_norm"
    );
    assert!(layer_norm(&x, None, None, -1.0).is_err());

    let (_, cache) = layer_norm(&x, None, None, 1e-5).unwrap();
    let e = layer_norm_backward(&x, None, &cache, &Tensor::zeros(&[6, 2]))
        .err()
        .unwrap();
    assert_eq!(e.op(), "layer_norm_backward");
    assert!(e.to_string().contains("[6, 2]"), "{e}");
    let e = layer_norm_backward(&x, Some(&bad), &cache, &x)
        .err()
        .unwrap();
    assert_eq!(e.op(), "layer_norm_backward");
    let (_, other) = layer_norm(&Tensor::zeros(&[3, 6]), None, None, 1e-5).unwrap();
    let e = layer_norm_backward(&x, None, &other, &x).err().unwrap();
    assert!(e.to_string().contains("[3]"), "{e}");
}
