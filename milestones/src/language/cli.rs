//! The command line of `transformer-2017`: its flags ([`Args`]), what they ask for ([`Mode`]),
//! and their checks, made before any work: a flag the chosen mode does not use is refused by
//! name, sizes of zero are refused (not clamped), numbers must be in range and output paths
//! writable, so a long run never fails at its end over something knowable at its start.

use std::path::{Path, PathBuf};

use clap::Parser;

use crate::cli::{at_least, check_writable, positive_finite, ArgError, CommonArgs, Flag};

use super::recipe::Recipe;
use super::tokenizers::TokenizerChoice;

/// The most tokens one `--load` generation may ask for (text is streamed as it is produced).
pub const MAX_NEW_TOKENS: usize = 100_000;
#[derive(Parser, Debug)]
#[command(
    name = "transformer-2017",
    about = "Train a GPT (default: on a generated mini-language; --text on your own), generate from a checkpoint, or evaluate one"
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// `lm` (language modelling on a corpus), `reverse`, `copy`, `sort` or `mixed` (attention proofs).
    #[arg(long, default_value = "lm")]
    pub task: String,
    /// Train on this UTF-8 text file, or on every `.txt` file under this folder (sorted order).
    #[arg(long, value_name = "PATH")]
    pub text: Option<PathBuf>,
    /// With --text: the share of the text (its end) kept for validation [default: 0.1].
    #[arg(long)]
    pub val_fraction: Option<f64>,
    /// `char` (one token per character) or `bpe` (byte-level BPE learned on the training split).
    #[arg(long, default_value = "char")]
    pub tokenizer: String,
    /// With --tokenizer bpe: tokens in the vocabulary (256 bytes + merges) [default: 512].
    #[arg(long)]
    pub vocab_size: Option<usize>,
    /// Where to save the trained model (default: runs/transformer-2017/<dataset>.safetensors).
    #[arg(long, value_name = "PATH")]
    pub save: Option<PathBuf>,
    /// Every N steps save the latest state to the --save path, and the best-validation model next to it.
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<usize>,
    /// Continue the run saved in this checkpoint exactly (same corpus and flags).
    #[arg(long, value_name = "PATH")]
    pub resume: Option<PathBuf>,
    /// Stop after this step as if interrupted (for tests).
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
    /// Generate from this checkpoint instead of training.
    #[arg(long, value_name = "PATH")]
    pub load: Option<PathBuf>,
    /// Loss, perplexity and bits per character of this checkpoint on --text or --dataset.
    #[arg(long, value_name = "PATH")]
    pub eval: Option<PathBuf>,
    /// With --load: answer questions read one per line from standard input (a TinyTalks model),
    /// greedily; end of input ends it. Works in a pipe.
    #[arg(long, requires = "load")]
    pub chat: bool,
    /// Prompt for generation (with --load).
    #[arg(long)]
    pub prompt: Option<String>,
    /// Tokens to generate (with --load) [default: 200].
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Sampling temperature (0 is greedy) [default: 0.8].
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Sample only among the k most likely tokens.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Peak learning rate (default depends on the dataset).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Transformer blocks (default depends on the dataset).
    #[arg(long)]
    pub n_layer: Option<usize>,
    /// Attention heads per block.
    #[arg(long)]
    pub n_head: Option<usize>,
    /// Embedding width.
    #[arg(long)]
    pub n_embd: Option<usize>,
    /// Context length in tokens.
    #[arg(long)]
    pub block_size: Option<usize>,
    /// Sequences per training step (per evaluation batch with --eval).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Dropout probability in the blocks.
    #[arg(long)]
    pub dropout: Option<f32>,
    /// AdamW weight decay of the matrices (biases and norms never decay).
    #[arg(long)]
    pub weight_decay: Option<f64>,
}

/// What the command line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `--load`: generate text.
    Generate,
    /// `--load --chat`: answer questions from standard input.
    Chat,
    /// `--eval`: measure a checkpoint on a text.
    Eval,
    /// Train a language model.
    Lm,
    /// `--task reverse|copy|sort|mixed`.
    AttentionTask,
}

impl Args {
    /// Every optional flag and whether it was given (the common ones are checked by CommonArgs).
    fn given(&self) -> [(&'static str, bool); 27] {
        let c = &self.common;
        [
            ("--data-dir", c.data_dir.is_some()),
            ("--dataset", c.dataset.is_some()),
            ("--steps", c.steps.is_some()),
            ("--json", c.json.is_some()),
            ("--plot", c.plot.is_some()),
            ("--text", self.text.is_some()),
            ("--val-fraction", self.val_fraction.is_some()),
            ("--tokenizer", self.tokenizer != "char"),
            ("--vocab-size", self.vocab_size.is_some()),
            ("--save", self.save.is_some()),
            ("--checkpoint-every", self.checkpoint_every.is_some()),
            ("--resume", self.resume.is_some()),
            ("--stop-after", self.stop_after.is_some()),
            ("--prompt", self.prompt.is_some()),
            ("--max-new-tokens", self.max_new_tokens.is_some()),
            ("--temperature", self.temperature.is_some()),
            ("--top-k", self.top_k.is_some()),
            ("--lr", self.lr.is_some()),
            ("--n-layer", self.n_layer.is_some()),
            ("--n-head", self.n_head.is_some()),
            ("--n-embd", self.n_embd.is_some()),
            ("--block-size", self.block_size.is_some()),
            ("--batch-size", self.batch_size.is_some()),
            ("--dropout", self.dropout.is_some()),
            ("--weight-decay", self.weight_decay.is_some()),
            ("--task", self.task != "lm"),
            ("--quick", c.quick),
        ]
    }

    /// Check every flag before any work: the mode's unused flags are refused by name, zero sizes
    /// are refused (not clamped), numbers must be in range, output paths writable.
    pub fn validate(&self) -> Result<Mode, ArgError> {
        let (mode, what, uses): (Mode, &str, &[&str]) = match (&self.load, &self.eval) {
            (Some(_), Some(_)) => return Err(ArgError("--load and --eval: give one".into())),
            (Some(_), None) if self.chat => (Mode::Chat, "--chat", &["--max-new-tokens"]),
            (Some(_), None) => (
                Mode::Generate,
                "--load",
                &["--prompt", "--max-new-tokens", "--temperature", "--top-k"],
            ),
            (None, Some(_)) => (
                Mode::Eval,
                "--eval",
                &[
                    "--text",
                    "--dataset",
                    "--data-dir",
                    "--json",
                    "--batch-size",
                ],
            ),
            (None, None) => match self.task.as_str() {
                "lm" => (
                    Mode::Lm,
                    "the language model",
                    &[
                        "--data-dir",
                        "--dataset",
                        "--steps",
                        "--json",
                        "--plot",
                        "--text",
                        "--val-fraction",
                        "--tokenizer",
                        "--vocab-size",
                        "--save",
                        "--checkpoint-every",
                        "--resume",
                        "--stop-after",
                        "--lr",
                        "--n-layer",
                        "--n-head",
                        "--n-embd",
                        "--block-size",
                        "--batch-size",
                        "--dropout",
                        "--weight-decay",
                        "--quick",
                    ],
                ),
                "reverse" | "copy" | "sort" | "mixed" => (
                    Mode::AttentionTask,
                    "--task reverse/copy/sort/mixed",
                    &[
                        "--task",
                        "--quick",
                        "--steps",
                        "--json",
                        "--plot",
                        "--lr",
                        "--n-layer",
                        "--n-head",
                        "--n-embd",
                        "--batch-size",
                    ],
                ),
                other => {
                    return Err(ArgError(format!(
                        "unknown --task '{other}': choose lm, reverse, copy, sort or mixed"
                    )))
                }
            },
        };
        for (flag, set) in self.given() {
            if set && !uses.contains(&flag) {
                return Err(ArgError(format!(
                    "transformer-2017: {what} does not use {flag} (remove it)"
                )));
            }
        }
        self.common.validate("transformer-2017", &[Flag::Epochs])?;
        let sizes = [
            ("--n-layer", self.n_layer),
            ("--n-head", self.n_head),
            ("--n-embd", self.n_embd),
            ("--block-size", self.block_size),
            ("--batch-size", self.batch_size),
            ("--checkpoint-every", self.checkpoint_every),
            ("--stop-after", self.stop_after),
            ("--top-k", self.top_k),
            ("--max-new-tokens", self.max_new_tokens),
        ];
        for (flag, v) in sizes {
            if let Some(v) = v {
                at_least(flag, v, 1)?;
            }
        }
        if let Some(n) = self.max_new_tokens.filter(|&n| n > MAX_NEW_TOKENS) {
            return Err(ArgError(format!(
                "--max-new-tokens {n} is out of range: at most {MAX_NEW_TOKENS} per call"
            )));
        }
        if let Some(lr) = self.lr {
            positive_finite("--lr", lr, 10.0)?;
        }
        let in_unit = |flag: &str, v: f64, top_open: bool| {
            if v.is_finite() && v >= 0.0 && (v < 1.0 || (!top_open && v <= 1.0)) {
                Ok(())
            } else {
                Err(ArgError(format!(
                    "{flag} {v} is out of range: it must be in [0, 1{}",
                    if top_open { ")" } else { "]" }
                )))
            }
        };
        if let Some(p) = self.dropout {
            in_unit("--dropout", f64::from(p), true)?;
        }
        if let Some(wd) = self.weight_decay {
            in_unit("--weight-decay", wd, false)?;
        }
        if let Some(f) = self.val_fraction {
            if !(f > 0.0 && f < 1.0) {
                return Err(ArgError(format!(
                    "--val-fraction {f} is out of range: it must be in (0, 1)"
                )));
            }
            if self.text.is_none() {
                return Err(ArgError(
                    "--val-fraction applies to --text (named datasets keep their own split)".into(),
                ));
            }
        }
        if let Some(t) = self.temperature {
            if !(t.is_finite() && (0.0..=100.0).contains(&t)) {
                return Err(ArgError(format!(
                    "--temperature {t} is out of range: it must be in [0, 100]"
                )));
            }
        }
        if self.text.is_some() && self.common.dataset.is_some() {
            return Err(ArgError("--text and --dataset: give one".into()));
        }
        if mode == Mode::Eval && self.text.is_none() && self.common.dataset.is_none() {
            return Err(ArgError(
                "--eval needs the text to measure: --text FILE or --dataset NAME".into(),
            ));
        }
        if mode == Mode::Lm {
            TokenizerChoice::parse(&self.tokenizer, self.vocab_size).map_err(ArgError)?;
        }
        if let Some(p) = &self.save {
            check_writable("--save", p)?;
        }
        Ok(mode)
    }
}

/// Apply the model and regularisation flags on top of the recipe.
pub fn override_recipe(recipe: &mut Recipe, args: &Args) {
    if let Some(steps) = args.common.steps {
        recipe.steps = steps;
        recipe.eval_every = recipe.eval_every.min(steps).max(1);
    }
    if let Some(lr) = args.lr {
        recipe.lr = lr;
        recipe.min_lr = lr / 10.0;
    }
    for (slot, v) in [
        (&mut recipe.n_layer, args.n_layer),
        (&mut recipe.n_head, args.n_head),
        (&mut recipe.n_embd, args.n_embd),
        (&mut recipe.block_size, args.block_size),
        (&mut recipe.batch_size, args.batch_size),
    ] {
        if let Some(v) = v {
            *slot = v;
        }
    }
    if let Some(p) = args.dropout {
        recipe.dropout = p;
    }
    if let Some(wd) = args.weight_decay {
        recipe.weight_decay = wd;
    }
}

/// The command that resumes this run: the same arguments with `--resume PATH` (and without
/// `--stop-after`).
pub fn resume_command(save: &Path) -> String {
    let mut out = Vec::new();
    let mut args = std::env::args();
    while let Some(a) = args.next() {
        if a == "--resume" || a == "--stop-after" {
            args.next();
        } else if !a.starts_with("--resume=") && !a.starts_with("--stop-after=") {
            out.push(a);
        }
    }
    out.extend(["--resume".to_string(), save.display().to_string()]);
    let quote = |a: &String| {
        if a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c))
        {
            a.clone()
        } else {
            format!("'{}'", a.replace('\'', r"'\''"))
        }
    };
    out.iter().map(quote).collect::<Vec<_>>().join(" ")
}
