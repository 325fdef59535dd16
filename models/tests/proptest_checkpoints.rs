//! Property tests of checkpoints: every model type, with arbitrary small configs, survives a
//! save and a load exactly (weights, buffers, config, tokenizer, training state) and computes
//! the same outputs afterwards; so do the int8 checkpoints of the quantized models. The example
//! tests in `checkpoint.rs` and `quantize.rs` pin one config each; these draw random ones.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use autograd::Variable;
use data::{BpeTokenizer, CharTokenizer, UnknownPolicy};
use models::checkpoint::{
    load_gpt, load_tensors, save_gpt, save_tensors, TokenizerSpec, TrainingState,
};
use models::cnn::{Cnn, CnnConfig, CnnLayer};
use models::gpt::{Gelu, Gpt, GptConfig};
use models::mlp::{Activation, Mlp, MlpConfig};
use models::quantize::{load_gpt_int8, load_int8_into, save_gpt_int8, save_int8};
use nn::Module;
use proptest::prelude::*;
use tensor::Tensor;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh file path in the temp directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> TempFile {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        TempFile(std::env::temp_dir().join(format!(
            "tt-prop-ckpt-{}-{n}-{name}.safetensors",
            std::process::id()
        )))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::ReLU),
        Just(Activation::GELU),
        Just(Activation::Tanh),
        Just(Activation::Sigmoid),
    ]
}

fn mlp_config() -> impl Strategy<Value = MlpConfig> {
    (
        prop::collection::vec(1usize..7, 2..5),
        activation(),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(sizes, act, bias, seed)| {
            MlpConfig::new(&sizes).activation(act).bias(bias).seed(seed)
        })
}

fn cnn_config() -> impl Strategy<Value = CnnConfig> {
    let features = prop_oneof![
        (1usize..4).prop_map(|c| vec![CnnLayer::conv(c, 3, 1), CnnLayer::Act]),
        (1usize..4).prop_map(|c| vec![
            CnnLayer::conv(c, 3, 0),
            CnnLayer::BatchNorm,
            CnnLayer::Act,
            CnnLayer::MaxPool(2),
        ]),
        (1usize..4).prop_map(|c| vec![CnnLayer::conv(c, 2, 1), CnnLayer::AvgPool(2)]),
    ];
    (
        1usize..3,
        6usize..9,
        6usize..9,
        features,
        prop::collection::vec(1usize..6, 0..2),
        2usize..5,
        activation(),
        any::<u64>(),
    )
        .prop_map(
            |(c, h, w, features, hidden, num_classes, activation, seed)| CnnConfig {
                input_shape: [c, h, w],
                features,
                hidden,
                num_classes,
                activation,
                dropout: 0.0,
                seed,
            },
        )
}

/// A GPT config and the tokenizer stored with it (none, char or BPE; the vocabulary covers it).
fn gpt_and_tokenizer() -> impl Strategy<Value = (GptConfig, TokenizerSpec)> {
    let tokenizer = prop_oneof![
        Just(TokenizerSpec::None),
        "[a-h !]{1,12}".prop_map(|t| TokenizerSpec::Char(CharTokenizer::from_corpus(
            &t,
            UnknownPolicy::Error
        ))),
        ("[a-d ]{2,24}", 0usize..6).prop_map(|(t, extra)| TokenizerSpec::Bpe(
            BpeTokenizer::train(&t, 256 + extra).unwrap()
        )),
    ];
    (
        tokenizer,
        0usize..6,
        1usize..6,
        1usize..3,
        1usize..3,
        1usize..4,
        prop_oneof![Just(0.0f32), Just(0.1), Just(0.25)],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(tokenizer, spare, block_size, n_layer, n_head, head_dim, dropout, bias, tie)| {
                let vocab_size = tokenizer.vocab_size().unwrap_or(1) + spare;
                let config = GptConfig {
                    vocab_size,
                    block_size,
                    n_layer,
                    n_head,
                    n_embd: n_head * head_dim,
                    dropout,
                    bias,
                    tie_weights: tie,
                    gelu: Gelu::Exact,
                };
                (config, tokenizer)
            },
        )
}

/// String values and small tensors (named apart from the model's) to store beside a model.
fn training_state() -> impl Strategy<Value = TrainingState> {
    (
        prop::collection::btree_map("[a-z_]{1,8}", ".{0,12}", 0..3),
        prop::collection::btree_map(
            "optimizer\\.[a-z]{1,6}",
            prop::collection::vec(-1e3f32..1e3, 1..5),
            0..3,
        ),
    )
        .prop_map(|(metadata, tensors)| TrainingState {
            metadata,
            tensors: tensors
                .into_iter()
                .map(|(k, v)| {
                    let n = v.len();
                    (k, Tensor::from_vec(v, &[n]).unwrap())
                })
                .collect(),
        })
}

/// A batch of two inputs of `shape`, values in [-1, 1).
fn inputs(shape: &[usize], seed: u64) -> Variable {
    let n: usize = 2 * shape.iter().product::<usize>();
    let values = (0..n)
        .map(|i| ((i as u64 * 2654435761 + seed) % 2000) as f32 / 1000.0 - 1.0)
        .collect();
    let mut full = vec![2];
    full.extend_from_slice(shape);
    Variable::constant(Tensor::from_vec(values, &full).unwrap())
}

/// The model's outputs on `x` (without a graph: int8 layers compute no gradients).
fn output(model: &dyn Module, x: &Variable) -> Vec<f32> {
    autograd::no_grad(|| model.forward(x).unwrap().value().to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Any MLP's weights saved and loaded into a differently seeded twin give equal weights and
    /// equal outputs; its int8 copy survives its int8 checkpoint the same way.
    #[test]
    fn mlp_checkpoints_round_trip(config in mlp_config()) {
        let mut model = Mlp::new(config.clone()).unwrap();
        let file = TempFile::new("mlp");
        save_tensors(&file.0, &model.state_dict(), &BTreeMap::new()).unwrap();
        let (tensors, _) = load_tensors(&file.0).unwrap();
        let mut twin = Mlp::new(config.clone().seed(config.seed.wrapping_add(1))).unwrap();
        twin.load_state_dict(&tensors).unwrap();
        prop_assert_eq!(twin.state_dict(), model.state_dict());
        model.eval();
        twin.eval();
        let x = inputs(&[model.in_features()], config.seed);
        prop_assert_eq!(output(&model, &x), output(&twin, &x));

        let q = model.quantized().unwrap();
        save_int8(&file.0, &q, &BTreeMap::new()).unwrap();
        let mut q_twin = Mlp::new(config.clone().seed(config.seed.wrapping_add(2)))
            .unwrap()
            .quantized()
            .unwrap();
        load_int8_into(&file.0, &mut q_twin).unwrap();
        prop_assert_eq!(output(&q, &x), output(&q_twin, &x));
    }

    /// Any small CNN (convolutions, batch norm with its running statistics, pooling, hidden
    /// layers) round trips exactly, and its int8 copy through its int8 checkpoint.
    #[test]
    fn cnn_checkpoints_round_trip(config in cnn_config()) {
        let mut model = Cnn::new(config.clone()).unwrap();
        // One training-mode pass moves the batch-norm running statistics off their start.
        let x = inputs(&config.input_shape, config.seed);
        model.forward(&x).unwrap();
        let file = TempFile::new("cnn");
        save_tensors(&file.0, &model.state_dict(), &BTreeMap::new()).unwrap();
        let (tensors, _) = load_tensors(&file.0).unwrap();
        let mut twin = Cnn::new(config.clone().seed(config.seed.wrapping_add(1))).unwrap();
        twin.load_state_dict(&tensors).unwrap();
        prop_assert_eq!(twin.state_dict(), model.state_dict());
        model.eval();
        twin.eval();
        prop_assert_eq!(output(&model, &x), output(&twin, &x));

        let q = model.quantized().unwrap();
        save_int8(&file.0, &q, &BTreeMap::new()).unwrap();
        let mut q_twin = Cnn::new(config.clone().seed(config.seed.wrapping_add(2)))
            .unwrap()
            .quantized()
            .unwrap();
        load_int8_into(&file.0, &mut q_twin).unwrap();
        prop_assert_eq!(output(&q, &x), output(&q_twin, &x));
    }

    /// Any small GPT (tied or not, bias or not, any tokenizer, any training state) loads back
    /// from its checkpoint alone with the same config, weights, tokenizer, state and logits;
    /// its int8 copy loads back from its int8 checkpoint with the same logits.
    #[test]
    fn gpt_checkpoints_round_trip(
        (config, tokenizer) in gpt_and_tokenizer(),
        state in training_state(),
        seed in any::<u64>(),
    ) {
        let mut model = Gpt::new(config.clone(), seed).unwrap();
        let file = TempFile::new("gpt");
        save_gpt(&file.0, &model, &tokenizer, &state).unwrap();
        let loaded = load_gpt(&file.0).unwrap();
        let mut back = loaded.model;
        prop_assert_eq!(back.config(), &config);
        prop_assert_eq!(back.state_dict(), model.state_dict());
        prop_assert_eq!(&loaded.tokenizer, &tokenizer);
        prop_assert_eq!(&loaded.state.metadata, &state.metadata);
        prop_assert_eq!(&loaded.state.tensors, &state.tensors);
        model.eval();
        back.eval();
        let ids: Vec<usize> = (0..config.block_size).map(|i| (i * 7 + 3) % config.vocab_size).collect();
        let logits = |m: &Gpt| {
            autograd::no_grad(|| m.logits(&ids, 1, ids.len()).unwrap().value().to_vec())
        };
        prop_assert_eq!(logits(&back), logits(&model));

        let q = model.quantized().unwrap();
        save_gpt_int8(&file.0, &q, &tokenizer).unwrap();
        let (q_back, q_tokenizer) = load_gpt_int8(&file.0).unwrap();
        prop_assert_eq!(&q_tokenizer, &tokenizer);
        prop_assert_eq!(logits(&q_back), logits(&q));
    }
}
