//! `DataError`: every way reading, batching or tokenizing data can fail.
//!
//! A corrupt file must be a clear error, never a panic or a silently wrong sample. Every variant
//! about a file carries its path, so a message reads like
//! `data/mnist/train-images-idx3-ubyte.gz: magic number 0x00000802, expected 0x00000803`.

use std::path::{Path, PathBuf};

use tensor::TensorError;
use thiserror::Error;

/// The error type of the `data` crate.
#[derive(Debug, Error)]
pub enum DataError {
    /// The operating system refused to read or write a file (missing, permissions, ...), or a
    /// compressed stream is corrupt.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file whose bytes do not follow its format (wrong magic number, truncated, bad CSV row,
    /// label out of range, malformed tokenizer file, ...).
    #[error("{}: {reason}", path.display())]
    Format {
        /// The file involved.
        path: PathBuf,
        /// What is wrong, with the offending value and position.
        reason: String,
    },
    /// A text file that is not valid UTF-8.
    #[error("{}: invalid UTF-8 at byte {offset}", path.display())]
    InvalidUtf8 {
        /// The file involved.
        path: PathBuf,
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// Two files that must describe the same samples disagree on how many there are.
    #[error(
        "{}: labels file has {labels} items but images file {} has {images}",
        labels_path.display(),
        images_path.display()
    )]
    CountMismatch {
        /// The labels file.
        labels_path: PathBuf,
        /// Number of labels it holds.
        labels: usize,
        /// The images file.
        images_path: PathBuf,
        /// Number of images it holds.
        images: usize,
    },
    /// A dataset that is in none of the places searched.
    #[error("{}", missing_message(dataset, required, searched, hint))]
    MissingDataset {
        /// The dataset's name (`mnist`, `tinytalks`, ...).
        dataset: String,
        /// The files it needs (`a|b` means either `a` or `b`).
        required: Vec<String>,
        /// Every directory that was searched, with why it was searched.
        searched: Vec<String>,
        /// Where to get the files.
        hint: String,
    },
    /// A character the tokenizer has never seen, under the `UnknownPolicy::Error` policy.
    #[error("{op}: character {ch:?} (U+{:04X}) at char {position} is not in the vocabulary", *ch as u32)]
    UnknownChar {
        /// The operation that failed.
        op: &'static str,
        /// The unknown character.
        ch: char,
        /// Its position in the text, counted in characters.
        position: usize,
    },
    /// A token id outside the vocabulary.
    #[error("{op}: token id {id} at position {position} is out of range 0..{vocab_size}")]
    UnknownToken {
        /// The operation that failed.
        op: &'static str,
        /// The offending id.
        id: usize,
        /// Its position in the sequence.
        position: usize,
        /// The vocabulary size.
        vocab_size: usize,
    },
    /// An invalid argument to a data API (zero batch size, samples of different shapes, ...).
    #[error("{op}: {reason}")]
    Invalid {
        /// The operation that refused its input.
        op: &'static str,
        /// Why.
        reason: String,
    },
    /// The background worker of a data loader stopped early (its dataset panicked).
    #[error("data loader worker stopped: {0}")]
    Worker(String),
    /// A tensor op failed while building a batch.
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

/// Shorthand used across the crate.
pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    /// Build a [`DataError::Format`].
    pub fn format(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        DataError::Format {
            path: path.as_ref().to_path_buf(),
            reason: reason.into(),
        }
    }

    /// Build a [`DataError::Io`].
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// Build a [`DataError::Invalid`].
    pub fn invalid(op: &'static str, reason: impl Into<String>) -> Self {
        DataError::Invalid {
            op,
            reason: reason.into(),
        }
    }
}

fn missing_message(dataset: &str, required: &[String], searched: &[String], hint: &str) -> String {
    let mut msg = format!(
        "dataset `{dataset}` not found. It needs the files: {}\nSearched (in order):",
        required.join(", ")
    );
    for place in searched {
        msg.push_str("\n  - ");
        msg.push_str(place);
    }
    msg.push_str(
        "\nPoint to it with --data-dir DIR or the TINYTORCH_DATA environment variable \
         (a directory holding `",
    );
    msg.push_str(dataset);
    msg.push_str("/` or the files themselves).");
    if !hint.is_empty() {
        msg.push_str("\nWhere to get it: ");
        msg.push_str(hint);
    }
    msg
}
