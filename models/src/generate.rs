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
//!
//! **Batched decoding** ([`Gpt::generate_batch`]): one token of one sequence is a
//! matrix-*vector* product per weight matrix, which streams every weight from memory for one
//! row of work. Several sequences decoded together turn each into a matrix-matrix product of
//! one row per sequence (the weights are read once for all of them) and share every op's fixed
//! cost. Prompts of different lengths sit at different positions, so each row keeps its own
//! caches: every prompt is prefilled alone (as [`Gpt::generate`] does), then each step feeds
//! the new token of every row through one forward ([`Gpt::decode_rows`]: embeddings at each
//! row's own position, one GEMM per layer for all rows, attention per row over its own cache).
//! A row whose window is full slides alone, exactly as in `generate`. Row `i` samples with its
//! own generator seeded by [`row_seed`]`(seed, i)`, so it gives the tokens of
//! `generate(prompts[i], ..., row_seed(seed, i))`. The decode runs through copies of the blocks
//! whose weights are stored `(in, out)` ([`TransformerBlock::for_batched_decoding`]): the GEMM
//! kernel repacks an `(out, in)` weight on every product of more than one row.

use autograd::no_grad;
use nn::attention::KvCache;
use nn::linear::Linear;
use nn::transformer::{transposed_layout, TransformerBlock};
use nn::Module;
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

/// The seed of row `row` of a batch generated with `seed` (see [`Gpt::generate_batch`]): `seed`
/// itself for row 0, and `seed ^ (row * 0x9E3779B97F4A7C15)` (wrapping) for the others, so
/// every row draws from its own stream and row `i` of a batch is
/// `generate(prompts[i], ..., row_seed(seed, i))`.
pub fn row_seed(seed: u64, row: usize) -> u64 {
    seed ^ (row as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The most tokens one generation call produces: a typo such as `--max-new-tokens 1000000000`
/// (days of decoding) or `2^64-1` is refused up front with a clear error instead.
pub const MAX_NEW_TOKENS: usize = 1_000_000;

/// Refuse a `max_new_tokens` above [`MAX_NEW_TOKENS`], naming the call.
pub fn check_max_new_tokens(what: &'static str, max_new_tokens: usize) -> Result<()> {
    if max_new_tokens > MAX_NEW_TOKENS {
        return Err(ModelError::Invalid {
            op: what,
            reason: format!(
                "max_new_tokens = {max_new_tokens} is over the limit of {MAX_NEW_TOKENS} tokens per call"
            ),
        });
    }
    Ok(())
}

/// `prompt` copied into a vector with room for `max_new_tokens` more, or a clear error when
/// that many tokens cannot be allocated (instead of an abort).
fn tokens_with_room(
    what: &'static str,
    prompt: &[usize],
    max_new_tokens: usize,
) -> Result<Vec<usize>> {
    let too_large = |detail: String| ModelError::Invalid {
        op: what,
        reason: format!("max_new_tokens = {max_new_tokens} is too large: {detail}"),
    };
    let total = prompt.len().checked_add(max_new_tokens).ok_or_else(|| {
        too_large(format!(
            "prompt ({}) + new tokens overflows usize",
            prompt.len()
        ))
    })?;
    let mut tokens = Vec::new();
    tokens
        .try_reserve_exact(total)
        .map_err(|e| too_large(format!("cannot allocate {total} tokens ({e})")))?;
    tokens.extend_from_slice(prompt);
    Ok(tokens)
}

impl Gpt {
    /// One empty cache per block, each with room for `block_size` positions (allocated by the
    /// first forward, when the batch size is known; never reallocated while decoding).
    pub fn new_caches(&self) -> Vec<KvCache> {
        vec![KvCache::with_capacity(self.config().block_size); self.blocks.len()]
    }

    /// Logits `(batch, t, vocab_size)` of `t` new positions per sequence that follow the
    /// `caches[0].len()` positions already cached, appending their keys and values to `caches`
    /// (one per block). Equals the last `t` positions of [`Gpt::logits`] on the whole sequence.
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
                op: "Gpt::forward_cached",
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
                op: "Gpt::forward_cached",
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
        self.last_logits_cached_through(&self.blocks, &self.lm_head, new, caches)
    }

    /// [`Gpt::last_logits_cached`] through `blocks` and `lm_head`: the model's own, or their
    /// copies laid out for batched decoding ([`TransformerBlock::for_batched_decoding`]).
    fn last_logits_cached_through(
        &self,
        blocks: &[TransformerBlock],
        lm_head: &Linear,
        new: &[usize],
        caches: &mut [KvCache],
    ) -> Result<Vec<f32>> {
        let t = new.len();
        let start = self.check_caches(new, 1, t, caches)?;
        let tok = self.wte.forward_ids(new, &[1, t])?;
        let mut x = self.wpe.forward_at(&tok, start)?;
        let last = blocks.len() - 1;
        for (block, cache) in blocks[..last].iter().zip(caches.iter_mut()) {
            x = block.forward_cached(&x, cache)?;
        }
        let x = blocks[last].forward_cached_last(&x, &mut caches[last])?;
        Ok(lm_head.forward(&self.ln_f.forward(&x)?)?.value().to_vec())
    }

    /// The sampling arguments and the model's mode, checked for `what`.
    fn check_sampling(
        &self,
        what: &'static str,
        temperature: f32,
        top_k: Option<usize>,
    ) -> Result<()> {
        let invalid = |reason: String| Err(ModelError::Invalid { op: what, reason });
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

    /// Why `prompt` cannot start a generation (empty, or an id outside the vocabulary).
    fn prompt_problem(&self, prompt: &[usize]) -> Option<String> {
        if prompt.is_empty() {
            return Some("the prompt must hold at least one token".to_string());
        }
        let pos = prompt
            .iter()
            .position(|&id| id >= self.config().vocab_size)?;
        Some(format!(
            "prompt id {} at position {pos} is out of range for vocab_size {}",
            prompt[pos],
            self.config().vocab_size
        ))
    }

    fn check_generation(
        &self,
        prompt: &[usize],
        temperature: f32,
        top_k: Option<usize>,
    ) -> Result<()> {
        if let Some(reason) = self.prompt_problem(prompt) {
            return Err(ModelError::Invalid {
                op: "Gpt::generate",
                reason,
            });
        }
        self.check_sampling("Gpt::generate", temperature, top_k)
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
        check_max_new_tokens("Gpt::generate", max_new_tokens)?;
        no_grad(|| {
            self.generate_cached_loop(
                "Gpt::generate",
                prompt,
                max_new_tokens,
                temperature,
                top_k,
                seed,
                &mut |_| true,
            )
        })
    }

    /// [`Gpt::generate`] that hands each new token to `on_token` as soon as it is sampled (so a
    /// binary prints text as it is produced), with the same tokens for the same seed. `on_token`
    /// returns `false` to stop early. Returns the prompt and every token produced.
    pub fn generate_stream(
        &self,
        prompt: &[usize],
        max_new_tokens: usize,
        temperature: f32,
        top_k: Option<usize>,
        seed: u64,
        mut on_token: impl FnMut(usize) -> bool,
    ) -> Result<Vec<usize>> {
        const WHAT: &str = "Gpt::generate_stream";
        self.check_generation(prompt, temperature, top_k)?;
        check_max_new_tokens(WHAT, max_new_tokens)?;
        no_grad(|| {
            self.generate_cached_loop(
                WHAT,
                prompt,
                max_new_tokens,
                temperature,
                top_k,
                seed,
                &mut on_token,
            )
        })
    }

    /// The cached decoding loop of [`Gpt::generate`] and [`Gpt::generate_stream`]: each new
    /// token goes to `on_token`, which returns `false` to stop early.
    #[allow(clippy::too_many_arguments)]
    fn generate_cached_loop(
        &self,
        what: &'static str,
        prompt: &[usize],
        max_new_tokens: usize,
        temperature: f32,
        top_k: Option<usize>,
        seed: u64,
        on_token: &mut dyn FnMut(usize) -> bool,
    ) -> Result<Vec<usize>> {
        // HINT: prefill the (cropped) prompt once; then per token: sample, hand it to on_token,
        // HINT: and feed only the new token, unless the cache holds block_size positions: then
        // HINT: clear every cache and prefill the last block_size tokens (the window slides by one).
        // BEGIN SOLUTION
        let block_size = self.config().block_size;
        let mut rng = TensorRng::new(seed);
        let mut tokens = tokens_with_room(what, prompt, max_new_tokens)?;
        if max_new_tokens == 0 {
            return Ok(tokens);
        }
        let mut caches = self.new_caches();
        let start = tokens.len().saturating_sub(block_size);
        let mut logits = self.last_logits_cached(&tokens[start..], &mut caches)?;
        for step in 0..max_new_tokens {
            let next = sample_next(&logits, temperature, top_k, &mut rng);
            tokens.push(next);
            if !on_token(next) || step + 1 == max_new_tokens {
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

    /// Row `i` of the result is `prompts[i]` followed by `max_new_tokens` sampled tokens: the
    /// tokens of `generate(&prompts[i], max_new_tokens, temperature, top_k, row_seed(seed, i))`
    /// (greedy, top-k and sampled alike, across the sliding window). The rows are decoded
    /// together: one forward per step for the whole batch, so every GEMM sees one row per
    /// sequence instead of one sequence at a time (see the module docs).
    ///
    /// Each row goes through the same operations as alone; only the GEMM kernel's order of
    /// additions differs (a few-row product instead of a matrix-vector product), so logits agree
    /// to rounding (checked to 1e-5) and the tokens are the same unless two candidates tie to within
    /// rounding, as for [`Gpt::generate_uncached`] against [`Gpt::generate`].
    ///
    /// Prompts may have different lengths: each row has its own caches and positions. Takes
    /// `&[Vec<usize>]` or `&[&[usize]]`. Fails on an empty batch, an empty prompt or an
    /// out-of-vocabulary id (naming the prompt), a temperature that is negative or not finite
    /// (0 = greedy), `top_k == Some(0)`, a model in training mode with dropout, and a
    /// `max_new_tokens` whose tokens cannot be allocated.
    pub fn generate_batch<P: AsRef<[usize]>>(
        &self,
        prompts: &[P],
        max_new_tokens: usize,
        temperature: f32,
        top_k: Option<usize>,
        seed: u64,
    ) -> Result<Vec<Vec<usize>>> {
        const WHAT: &str = "Gpt::generate_batch";
        if prompts.is_empty() {
            return Err(ModelError::Invalid {
                op: WHAT,
                reason: "the batch holds no prompt (give at least one)".to_string(),
            });
        }
        for (i, prompt) in prompts.iter().enumerate() {
            if let Some(problem) = self.prompt_problem(prompt.as_ref()) {
                return Err(ModelError::Invalid {
                    op: WHAT,
                    reason: format!("prompt {i} of {}: {problem}", prompts.len()),
                });
            }
        }
        self.check_sampling(WHAT, temperature, top_k)?;
        check_max_new_tokens(WHAT, max_new_tokens)?;
        let tokens = prompts
            .iter()
            .map(|p| tokens_with_room(WHAT, p.as_ref(), max_new_tokens))
            .collect::<Result<Vec<_>>>()?;
        if max_new_tokens == 0 {
            return Ok(tokens);
        }
        no_grad(|| self.generate_batch_loop(tokens, max_new_tokens, temperature, top_k, seed))
    }

    fn generate_batch_loop(
        &self,
        mut tokens: Vec<Vec<usize>>,
        max_new_tokens: usize,
        temperature: f32,
        top_k: Option<usize>,
        seed: u64,
    ) -> Result<Vec<Vec<usize>>> {
        let block_size = self.config().block_size;
        let vocab = self.config().vocab_size;
        // The blocks and the head with their weights stored (in, out), for few-row products.
        let blocks = self
            .blocks
            .iter()
            .map(TransformerBlock::for_batched_decoding)
            .collect::<nn::Result<Vec<_>>>()?;
        let lm_head = transposed_layout(&self.lm_head)?;
        // HINT: one RNG (row_seed) and one set of caches per row; prefill each prompt alone
        // HINT: (cropped to block_size) as generate does, through `blocks` and `lm_head`. Then
        // HINT: per step: sample every row; a row whose cache is full slides alone (clear, prefill
        // HINT: its last block_size tokens); all other rows feed their new token together
        // HINT: through decode_rows_through, one forward.
        // BEGIN SOLUTION
        let mut rngs: Vec<TensorRng> = (0..tokens.len())
            .map(|row| TensorRng::new(row_seed(seed, row)))
            .collect();
        let mut caches: Vec<Vec<KvCache>> = tokens.iter().map(|_| self.new_caches()).collect();
        let mut logits = Vec::with_capacity(tokens.len());
        for (row, row_caches) in tokens.iter().zip(caches.iter_mut()) {
            let start = row.len().saturating_sub(block_size);
            logits.push(self.last_logits_cached_through(
                &blocks,
                &lm_head,
                &row[start..],
                row_caches,
            )?);
        }
        for step in 0..max_new_tokens {
            for ((row, rng), row_logits) in tokens.iter_mut().zip(&mut rngs).zip(&logits) {
                row.push(sample_next(row_logits, temperature, top_k, rng));
            }
            if step + 1 == max_new_tokens {
                break;
            }
            let mut decoding = Vec::with_capacity(tokens.len());
            let mut next = Vec::with_capacity(tokens.len());
            let mut decoding_caches = Vec::with_capacity(tokens.len());
            for (i, (row, row_caches)) in tokens.iter().zip(caches.iter_mut()).enumerate() {
                if row_caches.first().map_or(0, KvCache::len) == block_size {
                    row_caches.iter_mut().for_each(KvCache::clear);
                    let window = &row[row.len() - block_size..];
                    logits[i] =
                        self.last_logits_cached_through(&blocks, &lm_head, window, row_caches)?;
                } else {
                    decoding.push(i);
                    next.push(row[row.len() - 1]);
                    decoding_caches.push(row_caches.as_mut_slice());
                }
            }
            if !decoding.is_empty() {
                let batch_logits =
                    self.decode_rows_through(&blocks, &lm_head, &next, &mut decoding_caches)?;
                for (&i, row_logits) in decoding.iter().zip(batch_logits.chunks_exact(vocab)) {
                    logits[i].copy_from_slice(row_logits);
                }
            }
        }
        Ok(tokens)
        // END SOLUTION
    }

    /// The logits `(n, vocab_size)` (row-major) of one new token per sequence, `next[r]` at the
    /// position after the ones in `rows[r]` (that sequence's caches, one per block), appending
    /// each token's keys and values to its own caches. One forward for all `n` sequences; their
    /// cache lengths (positions) may differ. Row `r` equals [`Gpt::forward_cached`] on sequence
    /// `r` alone.
    pub fn decode_rows(&self, next: &[usize], rows: &mut [&mut [KvCache]]) -> Result<Vec<f32>> {
        self.decode_rows_through(&self.blocks, &self.lm_head, next, rows)
    }

    /// [`Gpt::decode_rows`] through `blocks` and `lm_head`: the model's own, or their copies laid
    /// out for batched decoding ([`TransformerBlock::for_batched_decoding`]).
    fn decode_rows_through(
        &self,
        blocks: &[TransformerBlock],
        lm_head: &Linear,
        next: &[usize],
        rows: &mut [&mut [KvCache]],
    ) -> Result<Vec<f32>> {
        let n = next.len();
        self.check_ids("Gpt::decode_rows", next, n, 1)?;
        let block_size = self.config().block_size;
        if rows.len() != n {
            return Err(ModelError::Invalid {
                op: "Gpt::decode_rows",
                reason: format!(
                    "{} cache sets for {n} tokens (one per sequence)",
                    rows.len()
                ),
            });
        }
        let mut positions = Vec::with_capacity(n);
        for (r, row) in rows.iter().enumerate() {
            let len = row.first().map_or(0, KvCache::len);
            let problem = if row.len() != self.blocks.len() {
                Some(format!(
                    "sequence {r} has {} caches for {} blocks (use Gpt::new_caches)",
                    row.len(),
                    self.blocks.len()
                ))
            } else if len >= block_size {
                Some(format!(
                    "sequence {r} already holds {len} positions of block_size {block_size} (clear its caches and slide the window)"
                ))
            } else {
                None
            };
            if let Some(reason) = problem {
                return Err(ModelError::Invalid {
                    op: "Gpt::decode_rows",
                    reason,
                });
            }
            positions.push(len);
        }
        // HINT: token rows (n, 1, C) plus each sequence's own position row (index_select of
        // HINT: wpe.weight at the cache lengths); then every block's forward_cached_rows with
        // HINT: that block's cache of every sequence; then the head.
        // BEGIN SOLUTION
        let c = self.config().n_embd;
        let tok = self.wte.forward_ids(next, &[n, 1])?;
        let pos = self
            .wpe
            .weight
            .index_select(0, &positions)?
            .reshape_to(&[n, 1, c])?;
        let mut x = tok.add(&pos)?;
        for (l, block) in blocks.iter().enumerate() {
            let mut layer: Vec<&mut KvCache> = rows.iter_mut().map(|row| &mut row[l]).collect();
            x = block.forward_cached_rows(&x, &mut layer)?;
        }
        Ok(lm_head.forward(&self.ln_f.forward(&x)?)?.value().to_vec())
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
