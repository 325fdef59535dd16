//! The `milestone` commands: the list, one milestone's guide with its lock computed from a fresh
//! test run, the timeline, and running a milestone once its chapters pass.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, ExitCode};

use super::{chapter_state, course_cmd};
use crate::course::grading::check_own_code;
use crate::course::guide::{self, Lock};
use crate::course::runner::{cargo, run_chapter, test_args, TestOptions};
use crate::course::{milestone, CourseError, CHAPTERS, MILESTONES};

/// `course milestone NAME [-- ARGS]`: runs the milestone's binary once every chapter it needs passes.
pub fn run_milestone(
    root: &Path,
    name: &str,
    args: &[String],
    opts: TestOptions,
) -> Result<ExitCode, CourseError> {
    let m = milestone(name).ok_or_else(|| CourseError::UnknownMilestone(name.to_string()))?;
    let mut failing = Vec::new();
    for c in m.needs {
        eprintln!("== {c}: cargo {}", test_args(c, opts).join(" "));
        let (run, _) = run_chapter(root, c, opts)?;
        if !run.all_passed() {
            failing.push(format!("{c} ({})", chapter_state(&run)));
        }
    }
    if !failing.is_empty() {
        println!(
            "{} needs {}; these chapters do not pass yet: {}",
            m.name,
            m.needs.join(", "),
            failing.join(", ")
        );
        println!(
            "Start with `course check {}`.",
            failing[0].split(' ').next().unwrap_or("")
        );
        return Ok(ExitCode::FAILURE);
    }
    println!("{}: {}", m.name, m.what);
    let mut cmd_args: Vec<String> = vec!["run".into()];
    if opts.release {
        cmd_args.push("--release".into());
    }
    cmd_args.extend([
        "-p".into(),
        "milestones".into(),
        "--bin".into(),
        m.name.into(),
    ]);
    if !args.is_empty() {
        cmd_args.push("--".into());
        cmd_args.extend(args.iter().cloned());
    }
    eprintln!("== cargo {}", cmd_args.join(" "));
    let status = Command::new(cargo())
        .args(&cmd_args)
        .current_dir(root)
        .status()
        .map_err(|source| CourseError::Spawn {
            command: format!("cargo {}", cmd_args.join(" ")),
            source,
        })?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `course milestone list`: each milestone's year, chapters and what it proves.
pub fn milestone_list(root: &Path) -> Result<ExitCode, CourseError> {
    let _ = root;
    println!(
        "{:<17} {:>4}  {:<41} what it proves",
        "milestone", "year", "needs"
    );
    for m in MILESTONES.iter() {
        println!(
            "{:<17} {:>4}  {:<41} {}",
            m.name,
            guide::info(m.name).year,
            m.needs.join(", "),
            m.what
        );
    }
    println!("\nDetails, data and whether it is unlocked now: `course milestone info NAME`; all of them: `course milestone timeline`.");
    Ok(ExitCode::SUCCESS)
}

/// Runs the tests of `chapters` now: chapter -> all pass.
pub fn passing_now(
    root: &Path,
    chapters: &[&str],
    opts: TestOptions,
) -> Result<BTreeMap<String, bool>, CourseError> {
    check_own_code(root)?;
    let mut out = BTreeMap::new();
    for c in chapters {
        eprintln!("== {c}: cargo {}", test_args(c, opts).join(" "));
        let (run, _) = run_chapter(root, c, opts)?;
        out.insert(c.to_string(), run.all_passed());
    }
    Ok(out)
}

/// `course milestone info NAME`: what it proves, its data, its lock (tests run now) and the figures
/// to expect.
pub fn milestone_info(root: &Path, name: &str, opts: TestOptions) -> Result<ExitCode, CourseError> {
    let m = milestone(name).ok_or_else(|| CourseError::UnknownMilestone(name.to_string()))?;
    let info = guide::info(m.name);
    let passing = passing_now(root, m.needs, opts)?;
    let lock = Lock::of(m, &passing);
    println!("{} ({})", m.name, info.year);
    println!("  proves:  {}", m.what);
    println!("  data:    {}", info.data);
    println!("  needs (tests run just now):");
    for (c, ok) in &lock.needs {
        println!("    {c:<9} {}", if *ok { "pass" } else { "does not pass" });
    }
    println!("  state:   {}", lock.label());
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap_or_default();
    let figures = guide::expected_figures(&readme, m.name);
    if !figures.is_empty() {
        println!("  expect (measured, README.md):");
        for (cmd, result) in figures {
            println!("    {cmd}\n      -> {result}");
        }
    }
    if lock.unlocked() {
        println!(
            "  run it:  {}",
            course_cmd(opts, &format!("milestone {}", m.name))
        );
        Ok(ExitCode::SUCCESS)
    } else {
        let first = lock
            .needs
            .iter()
            .find(|(_, ok)| !ok)
            .map(|(c, _)| c.clone())
            .unwrap_or_default();
        println!("  next:    {}", course_cmd(opts, &format!("check {first}")));
        Ok(ExitCode::FAILURE)
    }
}

/// `course milestone timeline`: 1957 to 2018 with each milestone's lock from a fresh test run.
pub fn milestone_timeline(root: &Path, opts: TestOptions) -> Result<ExitCode, CourseError> {
    let passing = passing_now(root, &CHAPTERS, opts)?;
    let locks: BTreeMap<&str, Lock> = MILESTONES
        .iter()
        .map(|m| (m.name, Lock::of(m, &passing)))
        .collect();
    println!();
    print!("{}", guide::timeline(&locks, 62));
    Ok(ExitCode::SUCCESS)
}
