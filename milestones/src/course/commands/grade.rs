//! The `grade` command: points per chapter from the manifest, the tests not passing, and the grade
//! sheet as JSON.

use std::path::Path;
use std::process::ExitCode;

use crate::course::grading::{
    check_own_code, grade_chapter, grades_json, load_manifest, ChapterGrade, TestStatus,
};
use crate::course::runner::{run_chapter, test_args, TestOptions};
use crate::course::state::write_json;
use crate::course::{CourseError, CHAPTERS};

/// Grades every chapter of `root` (fresh test runs).
pub fn grade_workspace(
    root: &Path,
    manifest: Option<&Path>,
    opts: TestOptions,
) -> Result<Vec<ChapterGrade>, CourseError> {
    check_own_code(root)?;
    let manifest = load_manifest(root, manifest)?;
    let mut grades = Vec::new();
    for c in CHAPTERS {
        eprintln!("== {c}: cargo {}", test_args(c, opts).join(" "));
        let (run, _) = run_chapter(root, c, opts)?;
        grades.push(grade_chapter(c, manifest.tests(c), &run));
    }
    Ok(grades)
}

/// `course grade [--json PATH]`: prints the grade sheet of this workspace (exit status 0 on full
/// marks) and optionally writes it as JSON.
pub fn grade(
    root: &Path,
    json: Option<&Path>,
    manifest: Option<&Path>,
    opts: TestOptions,
) -> Result<ExitCode, CourseError> {
    let grades = grade_workspace(root, manifest, opts)?;
    println!();
    println!(
        "{:<9} {:>9}  {:>6} {:>6} {:>7}",
        "chapter", "points", "pass", "fail", "missing"
    );
    for g in &grades {
        let n = |s: TestStatus| g.tests.iter().filter(|(_, x)| *x == s).count();
        println!(
            "{:<9} {:>9}  {:>6} {:>6} {:>7}{}",
            g.chapter,
            format!("{}/{}", g.points(), g.max()),
            n(TestStatus::Passed),
            n(TestStatus::Failed),
            n(TestStatus::Missing),
            if g.build_error { "  (build error)" } else { "" }
        );
    }
    let total: u32 = grades.iter().map(ChapterGrade::points).sum();
    let max: u32 = grades.iter().map(ChapterGrade::max).sum();
    println!("{:<9} {:>9}", "total", format!("{total}/{max}"));
    let not_passed: Vec<String> = grades
        .iter()
        .flat_map(|g| {
            g.tests
                .iter()
                .filter(|(_, s)| *s != TestStatus::Passed)
                .map(move |(t, s)| {
                    format!(
                        "  {:<9} {} [{}] w{}: {}",
                        g.chapter,
                        t.name,
                        t.target,
                        t.weight,
                        s.label()
                    )
                })
        })
        .collect();
    if !not_passed.is_empty() {
        println!("\nTests not passing ({}):", not_passed.len());
        for l in not_passed.iter().take(40) {
            println!("{l}");
        }
        if not_passed.len() > 40 {
            println!(
                "  ... and {} more (all of them in --json)",
                not_passed.len() - 40
            );
        }
    }
    if let Some(path) = json {
        write_json(path, &grades_json(&grades))?;
        println!("\nGrade sheet written to {}", path.display());
    }
    Ok(if total == max {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
