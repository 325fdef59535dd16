//! The student edition: a copy of the workspace in which every fenced body of the library crates
//! (the chapters) is replaced by a panic carrying its chapter and hint (the fence lines stay
//! around it). Signatures, docs, tests and the milestones stay, so the copy builds and the
//! chapters' tests grade the student's work. The copy is marked as an edition by
//! `.course/edition.json` and carries its grading manifest in `.course/grading.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::fence::{self, Fence};
use super::{io_err, CourseError, CHAPTERS};

/// What a student edition holds.
#[derive(Debug, Clone, Default)]
pub struct EditionReport {
    /// Files written.
    pub files: usize,
    /// Fences replaced, per chapter (every chapter listed, in course order).
    pub fences: Vec<(String, usize)>,
    /// Fences that cover only the tail of a body (code above them stays): `file:line`.
    pub partial: Vec<String>,
}

impl EditionReport {
    pub fn total_fences(&self) -> usize {
        self.fences.iter().map(|(_, n)| n).sum()
    }
}

/// The chapter whose sources `rel` (a workspace-relative path) belongs to, if it is a `.rs` file
/// under a library crate's `src/`.
pub fn chapter_of(rel: &Path) -> Option<&'static str> {
    let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy());
    let krate = parts.next()?;
    let chapter = CHAPTERS.iter().find(|c| **c == krate)?;
    (parts.next()? == "src" && rel.extension().is_some_and(|e| e == "rs")).then_some(chapter)
}

/// The workspace's files, relative to `root`. In a git checkout: the tracked files plus untracked
/// ones that are not ignored (`git ls-files --cached --others --exclude-standard`), as they are in
/// the working tree, so the copy builds whenever the working tree does. Elsewhere: every file
/// except `.git/`, and `target/` and `runs/` at the top.
pub fn workspace_files(root: &Path) -> Result<Vec<PathBuf>, CourseError> {
    if root.join(".git").exists() {
        let cmd = "git ls-files -z --cached --others --exclude-standard";
        let out = Command::new("git")
            .args([
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ])
            .current_dir(root)
            .output()
            .map_err(|source| CourseError::Spawn {
                command: cmd.into(),
                source,
            })?;
        if !out.status.success() {
            return Err(CourseError::CommandFailed {
                command: cmd.into(),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let text = String::from_utf8_lossy(&out.stdout);
        return Ok(text
            .split('\0')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            // Tracked but deleted in the working tree: nothing to copy.
            .filter(|p| root.join(p).is_file())
            .collect());
    }
    let mut files = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for entry in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name();
            let child = rel.join(&name);
            let ty = entry.file_type().map_err(io_err(&entry.path()))?;
            if ty.is_dir() {
                if rel.as_os_str().is_empty() && (name == "target" || name == "runs") {
                    continue;
                }
                if name == ".git" {
                    continue;
                }
                stack.push(child);
            } else if ty.is_file() {
                files.push(child);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Rewrites the chapters' sources in memory: `(relative path, new text, fences)` for every file
/// with fences. Every bad fence of the workspace is reported at once.
pub fn rewrite_chapters(
    root: &Path,
    files: &[PathBuf],
) -> Result<Vec<(PathBuf, String, Vec<Fence>)>, CourseError> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for rel in files {
        let Some(chapter) = chapter_of(rel) else {
            continue;
        };
        let path = root.join(rel);
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        match fence::rewrite_source(chapter, &rel.to_string_lossy(), &text) {
            Ok(r) if !r.fences.is_empty() => out.push((rel.clone(), r.text, r.fences)),
            Ok(_) => {}
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(CourseError::Fences(errors))
    }
}

/// Whether `rel` is a chapter crate's manifest (`tensor/Cargo.toml`, ...).
fn is_chapter_manifest(rel: &Path) -> bool {
    CHAPTERS
        .iter()
        .any(|c| rel == Path::new(c).join("Cargo.toml"))
}

/// A chapter manifest with the `unused` lints allowed: every unfinished body leaves parameters,
/// imports and helpers unused, and thousands of warnings would bury the compiler's real errors.
/// A manifest that already has a `[lints]` table is left as it is.
pub fn allow_unused_lints(manifest: &str) -> String {
    if manifest.contains("[lints") {
        return manifest.to_string();
    }
    let mut text = manifest.trim_end().to_string();
    text.push_str(
        "\n\n# Student edition: unfinished bodies leave parameters and helpers unused.\n[lints.rust]\nunused = \"allow\"\n",
    );
    text
}

/// Whether `dir` has no entries (or does not exist).
fn is_empty_dir(dir: &Path) -> Result<bool, CourseError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io_err(dir)(e)),
    }
}

/// Writes the student edition of the workspace at `root` into `out`. Refuses a non-empty `out`
/// unless `force`, and an `out` that is the workspace or inside its sources (under `target/` is
/// fine). Fails, writing nothing, if any fence is bad or a chapter has no fence.
pub fn make_student_edition(
    root: &Path,
    out: &Path,
    force: bool,
) -> Result<EditionReport, CourseError> {
    let root = root.canonicalize().map_err(io_err(root))?;
    // Every refusal happens before anything is created: the folder is resolved without being
    // made, so a refused run leaves no folder behind.
    let out_abs = resolve_without_creating(out)?;
    if out_abs == root || (out_abs.starts_with(&root) && !out_abs.starts_with(root.join("target")))
    {
        return Err(CourseError::OutDirInWorkspace(out_abs));
    }
    if out_abs.exists() && !out_abs.is_dir() {
        return Err(io_err(&out_abs)(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "exists and is not a directory",
        )));
    }
    if !force && !is_empty_dir(&out_abs)? {
        return Err(CourseError::OutDirNotEmpty(out_abs));
    }

    // A workspace's own course state (a student's progress) never goes into a new edition.
    let files: Vec<PathBuf> = workspace_files(&root)?
        .into_iter()
        .filter(|p| !p.starts_with(".course"))
        .collect();
    let rewritten = rewrite_chapters(&root, &files)?;
    let mut per_chapter: BTreeMap<&str, usize> = CHAPTERS.iter().map(|c| (*c, 0)).collect();
    let mut partial = Vec::new();
    for (rel, _, fences) in &rewritten {
        if let Some(c) = chapter_of(rel) {
            *per_chapter.entry(c).or_default() += fences.len();
        }
        for f in fences.iter().filter(|f| !f.whole_body) {
            partial.push(format!("{}:{}", rel.display(), f.begin));
        }
    }
    let missing: Vec<String> = CHAPTERS
        .iter()
        .filter(|c| per_chapter[*c] == 0)
        .map(|c| c.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(CourseError::NoFences(missing));
    }

    let replaced: BTreeMap<&Path, &str> = rewritten
        .iter()
        .map(|(rel, text, _)| (rel.as_path(), text.as_str()))
        .collect();
    // Write into a staging folder beside `out`, moved into place only when complete: a failure
    // part-way leaves no partial copy (the staging folder is removed).
    let staging = staging_dir(&out_abs);
    let written = write_edition(&root, &staging, &files, &replaced, &per_chapter)
        .and_then(|()| move_into_place(&staging, &out_abs));
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    written?;
    Ok(EditionReport {
        files: files.len(),
        fences: CHAPTERS
            .iter()
            .map(|c| (c.to_string(), per_chapter[c]))
            .collect(),
        partial,
    })
}

/// `path` made absolute with its existing part canonicalized (symlinks resolved), creating
/// nothing.
fn resolve_without_creating(path: &Path) -> Result<PathBuf, CourseError> {
    let abs = std::path::absolute(path).map_err(io_err(path))?;
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => break,
        }
    }
    let mut resolved = existing.canonicalize().map_err(io_err(existing))?;
    for name in rest.into_iter().rev() {
        resolved.push(name);
    }
    Ok(resolved)
}

/// A fresh sibling of `out` to stage the edition in.
fn staging_dir(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "edition".to_string());
    out.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

/// Move the staged edition to `out`: a rename when `out` is absent or empty, else (with
/// `--force`) each top-level entry replaces its namesake.
fn move_into_place(staging: &Path, out: &Path) -> Result<(), CourseError> {
    if is_empty_dir(out)? {
        if out.exists() {
            std::fs::remove_dir(out).map_err(io_err(out))?;
        }
        return std::fs::rename(staging, out).map_err(io_err(out));
    }
    for entry in std::fs::read_dir(staging).map_err(io_err(staging))? {
        let entry = entry.map_err(io_err(staging))?;
        let dst = out.join(entry.file_name());
        if dst.is_dir() {
            std::fs::remove_dir_all(&dst).map_err(io_err(&dst))?;
        } else if dst.exists() {
            std::fs::remove_file(&dst).map_err(io_err(&dst))?;
        }
        std::fs::rename(entry.path(), &dst).map_err(io_err(&dst))?;
    }
    std::fs::remove_dir(staging).map_err(io_err(staging))
}

/// Write every file of the edition under `dir`.
fn write_edition(
    root: &Path,
    dir: &Path,
    files: &[PathBuf],
    replaced: &BTreeMap<&Path, &str>,
    per_chapter: &BTreeMap<&str, usize>,
) -> Result<(), CourseError> {
    let out_abs = dir;
    for rel in files {
        let dst = out_abs.join(rel);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        match replaced.get(rel.as_path()) {
            Some(text) => std::fs::write(&dst, text).map_err(io_err(&dst))?,
            None if is_chapter_manifest(rel) => {
                let src = root.join(rel);
                let text = std::fs::read_to_string(&src).map_err(io_err(&src))?;
                std::fs::write(&dst, allow_unused_lints(&text)).map_err(io_err(&dst))?;
            }
            None => {
                let src = root.join(rel);
                std::fs::copy(&src, &dst).map_err(io_err(&src))?;
            }
        }
    }
    // The edition's marker and grading manifest go in with the files (staged like them).
    let marker = super::state::edition_marker(out_abs);
    super::state::write_json(
        &marker,
        &serde_json::json!({
            "format": 1,
            "created_unix_time": super::state::unix_now(),
            "chapters": CHAPTERS,
            "fences": per_chapter,
        }),
    )?;
    super::grading::scan_manifest(root).write(&super::grading::manifest_path(out_abs))?;
    Ok(())
}
