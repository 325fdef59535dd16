//! Training a GPT on a token stream through the project's one training loop
//! ([`models::trainer::Trainer`] with the [`LanguageModel`] task: warmup-cosine schedule, gradient
//! clipping at 1.0, a NaN/Inf loss stopping the run by name, evaluation, progress), plus what a
//! long run from the command line needs on top:
//!
//! - `--checkpoint-every N`: every N steps the latest state goes to the `--save` path, and each
//!   time the validation loss improves, a copy goes to `<name>.best.safetensors` next to it. Both
//!   are GPT checkpoints (`--load` generates from them, `--eval` measures them) that also hold the
//!   trainer's state (optimizer moments, step, history, how many batches were drawn) and the
//!   run's identity, so `--resume` continues either exactly.
//! - an interrupt (Ctrl-C, or `--stop-after K` in tests) finishes the current step, writes the
//!   latest checkpoint and stops; the caller prints the command that resumes it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use data::{LmBatch, LmBatcher};
use models::checkpoint::{save_gpt, TokenizerSpec, TrainingState};
use models::gpt::Gpt;
use models::trainer::{Control, LanguageModel, TrainTask, Trainer, TrainerConfig};
use nn::Module;
use optim::{AdamConfig, AdamW, ParamGroup};

use super::recipe::{schedule_for, Recipe};
use super::run_identity::{RunIdentity, IDENTITY_KEY};
use super::BoxResult;

/// How a run saves itself and when it stops early.
pub struct RunControl<'a> {
    /// Seed of the batch order.
    pub seed: u64,
    /// Where the latest checkpoint goes (the run's `--save` path).
    pub save: &'a Path,
    /// Save the latest (and the best-validation) checkpoint every this many steps.
    pub checkpoint_every: Option<usize>,
    /// Stop after this step as if interrupted (for tests).
    pub stop_after: Option<usize>,
    /// Set by the Ctrl-C handler.
    pub interrupt: Arc<AtomicBool>,
    /// Stored in every checkpoint.
    pub tokenizer: &'a TokenizerSpec,
    /// Stored in every checkpoint; `--resume` compares it.
    pub identity: &'a RunIdentity,
    /// The trainer state of the checkpoint being resumed (its weights are already in the model).
    pub resume: Option<(&'a Path, &'a TrainingState)>,
}

/// What a training run produced.
#[derive(Debug, Clone)]
pub struct Trained {
    /// `(step, training loss)` of every step (of the whole run, when resumed).
    pub train_curve: Vec<(f64, f64)>,
    /// `(step, validation loss)` of every evaluation.
    pub val_curve: Vec<(f64, f64)>,
    /// The last validation loss.
    pub final_val: f64,
    /// Training tokens per second (evaluation excluded).
    pub tokens_per_second: f64,
    /// `Some(step)` when the run was interrupted after that step.
    pub interrupted_at: Option<usize>,
    /// The best-validation checkpoint, when one was written.
    pub best: Option<PathBuf>,
}

/// `<stem>.best.<ext>` next to `path`.
pub fn best_path(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let ext = path
        .extension()
        .map_or_else(String::new, |e| format!(".{}", e.to_string_lossy()));
    path.with_file_name(format!("{stem}.best{ext}"))
}

/// Save `gpt` with the tokenizer, the trainer's state and the run identity (atomically).
fn save_resumable(
    path: &Path,
    gpt: &Gpt,
    trainer_state: TrainingState,
    ctl: &RunControl,
) -> models::Result<()> {
    let mut state = trainer_state;
    state
        .metadata
        .insert(IDENTITY_KEY.to_string(), ctl.identity.to_json());
    save_gpt(path, gpt, ctl.tokenizer, &state)
}

/// Train `gpt` by `recipe` on the `train` token stream, evaluating on `val`; returns the model
/// (in eval mode) and what the run measured.
pub fn train_gpt(
    gpt: Gpt,
    recipe: &Recipe,
    train: &[usize],
    val: &[usize],
    ctl: &RunControl,
) -> BoxResult<(Gpt, Trained)> {
    let train_batches = LmBatcher::new(
        train.to_vec(),
        recipe.block_size,
        recipe.batch_size,
        ctl.seed,
    )?;
    let val_batches = LmBatcher::new(val.to_vec(), recipe.block_size, recipe.batch_size, ctl.seed)?;
    let groups = ParamGroup::split_decay(gpt.named_parameters(), recipe.weight_decay);
    let opt = AdamW::with_groups(
        groups,
        AdamConfig {
            lr: recipe.lr,
            beta2: 0.99,
            ..AdamConfig::adamw()
        },
    )?;
    // With checkpoints, evaluation comes at each of them: the best copy is chosen by it.
    let eval_every = ctl.checkpoint_every.unwrap_or(recipe.eval_every).max(1);
    let config = TrainerConfig::steps(recipe.steps)
        .eval_every(eval_every)
        .log_every(1)
        .clip_grad_norm(1.0);
    let mut trainer = Trainer::new(config, opt).with_schedule(schedule_for(recipe)?);
    let loss = |gpt: &Gpt, b: &LmBatch| gpt.loss(&b.inputs, &b.targets, b.batch_size, b.block_size);
    let mut task =
        LanguageModel::new(gpt, train_batches, loss).with_val(&val_batches, recipe.eval_batches);
    if let Some((path, state)) = ctl.resume {
        trainer.restore_training_state(&mut task, state, path)?;
    }
    let best = best_path(ctl.save);
    let mut best_loss = f64::INFINITY;
    let mut wrote_best = false;
    let mut interrupted_at = None;
    let report = trainer.fit_with(&mut task, |trainer, task, event| {
        if let (Some(_), Some(eval)) = (ctl.checkpoint_every, event.eval) {
            if eval.loss < best_loss {
                best_loss = eval.loss;
                save_resumable(&best, task.model(), trainer.training_state(task), ctl)?;
                wrote_best = true;
            }
        }
        let stop = ctl.interrupt.load(Ordering::SeqCst) || ctl.stop_after == Some(event.step);
        let at_checkpoint = ctl
            .checkpoint_every
            .is_some_and(|n| event.step.is_multiple_of(n));
        if at_checkpoint || (stop && event.step < event.total) {
            save_resumable(ctl.save, task.model(), trainer.training_state(task), ctl)?;
        }
        if stop && event.step < event.total {
            interrupted_at = Some(event.step);
            return Ok(Control::Stop);
        }
        Ok(Control::Continue)
    })?;
    let history = trainer.history();
    let train_curve = history
        .records
        .iter()
        .map(|r| (r.step as f64, r.train_loss))
        .collect();
    let val_curve = history
        .evaluations()
        .filter_map(|r| r.val_loss.map(|v| (r.step as f64, v)))
        .collect();
    let final_val = report
        .eval
        .or_else(|| task.evaluate().ok().flatten())
        .map_or(f64::NAN, |e| e.loss);
    let mut gpt = task.into_model();
    gpt.eval();
    Ok((
        gpt,
        Trained {
            train_curve,
            val_curve,
            final_val,
            tokens_per_second: report.throughput,
            interrupted_at,
            best: wrote_best.then_some(best),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_copy_sits_next_to_the_checkpoint() {
        assert_eq!(
            best_path(Path::new("runs/a.safetensors")),
            PathBuf::from("runs/a.best.safetensors")
        );
        assert_eq!(best_path(Path::new("m")), PathBuf::from("m.best"));
    }
}
