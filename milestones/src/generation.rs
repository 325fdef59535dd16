//! The generation track of `mlperf-2018`: a small character-level GPT on the embedded corpus,
//! timed generating on equal work four ways: without a cache (a full forward per token), with the
//! KV cache, with the KV cache and int8 weights, and eight prompts of different lengths batched
//! against one after another. Greedy decoding, so the cached, uncached, batched and one-by-one
//! tokens must be identical; the int8 model is judged by its held-out loss instead.

use std::path::PathBuf;
use std::time::Duration;

use autograd::no_grad;
use benches::harness::{Benchmark, GenerationMetrics, GenerationVariant};
use data::{CharTokenizer, LmBatcher, Tokenizer, UnknownPolicy};
use models::checkpoint::{load_gpt, save_gpt, TokenizerSpec, TrainingState};
use models::generate::row_seed;
use models::gpt::{Gpt, GptConfig};
use nn::Module;
use optim::{clip_grad_norm, AdamConfig, AdamW, Optimizer};

use crate::corpus;
use crate::progress::bar;
use crate::report::format_count;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// What the generation track needs from the command line.
pub struct GenerationSettings {
    pub seed: u64,
    /// Load `gpt.safetensors` from this directory instead of training.
    pub load: Option<PathBuf>,
    /// Save the trained model as `gpt.safetensors` here.
    pub save: Option<PathBuf>,
    /// Training steps (default 300, 30 with `quick`).
    pub steps: Option<usize>,
    pub quick: bool,
    /// Most timed runs per measurement.
    pub runs: usize,
}

/// A character-level GPT on the embedded corpus (or loaded from `--load DIR/gpt.safetensors`),
/// timed generating greedily with and without its KV cache on the same prompt and length.
pub fn generation_track(s: &GenerationSettings) -> BoxResult<GenerationMetrics> {
    let runs = s.runs;
    let seed = s.seed;
    let text = corpus::generate(1500, 2017);
    let loaded = match &s.load {
        Some(dir) if dir.join("gpt.safetensors").exists() => {
            let path = dir.join("gpt.safetensors");
            let ckpt = load_gpt(&path)?;
            let TokenizerSpec::Char(tok) = ckpt.tokenizer else {
                return Err(format!("{}: expected a character tokenizer", path.display()).into());
            };
            println!("gpt: loaded from {}", path.display());
            Some((ckpt.model, tok))
        }
        _ => None,
    };
    let (mut gpt, tok) = match loaded {
        Some(pair) => pair,
        None => {
            let tok = CharTokenizer::from_corpus(&text, UnknownPolicy::Skip);
            let config = GptConfig::tiny(tok.vocab_size());
            let gpt = Gpt::new(config, seed)?;
            let steps = s.steps.unwrap_or(if s.quick { 30 } else { 300 });
            train_gpt(&gpt, &tok.encode(&text)?, steps, seed)?;
            (gpt, tok)
        }
    };
    gpt.eval();
    if let Some(dir) = &s.save {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("{}: cannot create directory: {e}", dir.display()))?;
        let path = dir.join("gpt.safetensors");
        save_gpt(
            &path,
            &gpt,
            &TokenizerSpec::Char(tok.clone()),
            &TrainingState::default(),
        )?;
        println!("gpt: saved to {}", path.display());
    }
    let prompt = tok.encode("the ")?;
    let new_tokens = if s.quick { 24 } else { 56 };
    // Greedy (temperature 0): both paths must pick exactly the same tokens.
    let uncached_ids = gpt.generate_uncached(&prompt, new_tokens, 0.0, None, seed)?;
    let cached_ids = gpt.generate(&prompt, new_tokens, 0.0, None, seed)?;
    let identical = uncached_ids == cached_ids;
    println!(
        "greedy sample: {:?}",
        tok.decode(&cached_ids)?.replace('\n', " / ")
    );
    let bench = Benchmark::new(runs)
        .warmup(1)
        .budget(Duration::from_secs(2));
    let uncached = bench.run(|| gpt.generate_uncached(&prompt, new_tokens, 0.0, None, seed))?;
    let cached = bench.run(|| gpt.generate(&prompt, new_tokens, 0.0, None, seed))?;

    // int8: every Linear of a copy quantized; held-out loss and cached speed against fp32.
    let int8 = gpt.quantized()?;
    let held_out = tok.encode(&corpus::generate(300, 2018))?;
    let val_loss = (
        held_out_loss(&gpt, &held_out)?,
        held_out_loss(&int8, &held_out)?,
    );
    let int8_cached = bench.run(|| int8.generate(&prompt, new_tokens, 0.0, None, seed))?;
    let mut variants = vec![GenerationVariant {
        name: "int8 + KV cache".into(),
        reference: "fp32 + KV cache".into(),
        new_tokens,
        ms: int8_cached.millis(),
        reference_ms: cached.millis(),
        identical: None,
    }];

    // Batched: 8 prompts of different lengths (1 to 8 characters) decoded together against one
    // after another; every row stays inside the window.
    let prompts: Vec<Vec<usize>> = (0..8)
        .map(|i| tok.encode(&"the clever"[..1 + i]))
        .collect::<Result<_, _>>()?;
    let batch_tokens = (gpt.config().block_size - prompts[7].len()).min(new_tokens);
    let one_by_one = || -> models::Result<Vec<Vec<usize>>> {
        let rows = prompts.iter().enumerate();
        rows.map(|(i, p)| gpt.generate(p, batch_tokens, 0.0, None, row_seed(seed, i)))
            .collect()
    };
    let batched_ids = gpt.generate_batch(&prompts, batch_tokens, 0.0, None, seed)?;
    let batched_identical = batched_ids == one_by_one()?;
    let sequential = bench.run(one_by_one)?;
    let batched = bench.run(|| gpt.generate_batch(&prompts, batch_tokens, 0.0, None, seed))?;
    variants.push(GenerationVariant {
        name: format!("{} prompts batched", prompts.len()),
        reference: format!("{} prompts one by one", prompts.len()),
        new_tokens: batch_tokens * prompts.len(),
        ms: batched.millis(),
        reference_ms: sequential.millis(),
        identical: Some(batched_identical),
    });
    let cfg = gpt.config();
    Ok(GenerationMetrics {
        model: format!(
            "gpt {} layers x {} dims, {} parameters",
            cfg.n_layer,
            cfg.n_embd,
            format_count(gpt.num_parameters())
        ),
        prompt_tokens: prompt.len(),
        new_tokens,
        uncached_ms: uncached.millis(),
        cached_ms: cached.millis(),
        identical,
        variants,
        val_loss: Some(val_loss),
    })
}

/// Mean next-token loss of `gpt` over every non-overlapping window of `tokens` (no gradients).
pub fn held_out_loss(gpt: &Gpt, tokens: &[usize]) -> BoxResult<f64> {
    let t = gpt.config().block_size;
    let windows = (tokens.len().saturating_sub(1)) / t;
    if windows == 0 {
        return Err(format!(
            "held-out text of {} tokens is shorter than one window",
            tokens.len()
        )
        .into());
    }
    let mut total = 0.0;
    for w in 0..windows {
        let (inputs, targets) = (
            &tokens[w * t..(w + 1) * t],
            &tokens[w * t + 1..(w + 1) * t + 1],
        );
        total += no_grad(|| gpt.loss(inputs, targets, 1, t))?.item()? as f64;
    }
    Ok(total / windows as f64)
}

/// A short AdamW run on next-character prediction.
fn train_gpt(gpt: &Gpt, tokens: &[usize], steps: usize, seed: u64) -> BoxResult<()> {
    let block = gpt.config().block_size;
    let mut batches = LmBatcher::new(tokens.to_vec(), block, 16, seed)?;
    let mut opt = AdamW::new(
        gpt.named_parameters(),
        AdamConfig {
            lr: 3e-3,
            ..AdamConfig::adamw()
        },
    )?;
    let progress = bar(steps as u64, "gpt");
    let mut last = f32::NAN;
    for _ in 0..steps {
        let b = batches.sample();
        let loss = gpt.loss(&b.inputs, &b.targets, b.batch_size, b.block_size)?;
        last = loss.item()?;
        if !last.is_finite() {
            return Err(format!("gpt training diverged: the loss is {last}").into());
        }
        opt.zero_grad();
        loss.backward()?;
        clip_grad_norm(&opt.named_parameters(), 1.0)?;
        opt.step()?;
        progress.set_message(format!("loss {last:.3}"));
        progress.inc(1);
    }
    progress.finish_and_clear();
    println!("gpt: {steps} training steps on the embedded corpus, final loss {last:.3}");
    Ok(())
}
