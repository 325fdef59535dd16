//! The training doctor: the seven checks that tell why a model does not learn, run on a GPT
//! (default), an MLP or a CNN, with generated data. `--break detach` cuts one layer out of the
//! graph on purpose to show the doctor catching it. Exits non-zero when a check fails.
//!
//! The data is generated for the model chosen, so `--data-dir`, `--dataset`, `--epochs`,
//! `--steps` and `--plot` are refused by name; `--quick` skips the learning-rate range test.

use std::time::Instant;

use autograd::Variable;
use clap::Parser;
use data::{DataLoader, LmBatch, LmBatcher, Targets, TensorDataset};
use milestones::cli::{positive_finite, CommonArgs, Flag};
use milestones::corpus;
use milestones::report::RunReport;
use models::doctor::{diagnose, DoctorConfig, DoctorReport};
use models::gpt::{Gelu, Gpt, GptConfig};
use models::trainer::{Classification, LanguageModel};
use models::Result;
use nn::activation::ReLU;
use nn::conv::{Conv2d, Conv2dConfig};
use nn::flatten::Flatten;
use nn::linear::Linear;
use nn::pool::MaxPool2d;
use nn::sequential::Sequential;
use nn::Module;
use optim::{Adam, AdamConfig, Optimizer};
use tensor::{Tensor, TensorRng};

#[derive(Parser, Debug)]
#[command(
    name = "doctor",
    about = "Run the seven training checks on a GPT, an MLP or a CNN"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Which model to examine: gpt, mlp or cnn.
    #[arg(long, default_value = "gpt")]
    model: String,
    /// Break the model on purpose: `detach` cuts one layer out of the graph.
    #[arg(long = "break", value_name = "HOW")]
    break_: Option<String>,
    /// Learning rate given to the optimizer under test.
    #[arg(long, default_value_t = 1e-2)]
    lr: f64,
}

fn adam(lr: f64) -> impl Fn(Vec<(String, Variable)>) -> optim::Result<Box<dyn Optimizer>> {
    move |params| {
        Ok(Box::new(Adam::new(
            params,
            AdamConfig {
                lr,
                ..AdamConfig::default()
            },
        )?) as Box<dyn Optimizer>)
    }
}

/// A GPT's next-token loss, optionally with block `detached` feeding the residual stream
/// through `.detach()`.
fn gpt_loss(gpt: &Gpt, b: &LmBatch, detached: Option<usize>) -> Result<Variable> {
    let Some(detached) = detached else {
        return gpt.loss(&b.inputs, &b.targets, b.batch_size, b.block_size);
    };
    let tokens = gpt
        .wte
        .forward_ids(&b.inputs, &[b.batch_size, b.block_size])?;
    let mut x = gpt.wpe.forward_at(&tokens, 0)?;
    for (i, block) in gpt.blocks.iter().enumerate() {
        let y = block.forward(&x)?;
        // The deliberate bug: the block's contribution is added as a constant.
        x = if i == detached {
            x.add(&y.sub(&x)?.detach())?
        } else {
            y
        };
    }
    let logits = gpt.lm_head.forward(&gpt.ln_f.forward(&x)?)?;
    Ok(logits.cross_entropy(&b.targets, None, 0.0)?)
}

/// A sequential model whose layer `detached` receives a detached input (no gradient reaches the
/// layers before it).
struct DetachedAt {
    model: Sequential,
    detached: Option<usize>,
}

impl Module for DetachedAt {
    fn forward(&self, input: &Variable) -> nn::Result<Variable> {
        let mut x = input.clone();
        for (i, layer) in self.model.layers().iter().enumerate() {
            if Some(i) == self.detached {
                x = x.detach();
            }
            x = layer.forward(&x)?;
        }
        Ok(x)
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        self.model.named_parameters()
    }
}

fn gpt_config(vocab_size: usize) -> GptConfig {
    GptConfig {
        vocab_size,
        block_size: 32,
        n_layer: 2,
        n_head: 2,
        n_embd: 32,
        dropout: 0.0,
        bias: true,
        tie_weights: false,
        gelu: Gelu::Exact,
    }
}

/// Four Gaussian blobs in 2-D, four classes.
fn blobs(n: usize, seed: u64) -> Result<TensorDataset> {
    let mut rng = TensorRng::new(seed);
    let centers = [(-2.0, -2.0), (2.0, 2.0), (-2.0, 2.0), (2.0, -2.0)];
    let mut x = Vec::with_capacity(2 * n);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let (cx, cy) = centers[i % 4];
        x.push(cx + 0.5 * rng.standard_normal() as f32);
        x.push(cy + 0.5 * rng.standard_normal() as f32);
        y.push(i % 4);
    }
    Ok(TensorDataset::new(
        Tensor::from_vec(x, &[n, 2])?,
        Targets::Classes(y),
    )?)
}

/// 8x8 images of a horizontal (class 0) or vertical (class 1) bar at a random position, with noise.
fn bars(n: usize, seed: u64) -> Result<TensorDataset> {
    let mut rng = TensorRng::new(seed);
    let mut x = vec![0.0f32; n * 64];
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 2;
        let at = rng.below(8);
        for j in 0..8 {
            let (r, c) = if class == 0 { (at, j) } else { (j, at) };
            x[i * 64 + r * 8 + c] = 1.0;
        }
        for v in &mut x[i * 64..(i + 1) * 64] {
            *v += 0.1 * rng.standard_normal() as f32;
        }
        y.push(class);
    }
    Ok(TensorDataset::new(
        Tensor::from_vec(x, &[n, 1, 8, 8])?,
        Targets::Classes(y),
    )?)
}

fn run(args: &Args) -> std::result::Result<(RunReport, DoctorReport), Box<dyn std::error::Error>> {
    let start = Instant::now();
    args.common.validate(
        "doctor",
        &[
            Flag::DataDir,
            Flag::Dataset,
            Flag::Epochs,
            Flag::Steps,
            Flag::Plot,
        ],
    )?;
    positive_finite("--lr", args.lr, f64::MAX)?;
    if !["gpt", "mlp", "cnn"].contains(&args.model.as_str()) {
        return Err(format!("unknown --model '{}': choose gpt, mlp or cnn", args.model).into());
    }
    args.common.init_threads()?;
    let seed = args.common.seed;
    let broken = match args.break_.as_deref() {
        None => false,
        Some("detach") => true,
        Some(other) => {
            return Err(
                format!("unknown --break '{other}': the only deliberate bug is 'detach'").into(),
            )
        }
    };
    let config = if args.common.quick {
        println!("--quick: the learning-rate range test is skipped");
        DoctorConfig {
            lr_range: None,
            ..DoctorConfig::default()
        }
    } else {
        DoctorConfig::default()
    };
    let (report, params, dataset) = match args.model.as_str() {
        "gpt" => {
            let text = corpus::generate(400, 2017);
            let tok = data::CharTokenizer::from_corpus(&text, data::UnknownPolicy::Error);
            let tokens = data::Tokenizer::encode(&tok, &text)?;
            let vocab = data::Tokenizer::vocab_size(&tok);
            let batcher = LmBatcher::new(tokens, 32, 8, seed)?;
            let detached = broken.then_some(1);
            let build = || {
                let gpt = Gpt::new(gpt_config(vocab), seed)?;
                let loss = move |gpt: &Gpt, b: &LmBatch| gpt_loss(gpt, b, detached);
                Ok(LanguageModel::new(gpt, batcher.clone(), loss))
            };
            let params = Gpt::new(gpt_config(vocab), seed)?.num_parameters();
            (diagnose(build, adam(args.lr), &config)?, params, "embedded")
        }
        "mlp" => {
            let loader = DataLoader::new(blobs(512, seed)?, 64)?.shuffle(seed);
            let make = move || {
                let mut rng = TensorRng::new(seed);
                Sequential::new()
                    .add(Linear::new(2, 32, true, &mut rng))
                    .add(ReLU)
                    .add(Linear::new(32, 4, true, &mut rng))
            };
            let params = make().num_parameters();
            let detached = broken.then_some(2);
            let build = || {
                let model = DetachedAt {
                    model: make(),
                    detached,
                };
                Ok(Classification::new(model, loader.clone()))
            };
            (diagnose(build, adam(args.lr), &config)?, params, "blobs")
        }
        "cnn" => {
            let loader = DataLoader::new(bars(256, seed)?, 32)?.shuffle(seed);
            let make = move || -> Result<Sequential> {
                let mut rng = TensorRng::new(seed);
                Ok(Sequential::new()
                    .add(Conv2d::new(
                        Conv2dConfig::new(1, 8, 3).padding(1),
                        &mut rng,
                    )?)
                    .add(ReLU)
                    .add(MaxPool2d::new(2))
                    .add(Flatten::new())
                    .add(Linear::new(8 * 4 * 4, 2, true, &mut rng)))
            };
            let params = make()?.num_parameters();
            let detached = broken.then_some(4);
            let build = || {
                let model = DetachedAt {
                    model: make()?,
                    detached,
                };
                Ok(Classification::new(model, loader.clone()))
            };
            (diagnose(build, adam(args.lr), &config)?, params, "bars")
        }
        other => return Err(format!("unknown --model '{other}': choose gpt, mlp or cnn").into()),
    };
    let mut run = RunReport::new("doctor", dataset);
    let passed = report.checks.iter().filter(|c| c.passed).count();
    run.metric("checks_passed", passed as f64)
        .metric("checks_total", report.checks.len() as f64);
    if let Some(lr) = report.suggested_lr {
        run.metric("suggested_lr", lr);
    }
    run.params = params;
    run.seconds = start.elapsed().as_secs_f64();
    Ok((run, report))
}

fn main() {
    models::runtime::tune_allocator();
    let args = Args::parse();
    match milestones::cli::run_with_threads(args.common.threads, || run(&args)) {
        Ok((run, report)) => {
            println!(
                "Training doctor: {} model{}",
                args.model,
                if args.break_.is_some() {
                    " (deliberately broken)"
                } else {
                    ""
                }
            );
            println!("{}", report.table());
            println!("{}", run.table());
            if let Some(path) = &args.common.json {
                if let Err(e) = run.write_json(path) {
                    eprintln!("error: {e}");
                    std::process::exit(1);
                }
            }
            if !report.all_passed() {
                let names: Vec<String> = report.failed().iter().map(|c| c.name.clone()).collect();
                eprintln!(
                    "doctor: {} check(s) failed: {}",
                    names.len(),
                    names.join(", ")
                );
                std::process::exit(2);
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
