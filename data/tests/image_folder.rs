//! `ImageFolder` on generated folders: layouts, labels, pixel layout, resizing, and every
//! refusal of a hostile folder.

use std::path::{Path, PathBuf};

use data::{DataError, FolderSplit, ImageFolder, ImageFolderOptions};
use image::{GrayImage, Luma, Rgb, RgbImage};

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tt-image-folder-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `w x h` grayscale PNG of one value.
fn gray_png(path: &Path, w: u32, h: u32, value: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    GrayImage::from_pixel(w, h, Luma([value]))
        .save(path)
        .unwrap();
}

/// Two classes, `per_class` images each: "dark" (value 10+i) and "light" (200+i).
fn two_classes(root: &Path, per_class: u8) {
    for i in 0..per_class {
        gray_png(&root.join(format!("light/{i:03}.png")), 6, 4, 200 + i);
        gray_png(&root.join(format!("dark/{i:03}.png")), 6, 4, 10 + i);
    }
}

fn message(e: DataError) -> String {
    e.to_string()
}

/// Without train/test folders, a seeded split holds out the same share of every class, sorts class
/// names into labels, and keeps each image's pixels.
#[test]
fn seeded_split_holds_out_each_class_and_keeps_pixels() {
    let root = scratch("seeded");
    two_classes(&root, 10);
    let folder = ImageFolder::load(&root, &ImageFolderOptions::default()).unwrap();
    assert_eq!(folder.classes, vec!["dark", "light"]);
    assert_eq!(folder.split, FolderSplit::Seeded);
    assert_eq!((folder.train.len(), folder.test.len()), (16, 4));
    assert_eq!(folder.test.class_counts(), vec![2, 2]);
    assert_eq!(folder.train.image_shape(), [1, 4, 6]);
    // Every image is one value: dark ones below 20/255, light ones at least 200/255, and the
    // label says which.
    for set in [&folder.train, &folder.test] {
        let pixels = set.images.to_vec();
        for (i, &label) in set.labels.iter().enumerate() {
            let image = &pixels[i * 24..(i + 1) * 24];
            assert!(image.iter().all(|&p| p == image[0]));
            let v = (image[0] * 255.0).round() as u32;
            if label == 0 {
                assert!((10..20).contains(&v), "dark image with value {v}");
            } else {
                assert!((200..210).contains(&v), "light image with value {v}");
            }
        }
    }
    // The same seed gives the same split; another seed another one.
    let again = ImageFolder::load(&root, &ImageFolderOptions::default()).unwrap();
    assert_eq!(again.test.images.to_vec(), folder.test.images.to_vec());
    let other = ImageFolder::load(
        &root,
        &ImageFolderOptions {
            seed: 7,
            ..Default::default()
        },
    )
    .unwrap();
    assert_ne!(other.test.images.to_vec(), folder.test.images.to_vec());
}

/// With train/ and test/ subfolders, those folders are the split, read in sorted path order.
#[test]
fn train_and_test_folders_are_the_split() {
    let root = scratch("folders");
    two_classes(&root.join("train"), 3);
    two_classes(&root.join("test"), 2);
    let folder = ImageFolder::load(&root, &ImageFolderOptions::default()).unwrap();
    assert_eq!(folder.split, FolderSplit::Folders);
    assert_eq!((folder.train.len(), folder.test.len()), (6, 4));
    // Sorted paths: dark first, then light.
    assert_eq!(folder.test.labels, vec![0, 0, 1, 1]);
}

/// RGB images become three channel planes (C, H, W) with each colour in its own plane, scaled to
/// [0, 1].
#[test]
fn rgb_images_become_channel_planes() {
    let root = scratch("rgb");
    for (class, colour) in [("blue", [0, 0, 255]), ("red", [255, 0, 0])] {
        for i in 0..2 {
            let path = root.join(format!("{class}/{i}.png"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            RgbImage::from_pixel(3, 2, Rgb(colour)).save(&path).unwrap();
        }
    }
    let folder = ImageFolder::load(&root, &ImageFolderOptions::default()).unwrap();
    assert_eq!(folder.train.image_shape(), [3, 2, 3]);
    let pixels = folder.train.images.to_vec();
    for (i, &label) in folder.train.labels.iter().enumerate() {
        let image = &pixels[i * 18..(i + 1) * 18];
        let planes: Vec<f32> = (0..3)
            .map(|c| image[c * 6..(c + 1) * 6].iter().sum())
            .collect();
        let expected = if label == 0 {
            [0.0, 0.0, 6.0]
        } else {
            [6.0, 0.0, 0.0]
        };
        assert_eq!(planes, expected, "class {label}");
    }
    // Asking for grayscale converts.
    let gray = ImageFolder::load(
        &root,
        &ImageFolderOptions {
            channels: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(gray.train.image_shape(), [1, 2, 3]);
}

/// Images of mixed sizes are resized to the most common size (or the one asked for), and non-image
/// files are skipped.
#[test]
fn mixed_sizes_are_resized_to_the_most_common_or_the_asked_size() {
    let root = scratch("sizes");
    for i in 0..3 {
        gray_png(&root.join(format!("a/{i}.png")), 8, 8, 100);
        gray_png(&root.join(format!("b/{i}.png")), 8, 8, 50);
    }
    gray_png(&root.join("a/big.png"), 32, 16, 100);
    std::fs::write(root.join("b/notes.txt"), "not an image").unwrap();
    let folder = ImageFolder::load(&root, &ImageFolderOptions::default()).unwrap();
    assert_eq!(folder.train.image_shape(), [1, 8, 8]);
    assert_eq!(folder.resized, 1);
    assert_eq!(folder.skipped, 1);
    // A uniform image stays uniform through the resize.
    let all: Vec<f32> = folder
        .train
        .images
        .to_vec()
        .into_iter()
        .chain(folder.test.images.to_vec())
        .collect();
    assert!(all
        .iter()
        .all(|&p| (p - 100.0 / 255.0).abs() < 1e-6 || (p - 50.0 / 255.0).abs() < 1e-6));
    let asked = ImageFolder::load(
        &root,
        &ImageFolderOptions {
            size: Some([4, 5]),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(asked.train.image_shape(), [1, 4, 5]);
    assert_eq!(asked.resized, 7);
    // A cap on the longer side keeps the aspect ratio of the most common size.
    gray_png(&root.join("a/wide1.png"), 40, 20, 100);
    gray_png(&root.join("b/wide2.png"), 40, 20, 50);
    gray_png(&root.join("b/wide3.png"), 40, 20, 50);
    gray_png(&root.join("b/wide4.png"), 40, 20, 50);
    gray_png(&root.join("a/wide5.png"), 40, 20, 100);
    gray_png(&root.join("a/wide6.png"), 40, 20, 100);
    gray_png(&root.join("a/wide7.png"), 40, 20, 100);
    let capped = ImageFolder::load(
        &root,
        &ImageFolderOptions {
            max_side: Some(10),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(capped.train.image_shape(), [1, 5, 10]);
}

/// JPEG files (any case of extension) decode to grey images close to the values written.
#[test]
fn jpeg_files_decode() {
    let root = scratch("jpeg");
    for (class, value) in [("a", 30u8), ("b", 220u8)] {
        for i in 0..2 {
            let path = root.join(format!("{class}/{i}.JPG"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            GrayImage::from_pixel(8, 8, Luma([value]))
                .save_with_format(&path, image::ImageFormat::Jpeg)
                .unwrap();
        }
    }
    let folder = ImageFolder::load(&root, &ImageFolderOptions::default()).unwrap();
    let mean = |set: &data::ImageSet, label: usize| {
        let pixels = set.images.to_vec();
        let i = set.labels.iter().position(|&l| l == label).unwrap();
        pixels[i * 64..(i + 1) * 64].iter().sum::<f32>() / 64.0 * 255.0
    };
    assert!((mean(&folder.train, 0) - 30.0).abs() < 3.0);
    assert!((mean(&folder.train, 1) - 220.0).abs() < 3.0);
}

/// A missing root, a file as root, empty class folders or unreadable images are errors naming the
/// path and the problem.
#[test]
fn hostile_folders_are_refused_by_name() {
    // Missing root, a file as root.
    let root = scratch("hostile");
    let missing = root.join("nope");
    let e = message(ImageFolder::load(&missing, &ImageFolderOptions::default()).unwrap_err());
    assert!(e.contains("nope") && e.contains("does not exist"), "{e}");
    std::fs::write(root.join("file"), "x").unwrap();
    let e = message(ImageFolder::load(&root.join("file"), &Default::default()).unwrap_err());
    assert!(e.contains("is not a directory"), "{e}");

    // No class folders.
    let empty = scratch("hostile-empty");
    let e = message(ImageFolder::load(&empty, &Default::default()).unwrap_err());
    assert!(e.contains("no class sub-folders"), "{e}");

    // An empty class names the class.
    let root = scratch("hostile-class");
    two_classes(&root, 2);
    std::fs::create_dir_all(root.join("zebra")).unwrap();
    let e = message(ImageFolder::load(&root, &Default::default()).unwrap_err());
    assert!(e.contains("class 'zebra' has no images"), "{e}");

    // An undecodable file is named.
    let root = scratch("hostile-corrupt");
    two_classes(&root, 2);
    std::fs::write(root.join("dark/broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let e = message(ImageFolder::load(&root, &Default::default()).unwrap_err());
    assert!(
        e.contains("broken.png") && e.contains("cannot be decoded"),
        "{e}"
    );

    // A header claiming more pixels than the limit is refused before decoding.
    let root = scratch("hostile-big");
    two_classes(&root, 2);
    let e = message(
        ImageFolder::load(
            &root,
            &ImageFolderOptions {
                max_pixels: 10,
                ..Default::default()
            },
        )
        .unwrap_err(),
    );
    assert!(e.contains("declares 6x4 pixels"), "{e}");

    // train/ and test/ with different classes.
    let root = scratch("hostile-split");
    two_classes(&root.join("train"), 2);
    gray_png(&root.join("test/dark/0.png"), 6, 4, 1);
    let e = message(ImageFolder::load(&root, &Default::default()).unwrap_err());
    assert!(e.contains("test/ has"), "{e}");

    // One image in a class cannot be split.
    let root = scratch("hostile-one");
    two_classes(&root, 2);
    gray_png(&root.join("single/0.png"), 6, 4, 1);
    let e = message(ImageFolder::load(&root, &Default::default()).unwrap_err());
    assert!(e.contains("single") && e.contains("at least 2"), "{e}");

    // Options out of range.
    let root = scratch("hostile-options");
    two_classes(&root, 2);
    for options in [
        ImageFolderOptions {
            test_fraction: 1.0,
            ..Default::default()
        },
        ImageFolderOptions {
            channels: Some(2),
            ..Default::default()
        },
        ImageFolderOptions {
            size: Some([0, 4]),
            ..Default::default()
        },
    ] {
        let e = message(ImageFolder::load(&root, &options).unwrap_err());
        assert!(e.starts_with("ImageFolder:"), "{e}");
    }
}
