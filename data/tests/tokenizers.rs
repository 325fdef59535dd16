//! Grader for the tokenizers: hand-computed encodings, lossless round trips, unknown-character
//! policies, BPE training checked against a naive reference, save/load.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{assert_err_contains, TempDir};
use data::bpe::merge_pair;
use data::{split_chunks, BpeTokenizer, CharTokenizer, DataError, Tokenizer, UnknownPolicy};

const TEXT: &str =
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n";

// ----- CharTokenizer -----

/// The character vocabulary is the corpus's sorted distinct characters, and encode then decode
/// gives back any text made of them, Unicode included.
#[test]
fn char_vocab_is_sorted_and_lossless() {
    let tok = CharTokenizer::from_corpus("hello world", UnknownPolicy::Error);
    assert_eq!(tok.chars(), &[' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w']);
    assert_eq!(tok.vocab_size(), 8);
    assert_eq!(tok.encode("hello").unwrap(), vec![3, 2, 4, 4, 5]);
    assert_eq!(tok.decode(&[7, 5, 6, 4, 1]).unwrap(), "world");

    let text = format!("{TEXT}ünïcödé 🦀 ∑ 日本");
    let tok = CharTokenizer::from_corpus(&text, UnknownPolicy::Error);
    let ids = tok.encode(&text).unwrap();
    assert_eq!(ids.len(), text.chars().count());
    assert_eq!(tok.decode(&ids).unwrap(), text);
}

/// An unknown character is an error naming it and its position, or is skipped or replaced, as the
/// policy says.
#[test]
fn char_unknown_policies() {
    let err = CharTokenizer::from_corpus("abc", UnknownPolicy::Error)
        .encode("abxc")
        .unwrap_err();
    assert!(matches!(
        err,
        DataError::UnknownChar {
            ch: 'x',
            position: 2,
            ..
        }
    ));
    assert!(err.to_string().contains("'x'") && err.to_string().contains("char 2"));

    let skip = CharTokenizer::from_corpus("abc", UnknownPolicy::Skip);
    assert_eq!(skip.encode("axbyc🦀").unwrap(), vec![0, 1, 2]);
    assert_eq!(skip.vocab_size(), 3);
    assert_eq!(skip.unk_id(), None);

    let rep = CharTokenizer::from_corpus("abc", UnknownPolicy::Replace);
    assert_eq!(rep.vocab_size(), 4);
    assert_eq!(rep.unk_id(), Some(3));
    let ids = rep.encode("a🦀c").unwrap();
    assert_eq!(ids, vec![0, 3, 2]);
    assert_eq!(rep.decode(&ids).unwrap(), "a\u{FFFD}c");

    let err = skip.decode(&[0, 3]).unwrap_err();
    assert!(matches!(
        err,
        DataError::UnknownToken {
            id: 3,
            position: 1,
            vocab_size: 3,
            ..
        }
    ));
    assert!(rep.decode(&[4]).is_err());
}

/// A character tokenizer saved to JSON loads back equal (quotes, tabs, emoji included), and a
/// corrupt file is an error naming it.
#[test]
fn char_save_load_round_trip_and_errors() {
    let dir = TempDir::new("chartok");
    let text = "line one\nline two\t\"quoted\" 🦀\\";
    for policy in [
        UnknownPolicy::Error,
        UnknownPolicy::Skip,
        UnknownPolicy::Replace,
    ] {
        let tok = CharTokenizer::from_corpus(text, policy);
        let p = dir.join("vocab.json");
        tok.save(&p).unwrap();
        let back = CharTokenizer::load(&p).unwrap();
        assert_eq!(back, tok);
        assert_eq!(back.encode(text).unwrap(), tok.encode(text).unwrap());
    }
    let p = dir.join("bad.json");
    std::fs::write(&p, "{\"format\": \"tinytorch-char-tokenizer\", \"version\": 1, \"unknown\": \"error\", \"chars\": [\"a\", \"bc\"]}").unwrap();
    assert_err_contains(CharTokenizer::load(&p), &["bad.json", "chars[1]"]);
    std::fs::write(&p, "{\"format\": \"tinytorch-char-tokenizer\", \"version\": 1, \"unknown\": \"error\", \"chars\": [\"a\", \"a\"]}").unwrap();
    assert_err_contains(CharTokenizer::load(&p), &["bad.json", "appears twice"]);
    std::fs::write(&p, "not json").unwrap();
    assert_err_contains(CharTokenizer::load(&p), &["bad.json", "invalid JSON"]);
    std::fs::write(&p, "{\"format\": \"other\"}").unwrap();
    assert_err_contains(
        CharTokenizer::load(&p),
        &["bad.json", "not a char tokenizer"],
    );
}

// ----- BPE -----

/// Pre-tokenization splits text into word-like chunks (a space joins the following word) and the
/// chunks always concatenate back to the input.
#[test]
fn chunks_are_lossless_and_word_like() {
    assert_eq!(
        split_chunks("Hello, world! It's 2024  ok\n\nbye"),
        vec!["Hello", ",", " world", "!", " It", "'s", " 2024", " ", " ok", "\n\n", "bye"]
    );
    for s in [
        TEXT,
        "  lead",
        "trail  ",
        "a\u{3000}b 🦀🦀 x'y",
        "",
        "'",
        "don't 'll",
        "日本語 テキスト",
    ] {
        assert_eq!(split_chunks(s).concat(), s);
    }
}

/// Merging a pair replaces its occurrences left to right without overlap (5 5 5 becomes 7 5).
#[test]
fn merge_pair_replaces_left_to_right() {
    assert_eq!(merge_pair(&[1, 2, 3, 1, 2], (1, 2), 9), vec![9, 3, 9]);
    assert_eq!(merge_pair(&[5, 5, 5], (5, 5), 7), vec![7, 5]);
    assert_eq!(merge_pair(&[5, 5, 5, 5], (5, 5), 7), vec![7, 7]);
    assert_eq!(merge_pair(&[1], (1, 2), 9), vec![1]);
}

/// BPE encoding applies merges in the order they were learned (lowest rank first), not left to
/// right.
#[test]
fn bpe_encode_applies_merges_in_rank_order() {
    // 256 = "aa", 257 = "ab", 258 = "aa"+"ab" = "aaab".
    let tok = BpeTokenizer::from_merges(&[(97, 97), (97, 98), (256, 257)]).unwrap();
    assert_eq!(
        tok.encode_chunk(b"aaabdaaabac"),
        vec![258, 100, 258, 97, 99]
    );
    // "aab": "aa" has the lower rank, so it wins over "ab": [256, 98], not [97, 257].
    assert_eq!(tok.encode_chunk(b"aab"), vec![256, 98]);
    assert_eq!(tok.encode_chunk(b"ab"), vec![257]);
    assert_eq!(tok.encode_chunk(b"xyz"), vec![120, 121, 122]);
    assert_eq!(tok.encode_chunk(b""), Vec::<u32>::new());
    // Whole text: chunks are encoded separately, " aa" is one chunk, "." another.
    assert_eq!(tok.encode(" aa.").unwrap(), vec![32, 256, 46]);
}

/// BPE training on a small string learns the merges worked out by hand, breaking ties by the
/// smaller pair.
#[test]
fn bpe_train_matches_hand_computation() {
    // One chunk "aaabdaaabac": pairs aa x4 -> 256; then (97,98) and (256,97) tie at 2 and the
    // smaller pair wins -> 257 = "ab"; then (256,257) x2 -> 258 = "aaab".
    let tok = BpeTokenizer::train("aaabdaaabac", 259).unwrap();
    assert_eq!(tok.merges(), &[(97, 97), (97, 98), (256, 257)]);
    assert_eq!(tok.token_bytes(258).unwrap(), b"aaab");
    assert_eq!(
        tok.encode("aaabdaaabac").unwrap(),
        vec![258, 100, 258, 97, 99]
    );
    assert_eq!(tok.vocab_size(), 259);
}

/// Naive reference: recount every pair of every chunk occurrence after each merge.
fn naive_train(text: &str, merges: usize) -> Vec<(u32, u32)> {
    let mut words: Vec<Vec<u32>> = split_chunks(text)
        .iter()
        .map(|c| c.bytes().map(u32::from).collect())
        .collect();
    let mut out = Vec::new();
    for m in 0..merges {
        let mut counts: HashMap<(u32, u32), usize> = HashMap::new();
        for w in &words {
            for p in w.windows(2) {
                *counts.entry((p[0], p[1])).or_default() += 1;
            }
        }
        let Some((&best, _)) = counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))) else {
            break;
        };
        for w in words.iter_mut() {
            *w = merge_pair(w, best, 256 + m as u32);
        }
        out.push(best);
    }
    out
}

/// The fast incremental BPE trainer learns exactly the merges of a naive trainer that recounts
/// every pair each round.
#[test]
fn bpe_incremental_training_equals_naive_recount() {
    let text = TEXT.repeat(3)
        + "The quick brown fox jumps over the lazy dog; the dog sleeps. 1234 12345 🦀🦀";
    let tok = BpeTokenizer::train(&text, 256 + 120).unwrap();
    let reference = naive_train(&text, 120);
    assert_eq!(tok.merges(), reference.as_slice());
}

/// BPE encode then decode gives back any UTF-8 text (emoji, control characters, empty strings)
/// exactly.
#[test]
fn bpe_is_lossless_on_any_utf8_and_bytes() {
    let tok = BpeTokenizer::train(&TEXT.repeat(5), 256 + 60).unwrap();
    for s in [
        TEXT,
        "speak speak SPEAK",
        "emoji 🦀👩‍👩‍👧 flags 🇫🇷, ZWJ, CJK 日本語, combining é (e\u{301})",
        "\u{0}\u{7f}\u{80}\u{ffff}\u{10ffff}",
        "",
        "   \n\t  ",
    ] {
        let ids = tok.encode(s).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), s);
        assert_eq!(tok.decode_bytes(&ids).unwrap(), s.as_bytes());
    }
    // Bytes that are not UTF-8 survive encode_bytes / decode_bytes.
    let raw: &[u8] = b"ok \xff\xfe bad \xc3 half \xe2\x82 cut \xf0\x9f\xa6\x80 crab";
    let ids = tok.encode_bytes(raw);
    assert_eq!(tok.decode_bytes(&ids).unwrap(), raw);
    // Merges compress: fewer tokens than bytes on text like the training text.
    assert!(tok.encode(TEXT).unwrap().len() < TEXT.len() / 2);
    // An unknown id is an error.
    assert!(matches!(
        tok.decode(&[5000]).unwrap_err(),
        DataError::UnknownToken { id: 5000, .. }
    ));
}

/// BPE training stops early when no pair is left, a vocabulary smaller than 256 bytes is refused,
/// and an empty corpus gives the bytes only.
#[test]
fn bpe_training_stops_when_no_pair_is_left() {
    let tok = BpeTokenizer::train("ab", 1000).unwrap();
    assert_eq!(tok.merges(), &[(97, 98)]);
    assert!(BpeTokenizer::train("abc", 255).is_err());
    assert_eq!(BpeTokenizer::train("", 300).unwrap().vocab_size(), 256);
}

/// A BPE tokenizer saved to its text format loads back equal and encodes the same, and corrupt
/// files are errors naming the line.
#[test]
fn bpe_save_load_round_trip_and_errors() {
    let dir = TempDir::new("bpe");
    let tok = BpeTokenizer::train(&TEXT.repeat(4), 300).unwrap();
    let p = dir.join("tok.bpe");
    tok.save(&p).unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.starts_with("tinytorch-bpe v1\n"));
    let back = BpeTokenizer::load(&p).unwrap();
    assert_eq!(back, tok);
    assert_eq!(back.encode(TEXT).unwrap(), tok.encode(TEXT).unwrap());

    let src = Path::new("merges.bpe");
    assert_err_contains(
        BpeTokenizer::from_text("hello\n", src),
        &["merges.bpe", "line 1", "header"],
    );
    assert_err_contains(
        BpeTokenizer::from_text("tinytorch-bpe v1\n97 98\n256 300\n", src),
        &["merges.bpe", "line 3", "does not exist yet"],
    );
    assert_err_contains(
        BpeTokenizer::from_text("tinytorch-bpe v1\n97 x\n", src),
        &["merges.bpe", "line 2", "two token ids"],
    );
    assert_err_contains(
        BpeTokenizer::from_text("tinytorch-bpe v1\n97 98\n97 98\n", src),
        &["merges.bpe", "line 3", "duplicate"],
    );
    let ok =
        BpeTokenizer::from_text("tinytorch-bpe v1\n# comment\n\n97 98\n256 99\n", src).unwrap();
    assert_eq!(ok.token_bytes(257).unwrap(), b"abc");
    assert_eq!(
        BpeTokenizer::from_merges(&[(97, 98)]).unwrap().vocab_size(),
        257
    );
    assert!(BpeTokenizer::from_merges(&[(97, 256)]).is_err());
}
