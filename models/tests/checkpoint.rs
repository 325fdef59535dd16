//! Grader tests of checkpoints: safetensors round trips (model, tokenizer, training state),
//! nanoGPT names in the file, and load errors that list every mismatch.

use std::collections::BTreeMap;
use std::path::PathBuf;

use data::{BpeTokenizer, CharTokenizer, UnknownPolicy};
use models::checkpoint::{
    load_gpt, load_gpt_weights, load_tensors, save_gpt, save_tensors, TokenizerSpec, TrainingState,
};
use models::gpt::{Gelu, Gpt, GptConfig};
use models::ModelError;
use nn::Module;
use safetensors::tensor::{Dtype, TensorView};
use tensor::Tensor;

/// A fresh path in the temp directory (removed when dropped).
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> TempFile {
        let dir = std::env::temp_dir().join(format!("tinytorch-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempFile(dir.join(name))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn config(bias: bool, tie_weights: bool) -> GptConfig {
    GptConfig {
        vocab_size: 12,
        block_size: 10,
        n_layer: 2,
        n_head: 2,
        n_embd: 8,
        dropout: 0.1,
        bias,
        tie_weights,
        gelu: Gelu::Exact,
    }
}

fn char_tokenizer() -> CharTokenizer {
    CharTokenizer::from_corpus("hello world!", UnknownPolicy::Error)
}

fn problems(e: ModelError) -> Vec<String> {
    match e {
        ModelError::Checkpoint { problems, .. } => problems,
        other => panic!("expected ModelError::Checkpoint, got {other:?}"),
    }
}

/// A saved GPT (tied and untied, with and without bias) loads back with the same config, weights,
/// tokenizer and training state, and gives the same logits and generated text.
#[test]
fn gpt_round_trip_with_tokenizer_and_training_state() {
    for (bias, tied) in [(true, false), (false, true)] {
        let file = TempFile::new(&format!("gpt-{bias}-{tied}.safetensors"));
        let mut gpt = Gpt::new(config(bias, tied), 21).unwrap();
        gpt.eval();
        let tokenizer = TokenizerSpec::from(char_tokenizer());
        let mut state = TrainingState::default();
        state
            .metadata
            .insert("step".to_string(), "1234".to_string());
        state
            .metadata
            .insert("best_val_loss".to_string(), "1.4821".to_string());
        state.tensors.insert(
            "optimizer.exp_avg.0".to_string(),
            Tensor::from_vec(vec![0.5, -1.25, 3.0], &[3]).unwrap(),
        );
        save_gpt(&file.0, &gpt, &tokenizer, &state).unwrap();

        let loaded = load_gpt(&file.0).unwrap();
        let mut model = loaded.model;
        model.eval();
        assert_eq!(model.config(), gpt.config());
        assert_eq!(model.state_dict(), gpt.state_dict());
        if tied {
            assert!(model.lm_head.weight.same_node(&model.wte.weight));
        }
        assert_eq!(loaded.tokenizer, tokenizer);
        assert_eq!(loaded.state.metadata, state.metadata);
        assert_eq!(loaded.state.tensors, state.tensors);
        // Same logits, and the file alone is enough to generate text.
        let ids = loaded.tokenizer.encode("hello").unwrap();
        assert_eq!(
            model.logits(&ids, 1, ids.len()).unwrap().value(),
            gpt.logits(&ids, 1, ids.len()).unwrap().value()
        );
        let out = model.generate(&ids, 8, 0.9, Some(4), 3).unwrap();
        assert_eq!(out, gpt.generate(&ids, 8, 0.9, Some(4), 3).unwrap());
        let text = loaded.tokenizer.decode(&out).unwrap();
        assert!(
            text.starts_with("hello") && text.chars().count() == 13,
            "{text:?}"
        );
    }
}

/// The file uses nanoGPT's tensor names and PyTorch's layouts, writes a tied head under both
/// names, and stores the config and the char vocabulary as readable metadata.
#[test]
fn file_uses_nanogpt_names_layouts_and_metadata() {
    let file = TempFile::new("names.safetensors");
    let gpt = Gpt::new(config(false, true), 1).unwrap();
    save_gpt(
        &file.0,
        &gpt,
        &TokenizerSpec::from(char_tokenizer()),
        &TrainingState::default(),
    )
    .unwrap();
    let (tensors, meta) = load_tensors(&file.0).unwrap();
    assert_eq!(
        tensors["transformer.h.1.attn.c_attn.weight"].shape(),
        [24, 8]
    );
    assert_eq!(tensors["transformer.h.0.mlp.c_fc.weight"].shape(), [32, 8]);
    assert_eq!(
        tensors["transformer.h.0.mlp.c_proj.weight"].shape(),
        [8, 32]
    );
    assert_eq!(tensors["transformer.wpe.weight"].shape(), [10, 8]);
    // Tied: written under both names, as PyTorch's state_dict() lists it.
    assert_eq!(tensors["lm_head.weight"], tensors["transformer.wte.weight"]);
    assert!(!tensors.keys().any(|k| k.ends_with(".bias")));
    assert_eq!(tensors.len(), 2 + 2 * 6 + 1 + 1);
    assert_eq!(meta["format"], "tinytorch-gpt");
    assert_eq!(meta["tokenizer_kind"], "char");
    let stored: serde_json::Value = serde_json::from_str(&meta["config"]).unwrap();
    assert_eq!(stored["n_embd"], 8);
    assert_eq!(stored["tie_weights"], true);
    // The vocabulary in id order is readable from the metadata alone.
    let vocab: serde_json::Value = serde_json::from_str(&meta["tokenizer"]).unwrap();
    let chars: Vec<&str> = vocab["chars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(chars, [" ", "!", "d", "e", "h", "l", "o", "r", "w"]);
}

/// A BPE tokenizer saved with the model loads back equal and encodes and decodes as before.
#[test]
fn bpe_tokenizer_travels_with_the_model() {
    let file = TempFile::new("bpe.safetensors");
    let bpe = BpeTokenizer::train("the cat sat on the mat, the cat sat.", 262).unwrap();
    let gpt = Gpt::new(
        GptConfig {
            vocab_size: 262,
            ..config(true, false)
        },
        2,
    )
    .unwrap();
    let spec = TokenizerSpec::from(bpe.clone());
    save_gpt(&file.0, &gpt, &spec, &TrainingState::default()).unwrap();
    let loaded = load_gpt(&file.0).unwrap();
    assert_eq!(loaded.tokenizer, spec);
    let ids = loaded.tokenizer.encode("the cat").unwrap();
    assert_eq!(ids, data::Tokenizer::encode(&bpe, "the cat").unwrap());
    assert_eq!(loaded.tokenizer.decode(&ids).unwrap(), "the cat");
}

/// Any named tensors (a transposed view stored row-major, a scalar) and metadata round trip.
#[test]
fn generic_tensors_round_trip() {
    let file = TempFile::new("generic.safetensors");
    let mut tensors = BTreeMap::new();
    tensors.insert(
        "fc.weight".to_string(),
        Tensor::from_vec((0..6).map(|i| i as f32 * 0.5 - 1.0).collect(), &[2, 3]).unwrap(),
    );
    // A transposed view is stored row-major.
    let t = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])
        .unwrap()
        .transpose(0, 1)
        .unwrap();
    tensors.insert("view".to_string(), t.clone());
    tensors.insert("scalar".to_string(), Tensor::scalar(f32::MIN_POSITIVE));
    let mut meta = BTreeMap::new();
    meta.insert("kind".to_string(), "mlp".to_string());
    save_tensors(&file.0, &tensors, &meta).unwrap();
    let (back, back_meta) = load_tensors(&file.0).unwrap();
    assert_eq!(back, tensors);
    assert_eq!(back["view"].to_vec(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    assert_eq!(back_meta, meta);
}

/// F16, BF16 and F64 tensors load as the same f32 values; an integer tensor is refused by name.
#[test]
fn half_and_double_precision_files_load_as_f32() {
    let file = TempFile::new("dtypes.safetensors");
    // 1.5 and -2 in f16 (0x3E00, 0xC000), bf16 (0x3FC0, 0xC000) and f64.
    let f16: Vec<u8> = [0x3E00u16, 0xC000]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let bf16: Vec<u8> = [0x3FC0u16, 0xC000]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let f64s: Vec<u8> = [1.5f64, -2.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let ints: Vec<u8> = [1i32, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
    let views = vec![
        ("a", TensorView::new(Dtype::F16, vec![2], &f16).unwrap()),
        ("b", TensorView::new(Dtype::BF16, vec![2], &bf16).unwrap()),
        ("c", TensorView::new(Dtype::F64, vec![2], &f64s).unwrap()),
    ];
    std::fs::write(&file.0, safetensors::serialize(views, None).unwrap()).unwrap();
    let (back, _) = load_tensors(&file.0).unwrap();
    for name in ["a", "b", "c"] {
        assert_eq!(back[name].to_vec(), vec![1.5, -2.0], "{name}");
    }
    // Integer tensors are refused by name.
    let views = vec![("ids", TensorView::new(Dtype::I32, vec![2], &ints).unwrap())];
    std::fs::write(&file.0, safetensors::serialize(views, None).unwrap()).unwrap();
    let p = problems(load_tensors(&file.0).unwrap_err());
    assert!(p[0].contains("'ids'") && p[0].contains("I32"), "{p:?}");
}

/// Loading lists every missing, unexpected and mis-shaped tensor (and every differing config
/// field) in one error naming the file, and changes nothing unless everything fits.
#[test]
fn loading_lists_every_mismatch() {
    let file = TempFile::new("broken.safetensors");
    let gpt = Gpt::new(config(true, false), 3).unwrap();
    let path = file.0.clone();
    save_gpt(
        &path,
        &gpt,
        &TokenizerSpec::from(char_tokenizer()),
        &TrainingState::default(),
    )
    .unwrap();
    let (mut tensors, meta) = load_tensors(&path).unwrap();
    tensors.remove("transformer.h.1.ln_2.bias");
    tensors.insert(
        "transformer.h.0.attn.c_attn.weight".to_string(),
        Tensor::zeros(&[8, 8]),
    );
    tensors.insert("transformer.h.0.attn.bias".to_string(), Tensor::zeros(&[1]));
    save_tensors(&path, &tensors, &meta).unwrap();
    let p = problems(load_gpt(&path).unwrap_err());
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(p
        .iter()
        .any(|s| s.contains("missing tensor 'transformer.h.1.ln_2.bias'")));
    assert!(p.iter().any(|s| s.contains(
        "tensor 'transformer.h.0.attn.c_attn.weight' has shape [8, 8] in the file but the config needs [24, 8]"
    )));
    assert!(p
        .iter()
        .any(|s| s.contains("unexpected tensor 'transformer.h.0.attn.bias'")));
    // The message names the file.
    let msg = load_gpt(&path).unwrap_err().to_string();
    assert!(msg.contains("broken.safetensors"), "{msg}");

    // Loading into a model of another shape lists the config fields and every shape.
    let good = TempFile::new("good.safetensors");
    save_gpt(
        &good.0,
        &gpt,
        &TokenizerSpec::None,
        &TrainingState::default(),
    )
    .unwrap();
    let wider = Gpt::new(
        GptConfig {
            n_embd: 16,
            block_size: 12,
            ..config(true, false)
        },
        0,
    )
    .unwrap();
    let before = wider.state_dict();
    let p = problems(load_gpt_weights(&good.0, &wider).unwrap_err());
    assert!(
        p.iter()
            .any(|s| s == "config `block_size` is 10 in the file but 12 in the model"),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|s| s.starts_with("config `n_embd` is 8 in the file but 16")),
        "{p:?}"
    );
    let shape_problems = p.iter().filter(|s| s.contains("has shape")).count();
    assert_eq!(shape_problems, gpt.named_parameters().len(), "{p:?}");
    assert_eq!(wider.state_dict(), before, "nothing is loaded on error");
    // The same config loads.
    let twin = Gpt::new(config(true, false), 99).unwrap();
    load_gpt_weights(&good.0, &twin).unwrap();
    assert_eq!(twin.state_dict(), gpt.state_dict());
}

/// Missing or malformed metadata and files that are not safetensors give errors naming the
/// problem.
#[test]
fn bad_metadata_and_files_are_clear_errors() {
    let file = TempFile::new("meta.safetensors");
    let gpt = Gpt::new(config(false, true), 4).unwrap();
    save_gpt(
        &file.0,
        &gpt,
        &TokenizerSpec::None,
        &TrainingState::default(),
    )
    .unwrap();
    let (tensors, mut meta) = load_tensors(&file.0).unwrap();

    // No format or config: not one of ours.
    save_tensors(&file.0, &tensors, &BTreeMap::new()).unwrap();
    let p = problems(load_gpt(&file.0).unwrap_err());
    assert!(
        p.iter().any(|s| s.contains("no `format` metadata")),
        "{p:?}"
    );
    assert!(
        p.iter().any(|s| s.contains("no `config` metadata")),
        "{p:?}"
    );

    // A config that does not validate, a tokenizer that does not parse.
    meta.insert(
        "config".to_string(),
        meta["config"].replace("\"n_head\":2", "\"n_head\":3"),
    );
    meta.insert("tokenizer_kind".to_string(), "char".to_string());
    meta.insert("tokenizer".to_string(), "{not json".to_string());
    save_tensors(&file.0, &tensors, &meta).unwrap();
    let p = problems(load_gpt(&file.0).unwrap_err());
    assert!(
        p.iter()
            .any(|s| s.contains("n_embd (8) must be a multiple of n_head (3)")),
        "{p:?}"
    );

    // A tied head that is not the embedding.
    let (mut tensors, meta) = {
        save_gpt(
            &file.0,
            &gpt,
            &TokenizerSpec::None,
            &TrainingState::default(),
        )
        .unwrap();
        load_tensors(&file.0).unwrap()
    };
    tensors.insert("lm_head.weight".to_string(), Tensor::zeros(&[12, 8]));
    save_tensors(&file.0, &tensors, &meta).unwrap();
    let p = problems(load_gpt(&file.0).unwrap_err());
    assert!(
        p.iter().any(|s| s.contains("'lm_head.weight' differs")),
        "{p:?}"
    );

    // A tokenizer larger than the vocabulary is refused at save time.
    let big = CharTokenizer::from_corpus("abcdefghijklmnopqrstuvwxyz", UnknownPolicy::Error);
    let p = problems(
        save_gpt(
            &file.0,
            &gpt,
            &TokenizerSpec::from(big),
            &TrainingState::default(),
        )
        .unwrap_err(),
    );
    assert!(p[0].contains("26 ids but the model only 12"), "{p:?}");

    // Not a safetensors file, and a missing file: both name the path.
    std::fs::write(&file.0, b"definitely not safetensors").unwrap();
    let msg = load_gpt(&file.0).unwrap_err().to_string();
    assert!(
        msg.contains("meta.safetensors") && msg.contains("not a safetensors file"),
        "{msg}"
    );
    let missing = std::env::temp_dir().join("tinytorch-no-such-dir/x.safetensors");
    let msg = load_gpt(&missing).unwrap_err().to_string();
    assert!(msg.contains("tinytorch-no-such-dir/x.safetensors"), "{msg}");
}

/// A training-state tensor named like a model tensor is refused at save time, naming it.
#[test]
fn training_state_may_not_shadow_model_tensors() {
    let file = TempFile::new("shadow.safetensors");
    let gpt = Gpt::new(config(true, true), 5).unwrap();
    let mut state = TrainingState::default();
    state
        .tensors
        .insert("transformer.wpe.weight".to_string(), Tensor::zeros(&[1]));
    let p = problems(save_gpt(&file.0, &gpt, &TokenizerSpec::None, &state).unwrap_err());
    assert!(p[0].contains("'transformer.wpe.weight'"), "{p:?}");
}
