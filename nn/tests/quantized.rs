//! Grader for int8 inference: `QuantizedLinear` against the `f32` `Linear` within a bound derived
//! from the scales, every kernel agreeing, static calibration, validation of stored parts, the
//! refusal under grad, and a `Linear` quantized in place.

use autograd::{no_grad, Variable};
use nn::activation::ReLU;
use nn::linear::Linear;
use nn::quantized_linear::QuantizedLinear;
use nn::sequential::Sequential;
use nn::Module;
use tensor::gemm::Parallelism;
use tensor::gemm_i8::{ActivationQuant, I8Kernel};
use tensor::quantize::{CalibrationMethod, QuantParams, QuantScheme};
use tensor::{Tensor, TensorRng};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::rand_normal(shape, 0.0, 1.0, seed).unwrap()
}

fn layer(i: usize, o: usize, seed: u64) -> Linear {
    Linear::new(i, o, true, &mut TensorRng::new(seed))
}

/// The worst-case error of the int8 product against the `f32` one, per output, derived from the
/// scales: with `x = x̂ + ex` (`|ex| <= t/2`) and `w = ŵ + ew` (`|ew| <= s/2`),
/// `|x·w - x̂·ŵ| <= t/2 * |w|_1 + s/2 * |x|_1 + k * t * s / 4`, plus `f32` rounding slack.
fn error_bound(x: &[f32], t: f32, w: &[f32], s: f32) -> f32 {
    let l1 = |v: &[f32]| v.iter().map(|a| a.abs()).sum::<f32>();
    let k = x.len() as f32;
    (t / 2.0 * l1(w) + s / 2.0 * l1(x) + k * t * s / 4.0) * 1.001 + 1e-5
}

/// A dynamically quantized Linear stays within the error bound derived from the weight and
/// activation scales of the f32 layer's output.
#[test]
fn dynamic_int8_is_within_the_derived_bound_of_f32() {
    for &(m, k, n, seed) in &[
        (1, 5, 3, 0),
        (17, 64, 33, 1),
        (64, 300, 70, 2),
        (3, 1024, 130, 3),
    ] {
        let lin = layer(k, n, seed);
        let x = randn(&[m, k], seed + 100);
        let want = lin.forward(&Variable::constant(x.clone())).unwrap().value();
        let q = QuantizedLinear::from_linear(&lin).unwrap();
        let got = q.forward_tensor(&x).unwrap();
        assert_eq!(got.shape(), &[m, n]);
        let (xv, wv) = (x.to_vec(), lin.weight.value().to_vec());
        let (got, want) = (got.to_vec(), want.to_vec());
        let mut worst = 0.0f32;
        for i in 0..m {
            let row = &xv[i * k..(i + 1) * k];
            let t = row.iter().fold(0.0f32, |a, v| a.max(v.abs())) / 127.0;
            for j in 0..n {
                let s = q.scales()[j];
                let bound = error_bound(row, t, &wv[j * k..(j + 1) * k], s);
                let err = (got[i * n + j] - want[i * n + j]).abs();
                assert!(
                    err <= bound,
                    "({i}, {j}) of {m}x{k}x{n}: error {err} > bound {bound}"
                );
                worst = worst.max(err / bound);
            }
        }
        // Real int8 arithmetic: not bit-equal to f32, and the bound is not absurdly loose.
        assert!(got != want);
        assert!(worst > 0.01, "worst error / bound = {worst}");
    }
}

/// Every int8 kernel this CPU has, sequential or threaded, gives bit-identical QuantizedLinear
/// outputs.
#[test]
fn every_kernel_and_thread_setting_gives_the_same_bits() {
    let lin = layer(200, 150, 7);
    let q = QuantizedLinear::from_linear(&lin).unwrap();
    let x = randn(&[2, 3, 200], 8);
    let first = q
        .forward_with(I8Kernel::Scalar, &x, Parallelism::Sequential)
        .unwrap();
    assert_eq!(first.shape(), &[2, 3, 150]);
    for kernel in I8Kernel::available() {
        for par in [Parallelism::Sequential, Parallelism::Threaded] {
            let y = q.forward_with(kernel, &x, par).unwrap();
            assert_eq!(y.to_vec(), first.to_vec(), "{kernel:?} {par:?}");
        }
    }
    // A transposed (non-contiguous) input gives the same as its contiguous copy.
    let xt = randn(&[200, 6], 9).transpose(0, 1).unwrap();
    let a = q.forward_tensor(&xt).unwrap();
    let b = q.forward_tensor(&xt.contiguous()).unwrap();
    assert_eq!(a.to_vec(), b.to_vec());
}

/// A QuantizedLinear's int8 weights, scales and bias round-trip through its parts (each row's
/// largest weight maps to +-127) and bad parts are refused.
#[test]
fn parts_round_trip_and_are_validated() {
    let lin = layer(10, 4, 3);
    let q = QuantizedLinear::from_linear(&lin).unwrap();
    assert_eq!((q.in_features(), q.out_features()), (10, 4));
    assert_eq!(q.size_bytes(), 40 + 4 * 4 + 4 * 4);
    assert!(q.weight_i8().iter().all(|&c| (-127..=127).contains(&c)));
    // Each row's largest weight maps to +-127.
    for row in q.weight_i8().chunks(10) {
        assert_eq!(row.iter().map(|c| c.unsigned_abs()).max(), Some(127));
    }
    let deq = q.dequantized_weight().unwrap().to_vec();
    let w = lin.weight.value().to_vec();
    for (j, (a, b)) in deq.chunks(10).zip(w.chunks(10)).enumerate() {
        for (a, b) in a.iter().zip(b) {
            assert!((a - b).abs() <= q.scales()[j] / 2.0 * 1.0001);
        }
    }
    let again = QuantizedLinear::from_parts(
        q.weight_i8().to_vec(),
        [4, 10],
        q.scales().to_vec(),
        q.bias().cloned(),
    )
    .unwrap();
    let x = randn(&[5, 10], 4);
    assert_eq!(
        again.forward_tensor(&x).unwrap().to_vec(),
        q.forward_tensor(&x).unwrap().to_vec()
    );
    // Weights may use the full i8 range (-128 included).
    let full = QuantizedLinear::from_parts(vec![-128; 40], [4, 10], vec![0.01; 4], None).unwrap();
    let y = full
        .forward_tensor(&Tensor::ones(&[1, 10]))
        .unwrap()
        .to_vec();
    // Each input row of ones quantizes to 127: 10 * 127 * -128 * (1/127) * 0.01 = -12.8.
    assert!(y.iter().all(|v| (v + 12.8).abs() < 1e-4), "{y:?}");

    let bad = [
        QuantizedLinear::from_parts(vec![0; 39], [4, 10], vec![1.0; 4], None),
        QuantizedLinear::from_parts(vec![0; 40], [4, 10], vec![1.0; 3], None),
        QuantizedLinear::from_parts(vec![0; 40], [4, 10], vec![1.0, 0.0, 1.0, 1.0], None),
        QuantizedLinear::from_parts(vec![0; 40], [4, 10], vec![f32::NAN; 4], None),
        QuantizedLinear::from_parts(vec![0; 40], [4, 10], vec![1.0; 4], Some(Tensor::ones(&[5]))),
    ];
    for err in bad {
        let err = err.unwrap_err();
        assert!(err.to_string().starts_with("QuantizedLinear"), "{err}");
    }
    assert!(QuantizedLinear::from_weight(&Tensor::ones(&[4]), None).is_err());
    let err = q.forward_tensor(&Tensor::ones(&[2, 9])).unwrap_err();
    assert!(err.to_string().contains("[2, 9]"), "{err}");
    let err = q
        .forward_tensor(&Tensor::from_vec(vec![f32::INFINITY; 10], &[1, 10]).unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("quantized_linear"), "{err}");
}

/// A QuantizedLinear has no trainable parameters and refuses an input that needs a gradient,
/// pointing to no_grad; it runs under no_grad.
#[test]
fn refuses_to_run_where_a_graph_is_needed() {
    let lin = layer(6, 3, 5);
    let q = QuantizedLinear::from_linear(&lin).unwrap();
    assert!(q.named_parameters().is_empty());
    let x = Variable::parameter(randn(&[2, 6], 6));
    let err = q.forward(&x).unwrap_err();
    assert!(err.to_string().contains("no_grad"), "{err}");
    // Under no_grad, or on an input that needs no gradient, it runs.
    let y = no_grad(|| q.forward(&x)).unwrap();
    assert!(!y.requires_grad());
    let c = Variable::constant(x.value());
    assert_eq!(q.forward(&c).unwrap().value().to_vec(), y.value().to_vec());
}

/// Static calibration fixes one activation scale from sample batches (max |x| / 127) and clamps
/// larger inputs instead of rescaling.
#[test]
fn static_calibration_fixes_one_scale_and_clamps() {
    let lin = layer(32, 8, 11);
    let mut q = QuantizedLinear::from_linear(&lin).unwrap();
    let batches: Vec<Tensor> = (0..4).map(|s| randn(&[16, 32], 20 + s)).collect();
    let p = q.calibrate(&batches, CalibrationMethod::MinMax).unwrap();
    let top = batches
        .iter()
        .flat_map(|b| b.to_vec())
        .fold(0.0f32, |a, v| a.max(v.abs()));
    assert!((p.scale * 127.0 - top).abs() < 1e-4 * top);
    assert_eq!(q.activation(), ActivationQuant::Static(p.scale));
    assert_eq!(q.size_bytes(), 32 * 8 + 4 * 8 + 4 * 8 + 4);
    // Calibrated inputs: close to f32 (bound with the static scale).
    let x = &batches[0];
    let want = lin
        .forward(&Variable::constant(x.clone()))
        .unwrap()
        .value()
        .to_vec();
    let got = q.forward_tensor(x).unwrap().to_vec();
    let (xv, wv) = (x.to_vec(), lin.weight.value().to_vec());
    for i in 0..16 {
        for j in 0..8 {
            let bound = error_bound(
                &xv[i * 32..(i + 1) * 32],
                p.scale,
                &wv[j * 32..(j + 1) * 32],
                q.scales()[j],
            );
            assert!((got[i * 8 + j] - want[i * 8 + j]).abs() <= bound);
        }
    }
    // Out-of-range values clamp: 10x the calibrated range gives the same as the edge of it.
    let edge = Tensor::full(&[1, 32], p.scale * 127.0);
    let far = Tensor::full(&[1, 32], p.scale * 1270.0);
    assert_eq!(
        q.forward_tensor(&edge).unwrap().to_vec(),
        q.forward_tensor(&far).unwrap().to_vec()
    );
    // A percentile clips the tail: smaller scale than min/max.
    let pp = q
        .calibrate(&batches, CalibrationMethod::Percentile(99.0))
        .unwrap();
    assert!(pp.scale < p.scale);
    // Back to dynamic, and asymmetric parameters are refused.
    q.set_static_activation(None).unwrap();
    assert_eq!(q.activation(), ActivationQuant::Dynamic);
    let asym = QuantParams::from_min_max(-1.0, 3.0, QuantScheme::Asymmetric).unwrap();
    assert!(q.set_static_activation(Some(asym)).is_err());
    assert!(q
        .calibrate(&[Tensor::ones(&[2, 5])], CalibrationMethod::MinMax)
        .is_err());
}

/// A Linear quantized in place runs the int8 path (same result as the QuantizedLinear) and
/// dequantizing brings back an f32 layer.
#[test]
fn linear_quantized_in_place_runs_int8_and_can_go_back() {
    let mut lin = layer(20, 12, 13);
    let x = Variable::constant(randn(&[4, 20], 14));
    let f32_out = no_grad(|| lin.forward(&x)).unwrap().value().to_vec();
    assert!(lin.quantized().is_none());
    lin.quantize_dynamic().unwrap();
    assert_eq!(
        format!("{lin:?}"),
        "Linear(in_features=20, out_features=12, bias=true, int8)"
    );
    let q_out = no_grad(|| lin.forward(&x)).unwrap().value().to_vec();
    let direct = lin
        .quantized()
        .unwrap()
        .forward_tensor(&x.value())
        .unwrap()
        .to_vec();
    assert_eq!(q_out, direct);
    assert_ne!(q_out, f32_out);
    for (a, b) in q_out.iter().zip(&f32_out) {
        assert!((a - b).abs() < 0.05, "{a} vs {b}");
    }
    // Its parameters require grad: with grad mode on, the int8 path refuses.
    assert!(lin.forward(&x).is_err());
    // Parameters are unchanged and still listed.
    assert_eq!(lin.named_parameters().len(), 2);
    // A layer of another shape is refused; None goes back to f32.
    let other = QuantizedLinear::from_linear(&layer(20, 5, 1)).unwrap();
    assert!(lin.set_quantized(Some(other)).is_err());
    lin.set_quantized(None).unwrap();
    assert_eq!(lin.forward(&x).unwrap().value().to_vec(), f32_out);
}

/// An int8 784-64-10 MLP keeps logits close to the f32 model's and mostly the same predicted class.
#[test]
fn a_small_mlp_keeps_its_predictions() {
    // 784-64-10 with ReLU, random weights: int8 logits stay close and the argmax mostly agrees.
    let net = Sequential::new()
        .add(layer(784, 64, 30))
        .add(ReLU)
        .add(layer(64, 10, 31));
    let x = Variable::constant(Tensor::rand_uniform(&[64, 784], 0.0, 1.0, 32).unwrap());
    let want = no_grad(|| net.forward(&x)).unwrap().value();
    let quantized = Sequential::new()
        .add(QuantizedLinear::from_linear(&layer(784, 64, 30)).unwrap())
        .add(ReLU)
        .add(QuantizedLinear::from_linear(&layer(64, 10, 31)).unwrap());
    let got = no_grad(|| quantized.forward(&x)).unwrap().value();
    let argmax = |t: &Tensor| t.argmax(1, false).unwrap().to_vec();
    let agree = argmax(&want)
        .iter()
        .zip(argmax(&got))
        .filter(|(a, b)| *a == b)
        .count();
    assert!(agree >= 60, "{agree}/64 predictions agree");
}
