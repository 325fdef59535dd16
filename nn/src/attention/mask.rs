//! [`AttentionMask`]: one mask convention for every attention path (none, causal, or an explicit
//! keep-mask), and the check that a mask fits the scores `(B, H, T, S)` it will be applied to.

use tensor::Tensor;

use crate::error::{NnError, Result};

/// Which keys each query may attend to. Scores have shape `(B, H, T, S)`.
#[derive(Clone, Debug, Default)]
pub enum AttentionMask {
    /// Every query sees every key (an encoder).
    #[default]
    None,
    /// Query `i` of `T` sees keys `j <= i + (S - T)`: no peeking at the future (a decoder).
    Causal,
    /// An explicit mask broadcastable to `(B, H, T, S)`: non-zero = attend, 0 = drop (e.g. a
    /// `(B, 1, 1, S)` padding mask). Every query must keep at least one key.
    Keep(Tensor),
}

impl AttentionMask {
    /// Check the mask against scores of shape `(B, H, T, S)`: a `Keep` tensor must broadcast to
    /// it and keep at least one key per query; causal attention needs `S >= T`.
    pub fn check(&self, scores: [usize; 4]) -> Result<()> {
        let [_, _, t, s] = scores;
        match self {
            AttentionMask::None => Ok(()),
            AttentionMask::Causal if s < t => Err(NnError::Invalid {
                op: "MultiHeadAttention",
                reason: format!(
                    "a causal mask needs at least as many keys as queries, got T = {t} queries and S = {s} keys"
                ),
            }),
            AttentionMask::Causal => Ok(()),
            AttentionMask::Keep(mask) => {
                let shape = mask.shape();
                let fits = shape.len() <= 4
                    && shape
                        .iter()
                        .rev()
                        .zip(scores.iter().rev())
                        .all(|(&m, &want)| m == 1 || m == want);
                if !fits {
                    return Err(NnError::Invalid {
                        op: "MultiHeadAttention",
                        reason: format!(
                            "keep-mask of shape {shape:?} does not broadcast to the attention scores (B, H, T, S) = {scores:?}"
                        ),
                    });
                }
                // A row of the mask with no kept key would give a softmax over nothing.
                let values = mask.contiguous().to_vec();
                let width = shape.last().copied().unwrap_or(1).max(1);
                if let Some(row) = values.chunks(width).position(|r| r.iter().all(|&v| v == 0.0)) {
                    return Err(NnError::Invalid {
                        op: "MultiHeadAttention",
                        reason: format!(
                            "keep-mask of shape {shape:?} drops every key of its row {row}: each query must keep at least one key"
                        ),
                    });
                }
                Ok(())
            }
        }
    }
}
