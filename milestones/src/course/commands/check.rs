//! The `check` command: the first failing test of the first unfinished exercise (README order),
//! what it checks, its panic and the command that reruns it.

use std::path::Path;
use std::process::ExitCode;

use super::indent;
use crate::course::exercises::{first_failing_in_order, parse_exercises};
use crate::course::libtest::Outcome;
use crate::course::runner::{find_test_doc, rerun_command, run_chapter, test_args, TestOptions};
use crate::course::{unlocked_by, CourseError, CHAPTERS};

/// `course check CHAPTER`: runs the chapter's tests and explains the first failure a student should
/// fix (exit status 0 when every test passes).
pub fn check(root: &Path, c: &str, opts: TestOptions) -> Result<ExitCode, CourseError> {
    eprintln!("== {c}: cargo {}", test_args(c, opts).join(" "));
    let (run, output) = run_chapter(root, c, opts)?;
    if let Some(err) = &run.build_error {
        println!("Chapter `{c}` does not build. The first compiler error:\n");
        println!("{}", indent(err));
        println!(
            "\nFix it, then run `course check {c}` again (`--verbose` shows cargo's full output)."
        );
        return Ok(ExitCode::FAILURE);
    }
    if run.total() == 0 {
        println!(
            "No tests of `{c}` ran. cargo's output:\n{}",
            indent(&output)
        );
        return Ok(ExitCode::FAILURE);
    }
    let failed = run.failed_cases();
    println!(
        "Chapter `{c}`: {}/{} tests pass ({} ignored).",
        run.passed(),
        run.total(),
        run.count(Outcome::Ignored)
    );
    let readme = std::fs::read_to_string(root.join(c).join("README.md")).unwrap_or_default();
    let exercises = parse_exercises(&readme);
    let ordered = first_failing_in_order(&exercises, &failed);
    let first = ordered.map(|(_, i)| failed[i]).or(failed.first().copied());
    let Some(first) = first else {
        let unlocks: Vec<&str> = unlocked_by(c).iter().map(|m| m.name).collect();
        println!("Every test passes: the chapter is done.");
        if !unlocks.is_empty() {
            println!(
                "With the chapters before it, it unlocks: {}",
                unlocks.join(", ")
            );
        }
        if let Some(n) = CHAPTERS
            .iter()
            .position(|x| *x == c)
            .and_then(|i| CHAPTERS.get(i + 1))
        {
            println!("Next: chapter `{n}` (`course check {n}`).");
        }
        return Ok(ExitCode::SUCCESS);
    };
    match ordered {
        Some((ex, _)) => {
            println!(
                "\nFirst unfinished exercise (README order): {}. {}",
                ex.number, ex.title
            );
            println!("Its first failing test: {}", first.name);
        }
        None => println!("\nFirst failing test: {}", first.name),
    }
    match find_test_doc(root, c, &first.target, &first.name) {
        Some(d) => {
            println!("  defined at {}:{}", d.file.display(), d.line);
            if d.doc.is_empty() {
                println!("What it checks: (no doc comment; read the test)");
            } else {
                println!("What it checks:\n{}", indent(&d.doc));
            }
        }
        None => println!("What it checks: (test source not found)"),
    }
    match run.failure(first) {
        Some(f) => {
            let msg = f.message.clone().unwrap_or_else(|| f.output.clone());
            match &f.location {
                Some(loc) => println!("It panicked at {loc}:\n{}", indent(&msg)),
                None => println!("Its output:\n{}", indent(&msg)),
            }
        }
        None => println!("(its output was not captured; rerun it to see it)"),
    }
    println!(
        "Rerun it:\n    {}",
        rerun_command(c, &first.target, &first.name, opts)
    );
    if failed.len() > 1 {
        let rest: Vec<&str> = failed
            .iter()
            .filter(|t| t.name != first.name || t.target != first.target)
            .take(10)
            .map(|t| t.name.as_str())
            .collect();
        let more = failed.len() - 1 - rest.len();
        println!(
            "\nOther failing tests ({}): {}{}",
            failed.len() - 1,
            rest.join(", "),
            if more > 0 {
                format!(", and {more} more")
            } else {
                String::new()
            }
        );
    }
    Ok(ExitCode::FAILURE)
}
