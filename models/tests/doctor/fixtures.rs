//! The doctor grader's fixtures: data (blobs, bar images, a noisy token cycle), models (healthy
//! and deliberately broken), and the optimizers the checks build.

use std::collections::BTreeMap;

use autograd::Variable;
use data::{DataLoader, LmBatch, LmBatcher, Targets, TensorDataset};
use models::doctor::DoctorReport;
use models::gpt::{Gelu, Gpt, GptConfig};
use models::trainer::{EvalResult, TaskBatch, TrainTask};
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
pub(crate) fn blobs(n: usize, seed: u64, std: f32) -> TensorDataset {
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

pub(crate) fn blob_loader(shuffle: bool) -> DataLoader {
    let loader = DataLoader::new(blobs(96, 3, 0.5), 16).unwrap();
    if shuffle {
        loader.shuffle(11)
    } else {
        loader
    }
}

/// 8x8 images: class 0 a horizontal bar, class 1 a vertical bar, at a random place, plus noise.
pub(crate) fn bars(n: usize, seed: u64) -> TensorDataset {
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
pub(crate) fn cycle_tokens(n: usize, vocab: usize, seed: u64) -> Vec<usize> {
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

pub(crate) fn lm_batcher(seed: u64) -> LmBatcher {
    LmBatcher::new(cycle_tokens(2000, 12, seed), 16, 8, seed).unwrap()
}

// ----- models -----

pub(crate) fn mlp(seed: u64) -> Sequential {
    let mut rng = TensorRng::new(seed);
    Sequential::new()
        .add(Linear::new(2, 16, true, &mut rng))
        .add(ReLU)
        .add(Linear::new(16, 3, true, &mut rng))
}

/// An MLP whose second layer reads a detached copy of the first layer's output: no gradient can
/// reach `fc1`.
pub(crate) struct DetachedMlp {
    pub(crate) fc1: Linear,
    pub(crate) fc2: Linear,
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

pub(crate) fn cnn(seed: u64) -> Sequential {
    let mut rng = TensorRng::new(seed);
    Sequential::new()
        .add(Conv2d::new(Conv2dConfig::new(1, 4, 3).padding(1), &mut rng).unwrap())
        .add(ReLU)
        .add(MaxPool2d::new(2))
        .add(Flatten::new())
        .add(Linear::new(4 * 4 * 4, 2, true, &mut rng))
}

/// A bigram language model: each token's embedding feeds a linear head (token ids in).
pub(crate) struct Bigram {
    pub(crate) embedding: Embedding,
    pub(crate) head: Linear,
}

pub(crate) fn bigram(vocab: usize, seed: u64) -> Bigram {
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

pub(crate) fn bigram_loss(model: &Bigram, b: &LmBatch) -> Result<Variable> {
    model.loss(&b.inputs, &b.targets, [b.batch_size, b.block_size])
}

/// The classic bug: targets are the inputs themselves, not shifted by one. A task of its own:
/// the handful of methods any model + data + loss implements to be trained and diagnosed.
pub(crate) struct UnshiftedBigram {
    pub(crate) model: Bigram,
    pub(crate) batcher: LmBatcher,
    pub(crate) current: Option<LmBatch>,
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

pub(crate) fn sgd(
    lr: f64,
) -> impl Fn(Vec<(String, Variable)>) -> optim::Result<Box<dyn Optimizer>> {
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

pub(crate) fn adam(
    lr: f64,
) -> impl Fn(Vec<(String, Variable)>) -> optim::Result<Box<dyn Optimizer>> {
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

pub(crate) fn assert_all_pass(report: &DoctorReport) {
    assert_eq!(report.checks.len(), 7, "{}", report.table());
    assert!(report.all_passed(), "{}", report.table());
    assert!(report.failed().is_empty());
}

pub(crate) fn failed_names(report: &DoctorReport) -> Vec<&str> {
    report.failed().iter().map(|c| c.name.as_str()).collect()
}

/// A model whose output leaves the graph (what re-wrapping `.data` did): the loss computed
/// from it is outside the graph too.
pub(crate) struct DetachedOutput(pub(crate) Sequential);

impl Module for DetachedOutput {
    fn forward(&self, x: &Variable) -> nn::Result<Variable> {
        Ok(self.0.forward(x)?.detach())
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        self.0.named_parameters()
    }
}

// ----- GPT -----

pub(crate) fn tiny_gpt(seed: u64) -> Gpt {
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

pub(crate) fn gpt_loss(gpt: &Gpt, b: &LmBatch) -> Result<Variable> {
    gpt.loss(&b.inputs, &b.targets, b.batch_size, b.block_size)
}

/// The loss of a GPT whose block 1 adds its output to the residual stream through `.detach()`:
/// the stream (and every other layer's gradient) flows on, but nothing reaches that block.
pub(crate) fn gpt_loss_with_block_1_detached(gpt: &Gpt, b: &LmBatch) -> Result<Variable> {
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
