//! Grader tests for attention, positional encodings and the transformer block (chapter 3, `nn`):
//! gradients of multi-head attention under every mask, attention rows that are distributions,
//! exact causality, a 2-block GPT-style stack where every parameter learns, KV-cached decoding
//! equal to the full forward, and clear errors for bad masks and too-long sequences.

mod block;
mod causality;
mod errors;
mod helpers;
mod kv_cache;
mod multi_head;
mod positional;
