//! Every SIMD dispatch path of the crate's kernels, checked against a plain reference.
//!
//! Each kernel runs at every level this machine supports ([`supported_levels`], capped by
//! `TINYTORCH_SIMD`) through [`at_simd_level`], not only at the level auto-dispatch picks. The
//! kernels do the same arithmetic in the same order on every path, so the outputs must also be
//! bit-for-bit equal across levels. Sizes include a parallel case (above the threading
//! threshold), so the level cap is checked where work moves to the thread pool too.

use tensor::causal_softmax::causal_softmax_backward;
use tensor::cross_entropy::{cross_entropy, cross_entropy_backward};
use tensor::gemm::Parallelism;
use tensor::gemm_i8::{gemm_i8, gemm_i8_reference, I8Kernel, PackedI8Weights};
use tensor::layer_norm::{layer_norm, layer_norm_backward};
use tensor::sdpa::{scaled_dot_product_attention, scaled_dot_product_attention_backward};
use tensor::simd::{
    at_simd_level, cpu_simd_level, simd_level, supported_levels, SimdLevel, SIMD_ENV,
};
use tensor::softmax::softmax_backward;
use tensor::{Tensor, TensorError};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::rand_normal(shape, 0.0, 1.0, seed).expect("valid shape")
}

fn values(t: &Tensor) -> Vec<f32> {
    t.to_vec()
}

/// Run `f` at every supported level; check each result against `reference` (within `tol`,
/// relative to the largest magnitude) and all levels against each other bit for bit.
fn at_every_level(what: &str, reference: &[f64], tol: f64, f: impl Fn() -> Vec<f32>) {
    let mut first: Option<(SimdLevel, Vec<f32>)> = None;
    for level in supported_levels() {
        let got = at_simd_level(level, || {
            assert_eq!(simd_level(), level, "{what}: the cap did not apply");
            f()
        });
        assert_eq!(got.len(), reference.len(), "{what} at {level}: length");
        let scale = reference.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (i, (&g, &r)) in got.iter().zip(reference).enumerate() {
            assert!(
                (g as f64 - r).abs() <= tol * scale,
                "{what} at {level}: element {i} is {g}, reference {r}"
            );
        }
        match &first {
            None => first = Some((level, got)),
            Some((l0, v0)) => {
                let same = v0.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{what}: {level} differs from {l0}");
            }
        }
    }
}

fn ref_softmax_rows(x: &[f32], n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(n) {
        let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let e: Vec<f64> = row.iter().map(|&v| (v as f64 - m).exp()).collect();
        let s: f64 = e.iter().sum();
        out.extend(e.iter().map(|v| v / s));
    }
    out
}

/// Capping the SIMD level applies inside the closure, a nested cap never raises it, the level is
/// restored afterwards, and the int8 kernel choice follows it.
#[test]
fn the_level_cap_applies_nests_and_restores() {
    let top = simd_level();
    assert!(top <= cpu_simd_level());
    assert_eq!(supported_levels().last(), Some(&top));
    assert_eq!(supported_levels()[0], SimdLevel::Scalar);
    at_simd_level(SimdLevel::Scalar, || {
        assert_eq!(simd_level(), SimdLevel::Scalar);
        // A nested cap never raises the level.
        at_simd_level(SimdLevel::Avx512, || {
            assert_eq!(simd_level(), SimdLevel::Scalar)
        });
        assert_eq!(I8Kernel::best(), I8Kernel::Scalar);
    });
    assert_eq!(simd_level(), top);
    if top >= SimdLevel::Avx2 {
        at_simd_level(SimdLevel::Avx2, || {
            assert_eq!(simd_level(), SimdLevel::Avx2);
            assert_ne!(I8Kernel::best(), I8Kernel::Avx512Vnni);
        });
    }
}

/// Every SIMD level name parses (any case), and a bad value is an error naming the environment
/// variable, the value and the valid names.
#[test]
fn level_names_parse_and_bad_values_name_the_variable() {
    for level in SimdLevel::ALL {
        assert_eq!(SimdLevel::parse(level.name()), Ok(level));
        assert_eq!(SimdLevel::parse(&level.name().to_uppercase()), Ok(level));
    }
    let e = SimdLevel::parse("avx9000").unwrap_err();
    assert!(matches!(e, TensorError::InvalidSetting { .. }));
    let msg = e.to_string();
    for needle in [SIMD_ENV, "avx9000", "scalar, avx2, avx512"] {
        assert!(msg.contains(needle), "{msg}");
    }
}

/// Softmax, log-softmax and their backwards match an f64 reference at every SIMD level this CPU
/// supports (scalar, AVX2, AVX-512).
#[test]
fn softmax_and_backward_at_every_level() {
    // (rows, n): a short odd row, a wide row, and a parallel-sized case.
    for (rows, n, seed) in [(7, 13, 1), (4, 300, 2), (300, 257, 3)] {
        let x = randn(&[rows, n], seed);
        let xv = values(&x);
        let y_ref = ref_softmax_rows(&xv, n);
        at_every_level("softmax", &y_ref, 1e-6, || values(&x.softmax(-1).unwrap()));
        let log_ref: Vec<f64> = y_ref.iter().map(|v| v.ln()).collect();
        at_every_level("log_softmax", &log_ref, 1e-6, || {
            values(&x.log_softmax(-1).unwrap())
        });
        let g = randn(&[rows, n], seed + 10);
        let gv = values(&g);
        let mut dx_ref = Vec::with_capacity(xv.len());
        for (y, g) in y_ref.chunks(n).zip(gv.chunks(n)) {
            let dot: f64 = y.iter().zip(g).map(|(a, &b)| a * b as f64).sum();
            dx_ref.extend(y.iter().zip(g).map(|(a, &b)| a * (b as f64 - dot)));
        }
        let y = x.softmax(-1).unwrap();
        at_every_level("softmax_backward", &dx_ref, 1e-5, || {
            values(&softmax_backward(&y, &g, -1).unwrap())
        });
    }
}

/// Causal softmax and its backward match an f64 reference at every SIMD level this CPU supports.
#[test]
fn causal_softmax_and_backward_at_every_level() {
    for (b, t, seed) in [(2, 9, 4), (24, 64, 5)] {
        let x = randn(&[b, t, t], seed);
        let xv = values(&x);
        let scale = 0.37f32;
        let mut y_ref = vec![0.0f64; xv.len()];
        for (r, (row, out)) in xv.chunks(t).zip(y_ref.chunks_mut(t)).enumerate() {
            let allowed = r % t + 1;
            let s: Vec<f32> = row[..allowed].iter().map(|v| v * scale).collect();
            out[..allowed].copy_from_slice(&ref_softmax_rows(&s, allowed));
        }
        at_every_level("causal_softmax", &y_ref, 1e-6, || {
            values(&x.causal_softmax(scale).unwrap())
        });
        let g = randn(&[b, t, t], seed + 10);
        let gv = values(&g);
        let mut dx_ref = vec![0.0f64; xv.len()];
        for ((y, g), dx) in y_ref.chunks(t).zip(gv.chunks(t)).zip(dx_ref.chunks_mut(t)) {
            let dot: f64 = y.iter().zip(g).map(|(a, &b)| a * b as f64).sum();
            for ((d, a), &b) in dx.iter_mut().zip(y).zip(g) {
                *d = scale as f64 * a * (b as f64 - dot);
            }
        }
        let y = x.causal_softmax(scale).unwrap();
        at_every_level("causal_softmax_backward", &dx_ref, 1e-5, || {
            values(&causal_softmax_backward(&y, &g, scale).unwrap())
        });
    }
}

/// Layer norm and its backward match an f64 reference at every SIMD level this CPU supports.
#[test]
fn layer_norm_and_backward_at_every_level() {
    for (rows, d, seed) in [(5, 19, 6), (600, 128, 7)] {
        let x = randn(&[rows, d], seed);
        let w = randn(&[d], seed + 1);
        let bias = randn(&[d], seed + 2);
        let g = randn(&[rows, d], seed + 3);
        let (xv, wv, bv, gv) = (values(&x), values(&w), values(&bias), values(&g));
        let eps = 1e-5f64;
        let (mut y_ref, mut dx_ref) = (Vec::new(), Vec::new());
        for (row, gr) in xv.chunks(d).zip(gv.chunks(d)) {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
            let rstd = 1.0 / (var + eps).sqrt();
            let xhat: Vec<f64> = row.iter().map(|&v| (v as f64 - mean) * rstd).collect();
            y_ref.extend(
                xhat.iter()
                    .zip(&wv)
                    .zip(&bv)
                    .map(|((h, &w), &b)| h * w as f64 + b as f64),
            );
            let gh: Vec<f64> = gr
                .iter()
                .zip(&wv)
                .map(|(&g, &w)| g as f64 * w as f64)
                .collect();
            let m1 = gh.iter().sum::<f64>() / d as f64;
            let m2 = gh.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / d as f64;
            dx_ref.extend(gh.iter().zip(&xhat).map(|(a, h)| rstd * (a - m1 - h * m2)));
        }
        at_every_level("layer_norm", &y_ref, 1e-5, || {
            values(&layer_norm(&x, Some(&w), Some(&bias), eps as f32).unwrap().0)
        });
        let (_, cache) = layer_norm(&x, Some(&w), Some(&bias), eps as f32).unwrap();
        at_every_level("layer_norm_backward", &dx_ref, 1e-4, || {
            values(&layer_norm_backward(&x, Some(&w), &cache, &g).unwrap().0)
        });
    }
}

/// Cross-entropy loss and gradient match an f64 reference at every SIMD level this CPU supports.
#[test]
fn cross_entropy_and_backward_at_every_level() {
    let (n, c) = (300, 97);
    let x = randn(&[n, c], 8);
    let targets: Vec<usize> = (0..n).map(|i| (i * 31) % c).collect();
    let probs = ref_softmax_rows(&values(&x), c);
    let loss_ref: f64 = probs
        .chunks(c)
        .zip(&targets)
        .map(|(p, &t)| -p[t].ln())
        .sum::<f64>()
        / n as f64;
    at_every_level("cross_entropy", &[loss_ref], 1e-5, || {
        vec![cross_entropy(&x, &targets, None, 0.0).unwrap().0]
    });
    let mut grad_ref = probs.clone();
    for (row, &t) in grad_ref.chunks_mut(c).zip(&targets) {
        row[t] -= 1.0;
        row.iter_mut().for_each(|v| *v /= n as f64);
    }
    let (_, cache) = cross_entropy(&x, &targets, None, 0.0).unwrap();
    at_every_level("cross_entropy_backward", &grad_ref, 1e-5, || {
        values(&cross_entropy_backward(&cache, &targets, None, 0.0, 1.0).unwrap())
    });
}

/// GELU, sigmoid and tanh match f64 references at every SIMD level this CPU supports.
#[test]
fn activations_at_every_level() {
    let x = randn(&[300, 257], 9);
    let xv = values(&x);
    let gelu_ref: Vec<f64> = xv
        .iter()
        .map(|&v| {
            let v = v as f64;
            0.5 * v * (1.0 + tensor::activation::erf(v / std::f64::consts::SQRT_2))
        })
        .collect();
    at_every_level("gelu", &gelu_ref, 1e-5, || values(&x.gelu()));
    // Wider inputs reach both ends of the polynomial kernels: the exact left tail below -4 and
    // the clamp above 6 (tensor::gelu_poly).
    let wide = x.mul_scalar(3.0);
    let g = randn(&[300, 257], 10);
    let (wv, gv) = (values(&wide), values(&g));
    assert!(wv.iter().any(|&v| v < -4.0) && wv.iter().any(|&v| v > 6.0));
    let cdf = |v: f64| 0.5 * (1.0 + tensor::activation::erf(v / std::f64::consts::SQRT_2));
    let wide_ref: Vec<f64> = wv.iter().map(|&v| v as f64 * cdf(v as f64)).collect();
    at_every_level("gelu, wide inputs", &wide_ref, 1e-6, || {
        values(&wide.gelu())
    });
    let grad_ref: Vec<f64> = wv
        .iter()
        .zip(&gv)
        .map(|(&v, &g)| {
            let v = v as f64;
            let pdf = (-0.5 * v * v).exp() / (2.0 * std::f64::consts::PI).sqrt();
            g as f64 * (cdf(v) + v * pdf)
        })
        .collect();
    at_every_level("gelu_backward", &grad_ref, 1e-6, || {
        values(&tensor::activation::gelu_backward(&wide, &g).unwrap())
    });
    // The fused bias + GELU: the same values, with a bias of the last dimension's length.
    let bias = randn(&[257], 11);
    let bv = values(&bias);
    let biased: Vec<f64> = wv
        .iter()
        .enumerate()
        .map(|(i, &v)| (v + bv[i % 257]) as f64)
        .collect();
    let fused_ref: Vec<f64> = biased.iter().map(|&v| v * cdf(v)).collect();
    at_every_level("bias_gelu", &fused_ref, 1e-6, || {
        values(&wide.bias_gelu(&bias).unwrap())
    });
    let fused_grad_ref: Vec<f64> = biased
        .iter()
        .zip(&gv)
        .map(|(&v, &g)| {
            let pdf = (-0.5 * v * v).exp() / (2.0 * std::f64::consts::PI).sqrt();
            g as f64 * (cdf(v) + v * pdf)
        })
        .collect();
    let mut bias_grad_ref = vec![0.0f64; 257];
    for (i, &d) in fused_grad_ref.iter().enumerate() {
        bias_grad_ref[i % 257] += d;
    }
    at_every_level("bias_gelu_backward", &fused_grad_ref, 1e-6, || {
        values(
            &tensor::activation::bias_gelu_backward(&wide, &bias, &g)
                .unwrap()
                .0,
        )
    });
    at_every_level("bias_gelu_backward (bias)", &bias_grad_ref, 1e-5, || {
        values(
            &tensor::activation::bias_gelu_backward(&wide, &bias, &g)
                .unwrap()
                .1,
        )
    });
    let sigmoid_ref: Vec<f64> = xv
        .iter()
        .map(|&v| 1.0 / (1.0 + (-(v as f64)).exp()))
        .collect();
    at_every_level("sigmoid", &sigmoid_ref, 1e-6, || values(&x.sigmoid()));
    let tanh_ref: Vec<f64> = xv.iter().map(|&v| (v as f64).tanh()).collect();
    at_every_level("tanh", &tanh_ref, 1e-6, || values(&x.tanh()));
}

/// Fused causal attention (forward and backward) matches the f64 composition softmax(QK^T * scale)
/// V at every SIMD level.
#[test]
fn sdpa_forward_and_backward_at_every_level() {
    let (b, h, t, d) = (2, 3, 70, 16);
    let q = randn(&[b, h, t, d], 10);
    let k = randn(&[b, h, t, d], 11);
    let v = randn(&[b, h, t, d], 12);
    let go = randn(&[b, h, t, d], 13);
    let scale = 1.0 / (d as f32).sqrt();
    // Reference: the composition in f64, causal.
    let (qv, kv, vv) = (values(&q), values(&k), values(&v));
    let mut out_ref = vec![0.0f64; qv.len()];
    for p in 0..b * h {
        let base = p * t * d;
        for i in 0..t {
            let scores: Vec<f32> = (0..=i)
                .map(|j| {
                    let s: f64 = (0..d)
                        .map(|c| qv[base + i * d + c] as f64 * kv[base + j * d + c] as f64)
                        .sum();
                    (s * scale as f64) as f32
                })
                .collect();
            let probs = ref_softmax_rows(&scores, i + 1);
            for c in 0..d {
                out_ref[base + i * d + c] = (0..=i)
                    .map(|j| probs[j] * vv[base + j * d + c] as f64)
                    .sum();
            }
        }
    }
    at_every_level("sdpa", &out_ref, 1e-4, || {
        values(
            &scaled_dot_product_attention(&q, &k, &v, scale, true)
                .unwrap()
                .0,
        )
    });
    // Backward: the gradient of sum(out * go) w.r.t. q, checked against the composed kernels.
    let (out, lse) = scaled_dot_product_attention(&q, &k, &v, scale, true).unwrap();
    let scores = q.matmul(&k.transpose(-1, -2).unwrap()).unwrap();
    let probs = scores.causal_softmax(scale).unwrap();
    let dprobs = go.matmul(&v.transpose(-1, -2).unwrap()).unwrap();
    let dscores = causal_softmax_backward(&probs, &dprobs, scale).unwrap();
    let dq_ref: Vec<f64> = values(&dscores.matmul(&k).unwrap())
        .iter()
        .map(|&v| v as f64)
        .collect();
    at_every_level("sdpa_backward dq", &dq_ref, 1e-4, || {
        let grads = scaled_dot_product_attention_backward(&q, &k, &v, &out, &lse, &go, scale, true)
            .unwrap();
        values(&grads.0)
    });
}

/// The int8 GEMM kernel chosen at each SIMD level gives the exact integer reference product.
#[test]
fn int8_gemm_best_kernel_at_every_level() {
    let (m, k, n) = (33, 70, 19);
    let a: Vec<i8> = (0..m * k)
        .map(|i| ((i * 37 % 255) as i32 - 127) as i8)
        .collect();
    let b: Vec<i8> = (0..n * k)
        .map(|i| ((i * 53 % 255) as i32 - 127) as i8)
        .collect();
    let want: Vec<f64> = gemm_i8_reference(&a, &b, m, k, n)
        .iter()
        .map(|&v| v as f64)
        .collect();
    let packed = PackedI8Weights::pack(&b, n, k).unwrap();
    for level in supported_levels() {
        at_simd_level(level, || {
            let kernel = I8Kernel::best();
            assert!(kernel.simd_level() <= level, "{kernel:?} above {level}");
            let mut c = vec![0i32; m * n];
            gemm_i8(&a, m, &packed, &mut c, Parallelism::Sequential).unwrap();
            let got: Vec<f64> = c.iter().map(|&v| v as f64).collect();
            assert_eq!(got, want, "int8 GEMM with {kernel:?} at {level}");
        });
    }
}
