//! A generated image task for when no dataset is at hand: 16x16 grayscale pictures of eight
//! shapes (horizontal bar, vertical bar, two diagonals, square outline, filled disc, plus sign,
//! ring), each at a random place and size, with random brightness and Gaussian pixel noise.
//!
//! It is the project's own data, so every run (and every test) has a real classification task
//! with a held-out split: the test images are drawn from a different random stream than the
//! training images. An MLP reads it in seconds; a CNN, which sees strokes wherever they are,
//! reads it better.

use data::ImageSet;
use tensor::{Tensor, TensorRng};

use crate::vision::ImageData;

/// Image side in pixels.
pub const SHAPES_SIDE: usize = 16;
/// The classes, in label order.
pub const SHAPE_NAMES: [&str; 8] = [
    "horizontal bar",
    "vertical bar",
    "diagonal",
    "anti-diagonal",
    "square",
    "disc",
    "plus",
    "ring",
];

/// Draw one image of class `label` into `pixels` (`SHAPES_SIDE * SHAPES_SIDE`, row-major).
fn draw(label: usize, pixels: &mut [f32], rng: &mut TensorRng) {
    let side = SHAPES_SIDE as i64;
    let size = 3 + rng.below(3) as i64; // half-extent 3..=5
    let cx = size + rng.below((side - 2 * size) as usize) as i64;
    let cy = size + rng.below((side - 2 * size) as usize) as i64;
    let ink = 0.6 + 0.4 * rng.next_f64() as f32;
    let mut put = |x: i64, y: i64| {
        if (0..side).contains(&x) && (0..side).contains(&y) {
            let p = &mut pixels[(y * side + x) as usize];
            *p = p.max(ink);
        }
    };
    for t in -size..=size {
        match label {
            0 => put(cx + t, cy),
            1 => put(cx, cy + t),
            2 => put(cx + t, cy + t),
            3 => put(cx + t, cy - t),
            4 => {
                put(cx + t, cy - size);
                put(cx + t, cy + size);
                put(cx - size, cy + t);
                put(cx + size, cy + t);
            }
            6 => {
                put(cx + t, cy);
                put(cx, cy + t);
            }
            _ => {
                for u in -size..=size {
                    let r = ((t * t + u * u) as f64).sqrt();
                    let inside = if label == 5 {
                        r <= size as f64
                    } else {
                        (r - size as f64).abs() < 0.6
                    };
                    if inside {
                        put(cx + t, cy + u);
                    }
                }
            }
        }
    }
}

/// `count` labelled images (classes in turn, so every class has `count / 8` or one more),
/// with Gaussian noise of standard deviation `noise` added and pixels clipped to `[0, 1]`.
pub fn shape_images(count: usize, noise: f32, seed: u64) -> Result<ImageSet, data::DataError> {
    let mut rng = TensorRng::new(seed);
    let area = SHAPES_SIDE * SHAPES_SIDE;
    let mut pixels = vec![0.0f32; count * area];
    let mut labels = Vec::with_capacity(count);
    for (i, image) in pixels.chunks_mut(area).enumerate() {
        let label = i % SHAPE_NAMES.len();
        draw(label, image, &mut rng);
        for p in image.iter_mut() {
            *p = (*p + noise * rng.standard_normal() as f32).clamp(0.0, 1.0);
        }
        labels.push(label);
    }
    let images = Tensor::from_vec(pixels, &[count, 1, SHAPES_SIDE, SHAPES_SIDE])?;
    ImageSet::new(images, labels, SHAPE_NAMES.len())
}

/// The `shapes` task: `train` training and `test` held-out images (independent random
/// streams derived from `seed`), noise 0.25.
pub fn shapes_task(train: usize, test: usize, seed: u64) -> Result<ImageData, data::DataError> {
    Ok(ImageData {
        name: "shapes".to_string(),
        train: shape_images(train, 0.25, seed)?,
        test: shape_images(test, 0.25, seed ^ 0x5eed_7e57)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_balanced_and_in_range() {
        let a = shape_images(80, 0.25, 7).unwrap();
        let b = shape_images(80, 0.25, 7).unwrap();
        assert_eq!(a.images.to_vec(), b.images.to_vec());
        assert_eq!(a.class_counts(), vec![10; 8]);
        assert_eq!(a.image_shape(), [1, SHAPES_SIDE, SHAPES_SIDE]);
        assert!(a.images.to_vec().iter().all(|v| (0.0..=1.0).contains(v)));
        let c = shape_images(80, 0.25, 8).unwrap();
        assert_ne!(a.images.to_vec(), c.images.to_vec());
    }

    #[test]
    fn noiseless_shapes_differ_by_class() {
        // Without noise, the ink of a bar is one line; of a disc, a filled area.
        let set = shape_images(8, 0.0, 1).unwrap();
        let v = set.images.to_vec();
        let area = SHAPES_SIDE * SHAPES_SIDE;
        let inked = |i: usize| {
            v[i * area..(i + 1) * area]
                .iter()
                .filter(|&&p| p > 0.0)
                .count()
        };
        assert!((7..=11).contains(&inked(0)), "bar has {} pixels", inked(0));
        assert!(
            inked(5) > 2 * inked(0),
            "disc {} vs bar {}",
            inked(5),
            inked(0)
        );
        // Train and test streams differ.
        let task = shapes_task(16, 16, 3).unwrap();
        assert_ne!(task.train.images.to_vec(), task.test.images.to_vec());
    }
}
