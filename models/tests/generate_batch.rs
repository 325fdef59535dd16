//! Grader tests of batched generation: several prompts decoded together through per-row KV
//! caches give, row by row, exactly the tokens of generating each prompt alone (greedy, top-k and
//! sampled, prompts of different lengths, a prompt longer than the context, decoding past the
//! window), the tokens of the uncached path, and clear errors on bad input.
//!
//! `cargo test -p models --release --test generate_batch -- --nocapture` prints the timing.

use std::time::Instant;

use autograd::no_grad;
use models::generate::row_seed;
use models::gpt::{Gpt, GptConfig};
use nn::Module;

mod common;
use common::{invalid_reason, tiny_config};

fn model(bias: bool, tie_weights: bool, seed: u64) -> Gpt {
    let mut gpt = Gpt::new(tiny_config(bias, tie_weights), seed).unwrap();
    gpt.eval();
    gpt
}

/// Prompts of lengths 1, 3, 7, 16 (the whole context) and 21 (longer than the context).
fn prompts(vocab: usize) -> Vec<Vec<usize>> {
    [1usize, 3, 7, 16, 21]
        .iter()
        .enumerate()
        .map(|(p, &len)| (0..len).map(|i| (i * 5 + p * 3 + 1) % vocab).collect())
        .collect()
}

/// Row `i` of the batch against `generate` (and `generate_uncached`) of prompt `i` alone with
/// `row_seed(seed, i)`.
fn check_rows(
    gpt: &Gpt,
    prompts: &[Vec<usize>],
    n: usize,
    temperature: f32,
    top_k: Option<usize>,
    seed: u64,
) -> Vec<Vec<usize>> {
    let batch = gpt
        .generate_batch(prompts, n, temperature, top_k, seed)
        .unwrap();
    assert_eq!(batch.len(), prompts.len());
    for (i, (row, prompt)) in batch.iter().zip(prompts).enumerate() {
        assert_eq!(row.len(), prompt.len() + n, "row {i}");
        assert_eq!(
            &row[..prompt.len()],
            &prompt[..],
            "row {i} keeps its prompt"
        );
        let alone = gpt
            .generate(prompt, n, temperature, top_k, row_seed(seed, i))
            .unwrap();
        assert_eq!(
            row, &alone,
            "row {i} (prompt of {} tokens, T = {temperature}, top_k {top_k:?}) differs from generating it alone",
            prompt.len()
        );
        let uncached = gpt
            .generate_uncached(prompt, n, temperature, top_k, row_seed(seed, i))
            .unwrap();
        assert_eq!(row, &uncached, "row {i} differs from the uncached tokens");
    }
    batch
}

/// Each row of a batch draws from its own documented seed (row 0 uses the seed itself), and 64 rows
/// get 64 distinct seeds.
#[test]
fn row_seeds_are_documented_and_distinct() {
    assert_eq!(row_seed(42, 0), 42);
    assert_eq!(row_seed(42, 1), 42 ^ 0x9E37_79B9_7F4A_7C15);
    let seeds: std::collections::BTreeSet<u64> = (0..64).map(|i| row_seed(7, i)).collect();
    assert_eq!(seeds.len(), 64);
}

/// Greedy batched generation gives, row by row, exactly the tokens of generating each prompt alone,
/// also after the context window starts sliding.
#[test]
fn greedy_batch_equals_one_by_one_across_the_window() {
    // 25 new tokens: every row fills the 16-token context and slides, at different steps.
    for (bias, tie) in [(true, false), (false, true)] {
        let gpt = model(bias, tie, 3);
        let prompts = prompts(13);
        let greedy = check_rows(&gpt, &prompts, 25, 0.0, None, 0);
        // top_k = 1 at temperature 1 is greedy through the sampling path (it draws a number).
        let top1 = check_rows(&gpt, &prompts, 25, 1.0, Some(1), 11);
        assert_eq!(greedy, top1);
    }
}

/// Sampled batched generation equals generating each row alone with its row seed, and equal prompts
/// in one batch give different text.
#[test]
fn sampled_batch_equals_one_by_one_with_row_seeds() {
    let gpt = model(true, true, 5);
    let prompts = prompts(13);
    check_rows(&gpt, &prompts, 25, 1.0, None, 9);
    check_rows(&gpt, &prompts, 20, 0.8, Some(4), 1234);
    // Equal prompts in one batch draw from different streams: different text.
    let same = vec![vec![1usize, 2, 3]; 3];
    let rows = check_rows(&gpt, &same, 20, 1.5, None, 77);
    assert!(
        rows[0] != rows[1] || rows[1] != rows[2],
        "every row drew the same tokens: the rows share one random stream"
    );
}

/// A batch of one prompt gives exactly what generate gives, and zero new tokens gives back the
/// prompts.
#[test]
fn a_batch_of_one_is_generate() {
    let gpt = model(false, false, 8);
    let prompt = vec![4usize, 0, 9];
    let batch = gpt
        .generate_batch(&[prompt.as_slice()], 30, 1.0, Some(5), 21)
        .unwrap();
    let alone = gpt.generate(&prompt, 30, 1.0, Some(5), 21).unwrap();
    assert_eq!(batch, vec![alone]);
    // Zero new tokens: the prompts themselves.
    let none = gpt.generate_batch(&prompts(13), 0, 0.0, None, 0).unwrap();
    assert_eq!(none, prompts(13));
}

/// Decoding one token for several rows at different positions in one forward gives each row's
/// full-forward logits.
#[test]
fn decode_rows_equals_the_full_forward_at_each_rows_position() {
    let gpt = model(true, false, 2);
    let c = gpt.config().vocab_size;
    let sequences: Vec<Vec<usize>> = vec![vec![1, 2], vec![3, 4, 5, 6, 7], vec![8]];
    no_grad(|| {
        // Prefill all but the last token of each sequence alone, then decode the last tokens
        // together: sequence lengths (positions) 1, 4 and 0 in one forward.
        let mut caches: Vec<_> = sequences.iter().map(|_| gpt.new_caches()).collect();
        for (seq, row_caches) in sequences.iter().zip(caches.iter_mut()) {
            if seq.len() > 1 {
                gpt.forward_cached(&seq[..seq.len() - 1], 1, seq.len() - 1, row_caches)
                    .unwrap();
            }
        }
        let next: Vec<usize> = sequences.iter().map(|s| s[s.len() - 1]).collect();
        let mut rows: Vec<_> = caches.iter_mut().map(Vec::as_mut_slice).collect();
        let logits = gpt.decode_rows(&next, &mut rows).unwrap();
        assert_eq!(logits.len(), sequences.len() * c);
        for (r, seq) in sequences.iter().enumerate() {
            let full = gpt.logits(seq, 1, seq.len()).unwrap().value().to_vec();
            let want = &full[(seq.len() - 1) * c..];
            let got = &logits[r * c..(r + 1) * c];
            let diff = want
                .iter()
                .zip(got)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(diff < 1e-5, "sequence {r}: max |difference| {diff}");
            assert_eq!(
                caches[r][0].len(),
                seq.len(),
                "sequence {r} cached its token"
            );
        }
    });
}

/// Decoding with the wrong number of cache sets or an id outside the vocabulary is an error saying
/// which.
#[test]
fn decode_rows_checks_its_input() {
    let gpt = model(true, false, 2);
    no_grad(|| {
        let mut a = gpt.new_caches();
        let mut b = gpt.new_caches();
        let reason = invalid_reason(gpt.decode_rows(&[1, 2], &mut [&mut a[..]]).unwrap_err());
        assert!(reason.contains("1 cache sets for 2 tokens"), "{reason}");
        let reason = invalid_reason(
            gpt.decode_rows(&[1, 13], &mut [&mut a[..], &mut b[..]])
                .unwrap_err(),
        );
        assert!(reason.contains("out of range"), "{reason}");
        let mut short = [a[0].clone()];
        let reason = invalid_reason(gpt.decode_rows(&[1], &mut [&mut short[..]]).unwrap_err());
        assert!(reason.contains("1 caches for 2 blocks"), "{reason}");
        // A full context cannot take another position.
        let window: Vec<usize> = (0..16).map(|i| i % 13).collect();
        gpt.forward_cached(&window, 1, 16, &mut b).unwrap();
        let reason = invalid_reason(
            gpt.decode_rows(&[1, 2], &mut [&mut a[..], &mut b[..]])
                .unwrap_err(),
        );
        assert!(
            reason.contains("sequence 1 already holds 16 positions"),
            "{reason}"
        );
    });
}

/// An empty batch, an empty prompt, an out-of-vocabulary id, a bad temperature or top_k is refused
/// with a reason naming the prompt.
#[test]
fn generate_batch_checks_its_arguments() {
    let mut gpt = model(true, false, 4);
    let ok = vec![vec![1usize, 2], vec![3]];
    let empty: Vec<Vec<usize>> = Vec::new();
    let reason = invalid_reason(gpt.generate_batch(&empty, 5, 0.0, None, 0).unwrap_err());
    assert!(reason.contains("no prompt"), "{reason}");
    let with_empty = vec![vec![1usize], vec![]];
    let reason = invalid_reason(
        gpt.generate_batch(&with_empty, 5, 0.0, None, 0)
            .unwrap_err(),
    );
    assert!(
        reason.contains("prompt 1 of 2") && reason.contains("at least one token"),
        "{reason}"
    );
    let out_of_vocab = vec![vec![1usize], vec![2, 13]];
    let reason = invalid_reason(
        gpt.generate_batch(&out_of_vocab, 5, 0.0, None, 0)
            .unwrap_err(),
    );
    assert!(
        reason.contains("prompt 1 of 2") && reason.contains("prompt id 13 at position 1"),
        "{reason}"
    );
    for temperature in [-0.5, f32::NAN, f32::INFINITY] {
        let reason = invalid_reason(
            gpt.generate_batch(&ok, 5, temperature, None, 0)
                .unwrap_err(),
        );
        assert!(
            reason.contains("temperature must be finite and >= 0"),
            "{reason}"
        );
    }
    let reason = invalid_reason(gpt.generate_batch(&ok, 5, 1.0, Some(0), 0).unwrap_err());
    assert!(reason.contains("top_k must be at least 1"), "{reason}");
    // More tokens than the per-call limit (let alone than can be counted or allocated): an
    // error up front, not an abort or days of decoding.
    for n in [usize::MAX, usize::MAX / 4, 1_000_000_001] {
        let reason = invalid_reason(gpt.generate_batch(&ok, n, 0.0, None, 0).unwrap_err());
        assert!(
            reason.contains(&format!("max_new_tokens = {n} is over the limit")),
            "{reason}"
        );
        let reason = invalid_reason(gpt.generate(&ok[0], n, 0.0, None, 0).unwrap_err());
        assert!(reason.contains("over the limit of 1000000"), "{reason}");
    }
    // Dropout in training mode would make the text depend on more than the seed.
    let mut with_dropout = Gpt::new(
        GptConfig {
            dropout: 0.1,
            ..tiny_config(true, false)
        },
        0,
    )
    .unwrap();
    let reason = invalid_reason(
        with_dropout
            .generate_batch(&ok, 5, 0.0, None, 0)
            .unwrap_err(),
    );
    assert!(reason.contains("call eval()"), "{reason}");
    with_dropout.eval();
    assert!(with_dropout.generate_batch(&ok, 5, 0.0, None, 0).is_ok());
    gpt.train();
    assert!(
        gpt.generate_batch(&ok, 5, 0.0, None, 0).is_ok(),
        "no dropout: allowed"
    );
}

/// Generating eight prompts as one batch is faster than one after the other for the same number of
/// tokens.
#[test]
fn batched_decoding_is_faster_on_equal_work() {
    // A smoke check of the speed claim on a small model (the real measurement is the benches
    // binary `generate --batch 8`): eight prompts inside the window, greedy.
    let mut gpt = Gpt::new(GptConfig::tiny(30), 0).unwrap();
    gpt.eval();
    let prompts: Vec<Vec<usize>> = (0..8)
        .map(|p| (0..1 + p).map(|i| (i * 7 + p) % 30).collect())
        .collect();
    let n = 40;
    let best = |f: &dyn Fn() -> Vec<Vec<usize>>| {
        let mut best = f64::INFINITY;
        let mut out = Vec::new();
        for _ in 0..3 {
            let t0 = Instant::now();
            out = f();
            best = best.min(t0.elapsed().as_secs_f64());
        }
        (best, out)
    };
    let (t_batch, batch) = best(&|| gpt.generate_batch(&prompts, n, 0.0, None, 0).unwrap());
    let (t_alone, alone) = best(&|| {
        prompts
            .iter()
            .map(|p| gpt.generate(p, n, 0.0, None, 0).unwrap())
            .collect()
    });
    assert_eq!(batch, alone, "equal work: the same greedy tokens");
    println!(
        "8 prompts x {n} tokens: batched {:.2} ms, one by one {:.2} ms ({:.2}x)",
        t_batch * 1e3,
        t_alone * 1e3,
        t_alone / t_batch
    );
    assert!(
        t_batch < t_alone,
        "batched decoding ({t_batch:.4} s) should beat one-by-one ({t_alone:.4} s)"
    );
}
