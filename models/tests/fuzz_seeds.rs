//! Seed corpora for the fuzz targets in `fuzz/`: one valid file of every format they read,
//! generated (never copied from a dataset). Run on demand:
//! `TINYTORCH_FUZZ_SEEDS=fuzz/corpus cargo test --release -p models --test fuzz_seeds -- --ignored`.

use std::path::Path;

use data::idx::encode_idx;
use data::{BpeTokenizer, CharTokenizer, UnknownPolicy};
use models::checkpoint::{save_gpt, TokenizerSpec, TrainingState};
use models::gpt::{Gelu, Gpt, GptConfig};

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(name), bytes).unwrap();
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let p = std::env::temp_dir().join(format!("tt-seed-{}.gz", std::process::id()));
    data::io::write_bytes(&p, bytes, true).unwrap();
    let out = std::fs::read(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    out
}

/// Writes one valid file of every format the fuzz targets read (IDX raw and gzip, digits CSV,
/// text corpora, tokenizer files, GPT checkpoints) under `TINYTORCH_FUZZ_SEEDS`.
#[test]
#[ignore = "writes the fuzz seed corpora; set TINYTORCH_FUZZ_SEEDS"]
fn write_fuzz_seeds() {
    let Some(dir) = std::env::var_os("TINYTORCH_FUZZ_SEEDS") else {
        return;
    };
    let dir = Path::new(&dir);
    // IDX: images and labels, raw and gzip.
    let images = encode_idx(&[2, 3, 3], &(0..18).collect::<Vec<u8>>()).unwrap();
    let labels = encode_idx(&[2], &[1, 7]).unwrap();
    write(dir, "idx", "images", &images);
    write(dir, "idx", "labels", &labels);
    write(dir, "idx", "images.gz", &gz(&images));
    write(dir, "idx", "labels.gz", &gz(&labels));
    // Digits CSV: with header (and BOM), without.
    let row = |label: usize| {
        let mut r = label.to_string();
        for i in 0..64 {
            r.push_str(&format!(",{}", i % 17));
        }
        r
    };
    let mut header = String::from("label");
    for i in 0..64 {
        header.push_str(&format!(",p{i}"));
    }
    write(
        dir,
        "csv",
        "header.csv",
        format!("{header}\n{}\n{}\n", row(3), row(9)).as_bytes(),
    );
    write(
        dir,
        "csv",
        "bom.csv",
        format!("\u{feff}{header}\n{}\n", row(0)).as_bytes(),
    );
    let plain: String = (0..64).map(|i| format!("{},", i % 17)).collect::<String>() + "4\n";
    write(dir, "csv", "plain.csv", plain.as_bytes());
    // Text: a fraction byte, a block-size byte, then the text (libFuzzer's tuple decoding reads
    // the leading bytes for the integers).
    for (name, text) in [
        ("talks", "Q: What is 2+2?\nA: Four.\n\nQ: Hi\nA: Hello!\n"),
        ("stories", "Once upon a time.<|endoftext|>The end.\n"),
        ("multibyte", "éàü 🦀 日本語\nligne deux\n"),
    ] {
        let mut bytes = vec![26u8, 4u8];
        bytes.extend_from_slice(text.as_bytes());
        write(dir, "text", name, &bytes);
    }
    // Tokenizers: a char vocabulary and BPE merges.
    let ch = CharTokenizer::from_corpus("hello world!\n", UnknownPolicy::Error);
    write(dir, "tokenizers", "char.json", ch.to_json().as_bytes());
    let bpe = BpeTokenizer::train("the cat sat on the mat, the cat ate", 270).unwrap();
    write(dir, "tokenizers", "bpe.txt", bpe.to_text().as_bytes());
    // Checkpoints: a small GPT with a char and a BPE tokenizer.
    let config = GptConfig {
        vocab_size: 13,
        block_size: 4,
        n_layer: 1,
        n_head: 1,
        n_embd: 4,
        dropout: 0.0,
        bias: true,
        tie_weights: true,
        gelu: Gelu::Exact,
    };
    let model = Gpt::new(config.clone(), 1).unwrap();
    let p = std::env::temp_dir().join(format!("tt-seed-{}.safetensors", std::process::id()));
    save_gpt(
        &p,
        &model,
        &TokenizerSpec::Char(ch),
        &TrainingState::default(),
    )
    .unwrap();
    write(
        dir,
        "checkpoint",
        "char.safetensors",
        &std::fs::read(&p).unwrap(),
    );
    let config = GptConfig {
        vocab_size: 270,
        ..config
    };
    let model = Gpt::new(config, 2).unwrap();
    save_gpt(
        &p,
        &model,
        &TokenizerSpec::Bpe(bpe),
        &TrainingState::default(),
    )
    .unwrap();
    write(
        dir,
        "checkpoint",
        "bpe.safetensors",
        &std::fs::read(&p).unwrap(),
    );
    std::fs::remove_file(&p).unwrap();
}
