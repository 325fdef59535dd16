//! Property tests of the readers: any valid file the crate's own writers produce (IDX raw and
//! gzip, CIFAR-10 batches, digits CSV with or without header, BOM, CRLF or gzip, text corpora,
//! TinyTalks and TinyStories, tokenizer files) reads back equal to what was written. The example
//! tests in `readers.rs` pin one file each; these draw a few dozen random ones per run.

mod common;

use common::TempDir;
use data::cifar::{encode_cifar10_batch, load_cifar10_batch, CIFAR_PIXELS};
use data::digits::load_digits_csv;
use data::idx::{load_idx_pair, parse_idx, read_idx_file, write_idx};
use data::io::{read_text, write_bytes};
use data::text::{format_tinytalks, load_tinystories, load_tinytalks, END_OF_TEXT};
use data::{BpeTokenizer, CharTokenizer, QaPair, Tokenizer, UnknownPolicy};
use proptest::prelude::*;

/// Dimensions (1 to 3 of them, each 0..5, empty files included) and matching bytes.
fn idx_file() -> impl Strategy<Value = (Vec<usize>, Vec<u8>)> {
    prop::collection::vec(0usize..5, 1..=3).prop_flat_map(|dims| {
        let n: usize = dims.iter().product();
        (Just(dims), prop::collection::vec(any::<u8>(), n))
    })
}

/// How a digits CSV is laid out.
#[derive(Clone, Debug)]
struct CsvLayout {
    /// `None`: no header, label last; `Some(c)`: a header with the label in column `c`.
    label_column: Option<usize>,
    bom: bool,
    crlf: bool,
    gzip: bool,
}

fn csv_layout() -> impl Strategy<Value = CsvLayout> {
    (
        prop::option::of(0usize..=64),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(label_column, bom, crlf, gzip)| CsvLayout {
            label_column,
            bom,
            crlf,
            gzip,
        })
}

/// The CSV text of `rows` (64 pixels 0..=16 and a label each) in `layout`.
fn digits_csv(rows: &[(Vec<u8>, usize)], layout: &CsvLayout) -> String {
    let newline = if layout.crlf { "\r\n" } else { "\n" };
    let mut text = String::new();
    if layout.bom {
        text.push('\u{feff}');
    }
    let label_at = layout.label_column.unwrap_or(64);
    if layout.label_column.is_some() {
        let mut names: Vec<String> = (0..64).map(|i| format!("p{i}")).collect();
        names.insert(label_at, "label".to_string());
        text.push_str(&names.join(","));
        text.push_str(newline);
    }
    for (pixels, label) in rows {
        let mut fields: Vec<String> = pixels.iter().map(u8::to_string).collect();
        fields.insert(label_at, label.to_string());
        text.push_str(&fields.join(","));
        text.push_str(newline);
    }
    text
}

/// A single-line phrase with no leading or trailing space (as the TinyTalks reader trims).
fn phrase() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9éü][a-zA-Z0-9 ,.?!'éü]{0,20}[a-zA-Z0-9.?!]"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Any IDX file written raw or gzipped reads back with the same dimensions and bytes.
    #[test]
    fn idx_files_read_back_equal((dims, bytes) in idx_file(), gzip in any::<bool>()) {
        let dir = TempDir::new("prop-idx");
        let path = dir.join("file.idx");
        write_idx(&path, &dims, &bytes, gzip).unwrap();
        let read = read_idx_file(&path, dims.len()).unwrap();
        let view = parse_idx(&read, dims.len(), &path).unwrap();
        prop_assert_eq!(view.dims, dims);
        prop_assert_eq!(view.data, &bytes[..]);
    }

    /// Any images/labels IDX pair (at least one image of at least 1x1) loads as those pixels
    /// scaled to [0, 1] and those labels.
    #[test]
    fn idx_image_label_pairs_load_equal(
        (n, h, w) in (1usize..6, 1usize..5, 1usize..5),
        seed in any::<u64>(),
        gzip in any::<bool>(),
    ) {
        let dir = TempDir::new("prop-pair");
        let mut state = seed | 1;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pixels: Vec<u8> = (0..n * h * w).map(|_| next() as u8).collect();
        let labels: Vec<u8> = (0..n).map(|_| (next() % 10) as u8).collect();
        let (ip, lp) = (dir.join("images"), dir.join("labels"));
        write_idx(&ip, &[n, h, w], &pixels, gzip).unwrap();
        write_idx(&lp, &[n], &labels, gzip).unwrap();
        let set = load_idx_pair(&ip, &lp, 10).unwrap();
        prop_assert_eq!(set.images.shape(), &[n, 1, h, w]);
        let want: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
        prop_assert_eq!(set.images.to_vec(), want);
        let want: Vec<usize> = labels.iter().map(|&l| l as usize).collect();
        prop_assert_eq!(set.labels, want);
    }

    /// Any CIFAR-10 batch (1 to 3 images) reads back with the same pixels and labels.
    #[test]
    fn cifar_batches_read_back_equal(labels in prop::collection::vec(0u8..10, 1..4), fill in any::<u8>()) {
        let dir = TempDir::new("prop-cifar");
        let pixels: Vec<u8> = (0..labels.len() * CIFAR_PIXELS)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(fill))
            .collect();
        let path = dir.join("data_batch_1.bin");
        std::fs::write(&path, encode_cifar10_batch(&pixels, &labels).unwrap()).unwrap();
        let set = load_cifar10_batch(&path).unwrap();
        let want: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
        prop_assert_eq!(set.images.to_vec(), want);
        let want: Vec<usize> = labels.iter().map(|&l| l as usize).collect();
        prop_assert_eq!(set.labels, want);
    }

    /// Any digits CSV (header with the label in any column or none, BOM, CRLF, gzip) loads
    /// as its pixels divided by 16 and its labels.
    #[test]
    fn digits_csv_reads_back_equal(
        rows in prop::collection::vec((prop::collection::vec(0u8..=16, 64), 0usize..10), 1..6),
        layout in csv_layout(),
    ) {
        let dir = TempDir::new("prop-csv");
        let path = dir.join(if layout.gzip { "digits.csv.gz" } else { "digits.csv" });
        write_bytes(&path, digits_csv(&rows, &layout).as_bytes(), layout.gzip).unwrap();
        let set = load_digits_csv(&path).unwrap();
        prop_assert_eq!(set.images.shape(), &[rows.len(), 1, 8, 8]);
        let want: Vec<f32> = rows
            .iter()
            .flat_map(|(p, _)| p.iter().map(|&v| v as f32 / 16.0))
            .collect();
        prop_assert_eq!(set.images.to_vec(), want);
        let want: Vec<usize> = rows.iter().map(|(_, l)| *l).collect();
        prop_assert_eq!(set.labels, want);
    }

    /// Any UTF-8 text written raw or gzipped reads back equal (a leading byte-order mark, which
    /// is not text, removed).
    #[test]
    fn text_files_read_back_equal(text in any::<String>(), gzip in any::<bool>()) {
        let dir = TempDir::new("prop-text");
        let path = dir.join("corpus.txt");
        write_bytes(&path, text.as_bytes(), gzip).unwrap();
        let want = text.strip_prefix('\u{feff}').unwrap_or(&text);
        prop_assert_eq!(read_text(&path).unwrap(), want);
    }

    /// Any list of question/answer pairs written in the TinyTalks layout reads back equal.
    #[test]
    fn tinytalks_pairs_read_back_equal(pairs in prop::collection::vec((phrase(), phrase()), 1..6)) {
        let dir = TempDir::new("prop-talks");
        let pairs: Vec<QaPair> = pairs
            .into_iter()
            .map(|(question, answer)| QaPair { question, answer })
            .collect();
        let path = dir.join("tinytalks.txt");
        std::fs::write(&path, format_tinytalks(&pairs)).unwrap();
        prop_assert_eq!(load_tinytalks(&path).unwrap(), pairs);
    }

    /// Any list of stories joined by `<|endoftext|>` reads back as those stories.
    #[test]
    fn tinystories_read_back_equal(stories in prop::collection::vec(phrase(), 1..6)) {
        let dir = TempDir::new("prop-stories");
        let path = dir.join("stories.txt");
        let text = stories.join(&format!("\n{END_OF_TEXT}\n"));
        std::fs::write(&path, text).unwrap();
        prop_assert_eq!(load_tinystories(&path).unwrap(), stories);
    }

    /// A character vocabulary from any non-empty text survives its JSON file, and decoding the
    /// encoding of the text gives the text back.
    #[test]
    fn char_tokenizer_files_read_back_equal(text in ".{1,40}") {
        let tok = CharTokenizer::from_corpus(&text, UnknownPolicy::Error);
        let back = CharTokenizer::from_json(&tok.to_json(), "tok.json".as_ref()).unwrap();
        prop_assert_eq!(&back, &tok);
        prop_assert_eq!(back.decode(&back.encode(&text).unwrap()).unwrap(), text);
    }

    /// BPE merges learned from any text survive their text file, and any string (not only the
    /// training text) decodes back from its encoding.
    #[test]
    fn bpe_tokenizer_files_read_back_equal(
        corpus in "[a-z ]{1,60}",
        extra in 0usize..24,
        other in any::<String>(),
    ) {
        let bpe = BpeTokenizer::train(&corpus, 256 + extra).unwrap();
        let back = BpeTokenizer::from_text(&bpe.to_text(), "bpe.txt".as_ref()).unwrap();
        prop_assert_eq!(&back, &bpe);
        for text in [&corpus, &other] {
            prop_assert_eq!(&back.decode(&back.encode(text).unwrap()).unwrap(), text);
        }
    }
}
