//! Real-data checks, `#[ignore]`d by default. Run with
//! `TINYTORCH_DATA=/path/to/datasets cargo test -p data --release -- --ignored`.

use std::path::PathBuf;
use std::time::Instant;

use data::{
    BpeTokenizer, CharTokenizer, DataLoader, Digits, Mnist, Shakespeare, TinyDigits, TinyTalks,
    Tokenizer, UnknownPolicy,
};

fn root() -> PathBuf {
    match std::env::var_os(data::DATA_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => panic!(
            "set {} to the datasets directory (the one holding mnist/, digits/, ...) to run the real-data tests",
            data::DATA_ENV
        ),
    }
}

#[test]
#[ignore]
fn mnist_real() {
    let root = root();
    let start = Instant::now();
    let m = Mnist::find(Some(&root)).unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!("MNIST: 70,000 images from .gz in {secs:.3} s");
    assert_eq!(m.train.len(), 60_000);
    assert_eq!(m.test.len(), 10_000);
    assert_eq!(m.train.images.shape(), &[60_000, 1, 28, 28]);
    assert_eq!(&m.train.labels[..5], &[5, 0, 4, 1, 9]);
    assert_eq!(&m.test.labels[..5], &[7, 2, 1, 0, 4]);
    assert_eq!(
        m.train.class_counts(),
        vec![5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        m.test.class_counts(),
        vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    let v = m.train.images.as_slice().unwrap();
    assert!(v.iter().all(|&p| (0.0..=1.0).contains(&p)));
    let mean = v.iter().map(|&p| p as f64).sum::<f64>() / v.len() as f64;
    println!("MNIST train pixel mean {mean:.4}");
    assert!((mean - 0.1307).abs() < 1e-3, "{mean}");
    assert!(secs < 1.0, "loading MNIST took {secs:.3} s (budget 1 s)");

    // One shuffled epoch over the training set.
    let loader = DataLoader::new(m.train.to_dataset().unwrap(), 128)
        .unwrap()
        .shuffle(0);
    let start = Instant::now();
    let mut seen = 0;
    for batch in loader.epoch(0) {
        seen += batch.unwrap().len();
    }
    println!(
        "MNIST: one epoch of batches of 128 in {:.3} s",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(seen, 60_000);
}

#[test]
#[ignore]
fn digits_real() {
    let d = Digits::find(Some(&root())).unwrap();
    assert_eq!(d.len(), 1797);
    assert_eq!(d.images.shape(), &[1797, 1, 8, 8]);
    assert_eq!(
        d.class_counts(),
        vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    );
}

#[test]
#[ignore]
fn tinydigits_real() {
    let root = root();
    let t = TinyDigits::find(Some(&root)).unwrap();
    assert_eq!(t.train.len(), 1000);
    assert_eq!(t.test.len(), 200);
    assert_eq!(t.train.class_counts(), vec![100; 10]);
    assert_eq!(t.test.class_counts(), vec![20; 10]);
    let seed42 = TinyDigits::load(&root.join("tinydigits/tinytorch_seed42")).unwrap();
    assert_eq!(seed42.train.len(), 1000);
    assert_eq!(seed42.test.len(), 200);
}

#[test]
#[ignore]
fn tinytalks_real() {
    let t = TinyTalks::find(Some(&root())).unwrap();
    assert_eq!(t.all.len(), 301);
    assert_eq!((t.train.len(), t.val.len(), t.test.len()), (210, 45, 46));
    assert_eq!(t.train.len() + t.val.len() + t.test.len(), 301);
    assert!(t
        .all
        .iter()
        .all(|p| !p.question.is_empty() && !p.answer.is_empty()));
}

#[test]
#[ignore]
fn shakespeare_real_char_and_bpe() {
    let text = Shakespeare::find(Some(&root())).unwrap();
    assert_eq!(text.chars().count(), 1_096_941);
    let chars = CharTokenizer::from_corpus(&text, UnknownPolicy::Error);
    assert_eq!(chars.vocab_size(), 64);
    let ids = chars.encode(&text).unwrap();
    assert_eq!(chars.decode(&ids).unwrap(), text);

    let start = Instant::now();
    let bpe = BpeTokenizer::train(&text, 256 + 1000).unwrap();
    let train_secs = start.elapsed().as_secs_f64();
    assert_eq!(bpe.merges().len(), 1000);
    let start = Instant::now();
    let ids = bpe.encode(&text).unwrap();
    let encode_secs = start.elapsed().as_secs_f64();
    println!(
        "BPE: 1,000 merges on {} bytes in {train_secs:.3} s; encode in {encode_secs:.3} s: \
         {} tokens ({:.2} bytes/token, chars give 1.00)",
        text.len(),
        ids.len(),
        text.len() as f64 / ids.len() as f64
    );
    assert_eq!(bpe.decode(&ids).unwrap(), text);
    assert!(
        train_secs < 10.0,
        "BPE training took {train_secs:.3} s (budget 10 s)"
    );
}
