//! Checkpoint loading: any bytes as a safetensors file (header, offsets, dtypes, metadata with a
//! GPT config and a tokenizer) give a model or a clear error, within small limits.
#![no_main]

#[path = "bounded_alloc.rs"]
mod bounded_alloc;
#[global_allocator]
static ALLOC: bounded_alloc::Bounded = bounded_alloc::Bounded;

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use models::checkpoint::{load_gpt_limited, stored_from_bytes, LoadLimits};

fuzz_target!(|bytes: &[u8]| {
    let path = std::env::temp_dir().join(format!("tt-fuzz-ckpt-{}.safetensors", std::process::id()));
    let _ = stored_from_bytes(&path, bytes);
    if let Ok(mut f) = std::fs::File::create(&path) {
        if f.write_all(bytes).is_ok() {
            let limits = LoadLimits {
                max_file_bytes: 1 << 22,
                max_parameters: 1 << 20,
            };
            let _ = load_gpt_limited(&path, &limits);
        }
    }
});
