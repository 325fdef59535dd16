//! CIFAR-10 binary batches (`data_batch_1.bin` ... `data_batch_5.bin`, `test_batch.bin`).
//!
//! Each file is a sequence of 3,073-byte records: one label byte (0..=9) then 3,072 pixel bytes,
//! the 1,024 red values, then green, then blue, each a 32x32 image in row-major order. So a record
//! is already `[C, H, W]`; 10,000 records make a 30,730,000-byte file.

use std::path::Path;

use crate::error::{DataError, Result};
use crate::idx::Split;
use crate::images::ImageSet;
use crate::io::{locate_file, read_bytes};
use crate::resolve::resolve_dataset_dir;

/// Pixels per image (3 x 32 x 32).
pub const CIFAR_PIXELS: usize = 3 * 32 * 32;
/// Bytes per record (label + pixels).
pub const CIFAR_RECORD: usize = 1 + CIFAR_PIXELS;

/// The ten class names, in label order.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Split the bytes of one batch file into labels and `[C, H, W]` pixels. `path` names the file in
/// errors (a length that is not a whole number of records, a label above 9).
pub fn parse_cifar10_batch(bytes: &[u8], path: &Path) -> Result<(Vec<u8>, Vec<usize>)> {
    if !bytes.len().is_multiple_of(CIFAR_RECORD) {
        return Err(DataError::format(
            path,
            format!(
                "truncated: {} bytes is not a whole number of {CIFAR_RECORD}-byte records \
                 ({} whole records and {} extra bytes)",
                bytes.len(),
                bytes.len() / CIFAR_RECORD,
                bytes.len() % CIFAR_RECORD
            ),
        ));
    }
    let n = bytes.len() / CIFAR_RECORD;
    let mut pixels = Vec::with_capacity(n * CIFAR_PIXELS);
    let mut labels = Vec::with_capacity(n);
    for (i, rec) in bytes.chunks_exact(CIFAR_RECORD).enumerate() {
        if rec[0] >= 10 {
            return Err(DataError::format(
                path,
                format!("label {} out of range 0..10 at record {i}", rec[0]),
            ));
        }
        labels.push(rec[0] as usize);
        pixels.extend_from_slice(&rec[1..]);
    }
    Ok((pixels, labels))
}

/// Read one binary batch file into `[N, 3, 32, 32]` images in `[0, 1]`.
pub fn load_cifar10_batch(path: &Path) -> Result<ImageSet> {
    let bytes = read_bytes(path)?;
    let (pixels, labels) = parse_cifar10_batch(&bytes, path)?;
    ImageSet::from_u8(&pixels, [labels.len(), 3, 32, 32], 255, labels, 10)
}

/// Encode images and labels as a binary batch file's bytes (the inverse of
/// [`parse_cifar10_batch`]; `pixels` holds `[N, 3, 32, 32]` bytes).
pub fn encode_cifar10_batch(pixels: &[u8], labels: &[u8]) -> Result<Vec<u8>> {
    if pixels.len() != labels.len() * CIFAR_PIXELS {
        return Err(DataError::invalid(
            "encode_cifar10_batch",
            format!(
                "{} labels need {} pixel bytes, got {}",
                labels.len(),
                labels.len() * CIFAR_PIXELS,
                pixels.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(labels.len() * CIFAR_RECORD);
    for (l, p) in labels.iter().zip(pixels.chunks_exact(CIFAR_PIXELS)) {
        out.push(*l);
        out.extend_from_slice(p);
    }
    Ok(out)
}

/// CIFAR-10: 50,000 training and 10,000 test colour images, `[N, 3, 32, 32]` in `[0, 1]`.
pub struct Cifar10;

impl Cifar10 {
    /// The dataset's folder name under a data root.
    pub const NAME: &'static str = "cifar10";
    /// The six batch files (each may be gzip-compressed).
    pub const FILES: [&'static str; 6] = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ];

    /// Load one split from `dir`: the five training batches concatenated, or the test batch.
    pub fn load_split(dir: &Path, split: Split) -> Result<ImageSet> {
        let names: &[&str] = match split {
            Split::Train => &Cifar10::FILES[..5],
            Split::Test => &Cifar10::FILES[5..],
        };
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for name in names {
            let path = locate_file(dir, name).unwrap_or_else(|| dir.join(name));
            let bytes = read_bytes(&path)?;
            let (p, l) = parse_cifar10_batch(&bytes, &path)?;
            pixels.extend_from_slice(&p);
            labels.extend(l);
        }
        ImageSet::from_u8(&pixels, [labels.len(), 3, 32, 32], 255, labels, 10)
    }

    /// Find CIFAR-10 (`--data-dir` > `TINYTORCH_DATA` > `./data`) and load one split.
    pub fn find(cli_dir: Option<&Path>, split: Split) -> Result<ImageSet> {
        let dir = resolve_dataset_dir(cli_dir, Cifar10::NAME, &Cifar10::FILES)?;
        Cifar10::load_split(&dir, split)
    }
}
