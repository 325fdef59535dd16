//! IDX files (the MNIST format), raw or gzip-compressed, and the MNIST loader.
//!
//! An IDX file is a big-endian header followed by the data:
//!
//! ```text
//! bytes 0-1   0x00 0x00
//! byte  2     element type (0x08 = unsigned byte, the only type MNIST uses)
//! byte  3     number of dimensions d
//! 4*d bytes   each dimension's size, u32 big-endian
//! the rest    prod(dims) elements in row-major order
//! ```
//!
//! So MNIST images start with the magic number `0x00000803` (bytes, 3 dimensions: N, 28, 28) and
//! labels with `0x00000801`. The reader checks the magic number, that the file is exactly as long as
//! the header says, that images and labels agree in count, and that every label is a digit.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::images::ImageSet;
use crate::io::{check_regular_file, locate_file, read_bytes_bounded, write_bytes, GZIP_MAGIC};
use crate::resolve::resolve_dataset_dir;

/// The IDX element type code for unsigned bytes.
pub const IDX_U8: u8 = 0x08;

/// A parsed IDX file of bytes: its dimensions and its data (borrowed from the file's bytes).
#[derive(Clone, Debug, PartialEq)]
pub struct IdxView<'a> {
    /// The size of each dimension.
    pub dims: Vec<usize>,
    /// `prod(dims)` elements, row-major.
    pub data: &'a [u8],
}

/// Parse the bytes of an IDX file of unsigned bytes with `expected_ndim` dimensions. `path` only
/// names the file in errors: a wrong magic number, a header or body shorter or longer than the
/// dimensions say.
pub fn parse_idx<'a>(bytes: &'a [u8], expected_ndim: usize, path: &Path) -> Result<IdxView<'a>> {
    // HINT: magic = u32 big-endian of bytes 0..4, must be 0x0800 | ndim; then ndim u32 sizes; then
    // HINT: exactly prod(sizes) bytes.
    // BEGIN SOLUTION
    if bytes.len() < 4 {
        return Err(DataError::format(
            path,
            format!(
                "truncated: {} bytes, too short for an IDX magic number",
                bytes.len()
            ),
        ));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let expected = ((IDX_U8 as u32) << 8) | expected_ndim as u32;
    if magic != expected {
        return Err(DataError::format(
            path,
            format!("magic number 0x{magic:08x}, expected 0x{expected:08x}"),
        ));
    }
    let header = 4 + 4 * expected_ndim;
    if bytes.len() < header {
        return Err(DataError::format(
            path,
            format!(
                "truncated: header of {expected_ndim} dimensions needs {header} bytes, found {}",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let body = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DataError::format(path, format!("dimensions {dims:?} overflow")))?;
    let total = header + body;
    if bytes.len() < total {
        return Err(DataError::format(
            path,
            format!(
                "truncated: dimensions {dims:?} need {total} bytes, found {}",
                bytes.len()
            ),
        ));
    }
    if bytes.len() > total {
        return Err(DataError::format(
            path,
            format!(
                "{} unexpected trailing bytes after the {total} bytes that dimensions {dims:?} describe",
                bytes.len() - total
            ),
        ));
    }
    Ok(IdxView {
        dims,
        data: &bytes[header..],
    })
    // END SOLUTION
}

/// The bytes of an IDX file of unsigned bytes with dimensions `dims` (the inverse of
/// [`parse_idx`]).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Result<Vec<u8>> {
    let n: usize = dims.iter().product();
    if n != data.len() || dims.len() > 255 || dims.iter().any(|&d| d > u32::MAX as usize) {
        return Err(DataError::invalid(
            "encode_idx",
            format!(
                "dimensions {dims:?} do not describe {} bytes (or do not fit IDX)",
                data.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(4 + 4 * dims.len() + data.len());
    out.extend_from_slice(&[0, 0, IDX_U8, dims.len() as u8]);
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    Ok(out)
}

/// Write an IDX file of unsigned bytes, gzip-compressed when `gzip` is true.
pub fn write_idx(path: &Path, dims: &[usize], data: &[u8], gzip: bool) -> Result<()> {
    write_bytes(path, &encode_idx(dims, data)?, gzip)
}

/// What the first bytes of an IDX file say: the total length its header declares, or (when the
/// header is short, has a wrong magic number or overflows) the bytes read, for the parser to name
/// the problem.
enum IdxHead {
    Declared(usize),
    Bad(Vec<u8>),
}

fn read_idx_head(path: &Path, ndim: usize) -> Result<IdxHead> {
    use std::io::{BufRead, Read};
    check_regular_file(path)?;
    let header = 4 + 4 * ndim;
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = std::io::BufReader::new(file);
    let gz = {
        let buf = reader.fill_buf().map_err(|e| DataError::io(path, e))?;
        buf.len() >= 2 && buf[..2] == GZIP_MAGIC
    };
    let mut first = Vec::with_capacity(header);
    let res = if gz {
        flate2::read::MultiGzDecoder::new(reader)
            .take(header as u64)
            .read_to_end(&mut first)
    } else {
        reader.take(header as u64).read_to_end(&mut first)
    };
    if let Err(e) = res {
        return Err(DataError::format(
            path,
            format!("corrupt or truncated gzip stream in the IDX header: {e}"),
        ));
    }
    if first.len() < header {
        return Ok(IdxHead::Bad(first));
    }
    let magic = u32::from_be_bytes([first[0], first[1], first[2], first[3]]);
    if magic != ((IDX_U8 as u32) << 8) | ndim as u32 {
        return Ok(IdxHead::Bad(first));
    }
    let total = first[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .try_fold(1usize, |acc, d| acc.checked_mul(d))
        .and_then(|b| b.checked_add(header));
    Ok(match total {
        Some(t) => IdxHead::Declared(t),
        None => IdxHead::Bad(first),
    })
}

/// Read an IDX file of unsigned bytes with `ndim` dimensions (raw or gzip), taking no more bytes
/// than its header declares: a file (or a gzip stream that inflates) past that is refused after
/// reading one byte more, never read whole. Parse the result with [`parse_idx`].
pub fn read_idx_file(path: &Path, ndim: usize) -> Result<Vec<u8>> {
    match read_idx_head(path, ndim)? {
        IdxHead::Declared(total) => read_bytes_bounded(path, Some(total)),
        IdxHead::Bad(prefix) => Ok(prefix),
    }
}

/// Read an images file (3 dimensions `N, H, W`) and a labels file (1 dimension `N`) into an
/// [`ImageSet`] of `[N, 1, H, W]` images scaled to `[0, 1]`.
pub fn load_idx_pair(
    images_path: &Path,
    labels_path: &Path,
    num_classes: usize,
) -> Result<ImageSet> {
    let (image_bytes, label_bytes) = rayon::join(
        || read_idx_file(images_path, 3),
        || read_idx_file(labels_path, 1),
    );
    let (image_bytes, label_bytes) = (image_bytes?, label_bytes?);
    let images = parse_idx(&image_bytes, 3, images_path)?;
    let labels = parse_idx(&label_bytes, 1, labels_path)?;
    let (n, h, w) = (images.dims[0], images.dims[1], images.dims[2]);
    if n == 0 || h == 0 || w == 0 {
        return Err(DataError::format(
            images_path,
            format!("holds {n} images of {h}x{w} pixels: an images file needs at least one image of at least 1x1 pixels"),
        ));
    }
    if labels.dims[0] != n {
        return Err(DataError::CountMismatch {
            labels_path: labels_path.to_path_buf(),
            labels: labels.dims[0],
            images_path: images_path.to_path_buf(),
            images: n,
        });
    }
    if let Some((i, &l)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= num_classes)
    {
        return Err(DataError::format(
            labels_path,
            format!("label {l} out of range 0..{num_classes} at item {i}"),
        ));
    }
    let labels: Vec<usize> = labels.data.iter().map(|&l| l as usize).collect();
    ImageSet::from_u8(images.data, [n, 1, h, w], 255, labels, num_classes)
}

/// Which half of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The training set.
    Train,
    /// The test set.
    Test,
}

/// MNIST: 60,000 training and 10,000 test images of handwritten digits, `[N, 1, 28, 28]` in
/// `[0, 1]`.
#[derive(Clone, Debug)]
pub struct Mnist {
    /// 60,000 images.
    pub train: ImageSet,
    /// 10,000 images.
    pub test: ImageSet,
}

impl Mnist {
    /// The dataset's folder name under a data root.
    pub const NAME: &'static str = "mnist";
    /// The four files (each may also be uncompressed, without `.gz`).
    pub const FILES: [&'static str; 4] = [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ];

    /// Load both splits from `dir`, which holds the four files.
    pub fn load(dir: &Path) -> Result<Mnist> {
        let (train, test) = rayon::join(
            || Mnist::load_split(dir, Split::Train),
            || Mnist::load_split(dir, Split::Test),
        );
        Ok(Mnist {
            train: train?,
            test: test?,
        })
    }

    /// Load one split from `dir`.
    pub fn load_split(dir: &Path, split: Split) -> Result<ImageSet> {
        let (images, labels) = match split {
            Split::Train => (Mnist::FILES[0], Mnist::FILES[1]),
            Split::Test => (Mnist::FILES[2], Mnist::FILES[3]),
        };
        let find = |name: &str| -> Result<PathBuf> {
            locate_file(dir, name).ok_or_else(|| {
                DataError::io(
                    dir.join(name),
                    std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
                )
            })
        };
        load_idx_pair(&find(images)?, &find(labels)?, 10)
    }

    /// Find MNIST (`--data-dir` > `TINYTORCH_DATA` > `./data`, see [`resolve_dataset_dir`]) and
    /// load it.
    pub fn find(cli_dir: Option<&Path>) -> Result<Mnist> {
        Mnist::load(&resolve_dataset_dir(cli_dir, Mnist::NAME, &Mnist::FILES)?)
    }
}
