//! The training doctor's grader: healthy MLP, CNN and language models pass all seven checks; a
//! detached layer, unshifted targets, a detached loss and a loader that never shuffles each fail
//! the right check, by name; the LR range test suggests a sane learning rate. Every model is
//! diagnosed as the trainer trains it: a `TrainTask` (`Classification`, `LanguageModel`, or a
//! task of its own).

use std::collections::BTreeMap;

use autograd::Variable;
use data::{DataLoader, LmBatch, LmBatcher, Targets, TensorDataset};
use models::doctor::{
    diagnose, lr_range_test, DoctorConfig, DoctorReport, LrRangeConfig, DATA_ALIGNMENT,
    GRADIENT_FLOW, LOADER_INTEGRATION, LOSS_ATTACHED, PARAMETERS_UPDATE,
};
use models::gpt::{Gelu, Gpt, GptConfig};
use models::trainer::{Classification, EvalResult, LanguageModel, TaskBatch, TrainTask};
use models::Result;
use nn::activation::ReLU;
use nn::conv::{Conv2d, Conv2dConfig};
use nn::embedding::Embedding;
use nn::flatten::Flatten;
use nn::linear::Linear;
use nn::module::prefixed;
use nn::pool::MaxPool2d;
use nn::sequential::Sequential;
use nn::Module;
use optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use serde_json::Value;
use tensor::{Tensor, TensorRng};

// ----- data -----

/// Three Gaussian blobs in 2-D around centers 4 apart, `n` samples.
fn blobs(n: usize, seed: u64, std: f32) -> TensorDataset {
    let centers = [(-2.0f32, -2.0f32), (2.0, -2.0), (0.0, 2.0)];
    let mut rng = TensorRng::new(seed);
    let noise = rng.normal(&[n, 2], 0.0, std).unwrap().to_vec();
    let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
    let x: Vec<f32> = labels
        .iter()
        .enumerate()
        .flat_map(|(i, &c)| [centers[c].0 + noise[2 * i], centers[c].1 + noise[2 * i + 1]])
        .collect();
    TensorDataset::new(
        Tensor::from_vec(x, &[n, 2]).unwrap(),
        Targets::Classes(labels),
    )
    .unwrap()
}

fn blob_loader(shuffle: bool) -> DataLoader {
    let loader = DataLoader::new(blobs(96, 3, 0.5), 16).unwrap();
    if shuffle {
        loader.shuffle(11)
    } else {
        loader
    }
}

/// 8x8 images: class 0 a horizontal bar, class 1 a vertical bar, at a random place, plus noise.
fn bars(n: usize, seed: u64) -> TensorDataset {
    let mut rng = TensorRng::new(seed);
    let mut x = rng.normal(&[n, 1, 8, 8], 0.0, 0.1).unwrap().to_vec();
    let labels: Vec<usize> = (0..n).map(|i| i % 2).collect();
    for (i, &c) in labels.iter().enumerate() {
        let at = rng.below(8);
        for k in 0..8 {
            let (r, col) = if c == 0 { (at, k) } else { (k, at) };
            x[i * 64 + r * 8 + col] += 1.0;
        }
    }
    TensorDataset::new(
        Tensor::from_vec(x, &[n, 1, 8, 8]).unwrap(),
        Targets::Classes(labels),
    )
    .unwrap()
}

/// A token stream from a noisy cycle over `vocab` tokens: the next token is usually `t + 1`.
fn cycle_tokens(n: usize, vocab: usize, seed: u64) -> Vec<usize> {
    let mut rng = TensorRng::new(seed);
    let mut t = 0;
    (0..n)
        .map(|_| {
            t = if rng.below(10) == 0 {
                rng.below(vocab)
            } else {
                (t + 1) % vocab
            };
            t
        })
        .collect()
}

fn lm_batcher(seed: u64) -> LmBatcher {
    LmBatcher::new(cycle_tokens(2000, 12, seed), 16, 8, seed).unwrap()
}

// ----- models -----

fn mlp(seed: u64) -> Sequential {
    let mut rng = TensorRng::new(seed);
    Sequential::new()
        .add(Linear::new(2, 16, true, &mut rng))
        .add(ReLU)
        .add(Linear::new(16, 3, true, &mut rng))
}

/// An MLP whose second layer reads a detached copy of the first layer's output: no gradient can
/// reach `fc1`.
struct DetachedMlp {
    fc1: Linear,
    fc2: Linear,
}

impl Module for DetachedMlp {
    fn forward(&self, x: &Variable) -> nn::Result<Variable> {
        let h = self.fc1.forward(x)?.relu()?;
        self.fc2.forward(&h.detach())
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        let mut p = prefixed("fc1", self.fc1.named_parameters());
        p.extend(prefixed("fc2", self.fc2.named_parameters()));
        p
    }
}

fn cnn(seed: u64) -> Sequential {
    let mut rng = TensorRng::new(seed);
    Sequential::new()
        .add(Conv2d::new(Conv2dConfig::new(1, 4, 3).padding(1), &mut rng).unwrap())
        .add(ReLU)
        .add(MaxPool2d::new(2))
        .add(Flatten::new())
        .add(Linear::new(4 * 4 * 4, 2, true, &mut rng))
}

/// A bigram language model: each token's embedding feeds a linear head (token ids in).
struct Bigram {
    embedding: Embedding,
    head: Linear,
}

fn bigram(vocab: usize, seed: u64) -> Bigram {
    let mut rng = TensorRng::new(seed);
    Bigram {
        embedding: Embedding::new(vocab, 16, &mut rng),
        head: Linear::new(16, vocab, true, &mut rng),
    }
}

impl Bigram {
    fn loss(&self, inputs: &[usize], targets: &[usize], shape: [usize; 2]) -> Result<Variable> {
        let x = self.embedding.forward_ids(inputs, &shape)?;
        Ok(self.head.forward(&x)?.cross_entropy(targets, None, 0.0)?)
    }
}

/// A model of token ids is a `Module` for its parameters and state; its forward reads ids.
impl Module for Bigram {
    fn forward(&self, x: &Variable) -> nn::Result<Variable> {
        self.embedding.forward(x)
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        let mut params = prefixed("embedding", self.embedding.named_parameters());
        params.extend(prefixed("head", self.head.named_parameters()));
        params
    }
}

fn bigram_loss(model: &Bigram, b: &LmBatch) -> Result<Variable> {
    model.loss(&b.inputs, &b.targets, [b.batch_size, b.block_size])
}

/// The classic bug: targets are the inputs themselves, not shifted by one. A task of its own:
/// the handful of methods any model + data + loss implements to be trained and diagnosed.
struct UnshiftedBigram {
    model: Bigram,
    batcher: LmBatcher,
    current: Option<LmBatch>,
}

impl TrainTask for UnshiftedBigram {
    fn unit(&self) -> &'static str {
        "tokens"
    }

    fn next_batch(&mut self) -> Result<usize> {
        let mut batch = self.batcher.sample();
        batch.targets = batch.inputs.clone();
        let n = batch.inputs.len();
        self.current = Some(batch);
        Ok(n)
    }

    fn current_batch(&self) -> Option<TaskBatch> {
        self.current.clone().map(TaskBatch::Lm)
    }

    fn loss(&mut self) -> Result<Variable> {
        let b = self.current.as_ref().expect("next_batch first");
        self.model
            .loss(&b.inputs, &b.targets, [b.batch_size, b.block_size])
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        Module::named_parameters(&self.model)
    }

    fn evaluate(&mut self) -> Result<Option<EvalResult>> {
        Ok(None)
    }

    fn state_dict(&self) -> BTreeMap<String, Tensor> {
        self.model.state_dict()
    }

    fn load_state_dict(&mut self, state: &BTreeMap<String, Tensor>) -> Result<()> {
        Ok(self.model.load_state_dict(state)?)
    }

    fn position(&self) -> Value {
        Value::Null
    }

    fn set_position(&mut self, _position: &Value) -> Result<()> {
        Ok(())
    }
}

fn sgd(lr: f64) -> impl Fn(Vec<(String, Variable)>) -> optim::Result<Box<dyn Optimizer>> {
    move |p| {
        Ok(Box::new(Sgd::new(
            p,
            SgdConfig {
                lr,
                momentum: 0.9,
                ..Default::default()
            },
        )?))
    }
}

fn adam(lr: f64) -> impl Fn(Vec<(String, Variable)>) -> optim::Result<Box<dyn Optimizer>> {
    move |p| {
        Ok(Box::new(Adam::new(
            p,
            AdamConfig {
                lr,
                ..Default::default()
            },
        )?))
    }
}

fn assert_all_pass(report: &DoctorReport) {
    assert_eq!(report.checks.len(), 7, "{}", report.table());
    assert!(report.all_passed(), "{}", report.table());
    assert!(report.failed().is_empty());
}

fn failed_names(report: &DoctorReport) -> Vec<&str> {
    report.failed().iter().map(|c| c.name.as_str()).collect()
}

// ----- tests -----

/// A healthy 2-layer MLP on separable blobs, as a `Classification` task, passes all seven checks quickly.
#[test]
fn healthy_mlp_passes_every_check() {
    let report = diagnose(
        || Ok(Classification::new(mlp(5), blob_loader(true))),
        sgd(0.05),
        &DoctorConfig::default(),
    )
    .unwrap();
    println!("{}", report.table());
    assert_all_pass(&report);
    let table = report.table();
    assert!(table.contains("PASS") && !table.contains("FAIL"), "{table}");
    assert!(table.contains("7/7 checks passed"), "{table}");
    assert!(
        report.seconds < 30.0,
        "the doctor took {} s",
        report.seconds
    );
}

/// A healthy small CNN on bar images passes all seven checks.
#[test]
fn healthy_cnn_passes_every_check() {
    let loader = DataLoader::new(bars(64, 4), 16).unwrap().shuffle(2);
    let report = diagnose(
        || Ok(Classification::new(cnn(6), loader.clone())),
        adam(1e-2),
        &DoctorConfig::default(),
    )
    .unwrap();
    println!("{}", report.table());
    assert_all_pass(&report);
}

/// A bigram language model on shifted token windows (a `LanguageModel` task) passes all seven checks.
#[test]
fn healthy_language_model_passes_every_check() {
    let report = diagnose(
        || {
            Ok(LanguageModel::new(
                bigram(12, 8),
                lm_batcher(1),
                bigram_loss,
            ))
        },
        adam(1e-2),
        &DoctorConfig::default(),
    )
    .unwrap();
    println!("{}", report.table());
    assert_all_pass(&report);
    assert!(report
        .check(DATA_ALIGNMENT)
        .unwrap()
        .detail
        .contains("every target is the next input"));
}

/// A detached first layer fails gradient flow and parameter update, naming exactly that layer's parameters.
#[test]
fn detached_layer_fails_gradient_flow_naming_the_first_layer() {
    let build = || {
        let mut rng = TensorRng::new(5);
        let model = DetachedMlp {
            fc1: Linear::new(2, 16, true, &mut rng),
            fc2: Linear::new(16, 3, true, &mut rng),
        };
        Ok(Classification::new(model, blob_loader(true)))
    };
    let report = diagnose(build, sgd(0.05), &DoctorConfig::default()).unwrap();
    println!("{}", report.table());
    assert!(!report.all_passed());
    let flow = report.check(GRADIENT_FLOW).unwrap();
    assert!(!flow.passed);
    assert_eq!(
        flow.failing,
        vec!["fc1.weight", "fc1.bias"],
        "{}",
        flow.detail
    );
    assert!(flow.detail.contains("2 of 4 parameters"), "{}", flow.detail);
    assert!(
        flow.detail.contains("fc1.weight (no gradient)"),
        "{}",
        flow.detail
    );
    let update = report.check(PARAMETERS_UPDATE).unwrap();
    assert!(!update.passed);
    assert_eq!(
        update.failing,
        vec!["fc1.weight", "fc1.bias"],
        "{}",
        update.detail
    );
    // The optimizer's own refusal is quoted.
    assert!(
        update.detail.contains("the optimizer refuses"),
        "{}",
        update.detail
    );
    // The data and the loss are fine.
    assert!(report.check(DATA_ALIGNMENT).unwrap().passed);
    assert!(report.check(LOSS_ATTACHED).unwrap().passed);
    assert!(report.check(LOADER_INTEGRATION).unwrap().passed);
    assert_eq!(
        failed_names(&report)[..2],
        [GRADIENT_FLOW, PARAMETERS_UPDATE]
    );
}

/// Targets equal to the inputs (not shifted) fail data alignment, and only that check.
#[test]
fn unshifted_language_model_targets_fail_data_alignment() {
    let build = || {
        Ok(UnshiftedBigram {
            model: bigram(12, 8),
            batcher: lm_batcher(1),
            current: None,
        })
    };
    let report = diagnose(
        build,
        adam(1e-2),
        &DoctorConfig {
            lr_range: None,
            ..Default::default()
        },
    )
    .unwrap();
    println!("{}", report.table());
    let check = report.check(DATA_ALIGNMENT).unwrap();
    assert!(!check.passed);
    assert!(
        check.detail.contains("the targets are not shifted"),
        "{}",
        check.detail
    );
    // 16 batches of 8 windows, each with 15 checkable positions; the cycle makes most of them
    // wrong.
    assert!(
        check.detail.contains("of 1920 positions"),
        "{}",
        check.detail
    );
    assert_eq!(
        failed_names(&report),
        vec![DATA_ALIGNMENT],
        "{}",
        report.table()
    );
    assert!(report.suggested_lr.is_none());
}

/// A model whose output leaves the graph (what re-wrapping `.data` did): the loss computed
/// from it is outside the graph too.
struct DetachedOutput(Sequential);

impl Module for DetachedOutput {
    fn forward(&self, x: &Variable) -> nn::Result<Variable> {
        Ok(self.0.forward(x)?.detach())
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        self.0.named_parameters()
    }
}

/// A loss computed from detached outputs fails the loss, gradient, update and training checks.
#[test]
fn detached_loss_fails_the_loss_and_gradient_checks() {
    let report = diagnose(
        || {
            Ok(Classification::new(
                DetachedOutput(mlp(5)),
                blob_loader(true),
            ))
        },
        sgd(0.05),
        &DoctorConfig {
            lr_range: None,
            multi_batch_steps: 20,
            multi_batch_window: 5,
            overfit_steps: 10,
            ..Default::default()
        },
    )
    .unwrap();
    println!("{}", report.table());
    let loss = report.check(LOSS_ATTACHED).unwrap();
    assert!(
        !loss.passed && loss.detail.contains("does not require grad"),
        "{}",
        loss.detail
    );
    let flow = report.check(GRADIENT_FLOW).unwrap();
    assert_eq!(
        flow.failing,
        vec!["0.weight", "0.bias", "2.weight", "2.bias"]
    );
    // Nothing trains: the overfit and multi-batch checks fail too.
    assert_eq!(
        failed_names(&report),
        vec![
            LOSS_ATTACHED,
            GRADIENT_FLOW,
            PARAMETERS_UPDATE,
            "single-batch overfit",
            "multi-batch decrease"
        ]
    );
}

/// A loader that never shuffles fails loader integration, and only that check.
#[test]
fn loader_without_shuffle_fails_loader_integration() {
    let report = diagnose(
        || Ok(Classification::new(mlp(5), blob_loader(false))),
        sgd(0.05),
        &DoctorConfig {
            lr_range: None,
            ..Default::default()
        },
    )
    .unwrap();
    let check = report.check(LOADER_INTEGRATION).unwrap();
    assert!(!check.passed);
    assert!(
        check.detail.contains("shuffling is off"),
        "{}",
        check.detail
    );
    assert_eq!(failed_names(&report), vec![LOADER_INTEGRATION]);
}

/// A learning rate of 1e-7 fails the single-batch overfit and multi-batch checks, and only those.
#[test]
fn a_far_too_small_learning_rate_fails_the_training_checks() {
    let report = diagnose(
        || Ok(Classification::new(mlp(5), blob_loader(true))),
        sgd(1e-7),
        &DoctorConfig {
            lr_range: None,
            ..Default::default()
        },
    )
    .unwrap();
    println!("{}", report.table());
    assert_eq!(
        failed_names(&report),
        vec!["single-batch overfit", "multi-batch decrease"],
        "{}",
        report.table()
    );
    assert!(report
        .check("single-batch overfit")
        .unwrap()
        .detail
        .contains("after 100 steps"));
}

/// The LR range test grows the rate geometrically, stops on divergence and suggests a rate a tenth of the minimum's.
#[test]
fn lr_range_test_suggests_a_sane_rate_for_the_blobs_mlp() {
    // Overlapping blobs: the loss cannot reach 0, so a too large lr shows as divergence.
    let loader = DataLoader::new(blobs(256, 3, 1.2), 16).unwrap().shuffle(5);
    let mut task = Classification::new(mlp(5), loader.clone());
    let mut opt = sgd(0.0)(task.named_parameters()).unwrap();
    let config = LrRangeConfig {
        start_lr: 1e-5,
        end_lr: 10.0,
        steps: 100,
        ..Default::default()
    };
    let result = lr_range_test(
        &mut task,
        opt.as_mut(),
        &config,
        std::time::Duration::from_secs(30),
    )
    .unwrap();
    println!("{}", result.summary());
    let lr = result
        .suggested_lr
        .expect("the loss falls during the sweep");
    assert!((1e-4..=1.0).contains(&lr), "suggested lr {lr}");
    assert!((lr * 10.0 - result.min_loss_lr).abs() < 1e-12);
    // The minimum is well below the first loss (about ln 3 = 1.1).
    assert!(
        result.min_loss < 0.5 * result.smoothed[0],
        "{}",
        result.summary()
    );
    // The learning rates grow by the same factor every step.
    let ratio = (10.0f64 / 1e-5).powf(1.0 / 99.0);
    for w in result.lrs.windows(2) {
        assert!((w[1] / w[0] / ratio - 1.0).abs() < 1e-9);
    }
    // SGD with momentum at lr 10 diverges: the sweep stops early and says so.
    assert!(result.diverged_at.is_some(), "{}", result.summary());
    assert!(result.lrs.len() < 100);

    // The doctor's report carries the same kind of suggestion.
    let report = diagnose(
        || Ok(Classification::new(mlp(5), loader.clone())),
        sgd(0.05),
        &DoctorConfig::default(),
    )
    .unwrap();
    let suggested = report.suggested_lr.unwrap();
    assert!((1e-4..=1.0).contains(&suggested), "{suggested}");
    assert!(
        report.table().contains("suggested lr"),
        "{}",
        report.table()
    );
}

/// A bad doctor configuration is an error naming the field, not a failed check.
#[test]
fn bad_config_is_an_error() {
    let e = diagnose(
        || Ok(Classification::new(mlp(5), blob_loader(true))),
        sgd(0.05),
        &DoctorConfig {
            max_batches: 0,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("max_batches (0)"), "{e}");
}

// ----- GPT -----

fn tiny_gpt(seed: u64) -> Gpt {
    Gpt::new(
        GptConfig {
            vocab_size: 12,
            block_size: 16,
            n_layer: 2,
            n_head: 2,
            n_embd: 32,
            dropout: 0.0,
            bias: true,
            tie_weights: false,
            gelu: Gelu::Exact,
        },
        seed,
    )
    .unwrap()
}

/// A tiny GPT trained as a `LanguageModel` task passes all seven checks.
#[test]
fn healthy_gpt_passes_every_check() {
    let report = diagnose(
        || Ok(LanguageModel::new(tiny_gpt(2), lm_batcher(1), gpt_loss)),
        adam(1e-2),
        &DoctorConfig::default(),
    )
    .unwrap();
    println!("{}", report.table());
    assert_all_pass(&report);
    assert!(report
        .check(GRADIENT_FLOW)
        .unwrap()
        .detail
        .contains("all 29 parameters"));
}

fn gpt_loss(gpt: &Gpt, b: &LmBatch) -> Result<Variable> {
    gpt.loss(&b.inputs, &b.targets, b.batch_size, b.block_size)
}

/// The loss of a GPT whose block 1 adds its output to the residual stream through `.detach()`:
/// the stream (and every other layer's gradient) flows on, but nothing reaches that block.
fn gpt_loss_with_block_1_detached(gpt: &Gpt, b: &LmBatch) -> Result<Variable> {
    let tok = gpt
        .wte
        .forward_ids(&b.inputs, &[b.batch_size, b.block_size])?;
    let mut x = gpt.wpe.forward_at(&tok, 0)?;
    for (i, block) in gpt.blocks.iter().enumerate() {
        let y = block.forward(&x)?;
        x = if i == 1 {
            x.add(&y.sub(&x)?.detach())?
        } else {
            y
        };
    }
    let logits = gpt.lm_head.forward(&gpt.ln_f.forward(&x)?)?;
    Ok(logits.cross_entropy(&b.targets, None, 0.0)?)
}

/// A GPT whose block 1 is detached from the residual stream fails gradient flow naming exactly that block's twelve parameters.
#[test]
fn gpt_with_a_detached_block_fails_by_name() {
    let report = diagnose(
        || {
            Ok(LanguageModel::new(
                tiny_gpt(2),
                lm_batcher(1),
                gpt_loss_with_block_1_detached,
            ))
        },
        adam(1e-2),
        &DoctorConfig {
            lr_range: None,
            ..Default::default()
        },
    )
    .unwrap();
    println!("{}", report.table());
    assert!(!report.all_passed());
    let flow = report.check(GRADIENT_FLOW).unwrap();
    assert!(!flow.passed);
    let block1: Vec<String> = Module::named_parameters(&tiny_gpt(2))
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with("transformer.h.1."))
        .collect();
    assert_eq!(block1.len(), 12);
    // Exactly block 1's parameters, by their nanoGPT names.
    assert_eq!(flow.failing, block1, "{}", flow.detail);
    assert!(
        flow.detail.contains("12 of 29 parameters"),
        "{}",
        flow.detail
    );
    assert!(flow
        .detail
        .contains("transformer.h.1.attn.c_attn.weight (no gradient)"));
    let update = report.check(PARAMETERS_UPDATE).unwrap();
    assert_eq!(update.failing, block1, "{}", update.detail);
    assert_eq!(
        failed_names(&report)[..2],
        [GRADIENT_FLOW, PARAMETERS_UPDATE]
    );
}
