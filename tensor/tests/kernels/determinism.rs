//! Every fused kernel gives the same bits whatever the thread count.

use crate::helpers::randn;
use tensor::causal_softmax::causal_softmax_backward;
use tensor::cross_entropy::{cross_entropy, cross_entropy_backward};
use tensor::layer_norm::{layer_norm, layer_norm_backward};
use tensor::softmax::softmax_backward;
use tensor::Tensor;

/// Every kernel on big inputs (threaded when the pool has 2+ threads), returned as flat vectors.
fn all_kernels_big() -> Vec<Vec<f32>> {
    let x = randn(&[16, 64, 128], 40);
    let g = randn(&[16, 64, 128], 41);
    let w = randn(&[128], 42);
    let s = randn(&[4, 4, 64, 64], 43);
    let gs = randn(&[4, 4, 64, 64], 44);
    let y = x.softmax(-1).unwrap();
    let (ln, cache) = layer_norm(&x, Some(&w), None, 1e-5).unwrap();
    let (dx, dw, db) = layer_norm_backward(&x, Some(&w), &cache, &g).unwrap();
    let logits = Tensor::from_vec(x.to_vec(), &[1024, 128]).unwrap();
    let targets: Vec<usize> = (0..1024).map(|i| (i * 31) % 128).collect();
    let (loss, ce) = cross_entropy(&logits, &targets, Some(5), 0.1).unwrap();
    let dl = cross_entropy_backward(&ce, &targets, Some(5), 0.1, 1.0).unwrap();
    let cy = s.causal_softmax(0.125).unwrap();
    vec![
        y.to_vec(),
        softmax_backward(&y, &g, -1).unwrap().to_vec(),
        x.log_softmax(-1).unwrap().to_vec(),
        ln.to_vec(),
        dx.to_vec(),
        dw.unwrap().to_vec(),
        db.unwrap().to_vec(),
        vec![loss],
        dl.to_vec(),
        cy.to_vec(),
        causal_softmax_backward(&cy, &gs, 0.125).unwrap().to_vec(),
    ]
}

/// Every fused kernel gives bit-identical results on 1 thread and on 3 threads (the parallel split
/// does not change the arithmetic).
#[test]
fn results_do_not_depend_on_the_thread_count() {
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(all_kernels_big);
    let three = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap()
        .install(all_kernels_big);
    for (k, (a, b)) in one.iter().zip(&three).enumerate() {
        assert!(a == b, "kernel output {k} differs between 1 and 3 threads");
    }
}
