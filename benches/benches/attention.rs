//! Causal attention forward + backward (group `attention`), q, k, v given as `(B, H, T, D)`
//! parameters and a fixed upstream gradient, like PyTorch's
//! `scaled_dot_product_attention(q, k, v, is_causal=True).backward(g)`.
//!
//! - `causal_fwd_bwd/BxHxTxD`: the project's path, `nn::attention::scaled_dot_product_attention`
//!   with `AttentionMask::Causal` (one fused graph node, `tensor::sdpa`);
//! - `composed_fwd_bwd/BxHxTxD`: the same math as three graph nodes (matmul, fused causal
//!   softmax, matmul), the path the fused kernel replaced, kept for comparison.
//!
//! Throughput counts the FLOPs of the unmasked products (2 in forward, 4 in backward, each
//! `2 * B * H * T * T * D`), like a dense attention would do them.
//!
//! Run with `RAYON_NUM_THREADS=2 cargo bench -p benches --bench attention`.
//!
//! Allocation note: each iteration allocates the output and the three gradients afresh
//! (1.6 MB on the small shape, 16 MB on the large one) and frees them at the next `zero_grad`;
//! glibc then returns the pages to the OS and the next iteration faults them in again. Measured
//! (2 threads, quiet machine): 1.08 ms and 11.5 ms as is, 0.53 ms and 6.5 ms with
//! `MALLOC_TRIM_THRESHOLD_=67108864 MALLOC_MMAP_THRESHOLD_=67108864` (what
//! `models::tune_allocator` sets for the training binaries). PyTorch's SDPA does not change with
//! these variables (about 1.0-1.1 ms and 19-20 ms).

use std::hint::black_box;
use std::time::Duration;

use autograd::Variable;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nn::attention::{scaled_dot_product_attention, AttentionMask};
use tensor::Tensor;

/// `(B, H, T, D)` of the benched problems: nanoGPT's CPU Shakespeare config and a larger one.
const SHAPES: [(usize, usize, usize, usize); 2] = [(12, 4, 64, 32), (32, 8, 128, 32)];

fn composed(q: &Variable, k: &Variable, v: &Variable) -> Variable {
    let d = q.shape()[3];
    let scores = q.matmul(&k.transpose(-1, -2).unwrap()).unwrap();
    let p = scores.causal_softmax(1.0 / (d as f32).sqrt()).unwrap();
    p.matmul(v).unwrap()
}

fn fused(q: &Variable, k: &Variable, v: &Variable) -> Variable {
    scaled_dot_product_attention(q, k, v, &AttentionMask::Causal).unwrap()
}

fn attention(c: &mut Criterion) {
    let mut group = c.benchmark_group("attention");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (i, &(b, h, t, d)) in SHAPES.iter().enumerate() {
        let shape = [b, h, t, d];
        let seed = 10 * i as u64;
        let leaf =
            |s: u64| Variable::parameter(Tensor::rand_normal(&shape, 0.0, 1.0, seed + s).unwrap());
        let (q, k, v) = (leaf(0), leaf(1), leaf(2));
        let grad = Tensor::rand_normal(&shape, 0.0, 1.0, seed + 3).unwrap();
        group.throughput(Throughput::Elements(6 * 2 * (b * h * t * t * d) as u64));
        type Path = fn(&Variable, &Variable, &Variable) -> Variable;
        for (name, path) in [
            ("causal_fwd_bwd", fused as Path),
            ("composed_fwd_bwd", composed as Path),
        ] {
            group.bench_function(format!("{name}/{b}x{h}x{t}x{d}"), |bench| {
                bench.iter(|| {
                    for p in [&q, &k, &v] {
                        p.zero_grad();
                    }
                    path(&q, &k, &v).backward_with(grad.clone()).unwrap();
                    black_box(q.grad());
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, attention);
criterion_main!(benches);
