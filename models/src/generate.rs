//! Text generation: sample one token at a time, with a KV cache (and without, as the reference).
//!
//! Without a cache, every new token costs a forward pass over the whole context, although only
//! the last position's logits are used and every earlier position's keys and values are the
//! same as the step before. With a [`KvCache`] per layer:
//!
//! 1. **prefill**: the prompt goes through the model once; each layer keeps its keys and values
//!    in buffers preallocated for `block_size` positions;
//! 2. **decode**: each new token alone goes through the model at the next position; each layer
//!    writes its key and value into the next slot (in place: nothing cached is copied) and
//!    attends over everything cached (a dot product per cached key, per head);
//! 3. **slide**: positions are learned absolute ones, so a context can hold at most
//!    `block_size` tokens. When the cache is full, the window moves by one token: the caches are
//!    cleared and the last `block_size` tokens are prefilled again (every key changes, because
//!    every token's position changes). This is exactly the context nanoGPT crops to
//!    (`idx[:, -block_size:]`), so cached and uncached generation give identical tokens at
//!    every length; past `block_size` each step costs a full prefill, like the uncached path.
//!
//! Sampling ([`sample_next`]): `temperature == 0` takes the most likely token (greedy); otherwise
//! the logits are divided by the temperature, optionally cut to the `top_k` largest, turned into
//! probabilities by a softmax, and one token is drawn with one uniform number from a generator
//! seeded by `seed`, so the same seed gives the same text. Everything runs under `no_grad`.

use autograd::no_grad;
use nn::attention::KvCache;
use tensor::TensorRng;

use crate::error::{ModelError, Result};
use crate::gpt::Gpt;

/// The next token from the logits of one position: greedy when `temperature == 0`, else a
/// draw from `softmax(logits / temperature)` restricted to the `top_k` largest logits (ties with
/// the k-th largest are kept, as nanoGPT's `logits < v[-1]` cut does).
pub fn sample_next(
    logits: &[f32],
    temperature: f32,
    top_k: Option<usize>,
    rng: &mut TensorRng,
) -> usize {
    // HINT: greedy = index of the largest logit. Otherwise scale by 1/temperature (in f64), set
    // HINT: everything below the k-th largest to -inf, exponentiate minus the max, and walk the
    // HINT: cumulative sum until it passes u * total for one uniform u.
    // BEGIN SOLUTION
    let argmax = |values: &[f64]| {
        values
            .iter()
            .enumerate()
            .fold(0, |best, (i, &v)| if v > values[best] { i } else { best })
    };
    let mut scaled: Vec<f64> = logits.iter().map(|&l| l as f64).collect();
    if temperature == 0.0 || scaled.len() <= 1 {
        return argmax(&scaled);
    }
    for v in &mut scaled {
        *v /= temperature as f64;
    }
    if let Some(k) = top_k.filter(|&k| k > 0 && k < scaled.len()) {
        let mut sorted = scaled.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let threshold = sorted[k - 1];
        for v in &mut scaled {
            if *v < threshold {
                *v = f64::NEG_INFINITY;
            }
        }
    }
    let max = scaled[argmax(&scaled)];
    let weights: Vec<f64> = scaled.iter().map(|&v| (v - max).exp()).collect();
    let total: f64 = weights.iter().sum();
    let target = rng.next_f64() * total;
    let mut cumulative = 0.0;
    let mut last_possible = 0;
    for (i, &w) in weights.iter().enumerate() {
        if w > 0.0 {
            cumulative += w;
            last_possible = i;
            if cumulative > target {
                return i;
            }
        }
    }
    last_possible
    // END SOLUTION
}

impl Gpt {
    /// One empty cache per block, each with room for `block_size` positions (allocated by the
    /// first forward, when the batch size is known; never reallocated while decoding).
    pub fn new_caches(&self) -> Vec<KvCache> {
        vec![KvCache::with_capacity(self.config().block_size); self.blocks.len()]
    }

    /// Logits `(batch, t, vocab_size)` of `t` new positions per sequence that follow the
    /// `caches[0].len()` positions already cached, appending their keys and values to `caches`
    /// (one per block). Equals the last `t` positions of [`Gpt::forward`] on the whole sequence.
    /// Inference only: call it under `no_grad` (the cache records no graph).
    pub fn forward_cached(
        &self,
        ids: &[usize],
        batch: usize,
        t: usize,
        caches: &mut [KvCache],
    ) -> Result<autograd::Variable> {
        let x = self.hidden_cached(ids, batch, t, caches)?;
        self.head(&x)
    }

    /// The position of the first of `t` new ids after the cached ones, checking the caches
    /// (one per block) and that the positions fit in `block_size`.
    fn check_caches(
        &self,
        ids: &[usize],
        batch: usize,
        t: usize,
        caches: &[KvCache],
    ) -> Result<usize> {
        if caches.len() != self.blocks.len() {
            return Err(ModelError::Invalid {
                what: "Gpt::forward_cached",
                reason: format!(
                    "{} caches for {} blocks (use Gpt::new_caches)",
                    caches.len(),
                    self.blocks.len()
                ),
            });
        }
        self.check_ids("Gpt::forward_cached", ids, batch, t)?;
        let start = caches.first().map_or(0, KvCache::len);
        if start + t > self.config().block_size {
            return Err(ModelError::Invalid {
                what: "Gpt::forward_cached",
                reason: format!(
                    "positions {start}..{} exceed block_size {} (clear the caches and slide the window)",
                    start + t,
                    self.config().block_size
                ),
            });
        }
        Ok(start)
    }

    /// The residual stream of the new positions after the last block (cache-aware).
    fn hidden_cached(
        &self,
        ids: &[usize],
        batch: usize,
        t: usize,
        caches: &mut [KvCache],
    ) -> Result<autograd::Variable> {
        let start = self.check_caches(ids, batch, t, caches)?;
        // HINT: like the uncached forward, but positions start at the cache length and every
        // HINT: block runs forward_cached with its own cache.
        // BEGIN SOLUTION
        let tok = self.wte.forward_ids(ids, &[batch, t])?;
        let mut x = self.wpe.forward_at(&tok, start)?;
        for (block, cache) in self.blocks.iter().zip(caches.iter_mut()) {
            x = block.forward_cached(&x, cache)?;
        }
        Ok(x)
        // END SOLUTION
    }

    /// The logits of the last position of a single sequence `context` (no cache).
    fn last_logits(&self, context: &[usize]) -> Result<Vec<f32>> {
        let t = context.len();
        let x = self.hidden(context, 1, t)?.narrow(1, t - 1, 1)?;
        Ok(self.head(&x)?.value().to_vec())
    }

    /// The logits of the last of `new` tokens fed after the cached ones. Every block caches the
    /// keys and values of every new token, but the last block finishes (MLP) and the head
    /// projects only the last position: the only one sampled. (Generation refuses a model with
    /// active dropout, so the embedding dropout is the identity here.)
    fn last_logits_cached(&self, new: &[usize], caches: &mut [KvCache]) -> Result<Vec<f32>> {
        let t = new.len();
        let start = self.check_caches(new, 1, t, caches)?;
        let tok = self.wte.forward_ids(new, &[1, t])?;
        let mut x = self.wpe.forward_at(&tok, start)?;
        let last = self.blocks.len() - 1;
        for (block, cache) in self.blocks[..last].iter().zip(caches.iter_mut()) {
            x = block.forward_cached(&x, cache)?;
        }
        let x = self.blocks[last].forward_cached_last(&x, &mut caches[last])?;
        Ok(self.head(&x)?.value().to_vec())
    }

    fn check_generation(
        &self,
        prompt: &[usize],
        temperature: f32,
        top_k: Option<usize>,
    ) -> Result<()> {
        let invalid = |reason: String| {
            Err(ModelError::Invalid {
                what: "Gpt::generate",
                reason,
            })
        };
        if prompt.is_empty() {
            return invalid("the prompt must hold at least one token".to_string());
        }
        if let Some(pos) = prompt.iter().position(|&id| id >= self.config().vocab_size) {
            return invalid(format!(
                "prompt id {} at position {pos} is out of range for vocab_size {}",
                prompt[pos],
                self.config().vocab_size
            ));
        }
        if temperature.is_nan() || temperature < 0.0 || temperature.is_infinite() {
            return invalid(format!(
                "temperature must be finite and >= 0 (0 = greedy), got {temperature}"
            ));
        }
        if top_k == Some(0) {
            return invalid("top_k must be at least 1 (or None for no cut)".to_string());
        }
        if self.is_training() && self.config().dropout > 0.0 {
            return invalid(format!(
                "the model is in training mode with dropout {}: call eval() before generating",
                self.config().dropout
            ));
        }
        Ok(())
    }

    /// `prompt` followed by `max_new_tokens` sampled tokens, decoded with a KV cache per layer
    /// (see the module docs; the result equals [`Gpt::generate_uncached`]'s).
    pub fn generate(
        &self,
        prompt: &[usize],
        max_new_tokens: usize,
        temperature: f32,
        top_k: Option<usize>,
        seed: u64,
    ) -> Result<Vec<usize>> {
        self.check_generation(prompt, temperature, top_k)?;
        no_grad(|| self.generate_cached_loop(prompt, max_new_tokens, temperature, top_k, seed))
    }

    fn generate_cached_loop(
        &self,
        prompt: &[usize],
        max_new_tokens: usize,
        temperature: f32,
        top_k: Option<usize>,
        seed: u64,
    ) -> Result<Vec<usize>> {
        // HINT: prefill the (cropped) prompt once; then per token: sample, and feed only the new
        // HINT: token, unless the cache holds block_size positions: then clear every cache and
        // HINT: prefill the last block_size tokens (the window slides by one).
        // BEGIN SOLUTION
        let block_size = self.config().block_size;
        let mut rng = TensorRng::new(seed);
        let mut tokens = prompt.to_vec();
        tokens.reserve(max_new_tokens);
        if max_new_tokens == 0 {
            return Ok(tokens);
        }
        let mut caches = self.new_caches();
        let start = tokens.len().saturating_sub(block_size);
        let mut logits = self.last_logits_cached(&tokens[start..], &mut caches)?;
        for step in 0..max_new_tokens {
            let next = sample_next(&logits, temperature, top_k, &mut rng);
            tokens.push(next);
            if step + 1 == max_new_tokens {
                break;
            }
            logits = if caches[0].len() == block_size {
                caches.iter_mut().for_each(KvCache::clear);
                let window = &tokens[tokens.len() - block_size..];
                self.last_logits_cached(window, &mut caches)?
            } else {
                self.last_logits_cached(&[next], &mut caches)?
            };
        }
        Ok(tokens)
        // END SOLUTION
    }

    /// The same tokens as [`Gpt::generate`], computed the slow way: a full forward pass over the
    /// last `block_size` tokens for every new token. The reference for the cache, and the
    /// baseline of its speedup.
    pub fn generate_uncached(
        &self,
        prompt: &[usize],
        max_new_tokens: usize,
        temperature: f32,
        top_k: Option<usize>,
        seed: u64,
    ) -> Result<Vec<usize>> {
        self.check_generation(prompt, temperature, top_k)?;
        no_grad(|| {
            let block_size = self.config().block_size;
            let mut rng = TensorRng::new(seed);
            let mut tokens = prompt.to_vec();
            for _ in 0..max_new_tokens {
                let context = &tokens[tokens.len().saturating_sub(block_size)..];
                let logits = self.last_logits(context)?;
                tokens.push(sample_next(&logits, temperature, top_k, &mut rng));
            }
            Ok(tokens)
        })
    }
}
