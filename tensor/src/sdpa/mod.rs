//! Fused scaled-dot-product attention, `softmax(scale * Q K^T) V`, forward and backward.
//!
//! `q` is `(..., T, D)`, `k` is `(..., S, D)`, `v` is `(..., S, Dv)` with the same leading
//! (batch, head) dims. With `causal`, query `i` of `T` sees keys `j <= i + (S - T)` (the
//! convention of [`crate::causal_softmax`]: the queries are the last `T` positions, so `S > T` is
//! decoding with a KV cache).
//!
//! Why fuse: the composed path (`matmul`, `causal_softmax`, `matmul`) writes the whole
//! `(..., T, S)` score and probability tensors to memory and reads them back, four times more in
//! backward. Here each (batch, head) pair is one task of a parallel loop; inside it, blocks of
//! [`QUERY_BLOCK`] query rows go through small single-threaded products whose scratch stays in
//! cache ([`crate::small_gemm`]: register blocks read straight from the operands, no packing),
//! and a causal block only multiplies the keys its last row can see (the masked upper triangle
//! is skipped, not computed and zeroed). Forward keeps only the output and one log-sum-exp per
//! query row; backward recomputes the probabilities from them (as FlashAttention does) instead
//! of storing `T x S` numbers per head.
//!
//! Two layouts:
//! - [`scaled_dot_product_attention`]: separate `q`, `k`, `v` (any strides, read in place),
//!   output `(..., T, Dv)`;
//! - [`packed_attention`]: the `(B, T, 3C)` output of a fused qkv projection, heads read in
//!   place, output written straight into `(B, T, C)` (heads side by side) and the gradient into
//!   `(B, T, 3C)`. Multi-head attention then needs no head split or merge in its graph: no
//!   transposed copies forward, and no zero-padded slice gradients to scatter and sum backward.

mod kernel;
mod packed;
mod separate;
mod shapes;
#[cfg(test)]
mod tests;

pub use packed::{packed_attention, packed_attention_backward, packed_dims};
pub use separate::{scaled_dot_product_attention, scaled_dot_product_attention_backward};

/// Query rows per block: a block multiplies `QUERY_BLOCK x D` queries by the keys its last row
/// may see. Smaller blocks skip more of the masked triangle; larger ones make longer products.
/// Measured with the register-blocked products ([`crate::small_gemm`]), fwd+bwd, D = 32,
/// 2 threads, Zen 4, criterion `attention` bench, 2 alternating rounds per level: 16 / 24 / 32 /
/// 64 rows took 610-657 / 627-745 / 624-709 / 726-845 us on (12, 4, 64, 32), AVX-512 and AVX2
/// together; on (32, 8, 128, 32), 32 rows took 10.3-11.1 ms at AVX-512 and 11.0-12.4 at AVX2,
/// 64 rows 10.9-13.4 and 11.8-16.4 (4 rounds for 32 and 64; 16 and 24 rows 10.4-13.8 and
/// 10.4-12.5 over both levels). (With the general GEMM, 64 was best: 16 / 32 / 48 / 64 took
/// 892 / 785 / 800 / 777 us on the first shape, one thread.)
pub const QUERY_BLOCK: usize = 32;

pub(super) const OP: &str = "scaled_dot_product_attention";
pub(super) const PACKED_OP: &str = "packed_attention";
