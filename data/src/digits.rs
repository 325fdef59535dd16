//! The 8x8 handwritten digits as CSV: scikit-learn's `digits.csv.gz` (no header, 64 pixel columns
//! then the label) and TinyDigits' `train.csv` / `test.csv` (header `label,p0,...,p63`).
//!
//! Pixels are integers 0..=16 (counts of set bits in 4x4 blocks of a 32x32 bitmap) and are scaled
//! to `[0, 1]` by dividing by 16. Every row is checked: column count, numeric values, pixel range,
//! label range; an error names the file and the line.

use std::path::Path;

use tensor::Tensor;

use crate::error::{DataError, Result};
use crate::images::ImageSet;
use crate::io::{locate_file, read_text};
use crate::resolve::resolve_dataset_dir;

/// Pixels per digit image.
pub const DIGIT_PIXELS: usize = 64;
/// The largest pixel value.
pub const DIGIT_MAX: f32 = 16.0;

/// Parse a digits CSV. With a header (first field not a number), the label is the column named
/// `label`; without one, it is the last column. `path` names the file in errors.
pub fn parse_digits_csv(text: &str, path: &Path) -> Result<ImageSet> {
    // A spreadsheet's UTF-8 byte-order mark is not part of the first field.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((first_no, first)) = lines.next() else {
        return Err(DataError::format(path, "empty file: no rows"));
    };
    let first_fields: Vec<&str> = first.split(',').map(str::trim).collect();
    let has_header = first_fields[0].parse::<f64>().is_err();
    let (columns, label_col, mut pending) = if has_header {
        let label_col = first_fields
            .iter()
            .position(|f| f.eq_ignore_ascii_case("label"))
            .ok_or_else(|| {
                DataError::format(
                    path,
                    format!("line {}: header has no `label` column", first_no + 1),
                )
            })?;
        (first_fields.len(), label_col, None)
    } else {
        (
            first_fields.len(),
            first_fields.len() - 1,
            Some((first_no, first)),
        )
    };
    if columns != DIGIT_PIXELS + 1 {
        return Err(DataError::format(
            path,
            format!(
                "line {}: expected {} columns (64 pixels and a label), found {columns}",
                first_no + 1,
                DIGIT_PIXELS + 1
            ),
        ));
    }
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    let mut next = || pending.take().or_else(|| lines.next());
    while let Some((no, line)) = next() {
        let line_no = no + 1;
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != columns {
            return Err(DataError::format(
                path,
                format!(
                    "line {line_no}: expected {columns} columns, found {}",
                    fields.len()
                ),
            ));
        }
        for (c, field) in fields.iter().enumerate() {
            let v: f64 = field.parse().map_err(|_| {
                DataError::format(
                    path,
                    format!(
                        "line {line_no}, column {}: {field:?} is not a number",
                        c + 1
                    ),
                )
            })?;
            if c == label_col {
                if v.fract() != 0.0 || !(0.0..10.0).contains(&v) {
                    return Err(DataError::format(
                        path,
                        format!("line {line_no}: label {field} out of range 0..10"),
                    ));
                }
                labels.push(v as usize);
            } else {
                if !(0.0..=DIGIT_MAX as f64).contains(&v) {
                    return Err(DataError::format(
                        path,
                        format!(
                            "line {line_no}, column {}: pixel {field} out of range 0..=16",
                            c + 1
                        ),
                    ));
                }
                pixels.push(v as f32 / DIGIT_MAX);
            }
        }
    }
    let n = labels.len();
    if n == 0 {
        return Err(DataError::format(
            path,
            "a header but no data rows: the file holds no digit",
        ));
    }
    ImageSet::new(Tensor::from_vec(pixels, &[n, 1, 8, 8])?, labels, 10)
}

/// Read a digits CSV file (`.csv` or `.csv.gz`, with or without header).
pub fn load_digits_csv(path: &Path) -> Result<ImageSet> {
    parse_digits_csv(&read_text(path)?, path)
}

/// scikit-learn's 8x8 digits: 1,797 images `[1, 8, 8]`.
pub struct Digits;

impl Digits {
    /// The dataset's folder name under a data root.
    pub const NAME: &'static str = "digits";
    /// The file it needs.
    pub const FILES: [&'static str; 1] = ["digits.csv.gz"];

    /// Load `digits.csv.gz` (or `digits.csv`) from `dir`.
    pub fn load(dir: &Path) -> Result<ImageSet> {
        let path = locate_file(dir, Digits::FILES[0]).unwrap_or_else(|| dir.join(Digits::FILES[0]));
        load_digits_csv(&path)
    }

    /// Find the digits (`--data-dir` > `TINYTORCH_DATA` > `./data`) and load them.
    pub fn find(cli_dir: Option<&Path>) -> Result<ImageSet> {
        Digits::load(&resolve_dataset_dir(cli_dir, Digits::NAME, &Digits::FILES)?)
    }
}

/// TinyDigits: 1,000 training and 200 test 8x8 digits (100 and 20 per class).
#[derive(Clone, Debug)]
pub struct TinyDigits {
    /// 1,000 images.
    pub train: ImageSet,
    /// 200 images.
    pub test: ImageSet,
}

impl TinyDigits {
    /// The dataset's folder name under a data root.
    pub const NAME: &'static str = "tinydigits";
    /// The files it needs.
    pub const FILES: [&'static str; 2] = ["train.csv", "test.csv"];

    /// Load `train.csv` and `test.csv` from `dir` (e.g. `tinydigits/` or
    /// `tinydigits/tinytorch_seed42/`).
    pub fn load(dir: &Path) -> Result<TinyDigits> {
        let load =
            |name: &str| load_digits_csv(&locate_file(dir, name).unwrap_or_else(|| dir.join(name)));
        Ok(TinyDigits {
            train: load(TinyDigits::FILES[0])?,
            test: load(TinyDigits::FILES[1])?,
        })
    }

    /// Find TinyDigits (`--data-dir` > `TINYTORCH_DATA` > `./data`) and load it.
    pub fn find(cli_dir: Option<&Path>) -> Result<TinyDigits> {
        TinyDigits::load(&resolve_dataset_dir(
            cli_dir,
            TinyDigits::NAME,
            &TinyDigits::FILES,
        )?)
    }
}
