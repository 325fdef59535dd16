//! The fused kernels on GPT-sized shapes (group `kernels`, element throughput).
//!
//! Run with `RAYON_NUM_THREADS=2 cargo bench -p benches --bench kernels`. Shapes follow the
//! small GPT of the course: batch 12, 64 positions, width 128, 4 heads of 64x64 attention scores,
//! a 65-character vocabulary. `fwd_bwd` ids time one forward and its backward kernel together,
//! with a fixed upstream gradient, as `../shared/bench/torch_microops.py` does for PyTorch.
//!
//! Allocation note: a `fwd_bwd` iteration on `12x4x64x64` frees two 786 KB buffers at once,
//! which makes glibc trim the heap and fault the pages back in on the next iteration (about
//! 550 us here, several times the kernels' own cost). To time the kernels alone, run with
//! `MALLOC_TRIM_THRESHOLD_=67108864 MALLOC_MMAP_THRESHOLD_=67108864`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tensor::causal_softmax::causal_softmax_backward;
use tensor::cross_entropy::{cross_entropy, cross_entropy_backward};
use tensor::layer_norm::{layer_norm, layer_norm_backward};
use tensor::softmax::{log_softmax_backward, softmax_backward};
use tensor::{Tensor, TensorRng};

/// `12x4x64x64` for the shape `[12, 4, 64, 64]`.
fn id(name: &str, shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("{name}/{}", dims.join("x"))
}

fn kernels(c: &mut Criterion) {
    let mut rng = TensorRng::new(0);
    let mut group = c.benchmark_group("kernels");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));

    for shape in [&[12, 64, 128][..], &[12, 4, 64, 64]] {
        let x = rng.normal(shape, 0.0, 1.0).unwrap();
        let g = rng.normal(shape, 0.0, 1.0).unwrap();
        group.throughput(Throughput::Elements(x.numel() as u64));
        group.bench_function(id("softmax_fwd", shape), |b| {
            b.iter(|| black_box(&x).softmax(-1).unwrap())
        });
        group.bench_function(id("softmax_fwd_bwd", shape), |b| {
            b.iter(|| {
                let y = black_box(&x).softmax(-1).unwrap();
                softmax_backward(&y, black_box(&g), -1).unwrap()
            })
        });
    }

    let shape = [12, 64, 128];
    let x = rng.normal(&shape, 0.0, 1.0).unwrap();
    let g = rng.normal(&shape, 0.0, 1.0).unwrap();
    let w = Tensor::ones(&[128]);
    let bias = Tensor::zeros(&[128]);
    group.throughput(Throughput::Elements(x.numel() as u64));
    group.bench_function(id("log_softmax_fwd", &shape), |b| {
        b.iter(|| black_box(&x).log_softmax(-1).unwrap())
    });
    group.bench_function(id("log_softmax_fwd_bwd", &shape), |b| {
        b.iter(|| {
            let y = black_box(&x).log_softmax(-1).unwrap();
            log_softmax_backward(&y, black_box(&g), -1).unwrap()
        })
    });
    group.bench_function(id("layer_norm_fwd", &shape), |b| {
        b.iter(|| layer_norm(black_box(&x), Some(&w), Some(&bias), 1e-5).unwrap())
    });
    group.bench_function(id("layer_norm_fwd_bwd", &shape), |b| {
        b.iter(|| {
            let (_, cache) = layer_norm(black_box(&x), Some(&w), Some(&bias), 1e-5).unwrap();
            layer_norm_backward(&x, Some(&w), &cache, black_box(&g)).unwrap()
        })
    });

    let shape = [12, 4, 64, 64];
    let x = rng.normal(&shape, 0.0, 1.0).unwrap();
    let g = rng.normal(&shape, 0.0, 1.0).unwrap();
    let scale = 1.0 / (32f32).sqrt();
    group.throughput(Throughput::Elements(x.numel() as u64));
    group.bench_function(id("causal_softmax_fwd", &shape), |b| {
        b.iter(|| black_box(&x).causal_softmax(scale).unwrap())
    });
    group.bench_function(id("causal_softmax_fwd_bwd", &shape), |b| {
        b.iter(|| {
            let y = black_box(&x).causal_softmax(scale).unwrap();
            causal_softmax_backward(&y, black_box(&g), scale).unwrap()
        })
    });

    // Next-token loss of the character GPT: 12 x 64 positions, 65 classes.
    let shape = [768, 65];
    let logits = rng.normal(&shape, 0.0, 1.0).unwrap();
    let targets: Vec<usize> = (0..768).map(|_| rng.below(65)).collect();
    group.throughput(Throughput::Elements(logits.numel() as u64));
    group.bench_function(id("cross_entropy_fwd_bwd", &shape), |b| {
        b.iter(|| {
            let (_, cache) = cross_entropy(black_box(&logits), &targets, None, 0.0).unwrap();
            cross_entropy_backward(&cache, &targets, None, 0.0, 1.0).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
