//! File reading shared by every reader: whole-file reads that name the path in every error, and
//! transparent gzip decompression (a file is gunzipped when its first bytes are the gzip magic
//! `1f 8b`, whatever its name).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::error::{DataError, Result};

/// The two bytes every gzip stream starts with.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Read a whole file, gunzipping it when it is gzip-compressed.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let raw = fs::read(path).map_err(|e| DataError::io(path, e))?;
    if raw.len() >= 2 && raw[..2] == GZIP_MAGIC {
        gunzip(&raw, path)
    } else {
        Ok(raw)
    }
}

/// Decompress a gzip stream held in memory. `path` is only used in error messages.
pub fn gunzip(compressed: &[u8], path: &Path) -> Result<Vec<u8>> {
    // The last 4 bytes of a gzip member hold the uncompressed size modulo 2^32: use it to
    // allocate once, but never trust it beyond deflate's maximum ratio (about 1032:1).
    let mut capacity = 0usize;
    if compressed.len() >= 18 {
        let n = compressed.len();
        let isize = u32::from_le_bytes([
            compressed[n - 4],
            compressed[n - 3],
            compressed[n - 2],
            compressed[n - 1],
        ]) as usize;
        capacity = isize.min(compressed.len().saturating_mul(1032));
    }
    let mut out = Vec::with_capacity(capacity);
    MultiGzDecoder::new(compressed)
        .read_to_end(&mut out)
        .map_err(|e| {
            DataError::format(
                path,
                format!(
                    "corrupt or truncated gzip stream after {} decompressed bytes: {e}",
                    out.len()
                ),
            )
        })?;
    Ok(out)
}

/// Read a whole file as UTF-8 text (gunzipping if needed). Invalid UTF-8 is an error that gives
/// the byte offset of the first bad sequence.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = read_bytes(path)?;
    String::from_utf8(bytes).map_err(|e| DataError::InvalidUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// Write bytes to a file, gzip-compressed when `gzip` is true.
pub fn write_bytes(path: &Path, bytes: &[u8], gzip: bool) -> Result<()> {
    let result = if gzip {
        let file = fs::File::create(path).map_err(|e| DataError::io(path, e))?;
        let mut enc = GzEncoder::new(std::io::BufWriter::new(file), Compression::default());
        enc.write_all(bytes)
            .and_then(|_| enc.finish())
            .and_then(|mut w| w.flush())
    } else {
        fs::write(path, bytes)
    };
    result.map_err(|e| DataError::io(path, e))
}

/// Find `name` in `dir`. `name` may list alternatives separated by `|` (the first that exists
/// wins), and a name ending in `.gz` is also satisfied by the uncompressed file (and the other
/// way round).
pub fn locate_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for alt in name.split('|') {
        for candidate in gz_variants(alt) {
            let p = dir.join(&candidate);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn gz_variants(name: &str) -> [String; 2] {
    match name.strip_suffix(".gz") {
        Some(raw) => [name.to_string(), raw.to_string()],
        None => [name.to_string(), format!("{name}.gz")],
    }
}
