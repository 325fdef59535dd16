//! Grader for the image transforms, against hand-computed values.

use data::transforms::{channel_stats, hflip};
use data::{Normalize, RandomCrop, RandomHorizontalFlip, Transform};
use tensor::{Tensor, TensorRng};

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).unwrap()
}

/// Normalize subtracts the mean and divides by the std, one pair for all channels or one per
/// channel, on single images and batches.
#[test]
fn normalize_global_and_per_channel() {
    let n = Normalize::new(&[0.5], &[0.25]).unwrap();
    let out = n.normalize(&t(&[0.0, 0.5, 1.0, 0.75], &[1, 2, 2])).unwrap();
    assert_eq!(out.to_vec(), vec![-2.0, 0.0, 2.0, 1.0]);

    // Two channels of 1x2 pixels, in a batch of 2.
    let n = Normalize::new(&[1.0, 10.0], &[2.0, 5.0]).unwrap();
    let x = t(&[1.0, 3.0, 10.0, 20.0, 5.0, -1.0, 0.0, 15.0], &[2, 2, 1, 2]);
    let out = n.normalize(&x).unwrap();
    assert_eq!(out.to_vec(), vec![0.0, 1.0, 0.0, 2.0, 2.0, -1.0, -2.0, 1.0]);
    assert_eq!(out.shape(), &[2, 2, 1, 2]);
    // Same through the Transform trait on one sample [C, H, W].
    let mut rng = TensorRng::new(0);
    let s = n
        .apply(&t(&[1.0, 3.0, 10.0, 20.0], &[2, 1, 2]), &mut rng)
        .unwrap();
    assert_eq!(s.to_vec(), vec![0.0, 1.0, 0.0, 2.0]);

    assert!(n.normalize(&t(&[1.0; 6], &[3, 1, 2])).is_err());
    assert!(Normalize::new(&[0.0], &[0.0]).is_err());
    assert!(Normalize::new(&[0.0, 1.0], &[1.0]).is_err());
}

/// Per-channel mean and standard deviation of a small batch equal the hand-computed values.
#[test]
fn channel_stats_match_hand_values() {
    // Channel 0 holds 1, 3, 5, 7; channel 1 holds 2 everywhere.
    let x = t(&[1.0, 3.0, 2.0, 2.0, 5.0, 7.0, 2.0, 2.0], &[2, 2, 1, 2]);
    let (mean, std) = channel_stats(&x).unwrap();
    assert_eq!(mean, vec![4.0, 2.0]);
    assert!((std[0] - 5f32.sqrt()).abs() < 1e-6);
    assert_eq!(std[1], 0.0);
}

/// A crop at a given offset reads zeros where it covers the padding and the image elsewhere.
#[test]
fn crop_at_pads_with_zeros() {
    // 1 channel, 2x2 image [[1, 2], [3, 4]], padding 1 -> 4x4 padded; 2x2 crops.
    let img = t(&[1.0, 2.0, 3.0, 4.0], &[1, 2, 2]);
    let crop = RandomCrop::new(2, 2, 1);
    assert_eq!(
        crop.crop_at(&img, 0, 0).unwrap().to_vec(),
        vec![0.0, 0.0, 0.0, 1.0]
    );
    assert_eq!(
        crop.crop_at(&img, 1, 1).unwrap().to_vec(),
        vec![1.0, 2.0, 3.0, 4.0]
    );
    assert_eq!(
        crop.crop_at(&img, 2, 1).unwrap().to_vec(),
        vec![3.0, 4.0, 0.0, 0.0]
    );
    assert_eq!(
        crop.crop_at(&img, 1, 2).unwrap().to_vec(),
        vec![2.0, 0.0, 4.0, 0.0]
    );
    assert_eq!(crop.crop_at(&img, 1, 1).unwrap().shape(), &[1, 2, 2]);
    assert!(crop.crop_at(&img, 3, 0).is_err());
    // Two channels crop the same window.
    let img2 = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], &[2, 2, 2]);
    let out = RandomCrop::new(1, 2, 0).crop_at(&img2, 1, 0).unwrap();
    assert_eq!(out.to_vec(), vec![3.0, 4.0, 7.0, 8.0]);
    assert_eq!(out.shape(), &[2, 1, 2]);
}

/// Random crops reach every allowed offset over many draws and are reproducible from the seed.
#[test]
fn random_crop_covers_every_offset_and_is_seeded() {
    let img = t(&(1..=9).map(|v| v as f32).collect::<Vec<_>>(), &[1, 3, 3]);
    let crop = RandomCrop::new(3, 3, 1);
    let mut rng = TensorRng::new(5);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..400 {
        let out = crop.apply(&img, &mut rng).unwrap();
        assert_eq!(out.shape(), &[1, 3, 3]);
        // The centre pixel of the crop is one of the image's (a shift of at most 1).
        let v = out.to_vec();
        assert!(v[4] >= 1.0);
        seen.insert(v.iter().map(|x| *x as i32).collect::<Vec<_>>());
    }
    assert_eq!(seen.len(), 9, "all 3x3 offsets appear");
    let a = crop.apply(&img, &mut TensorRng::new(1)).unwrap();
    let b = crop.apply(&img, &mut TensorRng::new(1)).unwrap();
    assert_eq!(a, b);
    assert!(RandomCrop::new(6, 6, 1).apply(&img, &mut rng).is_err());
}

/// A horizontal flip reverses each row, and the random flip with p = 0 never flips, with p = 1
/// always.
#[test]
fn horizontal_flip() {
    let img = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[1, 2, 3]);
    assert_eq!(
        hflip(&img).unwrap().to_vec(),
        vec![3.0, 2.0, 1.0, 6.0, 5.0, 4.0]
    );
    let mut rng = TensorRng::new(0);
    let never = RandomHorizontalFlip::new(0.0);
    let always = RandomHorizontalFlip::new(1.0);
    assert_eq!(never.apply(&img, &mut rng).unwrap(), img);
    assert_eq!(always.apply(&img, &mut rng).unwrap(), hflip(&img).unwrap());
    let half = RandomHorizontalFlip::new(0.5);
    let flipped = (0..1000)
        .filter(|_| half.apply(&img, &mut rng).unwrap() != img)
        .count();
    assert!((400..600).contains(&flipped), "{flipped}");
    assert!(hflip(&t(&[1.0, 2.0], &[2])).is_err());
}
