//! The language-model milestone's parts (`transformer-2017`): what to train on, how big a model,
//! how to train it through the one [`models::trainer::Trainer`] loop, how to stop and continue a
//! long run, and how to measure a saved model on a text.
//!
//! | module | what |
//! |---|---|
//! | [`cli`] | the flags, the mode they select, and their checks before any work |
//! | [`recipe`] | model size and optimisation settings per corpus (and from a corpus's size) |
//! | [`sources`] | the corpora: the embedded language, the named datasets, `--text` files or folders |
//! | [`tokenizers`] | `--tokenizer char\|bpe`: the vocabulary learned from the training split |
//! | [`train`] | training a GPT through the trainer: checkpoints, best-validation copy, Ctrl-C |
//! | [`run_identity`] | what a resumable checkpoint must match: the corpus hash and the run's settings |
//! | [`eval`] | loss, perplexity and bits per character/token of a model on a text |

pub mod cli;
pub mod eval;
pub mod recipe;
pub mod run_identity;
pub mod sources;
pub mod tokenizers;
pub mod train;

/// The error type of the milestone's helpers (messages for the command line).
pub type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;
