//! IDX reader, raw and gzip: any bytes give a parsed file or a clear error, within bounded memory.
#![no_main]

#[path = "bounded_alloc.rs"]
mod bounded_alloc;
#[global_allocator]
static ALLOC: bounded_alloc::Bounded = bounded_alloc::Bounded;

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let path = Path::new("fuzz.idx");
    // As a gzip stream (bounded like the reader bounds it), then as raw bytes.
    if let Ok(inflated) = data::io::gunzip_bounded(bytes, path, Some(1 << 22)) {
        for ndim in [1, 3] {
            let _ = data::idx::parse_idx(&inflated, ndim, path);
        }
    }
    for ndim in [1, 3] {
        if let Ok(view) = data::idx::parse_idx(bytes, ndim, path) {
            assert_eq!(view.data.len(), view.dims.iter().product::<usize>());
        }
    }
});
