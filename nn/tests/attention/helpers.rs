//! Helpers of the attention tests: seeded tensors, attention and block configurations, comparisons,
//! a tiny two-block GPT built from the chapter's layers, and the reason of an invalid-input error.

use autograd::Variable;
use nn::attention::AttentionConfig;
use nn::embedding::Embedding;
use nn::layer_norm::LayerNorm;
use nn::linear::Linear;
use nn::positional::LearnedPositionalEmbedding;
use nn::transformer::{TransformerBlock, TransformerConfig};
use nn::Module;
use nn::NnError;
use tensor::{Tensor, TensorRng};

pub fn randn(shape: &[usize], std: f32, seed: u64) -> Tensor {
    Tensor::rand_normal(shape, 0.0, std, seed).unwrap()
}

pub fn config(n_embd: usize, n_head: usize, dropout: f32, seed: u64) -> AttentionConfig {
    AttentionConfig {
        n_embd,
        n_head,
        dropout,
        bias: true,
        seed,
    }
}

pub fn block_config(n_embd: usize, n_head: usize, seed: u64) -> TransformerConfig {
    TransformerConfig {
        n_embd,
        n_head,
        dropout: 0.0,
        bias: true,
        seed,
    }
}

pub fn assert_close(a: &Tensor, b: &Tensor, tol: f32, what: &str) {
    assert_eq!(a.shape(), b.shape(), "{what}: shapes");
    let diff = a.max_abs_diff(b).unwrap();
    assert!(diff <= tol, "{what}: max abs diff {diff} > {tol}");
}

/// A tiny GPT: token + learned position embeddings, two blocks, final norm, vocabulary head.
pub struct TinyGpt {
    pub wte: Embedding,
    pub wpe: LearnedPositionalEmbedding,
    pub blocks: Vec<TransformerBlock>,
    pub ln_f: LayerNorm,
    pub head: Linear,
}

impl TinyGpt {
    pub fn new(vocab: usize, block: usize, n_embd: usize, n_head: usize) -> TinyGpt {
        let mut rng = TensorRng::new(7);
        TinyGpt {
            wte: Embedding::new(vocab, n_embd, &mut rng),
            wpe: LearnedPositionalEmbedding::new(block, n_embd, &mut rng),
            blocks: (0..2)
                .map(|i| TransformerBlock::new(&block_config(n_embd, n_head, 100 + i)).unwrap())
                .collect(),
            ln_f: LayerNorm::new(n_embd),
            head: Linear::new(n_embd, vocab, false, &mut rng),
        }
    }

    pub fn logits(&self, ids: &[usize], b: usize, t: usize) -> Variable {
        let mut x = self
            .wpe
            .forward(&self.wte.forward_ids(ids, &[b, t]).unwrap())
            .unwrap();
        for block in &self.blocks {
            x = block.forward(&x).unwrap();
        }
        self.head.forward(&self.ln_f.forward(&x).unwrap()).unwrap()
    }

    pub fn named_parameters(&self) -> Vec<(String, Variable)> {
        let mut all = nn::module::prefixed("wte", self.wte.named_parameters());
        all.extend(nn::module::prefixed("wpe", self.wpe.named_parameters()));
        for (i, block) in self.blocks.iter().enumerate() {
            all.extend(nn::module::prefixed(
                &format!("blocks.{i}"),
                block.named_parameters(),
            ));
        }
        all.extend(nn::module::prefixed("ln_f", self.ln_f.named_parameters()));
        all.extend(nn::module::prefixed("head", self.head.named_parameters()));
        all
    }
}

pub fn invalid_reason(err: NnError) -> String {
    let msg = err.to_string();
    assert!(
        matches!(err, NnError::Invalid { .. }),
        "expected NnError::Invalid, got {msg}"
    );
    msg
}
