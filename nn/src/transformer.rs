//! The pre-norm transformer block, the unit a GPT stacks:
//!
//! ```text
//! x = x + attn(ln1(x))     tokens exchange information (causal self-attention)
//! x = x + mlp(ln2(x))      each token thinks on its own (C -> 4C -> GELU -> C)
//! ```
//!
//! Both sublayers end with dropout (on the residual path) and add into the *residual stream*
//! `x`, which is never normalised itself: gradients reach every block through the additions
//! unchanged, which is why deep pre-norm stacks train without warm-up tricks.
//!
//! Parameter names: `ln1.*`, `attn.qkv.*`, `attn.proj.*`, `ln2.*`, `mlp.fc.*`, `mlp.proj.*`
//! (nanoGPT's `ln_1`, `attn.c_attn`, `attn.c_proj`, `ln_2`, `mlp.c_fc`, `mlp.c_proj`).

use autograd::Variable;
use tensor::{Tensor, TensorRng};

use crate::attention::{AttentionConfig, AttentionMask, KvCache, MultiHeadAttention};
use crate::dropout::Dropout;
use crate::error::Result;
use crate::layer_norm::LayerNorm;
use crate::linear::Linear;
use crate::module::{prefixed, Module};

/// Sizes of a [`TransformerBlock`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TransformerConfig {
    /// Model width `C`; a multiple of `n_head`.
    pub n_embd: usize,
    /// Attention heads.
    pub n_head: usize,
    /// Dropout on the attention weights and on both residual branches (0 disables it).
    pub dropout: f32,
    /// Whether the linear layers and layer norms have biases.
    pub bias: bool,
    /// Seed of the weights and the dropout masks (give each block of a stack its own).
    pub seed: u64,
}

impl TransformerConfig {
    /// The configuration of the block's attention layer.
    pub fn attention(&self) -> AttentionConfig {
        AttentionConfig {
            n_embd: self.n_embd,
            n_head: self.n_head,
            dropout: self.dropout,
            bias: self.bias,
            seed: self.seed,
        }
    }
}

/// The position-wise feed-forward network: `C -> 4C`, GELU, `4C -> C`, dropout.
pub struct FeedForward {
    /// `C -> 4C`.
    pub fc: Linear,
    /// `4C -> C`.
    pub proj: Linear,
    dropout: Dropout,
}

impl FeedForward {
    /// A 4x-wide MLP with PyTorch's default `Linear` initialisation drawn from `rng`.
    pub fn new(
        n_embd: usize,
        dropout: f32,
        bias: bool,
        rng: &mut TensorRng,
    ) -> Result<FeedForward> {
        let fc = Linear::new(n_embd, 4 * n_embd, bias, rng);
        let proj = Linear::new(4 * n_embd, n_embd, bias, rng);
        let dropout = Dropout::new(dropout, rng.next_u64())?;
        Ok(FeedForward { fc, proj, dropout })
    }
}

impl Module for FeedForward {
    fn forward(&self, input: &Variable) -> Result<Variable> {
        // HINT: the position-wise MLP is proj(gelu(fc(x))) followed by dropout;
        // HINT: fc.forward_gelu(x) is gelu(fc(x)) with the bias added inside the GELU pass.
        // BEGIN SOLUTION
        let hidden = self.fc.forward_gelu(input)?;
        self.dropout.forward(&self.proj.forward(&hidden)?)
        // END SOLUTION
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        let mut params = prefixed("fc", self.fc.named_parameters());
        params.extend(prefixed("proj", self.proj.named_parameters()));
        params
    }

    fn set_training(&mut self, training: bool) {
        self.dropout.set_training(training);
    }
}

/// A pre-norm transformer block `(B, T, C) -> (B, T, C)`; causal by default.
pub struct TransformerBlock {
    /// Normalises the attention's input.
    pub ln1: LayerNorm,
    /// Multi-head self-attention (ends with residual dropout).
    pub attn: MultiHeadAttention,
    /// Normalises the MLP's input.
    pub ln2: LayerNorm,
    /// The feed-forward network (ends with residual dropout).
    pub mlp: FeedForward,
}

impl TransformerBlock {
    /// A block seeded by `config.seed`: layer norms at ones/zeros, linears at PyTorch's default.
    pub fn new(config: &TransformerConfig) -> Result<TransformerBlock> {
        let attn = MultiHeadAttention::new(&config.attention())?;
        // A generator distinct from the attention's (which is seeded by `seed` itself).
        let mut rng = TensorRng::new(config.seed ^ 0x6d6c_705f_7365_6564);
        let mlp = FeedForward::new(config.n_embd, config.dropout, config.bias, &mut rng)?;
        let norm = |c: usize| {
            let ln = LayerNorm::new(c);
            if config.bias {
                ln
            } else {
                ln.without_bias()
            }
        };
        Ok(TransformerBlock {
            ln1: norm(config.n_embd),
            attn,
            ln2: norm(config.n_embd),
            mlp,
        })
    }

    /// The block under any attention mask.
    pub fn forward_masked(&self, x: &Variable, mask: &AttentionMask) -> Result<Variable> {
        // HINT: two residual additions; each branch normalises its input first (pre-norm).
        // BEGIN SOLUTION
        let x = x.add(&self.attn.forward_masked(&self.ln1.forward(x)?, mask)?)?;
        let x = x.add(&self.mlp.forward(&self.ln2.forward(&x)?)?)?;
        Ok(x)
        // END SOLUTION
    }

    /// The block on new positions `x_new` `(B, T, C)` following the ones in `cache` (causal,
    /// incremental decoding); equals [`Module::forward`] on the whole sequence.
    pub fn forward_cached(&self, x_new: &Variable, cache: &mut KvCache) -> Result<Variable> {
        let x = x_new.add(&self.attn.forward_cached(&self.ln1.forward(x_new)?, cache)?)?;
        Ok(x.add(&self.mlp.forward(&self.ln2.forward(&x)?)?)?)
    }

    /// The block on `B` sequences decoded together, each with its own cache: row `b` of `x_new`
    /// `(B, T, C)` follows the `caches[b].len()` positions of sequence `b` (lengths may differ).
    /// The layer norms, projections and MLP run once on all `B * T` rows; only attention is per
    /// row ([`MultiHeadAttention::forward_cached_rows`]). Row `b` equals
    /// [`TransformerBlock::forward_cached`] on row `b` alone.
    pub fn forward_cached_rows(
        &self,
        x_new: &Variable,
        caches: &mut [&mut KvCache],
    ) -> Result<Variable> {
        let attn = self
            .attn
            .forward_cached_rows(&self.ln1.forward(x_new)?, caches)?;
        let x = x_new.add(&attn)?;
        Ok(x.add(&self.mlp.forward(&self.ln2.forward(&x)?)?)?)
    }

    /// An inference copy of the block for decoding several sequences at once: the same values
    /// (layer norms shared), no dropout, and every linear weight stored transposed, `(in, out)`
    /// in memory and seen as `(out, in)`. A product of a few rows (one per sequence) against an
    /// `(out, in)` row-major weight makes the GEMM kernel repack the whole weight on every call
    /// (a matrix-vector product has its own kernel and does not); against the transposed layout
    /// it streams the weight as it is. Costs one copy of the block's weights; its parameters
    /// are constants (the copy is not trained, and does not follow later updates).
    pub fn for_batched_decoding(&self) -> Result<TransformerBlock> {
        let attn = MultiHeadAttention::from_projections(
            transposed_layout(&self.attn.qkv)?,
            transposed_layout(&self.attn.proj)?,
            self.attn.n_head(),
        )?;
        let mlp = FeedForward {
            fc: transposed_layout(&self.mlp.fc)?,
            proj: transposed_layout(&self.mlp.proj)?,
            dropout: Dropout::new(0.0, 0)?,
        };
        let norm =
            |ln: &LayerNorm| LayerNorm::from_weights(ln.weight.clone(), ln.bias.clone(), ln.eps);
        Ok(TransformerBlock {
            ln1: norm(&self.ln1)?,
            attn,
            ln2: norm(&self.ln2)?,
            mlp,
        })
    }

    /// [`TransformerBlock::forward_cached`] returning only the last new position `(B, 1, C)`:
    /// every new position still writes its keys and values into `cache`, but the MLP (two
    /// thirds of the block's multiply-adds) runs on the last row alone. What the last block of a
    /// generator needs, since only the last position's logits are sampled.
    pub fn forward_cached_last(&self, x_new: &Variable, cache: &mut KvCache) -> Result<Variable> {
        let t = x_new.shape().get(1).copied().unwrap_or(0);
        if t == 0 {
            return Err(crate::error::NnError::Invalid {
                op: "TransformerBlock",
                reason: format!(
                    "forward_cached_last needs at least one new position, got shape {:?}",
                    x_new.shape()
                ),
            });
        }
        let attn = self.attn.forward_cached(&self.ln1.forward(x_new)?, cache)?;
        let x = x_new.narrow(1, t - 1, 1)?.add(&attn.narrow(1, t - 1, 1)?)?;
        Ok(x.add(&self.mlp.forward(&self.ln2.forward(&x)?)?)?)
    }
}

/// The same linear layer with its weight stored transposed: `(in, out)` contiguous in memory,
/// seen as `(out, in)` (see [`TransformerBlock::for_batched_decoding`]). An int8 layer
/// ([`Linear::quantize_dynamic`]) is carried over as it is, so batched decoding of an int8 model
/// runs the int8 kernel like single-sequence decoding does.
pub fn transposed_layout(linear: &Linear) -> Result<Linear> {
    if let Some(q) = linear.quantized() {
        // An int8 layer keeps its own packed layout: carry it over, no f32 copy needed.
        let mut copy = Linear::from_weights(linear.weight.clone(), linear.bias.clone())?;
        copy.set_quantized(Some(q.clone()))?;
        return Ok(copy);
    }
    let weight = linear.weight.value().contiguous();
    let (out_features, in_features) = (linear.out_features(), linear.in_features());
    let src = weight.as_slice().unwrap_or(&[]);
    // A blocked copy: 16 x 16 tiles keep both the rows read and the rows written in cache
    // (an element-by-element strided copy is several times slower on large weights).
    let mut stored = vec![0.0f32; src.len()];
    for r0 in (0..out_features).step_by(16) {
        for c0 in (0..in_features).step_by(16) {
            for r in r0..(r0 + 16).min(out_features) {
                for c in c0..(c0 + 16).min(in_features) {
                    stored[c * out_features + r] = src[r * in_features + c];
                }
            }
        }
    }
    let stored = Tensor::from_vec(stored, &[in_features, out_features])?;
    Linear::from_weights(Variable::constant(stored.t()?), linear.bias.clone())
}

impl Module for TransformerBlock {
    /// The causal block (a GPT's).
    fn forward(&self, input: &Variable) -> Result<Variable> {
        self.forward_masked(input, &AttentionMask::Causal)
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        let mut params = prefixed("ln1", self.ln1.named_parameters());
        params.extend(prefixed("attn", self.attn.named_parameters()));
        params.extend(prefixed("ln2", self.ln2.named_parameters()));
        params.extend(prefixed("mlp", self.mlp.named_parameters()));
        params
    }

    fn set_training(&mut self, training: bool) {
        self.attn.set_training(training);
        self.mlp.set_training(training);
    }
}

impl std::fmt::Debug for TransformerBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TransformerBlock({:?}, mlp {} -> {} -> {})",
            self.attn,
            self.attn.n_embd(),
            self.mlp.fc.out_features(),
            self.attn.n_embd()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autograd::no_grad;

    fn block(bias: bool) -> TransformerBlock {
        TransformerBlock::new(&TransformerConfig {
            n_embd: 16,
            n_head: 2,
            dropout: 0.1,
            bias,
            seed: 7,
        })
        .unwrap()
    }

    /// Storing an MLP weight as (in, out) keeps the same (out, in) values and the same layer
    /// outputs.
    #[test]
    fn transposed_layout_keeps_the_values_and_stores_in_by_out() {
        let original = block(true);
        let copy = transposed_layout(&original.mlp.fc).unwrap();
        let (w, c) = (original.mlp.fc.weight.value(), copy.weight.value());
        assert_eq!(c.shape(), w.shape());
        assert_eq!(c.to_vec(), w.to_vec(), "same (out, in) values");
        assert!(!c.is_contiguous(), "seen as (out, in) ...");
        assert!(c.t().unwrap().is_contiguous(), "... stored as (in, out)");
        let x = Variable::constant(TensorRng::new(1).normal(&[3, 16], 0.0, 1.0).unwrap());
        let (a, b) = no_grad(|| {
            (
                original.mlp.fc.forward(&x).unwrap().value().to_vec(),
                copy.forward(&x).unwrap().value().to_vec(),
            )
        });
        let diff = a
            .iter()
            .zip(&b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-5, "{diff}");
    }

    /// Two sequences (3 and 5 cached positions) decode one token each through the decoding
    /// copy: each row equals the original block's full forward at that position, even though
    /// the original is in training mode with dropout (the copy has none).
    #[test]
    fn decoding_copy_decodes_like_the_original_block() {
        for bias in [true, false] {
            let mut original = block(bias);
            let mut copy = original.for_batched_decoding().unwrap();
            // The copy has no dropout to switch on; the reference is the block in eval mode.
            copy.set_training(true);
            original.set_training(false);
            let mut rng = TensorRng::new(3);
            let seqs: Vec<Tensor> = [4usize, 6]
                .iter()
                .map(|&t| rng.normal(&[1, t, 16], 0.0, 1.0).unwrap())
                .collect();
            no_grad(|| {
                let mut caches = [KvCache::new(), KvCache::new()];
                let mut last = Vec::new();
                for (seq, cache) in seqs.iter().zip(caches.iter_mut()) {
                    let t = seq.shape()[1];
                    let prefix = Variable::constant(seq.narrow(1, 0, t - 1).unwrap());
                    copy.forward_cached(&prefix, cache).unwrap();
                    last.extend(seq.narrow(1, t - 1, 1).unwrap().contiguous().to_vec());
                }
                let x = Variable::constant(Tensor::from_vec(last, &[2, 1, 16]).unwrap());
                let mut refs: Vec<&mut KvCache> = caches.iter_mut().collect();
                let out = copy
                    .forward_cached_rows(&x, &mut refs)
                    .unwrap()
                    .value()
                    .to_vec();
                for (r, seq) in seqs.iter().enumerate() {
                    let t = seq.shape()[1];
                    let full = original.forward(&Variable::constant(seq.clone())).unwrap();
                    let want = full
                        .value()
                        .narrow(1, t - 1, 1)
                        .unwrap()
                        .contiguous()
                        .to_vec();
                    let got = &out[r * 16..(r + 1) * 16];
                    let diff = want
                        .iter()
                        .zip(got)
                        .map(|(p, q)| (p - q).abs())
                        .fold(0.0, f32::max);
                    assert!(diff < 1e-5, "bias {bias}, row {r}: {diff}");
                }
            });
        }
    }
}
