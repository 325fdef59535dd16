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
//!
//! This file parses the command line; each command lives in its own file of
//! `milestones::course::commands`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use milestones::course::commands::{
    check, collect, complete, edition, grade, milestone, reset, status,
};
use milestones::course::runner::TestOptions;
use milestones::course::{chapter, find_workspace_root, CourseError};

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
        Cmd::StudentEdition { out_dir, force } => edition::student_edition(&root, &out_dir, force),
        Cmd::Status { fail_fast } => status::status(&root, opts, fail_fast),
        Cmd::Check { chapter: c } => check::check(&root, chapter(&c)?, opts),
        Cmd::Complete { chapter: c } => complete::complete(&root, chapter(&c)?, opts),
        Cmd::Reset {
            chapter: c,
            all,
            restore,
        } => reset::reset(&root, c.as_deref(), all, restore),
        Cmd::Grade {
            json,
            collect,
            manifest,
            time_limit,
            out,
        } => match collect {
            Some(dir) => collect::collect_grades(
                &root,
                &dir,
                manifest.as_deref(),
                time_limit,
                out.as_deref(),
                opts,
            ),
            None => grade::grade(&root, json.as_deref(), manifest.as_deref(), opts),
        },
        Cmd::Milestone { action, name, args } => match action.as_str() {
            "list" => milestone::milestone_list(&root),
            "info" => {
                let n = name.ok_or_else(|| CourseError::UnknownMilestone("(none given)".into()))?;
                milestone::milestone_info(&root, &n, opts)
            }
            "timeline" => milestone::milestone_timeline(&root, opts),
            other => milestone::run_milestone(&root, other, &args, opts),
        },
    }
}
