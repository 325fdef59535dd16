//! Helpers shared by the grader tests: unique temporary directories, removed on drop.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system temp dir, deleted when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("tinytorch-data-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Assert that an error's message contains every one of `parts`.
#[track_caller]
pub fn assert_err_contains<T: std::fmt::Debug>(result: data::Result<T>, parts: &[&str]) {
    let err = result.expect_err("expected an error");
    let msg = err.to_string();
    for p in parts {
        assert!(
            msg.contains(p),
            "error message {msg:?} does not contain {p:?}"
        );
    }
}

/// Write bytes gzip-compressed.
pub fn write_gz(path: &Path, bytes: &[u8]) {
    data::io::write_bytes(path, bytes, true).expect("write gz");
}
