//! Hostile checkpoints: each is generated here, and each must be a clear error naming the problem
//! (and the tensor), before memory is spent on it: a config that claims far more than the file
//! holds, a non-regular file, non-finite weights, safetensors offsets that do not fit.

use std::path::{Path, PathBuf};

use data::{CharTokenizer, UnknownPolicy};
use models::checkpoint::{
    load_gpt, load_gpt_limited, load_tensors, read_checkpoint_bytes, save_gpt, save_tensors,
    LoadLimits, TokenizerSpec, TrainingState,
};
use models::gpt::{Gelu, Gpt, GptConfig};
use models::ModelError;
use tensor::Tensor;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("tt-hostile-ckpt-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn small_config() -> GptConfig {
    GptConfig {
        vocab_size: 12,
        block_size: 8,
        n_layer: 1,
        n_head: 2,
        n_embd: 8,
        dropout: 0.0,
        bias: false,
        tie_weights: true,
        gelu: Gelu::Exact,
    }
}

fn save_small(path: &Path) -> Gpt {
    let model = Gpt::new(small_config(), 3).unwrap();
    let tok = CharTokenizer::from_corpus("hello world!", UnknownPolicy::Error);
    save_gpt(
        path,
        &model,
        &TokenizerSpec::Char(tok),
        &TrainingState::default(),
    )
    .unwrap();
    model
}

fn message(e: ModelError) -> String {
    e.to_string()
}

/// A small file whose config claims a huge model is refused by comparing the config with the
/// tensors held and the parameter ceiling, before any model is allocated.
#[test]
fn a_config_claiming_a_huge_model_is_refused_before_allocating() {
    let dir = TempDir::new("huge");
    let path = dir.join("m.safetensors");
    save_small(&path);
    let (tensors, mut meta) = load_tensors(&path).unwrap();
    let mut cfg = small_config();
    cfg.vocab_size = 200_000;
    cfg.n_embd = 65_536;
    cfg.n_head = 1;
    meta.insert("config".into(), cfg.to_json().to_string());
    let hostile = dir.join("huge.safetensors");
    save_tensors(&hostile, &tensors, &meta).unwrap();
    let msg = message(load_gpt(&hostile).unwrap_err());
    assert!(msg.contains("vocab_size=200000"), "{msg}");
    assert!(msg.contains("over the limit of 1000000000"), "{msg}");
    // Under a raised ceiling, the file still cannot hold what the config claims.
    let limits = LoadLimits {
        max_parameters: usize::MAX,
        ..LoadLimits::default()
    };
    let msg = message(load_gpt_limited(&hostile, &limits).unwrap_err());
    assert!(msg.contains("but the file holds only"), "{msg}");
    // A config whose product overflows a machine word.
    cfg.n_layer = usize::MAX / 2;
    meta.insert("config".into(), cfg.to_json().to_string());
    save_tensors(&hostile, &tensors, &meta).unwrap();
    let msg = message(load_gpt_limited(&hostile, &limits).unwrap_err());
    assert!(msg.contains("more parameters than a machine word"), "{msg}");
}

/// A file over the size ceiling is refused from its metadata, naming the size and the limit.
#[test]
fn the_file_size_ceiling_is_checked_before_reading() {
    let dir = TempDir::new("ceiling");
    let path = dir.join("m.safetensors");
    save_small(&path);
    let limits = LoadLimits {
        max_file_bytes: 100,
        ..LoadLimits::default()
    };
    let msg = message(load_gpt_limited(&path, &limits).unwrap_err());
    assert!(msg.contains("over the 100-byte checkpoint limit"), "{msg}");
    assert!(load_gpt(&path).is_ok());
}

/// A directory, a FIFO and a device are refused as checkpoints without reading (no blocking).
#[test]
fn non_regular_files_are_refused_without_blocking() {
    let dir = TempDir::new("nonreg");
    let msg = message(load_gpt(&dir.0).unwrap_err());
    assert!(msg.contains("is a directory"), "{msg}");
    let msg = message(read_checkpoint_bytes(Path::new("/dev/zero"), 1 << 30).unwrap_err());
    assert!(msg.contains("not a regular file"), "{msg}");
    let fifo = dir.join("pipe.safetensors");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if made {
        let msg = message(load_gpt(&fifo).unwrap_err());
        assert!(msg.contains("not a regular file"), "{msg}");
    }
}

/// A checkpoint holding NaN or infinite weights is refused, naming the tensor and the first bad
/// index.
#[test]
fn non_finite_weights_are_refused_naming_the_tensor() {
    let dir = TempDir::new("nan");
    let path = dir.join("m.safetensors");
    save_small(&path);
    let (mut tensors, meta) = load_tensors(&path).unwrap();
    let name = "transformer.h.0.mlp.c_fc.weight";
    let shape = tensors[name].shape().to_vec();
    let mut values = tensors[name].to_vec();
    values[5] = f32::NAN;
    values[7] = f32::INFINITY;
    tensors.insert(name.into(), Tensor::from_vec(values, &shape).unwrap());
    let hostile = dir.join("nan.safetensors");
    save_tensors(&hostile, &tensors, &meta).unwrap();
    let msg = message(load_gpt(&hostile).unwrap_err());
    assert!(
        msg.contains(&format!("tensor '{name}' holds 2 non-finite values")),
        "{msg}"
    );
    assert!(msg.contains("flat index 5"), "{msg}");
}

/// A hand-made safetensors file: `header` JSON then `data`.
fn raw_safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Wrong safetensors byte ranges (too short, past the end, gaps) name the tensor concerned.
#[test]
fn safetensors_offset_errors_name_the_tensor() {
    let dir = TempDir::new("offsets");
    let path = dir.join("bad.safetensors");
    let cases = [
        // Shape [2] of F32 needs 8 bytes, the offsets give 4.
        (
            r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#,
            vec![0u8; 4],
            "tensor 'w': data_offsets [0, 4] hold 4 bytes but dtype F32 and shape [2] need 8",
        ),
        // Past the end of the file.
        (
            r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
            vec![0u8; 8],
            "tensor 'w': data_offsets [0, 16] run past the 8 data bytes",
        ),
        // A gap before the second tensor.
        (
            r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
            vec![0u8; 12],
            "tensor 'b': data starts at byte 8 but the previous tensor ends at 4",
        ),
    ];
    for (header, data, want) in cases {
        std::fs::write(&path, raw_safetensors(header, &data)).unwrap();
        let msg = message(load_tensors(&path).unwrap_err());
        assert!(msg.contains(want), "{header}: {msg}");
    }
}

/// Streaming generation hands over the same tokens as `generate`, one at a time, and an
/// excessive `max_new_tokens` is refused up front.
#[test]
fn streaming_generation_gives_the_tokens_of_generate_as_they_come() {
    let mut model = Gpt::new(small_config(), 9).unwrap();
    nn::Module::eval(&mut model);
    let prompt = [1usize, 2, 3];
    // Longer than block_size, so the window slides while streaming.
    let whole = model.generate(&prompt, 20, 0.8, Some(5), 42).unwrap();
    let mut seen = Vec::new();
    let streamed = model
        .generate_stream(&prompt, 20, 0.8, Some(5), 42, |t| {
            seen.push(t);
            true
        })
        .unwrap();
    assert_eq!(streamed, whole);
    assert_eq!(seen, whole[prompt.len()..].to_vec());
    // Stopping early keeps what was produced.
    let mut count = 0;
    let short = model
        .generate_stream(&prompt, 20, 0.8, Some(5), 42, |_| {
            count += 1;
            count < 4
        })
        .unwrap();
    assert_eq!(short, whole[..prompt.len() + 4].to_vec());
    // The cap is a clear error before any work.
    let msg = model
        .generate_stream(&prompt, usize::MAX, 0.8, None, 0, |_| true)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("over the limit of 1000000 tokens"), "{msg}");
}
