//! The `complete` command: records a chapter as done once no fenced body holds its placeholder and
//! its unit, integration and doc tests all pass in this workspace.

use std::path::Path;
use std::process::ExitCode;

use super::indent;
use crate::course::grading::{
    check_own_code, grade_chapter, load_manifest, skipped_test_files, TestStatus,
};
use crate::course::libtest::{self, Outcome, Target};
use crate::course::runner::{run_cargo, TestOptions};
use crate::course::state::{
    bodies_hash, chapter_bodies, record_completion, require_student_edition, unix_now,
    utc_timestamp, Completion,
};
use crate::course::CourseError;

/// Where each unfinished body is, `file:line`.
pub fn placeholders(root: &Path, c: &str) -> Result<(usize, Vec<String>), CourseError> {
    let bodies = chapter_bodies(root, c)?;
    let left = bodies
        .iter()
        .filter(|b| b.is_placeholder(c))
        .map(|b| format!("{}:{}", b.file.display(), b.fence.begin))
        .collect();
    Ok((bodies.len(), left))
}

/// `course complete CHAPTER`: refuses while a body holds its placeholder or a test fails or did not
/// run; otherwise records the completion in `.course/progress.json`.
pub fn complete(root: &Path, c: &str, opts: TestOptions) -> Result<ExitCode, CourseError> {
    require_student_edition(root, "course complete")?;
    check_own_code(root)?;
    let (total, left) = placeholders(root, c)?;
    if !left.is_empty() {
        println!(
            "Not complete: {} of the {total} fenced bodies of `{c}` still hold their placeholder:",
            left.len()
        );
        for l in left.iter().take(20) {
            println!("  {l}");
        }
        if left.len() > 20 {
            println!("  ... and {} more", left.len() - 20);
        }
        return Ok(ExitCode::FAILURE);
    }
    // Unit, integration and doc tests: `cargo test` without a target filter.
    let mut args = vec!["test".to_string(), "-p".into(), c.into()];
    if opts.release {
        args.push("--release".into());
    }
    args.push("--no-fail-fast".into());
    eprintln!("== {c}: cargo {}", args.join(" "));
    let (output, _) = run_cargo(root, &args, opts.verbose)?;
    let run = libtest::parse(&output);
    let manifest = load_manifest(root, None)?;
    let graded = grade_chapter(c, manifest.tests(c), &run);
    let missing: Vec<String> = graded
        .tests
        .iter()
        .filter(|(_, s)| *s == TestStatus::Missing)
        .map(|(t, _)| format!("{} ({})", t.name, t.target))
        .collect();
    let skipped = skipped_test_files(root, c, &run);
    let mut problems = Vec::new();
    if let Some(e) = &run.build_error {
        problems.push(format!("it does not build:\n{}", indent(e)));
    }
    if run.failed() > 0 {
        let names: Vec<&str> = run.failed_cases().iter().map(|t| t.name.as_str()).collect();
        problems.push(format!(
            "{} test(s) fail: {}",
            names.len(),
            names.join(", ")
        ));
    }
    if run.passed() == 0 && run.build_error.is_none() {
        problems.push("no test ran".into());
    }
    if !skipped.is_empty() {
        problems.push(format!(
            "integration test file(s) did not run (left out of the build?): {}",
            skipped.join(", ")
        ));
    }
    if !missing.is_empty() {
        problems.push(format!(
            "graded test(s) did not run: {}",
            missing.join(", ")
        ));
    }
    if !problems.is_empty() {
        println!("Not complete: chapter `{c}`");
        for p in problems {
            println!("  - {p}");
        }
        println!("See the first failure with `course check {c}`.");
        return Ok(ExitCode::FAILURE);
    }
    let doc_tests = run
        .cases
        .iter()
        .filter(|t| t.target == Target::Doc && t.outcome == Outcome::Passed)
        .count();
    let rec = Completion {
        unix_time: unix_now(),
        passed: run.passed(),
        failed: 0,
        ignored: run.count(Outcome::Ignored),
        doc_tests,
        bodies_hash: bodies_hash(&chapter_bodies(root, c)?),
    };
    record_completion(root, c, &rec)?;
    println!(
        "Chapter `{c}` complete: {} tests pass ({} unit and integration, {doc_tests} doc), {} ignored; {total} bodies written (hash {}). Recorded in .course/progress.json at {}.",
        rec.passed,
        rec.passed - doc_tests,
        rec.ignored,
        rec.bodies_hash,
        utc_timestamp(rec.unix_time)
    );
    Ok(ExitCode::SUCCESS)
}
