//! `course`: the workspace as a course (see COURSE.md).
//!
//! - `course student-edition OUT_DIR`: a copy of the workspace with every fenced body replaced by
//!   a panic carrying its hint.
//! - `course status`: each chapter's tests, in order, as a table with the milestones they unlock.
//! - `course check CHAPTER`: the first failing test of a chapter, what it checks, its panic and
//!   the command to rerun it.
//! - `course complete CHAPTER`: records a chapter as done once its tests pass in this workspace.
//! - `course reset CHAPTER | --all | --restore`: puts placeholders back (the student's files saved
//!   first) or restores them.
//! - `course grade [--json PATH] [--collect DIR]`: the grade sheet of this workspace, or a CSV of
//!   every student workspace under DIR.
//! - `course milestone list | info NAME | timeline | NAME [-- ARGS]`: the milestone guide, or runs a
//!   milestone once the chapters it needs pass.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use clap::{Parser, Subcommand};
use milestones::course::edition::make_student_edition;
use milestones::course::exercises::{first_failing_in_order, parse_exercises};
use milestones::course::grading::{
    check_own_code, grade_chapter, grades_json, load_manifest, skipped_test_files, ChapterGrade,
    TestStatus,
};
use milestones::course::guide::{self, Lock};
use milestones::course::libtest::{self, Outcome, Target, TestRun};
use milestones::course::reset::{reset_chapters, restore_backup};
use milestones::course::runner::{
    cargo, find_test_doc, rerun_command, run_cargo, run_chapter, test_args, TestOptions,
};
use milestones::course::state::{
    bodies_hash, chapter_bodies, read_completions, record_completion, require_student_edition,
    unix_now, utc_timestamp, write_json, Completion,
};
use milestones::course::{
    chapter, find_workspace_root, milestone, unlocked_by, CourseError, CHAPTERS, MILESTONES,
};
use std::collections::BTreeMap;

#[derive(Parser, Debug)]
#[command(
    name = "course",
    about = "Work through tinytorch-rs as a course: chapters graded by their tests, milestones to unlock"
)]
struct Cli {
    /// The workspace (default: the nearest Cargo.toml with [workspace] above the current directory).
    #[arg(long, global = true, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// Build and run tests in the dev profile instead of --release (faster builds, slower tests).
    #[arg(long, global = true)]
    debug: bool,
    /// Show all of cargo's output.
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Write a student edition of the workspace into OUT_DIR (fenced bodies become panics with hints).
    StudentEdition {
        out_dir: PathBuf,
        /// Write into OUT_DIR even if it is not empty.
        #[arg(long)]
        force: bool,
    },
    /// Run every chapter's tests in order and show progress and the next step.
    Status {
        /// Stop at the first chapter that does not pass (later chapters show as not run).
        #[arg(long)]
        fail_fast: bool,
    },
    /// Run one chapter's tests and explain the first failing test of its first unfinished exercise.
    Check { chapter: String },
    /// Record a chapter as complete: its unit, integration and doc tests pass here and no fenced
    /// body holds its placeholder.
    Complete { chapter: String },
    /// Put the placeholders back into a chapter's fenced bodies (your files are saved first under
    /// .course/backup/), or restore them with --restore.
    Reset {
        chapter: Option<String>,
        /// Reset every chapter.
        #[arg(long, conflicts_with = "chapter")]
        all: bool,
        /// Put back the files saved by the last reset.
        #[arg(long, conflicts_with_all = ["chapter", "all"])]
        restore: bool,
    },
    /// Grade this workspace: points per chapter (each graded test weighted), per-test results.
    Grade {
        /// Also write the grade sheet as JSON here.
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
        /// Grade every student workspace under DIR (one folder each) into one CSV.
        #[arg(long, value_name = "DIR")]
        collect: Option<PathBuf>,
        /// The grading manifest (default: the workspace's .course/grading.json; with --collect,
        /// this workspace's, so students cannot change their own).
        #[arg(long, value_name = "PATH")]
        manifest: Option<PathBuf>,
        /// With --collect: seconds allowed per student (build and tests).
        #[arg(long, default_value_t = 900)]
        time_limit: u64,
        /// With --collect: where to write the CSV (default: standard output).
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
    /// The milestones: `list`, `info NAME`, `timeline`, or `NAME [-- ARGS]` to run one.
    Milestone {
        /// `list`, `info`, `timeline`, or a milestone's name to run it.
        action: String,
        /// The milestone (for `info`).
        name: Option<String>,
        /// Arguments for the milestone (after `--`), e.g. `-- --quick`.
        #[arg(last = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, CourseError> {
    let start = match &cli.workspace {
        Some(d) => d.clone(),
        None => std::env::current_dir().map_err(|source| CourseError::Io {
            path: ".".into(),
            source,
        })?,
    };
    let root = find_workspace_root(&start)?;
    let opts = TestOptions {
        release: !cli.debug,
        verbose: cli.verbose,
    };
    match cli.command {
        Cmd::StudentEdition { out_dir, force } => student_edition(&root, &out_dir, force),
        Cmd::Status { fail_fast } => status(&root, opts, fail_fast),
        Cmd::Check { chapter: c } => check(&root, chapter(&c)?, opts),
        Cmd::Complete { chapter: c } => complete(&root, chapter(&c)?, opts),
        Cmd::Reset {
            chapter: c,
            all,
            restore,
        } => reset(&root, c.as_deref(), all, restore),
        Cmd::Grade {
            json,
            collect,
            manifest,
            time_limit,
            out,
        } => match collect {
            Some(dir) => collect_grades(
                &root,
                &dir,
                manifest.as_deref(),
                time_limit,
                out.as_deref(),
                opts,
            ),
            None => grade(&root, json.as_deref(), manifest.as_deref(), opts),
        },
        Cmd::Milestone { action, name, args } => match action.as_str() {
            "list" => milestone_list(&root),
            "info" => {
                let n = name.ok_or_else(|| CourseError::UnknownMilestone("(none given)".into()))?;
                milestone_info(&root, &n, opts)
            }
            "timeline" => milestone_timeline(&root, opts),
            other => run_milestone(&root, other, &args, opts),
        },
    }
}

fn student_edition(root: &Path, out: &Path, force: bool) -> Result<ExitCode, CourseError> {
    let t = Instant::now();
    let report = make_student_edition(root, out, force)?;
    println!(
        "Student edition of {} written to {} ({} files, {:.1} s).",
        root.display(),
        out.display(),
        report.files,
        t.elapsed().as_secs_f64()
    );
    println!("Fenced bodies replaced, per chapter:");
    for (c, n) in &report.fences {
        println!("  {c:<9} {n:>4}");
    }
    println!("  {:<9} {:>4}", "total", report.total_fences());
    if !report.partial.is_empty() {
        println!(
            "Note: {} fence(s) cover only the end of a body (the code above stays):",
            report.partial.len()
        );
        for p in &report.partial {
            println!("  {p}");
        }
    }
    println!(
        "Check that it builds:  cd {} && cargo check --workspace --all-targets",
        out.display()
    );
    println!(
        "Grade it:              cd {} && cargo run --release -p milestones --bin course -- status",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A chapter's state in the status table.
fn state(run: &TestRun) -> String {
    if run.build_error.is_some() {
        "build error".into()
    } else if run.total() == 0 {
        "no tests ran".into()
    } else if run.failed() == 0 {
        "pass".into()
    } else {
        format!("{} failing", run.failed())
    }
}

fn status(root: &Path, opts: TestOptions, fail_fast: bool) -> Result<ExitCode, CourseError> {
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
        rows.push((c, tests, state(&run)));
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

/// How to run a `course` subcommand with the same profile.
fn course_cmd(opts: TestOptions, sub: &str) -> String {
    let debug = if opts.release { "" } else { "--debug " };
    format!("cargo run --release -p milestones --bin course -- {debug}{sub}")
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn check(root: &Path, c: &str, opts: TestOptions) -> Result<ExitCode, CourseError> {
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
        run.count(milestones::course::libtest::Outcome::Ignored)
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

fn run_milestone(
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
            failing.push(format!("{c} ({})", state(&run)));
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

/// Prints the recorded completions, flagging chapters whose fenced bodies changed since.
fn show_completions(root: &Path) -> Result<(), CourseError> {
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

/// Where each unfinished body is, `file:line`.
fn placeholders(root: &Path, c: &str) -> Result<(usize, Vec<String>), CourseError> {
    let bodies = chapter_bodies(root, c)?;
    let left = bodies
        .iter()
        .filter(|b| b.is_placeholder(c))
        .map(|b| format!("{}:{}", b.file.display(), b.fence.begin))
        .collect();
    Ok((bodies.len(), left))
}

fn complete(root: &Path, c: &str, opts: TestOptions) -> Result<ExitCode, CourseError> {
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

fn reset(root: &Path, c: Option<&str>, all: bool, restore: bool) -> Result<ExitCode, CourseError> {
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

/// Grades every chapter of `root` (fresh test runs).
fn grade_workspace(
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

fn grade(
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

/// Quotes a CSV field when needed.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Runs `course grade` on one student workspace in its own process group, killed after `limit`.
fn grade_one(
    student: &Path,
    manifest: &Path,
    json: &Path,
    limit: std::time::Duration,
    opts: TestOptions,
) -> Result<(String, Option<serde_json::Value>), CourseError> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|source| CourseError::Spawn {
        command: "course (current executable)".into(),
        source,
    })?;
    let log = student.join(".course").join("grade.log");
    std::fs::create_dir_all(student.join(".course")).map_err(|source| CourseError::Io {
        path: student.join(".course"),
        source,
    })?;
    let log_file = std::fs::File::create(&log).map_err(|source| CourseError::Io {
        path: log.clone(),
        source,
    })?;
    let mut cmd = Command::new(exe);
    cmd.arg("--workspace").arg(student);
    if !opts.release {
        cmd.arg("--debug");
    }
    cmd.arg("grade")
        .arg("--manifest")
        .arg(manifest)
        .arg("--json")
        .arg(json)
        .env("CARGO_TARGET_DIR", student.join("target"))
        .stdout(log_file.try_clone().map_err(|source| CourseError::Io {
            path: log.clone(),
            source,
        })?)
        .stderr(log_file)
        .process_group(0);
    let mut child = cmd.spawn().map_err(|source| CourseError::Spawn {
        command: format!("course grade --workspace {}", student.display()),
        source,
    })?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() > limit => {
                // The whole group: the grader and the cargo and test processes it started.
                let _ = Command::new("kill")
                    .args(["-KILL", &format!("-{}", child.id())])
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                return Ok((format!("timeout after {} s", limit.as_secs()), None));
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(200)),
            Err(e) => return Ok((format!("error: {e}"), None)),
        }
    }
    match std::fs::read_to_string(json)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    {
        Some(v) => Ok(("graded".into(), Some(v))),
        None => {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let last = text
                .lines()
                .rev()
                .find(|l| l.starts_with("error"))
                .unwrap_or("no grade sheet written")
                .to_string();
            Ok((last, None))
        }
    }
}

fn collect_grades(
    root: &Path,
    dir: &Path,
    manifest: Option<&Path>,
    time_limit: u64,
    out: Option<&Path>,
    opts: TestOptions,
) -> Result<ExitCode, CourseError> {
    // One manifest for everyone: the instructor's (never a student's own copy).
    let manifest_file = match manifest {
        Some(p) => p.to_path_buf(),
        None => {
            let m = load_manifest(root, None)?;
            let p =
                std::env::temp_dir().join(format!("course-manifest-{}.json", std::process::id()));
            m.write(&p)?;
            p
        }
    };
    let mut students: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| CourseError::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    students.sort();
    let mut csv = format!("student,status,{},total,max\n", CHAPTERS.join(","));
    for s in &students {
        let name = s
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        eprintln!("== grading {name}");
        let json =
            std::env::temp_dir().join(format!("course-grade-{}-{name}.json", std::process::id()));
        let _ = std::fs::remove_file(&json);
        let (status, sheet) = grade_one(
            s,
            &manifest_file,
            &json,
            std::time::Duration::from_secs(time_limit),
            opts,
        )?;
        let _ = std::fs::remove_file(&json);
        let mut row = vec![csv_field(&name), csv_field(&status)];
        match sheet {
            Some(v) => {
                for c in CHAPTERS {
                    let pts = v["chapters"]
                        .as_array()
                        .and_then(|a| a.iter().find(|x| x["chapter"] == c))
                        .and_then(|x| x["points"].as_u64())
                        .unwrap_or(0);
                    row.push(pts.to_string());
                }
                row.push(v["total"].as_u64().unwrap_or(0).to_string());
                row.push(v["max"].as_u64().unwrap_or(0).to_string());
            }
            None => {
                row.extend(CHAPTERS.iter().map(|_| "0".to_string()));
                row.push("0".into());
                row.push(String::new());
            }
        }
        csv.push_str(&row.join(","));
        csv.push('\n');
    }
    if manifest.is_none() {
        let _ = std::fs::remove_file(&manifest_file);
    }
    match out {
        Some(p) => {
            std::fs::write(p, &csv).map_err(|source| CourseError::Io {
                path: p.to_path_buf(),
                source,
            })?;
            println!("{} student(s) graded into {}", students.len(), p.display());
        }
        None => print!("{csv}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn milestone_list(root: &Path) -> Result<ExitCode, CourseError> {
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
fn passing_now(
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

fn milestone_info(root: &Path, name: &str, opts: TestOptions) -> Result<ExitCode, CourseError> {
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

fn milestone_timeline(root: &Path, opts: TestOptions) -> Result<ExitCode, CourseError> {
    let passing = passing_now(root, &CHAPTERS, opts)?;
    let locks: BTreeMap<&str, Lock> = MILESTONES
        .iter()
        .map(|m| (m.name, Lock::of(m, &passing)))
        .collect();
    println!();
    print!("{}", guide::timeline(&locks, 62));
    Ok(ExitCode::SUCCESS)
}
