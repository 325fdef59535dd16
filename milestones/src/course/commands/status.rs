//! The `status` command: every chapter's tests in order, the milestones they unlock, the recorded
//! completions and the next step.

use std::path::Path;
use std::process::ExitCode;

use super::{chapter_state, course_cmd};
use crate::course::runner::{run_chapter, test_args, TestOptions};
use crate::course::state::{bodies_hash, chapter_bodies, read_completions, utc_timestamp};
use crate::course::{unlocked_by, CourseError, CHAPTERS};

/// `course status`: runs every chapter's tests in order and prints the progress table and the next
/// step (exit status 0 when every chapter passes).
pub fn status(root: &Path, opts: TestOptions, fail_fast: bool) -> Result<ExitCode, CourseError> {
    let mut rows = Vec::new();
    let mut next: Option<&str> = None;
    for c in CHAPTERS {
        if fail_fast && next.is_some() {
            rows.push((c, "-".to_string(), "not run".to_string()));
            continue;
        }
        eprintln!("== {c}: cargo {}", test_args(c, opts).join(" "));
        let (run, _) = run_chapter(root, c, opts)?;
        let tests = if run.build_error.is_some() {
            "-".to_string()
        } else {
            format!("{}/{}", run.passed(), run.total())
        };
        if !run.all_passed() && next.is_none() {
            next = Some(c);
        }
        rows.push((c, tests, chapter_state(&run)));
    }
    println!();
    println!("{:<9} {:>9}  {:<12} unlocks", "chapter", "tests", "status");
    let mut open = true; // every chapter so far passes
    for (c, tests, st) in &rows {
        open &= st == "pass";
        let unlocks: Vec<&str> = unlocked_by(c).iter().map(|m| m.name).collect();
        let unlocks = match (unlocks.is_empty(), open) {
            (true, _) => "-".to_string(),
            (false, true) => format!("{} (unlocked)", unlocks.join(", ")),
            (false, false) => unlocks.join(", "),
        };
        println!("{c:<9} {tests:>9}  {st:<12} {unlocks}");
    }
    show_completions(root)?;
    println!();
    match next {
        Some(c) => {
            println!(
                "Next step: chapter `{c}` (read {c}/README.md). See its first failing test with:"
            );
            println!("    {}", course_cmd(opts, &format!("check {c}")));
            Ok(ExitCode::FAILURE)
        }
        None => {
            println!("Every chapter passes and every milestone is unlocked. Try one:");
            println!(
                "    {}",
                course_cmd(opts, "milestone transformer-2017 -- --quick")
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prints the recorded completions, flagging chapters whose fenced bodies changed since.
pub fn show_completions(root: &Path) -> Result<(), CourseError> {
    let done = read_completions(root)?;
    if done.is_empty() {
        return Ok(());
    }
    println!();
    println!("Recorded completions (.course/progress.json):");
    for c in CHAPTERS {
        let Some(rec) = done.get(c) else {
            continue;
        };
        let now = bodies_hash(&chapter_bodies(root, c)?);
        let note = if now == rec.bodies_hash {
            String::new()
        } else {
            format!("; CHANGED since (run `course complete {c}` again)")
        };
        println!(
            "  {c:<9} completed {} with {} tests passing{note}",
            utc_timestamp(rec.unix_time),
            rec.passed
        );
    }
    Ok(())
}
