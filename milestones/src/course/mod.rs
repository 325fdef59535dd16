//! Course mode: the workspace as a course whose chapters are the library crates, graded by their
//! own tests. This module is the logic behind the `course` binary (see `COURSE.md`):
//!
//! | module | what |
//! |---|---|
//! | [`fence`] | finding, validating and rewriting `// BEGIN SOLUTION` fences |
//! | [`edition`] | writing a student edition of the workspace |
//! | [`libtest`] | parsing `cargo test` output |
//! | [`runner`] | running a chapter's tests, finding a test's doc comment, rerun commands |
//! | [`state`] | the `.course/` folder: edition marker, recorded completions, hashes of fenced bodies |
//! | [`reset`] | putting placeholders back (`course reset`) and restoring the student's backup |
//! | [`grading`] | the grading manifest, points per chapter, the guards against grading the wrong code or skipped tests |
//! | [`exercises`] | a chapter's exercises in README order (`course check`) |
//! | [`guide`] | the milestone guide: data, figures, locks from a fresh run, the timeline |
//! | [`commands`] | the `course` subcommands, one file each: what they print, their exit status |
//!
//! The chapter order and the milestone each group of chapters unlocks live here.

pub mod commands;
pub mod edition;
pub mod exercises;
pub mod fence;
pub mod grading;
pub mod guide;
pub mod libtest;
pub mod reset;
pub mod runner;
pub mod state;

use std::fmt;
use std::path::{Path, PathBuf};

/// The chapters (library crates) in the order a student builds them: chapter `i + 1` of
/// COURSE.md (and of each crate's README, `lib.rs` header and Cargo description) is `CHAPTERS[i]`.
pub const CHAPTERS: [&str; 6] = ["tensor", "autograd", "nn", "optim", "data", "models"];

/// A milestone binary and the chapters it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Milestone {
    pub name: &'static str,
    pub needs: &'static [&'static str],
    pub what: &'static str,
}

const CORE: &[&str] = &["tensor", "autograd", "nn", "optim"];
const ALL: &[&str] = &CHAPTERS;

/// The milestones (binaries of `milestones/src/bin/`) and the chapters whose code they run.
pub const MILESTONES: [Milestone; 7] = [
    Milestone {
        name: "perceptron-1957",
        needs: CORE,
        what: "a single linear unit learns to separate two blobs",
    },
    Milestone {
        name: "xor-1969",
        needs: CORE,
        what: "a hidden layer solves the XOR a perceptron cannot",
    },
    Milestone {
        name: "mlp-1986",
        needs: ALL,
        what: "a multilayer perceptron trained by backprop classifies digits",
    },
    Milestone {
        name: "cnn-1998",
        needs: ALL,
        what: "a convolutional network classifies digits",
    },
    Milestone {
        name: "transformer-2017",
        needs: ALL,
        what: "a small GPT learns a generated language and writes in it",
    },
    Milestone {
        name: "doctor",
        needs: ALL,
        what: "the training doctor diagnoses broken training runs",
    },
    Milestone {
        name: "mlperf-2018",
        needs: ALL,
        what: "int8, pruning and distillation measured honestly: accuracy, latency, size, Pareto",
    },
];

/// The milestone called `name`.
pub fn milestone(name: &str) -> Option<&'static Milestone> {
    MILESTONES.iter().find(|m| m.name == name)
}

/// The milestones a chapter completes: those whose last needed chapter (in course order) it is.
pub fn unlocked_by(chapter: &str) -> Vec<&'static Milestone> {
    let pos = |c: &str| CHAPTERS.iter().position(|x| *x == c);
    MILESTONES
        .iter()
        .filter(|m| m.needs.iter().filter_map(|c| pos(c)).max() == pos(chapter))
        .collect()
}

/// Errors of the course tooling.
#[derive(Debug)]
pub enum CourseError {
    /// No `Cargo.toml` with `[workspace]` at or above the directory.
    NoWorkspace(PathBuf),
    /// A file system operation failed.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A command could not be started.
    Spawn {
        command: String,
        source: std::io::Error,
    },
    /// A command that must succeed (such as `git ls-files`) failed.
    CommandFailed {
        command: String,
        output: String,
    },
    /// Fences that cannot be rewritten (all of them, each naming its file and line).
    Fences(Vec<fence::FenceError>),
    /// A library crate without any fence.
    NoFences(Vec<String>),
    /// The output directory exists and is not empty.
    OutDirNotEmpty(PathBuf),
    /// The output directory is the workspace or inside its source tree.
    OutDirInWorkspace(PathBuf),
    UnknownChapter(String),
    UnknownMilestone(String),
    /// A command that rewrites or records student work, run outside a student edition.
    NotAnEdition {
        what: String,
        root: PathBuf,
    },
    /// A `.course/` file that cannot be read.
    BadState {
        path: PathBuf,
        reason: String,
    },
    /// A chapter's code comes from outside the graded workspace (a reference copy).
    ForeignCode {
        chapter: String,
        path: PathBuf,
        root: PathBuf,
    },
}

impl fmt::Display for CourseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CourseError::NoWorkspace(d) => write!(
                f,
                "no Cargo.toml with [workspace] at or above {} (use --workspace DIR)",
                d.display()
            ),
            CourseError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            CourseError::Spawn { command, source } => {
                write!(f, "could not run `{command}`: {source}")
            }
            CourseError::CommandFailed { command, output } => {
                write!(f, "`{command}` failed:\n{output}")
            }
            CourseError::Fences(errs) => {
                writeln!(f, "{} bad solution fence(s):", errs.len())?;
                for e in errs {
                    writeln!(f, "  {e}")?;
                }
                Ok(())
            }
            CourseError::NoFences(crates) => write!(
                f,
                "no `{}` fences in the library crate(s) {}: every chapter needs an assignment",
                fence::BEGIN,
                crates.join(", ")
            ),
            CourseError::OutDirNotEmpty(d) => write!(
                f,
                "{} exists and is not empty (pass --force to write into it anyway)",
                d.display()
            ),
            CourseError::OutDirInWorkspace(d) => write!(
                f,
                "{} is the workspace or inside its sources: choose a directory outside it (or under target/)",
                d.display()
            ),
            CourseError::UnknownChapter(c) => write!(
                f,
                "unknown chapter `{c}`: the chapters are {}",
                CHAPTERS.join(", ")
            ),
            CourseError::NotAnEdition { what, root } => write!(
                f,
                "`{what}` works only in a student edition, and {} is not one (no .course/edition.json): it would rewrite or record the reference sources",
                root.display()
            ),
            CourseError::BadState { path, reason } => {
                write!(f, "{}: {reason} (delete it to start over)", path.display())
            }
            CourseError::ForeignCode {
                chapter,
                path,
                root,
            } => write!(
                f,
                "chapter `{chapter}` would be graded from {}, outside the graded workspace {}: refusing to grade code that is not the student's",
                path.display(),
                root.display()
            ),
            CourseError::UnknownMilestone(m) => write!(
                f,
                "unknown milestone `{m}`: the milestones are {}",
                MILESTONES.map(|m| m.name).join(", ")
            ),
        }
    }
}

impl std::error::Error for CourseError {}

/// Wraps an I/O error with its path.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CourseError + '_ {
    move |source| CourseError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The chapter called `name` (an error lists the chapters).
pub fn chapter(name: &str) -> Result<&'static str, CourseError> {
    CHAPTERS
        .iter()
        .find(|c| **c == name)
        .copied()
        .ok_or_else(|| CourseError::UnknownChapter(name.to_string()))
}

/// The workspace root: the nearest directory at or above `start` whose `Cargo.toml` declares
/// `[workspace]`.
pub fn find_workspace_root(start: &Path) -> Result<PathBuf, CourseError> {
    let start = start.canonicalize().map_err(io_err(start))?;
    for dir in start.ancestors() {
        let manifest = dir.join("Cargo.toml");
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            if text.lines().any(|l| l.trim() == "[workspace]") {
                return Ok(dir.to_path_buf());
            }
        }
    }
    Err(CourseError::NoWorkspace(start))
}
