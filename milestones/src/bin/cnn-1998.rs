//! 1998: LeCun's LeNet-5. Convolutions share weights across the image and pooling adds
//! tolerance to small shifts, so a network with far fewer parameters than an MLP reads digits
//! better. TinyDigits (8x8) by default, MNIST with `--dataset mnist`, CIFAR-10 when present.

use std::time::Instant;

use clap::Parser;
use milestones::cli::CommonArgs;
use milestones::own_images::{checked_image_data, default_epochs, ImageFolderArgs};
use milestones::report::{format_count, RunReport};
use milestones::vision::{train_and_report, FitSettings};
use models::cnn::{Cnn, CnnConfig, CnnLayer};
use nn::Module;

#[derive(Parser, Debug)]
#[command(
    name = "cnn-1998",
    about = "A LeNet-style convolutional network reads digits (TinyDigits, MNIST, CIFAR-10)"
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
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
}

fn run(args: Args) -> Result<RunReport, Box<dyn std::error::Error>> {
    let start = Instant::now();
    let c = &args.common;
    c.init_threads()?;
    let data = checked_image_data("cnn-1998", c, &args.images, args.batch_size, args.lr)?;
    let (config, default_epochs) = match data.name.as_str() {
        // Wider than `CnnConfig::tiny_digits()`: 1,000 training images of 8x8 need more filters
        // to reach 95%.
        "tinydigits" => (
            CnnConfig {
                features: CnnLayer::conv_pool_blocks(&[32, 64]),
                hidden: vec![64],
                ..CnnConfig::tiny_digits()
            },
            40usize,
        ),
        "cifar10" => (CnnConfig::cifar10(), 20),
        // Your own images: LeNet-5 when they are at least 16 pixels a side, else 3x3 filters.
        "images" => {
            let shape = data.train.image_shape();
            let classes = data.train.num_classes;
            let config = if shape[1].min(shape[2]) >= 16 {
                CnnConfig::lenet5_for(shape, classes)
            } else {
                CnnConfig {
                    input_shape: shape,
                    num_classes: classes,
                    ..CnnConfig::tiny_digits()
                }
            };
            (
                config,
                default_epochs(data.train.len(), args.batch_size, 15),
            )
        }
        _ => (
            CnnConfig::lenet5_for(data.train.image_shape(), data.train.num_classes),
            3,
        ),
    };
    let epochs = c.epochs.unwrap_or(if c.quick {
        default_epochs.div_ceil(3)
    } else {
        default_epochs
    });
    let model = Cnn::new(config.seed(c.seed))?;
    println!(
        "cnn-1998 on {}: {} training images, {} parameters, {} epochs",
        data.name,
        format_count(data.train.len()),
        format_count(model.num_parameters()),
        epochs
    );
    println!("{}", model.summary());
    let settings = FitSettings {
        epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: c.seed,
        flatten: false,
    };
    train_and_report(
        "cnn-1998",
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
