//! 1969: Minsky and Papert's crisis. A single layer draws one straight line, and no line
//! separates XOR: it stays near chance however long it trains. One hidden layer bends the
//! boundary and solves it, the idea that backpropagation (1986) made trainable.

use std::time::Instant;

use autograd::{no_grad, Variable};
use clap::Parser;
use milestones::cli::{in_range, CommonArgs, Flag};
use milestones::guard::{check_loss, check_weights};
use milestones::plot::{svg_plot, terminal_plot, Series};
use milestones::progress::bar;
use milestones::report::RunReport;
use milestones::tasks::noisy_xor;
use nn::activation::Tanh;
use nn::linear::Linear;
use nn::loss::BceWithLogitsLoss;
use nn::sequential::Sequential;
use nn::Module;
use optim::{Adam, AdamConfig, Optimizer};
use tensor::{Tensor, TensorRng};

#[derive(Parser, Debug)]
#[command(
    name = "xor-1969",
    about = "A single layer cannot learn XOR; a hidden layer can"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Hidden units of the two-layer network (1 to 4,096).
    #[arg(long, default_value_t = 8)]
    hidden: usize,
}

type Outcome = Result<(f64, f32, Vec<(f64, f64)>), Box<dyn std::error::Error>>;

/// Train `model` full-batch with Adam; return (test accuracy, final train loss, loss curve).
fn train(
    model: &dyn Module,
    x: &Variable,
    y: &Variable,
    test: (&Variable, &[usize]),
    steps: usize,
    label: &str,
) -> Outcome {
    let mut opt = Adam::new(
        model.named_parameters(),
        AdamConfig {
            lr: 0.05,
            ..AdamConfig::default()
        },
    )?;
    let loss_fn = BceWithLogitsLoss::new();
    let progress = bar(steps as u64, label);
    let mut curve = Vec::with_capacity(steps);
    let mut last = f32::NAN;
    for step in 0..steps {
        opt.zero_grad();
        let loss = loss_fn.forward(&model.forward(x)?, y)?;
        last = loss.item()?;
        check_loss(label, step, last as f64)?;
        loss.backward()?;
        opt.step()?;
        curve.push((step as f64, last as f64));
        if step % 20 == 0 {
            progress.set_message(format!("loss {last:.4}"));
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    check_weights(label, model)?;
    let logits = no_grad(|| model.forward(test.0))?.value().to_vec();
    let correct = logits
        .iter()
        .zip(test.1)
        .filter(|(&z, &t)| (z > 0.0) as usize == t)
        .count();
    Ok((correct as f64 / test.1.len() as f64, last, curve))
}

fn run(args: Args) -> Result<RunReport, Box<dyn std::error::Error>> {
    let start = Instant::now();
    args.common
        .validate("xor-1969", &[Flag::DataDir, Flag::Epochs])?;
    args.common.init_threads()?;
    // 4,096 hidden units are far more than XOR needs; more only costs memory (10^8 aborted).
    in_range("--hidden", args.hidden, 1, 4096)?;
    if args.common.dataset.as_deref().is_some_and(|d| d != "xor") {
        return Err("xor-1969 trains on generated noisy XOR only (--dataset xor)".into());
    }
    let mut rng = TensorRng::new(args.common.seed);
    let (train_x, train_y) = noisy_xor(400, 0.1, &mut rng);
    let (test_x, test_y) = noisy_xor(200, 0.1, &mut rng);
    let x = Variable::constant(Tensor::from_vec(train_x, &[400, 2])?);
    let y = Variable::constant(Tensor::from_vec(
        train_y.iter().map(|&v| v as f32).collect(),
        &[400, 1],
    )?);
    let xt = Variable::constant(Tensor::from_vec(test_x, &[200, 2])?);
    let steps = args
        .common
        .steps
        .unwrap_or(if args.common.quick { 300 } else { 1000 });

    let single = Linear::new(2, 1, true, &mut rng);
    let (single_acc, single_loss, single_curve) =
        train(&single, &x, &y, (&xt, &test_y), steps, "1 layer")?;
    let mlp = Sequential::new()
        .add(Linear::new(2, args.hidden, true, &mut rng))
        .add(Tanh)
        .add(Linear::new(args.hidden, 1, true, &mut rng));
    let (mlp_acc, mlp_loss, mlp_curve) = train(&mlp, &x, &y, (&xt, &test_y), steps, "2 layers")?;

    let series = vec![
        Series::new("single layer", single_curve),
        Series::new("2-layer MLP", mlp_curve),
    ];
    println!(
        "{}",
        terminal_plot(
            "training loss on noisy XOR (binary cross-entropy)",
            "step",
            &series,
            60,
            12
        )
    );
    if let Some(path) = &args.common.plot {
        svg_plot(path, "xor-1969: training loss", "step", &series)?;
    }
    println!(
        "A single layer can only draw a line: {:.1}% test accuracy. With one hidden layer: {:.1}%.",
        single_acc * 100.0,
        mlp_acc * 100.0
    );
    let mut report = RunReport::new("xor-1969", "xor");
    report
        .metric("single_layer_accuracy", single_acc)
        .metric("single_layer_loss", single_loss as f64)
        .metric("mlp_accuracy", mlp_acc)
        .metric("mlp_loss", mlp_loss as f64);
    report.params = mlp.num_parameters();
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
