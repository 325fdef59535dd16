//! 1986: backpropagation (Rumelhart, Hinton, Williams) trains networks with hidden layers. A
//! multi-layer perceptron learns to read handwritten digits: TinyDigits (8x8) by default,
//! MNIST (28x28, 784-128-64-10) with `--dataset mnist`.

use std::time::Instant;

use clap::Parser;
use milestones::cli::CommonArgs;
use milestones::own_images::{checked_image_data, default_epochs, ImageFolderArgs};
use milestones::report::{format_count, RunReport};
use milestones::vision::{train_and_report, FitSettings};
use models::mlp::{Mlp, MlpConfig};
use nn::Module;

#[derive(Parser, Debug)]
#[command(
    name = "mlp-1986",
    about = "A multi-layer perceptron reads handwritten digits (TinyDigits or MNIST)"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    images: ImageFolderArgs,
    /// Mini-batch size.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Peak Adam learning rate (annealed to zero by a cosine schedule).
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
}

fn run(args: Args) -> Result<RunReport, Box<dyn std::error::Error>> {
    let start = Instant::now();
    let c = &args.common;
    c.init_threads()?;
    let data = checked_image_data("mlp-1986", c, &args.images, args.batch_size, args.lr)?;
    let [ch, h, w] = data.train.image_shape();
    let inputs = ch * h * w;
    let (sizes, default_epochs) = match data.name.as_str() {
        "tinydigits" => (vec![inputs, 64, 32, data.train.num_classes], 30usize),
        // Your own images: usually a few hundred per class, so more passes than MNIST's 60,000.
        "images" => (
            vec![inputs, 128, 64, data.train.num_classes],
            default_epochs(data.train.len(), args.batch_size, 20),
        ),
        _ => (vec![inputs, 128, 64, data.train.num_classes], 5),
    };
    let epochs = c.epochs.unwrap_or(if c.quick {
        default_epochs.div_ceil(5)
    } else {
        default_epochs
    });
    let model = Mlp::new(MlpConfig::new(&sizes).seed(c.seed))?;
    println!(
        "mlp-1986 on {}: {} training images, MLP {:?}, {} parameters, {} epochs",
        data.name,
        format_count(data.train.len()),
        sizes,
        format_count(model.num_parameters()),
        epochs
    );
    let settings = FitSettings {
        epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: c.seed,
        flatten: true,
    };
    train_and_report(
        "mlp-1986",
        model,
        &data,
        &settings,
        c.plot.as_deref(),
        start,
    )
}

fn main() {
    models::runtime::tune_allocator();
    let args = Args::parse();
    let json = args.common.json.clone();
    let threads = args.common.threads;
    let result = milestones::cli::run_with_threads(threads, || run(args));
    milestones::report::finish(result, json.as_deref());
}
