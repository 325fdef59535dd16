//! Grader test: an optimizer step allocates nothing; all state is allocated when the optimizer is
//! built (2 extra floats per parameter for Adam, measured in bytes).
//!
//! A counting global allocator records allocations made by this thread while counting is on.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use autograd::Variable;
use optim::{clip_grad_norm, Adam, AdamConfig, AdamW, Optimizer, ParamGroup, Sgd, SgdConfig};
use tensor::Tensor;

mod common;
use common::centered_momentum_rmsprop;

struct Counting;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
    static BYTES: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ON.try_with(|on| {
            if on.get() {
                COUNT.with(|c| c.set(c.get() + 1));
                BYTES.with(|b| b.set(b.get() + layout.size()));
            }
        });
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ON.try_with(|on| {
            if on.get() {
                COUNT.with(|c| c.set(c.get() + 1));
                BYTES.with(|b| b.set(b.get() + new_size));
            }
        });
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Run `f` and return (allocations, bytes) it made on this thread.
fn count<R>(f: impl FnOnce() -> R) -> (R, usize, usize) {
    COUNT.with(|c| c.set(0));
    BYTES.with(|b| b.set(0));
    ON.with(|on| on.set(true));
    let r = f();
    ON.with(|on| on.set(false));
    (r, COUNT.with(Cell::get), BYTES.with(Cell::get))
}

/// Steps of every optimizer (and clipping) allocate nothing; Adam's construction allocates its
/// two moments: 8 bytes per parameter.
#[test]
fn steps_do_not_allocate() {
    let n_w = 256 * 512;
    let w = Variable::parameter(Tensor::full(&[256, 512], 0.5));
    let b = Variable::parameter(Tensor::full(&[512], -0.5));
    let params = vec![
        ("fc.weight".to_string(), w.clone()),
        ("fc.bias".to_string(), b.clone()),
    ];
    let numel = n_w + 512;

    let (adam, _, bytes) = count(|| Adam::new(params.clone(), AdamConfig::default()).unwrap());
    println!(
        "Adam state for {numel} parameters: {bytes} bytes allocated ({:.2} bytes/parameter)",
        bytes as f64 / numel as f64
    );
    assert!(
        bytes >= 8 * numel && bytes < 8 * numel + 4096,
        "Adam construction allocated {bytes} bytes"
    );

    let mut optimizers: Vec<Box<dyn Optimizer>> = vec![
        Box::new(adam),
        Box::new(
            Sgd::new(
                params.clone(),
                SgdConfig {
                    lr: 0.01,
                    momentum: 0.9,
                    nesterov: true,
                    weight_decay: 0.1,
                    ..Default::default()
                },
            )
            .unwrap(),
        ),
        Box::new(
            Adam::new(
                params.clone(),
                AdamConfig {
                    amsgrad: true,
                    weight_decay: 0.1,
                    ..Default::default()
                },
            )
            .unwrap(),
        ),
        Box::new(
            AdamW::with_groups(
                ParamGroup::split_decay(params.clone(), 0.1),
                AdamConfig::adamw(),
            )
            .unwrap(),
        ),
        Box::new(centered_momentum_rmsprop(params.clone())),
    ];
    w.set_grad(Some(Tensor::full(&[256, 512], 0.1))).unwrap();
    b.set_grad(Some(Tensor::full(&[512], -0.2))).unwrap();
    for opt in &mut optimizers {
        for step in 0..3 {
            let (r, allocs, bytes) = count(|| {
                clip_grad_norm(&params, 100.0).unwrap();
                opt.step()
            });
            r.unwrap();
            assert_eq!(
                (allocs, bytes),
                (0, 0),
                "{} step {step}: {allocs} allocations, {bytes} bytes",
                opt.name()
            );
        }
        // zero_grad frees; nothing to allocate either.
        let (_, allocs, _) = count(|| opt.lr());
        assert_eq!(allocs, 0);
    }
    assert!(w.value().to_vec()[0] < 0.5, "the parameters moved");
}
