//! The `course` commands, one file each: what each prints and its exit status. The logic they
//! share (running tests, grading, fences, state) lives in the modules of [`crate::course`].
//!
//! | module | command |
//! |---|---|
//! | [`edition`] | `course student-edition OUT_DIR` |
//! | [`status`] | `course status` |
//! | [`check`] | `course check CHAPTER` |
//! | [`complete`] | `course complete CHAPTER` |
//! | [`reset`] | `course reset CHAPTER \| --all \| --restore` |
//! | [`grade`] | `course grade [--json PATH]` |
//! | [`collect`] | `course grade --collect DIR` |
//! | [`milestone`] | `course milestone list \| info NAME \| timeline \| NAME [-- ARGS]` |

pub mod check;
pub mod collect;
pub mod complete;
pub mod edition;
pub mod grade;
pub mod milestone;
pub mod reset;
pub mod status;

use super::libtest::TestRun;
use super::runner::TestOptions;

/// A chapter's state in the status table: `pass`, `N failing`, `build error` or `no tests ran`.
pub fn chapter_state(run: &TestRun) -> String {
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

/// How to run a `course` subcommand with the same profile.
pub fn course_cmd(opts: TestOptions, sub: &str) -> String {
    let debug = if opts.release { "" } else { "--debug " };
    format!("cargo run --release -p milestones --bin course -- {debug}{sub}")
}

/// Indents every line of `text` by four spaces.
pub fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
