//! Digits CSV reader (header or not, BOM or not): any text gives images or a clear error.
#![no_main]

#[path = "bounded_alloc.rs"]
mod bounded_alloc;
#[global_allocator]
static ALLOC: bounded_alloc::Bounded = bounded_alloc::Bounded;

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(text) = std::str::from_utf8(bytes) {
        if let Ok(set) = data::digits::parse_digits_csv(text, Path::new("fuzz.csv")) {
            assert_eq!(set.labels.len() * 64, set.images.numel());
        }
    }
});
