//! Grader tests of the GPT chapter: configuration checks, nanoGPT's names and initialisation,
//! causality, learning, sampling, and cached generation producing exactly the uncached tokens
//! (greedy and sampled, past the context window), with the speedup measured on equal work.
//!
//! `cargo test -p models --release --test gpt -- --nocapture` prints the generation timings.

use std::time::Instant;

use models::generate::sample_next;
use models::gpt::{Gelu, Gpt, GptConfig};
use nn::Module;
use optim::{AdamConfig, AdamW, Optimizer};
use tensor::TensorRng;

mod common;
use common::{invalid_reason, tiny_config};

/// An invalid GPT config is refused with every problem listed at once (vocabulary, n_embd not a
/// multiple of n_head, dropout range).
#[test]
fn config_lists_every_problem() {
    let bad = GptConfig {
        vocab_size: 0,
        n_embd: 30,
        n_head: 4,
        dropout: 1.5,
        ..tiny_config(true, true)
    };
    let reason = invalid_reason(bad.validate().unwrap_err());
    assert!(reason.contains("vocab_size must be at least 1"), "{reason}");
    assert!(
        reason.contains("n_embd (30) must be a multiple of n_head (4)"),
        "{reason}"
    );
    assert!(reason.contains("dropout must be in [0, 1)"), "{reason}");
    assert!(Gpt::new(bad, 0).is_err());
    // JSON round trip, and a JSON with wrong fields names each of them.
    let good = tiny_config(false, true);
    assert_eq!(GptConfig::from_json(&good.to_json()).unwrap(), good);
    let broken = serde_json::json!({"vocab_size": -1, "block_size": 8, "n_layer": 1,
        "n_head": 1, "n_embd": 8, "dropout": 0.0, "bias": "yes", "gelu": "tanh"});
    let reason = invalid_reason(GptConfig::from_json(&broken).unwrap_err());
    for field in ["vocab_size", "bias", "tie_weights", "gelu"] {
        assert!(reason.contains(field), "{field} not named in: {reason}");
    }
}

/// The GPT's parameter names, shapes and count follow nanoGPT's layout (transformer.wte,
/// transformer.h.i.attn.c_attn, ...).
#[test]
fn parameter_names_shapes_and_count_follow_nanogpt() {
    let gpt = Gpt::new(tiny_config(true, false), 0).unwrap();
    let named: Vec<(String, Vec<usize>)> = gpt
        .named_parameters()
        .into_iter()
        .map(|(n, v)| (n, v.shape()))
        .collect();
    let c = 24;
    let mut want = vec![
        ("transformer.wte.weight".to_string(), vec![13, c]),
        ("transformer.wpe.weight".to_string(), vec![16, c]),
    ];
    for i in 0..2 {
        let h = format!("transformer.h.{i}");
        for (name, shape) in [
            ("ln_1.weight", vec![c]),
            ("ln_1.bias", vec![c]),
            ("attn.c_attn.weight", vec![3 * c, c]),
            ("attn.c_attn.bias", vec![3 * c]),
            ("attn.c_proj.weight", vec![c, c]),
            ("attn.c_proj.bias", vec![c]),
            ("ln_2.weight", vec![c]),
            ("ln_2.bias", vec![c]),
            ("mlp.c_fc.weight", vec![4 * c, c]),
            ("mlp.c_fc.bias", vec![4 * c]),
            ("mlp.c_proj.weight", vec![c, 4 * c]),
            ("mlp.c_proj.bias", vec![c]),
        ] {
            want.push((format!("{h}.{name}"), shape));
        }
    }
    want.push(("transformer.ln_f.weight".to_string(), vec![c]));
    want.push(("transformer.ln_f.bias".to_string(), vec![c]));
    want.push(("lm_head.weight".to_string(), vec![13, c]));
    assert_eq!(named, want);
    let counted: usize = want.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
    assert_eq!(gpt.num_parameters(), counted);

    // nanoGPT's baby Shakespeare model: PyTorch prints 804,096 parameters for it (tied head
    // counted once), 795,904 without the position table.
    let baby = Gpt::new(GptConfig::nanogpt_baby(65), 0).unwrap();
    assert_eq!(baby.num_parameters(), 804_096);
    assert_eq!(baby.num_parameters_without_positions(), 795_904);
    println!("{baby:?}");
    // The tied model's state dict lists the head under its own name too (as PyTorch does).
    let names: Vec<String> = baby
        .nanogpt_state_dict()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(names.contains(&"lm_head.weight".to_string()));
    assert!(!names.iter().any(|n| n.ends_with(".bias")));
}

fn std_of(values: &[f32]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
    (values
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt()
}

/// Weights start as nanoGPT's: N(0, 0.02), residual projections scaled by 1 / sqrt(2 n_layer), zero
/// biases, layer norms at 1.
#[test]
fn initialisation_is_nanogpts() {
    let config = GptConfig {
        n_layer: 4,
        n_embd: 64,
        vocab_size: 300,
        block_size: 64,
        ..tiny_config(true, false)
    };
    let gpt = Gpt::new(config, 3).unwrap();
    let resid = 0.02 / (8f64).sqrt();
    for (name, p) in gpt.named_parameters() {
        let v = p.value().to_vec();
        if name.ends_with(".bias") {
            assert!(v.iter().all(|&x| x == 0.0), "{name} is not zero");
        } else if name.contains("ln_") {
            assert!(v.iter().all(|&x| x == 1.0), "{name} is not ones");
        } else {
            let want = if name.ends_with("c_proj.weight") {
                resid
            } else {
                0.02
            };
            let got = std_of(&v);
            assert!(
                (got - want).abs() < 0.1 * want,
                "{name}: std {got}, want {want}"
            );
        }
    }
    // Same seed, same weights; another seed, other weights.
    let a = Gpt::new(tiny_config(true, true), 5).unwrap();
    let b = Gpt::new(tiny_config(true, true), 5).unwrap();
    let c = Gpt::new(tiny_config(true, true), 6).unwrap();
    assert_eq!(a.state_dict(), b.state_dict());
    assert_ne!(a.state_dict(), c.state_dict());
}

/// Logits have shape (B, T, vocab), and ids that cannot fill (B, T), sequences longer than the
/// block or ids outside the vocabulary are errors.
#[test]
fn logits_check_their_input() {
    let gpt = Gpt::new(tiny_config(true, true), 0).unwrap();
    let out = gpt.logits(&[1, 2, 3, 4, 5, 6], 2, 3).unwrap();
    assert_eq!(out.shape(), vec![2, 3, 13]);
    let reason = invalid_reason(gpt.logits(&[1, 2, 3], 2, 3).unwrap_err());
    assert!(
        reason.contains("3 ids cannot fill (batch, t) = (2, 3)"),
        "{reason}"
    );
    let long = vec![0; 17];
    let reason = invalid_reason(gpt.logits(&long, 1, 17).unwrap_err());
    assert!(reason.contains("exceeds block_size 16"), "{reason}");
    let reason = invalid_reason(gpt.logits(&[1, 13], 1, 2).unwrap_err());
    assert!(reason.contains("id 13 at position 1"), "{reason}");
    let reason = invalid_reason(gpt.loss(&[1, 2], &[3, 99], 1, 2).unwrap_err());
    assert!(reason.contains("id 99"), "{reason}");
    // Floats are not token ids: the Module path is an error that names the typed call.
    let x = autograd::Variable::constant(
        tensor::Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap(),
    );
    let message = Module::forward(&gpt, &x).unwrap_err().to_string();
    assert!(message.contains("Gpt::logits"), "{message}");
}

/// Changing later tokens leaves the logits of earlier positions unchanged (the causal mask holds
/// end to end).
#[test]
fn logits_never_see_the_future() {
    let gpt = Gpt::new(tiny_config(true, false), 1).unwrap();
    let a = gpt.logits(&[3, 1, 4, 1, 5, 9, 2, 6], 1, 8).unwrap().value();
    let b = gpt.logits(&[3, 1, 4, 1, 7, 7, 7, 7], 1, 8).unwrap().value();
    let (a, b) = (a.to_vec(), b.to_vec());
    let v = 13;
    // Positions 0..4 saw the same tokens: identical logits. Position 4 onwards differ.
    assert_eq!(a[..4 * v], b[..4 * v]);
    assert_ne!(a[4 * v..5 * v], b[4 * v..5 * v]);
}

/// A tiny GPT trained with AdamW for 60 steps memorises a short sequence: its loss falls far below
/// the starting loss.
#[test]
fn a_tiny_gpt_learns_a_sequence() {
    let gpt = Gpt::new(tiny_config(false, true), 2).unwrap();
    let seq: Vec<usize> = (0..17).map(|i| (i * 5) % 13).collect();
    let (ids, targets) = (&seq[..16], &seq[1..]);
    let mut opt = AdamW::new(
        gpt.named_parameters(),
        AdamConfig {
            lr: 1e-2,
            ..AdamConfig::adamw()
        },
    )
    .unwrap();
    let first = gpt.loss(ids, targets, 1, 16).unwrap().item().unwrap();
    let mut last = first;
    for _ in 0..60 {
        let loss = gpt.loss(ids, targets, 1, 16).unwrap();
        opt.zero_grad();
        loss.backward().unwrap();
        opt.step().unwrap();
        last = loss.item().unwrap();
    }
    assert!((first - (13f32).ln()).abs() < 0.3, "initial loss {first}");
    assert!(last < 0.1 * first, "loss {first} -> {last}");
}

/// Dropout makes two training-mode forwards differ, eval-mode forwards are identical, and
/// generating in training mode is refused.
#[test]
fn dropout_acts_in_training_only() {
    let config = GptConfig {
        dropout: 0.3,
        ..tiny_config(true, true)
    };
    let mut gpt = Gpt::new(config, 4).unwrap();
    let ids = [1, 2, 3, 4];
    let a = gpt.logits(&ids, 1, 4).unwrap().value();
    let b = gpt.logits(&ids, 1, 4).unwrap().value();
    assert_ne!(a, b, "training mode draws fresh dropout masks");
    // Generating in training mode with dropout would not be reproducible: refused.
    let reason = invalid_reason(gpt.generate(&ids, 3, 0.0, None, 0).unwrap_err());
    assert!(reason.contains("call eval()"), "{reason}");
    gpt.eval();
    let c = gpt.logits(&ids, 1, 4).unwrap().value();
    let d = gpt.logits(&ids, 1, 4).unwrap().value();
    assert_eq!(c, d);
    assert!(gpt.generate(&ids, 3, 0.0, None, 0).is_ok());
}

/// Temperature 0 and top_k = 1 are greedy, top_k restricts draws to the k largest logits, and draw
/// frequencies follow the softmax.
#[test]
fn sampling_greedy_top_k_and_temperature() {
    let logits = [0.5, 2.0, -1.0, 1.9, 0.0];
    let mut rng = TensorRng::new(0);
    assert_eq!(sample_next(&logits, 0.0, None, &mut rng), 1);
    // top_k = 1 is greedy whatever the temperature.
    for _ in 0..20 {
        assert_eq!(sample_next(&logits, 5.0, Some(1), &mut rng), 1);
    }
    // top_k = 2 only ever draws the two largest; the frequencies follow the softmax.
    let n = 20_000;
    let mut counts = [0usize; 5];
    for _ in 0..n {
        counts[sample_next(&logits, 1.0, Some(2), &mut rng)] += 1;
    }
    assert_eq!(counts[0] + counts[2] + counts[4], 0, "{counts:?}");
    let p1 = 1.0 / (1.0 + (-0.1f64).exp());
    let got = counts[1] as f64 / n as f64;
    assert!((got - p1).abs() < 0.015, "P(1) = {got}, softmax says {p1}");
    // Full softmax at temperature 2: every token appears, in the predicted proportions.
    let mut counts = [0usize; 5];
    for _ in 0..n {
        counts[sample_next(&logits, 2.0, None, &mut rng)] += 1;
    }
    let z: f64 = logits.iter().map(|&l| (l as f64 / 2.0).exp()).sum();
    for (i, &c) in counts.iter().enumerate() {
        let want = (logits[i] as f64 / 2.0).exp() / z;
        let got = c as f64 / n as f64;
        assert!((got - want).abs() < 0.015, "token {i}: {got} vs {want}");
    }
    // The same seed gives the same draws.
    let draw = |seed| {
        let mut rng = TensorRng::new(seed);
        (0..50)
            .map(|_| sample_next(&logits, 1.0, None, &mut rng))
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(9), draw(9));
    assert_ne!(draw(9), draw(10));
}

/// An empty prompt, an id outside the vocabulary, or a bad temperature or top_k is refused with a
/// reason naming it.
#[test]
fn generation_checks_its_arguments() {
    let mut gpt = Gpt::new(tiny_config(true, true), 0).unwrap();
    gpt.eval();
    let reason = invalid_reason(gpt.generate(&[], 3, 1.0, None, 0).unwrap_err());
    assert!(reason.contains("at least one token"), "{reason}");
    let reason = invalid_reason(gpt.generate(&[1, 20], 3, 1.0, None, 0).unwrap_err());
    assert!(reason.contains("prompt id 20 at position 1"), "{reason}");
    let reason = invalid_reason(gpt.generate(&[1], 3, -1.0, None, 0).unwrap_err());
    assert!(reason.contains("temperature"), "{reason}");
    let reason = invalid_reason(gpt.generate_uncached(&[1], 3, 1.0, Some(0), 0).unwrap_err());
    assert!(reason.contains("top_k"), "{reason}");
    // Zero new tokens returns the prompt; the result starts with the prompt.
    assert_eq!(gpt.generate(&[4, 5], 0, 1.0, None, 0).unwrap(), vec![4, 5]);
    let out = gpt.generate(&[4, 5], 5, 1.0, None, 0).unwrap();
    assert_eq!(out.len(), 7);
    assert_eq!(out[..2], [4, 5]);
    assert!(out.iter().all(|&t| t < 13));
}

/// Feeding a sequence through the KV caches in pieces gives the full forward's logits at every
/// position.
#[test]
fn cached_forward_equals_the_full_forward() {
    let mut gpt = Gpt::new(tiny_config(true, false), 8).unwrap();
    gpt.eval();
    let seq = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5];
    let full = gpt.logits(&seq, 1, seq.len()).unwrap().value().to_vec();
    let mut caches = gpt.new_caches();
    let mut pieces = Vec::new();
    autograd::no_grad(|| {
        for chunk in [&seq[..4], &seq[4..5], &seq[5..9], &seq[9..]] {
            let out = gpt
                .forward_cached(chunk, 1, chunk.len(), &mut caches)
                .unwrap();
            pieces.extend(out.value().to_vec());
        }
    });
    assert_eq!(caches[0].len(), seq.len());
    let diff = full
        .iter()
        .zip(&pieces)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff < 1e-5, "cached logits differ by {diff}");
    // A cache that would pass block_size is refused, naming the positions.
    let reason = invalid_reason(gpt.forward_cached(&[1; 6], 1, 6, &mut caches).unwrap_err());
    assert!(
        reason.contains("positions 11..17 exceed block_size 16"),
        "{reason}"
    );
}

/// Cached and uncached generation on the same model, prompt, settings and seed.
fn both(gpt: &Gpt, prompt: &[usize], n: usize, temperature: f32, top_k: Option<usize>, seed: u64) {
    let cached = gpt.generate(prompt, n, temperature, top_k, seed).unwrap();
    let uncached = gpt
        .generate_uncached(prompt, n, temperature, top_k, seed)
        .unwrap();
    assert_eq!(
        cached, uncached,
        "temperature {temperature}, top_k {top_k:?}, seed {seed}"
    );
    assert_eq!(cached.len(), prompt.len() + n);
}

/// Generation with the KV cache gives exactly the tokens of uncached generation, even past the
/// block size where the window slides.
#[test]
fn cached_generation_gives_the_uncached_tokens() {
    // Larger weights than the 0.02 initialisation, so the logits are far from uniform and
    // greedy decoding is not trivially constant.
    let mut gpt = Gpt::new(tiny_config(true, false), 11).unwrap();
    let mut rng = TensorRng::new(99);
    for (_, p) in gpt.named_parameters() {
        let shape = p.shape();
        p.set_value(rng.normal(&shape, 0.0, 0.4).unwrap()).unwrap();
    }
    gpt.eval();
    // block_size is 16: 40 new tokens slide the window 30 times.
    let prompt = [1, 2, 3];
    both(&gpt, &prompt, 40, 0.0, None, 0);
    both(&gpt, &prompt, 40, 1.0, None, 1);
    both(&gpt, &prompt, 40, 0.8, Some(5), 2);
    // A prompt longer than the context is cropped to its last block_size tokens.
    let long: Vec<usize> = (0..25).map(|i| (i * 7) % 13).collect();
    both(&gpt, &long, 10, 1.2, Some(3), 3);
    // Exactly filling the context, then one more.
    both(&gpt, &prompt, 13, 1.0, None, 4);
    both(&gpt, &prompt, 14, 1.0, None, 5);
    // Greedy output is not degenerate (the check above is not comparing constants).
    let out = gpt.generate(&prompt, 40, 0.0, None, 0).unwrap();
    let distinct: std::collections::BTreeSet<_> = out.iter().collect();
    assert!(distinct.len() > 3, "{out:?}");
    // Sampling depends on the seed.
    assert_ne!(
        gpt.generate(&prompt, 40, 1.0, None, 1).unwrap(),
        gpt.generate(&prompt, 40, 1.0, None, 2).unwrap()
    );
}

/// Tokens per second of cached and uncached generation of the same tokens.
fn speed(config: GptConfig, prompt_len: usize, new_tokens: usize) -> (f64, f64) {
    let mut gpt = Gpt::new(config.clone(), 0).unwrap();
    gpt.eval();
    let prompt: Vec<usize> = (0..prompt_len).map(|i| i % config.vocab_size).collect();
    // Warm up both paths once.
    gpt.generate(&prompt, 4, 1.0, Some(10), 0).unwrap();
    gpt.generate_uncached(&prompt, 4, 1.0, Some(10), 0).unwrap();
    let t0 = Instant::now();
    let cached = gpt.generate(&prompt, new_tokens, 1.0, Some(10), 7).unwrap();
    let t_cached = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let uncached = gpt
        .generate_uncached(&prompt, new_tokens, 1.0, Some(10), 7)
        .unwrap();
    let t_uncached = t0.elapsed().as_secs_f64();
    assert_eq!(cached, uncached);
    let (c, u) = (new_tokens as f64 / t_cached, new_tokens as f64 / t_uncached);
    println!(
        "generation, n_layer {} n_embd {} block {}: prompt {prompt_len}, {new_tokens} new tokens: \
         cached {c:.0} tokens/s, uncached {u:.0} tokens/s, speedup {:.2}x",
        config.n_layer,
        config.n_embd,
        config.block_size,
        c / u
    );
    (c, u)
}

/// Generating with the KV cache is clearly faster than without it for the same number of tokens
/// inside the window.
#[test]
fn kv_cache_speedup_on_equal_work() {
    // nanoGPT's baby model: one token of prompt, then fill the 64-token context.
    let (cached, uncached) = speed(GptConfig::nanogpt_baby(65), 1, 63);
    // The cache does O(T) work per token instead of O(T^2) over the context: it must win
    // clearly inside the window (measured about 10x here with `benches --bin generate`).
    assert!(
        cached > 1.5 * uncached,
        "cached {cached:.0} vs uncached {uncached:.0} tokens/s"
    );
    // Past the window, every step re-prefills block_size tokens, like the uncached path.
    speed(GptConfig::nanogpt_baby(65), 1, 127);
}

#[test]
#[ignore = "timing of a larger model; run with --ignored --nocapture"]
fn kv_cache_speedup_larger_model() {
    let config = GptConfig {
        vocab_size: 65,
        block_size: 128,
        n_layer: 6,
        n_head: 8,
        n_embd: 256,
        dropout: 0.0,
        bias: true,
        tie_weights: false,
        gelu: Gelu::Exact,
    };
    speed(config.clone(), 1, 127);
    speed(config, 1, 255);
}

/// Writes what `tests/fixtures/load_checkpoint_in_pytorch.py` checks: checkpoints of two seeded
/// tiny GPTs (biases with a separate head; no biases with a tied head, as nanoGPT's baby model)
/// with a character tokenizer, and next to each a JSON of our logits for fixed ids, the text of
/// those ids, and greedy generation past the context window. Run by hand (PyTorch is never a
/// dependency of the tests):
///
/// ```text
/// TINYTORCH_EXPORT_DIR=/tmp/tt-interop cargo test -p models --release --test gpt \
///     export_checkpoints_for_pytorch -- --ignored --nocapture
/// ~/.cache/tinytorch-peers/bin/python models/tests/fixtures/load_checkpoint_in_pytorch.py \
///     /tmp/tt-interop/gpt_bias_untied.safetensors /tmp/tt-interop/gpt_bias_untied.json
/// ```
#[test]
#[ignore = "writes files for the PyTorch interop script; run by hand"]
fn export_checkpoints_for_pytorch() {
    use models::checkpoint::{save_gpt, TokenizerSpec, TrainingState};
    let dir = std::env::var_os("TINYTORCH_EXPORT_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("tinytorch-pytorch-interop"));
    std::fs::create_dir_all(&dir).unwrap();
    let corpus = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind";
    let tok = data::CharTokenizer::from_corpus(corpus, data::UnknownPolicy::Error);
    let spec = TokenizerSpec::Char(tok);
    let vocab = spec.vocab_size().unwrap();
    for (name, bias, tie_weights) in [
        ("gpt_bias_untied", true, false),
        ("gpt_nobias_tied", false, true),
    ] {
        let config = GptConfig {
            vocab_size: vocab,
            ..tiny_config(bias, tie_weights)
        };
        let mut gpt = Gpt::new(config.clone(), 21).unwrap();
        // Weights far from the 0.02 initialisation (layer norms included), so the logits are
        // far from uniform and every parameter matters.
        let mut rng = TensorRng::new(2024);
        for (pname, p) in gpt.named_parameters() {
            let shape = p.shape();
            let (mean, std) = if pname.contains("ln_") && pname.ends_with("weight") {
                (1.0, 0.2)
            } else {
                (0.0, 0.3)
            };
            p.set_value(rng.normal(&shape, mean, std).unwrap()).unwrap();
        }
        gpt.eval();
        let text = "not to be, the question";
        let ids = spec.encode(text).unwrap();
        let t = config.block_size.min(ids.len());
        let batch: Vec<usize> = ids[..t]
            .iter()
            .copied()
            .chain(ids[ids.len() - t..].iter().copied())
            .collect();
        let logits = autograd::no_grad(|| gpt.logits(&batch, 2, t).unwrap().value());
        let prompt = &ids[..3];
        let greedy = gpt.generate(prompt, 30, 0.0, None, 0).unwrap();
        assert_eq!(
            greedy,
            gpt.generate_uncached(prompt, 30, 0.0, None, 0).unwrap()
        );
        let path = dir.join(format!("{name}.safetensors"));
        save_gpt(&path, &gpt, &spec, &TrainingState::default()).unwrap();
        let json = serde_json::json!({
            "checkpoint": path.file_name().unwrap().to_string_lossy(),
            "ids": [&batch[..t], &batch[t..]],
            "text": spec.decode(&ids).unwrap(),
            "text_ids": ids,
            "logits": {"shape": logits.shape(), "data": logits.to_vec()},
            "greedy": {"prompt": prompt, "max_new_tokens": 30, "tokens": greedy},
        });
        let json_path = dir.join(format!("{name}.json"));
        std::fs::write(&json_path, serde_json::to_string(&json).unwrap()).unwrap();
        println!(
            "wrote {} and {} ({} parameters)",
            path.display(),
            json_path.display(),
            gpt.num_parameters()
        );
    }
}
