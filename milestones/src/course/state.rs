//! The course state kept in a student's workspace, in `.course/` as readable JSON:
//!
//! - `edition.json`: written by the student edition; marks the workspace as one (reset refuses
//!   elsewhere, so it can never rewrite the reference sources).
//! - `grading.json`: the grading manifest (see [`super::grading`]).
//! - `progress.json`: the chapters recorded as complete, each with its time, test counts and the
//!   hash of its fenced bodies when it was recorded.
//! - `backup/`: the student's files as they were before the last `course reset`.
//!
//! Unlocks are never read from here: they always come from a fresh test run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::edition::chapter_of;
use super::fence;
use super::{io_err, CourseError};

/// The state folder of a workspace.
pub fn course_dir(root: &Path) -> PathBuf {
    root.join(".course")
}

/// The edition marker file.
pub fn edition_marker(root: &Path) -> PathBuf {
    course_dir(root).join("edition.json")
}

/// Whether `root` is a student edition (it has the edition marker).
pub fn is_student_edition(root: &Path) -> bool {
    edition_marker(root).is_file()
}

/// Refuses a workspace that is not a student edition.
pub fn require_student_edition(root: &Path, what: &str) -> Result<(), CourseError> {
    if is_student_edition(root) {
        Ok(())
    } else {
        Err(CourseError::NotAnEdition {
            what: what.to_string(),
            root: root.to_path_buf(),
        })
    }
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> Result<Value, CourseError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    serde_json::from_str(&text).map_err(|e| CourseError::BadState {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Writes a JSON file (pretty, with a final newline), creating its folder.
pub fn write_json(path: &Path, value: &Value) -> Result<(), CourseError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    std::fs::write(path, text).map_err(io_err(path))
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time (UTC; the civil calendar from days since 1970).
pub fn utc_timestamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days_from_civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// One fenced body of a chapter in a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// Workspace-relative file.
    pub file: PathBuf,
    /// The fence (1-based lines of its `BEGIN` and `END`).
    pub fence: fence::Fence,
    /// The text between the fence lines.
    pub text: String,
}

impl Body {
    /// Whether the student has not written this body yet.
    pub fn is_placeholder(&self, chapter: &str) -> bool {
        fence::holds_placeholder(&self.text, chapter)
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CourseError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            rust_files(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    Ok(())
}

/// The chapter's source files (workspace-relative, sorted).
pub fn chapter_sources(root: &Path, chapter: &str) -> Result<Vec<PathBuf>, CourseError> {
    let mut files = Vec::new();
    rust_files(&root.join(chapter).join("src"), &mut files)?;
    Ok(files
        .into_iter()
        .filter_map(|p| p.strip_prefix(root).ok().map(Path::to_path_buf))
        .filter(|rel| chapter_of(rel) == Some(chapter))
        .collect())
}

/// Every fenced body of a chapter, in file and line order. Bad fences are an error naming them.
pub fn chapter_bodies(root: &Path, chapter: &str) -> Result<Vec<Body>, CourseError> {
    let mut bodies = Vec::new();
    let mut errors = Vec::new();
    for rel in chapter_sources(root, chapter)? {
        let path = root.join(&rel);
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        match fence::find_fences(&rel.to_string_lossy(), &text) {
            Ok(fences) => bodies.extend(fences.into_iter().map(|f| Body {
                text: fence::body(&text, &f).to_string(),
                file: rel.clone(),
                fence: f,
            })),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(bodies)
    } else {
        Err(CourseError::Fences(errors))
    }
}

/// A stable hash (FNV-1a, 64 bits, hex) of the bodies: their files and texts, in order. Code
/// outside the fences does not change it.
pub fn bodies_hash(bodies: &[Body]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for b in bodies {
        eat(b.file.to_string_lossy().as_bytes());
        eat(&[0]);
        eat(b.text.replace("\r\n", "\n").as_bytes());
        eat(&[0]);
    }
    format!("{h:016x}")
}

/// A recorded completion of a chapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub unix_time: u64,
    pub passed: usize,
    pub failed: usize,
    pub ignored: usize,
    /// Doc examples among `passed`.
    pub doc_tests: usize,
    pub bodies_hash: String,
}

impl Completion {
    fn to_json(&self) -> Value {
        json!({
            "completed_at": utc_timestamp(self.unix_time),
            "unix_time": self.unix_time,
            "passed": self.passed,
            "failed": self.failed,
            "ignored": self.ignored,
            "doc_tests": self.doc_tests,
            "bodies_hash": self.bodies_hash,
        })
    }

    fn from_json(v: &Value) -> Option<Completion> {
        let n = |k: &str| v.get(k).and_then(Value::as_u64);
        Some(Completion {
            unix_time: n("unix_time")?,
            passed: n("passed")? as usize,
            failed: n("failed").unwrap_or(0) as usize,
            ignored: n("ignored").unwrap_or(0) as usize,
            doc_tests: n("doc_tests").unwrap_or(0) as usize,
            bodies_hash: v.get("bodies_hash")?.as_str()?.to_string(),
        })
    }
}

/// The progress file.
pub fn progress_path(root: &Path) -> PathBuf {
    course_dir(root).join("progress.json")
}

/// The recorded completions, by chapter (empty when nothing is recorded yet).
pub fn read_completions(root: &Path) -> Result<BTreeMap<String, Completion>, CourseError> {
    let path = progress_path(root);
    if !path.exists() {
        return Ok(BTreeMap::new());
    }
    let v = read_json(&path)?;
    let mut out = BTreeMap::new();
    if let Some(map) = v.get("completions").and_then(Value::as_object) {
        for (chapter, c) in map {
            let c = Completion::from_json(c).ok_or_else(|| CourseError::BadState {
                path: path.clone(),
                reason: format!("the completion of `{chapter}` lacks a field"),
            })?;
            out.insert(chapter.clone(), c);
        }
    }
    Ok(out)
}

/// Records (or replaces) a chapter's completion.
pub fn record_completion(root: &Path, chapter: &str, c: &Completion) -> Result<(), CourseError> {
    let mut all = read_completions(root)?;
    all.insert(chapter.to_string(), c.clone());
    let map: serde_json::Map<String, Value> =
        all.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
    write_json(
        &progress_path(root),
        &json!({ "format": 1, "completions": map }),
    )
}
