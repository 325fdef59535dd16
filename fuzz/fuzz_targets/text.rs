//! Text corpora and splitters: TinyTalks Q/A, TinyStories, the char-boundary train/val split and
//! the token split never panic, and the splits keep every character.
#![no_main]

#[path = "bounded_alloc.rs"]
mod bounded_alloc;
#[global_allocator]
static ALLOC: bounded_alloc::Bounded = bounded_alloc::Bounded;

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, u8, &str)| {
    let (frac, block, text) = input;
    let _ = data::text::parse_tinytalks(text, Path::new("fuzz.txt"));
    let _ = data::text::parse_tinystories(text);
    let _ = data::split_chunks(text);
    let val_fraction = frac as f64 / 255.0;
    if let Ok((train, val)) = data::split_text_train_val(text, val_fraction, block as usize) {
        assert_eq!(train.len() + val.len(), text.len());
        assert!(val.chars().count() > block as usize);
    }
    let tokens: Vec<usize> = text.bytes().map(usize::from).collect();
    if let Ok((a, b)) = data::split_train_val(&tokens, val_fraction) {
        assert_eq!(a.len() + b.len(), tokens.len());
    }
});
