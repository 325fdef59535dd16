//! Text generation speed, with and without the KV cache, on equal work: the same model, prompt,
//! number of new tokens, temperature, top-k and seed, and the same tokens out (checked).
//!
//! ```text
//! cargo run -p benches --release --bin generate -- --preset nanogpt-baby --threads 2
//! cargo run -p benches --release --bin generate -- --preset tiny --new-tokens 200
//! cargo run -p benches --release --bin generate -- --preset tiny --batch 8 --temperature 0
//! ```
//!
//! | preset | layers | heads | n_embd | block | vocab | biases | head | parameters |
//! |---|---|---|---|---|---|---|---|---|
//! | `nanogpt-baby` (alias `shakespeare`) | 4 | 4 | 128 | 64 | 65 | no | tied | 804,096 |
//! | `tiny` | 2 | 4 | 64 | 64 | 30 | yes | untied | 108,032 |
//!
//! Weights are random (seeded): speed does not depend on what the model learned.
//!
//! Flags (`--help`): `--preset NAME`, `--new-tokens N` (default `block_size - prompt_len`: the window
//! fills exactly; more tokens make it slide), `--prompt-len N` (default 1), `--threads N`
//! (default 2), `--repeats N` (timed runs of each path, the best is reported; default 3),
//! `--temperature T` (default 1.0), `--top-k K` (default 10, 0 = none), `--seed N`,
//! `--json PATH` (write the summary), `--only cached|uncached` (time one path, e.g. under a
//! profiler; no comparison then). Prints tokens per second of both paths and the speedup.
//!
//! `--batch N` (N >= 2) compares batched decoding instead: `Gpt::generate_batch` of N prompts
//! (prompt `i` holds `prompt_len + i` tokens, so the rows sit at different positions) against
//! `Gpt::generate` of the same prompts one after another (row `i` with `row_seed(seed, i)`),
//! checks that the tokens are identical, and prints the tokens per second of both (all rows'
//! new tokens over the wall time; the two paths alternate run by run, best of `--repeats` each)
//! and the speedup. The default number of new tokens keeps the
//! longest prompt inside the window.

use std::time::Instant;

use clap::Parser;
use models::generate::row_seed;
use models::gpt::{Gpt, GptConfig};
use nn::Module;
use serde_json::json;

fn preset(name: &str) -> Option<(&'static str, GptConfig)> {
    match name {
        "nanogpt-baby" | "shakespeare" => Some(("nanogpt-baby", GptConfig::nanogpt_baby(65))),
        "tiny" => Some(("tiny", GptConfig::tiny(30))),
        _ => None,
    }
}

/// Text generation speed with and without the KV cache (see the file's doc for the flags).
#[derive(Parser, Debug)]
#[command(about = "Text generation speed, with and without the KV cache, on equal work")]
struct Args {
    /// `nanogpt-baby` (alias `shakespeare`) or `tiny`.
    #[arg(long, default_value = "nanogpt-baby")]
    preset: String,
    /// New tokens per row (default: fill the window exactly).
    #[arg(long)]
    new_tokens: Option<usize>,
    /// Prompt tokens.
    #[arg(long, default_value_t = 1, value_parser = positive)]
    prompt_len: usize,
    /// Threads of the compute pool.
    #[arg(long, default_value_t = 2, value_parser = positive)]
    threads: usize,
    /// Timed runs of each path; the best is reported.
    #[arg(long, default_value_t = 3, value_parser = positive)]
    repeats: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    /// Top-k sampling (0 = none).
    #[arg(long, default_value_t = 10)]
    top_k: usize,
    /// Seed of the model and the sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the summary as JSON to this path.
    #[arg(long)]
    json: Option<String>,
    /// Time one path only (`cached` or `uncached`).
    #[arg(long, value_parser = ["cached", "uncached"])]
    only: Option<String>,
    /// Rows decoded together (2 or more compares batched decoding).
    #[arg(long, default_value_t = 1, value_parser = positive)]
    batch: usize,
}

/// A whole number of at least 1.
fn positive(v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("needs a whole number of at least 1, got {v:?}")),
    }
}

fn main() {
    let args = Args::parse();
    if let Err(e) = tensor::simd::simd_cap_from_env() {
        eprintln!("generate: {e}");
        std::process::exit(2);
    }
    let Some((name, config)) = preset(&args.preset) else {
        eprintln!(
            "unknown preset {:?}: choose nanogpt-baby (shakespeare) or tiny",
            args.preset
        );
        std::process::exit(2);
    };
    // rayon reads this when its global pool starts (on the first parallel kernel).
    std::env::set_var("RAYON_NUM_THREADS", args.threads.to_string());
    models::runtime::tune_allocator();
    if let Err(e) = run(&args, name, config) {
        eprintln!("generate: {e}");
        std::process::exit(1);
    }
}

/// The best (shortest) time of `repeats` runs of `f`, and its output.
fn best_of<T>(
    repeats: usize,
    mut f: impl FnMut() -> models::Result<T>,
) -> models::Result<(f64, T)> {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..repeats {
        let t0 = Instant::now();
        let value = f()?;
        best = best.min(t0.elapsed().as_secs_f64());
        out = Some(value);
    }
    Ok((best, out.expect("repeats >= 1")))
}

fn run(args: &Args, name: &str, config: GptConfig) -> Result<(), Box<dyn std::error::Error>> {
    let mut model = Gpt::new(config.clone(), args.seed)?;
    model.eval();
    if args.batch > 1 {
        return run_batched(args, name, &config, &model);
    }
    let block = config.block_size;
    let prompt: Vec<usize> = (0..args.prompt_len)
        .map(|i| (i * 7 + 1) % config.vocab_size)
        .collect();
    let new_tokens = args
        .new_tokens
        .unwrap_or_else(|| block.saturating_sub(args.prompt_len).max(1));
    let top_k = (args.top_k > 0).then_some(args.top_k);
    let (temperature, seed) = (args.temperature, args.seed ^ 0x9e37);
    println!(
        "# preset {name} ({} threads): {} parameters, block {block}, prompt {} tokens, {new_tokens} new tokens{}",
        args.threads,
        model.num_parameters(),
        prompt.len(),
        if prompt.len() + new_tokens > block {
            format!(
                " (the window slides {} times)",
                prompt.len() + new_tokens - block
            )
        } else {
            String::new()
        }
    );
    // Warm up both paths (thread pool, allocator).
    model.generate(&prompt, 8, temperature, top_k, seed)?;
    model.generate_uncached(&prompt, 8, temperature, top_k, seed)?;
    let cached_run = || model.generate(&prompt, new_tokens, temperature, top_k, seed);
    let uncached_run = || model.generate_uncached(&prompt, new_tokens, temperature, top_k, seed);
    if let Some(only) = &args.only {
        let (t, _) = if only == "cached" {
            best_of(args.repeats, cached_run)?
        } else {
            best_of(args.repeats, uncached_run)?
        };
        println!(
            "{name} threads={} new_tokens={new_tokens}: {only} {:.0} tokens/s ({:.3} ms/token, best of {})",
            args.threads,
            new_tokens as f64 / t,
            t * 1e3 / new_tokens as f64,
            args.repeats
        );
        return Ok(());
    }
    let (t_cached, cached) = best_of(args.repeats, cached_run)?;
    let (t_uncached, uncached) = best_of(args.repeats, uncached_run)?;
    if cached != uncached {
        return Err("cached and uncached generation produced different tokens".into());
    }
    let cached_tps = new_tokens as f64 / t_cached;
    let uncached_tps = new_tokens as f64 / t_uncached;
    let speedup = cached_tps / uncached_tps;
    println!(
        "{name} threads={} new_tokens={new_tokens}: cached {cached_tps:.0} tokens/s ({:.3} ms/token), \
         uncached {uncached_tps:.0} tokens/s ({:.3} ms/token), speedup {speedup:.2}x (best of {}; identical tokens)",
        args.threads,
        t_cached * 1e3 / new_tokens as f64,
        t_uncached * 1e3 / new_tokens as f64,
        args.repeats
    );
    write_json(
        args,
        name,
        &model,
        json!({
            "prompt_len": prompt.len(),
            "new_tokens": new_tokens,
            "cached_tokens_per_s": cached_tps,
            "uncached_tokens_per_s": uncached_tps,
            "speedup": speedup,
        }),
    )?;
    Ok(())
}

/// `--batch N`: `generate_batch` of N prompts of different lengths against `generate` of each
/// prompt in turn, on equal work (the same tokens, checked).
fn run_batched(
    args: &Args,
    name: &str,
    config: &GptConfig,
    model: &Gpt,
) -> Result<(), Box<dyn std::error::Error>> {
    let (block, n) = (config.block_size, args.batch);
    let prompts: Vec<Vec<usize>> = (0..n)
        .map(|row| {
            (0..args.prompt_len + row)
                .map(|i| (i * 7 + row * 3 + 1) % config.vocab_size)
                .collect()
        })
        .collect();
    let longest = args.prompt_len + n - 1;
    let new_tokens = args
        .new_tokens
        .unwrap_or_else(|| block.saturating_sub(longest).max(1));
    let top_k = (args.top_k > 0).then_some(args.top_k);
    let (temperature, seed) = (args.temperature, args.seed ^ 0x9e37);
    println!(
        "# preset {name} ({} threads): {} parameters, block {block}, {n} prompts of {}..={longest} tokens, {new_tokens} new tokens each{}",
        args.threads,
        model.num_parameters(),
        args.prompt_len,
        if longest + new_tokens > block {
            " (the longest rows slide past the window)"
        } else {
            " (inside the window)"
        }
    );
    let batched_run = || model.generate_batch(&prompts, new_tokens, temperature, top_k, seed);
    let one_by_one_run = || {
        prompts
            .iter()
            .enumerate()
            .map(|(row, p)| model.generate(p, new_tokens, temperature, top_k, row_seed(seed, row)))
            .collect::<models::Result<Vec<_>>>()
    };
    // Warm up both paths (thread pool, allocator).
    model.generate_batch(&prompts, 8, temperature, top_k, seed)?;
    model.generate(&prompts[0], 8, temperature, top_k, seed)?;
    // The two paths alternate, run by run, so a change in the machine's load hits both alike.
    let (mut t_batched, mut t_alone) = (f64::INFINITY, f64::INFINITY);
    let (mut batched, mut alone) = (Vec::new(), Vec::new());
    for _ in 0..args.repeats {
        let (t, out) = best_of(1, batched_run)?;
        (t_batched, batched) = (t_batched.min(t), out);
        let (t, out) = best_of(1, one_by_one_run)?;
        (t_alone, alone) = (t_alone.min(t), out);
    }
    if batched != alone {
        return Err("batched and one-by-one generation produced different tokens".into());
    }
    let total = (n * new_tokens) as f64;
    let (batched_tps, alone_tps) = (total / t_batched, total / t_alone);
    let speedup = batched_tps / alone_tps;
    println!(
        "{name} threads={} batch={n} new_tokens={new_tokens}: batched {batched_tps:.0} tokens/s ({:.3} ms/step), \
         one by one {alone_tps:.0} tokens/s, speedup {speedup:.2}x (best of {}; identical tokens)",
        args.threads,
        t_batched * 1e3 / new_tokens as f64,
        args.repeats
    );
    write_json(
        args,
        name,
        model,
        json!({
            "batch": n,
            "prompt_lens": prompts.iter().map(Vec::len).collect::<Vec<_>>(),
            "new_tokens": new_tokens,
            "batched_tokens_per_s": batched_tps,
            "one_by_one_tokens_per_s": alone_tps,
            "speedup": speedup,
        }),
    )?;
    Ok(())
}

/// `--json PATH`: the fields every run reports (preset, threads, parameters, window, sampling,
/// repeats; the tokens of the two paths were checked identical) and the run's own `fields`.
fn write_json(
    args: &Args,
    name: &str,
    model: &Gpt,
    fields: serde_json::Value,
) -> Result<(), Box<dyn std::error::Error>> {
    let Some(path) = &args.json else {
        return Ok(());
    };
    let mut summary = json!({
        "preset": name,
        "threads": args.threads,
        "params": model.num_parameters(),
        "block_size": model.config().block_size,
        "temperature": args.temperature,
        "top_k": (args.top_k > 0).then_some(args.top_k),
        "repeats": args.repeats,
        "identical_tokens": true,
    });
    if let (Some(all), Some(own)) = (summary.as_object_mut(), fields.as_object()) {
        all.extend(own.clone());
    }
    std::fs::write(path, serde_json::to_string_pretty(&summary)? + "\n")
        .map_err(|e| format!("{path}: {e}"))?;
    Ok(())
}
