//! The `student-edition` command: writes the edition and reports the fences replaced per chapter.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use crate::course::edition::make_student_edition;
use crate::course::CourseError;

/// `course student-edition OUT_DIR`: writes the edition and prints the fences replaced per chapter.
pub fn student_edition(root: &Path, out: &Path, force: bool) -> Result<ExitCode, CourseError> {
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
