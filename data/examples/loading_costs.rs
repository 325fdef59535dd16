//! The measurements quoted in `data/README.md`:
//! `TINYTORCH_DATA=../shared/datasets cargo run -p data --release --example loading_costs`.
//!
//! 1. MNIST load time from `.gz` and the memory of the pixels as `u8` vs `f32`;
//! 2. loader throughput with and without background prefetch, against a simulated training step;
//! 3. BPE training time, encoding speed and compression on Shakespeare, against characters.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use data::{
    BpeTokenizer, CharTokenizer, DataLoader, Dataset, Mnist, RandomCrop, RandomHorizontalFlip,
    Shakespeare, Tokenizer, UnknownPolicy,
};

/// A stand-in for the training step between two batches.
#[derive(Clone, Copy)]
enum Step {
    /// No work: the loader alone.
    None,
    /// The step leaves the CPU idle (like waiting for an accelerator).
    Sleep(Duration),
    /// The step keeps one core busy (like a single-threaded CPU step).
    Spin(Duration),
}

impl Step {
    fn label(self) -> &'static str {
        match self {
            Step::None => "no step",
            Step::Sleep(_) => "0.5 ms sleep step",
            Step::Spin(_) => "0.5 ms busy step",
        }
    }

    fn run(self) {
        match self {
            Step::None => {}
            Step::Sleep(d) => std::thread::sleep(d),
            Step::Spin(d) => {
                let start = Instant::now();
                while start.elapsed() < d {
                    std::hint::spin_loop();
                }
            }
        }
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

    // Where the time goes, for the largest file.
    let dir = data::resolve_dataset_dir(None, Mnist::NAME, &Mnist::FILES)?;
    let path = data::io::locate_file(&dir, Mnist::FILES[0]).expect("resolved");
    let start = Instant::now();
    let compressed = std::fs::read(&path).map_err(|e| data::DataError::io(&path, e))?;
    let t_read = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let raw = data::io::gunzip(&compressed, &path)?;
    let t_gunzip = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let view = data::idx::parse_idx(&raw, 3, &path)?;
    let t_parse = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let pixels: Vec<f32> = view.data.iter().map(|&b| b as f32 / 255.0).collect();
    let t_scale = start.elapsed().as_secs_f64();
    println!(
        "train-images ({:.1} MB gz -> {:.1} MB): read {:.3} s, gunzip {t_gunzip:.3} s \
         ({:.0} MB/s out), parse {t_parse:.6} s, u8->f32 {t_scale:.3} s",
        compressed.len() as f64 / 1e6,
        raw.len() as f64 / 1e6,
        t_read,
        raw.len() as f64 / 1e6 / t_gunzip,
    );
    drop(pixels);

    // 2. Loader throughput.
    let ds = train_only.to_dataset()?;
    assert_eq!(ds.len(), 60_000);
    // Each configuration runs 5 epochs; the best is reported (the machine is shared).
    let step = Duration::from_micros(500);
    println!("loader, batch 64, one epoch of 60,000 (best of 5):");
    for augment in [false, true] {
        for work in [Step::None, Step::Sleep(step), Step::Spin(step)] {
            let mut line = format!(
                "  {:9} {:16}",
                if augment { "crop+flip" } else { "gather" },
                work.label()
            );
            for prefetch in [0, 2] {
                let mut loader = DataLoader::new(ds.clone(), 64)?
                    .shuffle(0)
                    .prefetch(prefetch);
                if augment {
                    loader = loader
                        .transform(RandomCrop::new(28, 28, 2))
                        .transform(RandomHorizontalFlip::new(0.5));
                }
                let mut best = f64::INFINITY;
                for epoch in 0..5 {
                    let start = Instant::now();
                    for batch in loader.epoch(epoch) {
                        let _ = batch?;
                        work.run();
                    }
                    best = best.min(start.elapsed().as_secs_f64());
                }
                line += &format!("  prefetch {prefetch}: {best:.3} s");
            }
            println!("{line}");
        }
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
    let chunks = data::split_chunks(&text);
    let distinct: std::collections::HashSet<&str> = chunks.iter().copied().collect();
    println!(
        "chunks: {} in the corpus, {} distinct",
        chunks.len(),
        distinct.len()
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
    // The same training recounting every pair after each merge (distinct chunks, weighted).
    let merges = 100;
    let start = Instant::now();
    let naive = naive_train(&text, merges);
    let secs = start.elapsed().as_secs_f64();
    let fast = BpeTokenizer::train(&text, 256 + merges)?;
    assert_eq!(naive, fast.merges());
    println!(
        "BPE recount-every-merge: {merges} merges in {secs:.3} s ({:.1} ms per merge, \
         so about {:.1} s for 1,000)",
        secs * 1e3 / merges as f64,
        secs * 10.0
    );
    Ok(())
}

fn naive_train(text: &str, merges: usize) -> Vec<(u32, u32)> {
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for c in data::split_chunks(text) {
        *counts.entry(c).or_default() += 1;
    }
    let (mut words, freqs): (Vec<Vec<u32>>, Vec<i64>) = counts
        .into_iter()
        .map(|(c, f)| (c.bytes().map(u32::from).collect(), f))
        .unzip();
    let mut out = Vec::new();
    for m in 0..merges {
        let mut pairs: HashMap<(u32, u32), i64> = HashMap::new();
        for (w, f) in words.iter().zip(&freqs) {
            for p in w.windows(2) {
                *pairs.entry((p[0], p[1])).or_default() += f;
            }
        }
        let Some((&best, _)) = pairs.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))) else {
            break;
        };
        for w in words.iter_mut() {
            *w = data::bpe::merge_pair(w, best, 256 + m as u32);
        }
        out.push(best);
    }
    out
}
