//! Helpers shared by models' test binaries (`mod common;`): the small GPT configurations they
//! test on, and the reason of an invalid-input error.

// Each test binary uses a subset of these helpers.
#![allow(dead_code)]

use models::gpt::{Gelu, GptConfig};
use models::ModelError;

/// A small GPT of `vocab_size` tokens and width `n_embd`: a 16-token context, 2 layers of 2
/// heads, no dropout, exact GELU.
pub fn gpt_config(vocab_size: usize, n_embd: usize, bias: bool, tie_weights: bool) -> GptConfig {
    GptConfig {
        vocab_size,
        block_size: 16,
        n_layer: 2,
        n_head: 2,
        n_embd,
        dropout: 0.0,
        bias,
        tie_weights,
        gelu: Gelu::Exact,
    }
}

/// The tiny GPT of the GPT tests: 13 tokens, width 24.
pub fn tiny_config(bias: bool, tie_weights: bool) -> GptConfig {
    gpt_config(13, 24, bias, tie_weights)
}

/// The reason of a `ModelError::Invalid` (any other error fails the test).
pub fn invalid_reason(e: ModelError) -> String {
    match e {
        ModelError::Invalid { reason, .. } => reason,
        other => panic!("expected ModelError::Invalid, got {other:?}"),
    }
}
