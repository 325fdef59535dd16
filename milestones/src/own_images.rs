//! `--images DIR`: the image milestones train on a folder of the user's own pictures (the
//! `ImageFolder` layout: one sub-folder per class, optional `train/` and `test/`).

use std::path::PathBuf;

use clap::Args;
use data::{FolderSplit, ImageFolder, ImageFolderOptions};

use crate::cli::{at_least, positive_finite, CommonArgs, Flag};
use crate::vision::{load_images, ImageData};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The longer side of the default input size: small enough for an MLP or a LeNet on a laptop.
pub const DEFAULT_MAX_SIDE: usize = 32;

/// Flags of an image milestone that reads a folder of the user's images.
#[derive(Args, Debug, Clone)]
pub struct ImageFolderArgs {
    /// Train on your own images: DIR/CLASS/*.png|jpg (or DIR/train/CLASS/... and DIR/test/CLASS/...).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["dataset", "data_dir"])]
    pub images: Option<PathBuf>,
    /// Resize every image to PIXELS x PIXELS (default: the most common size, longer side at most 32).
    #[arg(long, value_name = "PIXELS", requires = "images", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub image_size: Option<u16>,
    /// Input channels: 1 (grayscale) or 3 (colour); default: 1 when every image is grayscale.
    #[arg(long, requires = "images", value_parser = clap::value_parser!(u8).range(1..=3))]
    pub channels: Option<u8>,
}

/// Epochs for a folder of `train_len` images: at least `min_epochs`, and enough passes for
/// about 300 optimizer steps (a few hundred images need many passes), at most 300.
pub fn default_epochs(train_len: usize, batch_size: usize, min_epochs: usize) -> usize {
    let steps_per_epoch = train_len.div_ceil(batch_size.max(1)).max(1);
    300usize.div_ceil(steps_per_epoch).clamp(min_epochs, 300)
}

impl ImageFolderArgs {
    /// The user's images when `--images` was given (printing what was read and how), else `None`.
    pub fn load(&self, seed: u64) -> BoxResult<Option<ImageData>> {
        let Some(dir) = &self.images else {
            return Ok(None);
        };
        // ImageFolder refuses a channel count other than 1 or 3 before reading anything.
        let channels = self.channels.map(usize::from);
        let options = ImageFolderOptions {
            size: self.image_size.map(|s| [s as usize, s as usize]),
            max_side: Some(DEFAULT_MAX_SIDE),
            channels,
            seed,
            ..ImageFolderOptions::default()
        };
        let folder = ImageFolder::load(dir, &options)?;
        let [c, h, w] = folder.train.image_shape();
        let split = match folder.split {
            FolderSplit::Folders => "its train/ and test/ folders".to_string(),
            FolderSplit::Seeded => format!(
                "a seeded split holding out {:.0}% of each class",
                100.0 * options.test_fraction
            ),
        };
        println!(
            "images from {}: {} classes {:?}, {} train / {} test by {split}; input {c}x{h}x{w} ({} resized{})",
            dir.display(),
            folder.classes.len(),
            folder.classes,
            folder.train.len(),
            folder.test.len(),
            folder.resized,
            if folder.skipped > 0 {
                format!(", {} non-image files skipped", folder.skipped)
            } else {
                String::new()
            }
        );
        Ok(Some(ImageData {
            name: "images".to_string(),
            train: folder.train,
            test: folder.test,
        }))
    }
}

/// What the image milestones check and load before training: the flags (`milestone` does not
/// use `--steps`; batch size and learning rate in range), then the user's folder when
/// `--images` was given, else the named dataset; the files read are listed.
pub fn checked_image_data(
    milestone: &str,
    common: &CommonArgs,
    images: &ImageFolderArgs,
    batch_size: usize,
    lr: f64,
) -> BoxResult<ImageData> {
    common.validate(milestone, &[Flag::Steps])?;
    at_least("--batch-size", batch_size, 1)?;
    positive_finite("--lr", lr, f64::MAX)?;
    let data = match images.load(common.seed)? {
        Some(own) => own,
        None => load_images(
            common.dataset.as_deref(),
            common.data_dir.as_deref(),
            common.quick,
        )?,
    };
    crate::guard::print_files_read();
    Ok(data)
}
