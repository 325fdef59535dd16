//! `ImageSet`: labelled images in memory, the common result of the MNIST, CIFAR-10 and digits
//! readers.

use tensor::Tensor;

use crate::dataset::{Targets, TensorDataset};
use crate::error::{DataError, Result};

/// Labelled images: pixels scaled to `[0, 1]` in one `[N, C, H, W]` tensor, one label per image.
#[derive(Clone, Debug)]
pub struct ImageSet {
    /// Pixels in `[0, 1]`, shape `[N, C, H, W]`.
    pub images: Tensor,
    /// Class index of each image, each below `num_classes`.
    pub labels: Vec<usize>,
    /// The number of classes.
    pub num_classes: usize,
}

impl ImageSet {
    /// Build from 8-bit pixels `[N, C, H, W]` scaled by `1 / max_value` (255 for photos, 16 for
    /// the 8x8 digits). Checks counts and label range.
    pub fn from_u8(
        pixels: &[u8],
        shape: [usize; 4],
        max_value: u8,
        labels: Vec<usize>,
        num_classes: usize,
    ) -> Result<Self> {
        if max_value == 0 {
            return Err(DataError::invalid(
                "ImageSet::from_u8",
                "max_value must be positive",
            ));
        }
        // One pass from bytes to scaled floats (division is exact to the nearest f32 and
        // vectorizes; the pass is bound by writing the new buffer, not by arithmetic).
        let scale = max_value as f32;
        let values: Vec<f32> = pixels.iter().map(|&b| b as f32 / scale).collect();
        ImageSet::new(Tensor::from_vec(values, &shape)?, labels, num_classes)
    }

    /// Wrap images `[N, C, H, W]` and their labels.
    pub fn new(images: Tensor, labels: Vec<usize>, num_classes: usize) -> Result<Self> {
        if images.ndim() != 4 || images.shape()[0] != labels.len() {
            return Err(DataError::invalid(
                "ImageSet::new",
                format!(
                    "needs images [N, C, H, W] and N labels, got shape {:?} and {} labels",
                    images.shape(),
                    labels.len()
                ),
            ));
        }
        if let Some((i, l)) = labels.iter().enumerate().find(|(_, &l)| l >= num_classes) {
            return Err(DataError::invalid(
                "ImageSet::new",
                format!("label {l} out of range 0..{num_classes} at item {i}"),
            ));
        }
        Ok(ImageSet {
            images,
            labels,
            num_classes,
        })
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `[C, H, W]` of one image.
    pub fn image_shape(&self) -> [usize; 3] {
        let s = self.images.shape();
        [s[1], s[2], s[3]]
    }

    /// How many images each class has.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &l in &self.labels {
            counts[l] += 1;
        }
        counts
    }

    /// A dataset of `[C, H, W]` images with class targets (no copy of the pixels; use
    /// [`TensorDataset::with_sample_shape`] for flat vectors).
    pub fn to_dataset(&self) -> Result<TensorDataset> {
        TensorDataset::new(self.images.clone(), Targets::Classes(self.labels.clone()))
    }
}
