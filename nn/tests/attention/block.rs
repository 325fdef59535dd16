//! The transformer block and a two-block stack: every parameter learns, PyTorch-style names, seeds,
//! dropout in training only.

use crate::helpers::{assert_close, block_config, randn, TinyGpt};
use autograd::Variable;
use nn::transformer::{TransformerBlock, TransformerConfig};
use nn::Module;
use tensor::TensorRng;

/// After one backward through a two-block GPT every parameter has a non-zero finite gradient (no
/// graph break).
#[test]
fn every_parameter_of_a_two_block_stack_gets_a_gradient() {
    let (vocab, b, t) = (11, 2, 8);
    let gpt = TinyGpt::new(vocab, t, 16, 4);
    let mut rng = TensorRng::new(8);
    let ids: Vec<usize> = (0..b * t).map(|_| rng.below(vocab)).collect();
    let targets: Vec<usize> = (0..b * t).map(|_| rng.below(vocab)).collect();
    let loss = gpt
        .logits(&ids, b, t)
        .cross_entropy(&targets, None, 0.0)
        .unwrap();
    assert!(loss.item().unwrap().is_finite());
    loss.backward().unwrap();
    let params = gpt.named_parameters();
    // wte, wpe, 2 x 12 block tensors, ln_f weight and bias, head weight.
    assert_eq!(params.len(), 2 + 2 * 12 + 3);
    for (name, p) in &params {
        let g = p
            .grad()
            .unwrap_or_else(|| panic!("{name} received no gradient"));
        assert_eq!(g.shape(), p.shape().as_slice(), "{name}");
        let norm: f32 = g.to_vec().iter().map(|v| v * v).sum();
        assert!(
            norm > 0.0 && norm.is_finite(),
            "{name} has gradient norm {norm}"
        );
    }
    // T equals the table length here, so every row of the position table is used.
    let wpe_grad = gpt.wpe.weight.grad().unwrap().to_vec();
    assert!(wpe_grad.chunks(16).all(|row| row.iter().any(|&v| v != 0.0)));
}

/// A transformer block names its parameters ln1, attn.qkv, attn.proj, ln2, mlp.fc, mlp.proj in
/// order, like PyTorch's state_dict.
#[test]
fn parameter_names_follow_the_layout() {
    let block = TransformerBlock::new(&block_config(8, 2, 1)).unwrap();
    let names: Vec<String> = block
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "ln1.weight",
            "ln1.bias",
            "attn.qkv.weight",
            "attn.qkv.bias",
            "attn.proj.weight",
            "attn.proj.bias",
            "ln2.weight",
            "ln2.bias",
            "mlp.fc.weight",
            "mlp.fc.bias",
            "mlp.proj.weight",
            "mlp.proj.bias",
        ]
    );
    let shapes: Vec<Vec<usize>> = block
        .named_parameters()
        .iter()
        .map(|(_, p)| p.shape())
        .collect();
    assert_eq!(shapes[2], vec![24, 8]);
    assert_eq!(shapes[8], vec![32, 8]);
    assert_eq!(shapes[10], vec![8, 32]);
    // 2 * (8 + 8) norms + (24*8 + 24) + (64 + 8) + (32*8 + 32) + (8*32 + 8)
    assert_eq!(block.num_parameters(), 32 + 216 + 72 + 288 + 264);
    let no_bias = TransformerBlock::new(&TransformerConfig {
        bias: false,
        ..block_config(8, 2, 1)
    })
    .unwrap();
    assert_eq!(no_bias.named_parameters().len(), 6);
    assert!(no_bias
        .named_parameters()
        .iter()
        .all(|(n, _)| n.ends_with("weight")));
}

/// The same seed builds identical weights, a different seed different ones, and attention and MLP
/// draw from different random streams.
#[test]
fn same_seed_same_block_and_different_seeds_differ() {
    let a = TransformerBlock::new(&block_config(8, 2, 42)).unwrap();
    let b = TransformerBlock::new(&block_config(8, 2, 42)).unwrap();
    let c = TransformerBlock::new(&block_config(8, 2, 43)).unwrap();
    let w = |blk: &TransformerBlock| blk.attn.qkv.weight.value().to_vec();
    assert_eq!(w(&a), w(&b));
    assert_ne!(w(&a), w(&c));
    // The attention and the MLP draw from different streams.
    assert_ne!(
        a.attn.proj.weight.value().to_vec()[..8],
        a.mlp.fc.weight.value().to_vec()[..8]
    );
}

/// Dropout inside a transformer block changes the output in training and does nothing after eval().
#[test]
fn dropout_is_active_in_training_only() {
    let x = Variable::constant(randn(&[2, 5, 16], 1.0, 70));
    let mut with = TransformerBlock::new(&TransformerConfig {
        dropout: 0.2,
        ..block_config(16, 4, 11)
    })
    .unwrap();
    let without = TransformerBlock::new(&block_config(16, 4, 11)).unwrap();
    let reference = without.forward(&x).unwrap().value();
    let train = with.forward(&x).unwrap().value();
    assert!(train.max_abs_diff(&reference).unwrap() > 1e-3);
    with.eval();
    let eval = with.forward(&x).unwrap().value();
    assert_close(&eval, &reference, 1e-6, "eval mode ignores dropout");
    // Back in training mode, every call draws fresh masks.
    with.train();
    let a = with.forward(&x).unwrap().value();
    let b = with.forward(&x).unwrap().value();
    assert!(a.max_abs_diff(&b).unwrap() > 0.0, "fresh masks per call");
}
