//! Systems questions: parameter memory and the FLOPs of a linear layer, measured.

use crate::helpers::randn;
use autograd::Variable;
use nn::activation::ReLU;
use nn::conv::{Conv2d, Conv2dConfig};
use nn::flatten::Flatten;
use nn::linear::Linear;
use nn::pool::MaxPool2d;
use nn::sequential::Sequential;
use nn::Module;
use tensor::TensorRng;

/// Median seconds of `runs` calls of `f` after one warm-up.
fn time_it(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = std::time::Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[runs / 2]
}

/// Parameter counts of an MLP and LeNet-5 equal the hand formulas, LeNet maps 28x28 images to 10
/// logits, and a Linear's measured FLOP rate is printed.
#[test]
fn systems_parameter_memory_and_flops() {
    let mut rng = TensorRng::new(0);
    // parameter memory: count * 4 bytes (f32); Adam would add two more copies
    let mlp = Sequential::new()
        .add(Linear::new(784, 256, true, &mut rng))
        .add(ReLU)
        .add(Linear::new(256, 128, true, &mut rng))
        .add(ReLU)
        .add(Linear::new(128, 10, true, &mut rng));
    let cnn = Sequential::new()
        .add(Conv2d::new(Conv2dConfig::new(1, 6, 5).padding(2), &mut rng).unwrap())
        .add(ReLU)
        .add(MaxPool2d::new(2))
        .add(Conv2d::new(Conv2dConfig::new(6, 16, 5), &mut rng).unwrap())
        .add(ReLU)
        .add(MaxPool2d::new(2))
        .add(Flatten::new())
        .add(Linear::new(16 * 5 * 5, 120, true, &mut rng))
        .add(ReLU)
        .add(Linear::new(120, 84, true, &mut rng))
        .add(ReLU)
        .add(Linear::new(84, 10, true, &mut rng));
    let mlp_params = mlp.num_parameters();
    let cnn_params = cnn.num_parameters();
    assert_eq!(
        mlp_params,
        784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
    );
    assert_eq!(
        cnn_params,
        (6 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    );
    println!(
        "MLP 784-256-128-10: {mlp_params} parameters = {:.1} KiB of f32",
        mlp_params as f64 * 4.0 / 1024.0
    );
    println!(
        "LeNet-5 (28x28 input): {cnn_params} parameters = {:.1} KiB of f32",
        cnn_params as f64 * 4.0 / 1024.0
    );
    // LeNet forward on 28x28 images really produces 10 logits
    let y = cnn
        .forward(&Variable::constant(randn(&[2, 1, 28, 28], 1)))
        .unwrap();
    assert_eq!(y.shape(), vec![2, 10]);

    // Linear (B, in) -> (B, out): 2 * B * in * out FLOPs forward, twice that backward
    let (b, fin, fout) = (256, 1024, 1024);
    let linear = Linear::new(fin, fout, true, &mut rng);
    let x = Variable::parameter(randn(&[b, fin], 2));
    let flops = 2.0 * (b * fin * fout) as f64;
    let fwd = time_it(5, || {
        linear.forward(&x).unwrap();
    });
    let fwd_bwd = time_it(5, || {
        linear
            .forward(&x)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
    });
    println!(
        "Linear {fin}->{fout}, batch {b}: {:.2} GFLOP forward in {:.2} ms = {:.1} GFLOP/s; \
         forward+backward {:.2} ms = {:.1} GFLOP/s",
        flops / 1e9,
        fwd * 1e3,
        flops / fwd / 1e9,
        fwd_bwd * 1e3,
        3.0 * flops / fwd_bwd / 1e9
    );

    // Conv2d: 2 * N * O * OH * OW * C * kh * kw FLOPs forward
    let (n, c, o, hw) = (32, 16, 32, 32);
    let conv = Conv2d::new(Conv2dConfig::new(c, o, 3).padding(1), &mut rng).unwrap();
    let x = Variable::parameter(randn(&[n, c, hw, hw], 3));
    let flops = 2.0 * (n * o * hw * hw * c * 9) as f64;
    let fwd = time_it(5, || {
        conv.forward(&x).unwrap();
    });
    let fwd_bwd = time_it(5, || {
        conv.forward(&x)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
    });
    println!(
        "Conv2d {c}->{o} 3x3 pad 1 on ({n}, {c}, {hw}, {hw}): {:.2} GFLOP forward in {:.2} ms = \
         {:.1} GFLOP/s; forward+backward {:.2} ms = {:.1} GFLOP/s",
        flops / 1e9,
        fwd * 1e3,
        flops / fwd / 1e9,
        fwd_bwd * 1e3,
        3.0 * flops / fwd_bwd / 1e9
    );
}
