//! `course reset`: putting a chapter's placeholders back so it can be done again, after saving
//! the student's files under `.course/backup/` (`course reset --restore` puts them back byte for
//! byte). Only the text between fence lines changes; it refuses outside a student edition.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::fence;
use super::state::{
    chapter_sources, course_dir, read_json, require_student_edition, unix_now, write_json,
};
use super::{io_err, CourseError};

/// The backup folder.
pub fn backup_dir(root: &Path) -> PathBuf {
    course_dir(root).join("backup")
}

/// What a reset did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResetReport {
    /// Files rewritten (and backed up), workspace-relative.
    pub files: Vec<PathBuf>,
    /// Fenced bodies set back to their placeholder.
    pub bodies: usize,
}

/// Puts the placeholders back into the fenced bodies of `chapters`. Files whose bodies already
/// hold their placeholders are left alone; the others are copied first to
/// `.course/backup/<path>` (replacing an older backup of the same file) and listed in
/// `.course/backup/backup.json`.
pub fn reset_chapters(root: &Path, chapters: &[&str]) -> Result<ResetReport, CourseError> {
    require_student_edition(root, "course reset")?;
    let mut planned = Vec::new();
    let mut errors = Vec::new();
    for chapter in chapters {
        for rel in chapter_sources(root, chapter)? {
            let path = root.join(&rel);
            let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
            match fence::rewrite_source(chapter, &rel.to_string_lossy(), &text) {
                Ok(r) => {
                    let changed = r
                        .fences
                        .iter()
                        .filter(|f| !fence::holds_placeholder(fence::body(&text, f), chapter))
                        .count();
                    if r.text != text {
                        planned.push((rel, text, r.text, changed));
                    }
                }
                Err(e) => errors.extend(e),
            }
        }
    }
    if !errors.is_empty() {
        return Err(CourseError::Fences(errors));
    }
    let backup = backup_dir(root);
    let list_path = backup.join("backup.json");
    let mut listed: Vec<String> = if list_path.exists() {
        read_json(&list_path)?
            .get("files")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut report = ResetReport::default();
    for (rel, old, new, changed) in planned {
        let saved = backup.join(&rel);
        if let Some(dir) = saved.parent() {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        std::fs::write(&saved, &old).map_err(io_err(&saved))?;
        let key = rel.to_string_lossy().replace('\\', "/");
        if !listed.contains(&key) {
            listed.push(key);
        }
        write_json(
            &list_path,
            &json!({ "format": 1, "unix_time": unix_now(), "files": listed }),
        )?;
        let path = root.join(&rel);
        std::fs::write(&path, new).map_err(io_err(&path))?;
        report.files.push(rel);
        report.bodies += changed;
    }
    Ok(report)
}

/// Copies every backed-up file back over the workspace's and removes the backup. Returns the
/// files restored (none when there is no backup).
pub fn restore_backup(root: &Path) -> Result<Vec<PathBuf>, CourseError> {
    require_student_edition(root, "course reset --restore")?;
    let backup = backup_dir(root);
    let list_path = backup.join("backup.json");
    if !list_path.exists() {
        return Ok(Vec::new());
    }
    let files: Vec<PathBuf> = read_json(&list_path)?
        .get("files")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(PathBuf::from))
                .collect()
        })
        .unwrap_or_default();
    for rel in &files {
        if rel.is_absolute() || rel.components().any(|c| c.as_os_str() == "..") {
            return Err(CourseError::BadState {
                path: list_path.clone(),
                reason: format!("{} is not a path inside the workspace", rel.display()),
            });
        }
        let saved = backup.join(rel);
        let bytes = std::fs::read(&saved).map_err(io_err(&saved))?;
        let path = root.join(rel);
        std::fs::write(&path, bytes).map_err(io_err(&path))?;
    }
    std::fs::remove_dir_all(&backup).map_err(io_err(&backup))?;
    Ok(files)
}
