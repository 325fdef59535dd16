//! Sample transforms for images: normalization and seeded augmentation.
//!
//! Images are `[C, H, W]` (or `[H, W]`); batches `[N, C, H, W]` work with [`Normalize`] too.
//! Random transforms draw from the generator the [`DataLoader`](crate::DataLoader) hands them, which
//! is derived from the loader's seed, the epoch and the batch: augmentation is reproducible.

use tensor::{Tensor, TensorRng};

use crate::error::{DataError, Result};

/// A function applied to each input sample before collation.
pub trait Transform: Send + Sync {
    /// Transform one input. Random transforms draw from `rng`; deterministic ones ignore it.
    fn apply(&self, input: &Tensor, rng: &mut TensorRng) -> Result<Tensor>;
}

/// `(x - mean[c]) / std[c]` per channel `c` (the third-last axis), or with one mean and std for
/// every element.
#[derive(Clone, Debug)]
pub struct Normalize {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Normalize {
    /// Per-channel statistics (`mean.len() == std.len()`, every std > 0). One value applies to all
    /// elements.
    pub fn new(mean: &[f32], std: &[f32]) -> Result<Self> {
        if mean.is_empty() || mean.len() != std.len() {
            return Err(DataError::invalid(
                "Normalize::new",
                format!(
                    "needs as many means as stds (at least one), got {} and {}",
                    mean.len(),
                    std.len()
                ),
            ));
        }
        if let Some(s) = std.iter().find(|s| !(**s > 0.0 && s.is_finite())) {
            return Err(DataError::invalid(
                "Normalize::new",
                format!("every std must be positive and finite, got {s}"),
            ));
        }
        Ok(Normalize {
            mean: mean.to_vec(),
            std: std.to_vec(),
        })
    }

    /// Normalize `x` (a sample `[C, H, W]`, a batch `[N, C, H, W]`, or anything with one global
    /// mean and std).
    pub fn normalize(&self, x: &Tensor) -> Result<Tensor> {
        let c = self.mean.len();
        let shape = x.shape();
        let mut v = x.to_vec();
        if c == 1 {
            let (m, inv) = (self.mean[0], 1.0 / self.std[0]);
            v.iter_mut().for_each(|e| *e = (*e - m) * inv);
        } else {
            let nd = shape.len();
            if nd < 3 || shape[nd - 3] != c {
                return Err(DataError::invalid(
                    "Normalize",
                    format!(
                        "{c} channel statistics need a [.., {c}, H, W] input, got shape {shape:?}"
                    ),
                ));
            }
            let plane = shape[nd - 2] * shape[nd - 1];
            for (k, block) in v.chunks_mut(plane.max(1)).enumerate() {
                let ch = k % c;
                let (m, inv) = (self.mean[ch], 1.0 / self.std[ch]);
                block.iter_mut().for_each(|e| *e = (*e - m) * inv);
            }
        }
        Ok(Tensor::from_vec(v, shape)?)
    }
}

impl Transform for Normalize {
    fn apply(&self, input: &Tensor, _rng: &mut TensorRng) -> Result<Tensor> {
        self.normalize(input)
    }
}

/// Mean and standard deviation of each channel of images `[N, C, H, W]` (computed in f64), e.g.
/// to build a [`Normalize`] from the training set.
pub fn channel_stats(images: &Tensor) -> Result<(Vec<f32>, Vec<f32>)> {
    let shape = images.shape();
    if shape.len() != 4 || shape[0] == 0 {
        return Err(DataError::invalid(
            "channel_stats",
            format!("needs non-empty images [N, C, H, W], got shape {shape:?}"),
        ));
    }
    let c = shape[1];
    let plane = shape[2] * shape[3];
    let data = images.contiguous();
    let v = data.as_slice().expect("contiguous");
    let mut sum = vec![0f64; c];
    let mut sq = vec![0f64; c];
    for (k, block) in v.chunks(plane.max(1)).enumerate() {
        let ch = k % c;
        for &e in block {
            sum[ch] += e as f64;
            sq[ch] += (e as f64) * (e as f64);
        }
    }
    let count = (shape[0] * plane) as f64;
    let mean: Vec<f32> = sum.iter().map(|s| (s / count) as f32).collect();
    let std: Vec<f32> = sum
        .iter()
        .zip(&sq)
        .map(|(s, q)| {
            let m = s / count;
            ((q / count - m * m).max(0.0)).sqrt() as f32
        })
        .collect();
    Ok((mean, std))
}

/// The height and width (last two axes) of an image, and the number of planes before them.
fn image_dims(op: &'static str, shape: &[usize]) -> Result<(usize, usize, usize)> {
    let nd = shape.len();
    if nd < 2 {
        return Err(DataError::invalid(
            op,
            format!("needs an image [C, H, W] or [H, W], got shape {shape:?}"),
        ));
    }
    let planes = shape[..nd - 2].iter().product();
    Ok((planes, shape[nd - 2], shape[nd - 1]))
}

/// Pad the image with `padding` zeros on every side, then cut a random `height x width` window.
#[derive(Clone, Debug)]
pub struct RandomCrop {
    /// Output height.
    pub height: usize,
    /// Output width.
    pub width: usize,
    /// Zeros added on each side before cropping.
    pub padding: usize,
}

impl RandomCrop {
    /// A crop to `height x width` after padding by `padding` (CIFAR-10: 32, 32, 4).
    pub fn new(height: usize, width: usize, padding: usize) -> Self {
        RandomCrop {
            height,
            width,
            padding,
        }
    }

    /// The crop whose top-left corner in the padded image is `(top, left)`.
    pub fn crop_at(&self, input: &Tensor, top: usize, left: usize) -> Result<Tensor> {
        // HINT: output pixel (y, x) comes from input pixel (top + y - padding, left + x - padding),
        // HINT: zero outside.
        // BEGIN SOLUTION
        let shape = input.shape().to_vec();
        let (planes, h, w) = image_dims("RandomCrop", &shape)?;
        let (ph, pw) = (h + 2 * self.padding, w + 2 * self.padding);
        if self.height > ph || self.width > pw || top + self.height > ph || left + self.width > pw {
            return Err(DataError::invalid(
                "RandomCrop",
                format!(
                    "a {}x{} window at ({top}, {left}) does not fit an image {h}x{w} padded by {}",
                    self.height, self.width, self.padding
                ),
            ));
        }
        let src = input.to_vec();
        let mut out = vec![0f32; planes * self.height * self.width];
        for p in 0..planes {
            for y in 0..self.height {
                let sy = (top + y) as isize - self.padding as isize;
                if sy < 0 || sy >= h as isize {
                    continue;
                }
                for x in 0..self.width {
                    let sx = (left + x) as isize - self.padding as isize;
                    if sx >= 0 && sx < w as isize {
                        out[(p * self.height + y) * self.width + x] =
                            src[(p * h + sy as usize) * w + sx as usize];
                    }
                }
            }
        }
        let mut out_shape = shape[..shape.len() - 2].to_vec();
        out_shape.extend_from_slice(&[self.height, self.width]);
        Ok(Tensor::from_vec(out, &out_shape)?)
        // END SOLUTION
    }
}

impl Transform for RandomCrop {
    fn apply(&self, input: &Tensor, rng: &mut TensorRng) -> Result<Tensor> {
        let (_, h, w) = image_dims("RandomCrop", input.shape())?;
        let (ph, pw) = (h + 2 * self.padding, w + 2 * self.padding);
        if self.height > ph || self.width > pw {
            return Err(DataError::invalid(
                "RandomCrop",
                format!(
                    "a {}x{} window does not fit an image {h}x{w} padded by {}",
                    self.height, self.width, self.padding
                ),
            ));
        }
        let top = rng.below(ph - self.height + 1);
        let left = rng.below(pw - self.width + 1);
        self.crop_at(input, top, left)
    }
}

/// Mirror the image left-right with probability `p`.
#[derive(Clone, Debug)]
pub struct RandomHorizontalFlip {
    /// Probability of flipping.
    pub p: f64,
}

impl RandomHorizontalFlip {
    /// Flip with probability `p` (usually 0.5).
    pub fn new(p: f64) -> Self {
        RandomHorizontalFlip { p }
    }
}

/// Mirror an image `[.., H, W]` left-right (reverse every row).
pub fn hflip(input: &Tensor) -> Result<Tensor> {
    // HINT: reverse every row of width W in the last dim: output (y, x) is input (y, W - 1 - x).
    // BEGIN SOLUTION
    let (_, _, w) = image_dims("hflip", input.shape())?;
    let mut v = input.to_vec();
    v.chunks_mut(w.max(1)).for_each(|row| row.reverse());
    Ok(Tensor::from_vec(v, input.shape())?)
    // END SOLUTION
}

impl Transform for RandomHorizontalFlip {
    fn apply(&self, input: &Tensor, rng: &mut TensorRng) -> Result<Tensor> {
        if rng.next_f64() < self.p {
            hflip(input)
        } else {
            image_dims("RandomHorizontalFlip", input.shape())?;
            Ok(input.clone())
        }
    }
}
