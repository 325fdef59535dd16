//! Grader tests for model compression: structured pruning really shrinks an `Mlp` and keeps the
//! kept neurons' outputs, low-rank factorization of a whole `Mlp`, and fine-tuning a
//! magnitude-pruned model through the `Trainer` with `optim::Masked` (the zeros survive).

use autograd::Variable;
use data::{DataLoader, Targets, TensorDataset};
use models::compress::{
    low_rank, low_rank_layer, magnitude_prune_global, neuron_norms, prune_neurons, sparsity,
};
use models::mlp::{Activation, Mlp, MlpConfig};
use models::trainer::{Classification, Trainer, TrainerConfig};
use nn::linear::Linear;
use nn::Module;
use optim::{Adam, AdamConfig, Masked};
use tensor::{Tensor, TensorRng};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::rand_normal(shape, 0.0, 1.0, seed).unwrap()
}

fn forward(m: &dyn Module, x: &Tensor) -> Tensor {
    m.forward(&Variable::constant(x.clone())).unwrap().value()
}

/// Structured pruning removes whole hidden neurons (the weakest by norm), shrinking the layer
/// shapes and keeping the strongest neurons' weights.
#[test]
fn prune_neurons_shrinks_the_layers_and_keeps_the_strongest() {
    let mlp = Mlp::new(MlpConfig::new(&[6, 8, 10, 3]).seed(4)).unwrap();
    let pruned = prune_neurons(&mlp, 0.5).unwrap();
    assert_eq!(pruned.config().sizes, vec![6, 4, 5, 3]);
    let (w0, w1, w2) = (
        &pruned.layers()[0].weight,
        &pruned.layers()[1].weight,
        &pruned.layers()[2].weight,
    );
    assert_eq!(
        (w0.shape(), w1.shape(), w2.shape()),
        (vec![4, 6], vec![5, 4], vec![3, 5])
    );
    assert_eq!(
        pruned.num_parameters(),
        4 * 6 + 4 + 5 * 4 + 5 + 3 * 5 + 3,
        "fewer parameters: {} of {}",
        pruned.num_parameters(),
        mlp.num_parameters()
    );
    // The kept first-layer neurons are the 4 with the largest row norms, in their order, and their
    // pre-activations are exactly the original ones.
    let norms = neuron_norms(&mlp.layers()[0].weight.value()).unwrap();
    let mut order: Vec<usize> = (0..8).collect();
    order.sort_by(|&a, &b| norms[b].total_cmp(&norms[a]));
    let mut kept = order[..4].to_vec();
    kept.sort_unstable();
    let x = randn(&[5, 6], 9);
    let full = forward(&mlp.layers()[0], &x);
    let small = forward(&pruned.layers()[0], &x);
    let expect = full.index_select(1, &kept).unwrap().contiguous();
    assert_eq!(small.to_vec(), expect.to_vec());
    // The original is untouched.
    assert_eq!(mlp.config().sizes, vec![6, 8, 10, 3]);
}

/// Removing neurons whose weights and biases are already zero changes no output of the MLP.
#[test]
fn removing_neurons_that_are_already_zero_changes_no_output() {
    let mlp = Mlp::new(MlpConfig::new(&[5, 8, 6, 4]).seed(2)).unwrap();
    // Zero the weight rows and biases of neurons 1, 3, 4, 6 of layer 0 and 0, 5, 2 of layer 1.
    for (layer, dead) in [(0usize, vec![1usize, 3, 4, 6]), (1, vec![0, 5, 2])] {
        let l = &mlp.layers()[layer];
        let cols = l.in_features();
        l.weight
            .update_data(|w| {
                for &r in &dead {
                    w[r * cols..(r + 1) * cols].fill(0.0);
                }
            })
            .unwrap();
        l.bias
            .as_ref()
            .unwrap()
            .update_data(|b| dead.iter().for_each(|&r| b[r] = 0.0))
            .unwrap();
    }
    let pruned = prune_neurons(&mlp, 0.5).unwrap();
    assert_eq!(pruned.config().sizes, vec![5, 4, 3, 4]);
    let x = randn(&[7, 5], 3);
    let (a, b) = (forward(&mlp, &x), forward(&pruned, &x));
    assert!(a.allclose(&b, 1e-6, 1e-6), "{a:?} vs {b:?}");
}

/// A keep fraction outside (0, 1] is refused with the valid range; a tiny fraction still keeps one
/// neuron per layer.
#[test]
fn prune_neurons_and_from_layers_refuse_bad_input() {
    let mlp = Mlp::new(MlpConfig::new(&[4, 6, 2])).unwrap();
    for f in [0.0, -0.5, 1.5, f32::NAN] {
        let e = prune_neurons(&mlp, f).unwrap_err().to_string();
        assert!(e.contains("keep_fraction must be in (0, 1]"), "{e}");
    }
    // A tiny fraction keeps at least one neuron per layer; 1.0 keeps all.
    assert_eq!(
        prune_neurons(&mlp, 0.01).unwrap().config().sizes,
        vec![4, 1, 2]
    );
    assert_eq!(
        prune_neurons(&mlp, 1.0).unwrap().config().sizes,
        vec![4, 6, 2]
    );

    let mut rng = TensorRng::new(1);
    let e = Mlp::from_layers(Vec::new(), Activation::ReLU).unwrap_err();
    assert!(e.to_string().contains("at least one layer"), "{e}");
    let e = Mlp::from_layers(
        vec![
            Linear::new(4, 3, true, &mut rng),
            Linear::new(5, 2, true, &mut rng),
        ],
        Activation::ReLU,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("layer 1 takes 5 features but the previous layer gives 3"),
        "{e}"
    );
    let e = Mlp::from_layers(
        vec![
            Linear::new(4, 3, true, &mut rng),
            Linear::new(3, 2, false, &mut rng),
        ],
        Activation::ReLU,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("layer 1 has no bias but layer 0 has one"),
        "{e}"
    );
}

/// Low-rank factorization of an MLP at full rank reproduces its outputs and at low rank has fewer
/// parameters.
#[test]
fn low_rank_mlp_at_full_rank_matches_and_shrinks_at_low_rank() {
    let mlp = Mlp::new(
        MlpConfig::new(&[20, 16, 12, 3])
            .activation(Activation::GELU)
            .seed(6),
    )
    .unwrap();
    let x = randn(&[4, 20], 1);
    let y = forward(&mlp, &x);
    // Rank 12 factorizes the first layer (min 16) only: 12 >= min of the others.
    let full = low_rank(&mlp, 12).unwrap();
    assert_eq!(full.ranks(), vec![Some(12), None, None]);
    // At rank 16 nothing is factorized (no layer has min(in, out) > 16).
    assert_eq!(low_rank(&mlp, 16).unwrap().ranks(), vec![None, None, None]);
    let exact = low_rank_layer(&mlp, 0, 16).unwrap();
    assert!(y.allclose(&forward(&exact, &x), 1e-4, 1e-5));
    let small = low_rank(&mlp, 2).unwrap();
    assert_eq!(small.ranks(), vec![Some(2), Some(2), Some(2)]);
    let names: Vec<String> = small
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names[..3],
        [
            "layers.0.down.weight",
            "layers.0.up.weight",
            "layers.0.up.bias"
        ]
    );
    assert_eq!(
        small.num_parameters(),
        2 * (20 + 16) + 16 + 2 * (16 + 12) + 12 + 2 * (12 + 3) + 3
    );
    assert!(small.num_parameters() < mlp.num_parameters());
    // Errors.
    assert!(low_rank(&mlp, 0)
        .unwrap_err()
        .to_string()
        .contains("rank must be at least 1"));
    let e = low_rank_layer(&mlp, 3, 2).unwrap_err().to_string();
    assert!(
        e.contains("layer 3 is out of range for an Mlp of 3 layers"),
        "{e}"
    );
    let e = low_rank_layer(&mlp, 2, 4).unwrap_err().to_string();
    assert!(e.contains("rank must be in 1..=3"), "{e}");
}

/// Two Gaussian blobs per class in 4-D: an easy problem a small MLP fits in a few epochs.
fn blobs(n: usize, seed: u64) -> TensorDataset {
    let mut rng = TensorRng::new(seed);
    let mut xs = Vec::with_capacity(4 * n);
    let mut ys = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 3;
        for d in 0..4 {
            let centre = if d == class { 2.0 } else { 0.0 };
            xs.push((centre + 0.5 * rng.standard_normal()) as f32);
        }
        ys.push(class);
    }
    TensorDataset::new(Tensor::from_vec(xs, &[n, 4]).unwrap(), Targets::Classes(ys)).unwrap()
}

/// A magnitude-pruned MLP fine-tuned through the Trainer with a masked Adam lowers its loss and
/// keeps every pruned weight at zero.
#[test]
fn magnitude_pruned_mlp_fine_tunes_through_the_trainer_and_stays_sparse() {
    let mlp = Mlp::new(MlpConfig::new(&[4, 32, 32, 3]).seed(8)).unwrap();
    let masks = magnitude_prune_global(&mlp, 0.8).unwrap();
    let opt = Adam::new(
        mlp.named_parameters(),
        AdamConfig {
            lr: 1e-2,
            weight_decay: 1e-3,
            ..Default::default()
        },
    )
    .unwrap();
    let opt = Masked::new(opt, masks.clone()).unwrap();
    let zeros_before = sparsity(&mlp).zeros();
    // round(0.8 * 1248 weights) = 998 pruned by Masked::new.
    assert_eq!(zeros_before, 998);
    let train = DataLoader::new(blobs(300, 1), 16).unwrap().shuffle(2);
    let val = DataLoader::new(blobs(150, 3), 50).unwrap();
    let mut task = Classification::new(mlp, train).with_val(val);
    let mut trainer = Trainer::new(TrainerConfig::epochs(4).quiet(), opt);
    let report = trainer.fit(&mut task).unwrap();
    let accuracy = report.eval.unwrap().metric.unwrap();
    assert!(accuracy > 0.9, "accuracy {accuracy}");
    let model = task.into_model();
    // Every pruned weight is still exactly zero after 76 Adam steps.
    let params: std::collections::BTreeMap<String, Variable> =
        model.named_parameters().into_iter().collect();
    for (name, mask) in masks.iter() {
        let w = params[name].value().to_vec();
        for (v, m) in w.iter().zip(mask.to_vec()) {
            if m == 0.0 {
                assert_eq!(*v, 0.0, "{name}");
            }
        }
    }
    assert!(sparsity(&model).zeros() >= zeros_before);
}

/// Train with Adam and cosine annealing through the trainer; return the model and its test
/// accuracy.
fn fit_mnist<O: optim::Optimizer + 'static>(
    model: Mlp,
    opt: O,
    train: &DataLoader,
    test: &DataLoader,
    epochs: usize,
    lr: f64,
) -> (Mlp, f64) {
    let steps = epochs * train.len();
    let schedule = optim::schedule::CosineAnnealing::new(lr, steps as u64, 0.0).unwrap();
    let mut task = Classification::new(model, train.clone()).with_val(test.clone());
    let mut trainer =
        Trainer::new(TrainerConfig::epochs(epochs).quiet(), opt).with_schedule(schedule);
    let report = trainer.fit(&mut task).unwrap();
    (task.into_model(), report.eval.unwrap().metric.unwrap())
}

#[test]
#[ignore = "needs MNIST (TINYTORCH_DATA)"]
fn mnist_90_percent_global_sparsity_within_one_point_after_one_masked_epoch() {
    let mnist = data::Mnist::find(None).expect("set TINYTORCH_DATA to the datasets directory");
    let train = DataLoader::new(mnist.train.to_dataset().unwrap(), 64)
        .unwrap()
        .shuffle(1);
    let test = DataLoader::new(mnist.test.to_dataset().unwrap(), 1000).unwrap();
    let mlp = Mlp::new(MlpConfig::new(&[784, 128, 64, 10]).seed(1)).unwrap();
    let opt = Adam::new(
        mlp.named_parameters(),
        AdamConfig {
            lr: 2e-3,
            ..Default::default()
        },
    )
    .unwrap();
    let (mlp, dense) = fit_mnist(mlp, opt, &train, &test, 5, 2e-3);
    let masks = magnitude_prune_global(&mlp, 0.9).unwrap();
    let opt = Adam::new(
        mlp.named_parameters(),
        AdamConfig {
            lr: 4e-3,
            ..Default::default()
        },
    )
    .unwrap();
    let opt = Masked::new(opt, masks).unwrap();
    let (pruned, sparse) = fit_mnist(mlp, opt, &train, &test, 1, 4e-3);
    let s = sparsity(&pruned).global().unwrap();
    println!(
        "MNIST MLP: dense {dense:.4}, 90% sparse + 1 masked epoch {sparse:.4} (sparsity {s:.4})"
    );
    assert!((s - 0.9).abs() < 1e-4, "sparsity {s}");
    assert!(dense - sparse < 0.01, "dense {dense}, pruned {sparse}");
}
