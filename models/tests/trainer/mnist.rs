//! Real data (`#[ignore]`d): the trainer on MNIST within its time and accuracy budgets.

use super::*;

/// MNIST from `TINYTORCH_DATA` (or `./data`): `(train, test)` loaders.
fn mnist_loaders(batch: usize) -> (DataLoader, DataLoader) {
    let mnist = data::Mnist::find(None).expect("set TINYTORCH_DATA to the datasets directory");
    let train = DataLoader::new(mnist.train.to_dataset().unwrap(), batch)
        .unwrap()
        .shuffle(42);
    let test = DataLoader::new(mnist.test.to_dataset().unwrap(), 1000).unwrap();
    (train, test)
}

/// Real data: an epoch of the 784-128-64-10 MLP (batch 64) takes at most 10 s; one epoch reaches
/// 94% (`TT_MLP_EPOCHS`, `TT_MLP_BATCH` to change).
#[test]
#[ignore = "needs MNIST (TINYTORCH_DATA)"]
fn mnist_mlp_one_epoch() {
    models::runtime::tune_allocator();
    let batch = std::env::var("TT_MLP_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let (train, test) = mnist_loaders(batch);
    let mlp = Mlp::new(MlpConfig::new(&[784, 128, 64, 10])).unwrap();
    println!("{mlp}");
    let opt = adam(mlp.named_parameters(), 1e-3);
    let mut task = Classification::new(mlp, train).with_val(test);
    let epochs: usize = std::env::var("TT_MLP_EPOCHS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut trainer = Trainer::new(TrainerConfig::epochs(epochs), opt);
    let report = trainer.fit(&mut task).unwrap();
    for r in trainer.history().evaluations() {
        println!(
            "MNIST MLP epoch {:.0}: test loss {:.4}, accuracy {:.4}",
            r.epoch.unwrap(),
            r.val_loss.unwrap(),
            r.val_metric.unwrap()
        );
    }
    let accuracy = report.eval.unwrap().metric.unwrap();
    println!(
        "MNIST MLP (batch {batch}): {epochs} epoch(s) in {:.2} s ({:.0} samples/s), test accuracy {:.4}",
        report.seconds, report.throughput, accuracy
    );
    let per_epoch = report.seconds / epochs as f64;
    assert!(per_epoch <= 10.0, "{per_epoch} s per epoch");
    // Measured: 94.8% after one epoch, 97.7% after five.
    let floor = if epochs == 1 { 0.94 } else { 0.96 };
    assert!(accuracy > floor, "accuracy {accuracy}");
}

/// Real data: LeNet-5 reaches 98.8% test accuracy within 3 epochs (`TT_LENET_EPOCHS` to change).
#[test]
#[ignore = "needs MNIST (TINYTORCH_DATA)"]
fn mnist_lenet5() {
    models::runtime::tune_allocator();
    let epochs: usize = std::env::var("TT_LENET_EPOCHS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let (train, test) = mnist_loaders(64);
    let net = models::cnn::Cnn::new(models::cnn::CnnConfig::lenet5()).unwrap();
    println!("{net}");
    let lr: f64 = std::env::var("TT_LENET_LR")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2e-3);
    let opt = adam(net.named_parameters(), lr);
    let total = (epochs * train.len()) as u64;
    let mut task = Classification::new(net, train).with_val(test);
    // Cosine decay from lr to 0 over the run.
    let schedule = optim::schedule::CosineAnnealing::new(lr, total, 0.0).unwrap();
    let mut trainer = Trainer::new(TrainerConfig::epochs(epochs), opt).with_schedule(schedule);
    let report = trainer.fit(&mut task).unwrap();
    for r in trainer.history().evaluations() {
        println!(
            "LeNet-5 epoch {:.0}: {:.1} s of training, test loss {:.4}, accuracy {:.4}",
            r.epoch.unwrap(),
            r.seconds,
            r.val_loss.unwrap(),
            r.val_metric.unwrap()
        );
    }
    let accuracy = report.eval.unwrap().metric.unwrap();
    println!(
        "LeNet-5: {epochs} epochs in {:.1} s ({:.0} samples/s), test accuracy {accuracy:.4}",
        report.seconds, report.throughput
    );
    if epochs >= 3 {
        assert!(accuracy >= 0.988, "accuracy {accuracy}");
    }
}
