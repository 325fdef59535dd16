//! `mlp-1986`/`cnn-1998 --images DIR` on a generated folder of PNGs: two classes (horizontal
//! and vertical stripes, random phase and noise) that both models must separate, and the
//! refusals of a bad folder or conflicting flags.

use std::path::{Path, PathBuf};
use std::process::Command;

use image::{GrayImage, Luma};
use serde_json::Value;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tt-own-images-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `per_class` 20x20 images of stripes, horizontal or vertical, with a seeded phase and noise.
fn stripes(root: &Path, per_class: usize) {
    let mut state = 12345u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    for (class, horizontal) in [("horizontal", true), ("vertical", false)] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..per_class {
            let phase = next() % 4;
            let mut img = GrayImage::new(20, 20);
            for y in 0..20u32 {
                for x in 0..20u32 {
                    let t = if horizontal { y } else { x };
                    let base = if (t + phase) % 4 < 2 { 190 } else { 50 };
                    let noise = (next() % 41) as i32 - 20;
                    img.put_pixel(x, y, Luma([(base + noise).clamp(0, 255) as u8]));
                }
            }
            img.save(root.join(format!("{class}/{i:03}.png"))).unwrap();
        }
    }
}

fn run(bin: &str, args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env_remove("TINYTORCH_DATA")
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .unwrap()
}

#[test]
fn mlp_and_cnn_learn_a_folder_of_own_images() {
    let dir = scratch("learn");
    let images = dir.join("images");
    stripes(&images, 40);
    for (bin, name) in [
        (env!("CARGO_BIN_EXE_mlp-1986"), "mlp"),
        (env!("CARGO_BIN_EXE_cnn-1998"), "cnn"),
    ] {
        let json = dir.join(format!("{name}.json"));
        let out = run(
            bin,
            &[
                "--images",
                images.to_str().unwrap(),
                "--quick",
                "--json",
                json.to_str().unwrap(),
            ],
            &dir,
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stdout}\n{stderr}");
        assert!(
            stdout.contains("2 classes [\"horizontal\", \"vertical\"], 64 train / 16 test"),
            "{stdout}"
        );
        let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let accuracy = report["metrics"]["test_accuracy"].as_f64().unwrap();
        assert!(
            accuracy >= 0.9,
            "{name}: test accuracy {accuracy}\n{stdout}"
        );
    }
}

#[test]
fn a_bad_folder_or_conflicting_flags_are_refused() {
    let dir = scratch("refused");
    let images = dir.join("images");
    stripes(&images, 3);
    std::fs::create_dir_all(images.join("empty")).unwrap();
    let bin = env!("CARGO_BIN_EXE_cnn-1998");
    let out = run(bin, &["--images", images.to_str().unwrap()], &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("class 'empty' has no images") && !err.contains("panicked"),
        "{err}"
    );

    let out = run(
        bin,
        &["--images", images.to_str().unwrap(), "--dataset", "mnist"],
        &dir,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--images") && err.contains("--dataset"),
        "{err}"
    );

    let out = run(
        bin,
        &["--images", images.to_str().unwrap(), "--channels", "2"],
        &dir,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("channels must be 1 (grayscale) or 3"), "{err}");

    let out = run(bin, &["--image-size", "16"], &dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--images"), "{err}");
}
