//! File reading shared by every reader: whole-file reads that name the path in every error, and
//! transparent gzip decompression (a file is gunzipped when its first bytes are the gzip magic
//! `1f 8b`, whatever its name).
//!
//! Reads are bounded, as a hostile file must not cost memory out of proportion to what it
//! legitimately describes: only regular files are read (a FIFO would block, `/dev/zero` never
//! ends, a directory is not data), a gzip stream may not inflate beyond the size its trailer
//! declares, and readers that know the size a header declares (IDX) stop there
//! ([`read_bytes_bounded`]). Every file read is recorded ([`files_read`]) so a run can print
//! exactly which files it used.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::error::{DataError, Result};

/// The two bytes every gzip stream starts with.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Deflate's largest compression ratio (a stream of one repeated byte): no honest gzip stream
/// inflates to more than this many times its size.
pub const DEFLATE_MAX_RATIO: usize = 1032;

static FILES_READ: Mutex<Vec<(PathBuf, usize)>> = Mutex::new(Vec::new());

/// Every file read so far by this process through this module, with the number of (decompressed)
/// bytes taken from it, in the order read.
pub fn files_read() -> Vec<(PathBuf, usize)> {
    FILES_READ.lock().map(|v| v.clone()).unwrap_or_default()
}

fn record_read(path: &Path, len: usize) {
    if let Ok(mut v) = FILES_READ.lock() {
        let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        v.push((shown, len));
    }
}

/// Check that `path` is a regular file before opening it: a directory, a FIFO (opening it blocks
/// until a writer comes), a device (`/dev/zero` never ends) or a socket is refused by name.
pub fn check_regular_file(path: &Path) -> Result<u64> {
    let meta = fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    let ft = meta.file_type();
    if ft.is_file() {
        return Ok(meta.len());
    }
    let kind = if ft.is_dir() {
        "a directory"
    } else {
        non_regular_kind(&ft)
    };
    Err(DataError::format(
        path,
        format!("is {kind}, expected a regular file"),
    ))
}

#[cfg(unix)]
fn non_regular_kind(ft: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(not(unix))]
fn non_regular_kind(_ft: &fs::FileType) -> &'static str {
    "not a regular file"
}

/// Read a whole file, gunzipping it when it is gzip-compressed.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    read_bytes_bounded(path, None)
}

/// Read a whole regular file, gunzipping it when it is gzip-compressed, and refuse it when its
/// (decompressed) content is longer than `max_len` bytes (the reader knows the size a header
/// declares). Decompression stops one byte past the bound, so memory stays proportional to it.
pub fn read_bytes_bounded(path: &Path, max_len: Option<usize>) -> Result<Vec<u8>> {
    let size = check_regular_file(path)?;
    let mut file = fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        match file.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DataError::io(path, e)),
        }
    }
    let gz = got == 2 && magic == GZIP_MAGIC;
    let raw_limit = if gz { None } else { max_len };
    if let Some(limit) = raw_limit {
        if size > limit as u64 {
            return Err(DataError::format(
                path,
                format!(
                    "{} unexpected trailing bytes after the {limit} bytes its header declares",
                    size - limit as u64
                ),
            ));
        }
    }
    let mut raw = Vec::with_capacity(size as usize);
    raw.extend_from_slice(&magic[..got]);
    file.read_to_end(&mut raw)
        .map_err(|e| DataError::io(path, e))?;
    let bytes = if gz {
        gunzip_bounded(&raw, path, max_len)?
    } else {
        raw
    };
    record_read(path, bytes.len());
    Ok(bytes)
}

/// Decompress a gzip stream held in memory. `path` is only used in error messages.
pub fn gunzip(compressed: &[u8], path: &Path) -> Result<Vec<u8>> {
    gunzip_bounded(compressed, path, None)
}

/// The size a gzip stream declares in its trailer (the last 4 bytes: the uncompressed size modulo
/// 2^32), when it is unambiguous: a stream short enough that it cannot inflate past 4 GiB.
pub fn gzip_declared_size(compressed: &[u8]) -> Option<usize> {
    let n = compressed.len();
    if n < 18 || (n as u64) * (DEFLATE_MAX_RATIO as u64) >= 1u64 << 32 {
        return None;
    }
    Some(u32::from_le_bytes([
        compressed[n - 4],
        compressed[n - 3],
        compressed[n - 2],
        compressed[n - 1],
    ]) as usize)
}

/// Decompress a gzip stream, refusing to inflate beyond `max_len` bytes (when given), beyond the
/// size its trailer declares, or beyond deflate's maximum ratio. Concatenated gzip members are
/// read, within those bounds.
pub fn gunzip_bounded(compressed: &[u8], path: &Path, max_len: Option<usize>) -> Result<Vec<u8>> {
    let ratio_bound = compressed.len().saturating_mul(DEFLATE_MAX_RATIO);
    let declared = gzip_declared_size(compressed);
    let mut bound = ratio_bound;
    if let Some(d) = declared {
        bound = bound.min(d);
    }
    if let Some(m) = max_len {
        bound = bound.min(m);
    }
    let mut out = Vec::with_capacity(bound.min(1 << 26));
    MultiGzDecoder::new(compressed)
        .take(bound as u64 + 1)
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
    if out.len() > bound {
        let reason = match (max_len, declared) {
            (Some(m), _) if m == bound => format!(
                "unexpected trailing bytes after the {m} bytes its header declares (decompression stopped there)"
            ),
            (_, Some(d)) if d == bound => format!(
                "gzip stream inflates beyond the {d} bytes its trailer declares (stopped reading there)"
            ),
            _ => format!(
                "gzip stream inflates beyond {bound} bytes, more than deflate's maximum ratio allows"
            ),
        };
        return Err(DataError::format(path, reason));
    }
    Ok(out)
}

/// Read a whole file as UTF-8 text (gunzipping if needed). Invalid UTF-8 is an error that gives
/// the byte offset of the first bad sequence. A leading UTF-8 byte-order mark is dropped.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = read_bytes(path)?;
    let mut text = String::from_utf8(bytes).map_err(|e| DataError::InvalidUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
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

/// Among the names `name` stands for (see [`locate_file`]), one that exists in `dir` but is not a
/// regular file (a directory named `train.csv`, say), so a message can say so.
pub fn locate_non_file(dir: &Path, name: &str) -> Option<PathBuf> {
    name.split('|')
        .flat_map(gz_variants)
        .map(|c| dir.join(c))
        .find(|p| p.exists() && !p.is_file())
}

fn gz_variants(name: &str) -> [String; 2] {
    match name.strip_suffix(".gz") {
        Some(raw) => [name.to_string(), raw.to_string()],
        None => [name.to_string(), format!("{name}.gz")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    /// Decompressing a gzip stream stops at the size its trailer (or the caller) declares, so a
    /// forged small size cannot inflate a bomb.
    #[test]
    fn gzip_bomb_stops_at_the_declared_bound() {
        let path = Path::new("bomb.gz");
        let data = vec![0u8; 1 << 20];
        let mut c = gz(&data);
        // Forge the trailer to declare 1 KiB.
        let n = c.len();
        c[n - 4..].copy_from_slice(&1024u32.to_le_bytes());
        let err = gunzip(&c, path).unwrap_err().to_string();
        assert!(err.contains("1024 bytes its trailer declares"), "{err}");
        // An honest trailer passes, a header bound below the content is refused.
        let c = gz(&data);
        assert_eq!(gunzip(&c, path).unwrap().len(), 1 << 20);
        let err = gunzip_bounded(&c, path, Some(100)).unwrap_err().to_string();
        assert!(
            err.contains("after the 100 bytes its header declares"),
            "{err}"
        );
    }

    /// Directories and device files (such as /dev/zero) are refused by name instead of read
    /// forever.
    #[test]
    fn non_regular_files_are_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("tt-io-nonreg-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let err = read_bytes(&dir).unwrap_err().to_string();
        assert!(
            err.contains("is a directory, expected a regular file"),
            "{err}"
        );
        #[cfg(unix)]
        {
            let err = read_bytes(Path::new("/dev/zero")).unwrap_err().to_string();
            assert!(err.contains("character device"), "{err}");
            let fifo = dir.join("pipe");
            let _ = fs::remove_file(&fifo);
            let status = std::process::Command::new("mkfifo").arg(&fifo).status();
            if status.map(|s| s.success()).unwrap_or(false) {
                let err = read_bytes(&fifo).unwrap_err().to_string();
                assert!(err.contains("FIFO"), "{err}");
            }
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A UTF-8 byte order mark is dropped from text, and every file read is recorded with its size.
    #[test]
    fn bom_is_dropped_and_reads_are_recorded() {
        let dir = std::env::temp_dir().join(format!("tt-io-bom-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bom.txt");
        fs::write(&p, "\u{feff}label,p0\n").unwrap();
        assert_eq!(read_text(&p).unwrap(), "label,p0\n");
        assert!(files_read()
            .iter()
            .any(|(f, n)| f.ends_with("bom.txt") && *n == 12));
        fs::remove_dir_all(&dir).unwrap();
    }
}
