//! Forward vs forward+backward of a 2-layer MLP (batch 64, 784-128-10, ReLU, cross-entropy):
//! the backward should cost at most about 2.5x the forward (two GEMMs per forward GEMM plus the
//! elementwise work). Built from autograd ops directly so the bench measures the engine.

use autograd::{no_grad, Variable};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tensor::{Tensor, TensorRng};

struct Mlp {
    w1: Variable,
    b1: Variable,
    w2: Variable,
    b2: Variable,
}

impl Mlp {
    fn new() -> Self {
        let mut rng = TensorRng::new(0);
        let bound1 = 1.0 / (784f32).sqrt();
        let bound2 = 1.0 / (128f32).sqrt();
        Mlp {
            w1: Variable::parameter(rng.uniform(&[128, 784], -bound1, bound1).unwrap()),
            b1: Variable::parameter(rng.uniform(&[128], -bound1, bound1).unwrap()),
            w2: Variable::parameter(rng.uniform(&[10, 128], -bound2, bound2).unwrap()),
            b2: Variable::parameter(rng.uniform(&[10], -bound2, bound2).unwrap()),
        }
    }

    fn loss(&self, x: &Variable, y: &[usize]) -> Variable {
        let h = x
            .matmul(&self.w1.t().unwrap())
            .unwrap()
            .add(&self.b1)
            .unwrap()
            .relu()
            .unwrap();
        let logits = h
            .matmul(&self.w2.t().unwrap())
            .unwrap()
            .add(&self.b2)
            .unwrap();
        logits.cross_entropy(y, None, 0.0).unwrap()
    }
}

fn bench_mlp(c: &mut Criterion) {
    let model = Mlp::new();
    let x = Variable::constant(Tensor::rand_uniform(&[64, 784], 0.0, 1.0, 1).unwrap());
    let y: Vec<usize> = (0..64).map(|i| i % 10).collect();
    let flops = 2 * 64 * (784 * 128 + 128 * 10);
    let mut group = c.benchmark_group("autograd");
    group.throughput(Throughput::Elements(flops as u64));
    group.bench_function("mlp_forward/64x784x128x10", |b| {
        b.iter(|| no_grad(|| model.loss(&x, &y).item().unwrap()))
    });
    group.bench_function("mlp_forward_graph/64x784x128x10", |b| {
        b.iter(|| model.loss(&x, &y).item().unwrap())
    });
    group.bench_function("mlp_forward_backward/64x784x128x10", |b| {
        b.iter(|| {
            let loss = model.loss(&x, &y);
            loss.backward().unwrap();
            for p in [&model.w1, &model.b1, &model.w2, &model.b2] {
                p.zero_grad();
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = bench_mlp
}
criterion_main!(benches);
