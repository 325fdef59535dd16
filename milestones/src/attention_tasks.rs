//! Training a small GPT on the generated attention proofs of [`crate::tasks`] (reverse, copy, sort,
//! or all three mixed with a prefix token per row) and measuring exact-sequence accuracy: the share
//! of held-out rows whose whole answer the model writes correctly by greedy decoding.
//!
//! The loss covers only the answer positions: the digits before the separator are random, so
//! predicting them teaches nothing and would only add noise to the gradient.

use std::time::Instant;

use std::collections::BTreeMap;

use autograd::{no_grad, Variable};
use data::LmBatch;
use models::gpt::{Gelu, Gpt, GptConfig};
use models::trainer::{Control, EvalResult, TaskBatch, TrainTask, Trainer, TrainerConfig};
use models::{ModelError, Result as ModelResult};
use nn::Module;
use optim::schedule::WarmupCosine;
use optim::{AdamConfig, AdamW, ParamGroup};
use serde_json::{json, Value};
use tensor::{Tensor, TensorRng};

use crate::tasks::{mixed_examples, task_examples, SeqRows, SeqTask, MIXED_VOCAB, REVERSE_VOCAB};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Which rows to train on: one task, or the three mixed (a prefix token names each row's task).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskMix {
    Single(SeqTask),
    Mixed,
}

impl TaskMix {
    /// `reverse`, `copy`, `sort` or `mixed`.
    pub fn from_name(name: &str) -> Option<TaskMix> {
        match name {
            "mixed" => Some(TaskMix::Mixed),
            n => SeqTask::from_name(n).map(TaskMix::Single),
        }
    }

    /// The name given to [`TaskMix::from_name`].
    pub fn name(self) -> &'static str {
        match self {
            TaskMix::Single(t) => t.name(),
            TaskMix::Mixed => "mixed",
        }
    }

    /// Token ids the rows use.
    pub fn vocab_size(self) -> usize {
        match self {
            TaskMix::Single(_) => REVERSE_VOCAB,
            TaskMix::Mixed => MIXED_VOCAB,
        }
    }

    /// `count` rows of `len` digits.
    pub fn examples(self, count: usize, len: usize, rng: &mut TensorRng) -> SeqRows {
        match self {
            TaskMix::Single(t) => task_examples(t, count, len, rng),
            TaskMix::Mixed => mixed_examples(count, len, rng),
        }
    }
}

/// Model and optimisation settings of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionTaskConfig {
    /// Digits per row.
    pub len: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    /// Rows per step.
    pub batch_size: usize,
    pub steps: usize,
    /// Peak learning rate (after a linear warmup, cosine decay to `min_lr`).
    pub lr: f64,
    pub min_lr: f64,
    pub warmup: u64,
    pub weight_decay: f64,
    /// Held-out rows the accuracy is measured on.
    pub test_rows: usize,
    pub seed: u64,
}

impl AttentionTaskConfig {
    /// The settings measured in the README for each task (`quick` trains shorter, for smoke
    /// tests).
    pub fn for_task(mix: TaskMix, seed: u64, quick: bool) -> AttentionTaskConfig {
        // (digits, layers, steps, steps with --quick): reversal needs the longest quick run to
        // pass the smoke test's 90%.
        let (len, n_layer, full, quick_steps) = match mix {
            TaskMix::Single(SeqTask::Copy) => (8, 2, 300, 60),
            TaskMix::Single(SeqTask::Reverse) => (8, 2, 1500, 600),
            TaskMix::Single(_) => (8, 2, 1500, 300),
            TaskMix::Mixed => (6, 2, 1500, 300),
        };
        AttentionTaskConfig {
            len,
            n_layer,
            n_head: 4,
            n_embd: 64,
            batch_size: 64,
            steps: if quick { quick_steps } else { full },
            lr: 3e-3,
            min_lr: 3e-4,
            warmup: 50,
            weight_decay: 0.01,
            test_rows: 500,
            seed,
        }
    }
}

/// What a run measured.
#[derive(Debug)]
pub struct AttentionTaskRun {
    /// The trained model (in evaluation mode).
    pub gpt: Gpt,
    /// Exact-sequence accuracy on the held-out rows.
    pub accuracy: f64,
    /// Per task: (task, rows answered exactly, rows); one entry unless mixed.
    pub per_task: Vec<(SeqTask, usize, usize)>,
    /// (step, training loss).
    pub curve: Vec<(f64, f64)>,
    /// Training and evaluation time.
    pub seconds: f64,
}

/// The task of a row: its prefix token's for mixed rows, else the single task.
fn task_of(mix: TaskMix, row: &[usize]) -> SeqTask {
    match mix {
        TaskMix::Single(t) => t,
        TaskMix::Mixed => row
            .first()
            .and_then(|p| SeqTask::from_prefix(*p))
            .unwrap_or(SeqTask::Copy),
    }
}

/// Greedy answers to each row's prompt (its first `rows.prompt` tokens), batched: one forward per
/// answer position over all rows. Returns the `rows.digits` tokens written per row.
pub fn greedy_answers(gpt: &Gpt, rows: &SeqRows) -> BoxResult<Vec<Vec<usize>>> {
    let prompts: Vec<&[usize]> = rows.rows.iter().map(|r| &r[..rows.prompt]).collect();
    greedy_continuations(gpt, &prompts, rows.digits)
}

/// `steps` greedy tokens after each prompt (all prompts the same length), batched: one forward
/// per written position over all prompts.
pub fn greedy_continuations(
    gpt: &Gpt,
    prompts: &[&[usize]],
    steps: usize,
) -> BoxResult<Vec<Vec<usize>>> {
    let Some(first) = prompts.first() else {
        return Ok(Vec::new());
    };
    let prompt_len = first.len();
    let mut seqs: Vec<Vec<usize>> = prompts.iter().map(|p| p.to_vec()).collect();
    for _ in 0..steps {
        let t = seqs[0].len();
        let flat: Vec<usize> = seqs.iter().flatten().copied().collect();
        let logits = no_grad(|| gpt.logits(&flat, seqs.len(), t))?.value();
        let v = logits.shape()[2];
        let values = logits.to_vec();
        for (b, seq) in seqs.iter_mut().enumerate() {
            let row = &values[(b * t + t - 1) * v..(b * t + t) * v];
            let best = (0..v)
                .max_by(|&i, &j| row[i].total_cmp(&row[j]))
                .unwrap_or(0);
            seq.push(best);
        }
    }
    Ok(seqs.into_iter().map(|s| s[prompt_len..].to_vec()).collect())
}

/// Per task: (task, rows whose answer equals the reference exactly, rows), in [`SeqTask::ALL`]
/// order, tasks without rows left out.
pub fn exact_matches(
    mix: TaskMix,
    rows: &SeqRows,
    answers: &[Vec<usize>],
) -> Vec<(SeqTask, usize, usize)> {
    SeqTask::ALL
        .into_iter()
        .filter_map(|task| {
            let mut hit = 0;
            let mut total = 0;
            for (row, answer) in rows.rows.iter().zip(answers) {
                if task_of(mix, row) == task {
                    total += 1;
                    hit += usize::from(row[rows.prompt..] == answer[..]);
                }
            }
            (total > 0).then_some((task, hit, total))
        })
        .collect()
}

/// The rows of one task mix as a [`TrainTask`]: each batch is `batch_size` fresh rows drawn from a
/// seeded generator, and the loss is the cross-entropy of the answer positions only (the others get
/// an ignore index outside the vocabulary). There is no validation loss: accuracy is measured on
/// held-out rows after training ([`exact_matches`]).
pub struct SequenceTask {
    gpt: Gpt,
    mix: TaskMix,
    len: usize,
    batch_size: usize,
    seed: u64,
    rng: TensorRng,
    drawn: u64,
    current: Option<LmBatch>,
}

impl SequenceTask {
    /// Rows of `len` digits of `mix`, `batch_size` per step, drawn from `seed`.
    /// The model is switched to training mode once, here: nothing in the task switches it back.
    pub fn new(
        mut gpt: Gpt,
        mix: TaskMix,
        len: usize,
        batch_size: usize,
        seed: u64,
    ) -> SequenceTask {
        gpt.train();
        SequenceTask {
            gpt,
            mix,
            len,
            batch_size,
            seed,
            rng: TensorRng::new(seed),
            drawn: 0,
            current: None,
        }
    }

    /// The model.
    pub fn gpt(&self) -> &Gpt {
        &self.gpt
    }

    /// Take the model back.
    pub fn into_gpt(self) -> Gpt {
        self.gpt
    }

    /// The ignore index of the positions outside the answer.
    fn ignore(&self) -> usize {
        self.mix.vocab_size()
    }
}

impl TrainTask for SequenceTask {
    fn unit(&self) -> &'static str {
        "tokens"
    }

    fn next_batch(&mut self) -> ModelResult<usize> {
        let batch = self.mix.examples(self.batch_size, self.len, &mut self.rng);
        let t = batch.prompt + batch.digits - 1;
        let ignore = self.ignore();
        let mut inputs = Vec::with_capacity(batch.rows.len() * t);
        let mut targets = Vec::with_capacity(batch.rows.len() * t);
        for r in &batch.rows {
            inputs.extend_from_slice(&r[..t]);
            targets.extend((1..=t).map(|i| if i >= batch.prompt { r[i] } else { ignore }));
        }
        self.drawn += 1;
        let n = inputs.len();
        self.current = Some(LmBatch {
            inputs,
            targets,
            batch_size: batch.rows.len(),
            block_size: t,
        });
        Ok(n)
    }

    fn current_batch(&self) -> Option<TaskBatch> {
        self.current.clone().map(TaskBatch::Lm)
    }

    fn loss(&mut self) -> ModelResult<Variable> {
        let ignore = self.ignore();
        let b = self.current.as_ref().ok_or(ModelError::Invalid {
            op: "SequenceTask::loss",
            reason: "no batch yet: call next_batch first".into(),
        })?;
        let logits = self.gpt.logits(&b.inputs, b.batch_size, b.block_size)?;
        Ok(logits.cross_entropy(&b.targets, Some(ignore), 0.0)?)
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        self.gpt.named_parameters()
    }

    fn evaluate(&mut self) -> ModelResult<Option<EvalResult>> {
        Ok(None)
    }

    fn state_dict(&self) -> BTreeMap<String, Tensor> {
        self.gpt.state_dict()
    }

    fn load_state_dict(&mut self, state: &BTreeMap<String, Tensor>) -> ModelResult<()> {
        Ok(self.gpt.load_state_dict(state)?)
    }

    fn position(&self) -> Value {
        json!({ "batches_drawn": self.drawn })
    }

    fn set_position(&mut self, position: &Value) -> ModelResult<()> {
        let n = position
            .get("batches_drawn")
            .and_then(Value::as_u64)
            .ok_or(ModelError::Invalid {
                op: "SequenceTask::set_position",
                reason: format!("no batches_drawn in {position}"),
            })?;
        self.rng = TensorRng::new(self.seed);
        self.drawn = 0;
        for _ in 0..n {
            self.next_batch()?;
        }
        Ok(())
    }
}

/// Trains a fresh GPT on `mix` through the [`Trainer`] (warmup then cosine schedule, AdamW,
/// gradient clipping at 1.0, the run stopped at a non-finite loss) and measures its exact-sequence
/// accuracy on held-out rows (drawn from a different seed than the training rows).
/// `on_step(step, loss)` sees every step.
pub fn train_attention_task(
    mix: TaskMix,
    cfg: &AttentionTaskConfig,
    mut on_step: impl FnMut(usize, f64),
) -> BoxResult<AttentionTaskRun> {
    let start = Instant::now();
    if cfg.len == 0 || cfg.steps == 0 || cfg.batch_size == 0 || cfg.test_rows == 0 {
        return Err(format!(
            "attention task {}: len, steps, batch_size and test_rows must be at least 1 (got {}, {}, {}, {})",
            mix.name(),
            cfg.len,
            cfg.steps,
            cfg.batch_size,
            cfg.test_rows
        )
        .into());
    }
    let probe = mix.examples(1, cfg.len, &mut TensorRng::new(0));
    let row_len = probe.prompt + probe.digits;
    let config = GptConfig {
        vocab_size: mix.vocab_size(),
        block_size: row_len - 1,
        n_layer: cfg.n_layer,
        n_head: cfg.n_head,
        n_embd: cfg.n_embd,
        dropout: 0.0,
        bias: true,
        tie_weights: false,
        gelu: Gelu::Exact,
    };
    let gpt = Gpt::new(config, cfg.seed)?;
    let groups = ParamGroup::split_decay(gpt.named_parameters(), cfg.weight_decay);
    let opt = AdamW::with_groups(
        groups,
        AdamConfig {
            lr: cfg.lr,
            ..AdamConfig::adamw()
        },
    )?;
    let steps = cfg.steps as u64;
    let warmup = if cfg.warmup < steps {
        cfg.warmup
    } else {
        steps / 10
    };
    let schedule = WarmupCosine::new(cfg.lr, warmup, steps, cfg.min_lr)?;
    let test = mix.examples(
        cfg.test_rows,
        cfg.len,
        &mut TensorRng::new(cfg.seed ^ 0xdead_beef),
    );
    let mut task = SequenceTask::new(gpt, mix, cfg.len, cfg.batch_size, cfg.seed);
    let trainer_config = TrainerConfig::steps(cfg.steps)
        .clip_grad_norm(1.0)
        .log_every(cfg.steps)
        .quiet();
    let mut trainer = Trainer::new(trainer_config, opt).with_schedule(schedule);
    let mut curve = Vec::with_capacity(cfg.steps);
    trainer.fit_with(&mut task, |_, _, event| {
        // The event counts steps taken (from 1); the curve and `on_step` count from 0.
        let step = event.step - 1;
        curve.push((step as f64, f64::from(event.loss)));
        on_step(step, f64::from(event.loss));
        Ok(Control::Continue)
    })?;
    let mut gpt = task.into_gpt();
    gpt.eval();
    let answers = greedy_answers(&gpt, &test)?;
    let per_task = exact_matches(mix, &test, &answers);
    let hits: usize = per_task.iter().map(|(_, h, _)| h).sum();
    Ok(AttentionTaskRun {
        gpt,
        accuracy: hits as f64 / test.rows.len() as f64,
        per_task,
        curve,
        seconds: start.elapsed().as_secs_f64(),
    })
}
