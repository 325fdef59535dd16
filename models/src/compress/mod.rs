//! Model compression: make a trained model smaller and faster.
//!
//! | module | concept |
//! |---|---|
//! | [`structured`] | `prune_neurons`: drop an `Mlp`'s weakest hidden neurons (L2 norm); the layers really shrink |
//! | [`low_rank`] | `low_rank`: replace an `Mlp`'s `Linear` layers by rank-`r` SVD factorizations |
//!
//! Unstructured magnitude pruning (a mask over individual weights) lives in `nn::prune` and is
//! re-exported here, so one module lists every technique; `optim::Masked` keeps its masks
//! through training, and `nn::distillation_loss` trains a small student from a big teacher.

pub mod low_rank;
pub mod structured;

pub use low_rank::{low_rank, low_rank_layer, LowRankMlp};
pub use nn::prune::{
    magnitude_prune_global, magnitude_prune_per_layer, sparsity, sparsity_of, LayerSparsity, Masks,
    SparsityReport,
};
pub use structured::{neuron_norms, prune_neurons};
