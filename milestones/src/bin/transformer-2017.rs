//! 2017: "Attention is all you need". A GPT (a decoder-only transformer) learns language one
//! character at a time. With no dataset it trains on a mini-language the project generates
//! itself and reports how many of its own sampled sentences are grammatical; `--task reverse`
//! is the attention proof (reversing a sequence needs every output to look far back); real
//! corpora (TinyTalks, Shakespeare, TinyStories) are read from `--data-dir`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use autograd::no_grad;
use clap::Parser;
use data::{split_train_val, CharTokenizer, LmBatcher, Tokenizer, UnknownPolicy};
use milestones::attention_tasks::greedy_continuations;
use milestones::cli::CommonArgs;
use milestones::corpus;
use milestones::plot::{svg_plot, terminal_plot, Series};
use milestones::progress::bar;
use milestones::report::{format_count, RunReport};
use milestones::tasks::{reversal_examples, REVERSE_SEPARATOR, REVERSE_VOCAB};
use models::checkpoint::{load_gpt, save_gpt, TokenizerSpec, TrainingState};
use models::gpt::{Gelu, Gpt, GptConfig};
use nn::Module;
use optim::schedule::WarmupCosine;
use optim::{clip_grad_norm, AdamConfig, AdamW, LrSchedule, Optimizer, ParamGroup};
use tensor::TensorRng;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Parser, Debug)]
#[command(
    name = "transformer-2017",
    about = "Train a character-level GPT (default: on a generated mini-language), or generate from a checkpoint"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// `lm` (language modelling on a corpus) or `reverse` (the sequence-reversal attention proof).
    #[arg(long, default_value = "lm")]
    task: String,
    /// Where to save the trained model (default: runs/transformer-2017/<dataset>.safetensors).
    #[arg(long, value_name = "PATH")]
    save: Option<PathBuf>,
    /// Generate from this checkpoint instead of training.
    #[arg(long, value_name = "PATH")]
    load: Option<PathBuf>,
    /// With --load: answer questions read one per line from standard input (a TinyTalks model),
    /// greedily; end of input ends it. Works in a pipe.
    #[arg(long, requires = "load")]
    chat: bool,
    /// Prompt for generation (with --load).
    #[arg(long, default_value = "")]
    prompt: String,
    /// Tokens to generate (with --load).
    #[arg(long, default_value_t = 200)]
    max_new_tokens: usize,
    /// Sampling temperature (0 is greedy).
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Sample only among the k most likely tokens.
    #[arg(long)]
    top_k: Option<usize>,
    /// Peak learning rate (default depends on the dataset).
    #[arg(long)]
    lr: Option<f64>,
    /// Transformer blocks (default depends on the dataset).
    #[arg(long)]
    n_layer: Option<usize>,
    /// Attention heads per block.
    #[arg(long)]
    n_head: Option<usize>,
    /// Embedding width.
    #[arg(long)]
    n_embd: Option<usize>,
    /// Context length in characters.
    #[arg(long)]
    block_size: Option<usize>,
    /// Sequences per training step.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Dropout probability in the blocks.
    #[arg(long)]
    dropout: Option<f32>,
    /// AdamW weight decay of the matrices (biases and norms never decay).
    #[arg(long)]
    weight_decay: Option<f64>,
}

/// Model size and optimisation settings of one run.
#[derive(Debug, Clone)]
struct Recipe {
    n_layer: usize,
    n_head: usize,
    n_embd: usize,
    block_size: usize,
    batch_size: usize,
    dropout: f32,
    weight_decay: f64,
    /// Linear layers and LayerNorms with biases (nanoGPT's Shakespeare config has none).
    bias: bool,
    /// The output head shares the token embedding's matrix.
    tie_weights: bool,
    lr: f64,
    min_lr: f64,
    warmup: u64,
    steps: usize,
    eval_every: usize,
    eval_batches: usize,
}

fn recipe(dataset: &str, quick: bool) -> Recipe {
    let mut r = match dataset {
        // nanoGPT's CPU config for character-level Shakespeare.
        "shakespeare" => Recipe {
            n_layer: 4,
            n_head: 4,
            n_embd: 128,
            block_size: 64,
            batch_size: 12,
            dropout: 0.0,
            weight_decay: 0.1,
            bias: false,
            tie_weights: true,
            lr: 1e-3,
            min_lr: 1e-4,
            warmup: 100,
            steps: 2000,
            eval_every: 250,
            eval_batches: 40,
        },
        // The original course's TinyStories config.
        "tinystories" => Recipe {
            n_layer: 6,
            n_head: 8,
            n_embd: 256,
            block_size: 128,
            batch_size: 32,
            dropout: 0.1,
            weight_decay: 0.1,
            bias: true,
            tie_weights: false,
            lr: 1e-3,
            min_lr: 1e-4,
            warmup: 100,
            steps: 3000,
            eval_every: 250,
            eval_batches: 20,
        },
        "tinytalks" => Recipe {
            // 12 KB of training text: depth helps and width does not, dropout 0.25 keeps
            // validation loss from turning up, and small batches (more, noisier steps on the
            // same tokens) generalise better (swept: 2-12 layers, 64-128 wide, dropout 0-0.35,
            // batches 4-32, tied head, blocks 64-128; see README.md).
            n_layer: 8,
            n_head: 4,
            n_embd: 64,
            block_size: 64,
            batch_size: 8,
            dropout: 0.25,
            weight_decay: 0.1,
            bias: true,
            tie_weights: false,
            lr: 2e-3,
            min_lr: 2e-4,
            warmup: 100,
            steps: 3000,
            eval_every: 300,
            eval_batches: 20,
        },
        // The embedded mini-language: small and quick.
        _ => Recipe {
            n_layer: 2,
            n_head: 4,
            n_embd: 64,
            block_size: 64,
            batch_size: 16,
            dropout: 0.0,
            weight_decay: 0.1,
            bias: true,
            tie_weights: false,
            lr: 3e-3,
            min_lr: 3e-4,
            warmup: 100,
            steps: 2500,
            eval_every: 250,
            eval_batches: 10,
        },
    };
    if quick {
        r.steps = match dataset {
            "shakespeare" => 300,
            "tinystories" => 100,
            "tinytalks" => 300,
            _ => 200,
        };
        r.eval_every = r.steps / 3;
        r.eval_batches = r.eval_batches.min(10);
    }
    r
}

/// Training text, validation text, and held-out TinyTalks questions (with their answers).
struct Corpus {
    name: String,
    train: String,
    val: String,
    questions: Vec<(String, String)>,
}

fn load_corpus(dataset: Option<&str>, data_dir: Option<&Path>, seed: u64) -> BoxResult<Corpus> {
    let name = dataset.unwrap_or("embedded").to_string();
    let (train, val, questions) = match name.as_str() {
        "embedded" => {
            // Deterministic, and independent of --seed so the corpus is the same for every run.
            let text = corpus::generate(6000, 2017);
            let cut = text.len() * 9 / 10;
            let cut = text[..cut].rfind('\n').map_or(cut, |i| i + 1);
            (text[..cut].to_string(), text[cut..].to_string(), Vec::new())
        }
        "shakespeare" => {
            let text = data::Shakespeare::find(data_dir)?;
            let cut = text.len() * 9 / 10;
            (text[..cut].to_string(), text[cut..].to_string(), Vec::new())
        }
        "tinytalks" => {
            let talks = data::TinyTalks::find(data_dir)?;
            let join = |pairs: &[data::QaPair]| pairs.iter().map(|p| p.to_text()).collect::<String>();
            let questions = talks.test.iter().map(|p| (p.question.clone(), p.answer.clone())).collect();
            (join(&talks.train), join(&talks.val), questions)
        }
        "tinystories" => {
            let stories = data::TinyStories::find(data_dir)?;
            let mut rng = TensorRng::new(seed);
            let _ = &mut rng;
            let text = stories.join("\n\n");
            let cut = text.len() * 9 / 10;
            let cut = (0..=cut).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            (text[..cut].to_string(), text[cut..].to_string(), Vec::new())
        }
        other => {
            return Err(format!(
                "unknown dataset '{other}': choose shakespeare, tinytalks, tinystories, or none for the embedded corpus"
            )
            .into())
        }
    };
    Ok(Corpus {
        name,
        train,
        val,
        questions,
    })
}

/// Everything a training run produced, for the report and the plots.
struct Trained {
    train_curve: Vec<(f64, f64)>,
    val_curve: Vec<(f64, f64)>,
    final_val: f64,
    tokens_per_second: f64,
}

/// Mean loss over `batches` fixed windows of the validation tokens.
fn evaluate(gpt: &Gpt, val: &LmBatcher, batches: usize) -> BoxResult<f64> {
    let all = val.sequential();
    let n = all.len().min(batches).max(1);
    let mut total = 0.0f64;
    let mut count = 0usize;
    for batch in all.iter().take(n) {
        let loss = no_grad(|| {
            gpt.loss(
                &batch.inputs,
                &batch.targets,
                batch.batch_size,
                batch.block_size,
            )
        })?;
        total += loss.item()? as f64;
        count += 1;
    }
    Ok(total / count.max(1) as f64)
}

fn train_lm(
    gpt: &mut Gpt,
    recipe: &Recipe,
    train: &[usize],
    val: &[usize],
    seed: u64,
    label: &str,
) -> BoxResult<Trained> {
    let mut train_batches =
        LmBatcher::new(train.to_vec(), recipe.block_size, recipe.batch_size, seed)?;
    let val_batches = LmBatcher::new(val.to_vec(), recipe.block_size, recipe.batch_size, seed)?;
    let groups = ParamGroup::split_decay(gpt.named_parameters(), recipe.weight_decay);
    let mut opt = AdamW::with_groups(
        groups,
        AdamConfig {
            lr: recipe.lr,
            beta2: 0.99,
            ..AdamConfig::adamw()
        },
    )?;
    let schedule = schedule_for(recipe)?;
    gpt.train();
    let progress = bar(recipe.steps as u64, label);
    let (mut train_curve, mut val_curve) = (Vec::new(), Vec::new());
    let start = Instant::now();
    let tokens_per_step = recipe.block_size * recipe.batch_size;
    let mut final_val = f64::NAN;
    let mut smoothed = f64::NAN;
    for step in 0..recipe.steps {
        let lr = schedule.lr_at(step as u64);
        opt.set_lr(lr);
        let batch = train_batches.sample();
        let loss = gpt.loss(
            &batch.inputs,
            &batch.targets,
            batch.batch_size,
            batch.block_size,
        )?;
        let value = loss.item()?;
        if !value.is_finite() {
            return Err(format!(
                "training stopped at step {step}: the loss is {value} (rerun with a lower --lr)"
            )
            .into());
        }
        opt.zero_grad();
        loss.backward()?;
        clip_grad_norm(&opt.named_parameters(), 1.0)?;
        opt.step()?;
        smoothed = if smoothed.is_nan() {
            value as f64
        } else {
            0.9 * smoothed + 0.1 * value as f64
        };
        train_curve.push((step as f64, value as f64));
        let last = step + 1 == recipe.steps;
        if (step > 0 && step % recipe.eval_every == 0) || last {
            gpt.eval();
            final_val = evaluate(gpt, &val_batches, recipe.eval_batches)?;
            gpt.train();
            val_curve.push((step as f64, final_val));
        }
        if step % 5 == 0 || last {
            let tps = ((step + 1) * tokens_per_step) as f64 / start.elapsed().as_secs_f64();
            progress.set_message(format!(
                "loss {smoothed:.3} val {final_val:.3} lr {lr:.1e} {tps:.0} tok/s"
            ));
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    gpt.eval();
    let seconds = start.elapsed().as_secs_f64();
    Ok(Trained {
        train_curve,
        val_curve,
        final_val,
        tokens_per_second: (recipe.steps * tokens_per_step) as f64 / seconds,
    })
}

/// Linear warmup then cosine decay over the recipe's steps. A run shorter than the recipe's
/// warmup (`--steps 3`) warms up for a tenth of its steps instead.
fn schedule_for(recipe: &Recipe) -> BoxResult<WarmupCosine> {
    let steps = recipe.steps as u64;
    let warmup = if recipe.warmup < steps {
        recipe.warmup
    } else {
        steps / 10
    };
    Ok(WarmupCosine::new(recipe.lr, warmup, steps, recipe.min_lr)?)
}

/// Apply the model and regularisation flags on top of the dataset's recipe.
fn override_model(recipe: &mut Recipe, args: &Args) {
    let set = |slot: &mut usize, value: Option<usize>| {
        if let Some(v) = value {
            *slot = v.max(1);
        }
    };
    set(&mut recipe.n_layer, args.n_layer);
    set(&mut recipe.n_head, args.n_head);
    set(&mut recipe.n_embd, args.n_embd);
    set(&mut recipe.block_size, args.block_size);
    set(&mut recipe.batch_size, args.batch_size);
    if let Some(p) = args.dropout {
        recipe.dropout = p;
    }
    if let Some(wd) = args.weight_decay {
        recipe.weight_decay = wd;
    }
}

fn config_for(recipe: &Recipe, vocab_size: usize) -> GptConfig {
    GptConfig {
        vocab_size,
        block_size: recipe.block_size,
        n_layer: recipe.n_layer,
        n_head: recipe.n_head,
        n_embd: recipe.n_embd,
        dropout: recipe.dropout,
        bias: recipe.bias,
        tie_weights: recipe.tie_weights,
        gelu: Gelu::Exact,
    }
}

fn show_curves(
    args: &Args,
    title: &str,
    train: Vec<(f64, f64)>,
    val: Vec<(f64, f64)>,
) -> BoxResult<()> {
    // Average the noisy per-step training loss over windows so the curve is readable.
    let window = (train.len() / 60).max(1);
    let smooth: Vec<(f64, f64)> = train
        .chunks(window)
        .map(|c| {
            (
                c[c.len() - 1].0,
                c.iter().map(|p| p.1).sum::<f64>() / c.len() as f64,
            )
        })
        .collect();
    let series = vec![
        Series::new("train loss", smooth),
        Series::new("val loss", val),
    ];
    println!("{}", terminal_plot(title, "step", &series, 60, 14));
    if let Some(path) = &args.common.plot {
        svg_plot(path, title, "step", &series)?;
        println!("plot written to {}", path.display());
    }
    Ok(())
}

fn decode(tok: &CharTokenizer, ids: &[usize]) -> BoxResult<String> {
    Ok(tok.decode(ids)?)
}

fn run_lm(args: &Args) -> BoxResult<RunReport> {
    let start = Instant::now();
    let seed = args.common.seed;
    let corpus = load_corpus(
        args.common.dataset.as_deref(),
        args.common.data_dir.as_deref(),
        seed,
    )?;
    let mut recipe = recipe(&corpus.name, args.common.quick);
    if let Some(steps) = args.common.steps {
        recipe.steps = steps.max(1);
        recipe.eval_every = recipe.eval_every.min(recipe.steps);
    }
    if let Some(lr) = args.lr {
        recipe.lr = lr;
        recipe.min_lr = lr / 10.0;
    }
    override_model(&mut recipe, args);
    // The vocabulary comes from the training text; unseen validation characters are skipped.
    let tok = CharTokenizer::from_corpus(&corpus.train, UnknownPolicy::Skip);
    let train = tok.encode(&corpus.train)?;
    let val_text = if corpus.val.len() > recipe.block_size + 1 {
        corpus.val.clone()
    } else {
        corpus.train.clone()
    };
    let (_, val) = if corpus.name == "tinytalks" {
        (Vec::new(), tok.encode(&val_text)?)
    } else {
        split_train_val(&tok.encode(&val_text)?, 0.0)?
    };
    let val = if val.is_empty() {
        tok.encode(&val_text)?
    } else {
        val
    };
    let config = config_for(&recipe, tok.vocab_size());
    let mut gpt = Gpt::new(config.clone(), seed)?;
    println!(
        "transformer-2017 on {}: {} training characters, vocabulary {}, GPT {} layers x {} heads x {} dims, {} parameters",
        corpus.name,
        format_count(train.len()),
        tok.vocab_size(),
        recipe.n_layer,
        recipe.n_head,
        recipe.n_embd,
        format_count(gpt.num_parameters())
    );
    let trained = train_lm(&mut gpt, &recipe, &train, &val, seed, "transformer")?;
    show_curves(
        args,
        &format!("transformer-2017 on {}: loss", corpus.name),
        trained.train_curve,
        trained.val_curve,
    )?;

    // Save a checkpoint the file alone can generate from.
    let save = args.save.clone().unwrap_or_else(|| {
        PathBuf::from(format!("runs/transformer-2017/{}.safetensors", corpus.name))
    });
    if let Some(dir) = save.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("{}: cannot create directory: {e}", dir.display()))?;
    }
    save_gpt(
        &save,
        &gpt,
        &TokenizerSpec::Char(tok.clone()),
        &TrainingState::default(),
    )?;
    println!(
        "checkpoint saved to {} (generate with --load {} --prompt ...)",
        save.display(),
        save.display()
    );

    let mut report = RunReport::new("transformer-2017", &corpus.name);
    report.metric("val_loss", trained.final_val);
    report.metric("train_tokens_per_second", trained.tokens_per_second);

    // Samples at two temperatures.
    let newline = tok.encode("\n")?;
    for (i, temperature) in [0.5f32, 1.0].into_iter().enumerate() {
        let ids = gpt.generate(&newline, 300, temperature, None, seed + i as u64)?;
        println!(
            "--- sample at temperature {temperature} ---\n{}\n",
            decode(&tok, &ids)?.trim()
        );
    }
    // Tokens per second of cached generation (the text is also the success measurement).
    let gen_start = Instant::now();
    let n_gen = if corpus.name == "embedded" { 4000 } else { 400 };
    let ids = gpt.generate(&newline, n_gen, 0.8, None, seed + 7)?;
    let gen_tps = n_gen as f64 / gen_start.elapsed().as_secs_f64();
    report.metric("generation_tokens_per_second", gen_tps);

    if corpus.name == "embedded" {
        // The success figure: how many complete sampled lines follow the grammar.
        let text = decode(&tok, &ids)?;
        let lines: Vec<&str> = text.lines().skip(1).filter(|l| !l.is_empty()).collect();
        let complete = &lines[..lines.len().saturating_sub(1)];
        let ok = complete
            .iter()
            .filter(|l| corpus::is_grammatical(l))
            .count();
        let share = ok as f64 / complete.len().max(1) as f64;
        println!(
            "{ok} of {} sentences sampled at temperature 0.8 are grammatical in the generated language ({:.1}%); an untrained model scores 0%.",
            complete.len(),
            share * 100.0
        );
        report.metric("grammatical_accuracy", share);
    }
    if corpus.name == "tinytalks" {
        println!("--- answers to held-out questions (greedy) ---");
        for (q, a) in corpus.questions.iter().take(8) {
            let prompt = tok.encode(&format!("Q: {q}\nA:"))?;
            let out = gpt.generate(&prompt, 80, 0.0, None, seed)?;
            let answer = decode(&tok, &out[prompt.len()..])?;
            let answer = answer.lines().next().unwrap_or("").trim().to_string();
            println!("Q: {q}\n   model: {answer}\n   reference: {a}");
        }
    }
    report.params = gpt.num_parameters();
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// How many prompts (digits then separator) the model reverses exactly, greedily.
fn reverse_greedy(gpt: &Gpt, rows: &[Vec<usize>], len: usize) -> BoxResult<usize> {
    let prompts: Vec<&[usize]> = rows.iter().map(|r| &r[..=len]).collect();
    let answers = greedy_continuations(gpt, &prompts, len)?;
    Ok(answers
        .iter()
        .zip(rows)
        .filter(|(a, r)| a[..] == r[len + 1..])
        .count())
}

fn run_reverse(args: &Args) -> BoxResult<RunReport> {
    let start = Instant::now();
    let seed = args.common.seed;
    let len = 8;
    let mut rng = TensorRng::new(seed);
    let steps = args
        .common
        .steps
        .unwrap_or(if args.common.quick { 600 } else { 1500 });
    let recipe = Recipe {
        n_layer: 2,
        n_head: 4,
        n_embd: 64,
        block_size: 2 * len,
        batch_size: 64,
        dropout: 0.0,
        weight_decay: 0.01,
        bias: true,
        tie_weights: false,
        lr: args.lr.unwrap_or(3e-3),
        min_lr: 3e-4,
        warmup: 50,
        steps,
        eval_every: steps,
        eval_batches: 1,
    };
    let config = config_for(&recipe, REVERSE_VOCAB);
    let mut gpt = Gpt::new(config, seed)?;
    let groups = ParamGroup::split_decay(gpt.named_parameters(), recipe.weight_decay);
    let mut opt = AdamW::with_groups(
        groups,
        AdamConfig {
            lr: recipe.lr,
            ..AdamConfig::adamw()
        },
    )?;
    let schedule = schedule_for(&recipe)?;
    // Positions before the separator predict input digits: they carry no signal, so they are
    // excluded from the loss with an ignore index outside the vocabulary.
    let ignore = REVERSE_VOCAB;
    let test = reversal_examples(500, len, &mut TensorRng::new(seed ^ 0xdead_beef));
    println!(
        "transformer-2017 --task reverse: reverse {len} digits; GPT with {} parameters",
        format_count(gpt.num_parameters())
    );
    gpt.train();
    let progress = bar(steps as u64, "reverse");
    let mut curve = Vec::new();
    for step in 0..steps {
        opt.set_lr(schedule.lr_at(step as u64));
        let rows = reversal_examples(recipe.batch_size, len, &mut rng);
        let mut inputs = Vec::with_capacity(rows.len() * 2 * len);
        let mut targets = Vec::with_capacity(rows.len() * 2 * len);
        for r in &rows {
            inputs.extend_from_slice(&r[..2 * len]);
            targets.extend((1..=2 * len).map(|i| if i > len { r[i] } else { ignore }));
        }
        let logits = gpt.logits(&inputs, rows.len(), 2 * len)?;
        let loss = logits.cross_entropy(&targets, Some(ignore), 0.0)?;
        let value = loss.item()?;
        if !value.is_finite() {
            return Err(format!("training stopped at step {step}: the loss is {value}").into());
        }
        opt.zero_grad();
        loss.backward()?;
        clip_grad_norm(&opt.named_parameters(), 1.0)?;
        opt.step()?;
        curve.push((step as f64, value as f64));
        if step % 10 == 0 {
            progress.set_message(format!("loss {value:.4}"));
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    gpt.eval();
    let correct = reverse_greedy(&gpt, &test, len)?;
    let accuracy = correct as f64 / test.len() as f64;
    let example: Vec<usize> = test[0][..=len].to_vec();
    let shown = reverse_greedy(&gpt, &test[..1], len)?;
    println!(
        "example: {:?} -> model {} ",
        &example[..len],
        if shown == 1 {
            "reverses it exactly"
        } else {
            "makes a mistake"
        }
    );
    println!(
        "exact-sequence accuracy on 500 held-out sequences: {:.1}%",
        accuracy * 100.0
    );
    show_curves(
        args,
        "transformer-2017 --task reverse: loss",
        curve,
        Vec::new(),
    )?;
    let _ = REVERSE_SEPARATOR;
    let mut report = RunReport::new("transformer-2017", "reverse");
    report.metric("exact_sequence_accuracy", accuracy);
    report.params = gpt.num_parameters();
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// `--load`: generate from a checkpoint and print only the generated text.
fn run_generate(args: &Args, path: &Path) -> BoxResult<()> {
    let checkpoint = load_gpt(path)?;
    let mut gpt = checkpoint.model;
    gpt.eval();
    let tok = checkpoint.tokenizer;
    let mut prompt = tok.encode(&args.prompt)?;
    if prompt.is_empty() {
        prompt = tok.encode("\n")?;
    }
    let ids = gpt.generate(
        &prompt,
        args.max_new_tokens,
        args.temperature,
        args.top_k,
        args.common.seed,
    )?;
    print!("{}", tok.decode(&ids[prompt.len()..])?);
    println!();
    Ok(())
}

fn main() {
    models::runtime::tune_allocator();
    let args = Args::parse();
    if let Some(path) = args.load.clone() {
        let result = if args.chat {
            run_chat(&args, &path)
        } else {
            run_generate(&args, &path)
        };
        if let Err(e) = result {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
        return;
    }
    let json = args.common.json.clone();
    let result = match args.task.as_str() {
        "lm" => run_lm(&args),
        "reverse" => run_reverse(&args),
        "copy" | "sort" | "mixed" => run_attention_task(&args),
        other => {
            Err(format!("unknown --task '{other}': choose lm, reverse, copy, sort or mixed").into())
        }
    };
    milestones::report::finish(result, json.as_deref());
}

/// `--task copy|sort|mixed`: train on the attention proof and report exact-sequence accuracy
/// (per task for `mixed`, where a prefix token names each row's task).
fn run_attention_task(args: &Args) -> BoxResult<RunReport> {
    use milestones::attention_tasks::{train_attention_task, AttentionTaskConfig, TaskMix};
    let mix = TaskMix::from_name(&args.task)
        .ok_or_else(|| format!("unknown attention task '{}'", args.task))?;
    let mut cfg = AttentionTaskConfig::for_task(mix, args.common.seed, args.common.quick);
    if let Some(steps) = args.common.steps {
        cfg.steps = steps;
    }
    if let Some(lr) = args.lr {
        cfg.lr = lr;
    }
    let set = |slot: &mut usize, v: Option<usize>| {
        if let Some(v) = v {
            *slot = v;
        }
    };
    set(&mut cfg.n_layer, args.n_layer);
    set(&mut cfg.n_head, args.n_head);
    set(&mut cfg.n_embd, args.n_embd);
    set(&mut cfg.batch_size, args.batch_size);
    println!(
        "transformer-2017 --task {}: {} digits, {} steps, {} layers x {} wide{}",
        mix.name(),
        cfg.len,
        cfg.steps,
        cfg.n_layer,
        cfg.n_embd,
        if matches!(mix, TaskMix::Mixed) {
            " (reverse, copy or sort, named by a prefix token per row)"
        } else {
            ""
        }
    );
    let progress = bar(cfg.steps as u64, mix.name());
    let run = train_attention_task(mix, &cfg, |step, loss| {
        if step % 10 == 0 {
            progress.set_message(format!("loss {loss:.4}"));
        }
        progress.inc(1);
    })?;
    progress.finish_and_clear();
    for (task, hits, n) in &run.per_task {
        println!(
            "  {:<8} {hits:>4} of {n:>4} held-out rows exact ({:.1}%)",
            task.name(),
            100.0 * *hits as f64 / *n as f64
        );
    }
    println!(
        "exact-sequence accuracy on {} held-out sequences: {:.1}% (target 95%), {:.1} s",
        cfg.test_rows,
        run.accuracy * 100.0,
        run.seconds
    );
    show_curves(
        args,
        &format!("transformer-2017 --task {}: loss", mix.name()),
        run.curve.clone(),
        Vec::new(),
    )?;
    let mut report = RunReport::new("transformer-2017", mix.name());
    report.metric("exact_sequence_accuracy", run.accuracy);
    for (task, hits, n) in &run.per_task {
        report.metric(
            &format!("{}_accuracy", task.name()),
            *hits as f64 / *n as f64,
        );
    }
    report.params = run.gpt.num_parameters();
    report.seconds = run.seconds;
    Ok(report)
}

/// `--load MODEL --chat`: a question per line of standard input, an answer per line of output.
fn run_chat(args: &Args, path: &Path) -> BoxResult<()> {
    use std::io::IsTerminal;
    let checkpoint = load_gpt(path)?;
    let mut gpt = checkpoint.model;
    gpt.eval();
    let opts = milestones::chat::ChatOptions {
        max_new_tokens: args.max_new_tokens.min(400),
        // Greedy: the same question always gets the same answer.
        temperature: 0.0,
        top_k: None,
        seed: args.common.seed,
    };
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    if interactive {
        eprintln!("Ask a question per line (Ctrl-D ends).");
    }
    milestones::chat::chat_loop(
        &gpt,
        &checkpoint.tokenizer,
        stdin.lock(),
        std::io::stdout().lock(),
        &opts,
        interactive.then_some("> "),
    )?;
    Ok(())
}
