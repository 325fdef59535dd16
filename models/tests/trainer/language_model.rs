//! The trainer on language models: a bigram table and a GPT, resumed exactly; the per-step hook.

use super::*;

/// A bigram model: an embedding table whose rows are the next token's logits.
fn bigram_loss(model: &Embedding, batch: &LmBatch) -> models::Result<Variable> {
    let logits = model.forward_ids(&batch.inputs, &[batch.batch_size, batch.block_size])?;
    Ok(logits.cross_entropy(&batch.targets, None, 0.0)?)
}

type BigramLoss = fn(&Embedding, &LmBatch) -> models::Result<Variable>;

fn bigram_run(steps: usize) -> (LanguageModel<Embedding, BigramLoss>, Trainer) {
    // "abcd" repeated with a rare branch: after 'd' comes 'a' except every 7th time 'c'.
    let mut tokens = Vec::new();
    for i in 0..300 {
        tokens.extend([0, 1, 2, 3]);
        if i % 7 == 6 {
            tokens.push(2);
        }
    }
    let (train, val) = data::split_train_val(&tokens, 0.2).unwrap();
    let train = LmBatcher::new(train, 8, 4, 17).unwrap();
    let val = LmBatcher::new(val, 8, 4, 0).unwrap();
    let model = Embedding::new(4, 4, &mut TensorRng::new(1));
    let opt = adam(model.named_parameters(), 0.1);
    let loss: BigramLoss = bigram_loss;
    let task = LanguageModel::new(model, train, loss).with_val(&val, 4);
    let trainer = Trainer::new(TrainerConfig::steps(steps).eval_every(20).quiet(), opt);
    (task, trainer)
}

/// The same trainer trains a bigram language model (perplexity near 1) and resumes it exactly.
#[test]
fn the_same_trainer_trains_a_language_model_and_resumes_it() {
    let (mut task, mut trainer) = bigram_run(60);
    assert_eq!(task.unit(), "tokens");
    let report = trainer.fit(&mut task).unwrap();
    let eval = report.eval.unwrap();
    // Perplexity of the best bigram model here is close to 1 (only 'd' is uncertain).
    assert!(eval.metric.unwrap() < 1.5, "perplexity {:?}", eval.metric);
    assert!((eval.metric.unwrap() - eval.loss.exp()).abs() < 1e-9);
    assert_eq!(trainer.history().unit, "tokens");

    // Resume from step 25 replays the batcher's draws.
    let dir = tmp("lm");
    let path = dir.join("lm.safetensors");
    let (mut a, mut ta) = bigram_run(25);
    ta.fit(&mut a).unwrap();
    ta.save_checkpoint(&a, &path).unwrap();
    let (mut b, mut tb) = bigram_run(60);
    tb.resume(&mut b, &path).unwrap();
    tb.fit(&mut b).unwrap();
    assert_eq!(
        bits(&task.model().named_parameters()),
        bits(&b.model().named_parameters())
    );
    let _ = std::fs::remove_dir_all(dir);
}

type GptLoss = fn(&models::gpt::Gpt, &LmBatch) -> models::Result<Variable>;

fn gpt_loss(gpt: &models::gpt::Gpt, b: &LmBatch) -> models::Result<Variable> {
    gpt.loss(&b.inputs, &b.targets, b.batch_size, b.block_size)
}

/// A one-layer GPT on a cyclic token stream, trained by the same trainer.
fn gpt_run(steps: usize) -> (LanguageModel<models::gpt::Gpt, GptLoss>, Trainer) {
    use models::gpt::{Gelu, Gpt, GptConfig};
    let config = GptConfig {
        vocab_size: 6,
        block_size: 8,
        n_layer: 1,
        n_head: 2,
        n_embd: 16,
        dropout: 0.0,
        bias: true,
        tie_weights: true,
        gelu: Gelu::Exact,
    };
    let gpt = Gpt::new(config, 4).unwrap();
    let tokens: Vec<usize> = (0..600).map(|i| (i * i / 3 + i) % 6).collect();
    let (train, val) = data::split_train_val(&tokens, 0.2).unwrap();
    let train = LmBatcher::new(train, 8, 4, 3).unwrap();
    let val = LmBatcher::new(val, 8, 4, 0).unwrap();
    let opt = optim::AdamW::new(gpt.named_parameters(), AdamConfig::adamw()).unwrap();
    let loss: GptLoss = gpt_loss;
    let task = LanguageModel::new(gpt, train, loss).with_val(&val, 2);
    let schedule = WarmupCosine::new(3e-3, 3, steps as u64, 3e-4).unwrap();
    let trainer = Trainer::new(
        TrainerConfig::steps(steps)
            .eval_every(10)
            .clip_grad_norm(1.0)
            .quiet(),
        opt,
    )
    .with_schedule(schedule);
    (task, trainer)
}

/// A GPT trained by the trainer, checkpointed at step 12 and resumed, matches the straight run.
#[test]
fn the_trainer_trains_a_gpt_and_resumes_it_bit_identically() {
    let (mut straight, mut t1) = gpt_run(30);
    t1.fit(&mut straight).unwrap();
    let h = &t1.history().records;
    assert!(h.last().unwrap().train_loss < h[0].train_loss);
    assert_eq!(t1.history().evaluations().count(), 3);

    let dir = tmp("gpt");
    let path = dir.join("gpt.safetensors");
    let (mut a, mut ta) = gpt_run(30);
    for _ in 0..12 {
        ta.train_step(&mut a).unwrap();
    }
    ta.save_checkpoint(&a, &path).unwrap();
    let (mut b, mut tb) = gpt_run(30);
    tb.resume(&mut b, &path).unwrap();
    assert_eq!(tb.step(), 12);
    tb.fit(&mut b).unwrap();
    assert_eq!(
        bits(&straight.model().named_parameters()),
        bits(&b.model().named_parameters())
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `fit_with`'s hook sees each step and its evaluations and can stop the run; a GPT saved in its
/// own format with `training_state` and restored by `restore_training_state` resumes exactly.
#[test]
fn a_hook_stops_the_run_and_a_gpt_checkpoint_with_training_state_resumes_it() {
    use models::checkpoint::{load_gpt, save_gpt, TokenizerSpec};
    use models::trainer::Control;
    let (mut straight, mut t1) = gpt_run(30);
    t1.fit(&mut straight).unwrap();

    let dir = tmp("gpt-hook");
    let path = dir.join("gpt.safetensors");
    let (mut a, mut ta) = gpt_run(30);
    let mut evals = Vec::new();
    let report = ta
        .fit_with(&mut a, |trainer, task, event| {
            if event.eval.is_some() {
                evals.push(event.step);
            }
            if event.step == 17 {
                let state = trainer.training_state(task);
                save_gpt(&path, task.model(), &TokenizerSpec::None, &state)?;
                return Ok(Control::Stop);
            }
            Ok(Control::Continue)
        })
        .unwrap();
    assert_eq!((report.steps, evals), (17, vec![10]));
    let saved = load_gpt(&path).unwrap();
    let (mut b, mut tb) = gpt_run(30);
    for ((_, mine), (_, theirs)) in b
        .model()
        .named_parameters()
        .iter()
        .zip(saved.model.named_parameters())
    {
        mine.set_value(theirs.value()).unwrap();
    }
    tb.restore_training_state(&mut b, &saved.state, &path)
        .unwrap();
    assert_eq!(tb.step(), 17);
    tb.fit(&mut b).unwrap();
    assert_eq!(
        bits(&straight.model().named_parameters()),
        bits(&b.model().named_parameters())
    );
    // A state without the trainer's entries is refused by name.
    let e = tb
        .restore_training_state(&mut b, &Default::default(), &path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("'trainer'"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

/// An epoch budget on a task without epochs, and a zero evaluation interval, are clear errors.
#[test]
fn an_epoch_budget_needs_a_task_with_epochs() {
    let (mut task, _) = bigram_run(1);
    let model_params = task.model().named_parameters();
    let mut trainer = Trainer::new(TrainerConfig::epochs(2).quiet(), adam(model_params, 0.1));
    let e = trainer.fit(&mut task).unwrap_err().to_string();
    assert!(e.contains("2 epochs") && e.contains("steps"), "{e}");
    let (mut task, _) = bigram_run(1);
    let mut trainer = Trainer::new(
        TrainerConfig::steps(5).eval_every(0).quiet(),
        adam(task.model().named_parameters(), 0.1),
    );
    let e = trainer.fit(&mut task).unwrap_err().to_string();
    assert!(e.contains("eval_every"), "{e}");
}
