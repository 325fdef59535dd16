//! The `reset` command: puts the placeholders back into chapters' fenced bodies (the student's
//! files saved first), or restores the saved files.

use std::path::Path;
use std::process::ExitCode;

use crate::course::reset::{reset_chapters, restore_backup};
use crate::course::{chapter, CourseError, CHAPTERS};

/// `course reset CHAPTER | --all | --restore`.
pub fn reset(
    root: &Path,
    c: Option<&str>,
    all: bool,
    restore: bool,
) -> Result<ExitCode, CourseError> {
    if restore {
        let files = restore_backup(root)?;
        if files.is_empty() {
            println!("No backup to restore (.course/backup/ is empty).");
        } else {
            println!("Restored {} file(s) from .course/backup/:", files.len());
            for f in &files {
                println!("  {}", f.display());
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let chapters: Vec<&str> = match (c, all) {
        (_, true) => CHAPTERS.to_vec(),
        (Some(c), false) => vec![chapter(c)?],
        (None, false) => {
            return Err(CourseError::UnknownChapter(
                "(none given; name a chapter or pass --all)".into(),
            ))
        }
    };
    let report = reset_chapters(root, &chapters)?;
    if report.files.is_empty() {
        println!(
            "Nothing to reset: every fenced body of {} holds its placeholder.",
            chapters.join(", ")
        );
    } else {
        println!(
            "Reset {} fenced bodies in {} file(s) of {}; your versions are saved under .course/backup/ (undo with `course reset --restore`):",
            report.bodies,
            report.files.len(),
            chapters.join(", ")
        );
        for f in &report.files {
            println!("  {}", f.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
