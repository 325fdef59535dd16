//! The measurements quoted in `data/README.md`:
//! `TINYTORCH_DATA=../shared/datasets cargo run -p data --release --example measure`.
//!
//! 1. MNIST load time from `.gz` and the memory of the pixels as `u8` vs `f32`;
//! 2. loader throughput with and without background prefetch, against a simulated training step;
//! 3. BPE training time, encoding speed and compression on Shakespeare, against characters.

use std::time::{Duration, Instant};

use data::{
    BpeTokenizer, CharTokenizer, DataLoader, Dataset, Mnist, Shakespeare, Tokenizer, UnknownPolicy,
};

fn busy(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn main() -> data::Result<()> {
    // 1. MNIST.
    let start = Instant::now();
    let m = Mnist::find(None)?;
    let load = start.elapsed().as_secs_f64();
    let n = m.train.len() + m.test.len();
    let pixels = n * 28 * 28;
    println!(
        "MNIST: {n} images from .gz in {load:.3} s; pixels as u8 {:.1} MB, as f32 {:.1} MB",
        pixels as f64 / 1e6,
        pixels as f64 * 4.0 / 1e6
    );
    let start = Instant::now();
    let train_only = Mnist::load_split(
        &data::resolve_dataset_dir(None, Mnist::NAME, &Mnist::FILES)?,
        data::Split::Train,
    )?;
    println!(
        "MNIST: train split alone in {:.3} s",
        start.elapsed().as_secs_f64()
    );

    // 2. Loader throughput.
    let ds = train_only.to_dataset()?;
    assert_eq!(ds.len(), 60_000);
    let step = Duration::from_micros(500);
    for (label, prefetch, work) in [
        ("no prefetch, no step", 0, None),
        ("prefetch 2,  no step", 2, None),
        ("no prefetch, 0.5 ms step", 0, Some(step)),
        ("prefetch 2,  0.5 ms step", 2, Some(step)),
    ] {
        let loader = DataLoader::new(ds.clone(), 64)?
            .shuffle(0)
            .prefetch(prefetch);
        let start = Instant::now();
        let mut batches = 0;
        for batch in loader.epoch(0) {
            let _ = batch?;
            if let Some(d) = work {
                busy(d);
            }
            batches += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "loader, batch 64, {label}: {batches} batches in {secs:.3} s ({:.0} samples/s)",
            60_000.0 / secs
        );
    }

    // 3. Tokenizers on Shakespeare.
    let text = Shakespeare::find(None)?;
    let chars = CharTokenizer::from_corpus(&text, UnknownPolicy::Error);
    let start = Instant::now();
    let char_ids = chars.encode(&text)?;
    println!(
        "chars: vocab {}, {} tokens, encode {:.3} s",
        chars.vocab_size(),
        char_ids.len(),
        start.elapsed().as_secs_f64()
    );
    for merges in [256, 1000] {
        let start = Instant::now();
        let bpe = BpeTokenizer::train(&text, 256 + merges)?;
        let train = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let ids = bpe.encode(&text)?;
        let enc = start.elapsed().as_secs_f64();
        println!(
            "BPE {merges} merges: train {train:.3} s, encode {enc:.3} s, {} tokens, {:.2} bytes/token",
            ids.len(),
            text.len() as f64 / ids.len() as f64
        );
        if merges == 1000 {
            let show: Vec<String> = (256..266)
                .map(|id| {
                    format!(
                        "{:?}",
                        String::from_utf8_lossy(bpe.token_bytes(id).unwrap())
                    )
                })
                .collect();
            println!("first merges: {}", show.join(" "));
            let longest = (256..bpe.vocab_size())
                .max_by_key(|&id| bpe.token_bytes(id).unwrap().len())
                .unwrap();
            println!(
                "longest token: {:?}",
                String::from_utf8_lossy(bpe.token_bytes(longest).unwrap())
            );
        }
    }
    Ok(())
}
