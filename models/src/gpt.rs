//! `Gpt`: a decoder-only transformer language model, laid out like nanoGPT.
//!
//! ```text
//! ids (B, T) -> wte[ids] + wpe[0..T] -> dropout -> n_layer pre-norm blocks -> ln_f -> lm_head
//!            -> logits (B, T, vocab_size)
//! ```
//!
//! Every block is causal (the mask is not an option: a next-token model that sees the future
//! learns to copy it). The head can share the token embedding's matrix (`tie_weights`), which
//! saves `vocab_size * n_embd` parameters and is what GPT-2 does.
//!
//! Initialisation follows nanoGPT: every linear and embedding weight `N(0, 0.02^2)`, biases
//! zero, layer norms ones/zeros, and the two projections that write into the residual stream
//! (`attn.c_proj`, `mlp.c_proj`) `N(0, (0.02 / sqrt(2 n_layer))^2)`, so the stream's variance
//! does not grow with depth.
//!
//! Parameters are named exactly as nanoGPT names them (`transformer.h.0.attn.c_attn.weight`, ...),
//! with PyTorch's `(out, in)` layouts, so a checkpoint opens in PyTorch unchanged.

use autograd::Variable;
use nn::dropout::Dropout;
use nn::embedding::Embedding;
use nn::init;
use nn::layer_norm::LayerNorm;
use nn::linear::Linear;
use nn::positional::LearnedPositionalEmbedding;
use nn::transformer::{TransformerBlock, TransformerConfig};
use nn::Module;
use serde_json::{json, Value};
use tensor::{Tensor, TensorRng};

use crate::error::{ModelError, Result};
use crate::profiler::{FlopRule, ProfileLayer};

/// The activation of the MLPs. The project implements GELU exactly (`x * Phi(x)` with the
/// Gaussian CDF through `erf`), which is PyTorch's `nn.GELU()` default and what nanoGPT uses;
/// the tanh approximation does not exist here, so it is not offered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Gelu {
    /// `x * (1 + erf(x / sqrt 2)) / 2`.
    #[default]
    Exact,
}

impl Gelu {
    /// The name stored in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Gelu::Exact => "exact",
        }
    }

    /// The variant of a stored name.
    pub fn from_name(name: &str) -> Option<Gelu> {
        match name {
            "exact" => Some(Gelu::Exact),
            _ => None,
        }
    }
}

/// The sizes and switches of a [`Gpt`] (nanoGPT's `GPTConfig`).
#[derive(Clone, Debug, PartialEq)]
pub struct GptConfig {
    /// Number of token ids.
    pub vocab_size: usize,
    /// Longest context (rows of the position table).
    pub block_size: usize,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Attention heads per block; must divide `n_embd`.
    pub n_head: usize,
    /// Model width `C`.
    pub n_embd: usize,
    /// Dropout after the embeddings, on attention weights and on both residual branches.
    pub dropout: f32,
    /// Biases in the linear layers and layer norms (the head never has one, as in nanoGPT).
    pub bias: bool,
    /// Share the token embedding with the output head.
    pub tie_weights: bool,
    /// The MLP activation.
    pub gelu: Gelu,
}

impl GptConfig {
    /// nanoGPT's "baby GPT" for character-level Shakespeare on a CPU: 4 layers, 4 heads,
    /// width 128, context 64, no biases, tied head, no dropout.
    pub fn nanogpt_baby(vocab_size: usize) -> GptConfig {
        GptConfig {
            vocab_size,
            block_size: 64,
            n_layer: 4,
            n_head: 4,
            n_embd: 128,
            dropout: 0.0,
            bias: false,
            tie_weights: true,
            gelu: Gelu::Exact,
        }
    }

    /// The project's tiny GPT (quick demos, generation benchmarks and tests): 2 layers, 4 heads,
    /// width 64, context 64, biases, untied head, no dropout.
    pub fn tiny(vocab_size: usize) -> GptConfig {
        GptConfig {
            vocab_size,
            block_size: 64,
            n_layer: 2,
            n_head: 4,
            n_embd: 64,
            dropout: 0.0,
            bias: true,
            tie_weights: false,
            gelu: Gelu::Exact,
        }
    }

    /// Check every constraint and list every violation in one error.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        for (name, value) in [
            ("vocab_size", self.vocab_size),
            ("block_size", self.block_size),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
        ] {
            if value == 0 {
                problems.push(format!("{name} must be at least 1"));
            }
        }
        if self.n_head > 0 && !self.n_embd.is_multiple_of(self.n_head) {
            problems.push(format!(
                "n_embd ({}) must be a multiple of n_head ({})",
                self.n_embd, self.n_head
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            problems.push(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ModelError::Invalid {
                op: "GptConfig",
                reason: problems.join("; "),
            })
        }
    }

    /// The configuration as JSON (stored in checkpoints).
    pub fn to_json(&self) -> Value {
        json!({
            "vocab_size": self.vocab_size,
            "block_size": self.block_size,
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "n_embd": self.n_embd,
            "dropout": self.dropout,
            "bias": self.bias,
            "tie_weights": self.tie_weights,
            "gelu": self.gelu.name(),
        })
    }

    /// Parse [`GptConfig::to_json`]; every missing or mistyped field is listed in one error,
    /// and the result is validated.
    pub fn from_json(value: &Value) -> Result<GptConfig> {
        let mut problems = Vec::new();
        let mut size = |key: &str| match value.get(key).and_then(Value::as_u64) {
            Some(v) => v as usize,
            None => {
                problems.push(format!("`{key}` must be a non-negative integer"));
                0
            }
        };
        let (vocab_size, block_size, n_layer, n_head, n_embd) = (
            size("vocab_size"),
            size("block_size"),
            size("n_layer"),
            size("n_head"),
            size("n_embd"),
        );
        let dropout = value
            .get("dropout")
            .and_then(Value::as_f64)
            .unwrap_or_else(|| {
                problems.push("`dropout` must be a number".to_string());
                0.0
            }) as f32;
        let mut flag = |key: &str| {
            value.get(key).and_then(Value::as_bool).unwrap_or_else(|| {
                problems.push(format!("`{key}` must be true or false"));
                false
            })
        };
        let (bias, tie_weights) = (flag("bias"), flag("tie_weights"));
        let gelu = match value.get("gelu").and_then(Value::as_str) {
            Some(name) => Gelu::from_name(name).unwrap_or_else(|| {
                problems.push(format!("`gelu` must be \"exact\", got {name:?}"));
                Gelu::Exact
            }),
            None => {
                problems.push("`gelu` must be a string".to_string());
                Gelu::Exact
            }
        };
        if !problems.is_empty() {
            return Err(ModelError::Invalid {
                op: "GptConfig",
                reason: problems.join("; "),
            });
        }
        let config = GptConfig {
            vocab_size,
            block_size,
            n_layer,
            n_head,
            n_embd,
            dropout,
            bias,
            tie_weights,
            gelu,
        };
        config.validate()?;
        Ok(config)
    }

    /// Every field that differs from `other`, as `name: self vs other` lines.
    pub fn differences(&self, other: &GptConfig) -> Vec<String> {
        let (a, b) = (self.to_json(), other.to_json());
        let keys = [
            "vocab_size",
            "block_size",
            "n_layer",
            "n_head",
            "n_embd",
            "dropout",
            "bias",
            "tie_weights",
            "gelu",
        ];
        keys.iter()
            .filter(|k| a[**k] != b[**k])
            .map(|k| format!("config `{k}` is {} here but {}", a[*k], b[*k]))
            .collect()
    }
}

/// A GPT language model (see the module docs).
pub struct Gpt {
    config: GptConfig,
    /// Token embedding `(vocab_size, n_embd)`; also the head's weight when tied.
    pub wte: Embedding,
    /// Position embedding `(block_size, n_embd)`.
    pub wpe: LearnedPositionalEmbedding,
    drop: Dropout,
    /// The transformer blocks.
    pub blocks: Vec<TransformerBlock>,
    /// The final layer norm.
    pub ln_f: LayerNorm,
    /// The output head `(vocab_size, n_embd)`, without bias; shares `wte.weight` when tied.
    pub lm_head: Linear,
    training: bool,
}

/// `N(0, std^2)` as a fresh parameter value.
fn normal(rng: &mut TensorRng, shape: &[usize], std: f32) -> Result<Tensor> {
    Ok(init::normal(rng, shape, 0.0, std)?)
}

impl Gpt {
    /// A model with nanoGPT's initialisation drawn from `seed`, in training mode.
    pub fn new(config: GptConfig, seed: u64) -> Result<Gpt> {
        config.validate()?;
        let GptConfig {
            vocab_size: v,
            block_size,
            n_layer,
            n_head,
            n_embd: c,
            dropout,
            bias,
            tie_weights,
            ..
        } = config;
        let mut rng = TensorRng::new(seed);
        let wte = Embedding::from_weight(Variable::parameter(normal(&mut rng, &[v, c], 0.02)?))?;
        let wpe = LearnedPositionalEmbedding::new(block_size, c, &mut rng);
        let drop = Dropout::new(dropout, rng.next_u64())?;
        let resid_std = 0.02 / ((2 * n_layer) as f32).sqrt();
        let mut blocks = Vec::with_capacity(n_layer);
        for _ in 0..n_layer {
            let block = TransformerBlock::new(&TransformerConfig {
                n_embd: c,
                n_head,
                dropout,
                bias,
                seed: rng.next_u64(),
            })?;
            // Replace the PyTorch-default draws with nanoGPT's scheme.
            let linears = [
                (&block.attn.qkv, 0.02),
                (&block.attn.proj, resid_std),
                (&block.mlp.fc, 0.02),
                (&block.mlp.proj, resid_std),
            ];
            for (layer, std) in linears {
                layer
                    .weight
                    .set_value(normal(&mut rng, &layer.weight.shape(), std)?)?;
                if let Some(b) = &layer.bias {
                    b.set_value(Tensor::zeros(&b.shape()))?;
                }
            }
            blocks.push(block);
        }
        let ln_f = if bias {
            LayerNorm::new(c)
        } else {
            LayerNorm::new(c).without_bias()
        };
        let lm_head = if tie_weights {
            Linear::from_weights(wte.weight.clone(), None)?
        } else {
            Linear::from_tensors(normal(&mut rng, &[v, c], 0.02)?, None)?
        };
        Ok(Gpt {
            config,
            wte,
            wpe,
            drop,
            blocks,
            ln_f,
            lm_head,
            training: true,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &GptConfig {
        &self.config
    }

    /// The layers in the order the forward pass runs them on the row-major `(batch, t)` token
    /// `ids`, as the profiler reads them: `embeddings` (token + position lookups bound to `ids`,
    /// no FLOPs counted), each block `h.{i}` ([`FlopRule::Transformer`]), `ln_f` and `lm_head`.
    /// Each is the model's own module; the embedding dropout is left out. A tied head's weight
    /// is the token embedding's (a profile counts it once, in `embeddings`). The ids are checked
    /// as [`Gpt::check_ids`] does; the profile's input tensor only carries the `(batch, t)` shape.
    pub fn profile_layers<'a>(
        &'a self,
        ids: &'a [usize],
        batch: usize,
        t: usize,
    ) -> Result<Vec<ProfileLayer<'a>>> {
        self.check_ids("Gpt::profile_layers", ids, batch, t)?;
        let embeddings = BoundEmbeddings {
            gpt: self,
            ids,
            shape: [batch, t],
        };
        let mut layers = vec![ProfileLayer::owned("embeddings", Box::new(embeddings))
            .kind("wte + wpe")
            .flops(FlopRule::Uncounted)];
        for (i, block) in self.blocks.iter().enumerate() {
            layers.push(
                ProfileLayer::new(format!("h.{i}"), block)
                    .kind("TransformerBlock")
                    .flops(FlopRule::Transformer),
            );
        }
        layers.push(ProfileLayer::new("ln_f", &self.ln_f).kind("LayerNorm"));
        let (c, v) = (self.config.n_embd, self.config.vocab_size);
        let tied = if self.config.tie_weights {
            " (tied to wte)"
        } else {
            ""
        };
        layers.push(
            ProfileLayer::new("lm_head", &self.lm_head).kind(format!("Linear {c}->{v}{tied}")),
        );
        Ok(layers)
    }

    /// Whether dropout is active (see [`Module::train`] / [`Module::eval`]).
    pub fn is_training(&self) -> bool {
        self.training
    }

    /// Check `ids` (and their layout) against the model: `batch * t` ids, `1 <= t <=
    /// block_size`, every id below `vocab_size` (the first bad one is named).
    pub fn check_ids(
        &self,
        what: &'static str,
        ids: &[usize],
        batch: usize,
        t: usize,
    ) -> Result<()> {
        let invalid = |reason: String| Err(ModelError::Invalid { op: what, reason });
        if batch == 0 || t == 0 {
            return invalid(format!(
                "batch ({batch}) and sequence length ({t}) must be at least 1"
            ));
        }
        if ids.len() != batch * t {
            return invalid(format!(
                "{} ids cannot fill (batch, t) = ({batch}, {t})",
                ids.len()
            ));
        }
        if t > self.config.block_size {
            return invalid(format!(
                "sequence length {t} exceeds block_size {}",
                self.config.block_size
            ));
        }
        if let Some(pos) = ids.iter().position(|&id| id >= self.config.vocab_size) {
            return invalid(format!(
                "id {} at position {pos} is out of range for vocab_size {}",
                ids[pos], self.config.vocab_size
            ));
        }
        Ok(())
    }

    /// Logits `(batch, t, vocab_size)` of the row-major `(batch, t)` token ids.
    pub fn logits(&self, ids: &[usize], batch: usize, t: usize) -> Result<Variable> {
        self.check_ids("Gpt::logits", ids, batch, t)?;
        let x = self.hidden(ids, batch, t)?;
        self.head(&x)
    }

    /// The residual stream after the last block, `(batch, t, n_embd)` (checked ids).
    pub(crate) fn hidden(&self, ids: &[usize], batch: usize, t: usize) -> Result<Variable> {
        // HINT: token rows + position rows 0..t, dropout, then every block in turn.
        // BEGIN SOLUTION
        let tok = self.wte.forward_ids(ids, &[batch, t])?;
        let mut x = self.drop.forward(&self.wpe.forward_at(&tok, 0)?)?;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        Ok(x)
        // END SOLUTION
    }

    /// The final layer norm and the head: `(B, T, C) -> (B, T, vocab_size)`.
    pub(crate) fn head(&self, x: &Variable) -> Result<Variable> {
        // HINT: apply the final layer norm ln_f, then the lm_head projection to vocabulary logits
        // HINT: (B, T, vocab_size).
        // BEGIN SOLUTION
        Ok(self.lm_head.forward(&self.ln_f.forward(x)?)?)
        // END SOLUTION
    }

    /// Mean next-token cross-entropy of the logits of `ids` against `targets` (both
    /// `(batch, t)`, row-major).
    pub fn loss(
        &self,
        ids: &[usize],
        targets: &[usize],
        batch: usize,
        t: usize,
    ) -> Result<Variable> {
        Ok(self.forward_with_loss(ids, targets, batch, t)?.1)
    }

    /// The logits and the loss of one batch.
    pub fn forward_with_loss(
        &self,
        ids: &[usize],
        targets: &[usize],
        batch: usize,
        t: usize,
    ) -> Result<(Variable, Variable)> {
        self.check_ids("Gpt::loss (targets)", targets, batch, t)?;
        let logits = self.logits(ids, batch, t)?;
        let loss = logits.cross_entropy(targets, None, 0.0)?;
        Ok((logits, loss))
    }

    /// Parameters not counting the position table (the figure nanoGPT prints).
    pub fn num_parameters_without_positions(&self) -> usize {
        self.num_parameters() - self.wpe.weight.numel()
    }

    /// The tensors of a nanoGPT `state_dict()`: every parameter by its nanoGPT name, plus
    /// `lm_head.weight` when it is tied to `transformer.wte.weight` (PyTorch lists both names).
    pub fn nanogpt_state_dict(&self) -> Vec<(String, Tensor)> {
        let mut tensors: Vec<(String, Tensor)> = self
            .named_parameters()
            .into_iter()
            .map(|(n, v)| (n, v.value()))
            .collect();
        if self.config.tie_weights {
            tensors.push(("lm_head.weight".to_string(), self.wte.weight.value()));
        }
        tensors
    }
}

/// A GPT's token and position embeddings as one layer, bound to the token ids it looks up (ids
/// are not floats, so they cannot travel as the layer's input tensor: the input only carries
/// the `(B, T)` shape, checked against the ids).
struct BoundEmbeddings<'a> {
    gpt: &'a Gpt,
    ids: &'a [usize],
    shape: [usize; 2],
}

impl Module for BoundEmbeddings<'_> {
    fn forward(&self, input: &Variable) -> nn::Result<Variable> {
        if input.shape() != self.shape {
            return Err(nn::NnError::Invalid {
                op: "Gpt embeddings",
                reason: format!(
                    "the ids are bound as {:?} but the input has shape {:?}",
                    self.shape,
                    input.shape()
                ),
            });
        }
        let tok = self.gpt.wte.forward_ids(self.ids, &self.shape)?;
        self.gpt.wpe.forward_at(&tok, 0)
    }

    fn named_parameters(&self) -> Vec<(String, Variable)> {
        vec![
            ("wte.weight".into(), self.gpt.wte.weight.clone()),
            ("wpe.weight".into(), self.gpt.wpe.weight.clone()),
        ]
    }
}

impl Module for Gpt {
    /// A GPT reads token ids, not floats: this is an error that points to [`Gpt::logits`] (the
    /// model is a `Module` for its parameters, train/eval and state dict).
    fn forward(&self, input: &Variable) -> nn::Result<Variable> {
        Err(nn::NnError::Invalid {
            op: "Gpt",
            reason: format!(
                "got a float tensor of shape {:?}; token ids go through \
                 Gpt::logits(ids: &[usize], batch, t)",
                input.shape()
            ),
        })
    }

    /// nanoGPT's names, each parameter once (a tied head is listed as `transformer.wte.weight`).
    fn named_parameters(&self) -> Vec<(String, Variable)> {
        let mut params = vec![
            (
                "transformer.wte.weight".to_string(),
                self.wte.weight.clone(),
            ),
            (
                "transformer.wpe.weight".to_string(),
                self.wpe.weight.clone(),
            ),
        ];
        let linear = |out: &mut Vec<(String, Variable)>, name: String, l: &Linear| {
            out.push((format!("{name}.weight"), l.weight.clone()));
            if let Some(b) = &l.bias {
                out.push((format!("{name}.bias"), b.clone()));
            }
        };
        let norm = |out: &mut Vec<(String, Variable)>, name: String, l: &LayerNorm| {
            out.push((format!("{name}.weight"), l.weight.clone()));
            if let Some(b) = &l.bias {
                out.push((format!("{name}.bias"), b.clone()));
            }
        };
        for (i, block) in self.blocks.iter().enumerate() {
            let h = format!("transformer.h.{i}");
            norm(&mut params, format!("{h}.ln_1"), &block.ln1);
            linear(&mut params, format!("{h}.attn.c_attn"), &block.attn.qkv);
            linear(&mut params, format!("{h}.attn.c_proj"), &block.attn.proj);
            norm(&mut params, format!("{h}.ln_2"), &block.ln2);
            linear(&mut params, format!("{h}.mlp.c_fc"), &block.mlp.fc);
            linear(&mut params, format!("{h}.mlp.c_proj"), &block.mlp.proj);
        }
        norm(&mut params, "transformer.ln_f".to_string(), &self.ln_f);
        if !self.config.tie_weights {
            linear(&mut params, "lm_head".to_string(), &self.lm_head);
        }
        params
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
        self.drop.set_training(training);
        for block in &mut self.blocks {
            block.set_training(training);
        }
    }
}

impl std::fmt::Debug for Gpt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        write!(
            f,
            "Gpt(vocab_size={}, block_size={}, n_layer={}, n_head={}, n_embd={}, dropout={}, bias={}, tie_weights={}, parameters={})",
            c.vocab_size,
            c.block_size,
            c.n_layer,
            c.n_head,
            c.n_embd,
            c.dropout,
            c.bias,
            c.tie_weights,
            self.num_parameters()
        )
    }
}
