//! Causality: no output ever depends on a later position.

use crate::helpers::{block_config, config, randn};
use autograd::Variable;
use nn::attention::{AttentionMask, MultiHeadAttention};
use nn::transformer::TransformerBlock;
use nn::Module;
use tensor::Tensor;

/// Change tokens `t + 1 ..` of a `(B, T, C)` input and check positions `..= t` are bit-identical.
fn assert_causal(f: impl Fn(&Variable) -> Variable, b: usize, t_len: usize, c: usize) {
    let x = randn(&[b, t_len, c], 1.0, 40);
    let base = f(&Variable::constant(x.clone())).value();
    for t in 0..t_len - 1 {
        let mut changed = x.to_vec();
        for bi in 0..b {
            for pos in t + 1..t_len {
                for ci in 0..c {
                    changed[(bi * t_len + pos) * c + ci] += 3.0 + pos as f32;
                }
            }
        }
        let out = f(&Variable::constant(
            Tensor::from_vec(changed, &[b, t_len, c]).unwrap(),
        ))
        .value();
        let past = |y: &Tensor| y.narrow(1, 0, t + 1).unwrap().contiguous().to_vec();
        assert_eq!(
            past(&out),
            past(&base),
            "changing tokens after {t} changed outputs at <= {t}"
        );
        let future = |y: &Tensor| y.narrow(1, t + 1, 1).unwrap().contiguous().to_vec();
        assert_ne!(
            future(&out),
            future(&base),
            "token {} should see its own change",
            t + 1
        );
    }
}

/// Changing a future token never changes an earlier output, for attention, a transformer block and
/// the composed path.
#[test]
fn causal_attention_never_looks_ahead() {
    let mha = MultiHeadAttention::new(&config(16, 4, 0.0, 5)).unwrap();
    assert_causal(|x| mha.forward(x).unwrap(), 2, 7, 16);
    let block = TransformerBlock::new(&block_config(16, 4, 6)).unwrap();
    assert_causal(|x| block.forward(x).unwrap(), 2, 7, 16);
    // The composed path too (it is what the fused kernel is checked against).
    assert_causal(
        |x| {
            mha.forward_with_weights(x, &AttentionMask::Causal)
                .unwrap()
                .0
        },
        1,
        5,
        16,
    );
}
