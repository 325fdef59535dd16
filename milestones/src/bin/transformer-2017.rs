//! 2017: "Attention is all you need". A GPT (a decoder-only transformer) learns language one
//! character (or BPE token) at a time. With no dataset it trains on a mini-language the project
//! generates itself and reports how many of its own sampled sentences are grammatical; `--text`
//! trains on the user's own text; `--task reverse|copy|sort|mixed` are the attention proofs;
//! real corpora (TinyTalks, Shakespeare, TinyStories) are read from `--data-dir`. Training goes
//! through the project's one loop (`models::trainer`); long runs checkpoint, stop on Ctrl-C and
//! resume exactly; `--load` generates or chats, `--eval` measures a checkpoint on a text.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use milestones::cli::run_on_pool;
use milestones::corpus;
use milestones::language::cli::{override_recipe, resume_command, Args, Mode};
use milestones::language::eval::score_text;
use milestones::language::recipe::{config_for, recipe, recipe_for_size, Recipe};
use milestones::language::run_identity::{RunIdentity, IDENTITY_KEY};
use milestones::language::sources::{corpus_hash, Corpus, RawCorpus, Source};
use milestones::language::tokenizers::{unit, TokenizerChoice};
use milestones::language::train::{train_gpt, RunControl};
use milestones::language::BoxResult;
use milestones::plot::{svg_plot, terminal_plot, Series};
use milestones::progress::bar;
use milestones::report::{format_count, RunReport};
use milestones::textgen::{check_corpus, encode_prompt, stream_text};
use models::checkpoint::{load_gpt, save_gpt, TokenizerSpec, TrainingState};
use models::gpt::Gpt;
use nn::Module;

/// The exit code of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
const INTERRUPTED: i32 = 130;

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

/// The corpus a training or evaluation run reads, with the recipe for it.
fn read_corpus(args: &Args) -> BoxResult<(Corpus, Recipe)> {
    let source = match (&args.text, args.common.dataset.as_deref()) {
        (Some(path), _) => Source::Text(path),
        (None, Some(name)) => Source::Dataset(name, args.common.data_dir.as_deref()),
        (None, None) => Source::Embedded,
    };
    let raw = RawCorpus::read(source)?;
    milestones::guard::print_files_read();
    let val_fraction = args.val_fraction.unwrap_or(data::lm::DEFAULT_VAL_FRACTION);
    let train_chars = (raw.chars() as f64 * (1.0 - val_fraction)) as usize;
    let (mut recipe, why) = if args.text.is_some() {
        let (r, why) = recipe_for_size(train_chars, args.common.quick);
        (r, Some(why))
    } else {
        (recipe(&raw.name, args.common.quick), None)
    };
    override_recipe(&mut recipe, args);
    if let Some(why) = why {
        let r = &recipe;
        println!(
            "model for {} training characters ({why}; flags override): {} layers x {} heads x {} dims, block {}, batch {}, {} steps",
            format_count(train_chars), r.n_layer, r.n_head, r.n_embd, r.block_size, r.batch_size, r.steps
        );
    }
    let corpus = raw.split(val_fraction, recipe.block_size)?;
    check_corpus(&corpus.name, &corpus.train)?;
    Ok((corpus, recipe))
}

/// Everything about a run that `--resume` must find unchanged.
fn identity(corpus: &Corpus, recipe: &Recipe, tok: &TokenizerSpec, seed: u64) -> RunIdentity {
    let r = recipe;
    RunIdentity::default()
        .with("corpus", &corpus.name)
        .with("corpus_hash", corpus_hash(corpus))
        .with(
            "tokenizer",
            format!("{} ({} ids)", tok.kind(), tok.vocab_size().unwrap_or(0)),
        )
        .with("seed", seed)
        .with("steps", r.steps)
        .with("n_layer", r.n_layer)
        .with("n_head", r.n_head)
        .with("n_embd", r.n_embd)
        .with("block_size", r.block_size)
        .with("batch_size", r.batch_size)
        .with("dropout", r.dropout)
        .with("weight_decay", r.weight_decay)
        .with("lr", r.lr)
        .with("min_lr", r.min_lr)
        .with("warmup", r.warmup)
        .with("eval_batches", r.eval_batches)
}

fn run_lm(args: &Args) -> BoxResult<RunReport> {
    let start = Instant::now();
    let seed = args.common.seed;
    let (corpus, recipe) = read_corpus(args)?;
    let resumed = match &args.resume {
        Some(path) => Some(load_gpt(path).map_err(|e| format!("--resume: {e}"))?),
        None => None,
    };
    let tok = match &resumed {
        Some(ck) => ck.tokenizer.clone(),
        None => TokenizerChoice::parse(&args.tokenizer, args.vocab_size)?.learn(&corpus.train)?,
    };
    let train = tok.encode(&corpus.train)?;
    let val = tok.encode(&corpus.val)?;
    let need = recipe.block_size + 1;
    if val.len() < need || train.len() < need {
        return Err(format!(
            "after tokenizing, the training text has {} tokens and the validation text {}; one window needs block_size + 1 = {need} (use a smaller --block-size)",
            train.len(),
            val.len()
        )
        .into());
    }
    let id = identity(&corpus, &recipe, &tok, seed);
    let vocab = tok.vocab_size().unwrap_or(0);
    let gpt = Gpt::new(config_for(&recipe, vocab), seed)?;
    if let (Some(ck), Some(path)) = (&resumed, &args.resume) {
        let stored = ck.state.metadata.get(IDENTITY_KEY).ok_or_else(|| {
            format!("--resume {}: the file holds a finished model, not a resumable run (resume from a checkpoint written by --checkpoint-every or Ctrl-C)", path.display())
        })?;
        let diffs = RunIdentity::from_json(stored)?.differences(&id);
        if !diffs.is_empty() {
            return Err(format!(
                "--resume {}: the checkpoint was made by a different run; give the same corpus and flags. Differences: {}",
                path.display(),
                diffs.join("; ")
            )
            .into());
        }
        for ((_, mine), (_, saved)) in gpt
            .named_parameters()
            .iter()
            .zip(ck.model.named_parameters())
        {
            mine.set_value(saved.value())?;
        }
        if recipe.dropout > 0.0 {
            println!("note: dropout masks after the resume point are drawn afresh (only a --dropout 0 run resumes bit for bit)");
        }
    }
    let interrupt = Arc::new(AtomicBool::new(false));
    // Ctrl-C sets the flag (the step in flight finishes, then a checkpoint is written); a second
    // Ctrl-C ends the process at once.
    signal_hook::flag::register_conditional_shutdown(
        signal_hook::consts::SIGINT,
        1,
        interrupt.clone(),
    )?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, interrupt.clone())?;
    println!(
        "transformer-2017 on {}: {} training {}, vocabulary {} ({}), GPT {} layers x {} heads x {} dims, {} parameters",
        corpus.name,
        format_count(train.len()),
        unit(&tok),
        vocab,
        tok.kind(),
        recipe.n_layer,
        recipe.n_head,
        recipe.n_embd,
        format_count(gpt.num_parameters())
    );
    let save = args.save.clone().unwrap_or_else(|| {
        PathBuf::from(format!("runs/transformer-2017/{}.safetensors", corpus.name))
    });
    if let Some(dir) = save.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("{}: cannot create directory: {e}", dir.display()))?;
    }
    let best = milestones::language::train::best_path(&save);
    if let Some(n) = args.checkpoint_every {
        println!(
            "checkpoints every {n} steps: latest to {}, best validation to {}",
            save.display(),
            best.display()
        );
    }
    let state;
    let ctl = RunControl {
        seed,
        save: &save,
        checkpoint_every: args.checkpoint_every,
        stop_after: args.stop_after,
        interrupt,
        tokenizer: &tok,
        identity: &id,
        resume: match (&resumed, &args.resume) {
            (Some(ck), Some(path)) => {
                state = ck.state.clone();
                Some((path.as_path(), &state))
            }
            _ => None,
        },
    };
    let (gpt, trained) = train_gpt(gpt, &recipe, &train, &val, &ctl)?;
    if let Some(step) = trained.interrupted_at {
        eprintln!(
            "interrupted after step {step} of {}: resumable checkpoint written to {}\nresume with:\n  {}",
            recipe.steps,
            save.display(),
            resume_command(&save)
        );
        std::process::exit(INTERRUPTED);
    }
    show_curves(
        args,
        &format!("transformer-2017 on {}: loss", corpus.name),
        trained.train_curve,
        trained.val_curve,
    )?;

    // Save a checkpoint the file alone can generate from.
    save_gpt(&save, &gpt, &tok, &TrainingState::default())?;
    println!(
        "checkpoint saved to {} (generate with --load {} --prompt ...)",
        save.display(),
        save.display()
    );
    if let Some(best) = &trained.best {
        println!("best-validation checkpoint: {}", best.display());
    }
    let mut report = RunReport::new("transformer-2017", &corpus.name);
    report.metric("val_loss", trained.final_val);
    report.metric("train_tokens_per_second", trained.tokens_per_second);

    // Samples at two temperatures.
    let begin = encode_prompt(&tok, "")?;
    for (i, temperature) in [0.5f32, 1.0].into_iter().enumerate() {
        let ids = gpt.generate(&begin, 300, temperature, None, seed + i as u64)?;
        println!(
            "--- sample at temperature {temperature} ---\n{}\n",
            tok.decode(&ids)?.trim()
        );
    }
    // Tokens per second of cached generation (the text is also the success measurement).
    let gen_start = Instant::now();
    let n_gen = if corpus.name == "embedded" { 4000 } else { 400 };
    let ids = gpt.generate(&begin, n_gen, 0.8, None, seed + 7)?;
    report.metric(
        "generation_tokens_per_second",
        n_gen as f64 / gen_start.elapsed().as_secs_f64(),
    );
    if corpus.name == "embedded" {
        // The success figure: how many complete sampled lines follow the grammar.
        let text = tok.decode(&ids)?;
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
            let answer = tok.decode(&out[prompt.len()..])?;
            let answer = answer.lines().next().unwrap_or("").trim().to_string();
            println!("Q: {q}\n   model: {answer}\n   reference: {a}");
        }
    }
    report.params = gpt.num_parameters();
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// `--load`: generate from a checkpoint, streaming only the generated text to stdout.
fn run_generate(args: &Args, path: &Path) -> BoxResult<()> {
    let checkpoint = load_gpt(path)?;
    let mut gpt = checkpoint.model;
    gpt.eval();
    let tok = checkpoint.tokenizer;
    let prompt = encode_prompt(&tok, args.prompt.as_deref().unwrap_or(""))?;
    let mut out = std::io::stdout().lock();
    stream_text(
        &gpt,
        &tok,
        &prompt,
        args.max_new_tokens.unwrap_or(200),
        args.temperature.unwrap_or(0.8),
        args.top_k,
        args.common.seed,
        &mut out,
    )?;
    println!();
    Ok(())
}

/// `--eval MODEL --text FILE` (or `--dataset NAME`, its validation text): the model's loss,
/// perplexity and bits per token and per character, with no training.
fn run_eval(args: &Args, path: &Path) -> BoxResult<RunReport> {
    let start = Instant::now();
    let checkpoint = load_gpt(path)?;
    let mut gpt = checkpoint.model;
    gpt.eval();
    let block = gpt.config().block_size;
    let (name, text) = match &args.text {
        Some(p) => {
            let raw = RawCorpus::read(Source::Text(p))?;
            let corpus = raw
                .clone()
                .split(0.5, 1)
                .map(|c| c.train + &c.val)
                .unwrap_or_default();
            (p.display().to_string(), corpus)
        }
        None => {
            let name = args.common.dataset.as_deref().unwrap_or_default();
            let raw = RawCorpus::read(Source::Dataset(name, args.common.data_dir.as_deref()))?;
            (
                format!("{name} (validation text)"),
                raw.split(0.1, block)?.val,
            )
        }
    };
    milestones::guard::print_files_read();
    let score = score_text(
        &gpt,
        &checkpoint.tokenizer,
        &text,
        args.batch_size.unwrap_or(16),
    )
    .map_err(|e| format!("--eval {} on {name}: {e}", path.display()))?;
    println!(
        "{} on {name}: {} tokens ({} characters), loss {:.4}, perplexity {:.3}, {:.4} bits per token, {:.4} bits per character",
        path.display(),
        format_count(score.tokens),
        format_count(score.chars.round() as usize),
        score.loss,
        score.perplexity,
        score.bits_per_token,
        score.bits_per_char
    );
    let mut report = RunReport::new("transformer-2017", &format!("eval {name}"));
    report.metric("loss", score.loss);
    report.metric("perplexity", score.perplexity);
    report.metric("bits_per_token", score.bits_per_token);
    report.metric("bits_per_character", score.bits_per_char);
    report.metric("tokens", score.tokens as f64);
    report.params = gpt.num_parameters();
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

fn main() {
    models::runtime::tune_allocator();
    let args = Args::parse();
    // Flags first, then the thread pool (every parallel kernel uses it), then any work.
    let mode = match args
        .validate()
        .and_then(|m| args.common.init_threads().map(|_| m))
    {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let json = args.common.json.clone();
    let result = match (mode, &args.load, &args.eval) {
        (Mode::Generate | Mode::Chat, Some(path), _) => {
            let done = if mode == Mode::Chat {
                run_chat(&args, path)
            } else {
                run_generate(&args, path)
            };
            if let Err(e) = done {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
            return;
        }
        (Mode::Eval, _, Some(path)) => run_on_pool(|| run_eval(&args, path)),
        (Mode::AttentionTask, _, _) => run_on_pool(|| run_attention_task(&args)),
        _ => run_on_pool(|| run_lm(&args)),
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
    cfg.steps = args.common.steps.unwrap_or(cfg.steps);
    cfg.lr = args.lr.unwrap_or(cfg.lr);
    cfg.n_layer = args.n_layer.unwrap_or(cfg.n_layer);
    cfg.n_head = args.n_head.unwrap_or(cfg.n_head);
    cfg.n_embd = args.n_embd.unwrap_or(cfg.n_embd);
    cfg.batch_size = args.batch_size.unwrap_or(cfg.batch_size);
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
        max_new_tokens: args.max_new_tokens.unwrap_or(200).min(400),
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
