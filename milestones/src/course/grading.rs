//! Grading: the manifest of graded tests (with weights), per-test results of a fresh run, points
//! per chapter, and the guards that keep a grade honest:
//!
//! - the code graded is the workspace's own: every chapter crate, and every path dependency on a
//!   chapter, must live inside the graded workspace (`cargo metadata`), so a grader can never
//!   test a reference copy instead of the student's;
//! - no test is skipped silently: a graded test that did not run (its file left out of the
//!   build, renamed, ignored) counts as missing, worth no points, and every `tests/*.rs` file of
//!   a chapter must have run for `course complete`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use super::libtest::{Outcome, Target, TestRun};
use super::runner::{cargo, find_test_fn};
use super::state::{course_dir, read_json, write_json};
use super::{io_err, CourseError, CHAPTERS};

/// One graded test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GradedTest {
    /// `lib` (unit tests in `src/`) or `test:<file stem>` (an integration test file).
    pub target: String,
    /// The test function's name (the last segment of its path).
    pub name: String,
    pub weight: u32,
}

/// The graded tests per chapter, in course order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub chapters: Vec<(String, Vec<GradedTest>)>,
}

/// The manifest file of a workspace.
pub fn manifest_path(root: &Path) -> PathBuf {
    course_dir(root).join("grading.json")
}

/// The `#[test]` functions of a source file that are not `#[ignore]`d, in order.
pub fn graded_fns(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_attrs = false;
    let mut is_test = false;
    let mut ignored = false;
    for line in source.lines() {
        let t = line.trim();
        if t.starts_with("#[") {
            let attr = t.trim_start_matches("#[");
            if attr.starts_with("test]") || attr.starts_with("tokio::test") {
                is_test = true;
            }
            if attr.starts_with("ignore") {
                ignored = true;
            }
            in_attrs = true;
            continue;
        }
        if in_attrs && (t.starts_with("///") || t.starts_with("//") || t.is_empty()) {
            continue;
        }
        if is_test {
            let f = t.strip_prefix("pub ").unwrap_or(t);
            let f = f.strip_prefix("async ").unwrap_or(f);
            if let Some(rest) = f.strip_prefix("fn ") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !ignored && !name.is_empty() {
                    out.push(name);
                }
            }
        }
        in_attrs = false;
        is_test = false;
        ignored = false;
    }
    out
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The integration test targets of a chapter: `tests/<name>.rs` and `tests/<name>/main.rs`.
pub fn integration_targets(root: &Path, chapter: &str) -> Vec<String> {
    let dir = root.join(chapter).join("tests");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let stem = p.file_stem()?.to_string_lossy().into_owned();
            if p.is_dir() {
                p.join("main.rs").is_file().then_some(stem)
            } else {
                (p.extension().is_some_and(|x| x == "rs")).then_some(stem)
            }
        })
        .collect();
    names.sort();
    names
}

/// Scans the chapters' sources and tests for graded tests (weight 1 each).
pub fn scan_manifest(root: &Path) -> Manifest {
    let mut chapters = Vec::new();
    for c in CHAPTERS {
        let mut tests = Vec::new();
        let mut files = Vec::new();
        rs_files(&root.join(c).join("src"), &mut files);
        let push = |tests: &mut Vec<GradedTest>, target: &str, file: &Path| {
            if let Ok(text) = std::fs::read_to_string(file) {
                for name in graded_fns(&text) {
                    tests.push(GradedTest {
                        target: target.to_string(),
                        name,
                        weight: 1,
                    });
                }
            }
        };
        for f in &files {
            push(&mut tests, "lib", f);
        }
        for t in integration_targets(root, c) {
            let dir = root.join(c).join("tests");
            let mut files = Vec::new();
            if dir.join(&t).is_dir() {
                rs_files(&dir.join(&t), &mut files);
            } else {
                files.push(dir.join(format!("{t}.rs")));
            }
            for f in &files {
                push(&mut tests, &format!("test:{t}"), f);
            }
        }
        chapters.push((c.to_string(), tests));
    }
    Manifest { chapters }
}

/// A graded test without a `///` doc comment (the comment `course check` shows a student).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndocumentedTest {
    /// Workspace-relative file.
    pub file: PathBuf,
    /// 1-based line of the `fn`.
    pub line: usize,
    pub name: String,
}

impl std::fmt::Display for UndocumentedTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{} {}", self.file.display(), self.line, self.name)
    }
}

/// The graded tests of every chapter (the ones [`scan_manifest`] finds, in `src/` and `tests/`)
/// that have no `///` doc comment saying what they check.
pub fn undocumented_tests(root: &Path) -> Vec<UndocumentedTest> {
    let mut out = Vec::new();
    for c in CHAPTERS {
        let mut files = Vec::new();
        rs_files(&root.join(c).join("src"), &mut files);
        rs_files(&root.join(c).join("tests"), &mut files);
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            for name in graded_fns(&text) {
                let (line, doc) = find_test_fn(&text, &name).unwrap_or((0, String::new()));
                if doc.is_empty() {
                    out.push(UndocumentedTest {
                        file: file.strip_prefix(root).unwrap_or(&file).to_path_buf(),
                        line,
                        name,
                    });
                }
            }
        }
    }
    out
}

impl Manifest {
    pub fn to_json(&self) -> Value {
        let chapters: Vec<Value> = self
            .chapters
            .iter()
            .map(|(c, tests)| {
                let tests: Vec<Value> = tests
                    .iter()
                    .map(|t| json!({"target": t.target, "name": t.name, "weight": t.weight}))
                    .collect();
                json!({"chapter": c, "tests": tests})
            })
            .collect();
        json!({"format": 1, "chapters": chapters})
    }

    pub fn from_json(v: &Value, path: &Path) -> Result<Manifest, CourseError> {
        let bad = |reason: &str| CourseError::BadState {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let mut chapters = Vec::new();
        for c in v
            .get("chapters")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no `chapters` list"))?
        {
            let name = c
                .get("chapter")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("a chapter without its `chapter` name"))?;
            let mut tests = Vec::new();
            for t in c
                .get("tests")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let s = |k: &str| t.get(k).and_then(Value::as_str).map(str::to_string);
                tests.push(GradedTest {
                    target: s("target").ok_or_else(|| bad("a test without `target`"))?,
                    name: s("name").ok_or_else(|| bad("a test without `name`"))?,
                    weight: t.get("weight").and_then(Value::as_u64).unwrap_or(1) as u32,
                });
            }
            chapters.push((name.to_string(), tests));
        }
        Ok(Manifest { chapters })
    }

    /// Reads a manifest file.
    pub fn read(path: &Path) -> Result<Manifest, CourseError> {
        Manifest::from_json(&read_json(path)?, path)
    }

    /// Writes it as JSON.
    pub fn write(&self, path: &Path) -> Result<(), CourseError> {
        write_json(path, &self.to_json())
    }

    /// The graded tests of a chapter.
    pub fn tests(&self, chapter: &str) -> &[GradedTest] {
        self.chapters
            .iter()
            .find(|(c, _)| c == chapter)
            .map(|(_, t)| t.as_slice())
            .unwrap_or(&[])
    }
}

/// The manifest to grade `root` with: `explicit` if given, else the workspace's own
/// `.course/grading.json`, else one scanned from its sources.
pub fn load_manifest(root: &Path, explicit: Option<&Path>) -> Result<Manifest, CourseError> {
    match explicit {
        Some(p) => Manifest::read(p),
        None if manifest_path(root).is_file() => Manifest::read(&manifest_path(root)),
        None => Ok(scan_manifest(root)),
    }
}

/// A graded test's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestStatus {
    Passed,
    Failed,
    /// It did not run: left out of the build, renamed, deleted or ignored.
    Missing,
}

impl TestStatus {
    pub fn label(self) -> &'static str {
        match self {
            TestStatus::Passed => "pass",
            TestStatus::Failed => "FAIL",
            TestStatus::Missing => "MISSING (did not run)",
        }
    }
}

/// The label of a libtest target in a manifest.
pub fn target_label(t: &Target) -> String {
    match t {
        Target::Lib => "lib".into(),
        Target::Test(n) => format!("test:{n}"),
        Target::Bin(n) => format!("bin:{n}"),
        Target::Doc => "doc".into(),
        Target::Other(o) => o.clone(),
    }
}

/// A chapter's grade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChapterGrade {
    pub chapter: String,
    pub tests: Vec<(GradedTest, TestStatus)>,
    /// The build failed (every test counts as failed).
    pub build_error: bool,
}

impl ChapterGrade {
    pub fn points(&self) -> u32 {
        self.tests
            .iter()
            .filter(|(_, s)| *s == TestStatus::Passed)
            .map(|(t, _)| t.weight)
            .sum()
    }
    pub fn max(&self) -> u32 {
        self.tests.iter().map(|(t, _)| t.weight).sum()
    }
}

/// Grades a chapter's run against its manifest entries.
pub fn grade_chapter(chapter: &str, tests: &[GradedTest], run: &TestRun) -> ChapterGrade {
    let graded = tests
        .iter()
        .map(|t| {
            let case = run.cases.iter().find(|c| {
                target_label(&c.target) == t.target
                    && (c.name == t.name || c.name.ends_with(&format!("::{}", t.name)))
            });
            let status = match case.map(|c| c.outcome) {
                Some(Outcome::Passed) => TestStatus::Passed,
                Some(Outcome::Failed) => TestStatus::Failed,
                Some(Outcome::Ignored) | None if run.build_error.is_some() => TestStatus::Failed,
                Some(Outcome::Ignored) | None => TestStatus::Missing,
            };
            (t.clone(), status)
        })
        .collect();
    ChapterGrade {
        chapter: chapter.to_string(),
        tests: graded,
        build_error: run.build_error.is_some(),
    }
}

/// The grade sheet as JSON.
pub fn grades_json(grades: &[ChapterGrade]) -> Value {
    let chapters: Vec<Value> = grades
        .iter()
        .map(|g| {
            let tests: Vec<Value> = g
                .tests
                .iter()
                .map(|(t, s)| {
                    json!({"target": t.target, "name": t.name, "weight": t.weight,
                           "status": match s { TestStatus::Passed => "pass", TestStatus::Failed => "fail", TestStatus::Missing => "missing" }})
                })
                .collect();
            json!({"chapter": g.chapter, "points": g.points(), "max": g.max(),
                   "build_error": g.build_error, "tests": tests})
        })
        .collect();
    let total: u32 = grades.iter().map(ChapterGrade::points).sum();
    let max: u32 = grades.iter().map(ChapterGrade::max).sum();
    json!({"format": 1, "total": total, "max": max, "chapters": chapters})
}

/// Integration test files of a chapter that did not run (no `Running tests/<name>.rs` line), e.g.
/// because `autotests = false` or a `required-features` left them out of the build.
pub fn skipped_test_files(root: &Path, chapter: &str, run: &TestRun) -> Vec<String> {
    integration_targets(root, chapter)
        .into_iter()
        .filter(|t| !run.targets.contains(&Target::Test(t.clone())))
        .map(|t| format!("{chapter}/tests/{t}.rs"))
        .collect()
}

/// Checks that the code graded is the workspace's own: each chapter is a package of the
/// workspace at `root/<chapter>`, and no package depends on a chapter by a path outside `root`.
pub fn check_own_code(root: &Path) -> Result<(), CourseError> {
    let args = [
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
    ];
    let shown = format!("cargo {}", args.join(" "));
    let out = Command::new(cargo())
        .args(args)
        .current_dir(root)
        .output()
        .map_err(|source| CourseError::Spawn {
            command: shown.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(CourseError::CommandFailed {
            command: shown,
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    let meta: Value =
        serde_json::from_slice(&out.stdout).map_err(|e| CourseError::CommandFailed {
            command: shown.clone(),
            output: e.to_string(),
        })?;
    let root = root.canonicalize().map_err(io_err(root))?;
    let inside = |p: &str| {
        Path::new(p)
            .canonicalize()
            .map(|p| p.starts_with(&root))
            .unwrap_or(false)
    };
    let packages = meta
        .get("packages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut found: BTreeMap<&str, String> = BTreeMap::new();
    for p in &packages {
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        let manifest = p.get("manifest_path").and_then(Value::as_str).unwrap_or("");
        if let Some(c) = CHAPTERS.iter().find(|c| **c == name) {
            found.insert(c, manifest.to_string());
        }
        for d in p
            .get("dependencies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let dname = d.get("name").and_then(Value::as_str).unwrap_or("");
            if let (true, Some(path)) = (
                CHAPTERS.contains(&dname),
                d.get("path").and_then(Value::as_str),
            ) {
                if !inside(path) {
                    return Err(CourseError::ForeignCode {
                        chapter: dname.to_string(),
                        path: PathBuf::from(path),
                        root: root.clone(),
                    });
                }
            }
        }
    }
    for c in CHAPTERS {
        match found.get(c) {
            Some(m) if inside(m) => {}
            Some(m) => {
                return Err(CourseError::ForeignCode {
                    chapter: c.to_string(),
                    path: PathBuf::from(m),
                    root,
                })
            }
            None => {
                return Err(CourseError::ForeignCode {
                    chapter: c.to_string(),
                    path: PathBuf::from("(not a package of the workspace)"),
                    root,
                })
            }
        }
    }
    Ok(())
}
