//! Compress an MNIST MLP (784-128-64-10) four ways and print what each costs and saves:
//! 90% global magnitude pruning with one epoch of masked fine-tuning, structured pruning of half
//! the hidden neurons (accuracy and latency at batch 1 and 256), low-rank factorization of the
//! first layer at several ranks, and knowledge distillation into a 784-32-10 student (against the
//! same student trained on labels alone, over three seeds).
//!
//! ```text
//! TINYTORCH_DATA=/path/to/datasets cargo run --release -p models --example compress
//! cargo run --release -p models --example compress -- --data-dir DIR --part distill --seeds 1,2,3
//! ```
//!
//! `--part` is one of `all` (default), `prune`, `structured`, `lowrank`, `distill`; other flags:
//! `--epochs N` (dense teacher and students, default 5), `--finetune-lr LR` (peak of the one
//! fine-tuning epoch, default 4e-3), `--temperature T` (4), `--alpha A` (0.7), `--seeds 1,2,3`.

use std::path::PathBuf;
use std::time::Instant;

use autograd::{no_grad, Variable};
use data::{DataLoader, Mnist};
use models::compress::{low_rank_layer, magnitude_prune_global, prune_neurons, sparsity};
use models::mlp::{Mlp, MlpConfig};
use models::trainer::{count_correct, Classification, Trainer, TrainerConfig};
use nn::loss::{cross_entropy, Reduction};
use nn::{distillation_loss, Module};
use optim::schedule::CosineAnnealing;
use optim::{Adam, AdamConfig, LrSchedule, Masked, Optimizer};
use tensor::Tensor;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

const BATCH: usize = 64;
const LR: f64 = 2e-3;

struct Args {
    data_dir: Option<PathBuf>,
    part: String,
    seeds: Vec<u64>,
    epochs: usize,
    finetune_lr: f64,
    temperature: f32,
    alpha: f32,
}

fn parse_args() -> BoxResult<Args> {
    let mut args = Args {
        data_dir: None,
        part: "all".into(),
        seeds: vec![1, 2, 3],
        epochs: 5,
        finetune_lr: 4e-3,
        temperature: 4.0,
        alpha: 0.7,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--data-dir" => args.data_dir = Some(PathBuf::from(value()?)),
            "--part" => args.part = value()?,
            "--epochs" => args.epochs = value()?.parse()?,
            "--finetune-lr" => args.finetune_lr = value()?.parse()?,
            "--temperature" => args.temperature = value()?.parse()?,
            "--alpha" => args.alpha = value()?.parse()?,
            "--seeds" => {
                args.seeds = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            other => return Err(format!("unknown argument '{other}'").into()),
        }
    }
    Ok(args)
}

struct Data {
    train: DataLoader,
    test: DataLoader,
    train_len: usize,
}

fn load(args: &Args, seed: u64) -> BoxResult<Data> {
    let mnist = Mnist::find(args.data_dir.as_deref())?;
    Ok(Data {
        train_len: mnist.train.len(),
        train: DataLoader::new(mnist.train.to_dataset()?, BATCH)?.shuffle(seed),
        test: DataLoader::new(mnist.test.to_dataset()?, 1000)?,
    })
}

/// Test accuracy in percent (eval mode, no graph).
fn accuracy(model: &dyn Module, loader: &DataLoader) -> BoxResult<f64> {
    let _guard = autograd::NoGradGuard::new();
    let (mut correct, mut n) = (0, 0);
    for batch in loader.epoch(0) {
        let batch = batch?;
        let logits = model.forward(&Variable::constant(batch.inputs.clone()))?;
        correct += count_correct(&logits.value(), batch.classes()?);
        n += batch.len();
    }
    Ok(100.0 * correct as f64 / n as f64)
}

/// Train with the trainer (cross-entropy, Adam wrapped as given, cosine to zero).
fn fit<O: Optimizer + 'static>(
    model: Mlp,
    optimizer: O,
    data: &Data,
    epochs: usize,
    lr: f64,
) -> BoxResult<Mlp> {
    let steps = epochs * data.train_len.div_ceil(BATCH);
    let schedule = CosineAnnealing::new(lr, steps as u64, 0.0)?;
    let mut task = Classification::new(model, data.train.clone());
    let mut trainer =
        Trainer::new(TrainerConfig::epochs(epochs).quiet(), optimizer).with_schedule(schedule);
    trainer.fit(&mut task)?;
    let mut model = task.into_model();
    model.eval();
    Ok(model)
}

fn adam(model: &dyn Module, lr: f64) -> BoxResult<Adam> {
    Ok(Adam::new(
        model.named_parameters(),
        AdamConfig {
            lr,
            ..Default::default()
        },
    )?)
}

fn dense(args: &Args, data: &Data, seed: u64) -> BoxResult<Mlp> {
    let mlp = Mlp::new(MlpConfig::new(&[784, 128, 64, 10]).seed(seed))?;
    let opt = adam(&mlp, LR)?;
    let started = Instant::now();
    let mlp = fit(mlp, opt, data, args.epochs, LR)?;
    println!(
        "dense 784-128-64-10 (seed {seed}): {} parameters, {} epochs in {:.1} s, test accuracy {:.2}%",
        mlp.num_parameters(),
        args.epochs,
        started.elapsed().as_secs_f64(),
        accuracy(&mlp, &data.test)?
    );
    Ok(mlp)
}

fn copy(mlp: &Mlp) -> BoxResult<Mlp> {
    let layers = mlp
        .layers()
        .iter()
        .map(|l| {
            nn::linear::Linear::from_tensors(l.weight.value(), l.bias.as_ref().map(|b| b.value()))
        })
        .collect::<nn::Result<Vec<_>>>()?;
    Ok(Mlp::from_layers(layers, mlp.config().activation)?)
}

fn part_prune(args: &Args, dense_model: &Mlp, data: &Data) -> BoxResult<()> {
    println!("\n## 90% global magnitude pruning + 1 epoch of masked fine-tuning");
    let base = accuracy(dense_model, &data.test)?;
    let model = copy(dense_model)?;
    let masks = magnitude_prune_global(&model, 0.9)?;
    masks.apply(&model)?;
    let pruned = accuracy(&model, &data.test)?;
    let report = sparsity(&model);
    let lr = args.finetune_lr;
    let opt = Masked::new(adam(&model, lr)?, masks)?;
    let tuned = fit(model, opt, data, 1, lr)?;
    let after = sparsity(&tuned);
    println!("| model | weight sparsity | test accuracy |");
    println!("|---|---|---|");
    println!(
        "| dense | {:.1}% | {base:.2}% |",
        100.0 * sparsity(dense_model).global().unwrap_or(0.0)
    );
    println!(
        "| pruned 90%, no fine-tuning | {:.1}% | {pruned:.2}% |",
        100.0 * report.global().unwrap_or(0.0)
    );
    println!(
        "| pruned 90% + 1 epoch masked Adam (lr {lr}, cosine) | {:.1}% | {:.2}% |",
        100.0 * after.global().unwrap_or(0.0),
        accuracy(&tuned, &data.test)?
    );
    for l in &after.layers {
        println!(
            "  {}: {:.1}% zeros of {}",
            l.name,
            100.0 * l.fraction().unwrap_or(0.0),
            l.numel
        );
    }
    Ok(())
}

/// Median seconds of one forward pass at `batch` rows over `repeats` runs.
fn latency(model: &dyn Module, batch: usize, repeats: usize) -> BoxResult<f64> {
    let x = Variable::constant(Tensor::rand_normal(&[batch, 784], 0.0, 1.0, 7)?);
    let _guard = autograd::NoGradGuard::new();
    for _ in 0..repeats / 10 + 1 {
        model.forward(&x)?;
    }
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t = Instant::now();
        model.forward(&x)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[repeats / 2])
}

fn part_structured(args: &Args, dense_model: &Mlp, data: &Data) -> BoxResult<()> {
    println!("\n## Structured pruning: keep half the hidden neurons (largest L2 norm)");
    let small = prune_neurons(dense_model, 0.5)?;
    let small_acc = accuracy(&small, &data.test)?;
    let lr = args.finetune_lr;
    let to_tune = prune_neurons(dense_model, 0.5)?;
    let opt = adam(&to_tune, lr)?;
    let tuned = fit(to_tune, opt, data, 1, lr)?;
    println!(
        "| model | sizes | parameters | test accuracy | latency batch 1 | latency batch 256 |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, m, acc) in [
        ("dense", dense_model, accuracy(dense_model, &data.test)?),
        ("half the neurons, no fine-tuning", &small, small_acc),
        (
            "half the neurons + 1 epoch Adam",
            &tuned,
            accuracy(&tuned, &data.test)?,
        ),
    ] {
        println!(
            "| {name} | {:?} | {} | {acc:.2}% | {:.1} us | {:.1} us |",
            m.config().sizes,
            m.num_parameters(),
            1e6 * latency(m, 1, 2000)?,
            1e6 * latency(m, 256, 300)?
        );
    }
    Ok(())
}

fn part_lowrank(dense_model: &Mlp, data: &Data) -> BoxResult<()> {
    println!("\n## Low rank: the first layer (784 -> 128) by truncated SVD, no fine-tuning");
    println!("| rank | first-layer parameters | model parameters | test accuracy |");
    println!("|---|---|---|---|");
    let first = dense_model.layers()[0].num_parameters();
    println!(
        "| dense (128) | {first} | {} | {:.2}% |",
        dense_model.num_parameters(),
        accuracy(dense_model, &data.test)?
    );
    for rank in [128, 64, 32, 16, 8, 4] {
        let m = low_rank_layer(dense_model, 0, rank)?;
        let layer0: usize = m
            .named_parameters()
            .iter()
            .filter(|(n, _)| n.starts_with("layers.0."))
            .map(|(_, p)| p.numel())
            .sum();
        println!(
            "| {rank} | {layer0} | {} | {:.2}% |",
            m.num_parameters(),
            accuracy(&m, &data.test)?
        );
    }
    Ok(())
}

/// Train a 784-32-10 student for `epochs`, on labels alone or distilled from `teacher`.
fn train_student(
    data: &Data,
    teacher: Option<&Mlp>,
    seed: u64,
    epochs: usize,
    temperature: f32,
    alpha: f32,
) -> BoxResult<f64> {
    let student = Mlp::new(MlpConfig::new(&[784, 32, 10]).seed(seed))?;
    let mut opt = adam(&student, LR)?;
    let steps = epochs * data.train_len.div_ceil(BATCH);
    let schedule = CosineAnnealing::new(LR, steps as u64, 0.0)?;
    let mut step = 0u64;
    for epoch in 0..epochs {
        for batch in data.train.epoch(epoch) {
            let batch = batch?;
            let labels = batch.classes()?;
            let x = Variable::constant(batch.inputs.clone());
            let logits = student.forward(&x)?;
            let loss = match teacher {
                Some(t) => {
                    let teacher_logits = no_grad(|| t.forward(&x))?.value();
                    distillation_loss(&logits, &teacher_logits, labels, temperature, alpha)?
                }
                None => cross_entropy(&logits, labels, None, 0.0, Reduction::Mean)?,
            };
            opt.set_lr(schedule.lr_at(step));
            opt.zero_grad();
            loss.backward()?;
            opt.step()?;
            step += 1;
        }
    }
    accuracy(&student, &data.test)
}

fn part_distill(args: &Args, teacher: &Mlp, data: &Data) -> BoxResult<()> {
    let (temperature, alpha) = (args.temperature, args.alpha);
    println!(
        "\n## Distillation: student 784-32-10 ({} epochs, Adam {LR}, cosine), teacher 784-128-64-10 ({:.2}%), T = {temperature}, alpha = {alpha}",
        args.epochs,
        accuracy(teacher, &data.test)?
    );
    println!("| seed | labels only | distilled |");
    println!("|---|---|---|");
    let (mut sum_plain, mut sum_kd) = (0.0, 0.0);
    for &seed in &args.seeds {
        let plain = train_student(data, None, seed, args.epochs, temperature, alpha)?;
        let kd = train_student(data, Some(teacher), seed, args.epochs, temperature, alpha)?;
        println!("| {seed} | {plain:.2}% | {kd:.2}% |");
        sum_plain += plain;
        sum_kd += kd;
    }
    let n = args.seeds.len() as f64;
    println!("| mean | {:.2}% | {:.2}% |", sum_plain / n, sum_kd / n);
    Ok(())
}

fn main() -> BoxResult<()> {
    models::runtime::tune_allocator();
    let args = parse_args()?;
    let data = load(&args, 1)?;
    println!(
        "threads: {}, SIMD: {}",
        rayon::current_num_threads(),
        tensor::simd::simd_level()
    );
    let model = dense(&args, &data, 1)?;
    let all = args.part == "all";
    if all || args.part == "prune" {
        part_prune(&args, &model, &data)?;
    }
    if all || args.part == "structured" {
        part_structured(&args, &model, &data)?;
    }
    if all || args.part == "lowrank" {
        part_lowrank(&model, &data)?;
    }
    if all || args.part == "distill" {
        part_distill(&args, &model, &data)?;
    }
    Ok(())
}
