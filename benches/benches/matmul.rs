//! GEMM throughput of `Tensor::matmul` on the project's shapes (group `matmul`, FLOP throughput).
//!
//! Run with `RAYON_NUM_THREADS=2 cargo bench -p benches --bench matmul`. With
//! `--features compare-backends`, a second group `backends` times the two candidate kernels
//! (the `gemm` crate and ndarray's `matrixmultiply`) called directly on preallocated outputs;
//! that is how the kernel behind `tensor::gemm` was chosen (numbers in `benches/README.md`).

use std::hint::black_box;
use std::time::Duration;

use benches::MATMUL_SHAPES;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tensor::Tensor;

fn matmul(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul");
    for (i, shape) in MATMUL_SHAPES.iter().enumerate() {
        let a = Tensor::rand_normal(&shape.lhs_shape(), 0.0, 1.0, 2 * i as u64).unwrap();
        let b = Tensor::rand_normal(&shape.rhs_shape(), 0.0, 1.0, 2 * i as u64 + 1).unwrap();
        group.throughput(Throughput::Elements(shape.flops()));
        group.bench_function(shape.id, |bench| {
            bench.iter(|| black_box(&a).matmul(black_box(&b)).unwrap())
        });
    }
    group.finish();
}

#[cfg(feature = "compare-backends")]
fn backends(c: &mut Criterion) {
    use rayon::prelude::*;

    let threads = rayon::current_num_threads();
    let mut group = c.benchmark_group("backends");
    for shape in MATMUL_SHAPES {
        let (m, k, n, batch) = (shape.m, shape.k, shape.n, shape.batch);
        let a = vec![0.5f32; batch * m * k];
        let b = vec![0.25f32; batch * k * n];
        let mut out = vec![0.0f32; batch * m * n];
        group.throughput(Throughput::Elements(shape.flops()));
        // The gemm crate: one threaded call, or a rayon loop of single-threaded calls for a batch.
        group.bench_function(format!("gemm/{}", shape.id), |bench| {
            bench.iter(|| {
                let one = |a: &[f32], b: &[f32], c: &mut [f32], par| {
                    // SAFETY: contiguous row-major buffers of exactly m*k, k*n and m*n elements.
                    unsafe {
                        gemm::gemm(
                            m,
                            n,
                            k,
                            c.as_mut_ptr(),
                            1,
                            n as isize,
                            false,
                            a.as_ptr(),
                            1,
                            k as isize,
                            b.as_ptr(),
                            1,
                            n as isize,
                            1.0,
                            1.0,
                            false,
                            false,
                            false,
                            par,
                        )
                    }
                };
                if batch == 1 {
                    one(&a, &b, &mut out, gemm::Parallelism::Rayon(threads));
                } else {
                    a.par_chunks(m * k)
                        .zip(b.par_chunks(k * n))
                        .zip(out.par_chunks_mut(m * n))
                        .for_each(|((a, b), c)| one(a, b, c, gemm::Parallelism::None));
                }
                black_box(&out);
            })
        });
        // The project's entry point on the same preallocated output (what `matmul` adds on top
        // is the output allocation and the shape logic).
        group.bench_function(format!("entry/{}", shape.id), |bench| {
            use tensor::gemm::{gemm_batch, MatRef, Parallelism};
            let lhs: Vec<MatRef<'_>> = a
                .chunks(m * k)
                .map(|x| MatRef::row_major(x, m, k).unwrap())
                .collect();
            let rhs: Vec<MatRef<'_>> = b
                .chunks(k * n)
                .map(|x| MatRef::row_major(x, k, n).unwrap())
                .collect();
            bench.iter(|| {
                gemm_batch(&lhs, &rhs, &mut out, false, Parallelism::Threaded).unwrap();
                black_box(&out);
            })
        });
        // matrixmultiply (ndarray's backend), threaded by its own pool (MATMUL_NUM_THREADS).
        group.bench_function(format!("matrixmultiply/{}", shape.id), |bench| {
            bench.iter(|| {
                for ((a, b), c) in a
                    .chunks(m * k)
                    .zip(b.chunks(k * n))
                    .zip(out.chunks_mut(m * n))
                {
                    // SAFETY: contiguous row-major buffers of exactly m*k, k*n and m*n elements.
                    unsafe {
                        matrixmultiply::sgemm(
                            m,
                            k,
                            n,
                            1.0,
                            a.as_ptr(),
                            k as isize,
                            1,
                            b.as_ptr(),
                            n as isize,
                            1,
                            0.0,
                            c.as_mut_ptr(),
                            n as isize,
                            1,
                        )
                    }
                }
                black_box(&out);
            })
        });
    }
    group.finish();
}

#[cfg(not(feature = "compare-backends"))]
fn backends(_: &mut Criterion) {}

fn config() -> Criterion {
    // Short measurements: the whole bench runs in about a minute on 2 cores.
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = matmul, backends
}
criterion_main!(benches);
