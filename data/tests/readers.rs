//! Grader for the readers: round trips on files the tests write, and a clear error (naming the
//! file and the problem) for every kind of corruption.

mod common;

use std::path::Path;

use common::{assert_err_contains, write_gz, TempDir};
use data::cifar::{encode_cifar10_batch, load_cifar10_batch, CIFAR_PIXELS};
use data::digits::{load_digits_csv, parse_digits_csv};
use data::idx::{encode_idx, load_idx_pair, parse_idx, read_idx_file, write_idx};
use data::io::{read_bytes, read_text};
use data::resolve::{data_roots_from, find_dataset, RootSource};
use data::text::{format_tinytalks, load_tinystories, load_tinytalks, parse_tinytalks};
use data::{Cifar10, DataError, Dataset, Mnist, QaPair, Split, TinyDigits, TinyTalks};

fn pixels(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(37).wrapping_add(seed))
        .collect()
}

// ----- IDX / MNIST -----

/// An IDX header (magic, rank, big-endian sizes) and body parse into the right dims and bytes, and
/// encoding gives back the same bytes.
#[test]
fn parse_idx_reads_header_and_body() {
    let bytes = [0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6];
    let view = parse_idx(&bytes, 2, Path::new("x.idx")).unwrap();
    assert_eq!(view.dims, vec![2, 3]);
    assert_eq!(view.data, &[1, 2, 3, 4, 5, 6]);
    assert_eq!(
        encode_idx(&[2, 3], &[1, 2, 3, 4, 5, 6]).unwrap(),
        bytes.to_vec()
    );
}

/// Images and labels written as IDX files, raw or gzipped, read back equal.
#[test]
fn idx_round_trip_gz_and_raw() {
    let dir = TempDir::new("idx");
    let (n, h, w) = (5, 3, 4);
    let px = pixels(n * h * w, 7);
    let labels: Vec<u8> = vec![3, 1, 4, 1, 5];
    for gzip in [false, true] {
        let ip = dir.join(&format!("img-{gzip}"));
        let lp = dir.join(&format!("lab-{gzip}"));
        write_idx(&ip, &[n, h, w], &px, gzip).unwrap();
        write_idx(&lp, &[n], &labels, gzip).unwrap();
        let set = load_idx_pair(&ip, &lp, 10).unwrap();
        assert_eq!(set.images.shape(), &[5, 1, 3, 4]);
        assert_eq!(set.labels, vec![3, 1, 4, 1, 5]);
        let got = set.images.to_vec();
        for (g, &b) in got.iter().zip(&px) {
            assert_eq!(*g, b as f32 / 255.0);
        }
        assert_eq!(set.class_counts(), vec![0, 2, 0, 1, 1, 1, 0, 0, 0, 0]);
    }
}

fn write_small_mnist(dir: &Path, n_train: usize, n_test: usize, gzip: bool) {
    let suffix = if gzip { ".gz" } else { "" };
    for (prefix, n) in [("train", n_train), ("t10k", n_test)] {
        let px = pixels(n * 28 * 28, n as u8);
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        write_idx(
            &dir.join(format!("{prefix}-images-idx3-ubyte{suffix}")),
            &[n, 28, 28],
            &px,
            gzip,
        )
        .unwrap();
        write_idx(
            &dir.join(format!("{prefix}-labels-idx1-ubyte{suffix}")),
            &[n],
            &labels,
            gzip,
        )
        .unwrap();
    }
}

/// MNIST loads from its four standard file names, gzipped or raw, into 1x28x28 images with their
/// labels.
#[test]
fn mnist_loads_standard_names_gz_or_raw() {
    for gzip in [true, false] {
        let dir = TempDir::new("mnist");
        write_small_mnist(dir.path(), 12, 7, gzip);
        let m = Mnist::load(dir.path()).unwrap();
        assert_eq!(m.train.len(), 12);
        assert_eq!(m.test.len(), 7);
        assert_eq!(m.train.image_shape(), [1, 28, 28]);
        assert_eq!(&m.train.labels[..4], &[0, 1, 2, 3]);
        let ds = m.test.to_dataset().unwrap();
        assert_eq!(ds.len(), 7);
        let flat = ds.with_sample_shape(&[784]).unwrap();
        assert_eq!(flat.get_batch(&[0, 1]).unwrap().inputs.shape(), &[2, 784]);
        let one = Mnist::load_split(dir.path(), Split::Test).unwrap();
        assert_eq!(one.labels, m.test.labels);
    }
}

/// An IDX file of the wrong rank or type is an error naming the file and the expected and found
/// numbers.
#[test]
fn idx_wrong_magic_names_file_and_numbers() {
    let dir = TempDir::new("magic");
    let ip = dir.join("train-images-idx3-ubyte.gz");
    let lp = dir.join("train-labels-idx1-ubyte.gz");
    // A 2-d file where a 3-d images file is expected.
    write_idx(&ip, &[2, 784], &[0; 2 * 784], true).unwrap();
    write_idx(&lp, &[2], &[0, 1], true).unwrap();
    assert_err_contains(
        load_idx_pair(&ip, &lp, 10),
        &[
            "train-images-idx3-ubyte.gz",
            "magic number 0x00000802, expected 0x00000803",
        ],
    );
    // Labels and images swapped.
    assert_err_contains(
        load_idx_pair(&lp, &ip, 10),
        &[
            "train-labels-idx1-ubyte.gz",
            "magic number 0x00000801, expected 0x00000803",
        ],
    );
    // Not a byte file at all (type 0x0d = float).
    let bytes = [0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0];
    assert_err_contains(
        parse_idx(&bytes, 1, Path::new("floats.idx")),
        &["floats.idx", "magic number 0x00000d01, expected 0x00000801"],
    );
}

/// A truncated IDX file, or one with extra trailing bytes, is an error naming the file and the byte
/// counts.
#[test]
fn idx_truncated_and_trailing_bytes() {
    let dir = TempDir::new("trunc");
    let full = encode_idx(&[10, 28, 28], &[9; 7840]).unwrap();
    let path = dir.join("t10k-images-idx3-ubyte");
    std::fs::write(&path, &full[..1000]).unwrap();
    let lp = dir.join("labels");
    write_idx(&lp, &[10], &[0; 10], false).unwrap();
    assert_err_contains(
        load_idx_pair(&path, &lp, 10),
        &[
            "t10k-images-idx3-ubyte",
            "truncated",
            "7856 bytes",
            "found 1000",
        ],
    );
    // Header cut short.
    assert_err_contains(
        parse_idx(&full[..9], 3, Path::new("short.idx")),
        &["short.idx", "truncated", "16 bytes", "found 9"],
    );
    assert_err_contains(
        parse_idx(&full[..2], 3, Path::new("tiny.idx")),
        &["tiny.idx", "truncated"],
    );
    // Extra bytes at the end.
    let mut long = full.clone();
    long.extend_from_slice(&[1, 2, 3]);
    assert_err_contains(
        parse_idx(&long, 3, Path::new("long.idx")),
        &["long.idx", "3 unexpected trailing bytes"],
    );
}

/// A gzip stream cut in half is an error naming the file and gzip, not a short read.
#[test]
fn truncated_gzip_stream_is_an_error() {
    let dir = TempDir::new("gz");
    let path = dir.join("train-images-idx3-ubyte.gz");
    write_idx(&path, &[100, 28, 28], &pixels(78400, 3), true).unwrap();
    let gz = std::fs::read(&path).unwrap();
    std::fs::write(&path, &gz[..gz.len() / 2]).unwrap();
    assert_err_contains(read_bytes(&path), &["train-images-idx3-ubyte.gz", "gzip"]);
}

/// Different image and label counts, or a label outside the class range, are errors giving both
/// numbers.
#[test]
fn idx_count_mismatch_and_label_range() {
    let dir = TempDir::new("count");
    let ip = dir.join("imgs.idx");
    let lp = dir.join("labs.idx");
    write_idx(&ip, &[5, 2, 2], &[0; 20], false).unwrap();
    write_idx(&lp, &[4], &[0, 1, 2, 3], false).unwrap();
    let err = load_idx_pair(&ip, &lp, 10).unwrap_err();
    assert!(matches!(
        err,
        DataError::CountMismatch {
            labels: 4,
            images: 5,
            ..
        }
    ));
    let msg = err.to_string();
    assert!(
        msg.contains("labs.idx") && msg.contains("imgs.idx"),
        "{msg}"
    );
    assert!(
        msg.contains("labels file has 4 items but images file") && msg.contains("has 5"),
        "{msg}"
    );

    write_idx(&lp, &[5], &[0, 1, 2, 12, 3], false).unwrap();
    assert_err_contains(
        load_idx_pair(&ip, &lp, 10),
        &["labs.idx", "label 12 out of range 0..10 at item 3"],
    );
}

/// A directory without MNIST's files is an error naming the file it looked for.
#[test]
fn missing_mnist_file_is_named() {
    let dir = TempDir::new("nomnist");
    assert_err_contains(
        Mnist::load(dir.path()),
        &["train-images-idx3-ubyte.gz", "not found"],
    );
}

// ----- CIFAR-10 -----

/// A CIFAR-10 batch (1 label byte + 3072 pixel bytes per record) round-trips with its labels and
/// 3x32x32 images.
#[test]
fn cifar10_round_trip() {
    let dir = TempDir::new("cifar");
    let labels = [6u8, 9, 0];
    let px = pixels(3 * CIFAR_PIXELS, 11);
    let bytes = encode_cifar10_batch(&px, &labels).unwrap();
    assert_eq!(bytes.len(), 3 * 3073);
    assert_eq!(bytes[3073], 9);
    let path = dir.join("data_batch_1.bin");
    std::fs::write(&path, &bytes).unwrap();
    let set = load_cifar10_batch(&path).unwrap();
    assert_eq!(set.images.shape(), &[3, 3, 32, 32]);
    assert_eq!(set.labels, vec![6, 9, 0]);
    // Image 1, channel 2 (blue), row 5, column 7.
    let v = set.images.get(&[1, 2, 5, 7]).unwrap();
    assert_eq!(v, px[CIFAR_PIXELS + 2 * 1024 + 5 * 32 + 7] as f32 / 255.0);

    // The five training batches concatenate; the test batch stands alone.
    for (i, name) in Cifar10::FILES.iter().enumerate() {
        let l = [i as u8, (i + 1) as u8 % 10];
        let b = encode_cifar10_batch(&pixels(2 * CIFAR_PIXELS, i as u8), &l).unwrap();
        std::fs::write(dir.join(name), b).unwrap();
    }
    let train = Cifar10::load_split(dir.path(), Split::Train).unwrap();
    assert_eq!(train.len(), 10);
    assert_eq!(train.labels, vec![0, 1, 1, 2, 2, 3, 3, 4, 4, 5]);
    let test = Cifar10::load_split(dir.path(), Split::Test).unwrap();
    assert_eq!(test.labels, vec![5, 6]);
    let found = Cifar10::find(Some(dir.path()), Split::Test).unwrap();
    assert_eq!(found.labels, vec![5, 6]);
}

/// A CIFAR-10 file of the wrong length or with a label above 9 is an error naming the file, the
/// size and the record layout.
#[test]
fn cifar10_errors() {
    let dir = TempDir::new("cifarbad");
    let path = dir.join("test_batch.bin");
    let mut bytes = encode_cifar10_batch(&pixels(2 * CIFAR_PIXELS, 1), &[1, 2]).unwrap();
    std::fs::write(&path, &bytes[..3073 + 100]).unwrap();
    assert_err_contains(
        load_cifar10_batch(&path),
        &[
            "test_batch.bin",
            "truncated",
            "3173 bytes",
            "3073-byte records",
        ],
    );
    bytes[3073] = 10;
    std::fs::write(&path, &bytes).unwrap();
    assert_err_contains(
        load_cifar10_batch(&path),
        &["test_batch.bin", "label 10 out of range 0..10 at record 1"],
    );
}

// ----- digits CSV -----

fn digit_rows(n: usize) -> Vec<(Vec<u8>, u8)> {
    (0..n)
        .map(|r| {
            let px = (0..64).map(|c| ((r * 7 + c * 3) % 17) as u8).collect();
            (px, (r % 10) as u8)
        })
        .collect()
}

/// A gzipped headerless digits CSV (64 pixels then the label) reads back the pixels and labels
/// written.
#[test]
fn digits_headerless_gz_round_trip() {
    let dir = TempDir::new("digits");
    let rows = digit_rows(23);
    let mut csv = String::new();
    for (px, label) in &rows {
        let cols: Vec<String> = px.iter().map(|p| p.to_string()).collect();
        csv.push_str(&format!("{},{label}\n", cols.join(",")));
    }
    let path = dir.join("digits.csv.gz");
    write_gz(&path, csv.as_bytes());
    let set = load_digits_csv(&path).unwrap();
    assert_eq!(set.images.shape(), &[23, 1, 8, 8]);
    assert_eq!(
        set.labels,
        rows.iter().map(|r| r.1 as usize).collect::<Vec<_>>()
    );
    let v = set.images.to_vec();
    assert_eq!(v[64 * 5 + 10], rows[5].0[10] as f32 / 16.0);
    let found = data::Digits::find(Some(dir.path())).unwrap();
    assert_eq!(found.len(), 23);
}

/// The TinyDigits CSV layout (a header, the label first) reads back the pixels and labels written,
/// train and test.
#[test]
fn tinydigits_header_csv_round_trip() {
    let dir = TempDir::new("tinydigits");
    let header: Vec<String> = std::iter::once("label".to_string())
        .chain((0..64).map(|i| format!("p{i}")))
        .collect();
    for (name, n) in [("train.csv", 20), ("test.csv", 10)] {
        let mut csv = header.join(",") + "\n";
        for (px, label) in digit_rows(n) {
            let cols: Vec<String> = px.iter().map(|p| p.to_string()).collect();
            csv.push_str(&format!("{label},{}\n", cols.join(",")));
        }
        std::fs::write(dir.join(name), csv).unwrap();
    }
    let td = TinyDigits::load(dir.path()).unwrap();
    assert_eq!(td.train.len(), 20);
    assert_eq!(td.test.len(), 10);
    assert_eq!(td.train.class_counts(), vec![2; 10]);
    let rows = digit_rows(20);
    assert_eq!(
        td.train.images.to_vec()[64 * 3 + 63],
        rows[3].0[63] as f32 / 16.0
    );
}

/// A bad label, pixel or column count in a digits CSV is an error naming the file, the line and the
/// value.
#[test]
fn digits_errors_name_file_and_line() {
    let p = Path::new("train.csv");
    let header = std::iter::once("label".to_string())
        .chain((0..64).map(|i| format!("p{i}")))
        .collect::<Vec<_>>()
        .join(",");
    let row = |label: &str, pixel: &str| {
        let mut cols = vec![label.to_string()];
        cols.extend((0..64).map(|i| {
            if i == 5 {
                pixel.to_string()
            } else {
                "1".to_string()
            }
        }));
        cols.join(",")
    };
    let good = row("3", "2");
    let text = format!(
        "{header}\n{good}\n{good}\n{good}\n{good}\n{}\n",
        row("12", "2")
    );
    assert_err_contains(
        parse_digits_csv(&text, p),
        &["train.csv", "line 6", "label 12 out of range 0..10"],
    );
    let text = format!("{header}\n{}\n", row("3", "17"));
    assert_err_contains(
        parse_digits_csv(&text, p),
        &["train.csv", "line 2", "pixel 17 out of range 0..=16"],
    );
    let text = format!("{header}\n{good}\n1,2,3\n");
    assert_err_contains(
        parse_digits_csv(&text, p),
        &["train.csv", "line 3", "expected 65 columns, found 3"],
    );
    let text = format!("{header}\n{}\n", row("3", "x"));
    assert_err_contains(
        parse_digits_csv(&text, p),
        &["train.csv", "line 2", "\"x\" is not a number"],
    );
    assert_err_contains(parse_digits_csv("", p), &["train.csv", "empty"]);
    assert_err_contains(
        parse_digits_csv("a,b,c\n1,2,3\n", p),
        &["train.csv", "header has no `label` column"],
    );
}

// ----- text -----

/// Text files (plain or gzipped, with non-ASCII characters) read back exactly; invalid UTF-8 is an
/// error naming the file and byte offset, a missing file names it.
#[test]
fn text_round_trip_and_invalid_utf8() {
    let dir = TempDir::new("text");
    let text = "First Citizen:\nBefore we proceed, ünïcödé 🦀\n";
    let p = dir.join("corpus.txt");
    std::fs::write(&p, text).unwrap();
    assert_eq!(read_text(&p).unwrap(), text);
    let gz = dir.join("corpus.txt.gz");
    write_gz(&gz, text.as_bytes());
    assert_eq!(read_text(&gz).unwrap(), text);

    let bad = dir.join("bad.txt");
    std::fs::write(&bad, b"hello\xff\xfeworld").unwrap();
    let err = read_text(&bad).unwrap_err();
    assert!(matches!(err, DataError::InvalidUtf8 { offset: 5, .. }));
    assert_err_contains(read_text(&bad), &["bad.txt", "invalid UTF-8 at byte 5"]);
    assert_err_contains(read_text(&dir.join("nope.txt")), &["nope.txt"]);
}

/// TinyTalks question/answer pairs written and parsed back are equal, emoji included.
#[test]
fn tinytalks_round_trip() {
    let pairs = vec![
        QaPair {
            question: "Hello!".into(),
            answer: "Hi there! How can I help?".into(),
        },
        QaPair {
            question: "What is 5 times 2?".into(),
            answer: "5 times 2 equals 10.".into(),
        },
        QaPair {
            question: "Say 🦀".into(),
            answer: "🦀".into(),
        },
    ];
    let text = format_tinytalks(&pairs);
    assert!(text.starts_with("Q: Hello!\nA: Hi there! How can I help?\n\nQ: What"));
    assert_eq!(parse_tinytalks(&text, Path::new("t.txt")).unwrap(), pairs);
    // Windows line endings, extra blank lines, no trailing newline.
    let crlf = "Q: a?\r\nA: b.\r\n\r\n\r\nQ: c?\r\nA: d.";
    let got = parse_tinytalks(crlf, Path::new("t.txt")).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].answer, "d.");

    let dir = TempDir::new("talks");
    std::fs::create_dir_all(dir.join("splits")).unwrap();
    std::fs::write(dir.join("tinytalks_v1.txt"), &text).unwrap();
    for (name, k) in [("train", 1), ("val", 1), ("test", 1)] {
        std::fs::write(
            dir.join(&format!("splits/{name}.txt")),
            format_tinytalks(&pairs[..k]),
        )
        .unwrap();
    }
    let tt = TinyTalks::load(dir.path()).unwrap();
    assert_eq!(tt.all, pairs);
    assert_eq!(tt.train.len(), 1);
    assert_eq!(
        load_tinytalks(&dir.join("tinytalks_v1.txt")).unwrap().len(),
        3
    );
}

/// A question without an answer, an answer without a question or a stray line in TinyTalks is an
/// error naming the file and line.
#[test]
fn tinytalks_errors() {
    let p = Path::new("talks.txt");
    assert_err_contains(
        parse_tinytalks("Q: a?\n\nQ: b?\nA: c\n", p),
        &["talks.txt", "line 1", "question has no `A:` answer"],
    );
    assert_err_contains(
        parse_tinytalks("A: lonely\n", p),
        &["talks.txt", "line 1", "`A:` line without a `Q:`"],
    );
    assert_err_contains(
        parse_tinytalks("Q: a?\nA: b\n\nhello\n", p),
        &["talks.txt", "line 4", "expected a line starting with `Q:`"],
    );
}

/// TinyStories splits on its <|endoftext|> marker, trimming blank stories and keeping the text of
/// each.
#[test]
fn tinystories_split_on_end_of_text() {
    let dir = TempDir::new("stories");
    let p = dir.join("TinyStories-valid.txt");
    std::fs::write(
        &p,
        "Once upon a time.\n<|endoftext|>\nTom ran.\nHe fell.<|endoftext|>\n\n<|endoftext|>Lily 🌸",
    )
    .unwrap();
    let stories = load_tinystories(&p).unwrap();
    assert_eq!(
        stories,
        vec!["Once upon a time.", "Tom ran.\nHe fell.", "Lily 🌸"]
    );
    let found = data::TinyStories::find(Some(dir.path())).unwrap();
    assert_eq!(found.len(), 3);
}

// ----- dataset resolution -----

/// Without --data-dir the roots are TINYTORCH_DATA then ./data; an explicit --data-dir is the only
/// place searched; a dataset is found in the <root>/<name>/ or the flat layout.
#[test]
fn resolution_order_and_layouts() {
    let cli = TempDir::new("cli");
    let env = TempDir::new("env");
    // env holds the shared layout <root>/mnist/, cli holds the files directly.
    std::fs::create_dir_all(env.join("mnist")).unwrap();
    write_small_mnist(&env.join("mnist"), 2, 2, true);
    let roots = data_roots_from(None, Some(env.path()));
    assert_eq!(roots.len(), 2);
    assert_eq!(roots[0].source, RootSource::Environment);
    assert_eq!(roots[1].source, RootSource::Default);
    assert_eq!(
        find_dataset(&roots, "mnist", &Mnist::FILES).unwrap(),
        env.join("mnist")
    );
    // An explicit --data-dir is the only place searched.
    let roots = data_roots_from(Some(cli.path()), Some(env.path()));
    assert_eq!(roots.len(), 1);
    assert_eq!(roots[0].source, RootSource::CommandLine);
    write_small_mnist(cli.path(), 3, 1, false);
    let dir = find_dataset(&roots, "mnist", &Mnist::FILES).unwrap();
    assert_eq!(dir, cli.path());
    assert_eq!(Mnist::find(Some(cli.path())).unwrap().train.len(), 3);
    // Alternatives with `|`.
    std::fs::write(cli.join("input.txt"), "x").unwrap();
    assert_eq!(
        find_dataset(
            &roots,
            "shakespeare",
            &["tinyshakespeare_like.txt|input.txt"]
        )
        .unwrap(),
        cli.path()
    );
}

/// An explicit --data-dir that lacks the dataset is an error naming that directory, never a silent
/// fallback to other data.
#[test]
fn explicit_data_dir_never_falls_back() {
    // The environment holds a complete MNIST, the named directory is empty: an error that names
    // only the directory given, not a silent run on other data.
    let cli = TempDir::new("nofallback-cli");
    let env = TempDir::new("nofallback-env");
    write_small_mnist(env.path(), 2, 2, true);
    let roots = data_roots_from(Some(cli.path()), Some(env.path()));
    let msg = find_dataset(&roots, "mnist", &Mnist::FILES)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("from --data-dir"), "{msg}");
    assert!(!msg.contains("TINYTORCH_DATA)"), "{msg}");
    assert!(!msg.contains(&env.path().display().to_string()), "{msg}");
    // A missing --data-dir, and one that is a file, say so.
    let missing = cli.join("nope");
    let msg = find_dataset(
        &data_roots_from(Some(&missing), None),
        "mnist",
        &Mnist::FILES,
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("does not exist"), "{msg}");
    let file = cli.join("afile");
    std::fs::write(&file, "x").unwrap();
    let msg = find_dataset(&data_roots_from(Some(&file), None), "mnist", &Mnist::FILES)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("is a file, not a directory"), "{msg}");
    // `train.csv` being a directory is named as such.
    let td = TempDir::new("csvdir");
    std::fs::create_dir_all(td.join("train.csv")).unwrap();
    std::fs::write(td.join("test.csv"), "x").unwrap();
    let msg = find_dataset(
        &data_roots_from(Some(td.path()), None),
        "tinydigits",
        &TinyDigits::FILES,
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("exists but train.csv is a directory, not a file"),
        "{msg}"
    );
}

/// A missing dataset's error lists every place searched and every file wanted.
#[test]
fn missing_dataset_lists_every_place_and_file() {
    let env = TempDir::new("empty-env");
    std::fs::create_dir_all(env.join("mnist")).unwrap();
    let roots = data_roots_from(None, Some(env.path()));
    let err = find_dataset(&roots, "mnist", &Mnist::FILES).unwrap_err();
    let msg = err.to_string();
    println!("{msg}");
    for needle in [
        "dataset `mnist` not found",
        "train-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        &env.join("mnist").display().to_string(),
        &env.path().display().to_string(),
        "from TINYTORCH_DATA",
        "the default ./data",
        "exists but holds none of the files",
        "--data-dir",
        "Where to get it",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in:\n{msg}");
    }
    assert_eq!(msg.matches("\n  - ").count(), 4, "{msg}");
    // A directory with some of the files names the ones it lacks.
    write_small_mnist(&env.join("mnist"), 1, 1, true);
    std::fs::remove_file(env.join("mnist/t10k-labels-idx1-ubyte.gz")).unwrap();
    let msg = find_dataset(&roots, "mnist", &Mnist::FILES)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("exists but lacks t10k-labels-idx1-ubyte.gz)"),
        "{msg}"
    );
}

// ----- hostile files -----

/// A gzipped labels file that inflates far beyond its declared size is refused after the declared
/// bytes, never inflated whole.
#[test]
fn labels_gzip_bomb_is_refused_after_the_declared_size() {
    // A labels file whose header declares 4 labels but whose gzip stream inflates to 64 MiB:
    // refused after reading one byte past the 12 declared bytes, never inflated whole.
    let dir = TempDir::new("bomb");
    let images = dir.join("images.gz");
    write_idx(&images, &[4, 2, 2], &[1; 16], true).unwrap();
    let mut body = encode_idx(&[4], &[1, 2, 3, 4]).unwrap();
    body.resize(64 << 20, 0);
    let labels = dir.join("labels.gz");
    write_gz(&labels, &body);
    assert_err_contains(
        load_idx_pair(&images, &labels, 10),
        &[
            "labels.gz",
            "trailing bytes after the 12 bytes its header declares",
        ],
    );
    assert!(read_idx_file(&labels, 1).is_err());
}

/// IDX images of 0x0 pixels are an error saying so, not an empty dataset.
#[test]
fn zero_by_zero_idx_images_are_named() {
    let dir = TempDir::new("zero");
    let images = dir.join("images");
    write_idx(&images, &[3, 0, 0], &[], false).unwrap();
    let labels = dir.join("labels");
    write_idx(&labels, &[3], &[0, 1, 2], false).unwrap();
    assert_err_contains(
        load_idx_pair(&images, &labels, 10),
        &["images", "3 images of 0x0 pixels"],
    );
}

/// A CSV starting with a UTF-8 byte order mark reads correctly (the mark is not part of the first
/// header).
#[test]
fn csv_with_a_byte_order_mark_reads() {
    let dir = TempDir::new("bom");
    let mut text = String::from("\u{feff}label");
    for i in 0..64 {
        text.push_str(&format!(",p{i}"));
    }
    text.push_str("\n3");
    for _ in 0..64 {
        text.push_str(",16");
    }
    text.push('\n');
    let path = dir.join("train.csv");
    std::fs::write(&path, &text).unwrap();
    let set = load_digits_csv(&path).unwrap();
    assert_eq!(set.labels, vec![3]);
    assert_eq!(parse_digits_csv(&text, &path).unwrap().labels, vec![3]);
}
