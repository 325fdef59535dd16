//! # data: datasets, loaders, tokenizers and real-file readers (chapter 5)
//!
//! Real data in its standard formats, read fast and defensively: a corrupt file is a clear
//! [`DataError`] naming the file and what is wrong, never a panic or a silently wrong sample.
//! This crate knows tensors, not gradients. Table of contents:
//!
//! | module | concept |
//! |---|---|
//! | [`error`] | `DataError`: every failure names the file (or op) and the problem |
//! | [`dataset`] | `Dataset` trait, `Sample`/`Batch`/`Targets`, `TensorDataset`, `Subset`, `random_split` |
//! | [`loader`] | `DataLoader`: seeded per-epoch shuffle, batching, `collate`, background prefetch |
//! | [`transforms`] | `Normalize`, `RandomCrop`, `RandomHorizontalFlip` |
//! | [`char_tokenizer`] | `Tokenizer` trait, `CharTokenizer` with an unknown-character policy |
//! | [`bpe`] | byte-level `BpeTokenizer`: training, encoding, save/load |
//! | [`lm`] | language-model windows: shifted targets, random batches, train/val split |
//! | [`images`] | `ImageSet`: labelled images `[N, C, H, W]` in `[0, 1]` |
//! | [`image_folder`] | `ImageFolder`: your own PNG/JPEG images, one sub-folder per class |
//! | [`idx`] | IDX files and MNIST |
//! | [`cifar`] | CIFAR-10 binary batches |
//! | [`digits`] | 8x8 digits CSV (scikit-learn digits, TinyDigits) |
//! | [`text`] | text corpora: whole files, TinyTalks Q/A, TinyStories, Shakespeare |
//! | [`resolve`] | dataset directories: `--data-dir` > `TINYTORCH_DATA` > `./data` |
//! | [`io`] | whole-file reads with transparent gzip, file location |

#![warn(missing_docs)]

pub mod bpe;
pub mod char_tokenizer;
pub mod cifar;
pub mod dataset;
pub mod digits;
pub mod error;
pub mod idx;
pub mod image_folder;
pub mod images;
pub mod io;
pub mod lm;
pub mod loader;
pub mod resolve;
pub mod text;
pub mod transforms;

pub use bpe::{split_chunks, BpeTokenizer};
pub use char_tokenizer::{CharTokenizer, Tokenizer, UnknownPolicy};
pub use cifar::Cifar10;
pub use dataset::{
    random_split, split_lengths, Batch, Dataset, Sample, Subset, Target, Targets, TensorDataset,
};
pub use digits::{Digits, TinyDigits};
pub use error::{DataError, Result};
pub use idx::{Mnist, Split};
pub use image_folder::{FolderSplit, ImageFolder, ImageFolderOptions};
pub use images::ImageSet;
pub use lm::{split_text_train_val, split_train_val, LmBatch, LmBatcher};
pub use loader::{collate, DataLoader, EpochIter};
pub use resolve::{resolve_dataset_dir, DATA_ENV};
pub use text::{QaPair, Shakespeare, TinyStories, TinyTalks};
pub use transforms::{Normalize, RandomCrop, RandomHorizontalFlip, Transform};
