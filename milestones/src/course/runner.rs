//! Running a chapter's tests with cargo, and what a student needs to act on a failure: the
//! failing test's doc comment and the command that reruns just that test.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use super::libtest::{self, Target, TestRun};
use super::{io_err, CourseError};

/// How chapters' tests are built and run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestOptions {
    /// `--release` (the default: the tests are tuned for it); false uses the dev profile.
    pub release: bool,
    /// Echo all of cargo's output (otherwise only its `Compiling` progress lines).
    pub verbose: bool,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            release: true,
            verbose: false,
        }
    }
}

/// The cargo arguments grading a chapter: its unit and integration tests (not its doc examples),
/// every target even when one fails.
pub fn test_args(chapter: &str, opts: TestOptions) -> Vec<String> {
    let mut args = vec!["test".to_string(), "-p".into(), chapter.into()];
    if opts.release {
        args.push("--release".into());
    }
    args.extend(["--tests".into(), "--no-fail-fast".into()]);
    args
}

/// The shell command that reruns one test.
pub fn rerun_command(chapter: &str, target: &Target, name: &str, opts: TestOptions) -> String {
    let mut parts = vec!["cargo test -p".to_string(), chapter.to_string()];
    if opts.release {
        parts.push("--release".into());
    }
    parts.extend(target.cargo_args());
    parts.extend(["--".into(), name.to_string(), "--exact".into()]);
    parts.join(" ")
}

/// The cargo program: `$CARGO` when run by cargo, else `cargo`.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// Runs `cargo <args>` in `root` with stdout and stderr merged in order (so each test line
/// follows the `Running` line of its binary), echoing progress to stderr. Returns the output and
/// the exit status.
pub fn run_cargo(
    root: &Path,
    args: &[String],
    verbose: bool,
) -> Result<(String, ExitStatus), CourseError> {
    let shown = format!("cargo {}", args.join(" "));
    let spawn_err = |source| CourseError::Spawn {
        command: shown.clone(),
        source,
    };
    let (reader, writer) = std::io::pipe().map_err(spawn_err)?;
    let mut cmd = Command::new(cargo());
    cmd.args(args)
        .current_dir(root)
        .env("CARGO_TERM_COLOR", "never")
        .stdout(writer.try_clone().map_err(spawn_err)?)
        .stderr(writer);
    let mut child = cmd.spawn().map_err(spawn_err)?;
    drop(cmd); // closes our copies of the pipe's write end, so reading ends with the child
    let mut output = String::new();
    let mut err = std::io::stderr();
    let progress = !verbose && err.is_terminal();
    for line in BufReader::new(reader).lines() {
        let line = line.map_err(io_err(root))?;
        let t = line.trim_start();
        if verbose {
            let _ = writeln!(err, "{line}");
        } else if progress && t.starts_with("Compiling ") {
            let _ = write!(err, "\r\x1b[2K  {}", t);
            let _ = err.flush();
        }
        output.push_str(&line);
        output.push('\n');
    }
    if progress {
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
    }
    let status = child.wait().map_err(io_err(root))?;
    Ok((output, status))
}

/// Runs a chapter's tests and parses the result.
pub fn run_chapter(
    root: &Path,
    chapter: &str,
    opts: TestOptions,
) -> Result<(TestRun, String), CourseError> {
    let (output, _) = run_cargo(root, &test_args(chapter, opts), opts.verbose)?;
    Ok((libtest::parse(&output), output))
}

/// A test function's source location and doc comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestDoc {
    /// Workspace-relative file.
    pub file: PathBuf,
    /// 1-based line of the `fn`.
    pub line: usize,
    /// The `///` lines above it (joined with newlines, markers removed); empty if none.
    pub doc: String,
}

/// Finds `fn <name>` in `source` with a `#[test]`-like attribute above it: the 1-based line and
/// the doc comment above it (attributes may sit between the doc and the `fn`).
pub fn find_test_fn(source: &str, name: &str) -> Option<(usize, String)> {
    let lines: Vec<&str> = source.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        let t = t.strip_prefix("pub ").unwrap_or(t);
        let t = t.strip_prefix("async ").unwrap_or(t);
        let Some(rest) = t.strip_prefix("fn ") else {
            continue;
        };
        let after = rest.strip_prefix(name);
        if !after.is_some_and(|a| a.starts_with('(') || a.starts_with('<')) {
            continue;
        }
        let mut doc = Vec::new();
        let mut is_test = false;
        let mut j = i;
        while j > 0 {
            let above = lines[j - 1].trim();
            if let Some(d) = above.strip_prefix("///") {
                doc.push(d.strip_prefix(' ').unwrap_or(d));
            } else if above.starts_with("#[") || above.starts_with("//") || above.ends_with(")]") {
                if above.contains("test") {
                    is_test = true;
                }
            } else {
                break;
            }
            j -= 1;
        }
        if is_test {
            doc.reverse();
            return Some((i + 1, doc.join("\n").trim().to_string()));
        }
    }
    None
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Finds the test called `full_name` (`module::tests::name`) of `chapter` in its `tests/` and
/// `src/` files, preferring the file its target and module path point at.
pub fn find_test_doc(
    root: &Path,
    chapter: &str,
    target: &Target,
    full_name: &str,
) -> Option<TestDoc> {
    let name = full_name.rsplit("::").next()?;
    let krate = root.join(chapter);
    let mut files = Vec::new();
    rust_files(&krate.join("tests"), &mut files);
    rust_files(&krate.join("src"), &mut files);
    let modules: Vec<&str> = full_name.split("::").collect();
    let score = |p: &Path| -> usize {
        let rel = p.strip_prefix(&krate).unwrap_or(p).to_string_lossy();
        let mut s = 0;
        if let Target::Test(t) = target {
            if rel == format!("tests/{t}.rs") || rel.starts_with(&format!("tests/{t}/")) {
                s += 10;
            }
        }
        if matches!(target, Target::Lib) && rel.starts_with("src/") {
            s += 5;
        }
        s + modules[..modules.len() - 1]
            .iter()
            .filter(|m| **m != "tests" && rel.contains(*m))
            .count()
    };
    let mut best: Option<(usize, TestDoc)> = None;
    for p in files {
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        if !text.contains(name) {
            continue;
        }
        if let Some((line, doc)) = find_test_fn(&text, name) {
            let s = score(&p);
            if best.as_ref().is_none_or(|(b, _)| s > *b) {
                let file = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
                best = Some((s, TestDoc { file, line, doc }));
            }
        }
    }
    best.map(|(_, d)| d)
}
