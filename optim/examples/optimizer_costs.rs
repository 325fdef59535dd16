//! The chapter's measurements: optimizer memory, step time, and why the learning rate depends on
//! the width of a layer.
//!
//! ```text
//! cargo run -p optim --release --example optimizer_costs
//! ```
//!
//! 1. Bytes each optimizer allocates for its state (a counting allocator, not a formula).
//! 2. Milliseconds per step on 10M parameters and the memory traffic that implies.
//! 3. Adam's first step on a linear layer `y = w . x`: the change of `y` grows with the width.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use autograd::Variable;
use optim::{Adam, AdamConfig, AdamW, Optimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig};
use tensor::{Tensor, TensorRng};

struct Counting;

static BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

type Build = fn(Vec<(String, Variable)>) -> Box<dyn Optimizer>;

fn optimizers() -> Vec<(&'static str, Build)> {
    vec![
        ("SGD", |p| {
            Box::new(
                Sgd::new(
                    p,
                    SgdConfig {
                        lr: 1e-3,
                        ..Default::default()
                    },
                )
                .unwrap(),
            )
        }),
        ("SGD + momentum", |p| {
            Box::new(
                Sgd::new(
                    p,
                    SgdConfig {
                        lr: 1e-3,
                        momentum: 0.9,
                        ..Default::default()
                    },
                )
                .unwrap(),
            )
        }),
        ("Adam", |p| {
            Box::new(Adam::new(p, AdamConfig::default()).unwrap())
        }),
        ("Adam + AMSGrad", |p| {
            Box::new(
                Adam::new(
                    p,
                    AdamConfig {
                        amsgrad: true,
                        ..Default::default()
                    },
                )
                .unwrap(),
            )
        }),
        ("AdamW", |p| {
            Box::new(AdamW::new(p, AdamConfig::adamw()).unwrap())
        }),
        ("RMSprop", |p| {
            Box::new(RmsProp::new(p, RmsPropConfig::default()).unwrap())
        }),
        ("RMSprop centered", |p| {
            Box::new(
                RmsProp::new(
                    p,
                    RmsPropConfig {
                        centered: true,
                        ..Default::default()
                    },
                )
                .unwrap(),
            )
        }),
        ("RMSprop + momentum", |p| {
            Box::new(
                RmsProp::new(
                    p,
                    RmsPropConfig {
                        momentum: 0.9,
                        ..Default::default()
                    },
                )
                .unwrap(),
            )
        }),
        ("RMSprop centered + momentum", |p| {
            Box::new(
                RmsProp::new(
                    p,
                    RmsPropConfig {
                        momentum: 0.9,
                        centered: true,
                        ..Default::default()
                    },
                )
                .unwrap(),
            )
        }),
    ]
}

fn main() {
    let mut rng = TensorRng::new(0);
    // A GPT-ish parameter list: 10 matrices of 1000 x 1000 and their biases.
    let params: Vec<(String, Variable)> = (0..10)
        .flat_map(|i| {
            let w = Variable::parameter(rng.normal(&[1000, 1000], 0.0, 1.0).unwrap());
            let b = Variable::parameter(Tensor::zeros(&[1000]));
            [
                (format!("layer{i}.weight"), w),
                (format!("layer{i}.bias"), b),
            ]
        })
        .collect();
    let numel: usize = params.iter().map(|(_, p)| p.numel()).sum();
    for (_, p) in &params {
        p.set_grad(Some(rng.normal(&p.shape(), 0.0, 1e-3).unwrap()))
            .unwrap();
    }

    println!(
        "1-2. state memory and step time, {numel} parameters ({:.1} MB of f32)",
        numel as f64 * 4e-6
    );
    println!(
        "{:<30} {:>14} {:>12} {:>12} {:>10}",
        "optimizer", "state bytes", "bytes/param", "ms/step", "GB/s"
    );
    for (name, build) in optimizers() {
        let before = BYTES.load(Ordering::Relaxed);
        let mut opt = build(params.clone());
        let state_bytes = BYTES.load(Ordering::Relaxed) - before;
        opt.step().unwrap(); // warm up
                             // The fastest of 20 steps: the machine is shared, the minimum is the least disturbed.
        let ms = (0..20)
            .map(|_| {
                let start = Instant::now();
                opt.step().unwrap();
                start.elapsed().as_secs_f64() * 1e3
            })
            .fold(f64::INFINITY, f64::min);
        // Traffic per parameter: read p and g, write p, read and write every state float.
        let floats = 3.0 + 2.0 * opt.state_numel() as f64 / numel as f64;
        let gbs = floats * 4.0 * numel as f64 / (ms * 1e-3) / 1e9;
        println!(
            "{name:<30} {state_bytes:>14} {:>12.2} {ms:>12.2} {gbs:>10.1}",
            state_bytes as f64 / numel as f64
        );
    }

    println!("\n3. Adam's first step on y = w . x (x of ones, dy/dw = x), lr 1e-3:");
    println!("{:>8} {:>14} {:>14}", "width", "|delta y|", "delta y / lr");
    for width in [64usize, 256, 1024, 4096, 16384] {
        let w = Variable::parameter(
            rng.normal(&[width], 0.0, 1.0 / (width as f32).sqrt())
                .unwrap(),
        );
        let x = Variable::constant(Tensor::ones(&[width]));
        let y0 = w.mul(&x).unwrap().sum_all().unwrap();
        let before = y0.item().unwrap();
        y0.backward().unwrap();
        let mut opt = Adam::new(
            vec![("w".into(), w.clone())],
            AdamConfig {
                lr: 1e-3,
                ..Default::default()
            },
        )
        .unwrap();
        opt.step().unwrap();
        let after = w.mul(&x).unwrap().sum_all().unwrap().item().unwrap();
        let dy = (after - before).abs();
        println!("{width:>8} {dy:>14.4} {:>14.1}", dy / 1e-3);
    }
}
