//! Grader for int8 quantization and the int8 GEMM: round-trip bounds, parameter edge cases, and
//! every GEMM kernel the CPU supports against the plain `i32` reference, bit for bit.

use tensor::gemm::Parallelism;
use tensor::gemm_i8::{
    gemm_i8, gemm_i8_reference, gemm_i8_with, quantized_linear_with, ActivationQuant, I8Kernel,
    PackedI8Weights,
};
use tensor::quantize::{
    quantize, quantize_with, CalibrationMethod, Granularity, QuantParams, QuantScheme,
    RangeObserver,
};
use tensor::Tensor;

/// A small deterministic generator (xorshift), so the tests need no RNG crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn i8_in(&mut self, lo: i32, hi: i32) -> i8 {
        (lo + (self.next() % (hi - lo + 1) as u64) as i32) as i8
    }
    fn codes(&mut self, len: usize, lo: i32, hi: i32) -> Vec<i8> {
        (0..len).map(|_| self.i8_in(lo, hi)).collect()
    }
}

const SCHEMES: [QuantScheme; 2] = [QuantScheme::Symmetric, QuantScheme::Asymmetric];

fn max_round_trip_error(t: &Tensor, q: &tensor::quantize::QuantizedTensor) -> Vec<f32> {
    // Per parameter set: the largest |x - dequant(quant(x))| over its elements.
    let back = q.dequantize().unwrap().to_vec();
    let x = t.to_vec();
    let groups = q.params().len();
    let per = x.len() / groups.max(1);
    (0..groups)
        .map(|g| {
            x[g * per..(g + 1) * per]
                .iter()
                .zip(&back[g * per..(g + 1) * per])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max)
        })
        .collect()
}

/// Quantizing to int8 and back moves no value by more than half a quantization step (scale / 2),
/// for both schemes and granularities, and the codes are really 8-bit.
#[test]
fn round_trip_error_is_at_most_half_a_step() {
    for seed in 0..4 {
        let t = Tensor::rand_normal(&[13, 37], 0.3, 2.0, seed).unwrap();
        for scheme in SCHEMES {
            for granularity in [Granularity::PerTensor, Granularity::PerChannel] {
                let q = quantize(&t, scheme, granularity).unwrap();
                assert_eq!(q.shape(), &[13, 37]);
                let errs = max_round_trip_error(&t, &q);
                for (err, p) in errs.iter().zip(q.params()) {
                    assert!(
                        *err <= p.scale * 0.5 * (1.0 + 1e-4),
                        "{scheme:?} {granularity:?}: error {err} > scale/2 = {}",
                        p.scale / 2.0
                    );
                    // The error is not trivially zero: codes really are 8-bit.
                    assert!(p.scale > 1e-3);
                }
                let (lo, hi) = scheme.code_range();
                assert!(q.data().iter().all(|&c| (lo..=hi).contains(&(c as i32))));
            }
        }
    }
}

/// With one row 100x larger than another, per-channel scales reconstruct the small row far better
/// than one per-tensor scale.
#[test]
fn per_channel_beats_per_tensor_on_uneven_rows() {
    // Row 0 is 100x larger than row 1: a single scale wastes row 1's resolution.
    let mut v: Vec<f32> = (0..64).map(|i| (i as f32 * 0.7).sin() * 100.0).collect();
    v.extend((0..64).map(|i| (i as f32 * 0.3).cos()));
    let t = Tensor::from_vec(v, &[2, 64]).unwrap();
    let pt = quantize(&t, QuantScheme::Symmetric, Granularity::PerTensor).unwrap();
    let pc = quantize(&t, QuantScheme::Symmetric, Granularity::PerChannel).unwrap();
    let row1 = |q: &tensor::quantize::QuantizedTensor| {
        let back = q.dequantize().unwrap().to_vec();
        (64..128)
            .map(|i| (back[i] - t.to_vec()[i]).abs())
            .fold(0.0, f32::max)
    };
    assert_eq!(pc.params().len(), 2);
    assert!(
        row1(&pc) * 20.0 < row1(&pt),
        "{} vs {}",
        row1(&pc),
        row1(&pt)
    );
}

/// All-zero and constant tensors (and an all-zero row per channel) get a finite positive scale and
/// round-trip within half a step.
#[test]
fn constant_and_zero_tensors_do_not_divide_by_zero() {
    for scheme in SCHEMES {
        let zeros = Tensor::zeros(&[3, 5]);
        let q = quantize(&zeros, scheme, Granularity::PerTensor).unwrap();
        assert!(q.params()[0].scale > 0.0 && q.params()[0].scale.is_finite());
        assert_eq!(q.dequantize().unwrap().to_vec(), vec![0.0; 15]);

        let c = Tensor::from_vec(vec![-2.5; 8], &[2, 4]).unwrap();
        let q = quantize(&c, scheme, Granularity::PerTensor).unwrap();
        let err = max_round_trip_error(&c, &q)[0];
        assert!(err <= q.params()[0].scale / 2.0 * (1.0 + 1e-4), "{err}");

        // An all-zero row next to a normal one, per channel.
        let mut v = vec![0.0f32; 6];
        v.extend([1.0, -3.0, 0.5, 2.0, 0.0, -0.25]);
        let t = Tensor::from_vec(v, &[2, 6]).unwrap();
        let q = quantize(&t, scheme, Granularity::PerChannel).unwrap();
        assert_eq!(q.params()[0].scale, 1.0);
        let back = q.dequantize().unwrap().to_vec();
        assert_eq!(&back[..6], &[0.0; 6]);
        let errs = max_round_trip_error(&t, &q);
        assert!(errs[1] <= q.params()[1].scale / 2.0 * (1.0 + 1e-4));
    }
}

/// Infinity or NaN in the input is an error naming quantize (or calibrate) and saying non-finite,
/// never a garbage scale.
#[test]
fn non_finite_input_is_an_error_naming_the_op() {
    for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
        let t = Tensor::from_vec(vec![1.0, bad, 2.0], &[3]).unwrap();
        let err = quantize(&t, QuantScheme::Symmetric, Granularity::PerTensor).unwrap_err();
        assert_eq!(err.op(), "quantize");
        assert!(err.to_string().contains("non-finite"), "{err}");
        let p = QuantParams::symmetric(0.1).unwrap();
        assert!(quantize_with(&t, &[p], Granularity::PerTensor).is_err());
        let mut obs = RangeObserver::new();
        assert_eq!(obs.observe(&t).unwrap_err().op(), "calibrate");
        assert!(QuantParams::from_min_max(0.0, bad, QuantScheme::Asymmetric).is_err());
    }
    assert!(QuantParams::from_min_max(2.0, 1.0, QuantScheme::Symmetric).is_err());
    assert!(QuantParams::symmetric(0.0).is_err());
    let t = Tensor::zeros(&[4, 2]);
    let p = QuantParams::symmetric(0.1).unwrap();
    let err = quantize_with(&t, &[p; 3], Granularity::PerChannel).unwrap_err();
    assert!(err.to_string().contains("4 parameter set"), "{err}");
}

/// With fixed parameters, values outside the calibrated range clamp to -127 / 127 and the rest
/// round to the hand-computed codes.
#[test]
fn given_params_clamp_out_of_range_values() {
    let p = QuantParams::from_min_max(-1.0, 1.0, QuantScheme::Symmetric).unwrap();
    let t = Tensor::from_vec(vec![-5.0, -1.0, 0.0, 0.25, 5.0], &[5]).unwrap();
    let q = quantize_with(&t, &[p], Granularity::PerTensor).unwrap();
    assert_eq!(q.data(), &[-127, -127, 0, 32, 127]);
}

/// A percentile calibration ignores one huge outlier that min-max calibration follows, and the
/// histogram range grows to hold it.
#[test]
fn observer_percentile_ignores_outliers() {
    let mut obs = RangeObserver::new();
    for seed in 0..4 {
        // Uniform in [-1, 1] ...
        let t = Tensor::rand_uniform(&[1000], -1.0, 1.0, seed).unwrap();
        obs.observe(&t).unwrap();
    }
    // ... plus one huge outlier, which doubles the histogram range several times.
    obs.observe(&Tensor::from_vec(vec![1000.0], &[1]).unwrap())
        .unwrap();
    assert_eq!(obs.count(), 4001);
    let minmax = obs.params(CalibrationMethod::MinMax).unwrap();
    assert!((minmax.scale - 1000.0 / 127.0).abs() < 1e-3);
    let p = obs.params(CalibrationMethod::Percentile(99.9)).unwrap();
    // One bin is 1024/2048 = 0.5 wide after the range grew to 1024: within a bin of 1.0.
    let top = p.scale * 127.0;
    assert!((0.9..=1.5).contains(&top), "{top}");
    assert!(obs.params(CalibrationMethod::Percentile(0.0)).is_err());
    assert!(RangeObserver::new()
        .params(CalibrationMethod::MinMax)
        .is_err());
}

/// Every kernel on every shape against the reference, with and without threads.
fn check_all_kernels(a: &[i8], b: &[i8], m: usize, k: usize, n: usize) {
    let want = gemm_i8_reference(a, b, m, k, n);
    let packed = PackedI8Weights::pack(b, n, k).unwrap();
    let kernels = I8Kernel::available();
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512vnni") {
        assert_eq!(kernels.len(), 3, "this CPU should run every kernel");
    }
    for kernel in kernels {
        for par in [Parallelism::Sequential, Parallelism::Threaded] {
            let mut c = vec![i32::MIN; m * n];
            gemm_i8_with(kernel, a, m, &packed, &mut c, par).unwrap();
            assert!(
                c == want,
                "{kernel:?} {par:?} differs from the reference on {m}x{k}x{n}"
            );
        }
    }
}

/// Every int8 GEMM kernel gives exactly the integer reference product on random codes over odd and
/// threaded shapes.
#[test]
fn gemm_i8_is_exact_on_random_and_odd_shapes() {
    let mut rng = Lcg(0x9e37_79b9_7f4a_7c15);
    for &(m, k, n) in &[
        (1, 1, 1),
        (1, 512, 512),
        (3, 5, 7),
        (5, 17, 65),
        (7, 130, 129),
        (33, 64, 64),
        (64, 257, 100),
        // Large enough to take both threaded splits (rows, then panels).
        (200, 700, 130),
        (20, 1024, 1000),
    ] {
        let a = rng.codes(m * k, -127, 127);
        let b = rng.codes(n * k, -128, 127);
        check_all_kernels(&a, &b, m, k, n);
    }
}

/// Codes at +-127 (and -128 weights) in every sign combination give the exact product: no kernel
/// saturates its intermediate sums.
#[test]
fn gemm_i8_is_exact_on_extreme_values() {
    // Saturation would show here: every pair of products at its largest magnitude, for each sign
    // combination (maddubs would clip 2 * 128 * 127 if the activations could reach -128 or 255).
    let (m, k, n) = (6, 300, 70);
    for (av, bv) in [
        (127, -128),
        (-127, -128),
        (127, 127),
        (-127, 127),
        (-127, -127),
    ] {
        let a = vec![av as i8; m * k];
        let b = vec![bv as i8; n * k];
        check_all_kernels(&a, &b, m, k, n);
        let want = av * bv * k as i32;
        assert_eq!(gemm_i8_reference(&a, &b, m, k, n)[0], want);
    }
    // Alternating extremes, so neighbouring pairs have mixed signs.
    let a: Vec<i8> = (0..m * k)
        .map(|i| if i % 3 == 0 { -127 } else { 127 })
        .collect();
    let b: Vec<i8> = (0..n * k)
        .map(|i| match i % 4 {
            0 => -128,
            1 => 127,
            2 => 0,
            _ => -1,
        })
        .collect();
    check_all_kernels(&a, &b, m, k, n);
}

/// An activation of -128, wrong buffer lengths, a bad pack, or missing or non-finite dequantization
/// scales are errors, not wrong results.
#[test]
fn gemm_i8_refuses_bad_input() {
    let b = PackedI8Weights::pack(&[1i8; 6], 2, 3).unwrap();
    let mut c = vec![0i32; 2];
    let err = gemm_i8(&[1, -128, 0], 1, &b, &mut c, Parallelism::Sequential).unwrap_err();
    assert!(err.to_string().contains("-127, 127"), "{err}");
    assert!(gemm_i8(&[1, 2], 1, &b, &mut c, Parallelism::Sequential).is_err());
    assert!(gemm_i8(&[1, 2, 3], 1, &b, &mut c[..1], Parallelism::Sequential).is_err());
    assert!(PackedI8Weights::pack(&[1i8; 5], 2, 3).is_err());
    assert!(b.clone().with_dequant(&[1.0], None).is_err());
    assert!(b.clone().with_dequant(&[1.0, -1.0], None).is_err());
    assert!(b.with_dequant(&[1.0, 1.0], Some(&[f32::NAN, 0.0])).is_err());
}

/// The fused layer computed from primitives: per-row symmetric codes, the reference GEMM, then
/// `sum * (sa * sw) + bias` with one fused multiply-add.
fn fused_reference(
    x: &[f32],
    (m, k): (usize, usize),
    w: &[i8],
    n: usize,
    sw: &[f32],
    bias: &[f32],
    act: ActivationQuant,
) -> Vec<f32> {
    let mut codes = Vec::new();
    let mut sa = Vec::new();
    for row in x.chunks(k) {
        let top = row.iter().fold(0.0f32, |t, v| t.max(v.abs()));
        let s = match act {
            ActivationQuant::Dynamic if top > 0.0 => top / 127.0,
            ActivationQuant::Dynamic => 1.0,
            ActivationQuant::Static(s) => s,
        };
        let inv = 1.0 / s;
        codes.extend(
            row.iter()
                .map(|v| (v * inv).round_ties_even().clamp(-127.0, 127.0) as i8),
        );
        sa.push(s);
    }
    let acc = gemm_i8_reference(&codes, w, m, k, n);
    (0..m * n)
        .map(|idx| {
            let (i, j) = (idx / n, idx % n);
            (acc[idx] as f32).mul_add(sa[i] * sw[j], bias[j])
        })
        .collect()
}

/// The fused int8 linear (quantize activations, int8 GEMM, dequantize, bias) equals the same steps
/// done separately, on every kernel.
#[test]
fn fused_linear_matches_its_composition_on_every_kernel() {
    let mut rng = Lcg(42);
    for &(m, k, n) in &[
        (1, 7, 3),
        (5, 33, 65),
        (130, 64, 70),
        (260, 520, 130),
        (16, 1100, 1000),
    ] {
        let x: Vec<f32> = (0..m * k)
            .map(|_| (rng.next() % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        let w = rng.codes(n * k, -127, 127);
        let sw: Vec<f32> = (0..n).map(|j| 0.01 + j as f32 * 1e-4).collect();
        let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.1 - 1.0).collect();
        let packed = PackedI8Weights::pack(&w, n, k)
            .unwrap()
            .with_dequant(&sw, Some(&bias))
            .unwrap();
        for act in [ActivationQuant::Dynamic, ActivationQuant::Static(0.004)] {
            let want = fused_reference(&x, (m, k), &w, n, &sw, &bias, act);
            for kernel in I8Kernel::available() {
                for par in [Parallelism::Sequential, Parallelism::Threaded] {
                    let mut out = vec![f32::NAN; m * n];
                    quantized_linear_with(kernel, &x, m, &packed, act, &mut out, par).unwrap();
                    assert!(
                        out == want,
                        "{kernel:?} {par:?} {act:?} differs on {m}x{k}x{n}"
                    );
                }
            }
        }
    }
}

/// The fused int8 linear refuses weights without dequantization scales and non-finite inputs with a
/// message naming the cause.
#[test]
fn fused_linear_refuses_non_finite_input_and_missing_scales() {
    let w = PackedI8Weights::pack(&[1i8; 8], 2, 4).unwrap();
    let mut out = vec![0.0; 2];
    let x = [1.0, 2.0, 3.0, 4.0];
    let err = quantized_linear_with(
        I8Kernel::Scalar,
        &x,
        1,
        &w,
        ActivationQuant::Dynamic,
        &mut out,
        Parallelism::Sequential,
    )
    .unwrap_err();
    assert!(err.to_string().contains("with_dequant"), "{err}");
    let w = w.with_dequant(&[1.0, 1.0], None).unwrap();
    for kernel in I8Kernel::available() {
        let err = quantized_linear_with(
            kernel,
            &[1.0, f32::NAN, 0.0, 0.0],
            1,
            &w,
            ActivationQuant::Dynamic,
            &mut out,
            Parallelism::Sequential,
        )
        .unwrap_err();
        assert_eq!(err.op(), "quantized_linear");
        assert!(err.to_string().contains("NaN"), "{err}");
    }
}
