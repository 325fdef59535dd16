//! Int8 inference against `f32` on the same linear layers (group `quant`, FLOP throughput).
//!
//! - `f32/MxKxN`: `nn::linear::Linear` forward under `no_grad` (`x Wᵀ + b`, the `f32` GEMM);
//! - `int8/MxKxN`: `nn::quantized_linear::QuantizedLinear` with the fastest int8 kernel
//!   (AVX-512 VNNI here), timing everything the layer does: quantizing the activations per row,
//!   the int8 GEMM, and dequantizing with the bias;
//! - `int8_avx2/MxKxN`: the same layer forced to the AVX2 kernel (CPUs without VNNI).
//!
//! M rows of activations, a Linear(K, N). Run with
//! `RAYON_NUM_THREADS=2 cargo bench -p benches --bench quant`.

use std::hint::black_box;
use std::time::Duration;

use autograd::{no_grad, Variable};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nn::linear::Linear;
use nn::quantized_linear::QuantizedLinear;
use nn::Module;
use tensor::gemm::Parallelism;
use tensor::gemm_i8::I8Kernel;
use tensor::{Tensor, TensorRng};

/// `(M, K, N)` of the benched layers (the cases of `torch_quant_bench.py`).
const SHAPES: [(usize, usize, usize); 5] = [
    (256, 784, 128),
    (2048, 128, 512),
    (2048, 512, 128),
    (64, 1024, 1024),
    (1, 512, 512),
];

fn quant(c: &mut Criterion) {
    let mut group = c.benchmark_group("quant");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
        let id = format!("{m}x{k}x{n}");
        let linear = Linear::new(k, n, true, &mut TensorRng::new(i as u64));
        let q = QuantizedLinear::from_linear(&linear).unwrap();
        let x = Tensor::rand_normal(&[m, k], 0.0, 1.0, 100 + i as u64).unwrap();
        let xv = Variable::constant(x.clone());
        group.throughput(Throughput::Elements(2 * (m * k * n) as u64));
        group.bench_function(format!("f32/{id}"), |b| {
            b.iter(|| no_grad(|| linear.forward(black_box(&xv)).unwrap()))
        });
        group.bench_function(format!("int8/{id}"), |b| {
            b.iter(|| q.forward_tensor(black_box(&x)).unwrap())
        });
        if I8Kernel::Avx2.is_available() {
            group.bench_function(format!("int8_avx2/{id}"), |b| {
                b.iter(|| {
                    q.forward_with(I8Kernel::Avx2, black_box(&x), Parallelism::Threaded)
                        .unwrap()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, quant);
criterion_main!(benches);
