//! Grader tests for `Mlp` and `Cnn`: shapes, parameter counts computed by hand, forward values on
//! hand-set weights, gradient flow to every parameter, dropout and BatchNorm modes, bad configs.

use std::collections::BTreeMap;

use autograd::Variable;
use models::cnn::{Cnn, CnnConfig, CnnLayer};
use models::mlp::{Activation, Mlp, MlpConfig};
use nn::loss::CrossEntropyLoss;
use nn::Module;
use tensor::{Tensor, TensorRng};

fn randn(shape: &[usize], seed: u64) -> Variable {
    Variable::constant(TensorRng::new(seed).normal(shape, 0.0, 1.0).unwrap())
}

/// Backward a cross-entropy through `model` and check that every parameter got a gradient with
/// a non-zero entry.
fn assert_every_parameter_learns(model: &dyn Module, input: &Variable, classes: usize) {
    let n = input.shape()[0];
    let targets: Vec<usize> = (0..n).map(|i| i % classes).collect();
    let logits = model.forward(input).unwrap();
    assert_eq!(logits.shape(), vec![n, classes]);
    let loss = CrossEntropyLoss::new().forward(&logits, &targets).unwrap();
    loss.backward().unwrap();
    for (name, p) in model.named_parameters() {
        let g = p
            .grad()
            .unwrap_or_else(|| panic!("parameter {name} received no gradient"));
        assert_eq!(g.shape(), p.shape().as_slice(), "{name}");
        assert!(g.all_finite(), "{name} has a non-finite gradient");
        assert!(
            g.to_vec().iter().any(|&v| v != 0.0),
            "parameter {name} has an all-zero gradient"
        );
    }
}

/// An MLP 784-128-64-10 has the hand-counted 109,386 parameters, named layers.i.weight/bias, and
/// maps (B, 784) to (B, 10).
#[test]
fn mlp_shapes_names_and_parameter_count() {
    let mlp = Mlp::new(MlpConfig::new(&[784, 128, 64, 10])).unwrap();
    // 784*128 + 128 + 128*64 + 64 + 64*10 + 10
    assert_eq!(mlp.num_parameters(), 100_352 + 128 + 8_192 + 64 + 640 + 10);
    assert_eq!(mlp.num_parameters(), 109_386);
    let names: Vec<String> = mlp.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "layers.0.weight",
            "layers.0.bias",
            "layers.1.weight",
            "layers.1.bias",
            "layers.2.weight",
            "layers.2.bias"
        ]
    );
    assert_eq!(mlp.layers()[1].weight.shape(), vec![64, 128]);
    // Images are flattened inside the graph; flat rows work too, with the same result.
    let images = randn(&[5, 1, 28, 28], 1);
    let flat = Variable::constant(images.value().reshape_to(&[5, 784]).unwrap());
    let a = mlp.forward(&images).unwrap();
    let b = mlp.forward(&flat).unwrap();
    assert_eq!(a.shape(), vec![5, 10]);
    assert_eq!(a.value(), b.value());
    println!("{mlp}");
    assert!(
        mlp.summary().ends_with("total 109386 parameters"),
        "{}",
        mlp.summary()
    );
    // No dropout: no buffers.
    assert!(mlp.named_buffers().is_empty());
}

/// A wrong input width or rank, fewer than two sizes, a zero-width layer or dropout of 1 is an
/// error naming the problem.
#[test]
fn mlp_refuses_bad_inputs_and_configs() {
    let mlp = Mlp::new(MlpConfig::new(&[4, 3, 2])).unwrap();
    let e = mlp.forward(&randn(&[2, 5], 0)).unwrap_err().to_string();
    assert!(e.contains("Mlp") && e.contains("[2, 5]"), "{e}");
    assert!(mlp.forward(&randn(&[4], 0)).is_err());
    assert!(Mlp::new(MlpConfig::new(&[4])).is_err());
    assert!(Mlp::new(MlpConfig::new(&[4, 0, 2])).is_err());
    let e = Mlp::new(MlpConfig::new(&[4, 2]).dropout(1.0))
        .err()
        .unwrap();
    assert!(e.to_string().contains("[0, 1)"), "{e}");
}

/// A 2 -> 2 -> 1 net with hand-set weights: h = act(W1 x + b1), y = W2 h + b2.
#[test]
fn mlp_forward_matches_hand_computation_for_each_activation() {
    let x = [1.0f32, -2.0];
    let w1 = [[0.5f32, 0.25], [-1.0, 0.75]];
    let b1 = [0.1f32, 0.2];
    let w2 = [2.0f32, -1.0];
    let b2 = 0.3f32;
    let pre: Vec<f64> = (0..2)
        .map(|i| (w1[i][0] * x[0] + w1[i][1] * x[1] + b1[i]) as f64)
        .collect();
    // pre = [0.5 - 0.5 + 0.1, -1 - 1.5 + 0.2] = [0.1, -2.3]
    assert!((pre[0] - 0.1).abs() < 1e-6 && (pre[1] + 2.3).abs() < 1e-6);
    fn erf(v: f64) -> f64 {
        // Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7).
        let t = 1.0 / (1.0 + 0.3275911 * v.abs());
        let y = 1.0
            - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
                + 0.254829592)
                * t
                * (-v * v).exp();
        y.copysign(v)
    }
    fn reference(act: Activation, v: f64) -> f64 {
        match act {
            Activation::ReLU => v.max(0.0),
            Activation::Tanh => v.tanh(),
            Activation::Sigmoid => 1.0 / (1.0 + (-v).exp()),
            Activation::GELU => 0.5 * v * (1.0 + erf(v / 2f64.sqrt())),
        }
    }
    let all = [
        Activation::ReLU,
        Activation::GELU,
        Activation::Tanh,
        Activation::Sigmoid,
    ];
    for act in all {
        let f = |v: f64| reference(act, v);
        let mlp = Mlp::new(MlpConfig::new(&[2, 2, 1]).activation(act)).unwrap();
        let state: BTreeMap<String, Tensor> = [
            (
                "layers.0.weight",
                Tensor::from_vec(vec![0.5, 0.25, -1.0, 0.75], &[2, 2]),
            ),
            ("layers.0.bias", Tensor::from_vec(b1.to_vec(), &[2])),
            ("layers.1.weight", Tensor::from_vec(w2.to_vec(), &[1, 2])),
            ("layers.1.bias", Tensor::from_vec(vec![b2], &[1])),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_string(), t.unwrap()))
        .collect();
        mlp.load_state_dict(&state).unwrap();
        let y = mlp
            .forward(&Variable::constant(
                Tensor::from_vec(x.to_vec(), &[1, 2]).unwrap(),
            ))
            .unwrap()
            .item()
            .unwrap();
        let want = w2[0] as f64 * f(pre[0]) + w2[1] as f64 * f(pre[1]) + b2 as f64;
        assert!(
            (y as f64 - want).abs() < 1e-5,
            "{act:?}: got {y}, want {want}"
        );
    }
}

/// With each activation, one backward gives every MLP parameter a finite, non-zero gradient of its
/// own shape.
#[test]
fn mlp_gradients_reach_every_parameter() {
    for act in [
        Activation::ReLU,
        Activation::GELU,
        Activation::Tanh,
        Activation::Sigmoid,
    ] {
        let mlp = Mlp::new(MlpConfig::new(&[12, 16, 8, 3]).activation(act).dropout(0.2)).unwrap();
        assert_every_parameter_learns(&mlp, &randn(&[16, 12], 3), 3);
    }
}

/// MLP dropout draws a new mask each forward, the same seed gives the same masks, the draw count
/// can be restored, and eval turns it off.
#[test]
fn mlp_dropout_is_seeded_resumable_and_off_in_eval() {
    let make = || Mlp::new(MlpConfig::new(&[8, 32, 4]).dropout(0.5).seed(7)).unwrap();
    let mut a = make();
    let b = make();
    let x = randn(&[4, 8], 2);
    let a1 = a.forward(&x).unwrap().value();
    let a2 = a.forward(&x).unwrap().value();
    assert_ne!(a1, a2, "training mode draws a new mask each forward");
    // Same seed, same masks.
    assert_eq!(b.forward(&x).unwrap().value(), a1);
    // The draw count is a buffer: loading a's state into b makes b draw a's next mask.
    let state = a.state_dict();
    assert_eq!(state["dropout.draws"].to_vec(), vec![2.0, 0.0]);
    b.load_state_dict(&state).unwrap();
    assert_eq!(
        a.forward(&x).unwrap().value(),
        b.forward(&x).unwrap().value()
    );
    // Eval mode: deterministic and equal to the network without dropout.
    a.eval();
    let e1 = a.forward(&x).unwrap().value();
    assert_eq!(e1, a.forward(&x).unwrap().value());
    let plain = Mlp::new(MlpConfig::new(&[8, 32, 4]).seed(7)).unwrap();
    // Weights come first from the same seed, so the eval output equals the dropout-free net's.
    assert_eq!(plain.forward(&x).unwrap().value(), e1);
}

/// LeNet-5 has the hand-counted 61,706 parameters and the feature-map shapes of the 1998 paper.
#[test]
fn lenet5_shapes_and_parameter_count() {
    let net = Cnn::new(CnnConfig::lenet5()).unwrap();
    // conv1 6*1*5*5 + 6, conv2 16*6*5*5 + 16, fc 400*120 + 120, 120*84 + 84, 84*10 + 10
    let by_hand = (150 + 6) + (2_400 + 16) + (48_000 + 120) + (10_080 + 84) + (840 + 10);
    assert_eq!(by_hand, 61_706);
    assert_eq!(net.num_parameters(), by_hand);
    assert_eq!(
        net.feature_shapes(),
        &[
            [6, 28, 28],
            [6, 28, 28],
            [6, 14, 14],
            [16, 10, 10],
            [16, 10, 10],
            [16, 5, 5]
        ]
    );
    assert_eq!(net.flat_features(), 400);
    let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names[0], "features.0.weight");
    assert_eq!(names[2], "features.3.weight");
    assert_eq!(names[4], "classifier.0.weight");
    assert_eq!(names.len(), 10);
    let x = randn(&[3, 1, 28, 28], 5);
    let y = net.forward(&x).unwrap();
    assert_eq!(y.shape(), vec![3, 10]);
    // Flat rows are viewed as images.
    let flat = Variable::constant(x.value().reshape_to(&[3, 784]).unwrap());
    assert_eq!(net.forward(&flat).unwrap().value(), y.value());
    println!("{net}");
    assert!(net.summary().ends_with("total 61706 parameters"));
    let e = net
        .forward(&randn(&[2, 3, 28, 28], 0))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("(N, 1, 28, 28)") && e.contains("[2, 3, 28, 28]"),
        "{e}"
    );
}

/// LeNet-5 built for 3x32x32 inputs computes its flatten size (16*6*6 = 576) and parameter count
/// from the input shape.
#[test]
fn lenet5_flatten_size_adapts_to_the_input() {
    // 3x32x32: conv pad 2 -> 32, pool -> 16, conv 5 -> 12, pool -> 6: 16*6*6 = 576.
    let net = Cnn::new(CnnConfig::lenet5_for([3, 32, 32], 10)).unwrap();
    assert_eq!(net.flat_features(), 576);
    let by_hand = (6 * 3 * 25 + 6) + (2_400 + 16) + (576 * 120 + 120) + (10_080 + 84) + 850;
    assert_eq!(net.num_parameters(), by_hand);
    assert_eq!(
        net.forward(&randn(&[2, 3, 32, 32], 1)).unwrap().shape(),
        vec![2, 10]
    );
}

/// The tiny-digits and CIFAR-10 CNN configs have the hand-counted flatten sizes and parameter
/// counts and produce 10 logits.
#[test]
fn tiny_digits_and_cifar_configs() {
    let tiny = Cnn::new(CnnConfig::tiny_digits()).unwrap();
    // conv 8*1*9 + 8, conv 16*8*9 + 16, fc 64*32 + 32, 32*10 + 10
    assert_eq!(tiny.flat_features(), 64);
    assert_eq!(tiny.num_parameters(), 80 + 1_168 + 2_080 + 330);
    assert_eq!(
        tiny.forward(&randn(&[4, 1, 8, 8], 1)).unwrap().shape(),
        vec![4, 10]
    );

    let cifar = Cnn::new(CnnConfig::cifar10()).unwrap();
    assert_eq!(cifar.flat_features(), 128 * 4 * 4);
    let convs = (3 * 9 * 32 + 32)
        + (32 * 9 * 32 + 32)
        + (32 * 9 * 64 + 64)
        + (64 * 9 * 64 + 64)
        + (64 * 9 * 128 + 128);
    let bns = 2 * (32 + 32 + 64 + 64 + 128);
    let fcs = (2048 * 256 + 256) + (256 * 10 + 10);
    assert_eq!(cifar.num_parameters(), convs + bns + fcs);
    println!("{cifar}");
    assert_eq!(cifar.num_parameters(), 667_178);
    // BatchNorm buffers and the dropout counter are in the state dict.
    let state = cifar.state_dict();
    assert!(state.contains_key("features.1.running_mean"));
    assert!(state.contains_key("features.1.num_batches_tracked"));
    assert!(state.contains_key("dropout.draws"));
}

/// For LeNet-5, the tiny-digits and the CIFAR CNN, one backward gives every parameter a finite,
/// non-zero gradient.
#[test]
fn cnn_gradients_reach_every_parameter() {
    let lenet = Cnn::new(CnnConfig::lenet5().seed(3)).unwrap();
    assert_every_parameter_learns(&lenet, &randn(&[4, 1, 28, 28], 11), 10);
    let tiny = Cnn::new(CnnConfig::tiny_digits().dropout(0.1)).unwrap();
    assert_every_parameter_learns(&tiny, &randn(&[8, 1, 8, 8], 12), 10);
    let cifar = Cnn::new(CnnConfig::cifar10()).unwrap();
    assert_every_parameter_learns(&cifar, &randn(&[4, 3, 32, 32], 13), 10);
}

/// A CNN's batch norm uses batch statistics in training and its running statistics in eval.
#[test]
fn cnn_batchnorm_uses_batch_statistics_in_training_only() {
    let config = CnnConfig {
        input_shape: [2, 6, 6],
        features: vec![
            CnnLayer::conv(4, 3, 1),
            CnnLayer::BatchNorm,
            CnnLayer::Act,
            CnnLayer::AvgPool(2),
        ],
        hidden: vec![],
        num_classes: 3,
        activation: Activation::Tanh,
        dropout: 0.0,
        seed: 1,
    };
    let mut net = Cnn::new(config).unwrap();
    assert_eq!(net.flat_features(), 4 * 3 * 3);
    let x = randn(&[5, 2, 6, 6], 4);
    let train_out = net.forward(&x).unwrap().value();
    let state = net.state_dict();
    assert_eq!(state["features.1.num_batches_tracked"].item().unwrap(), 1.0);
    net.eval();
    let eval_out = net.forward(&x).unwrap().value();
    assert_ne!(train_out, eval_out);
    // Eval does not update the running statistics.
    assert_eq!(
        net.state_dict()["features.1.num_batches_tracked"]
            .item()
            .unwrap(),
        1.0
    );
}

/// A pooling or conv layer that does not fit the feature map at that point is an error naming the
/// layer and the map size.
#[test]
fn cnn_refuses_layers_that_do_not_fit() {
    let mut config = CnnConfig::tiny_digits();
    config.features.push(CnnLayer::MaxPool(4)); // the map is 2x2 by then
    let e = Cnn::new(config).err().unwrap().to_string();
    assert!(e.contains("features.6") && e.contains("2x2"), "{e}");
    let mut config = CnnConfig::tiny_digits();
    config.features[0] = CnnLayer::conv(8, 9, 0); // 9x9 kernel on 8x8
    let e = Cnn::new(config).err().unwrap().to_string();
    assert!(e.contains("features.0"), "{e}");
    let mut config = CnnConfig::lenet5();
    config.num_classes = 0;
    assert!(Cnn::new(config).is_err());
}
