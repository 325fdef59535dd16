//! 1957: Rosenblatt's perceptron. One neuron, a weighted sum and a threshold, learns to separate
//! two clouds of points. We train it as its modern descendant, logistic regression (a sigmoid
//! instead of a hard step, gradient descent on binary cross-entropy), on two generated Gaussian
//! blobs, and show the weights before and after.

use std::time::Instant;

use autograd::{no_grad, Variable};
use clap::Parser;
use milestones::cli::{positive_finite, CommonArgs, Flag};
use milestones::guard::{check_loss, check_weights};
use milestones::plot::{svg_plot, terminal_plot, Series};
use milestones::progress::bar;
use milestones::report::{table, RunReport};
use milestones::tasks::blobs;
use nn::linear::Linear;
use nn::loss::BceWithLogitsLoss;
use nn::Module;
use optim::{Optimizer, Sgd, SgdConfig};
use tensor::{Tensor, TensorRng};

#[derive(Parser, Debug)]
#[command(
    name = "perceptron-1957",
    about = "A single neuron separates two generated point clouds"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Learning rate of plain SGD.
    #[arg(long, default_value_t = 0.5)]
    lr: f64,
}

fn accuracy(model: &Linear, x: &Variable, y: &[usize]) -> Result<f64, Box<dyn std::error::Error>> {
    let logits = no_grad(|| model.forward(x))?.value().to_vec();
    let correct = logits
        .iter()
        .zip(y)
        .filter(|(&z, &t)| (z > 0.0) as usize == t)
        .count();
    Ok(correct as f64 / y.len() as f64)
}

fn weights(model: &Linear) -> Vec<f32> {
    model
        .parameters()
        .iter()
        .flat_map(|p| p.value().to_vec())
        .collect()
}

fn run(args: Args) -> Result<RunReport, Box<dyn std::error::Error>> {
    let start = Instant::now();
    args.common
        .validate("perceptron-1957", &[Flag::DataDir, Flag::Steps])?;
    args.common.init_threads()?;
    positive_finite("--lr", args.lr, f64::MAX)?;
    if args.common.dataset.as_deref().is_some_and(|d| d != "blobs") {
        return Err(format!(
            "perceptron-1957 trains on generated blobs only (got --dataset {})",
            args.common.dataset.as_deref().unwrap_or("")
        )
        .into());
    }
    let mut rng = TensorRng::new(args.common.seed);
    let (train_x, train_y) = blobs(400, &mut rng);
    let (test_x, test_y) = blobs(200, &mut rng);
    let x = Variable::constant(Tensor::from_vec(train_x, &[400, 2])?);
    let xt = Variable::constant(Tensor::from_vec(test_x, &[200, 2])?);
    let targets = Variable::constant(Tensor::from_vec(
        train_y.iter().map(|&l| l as f32).collect(),
        &[400, 1],
    )?);

    let model = Linear::new(2, 1, true, &mut rng);
    let before = weights(&model);
    let acc_before = accuracy(&model, &xt, &test_y)?;
    let mut opt = Sgd::new(
        model.named_parameters(),
        SgdConfig {
            lr: args.lr,
            ..SgdConfig::default()
        },
    )?;
    let epochs = args
        .common
        .epochs
        .unwrap_or(if args.common.quick { 10 } else { 50 });
    let loss_fn = BceWithLogitsLoss::new();
    let progress = bar(epochs as u64, "perceptron");
    let mut curve = Vec::new();
    let mut last_loss = f32::NAN;
    for epoch in 0..epochs {
        // Full-batch gradient descent: the whole training set is one batch.
        opt.zero_grad();
        let loss = loss_fn.forward(&model.forward(&x)?, &targets)?;
        last_loss = loss.item()?;
        check_loss("perceptron-1957", epoch, last_loss as f64)?;
        loss.backward()?;
        opt.step()?;
        curve.push((epoch as f64, last_loss as f64));
        progress.set_message(format!("loss {last_loss:.4}"));
        progress.inc(1);
    }
    progress.finish_and_clear();
    check_weights("perceptron-1957", &model)?;
    let after = weights(&model);
    let acc = accuracy(&model, &xt, &test_y)?;

    let names = ["w1 (x)", "w2 (y)", "bias"];
    let rows: Vec<Vec<String>> = names
        .iter()
        .zip(before.iter().zip(&after))
        .map(|(n, (b, a))| vec![n.to_string(), format!("{b:+.4}"), format!("{a:+.4}")])
        .collect();
    println!("Weights of the neuron, before and after training:");
    println!("{}", table(&["weight", "before", "after"], &rows));
    let series = vec![Series::new("train loss", curve)];
    println!(
        "{}",
        terminal_plot(
            "training loss (binary cross-entropy)",
            "epoch",
            &series,
            60,
            12
        )
    );
    if let Some(path) = &args.common.plot {
        svg_plot(path, "perceptron-1957: training loss", "epoch", &series)?;
    }
    let mut report = RunReport::new("perceptron-1957", "blobs");
    report
        .metric("test_accuracy", acc)
        .metric("test_accuracy_before", acc_before)
        .metric("final_loss", last_loss as f64);
    report.params = model.num_parameters();
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

fn main() {
    let args = Args::parse();
    let json = args.common.json.clone();
    let threads = args.common.threads;
    let result = milestones::cli::run_with_threads(threads, || run(args));
    milestones::report::finish(result, json.as_deref());
}
