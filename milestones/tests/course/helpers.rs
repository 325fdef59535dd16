//! Helpers of the course-tooling tests: the placeholder call built at run time, the workspace root,
//! running a command, listing Rust files.

use milestones::course::fence::PLACEHOLDER;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// `<placeholder>!(` built at run time (the literal is not written in shipped sources).
pub fn call() -> String {
    format!("{PLACEHOLDER}!(")
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs a command, returning (success, stdout + stderr) and printing how long it took.
pub fn run(what: &str, cmd: &mut Command) -> (bool, String) {
    let t = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    eprintln!("{what}: {:.1} s", t.elapsed().as_secs_f64());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub fn walk_rs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_rs(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}
