//! `--eval`: how well a saved model predicts a text, with no training. Every non-overlapping
//! window of the model's context is scored; the report gives the mean next-token loss (nats),
//! the perplexity `exp(loss)`, bits per token `loss / ln 2`, and bits per character (the bits of
//! the whole text divided by its characters), the figure that compares models with different
//! tokenizers.

use data::LmBatcher;
use models::checkpoint::TokenizerSpec;
use models::gpt::Gpt;

use super::BoxResult;

/// A model's score on a text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextScore {
    /// Tokens predicted.
    pub tokens: usize,
    /// Characters those tokens spell (estimated from the text's characters per token).
    pub chars: f64,
    /// Mean next-token cross-entropy in nats.
    pub loss: f64,
    pub perplexity: f64,
    pub bits_per_token: f64,
    pub bits_per_char: f64,
}

/// Refuse text with characters a character vocabulary lacks, naming a few (scoring would skip
/// them and measure another text).
fn check_chars(tok: &TokenizerSpec, text: &str) -> BoxResult<()> {
    if let TokenizerSpec::Char(vocab) = tok {
        let mut unknown: Vec<char> = text.chars().filter(|&c| vocab.id_of(c).is_none()).collect();
        unknown.sort_unstable();
        unknown.dedup();
        if !unknown.is_empty() {
            let shown: Vec<String> = unknown
                .iter()
                .take(8)
                .map(|c| format!("{c:?} (U+{:04X})", *c as u32))
                .collect();
            return Err(format!(
                "the text has {} distinct characters the model's vocabulary lacks: {}{}",
                unknown.len(),
                shown.join(", "),
                if unknown.len() > 8 { ", ..." } else { "" }
            )
            .into());
        }
    }
    Ok(())
}

/// Score `gpt` (in eval mode) on `text` in batches of `batch_size` windows.
pub fn score_text(
    gpt: &Gpt,
    tok: &TokenizerSpec,
    text: &str,
    batch_size: usize,
) -> BoxResult<TextScore> {
    check_chars(tok, text)?;
    let ids = tok.encode(text)?;
    let block = gpt.config().block_size;
    if ids.len() < block + 1 {
        return Err(format!(
            "the text has {} tokens; the model reads windows of {block}, so it needs at least {}",
            ids.len(),
            block + 1
        )
        .into());
    }
    let chars_per_token = text.chars().count() as f64 / ids.len() as f64;
    let batches = LmBatcher::new(ids, block, batch_size, 0)?.sequential();
    let _no_grad = autograd::NoGradGuard::new();
    let (mut nats, mut tokens) = (0.0f64, 0usize);
    for b in &batches {
        let loss = gpt.loss(&b.inputs, &b.targets, b.batch_size, b.block_size)?;
        nats += f64::from(loss.item()?) * b.targets.len() as f64;
        tokens += b.targets.len();
    }
    let loss = nats / tokens as f64;
    let chars = tokens as f64 * chars_per_token;
    let bits = nats / std::f64::consts::LN_2;
    Ok(TextScore {
        tokens,
        chars,
        loss,
        perplexity: loss.exp(),
        bits_per_token: loss / std::f64::consts::LN_2,
        bits_per_char: bits / chars,
    })
}
