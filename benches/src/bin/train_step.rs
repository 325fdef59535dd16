//! One GPT training step (forward, backward, optimizer) on random tokens, timed.
//!
//! The presets match `../shared/bench/torch_gpt_bench.py`, so the two can run side by side:
//!
//! ```text
//! cargo run -p benches --release --bin train_step -- --preset nanogpt-baby --threads 2
//! python torch_gpt_bench.py --preset nanogpt-baby --threads 2
//! ```
//!
//! | preset | layers | heads | n_embd | block | batch | vocab | biases | head | optimizer |
//! |---|---|---|---|---|---|---|---|---|---|
//! | `nanogpt-baby` | 4 | 4 | 128 | 64 | 12 | 65 | no | tied | AdamW lr 1e-3, betas (0.9, 0.99), wd 0.1 |
//! | `tinytorch-tinystories` | 6 | 8 | 256 | 128 | 32 | 65 | yes | untied | Adam lr 1e-2 |
//!
//! (The PyTorch script's untied head has a bias when the blocks do; nanoGPT's head never has
//! one, and neither has ours: 65 parameters and one broadcast add of difference.)
//!
//! Flags (`--help`): `--preset NAME`, `--steps N` (timed, default 50), `--warmup N` (default
//! 10), `--threads N` (default 2), `--seed N`, `--json PATH` (write the summary), `--phases`
//! (also time forward, backward and the optimizer step, and the step per op family: GEMM,
//! attention, norm, activations, loss, optimizer, and the rest, which is copies, allocation and
//! autograd bookkeeping). Prints the median ms per step and tokens per second
//! (`batch * block / median`). The SIMD level (`TINYTORCH_SIMD`) and build are printed first.

use std::time::Instant;

use autograd::Variable;
use clap::Parser;
use models::gpt::{Gelu, Gpt, GptConfig};
use nn::Module;
use optim::{Adam, AdamConfig, AdamW, Optimizer};
use serde_json::json;
use tensor::profile::{self, OpFamily};
use tensor::TensorRng;

/// A benchmark configuration.
struct Preset {
    name: &'static str,
    config: GptConfig,
    batch: usize,
    adamw: bool,
    lr: f64,
    weight_decay: f64,
}

fn preset(name: &str) -> Option<Preset> {
    let gpt = |n_layer, n_head, n_embd, block_size, bias, tie_weights| GptConfig {
        vocab_size: 65,
        block_size,
        n_layer,
        n_head,
        n_embd,
        dropout: 0.0,
        bias,
        tie_weights,
        gelu: Gelu::Exact,
    };
    match name {
        "nanogpt-baby" => Some(Preset {
            name: "nanogpt-baby",
            config: gpt(4, 4, 128, 64, false, true),
            batch: 12,
            adamw: true,
            lr: 1e-3,
            weight_decay: 0.1,
        }),
        "tinytorch-tinystories" => Some(Preset {
            name: "tinytorch-tinystories",
            config: gpt(6, 8, 256, 128, true, false),
            batch: 32,
            adamw: false,
            lr: 1e-2,
            weight_decay: 0.0,
        }),
        _ => None,
    }
}

/// One GPT training step, timed (presets as in the PyTorch script).
#[derive(Parser, Debug)]
#[command(about = "One GPT training step (forward, backward, optimizer) on random tokens, timed")]
struct Args {
    /// `nanogpt-baby` or `tinytorch-tinystories`.
    #[arg(long, default_value = "nanogpt-baby")]
    preset: String,
    /// Timed steps.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    steps: u64,
    /// Untimed steps first.
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// Threads of the compute pool.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    threads: u64,
    /// Seed of the model and the random tokens.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the summary as JSON to this path.
    #[arg(long)]
    json: Option<String>,
    /// Also time forward, backward and the optimizer, and each op family (GEMM, attention,
    /// norm, activations, loss, optimizer, the rest: copies, allocation, autograd bookkeeping).
    #[arg(long)]
    phases: bool,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args = Args::parse();
    if let Err(e) = tensor::simd::simd_cap_from_env() {
        eprintln!("train_step: {e}");
        std::process::exit(2);
    }
    let Some(preset) = preset(&args.preset) else {
        eprintln!(
            "unknown preset {:?}: choose nanogpt-baby or tinytorch-tinystories",
            args.preset
        );
        std::process::exit(2);
    };
    if let Err(e) = models::runtime::build_global_pool(args.threads as usize) {
        eprintln!("train_step: --threads {}: {e}", args.threads);
        std::process::exit(2);
    }
    models::runtime::tune_allocator();

    // The step runs on a worker of the pool, as the milestones' training does.
    let result = models::runtime::on_pool(|| run(&args, &preset).map_err(|e| e.to_string()));
    if let Err(e) = result {
        eprintln!("train_step: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args, preset: &Preset) -> Result<(), Box<dyn std::error::Error>> {
    let model = Gpt::new(preset.config.clone(), args.seed)?;
    let params = model.named_parameters();
    let mut opt: Box<dyn Optimizer> = if preset.adamw {
        Box::new(AdamW::new(
            params,
            AdamConfig {
                lr: preset.lr,
                beta2: 0.99,
                weight_decay: preset.weight_decay,
                ..AdamConfig::adamw()
            },
        )?)
    } else {
        Box::new(Adam::new(
            params,
            AdamConfig {
                lr: preset.lr,
                ..AdamConfig::default()
            },
        )?)
    };
    let (b, t, v) = (
        preset.batch,
        preset.config.block_size,
        preset.config.vocab_size,
    );
    println!(
        "# SIMD {} (TINYTORCH_SIMD caps it), GEMM AVX-512 kernels built: {}",
        tensor::simd::simd_level(),
        tensor::simd::GEMM_AVX512_BUILT
    );
    println!(
        "# preset {} ({} threads): {} parameters ({} without positions), batch {b} x block {t}",
        preset.name,
        args.threads,
        model.num_parameters(),
        model.num_parameters_without_positions()
    );
    let mut rng = TensorRng::new(args.seed ^ 0x5eed);
    let mut times = Vec::with_capacity(args.steps as usize);
    let (mut fwd, mut bwd, mut upd) = (Vec::new(), Vec::new(), Vec::new());
    let mut last_loss = f32::NAN;
    // Per timed step: seconds per op family, in `OpFamily::ALL` order.
    let mut families: Vec<Vec<f64>> = Vec::new();
    profile::set_enabled(args.phases);
    for i in 0..args.warmup + args.steps {
        profile::reset();
        let ids: Vec<usize> = (0..b * t).map(|_| rng.below(v)).collect();
        let targets: Vec<usize> = (0..b * t).map(|_| rng.below(v)).collect();
        let t0 = Instant::now();
        let loss: Variable = model.loss(&ids, &targets, b, t)?;
        let t1 = Instant::now();
        opt.zero_grad();
        loss.backward()?;
        let t2 = Instant::now();
        opt.step()?;
        last_loss = loss.item()?;
        let t3 = Instant::now();
        if i >= args.warmup {
            times.push((t3 - t0).as_secs_f64());
            fwd.push((t1 - t0).as_secs_f64());
            bwd.push((t2 - t1).as_secs_f64());
            upd.push((t3 - t2).as_secs_f64());
            families.push(profile::totals().iter().map(|&(_, s)| s).collect());
        }
    }
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let mut sorted = times.clone();
    let med = median(&mut sorted);
    let p90 = sorted[(sorted.len() * 9 / 10).min(sorted.len() - 1)];
    let tokens_per_s = (b * t) as f64 / med;
    println!(
        "{} threads={} median {:.3} ms/step (min {:.3}, p90 {:.3}), {:.1} tokens/s, last loss {:.4}",
        preset.name,
        args.threads,
        med * 1e3,
        min * 1e3,
        p90 * 1e3,
        tokens_per_s,
        last_loss
    );
    let phases = json!({
        "forward_ms": median(&mut fwd) * 1e3,
        "backward_ms": median(&mut bwd) * 1e3,
        "optimizer_ms": median(&mut upd) * 1e3,
    });
    let mut by_family = serde_json::Map::new();
    if args.phases {
        println!(
            "phases (medians): forward {:.3} ms, zero_grad + backward {:.3} ms, optimizer {:.3} ms",
            phases["forward_ms"].as_f64().unwrap_or(0.0),
            phases["backward_ms"].as_f64().unwrap_or(0.0),
            phases["optimizer_ms"].as_f64().unwrap_or(0.0)
        );
        // Mean per family over the timed steps (means add up to the mean step; medians do not).
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let step_ms = mean(&times) * 1e3;
        let mut rows: Vec<(&str, f64)> = OpFamily::ALL
            .iter()
            .enumerate()
            .map(|(k, f)| {
                let per_step: Vec<f64> = families.iter().map(|s| s[k]).collect();
                (f.name(), mean(&per_step) * 1e3)
            })
            .collect();
        rows.push(("optimizer", mean(&upd) * 1e3));
        let counted: f64 = rows.iter().map(|r| r.1).sum();
        rows.push(("other (copies, allocation, autograd)", step_ms - counted));
        println!("per op family (mean ms per step, share of the mean step {step_ms:.3} ms):");
        for (name, ms) in &rows {
            println!("  {name:<38} {ms:>9.3} ms {:>5.1}%", 100.0 * ms / step_ms);
            by_family.insert(name.to_string(), json!(ms));
        }
    }
    if let Some(path) = &args.json {
        let summary = json!({
            "preset": preset.name,
            "threads": args.threads,
            "params": model.num_parameters(),
            "batch": b,
            "block_size": t,
            "steps": args.steps,
            "warmup": args.warmup,
            "median_ms": med * 1e3,
            "min_ms": min * 1e3,
            "p90_ms": p90 * 1e3,
            "tokens_per_s": tokens_per_s,
            "last_loss": last_loss,
            "phases": phases,
            "families_ms": by_family,
            "simd": tensor::simd::simd_level().name(),
            "gemm_avx512_built": tensor::simd::GEMM_AVX512_BUILT,
        });
        std::fs::write(path, serde_json::to_string_pretty(&summary)? + "\n")
            .map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}
