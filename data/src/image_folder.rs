//! `ImageFolder`: a folder of your own images, one sub-folder per class, the layout PyTorch
//! users know from `torchvision.datasets.ImageFolder`.
//!
//! ```text
//! root/cat/0001.png          root/train/cat/0001.png
//! root/cat/0002.jpg    or    root/train/dog/...
//! root/dog/...               root/test/cat/...   root/test/dog/...
//! ```
//!
//! Classes are the sub-folder names in sorted order (label 0 is the first). With `train/` and
//! `test/` sub-folders those are the split; otherwise a seeded, per-class split holds out
//! `test_fraction` of each class. PNG and JPEG files are decoded (other files are skipped and
//! counted), converted to the channel count asked for and resized (bilinear) to one size, so a
//! folder of photos of mixed sizes becomes one `[N, C, H, W]` tensor in `[0, 1]`.
//!
//! Hostile folders get clear errors: an empty class, a file that does not decode (named, with
//! the decoder's reason), train and test with different classes, an image whose header claims
//! more pixels than [`ImageFolderOptions::max_pixels`] (refused before decoding).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits};
use rayon::prelude::*;
use tensor::random::TensorRng;

use crate::error::{DataError, Result};
use crate::images::ImageSet;

/// Extensions decoded (compared lowercase).
const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];

/// How an image folder becomes tensors.
#[derive(Clone, Debug)]
pub struct ImageFolderOptions {
    /// `[height, width]` every image is resized to; `None`: the most common size in the folder,
    /// scaled down (aspect kept) so its longer side is at most `max_side`.
    pub size: Option<[usize; 2]>,
    /// With `size: None`, the longest side the chosen size may have (`None`: no cap).
    pub max_side: Option<usize>,
    /// 1 (grayscale) or 3 (RGB); `None`: 1 when every image is grayscale, else 3.
    pub channels: Option<usize>,
    /// Share of each class held out for testing when the folder has no `train/`/`test/` split.
    pub test_fraction: f64,
    /// Seed of the held-out split.
    pub seed: u64,
    /// Most pixels (width x height) one image may declare; larger files are refused unread.
    pub max_pixels: u64,
}

impl Default for ImageFolderOptions {
    fn default() -> Self {
        ImageFolderOptions {
            size: None,
            max_side: None,
            channels: None,
            test_fraction: 0.2,
            seed: 0,
            max_pixels: 50_000_000,
        }
    }
}

/// How the test images were chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FolderSplit {
    /// The folder's own `train/` and `test/` sub-folders.
    Folders,
    /// A seeded per-class split of one folder.
    Seeded,
}

/// A loaded image folder.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    /// Class names (sub-folder names), label `i` is `classes[i]`.
    pub classes: Vec<String>,
    /// Training images.
    pub train: ImageSet,
    /// Held-out images.
    pub test: ImageSet,
    /// Where the test images came from.
    pub split: FolderSplit,
    /// How many images were resized to fit `[height, width]`.
    pub resized: usize,
    /// Files skipped because their extension is not an image's.
    pub skipped: usize,
}

/// One image file and its class.
struct Entry {
    path: PathBuf,
    label: usize,
}

impl ImageFolder {
    /// Read `root` (see the module docs for the layouts).
    pub fn load(root: &Path, options: &ImageFolderOptions) -> Result<ImageFolder> {
        check_options(options)?;
        if !root.is_dir() {
            let reason = if root.exists() {
                "is not a directory (an image folder has one sub-folder per class)"
            } else {
                "does not exist"
            };
            return Err(DataError::format(root, reason));
        }
        let train_dir = root.join("train");
        let test_dir = root.join("test");
        let mut skipped = 0;
        let (classes, train, test, split) = if train_dir.is_dir() && test_dir.is_dir() {
            let (classes, train) = scan_classes(&train_dir, &mut skipped)?;
            let (test_classes, test) = scan_classes(&test_dir, &mut skipped)?;
            if test_classes != classes {
                return Err(DataError::format(
                    root,
                    format!(
                        "train/ has classes {classes:?} but test/ has {test_classes:?}: both need the same class folders"
                    ),
                ));
            }
            (classes, train, test, FolderSplit::Folders)
        } else {
            let (classes, all) = scan_classes(root, &mut skipped)?;
            let (train, test) = seeded_split(all, classes.len(), options)?;
            (classes, train, test, FolderSplit::Seeded)
        };
        // Headers first (sizes and colour), then one image at a time into the output buffer:
        // memory stays the size of the result, not of the decoded photos.
        let headers = train
            .iter()
            .chain(&test)
            .map(|e| read_header(&e.path, options.max_pixels))
            .collect::<Result<Vec<Header>>>()?;
        let size = options
            .size
            .unwrap_or_else(|| capped(most_common_size(&headers), options.max_side));
        let channels = options
            .channels
            .unwrap_or(if headers.iter().all(|h| h.grayscale) {
                1
            } else {
                3
            });
        let resized = headers.iter().filter(|h| h.size != size).count();
        let n = classes.len();
        Ok(ImageFolder {
            train: to_image_set(&train, size, channels, n, options.max_pixels)?,
            test: to_image_set(&test, size, channels, n, options.max_pixels)?,
            classes,
            split,
            resized,
            skipped,
        })
    }
}

fn check_options(options: &ImageFolderOptions) -> Result<()> {
    if !(options.test_fraction > 0.0 && options.test_fraction < 1.0) {
        return Err(DataError::invalid(
            "ImageFolder",
            format!(
                "test_fraction must be in (0, 1), got {}",
                options.test_fraction
            ),
        ));
    }
    if let Some(c) = options.channels {
        if c != 1 && c != 3 {
            return Err(DataError::invalid(
                "ImageFolder",
                format!("channels must be 1 (grayscale) or 3 (RGB), got {c}"),
            ));
        }
    }
    if options.max_side == Some(0) {
        return Err(DataError::invalid(
            "ImageFolder",
            "max_side must be positive",
        ));
    }
    if let Some([h, w]) = options.size {
        if h == 0 || w == 0 || (h as u64) * (w as u64) > options.max_pixels {
            return Err(DataError::invalid(
                "ImageFolder",
                format!(
                    "size {h}x{w} must be positive and at most {} pixels",
                    options.max_pixels
                ),
            ));
        }
    }
    Ok(())
}

/// The sorted class folders of `dir` and every image file in them (sorted by path).
fn scan_classes(dir: &Path, skipped: &mut usize) -> Result<(Vec<String>, Vec<Entry>)> {
    let mut class_dirs: Vec<(String, PathBuf)> = read_dir_sorted(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            (!name.starts_with('.')).then_some((name, p))
        })
        .collect();
    class_dirs.sort();
    if class_dirs.is_empty() {
        return Err(DataError::format(
            dir,
            "has no class sub-folders (expected DIR/CLASS/IMAGE.png, one folder per class)",
        ));
    }
    let mut entries = Vec::new();
    for (label, (name, class_dir)) in class_dirs.iter().enumerate() {
        let before = entries.len();
        for path in read_dir_sorted(class_dir)? {
            if !path.is_file() {
                continue;
            }
            let is_image = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
            if is_image {
                entries.push(Entry { path, label });
            } else {
                *skipped += 1;
            }
        }
        if entries.len() == before {
            return Err(DataError::format(
                class_dir,
                format!("class '{name}' has no images (.png, .jpg or .jpeg)"),
            ));
        }
    }
    Ok((class_dirs.into_iter().map(|(n, _)| n).collect(), entries))
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .map(|entry| entry.map(|e| e.path()).map_err(|e| DataError::io(dir, e)))
        .collect::<Result<Vec<_>>>()?;
    paths.sort();
    Ok(paths)
}

/// Hold out `test_fraction` of each class (at least one image, and at least one left to
/// train on), chosen by a seeded shuffle.
fn seeded_split(
    entries: Vec<Entry>,
    classes: usize,
    options: &ImageFolderOptions,
) -> Result<(Vec<Entry>, Vec<Entry>)> {
    let mut by_class: Vec<Vec<Entry>> = (0..classes).map(|_| Vec::new()).collect();
    for e in entries {
        by_class[e.label].push(e);
    }
    let mut rng = TensorRng::new(options.seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for mut members in by_class {
        if members.len() < 2 {
            let dir = members[0].path.parent().unwrap_or(Path::new("."));
            return Err(DataError::format(
                dir,
                "has 1 image: a held-out split needs at least 2 per class (or use train/ and test/ folders)",
            ));
        }
        rng.shuffle(&mut members);
        let held_out = ((members.len() as f64 * options.test_fraction).round() as usize)
            .clamp(1, members.len() - 1);
        let kept = members.split_off(held_out);
        test.extend(members);
        train.extend(kept);
    }
    Ok((train, test))
}

/// What a file's header says.
struct Header {
    /// `[height, width]`.
    size: [usize; 2],
    grayscale: bool,
}

fn open_image(path: &Path) -> Result<ImageReader<std::io::BufReader<std::fs::File>>> {
    ImageReader::open(path)
        .map_err(|e| DataError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))
}

fn undecodable(path: &Path, e: image::ImageError) -> DataError {
    DataError::format(path, format!("cannot be decoded as an image: {e}"))
}

/// Size and colour from the header alone, refusing more than `max_pixels`.
fn read_header(path: &Path, max_pixels: u64) -> Result<Header> {
    let decoder = open_image(path)?
        .into_decoder()
        .map_err(|e| undecodable(path, e))?;
    let (w, h) = decoder.dimensions();
    if w as u64 * h as u64 > max_pixels {
        return Err(DataError::format(
            path,
            format!("declares {w}x{h} pixels, more than the limit of {max_pixels}"),
        ));
    }
    Ok(Header {
        size: [h as usize, w as usize],
        grayscale: decoder.color_type().channel_count() <= 2,
    })
}

/// Decode one file, with the decoder limited to `max_pixels` worth of memory.
fn decode(path: &Path, max_pixels: u64) -> Result<DynamicImage> {
    let mut reader = open_image(path)?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(16));
    reader.limits(limits);
    reader.decode().map_err(|e| undecodable(path, e))
}

/// The `[height, width]` most images have (ties: the smallest).
fn most_common_size(headers: &[Header]) -> [usize; 2] {
    let mut counts: BTreeMap<[usize; 2], usize> = BTreeMap::new();
    for h in headers {
        *counts.entry(h.size).or_default() += 1;
    }
    let best = counts.values().copied().max().unwrap_or(0);
    counts
        .into_iter()
        .find(|&(_, c)| c == best)
        .map(|(size, _)| size)
        .unwrap_or([1, 1])
}

/// `[h, w]` scaled down (aspect kept, each side at least 1) so the longer side is at most `max_side`.
fn capped([h, w]: [usize; 2], max_side: Option<usize>) -> [usize; 2] {
    match max_side {
        Some(m) if h.max(w) > m => {
            let scale = m as f64 / h.max(w) as f64;
            let side = |x: usize| ((x as f64 * scale).round() as usize).clamp(1, m);
            [side(h), side(w)]
        }
        _ => [h, w],
    }
}

/// Decode, resize and convert each image into one `[N, C, H, W]` set.
fn to_image_set(
    entries: &[Entry],
    [h, w]: [usize; 2],
    channels: usize,
    num_classes: usize,
    max_pixels: u64,
) -> Result<ImageSet> {
    let plane = h * w;
    let mut pixels = vec![0u8; entries.len() * channels * plane];
    pixels
        .par_chunks_exact_mut(channels * plane)
        .zip(entries)
        .try_for_each(|(out, entry)| -> Result<()> {
            let im = decode(&entry.path, max_pixels)?;
            let fitted = if [im.height() as usize, im.width() as usize] == [h, w] {
                im
            } else {
                im.resize_exact(w as u32, h as u32, FilterType::Triangle)
            };
            if channels == 1 {
                out.copy_from_slice(fitted.to_luma8().as_raw());
            } else {
                // Interleaved RGB (HWC) to planes (CHW).
                for (i, px) in fitted.to_rgb8().as_raw().chunks_exact(3).enumerate() {
                    for (c, &v) in px.iter().enumerate() {
                        out[c * plane + i] = v;
                    }
                }
            }
            Ok(())
        })?;
    let labels = entries.iter().map(|e| e.label).collect();
    ImageSet::from_u8(
        &pixels,
        [entries.len(), channels, h, w],
        255,
        labels,
        num_classes,
    )
}
