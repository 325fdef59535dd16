//! `course`: the workspace as a course (see COURSE.md).
//!
//! - `course student-edition OUT_DIR`: a copy of the workspace with every fenced body replaced by
//!   a panic carrying its hint.
//! - `course status`: each chapter's tests, in order, as a table with the milestones they unlock.
//! - `course check CHAPTER`: the first failing test of a chapter, what it checks, its panic and
//!   the command to rerun it.
//! - `course milestone NAME`: runs a milestone once the chapters it needs pass.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use clap::{Parser, Subcommand};
use milestones::course::edition::make_student_edition;
use milestones::course::libtest::TestRun;
use milestones::course::runner::{
    cargo, find_test_doc, rerun_command, run_chapter, test_args, TestOptions,
};
use milestones::course::{
    chapter, find_workspace_root, milestone, unlocked_by, CourseError, CHAPTERS,
};

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
    /// Run one chapter's tests and explain its first failing test.
    Check { chapter: String },
    /// Run a milestone if the chapters it needs pass.
    Milestone {
        name: String,
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
        Cmd::Milestone { name, args } => run_milestone(&root, &name, &args, opts),
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
    let Some(first) = failed.first() else {
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
    println!("\nFirst failing test: {}", first.name);
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
        let rest: Vec<&str> = failed[1..]
            .iter()
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
