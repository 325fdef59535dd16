//! Tokenizer files and decoding: a char vocabulary (JSON) or BPE merges (text) from any bytes load
//! or give a clear error; decoding any ids gives text or a clear error.
#![no_main]

#[path = "bounded_alloc.rs"]
mod bounded_alloc;
#[global_allocator]
static ALLOC: bounded_alloc::Bounded = bounded_alloc::Bounded;

use std::path::Path;

use data::Tokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, Vec<u16>)| {
    let (text, ids) = input;
    let ids: Vec<usize> = ids.into_iter().map(usize::from).collect();
    let path = Path::new("fuzz.tok");
    if let Ok(tok) = data::CharTokenizer::from_json(text, path) {
        let _ = tok.decode(&ids);
        if let Ok(encoded) = tok.encode(text) {
            let _ = tok.decode(&encoded);
        }
    }
    if let Ok(bpe) = data::BpeTokenizer::from_text(text, path) {
        let _ = bpe.decode_bytes(&ids);
        let encoded = bpe.encode_bytes(text.as_bytes());
        assert_eq!(bpe.decode_bytes(&encoded).ok().as_deref(), Some(text.as_bytes()));
    }
});
