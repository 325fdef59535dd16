//! The course loop driven end to end on a generated student edition of a small workspace (six
//! one-file chapters, each with two fenced bodies, unit, integration and doc tests, and a README
//! whose exercise order differs from the alphabetical one): `complete`, `reset`/`--restore`,
//! `grade` (and `--collect`), `milestone info`, `check`, and the guards against grading reference
//! code, skipping integration tests and showing stale unlocks. The chapters are tiny, so each
//! build takes seconds (dev profile, a target directory per test under `target/course-loop/`).

use std::path::{Path, PathBuf};
use std::process::Command;

use milestones::course::edition::make_student_edition;
use milestones::course::CHAPTERS;
use serde_json::Value;

const LIB: &str = r#"//! A chapter of the small course.

/// Doubles `x`.
///
/// ```
/// assert_eq!(CRATE::double(1), 2);
/// ```
pub fn double(x: i32) -> i32 {
    // HINT: add x to itself
    // BEGIN SOLUTION
    x + x
    // END SOLUTION
}

/// Squares `x`.
pub fn square(x: i32) -> i32 {
    // BEGIN SOLUTION
    x * x
    // END SOLUTION
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Doubling two gives four.
    #[test]
    fn doubles() {
        assert_eq!(double(2), 4);
    }

    /// Squaring three gives nine.
    #[test]
    fn squares() {
        assert_eq!(square(3), 9);
    }
}
"#;

const IT: &str = r#"/// Doubling one then squaring gives four.
#[test]
fn double_then_square() {
    assert_eq!(CRATE::square(CRATE::double(1)), 4);
}
"#;

const README: &str = "# A chapter\n\n## Exercises\n\n1. `lib.rs::square`. Test: `squares`:\n   `cargo test squares`.\n2. `lib.rs::double`. Tests: `doubles`,\n   `double_then_square`.\n\n## Systems questions\n";

/// Where this test's files live (`target/course-loop/<tag>`), emptied.
fn base(tag: &str) -> PathBuf {
    let b = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("course-loop")
        .join(tag);
    if b.exists() {
        // Keep the build directory (a warm rebuild is faster), drop the workspaces.
        for e in std::fs::read_dir(&b).unwrap().flatten() {
            if e.file_name() != "target" {
                let p = e.path();
                if p.is_dir() {
                    std::fs::remove_dir_all(p).unwrap();
                } else {
                    std::fs::remove_file(p).unwrap();
                }
            }
        }
    }
    std::fs::create_dir_all(&b).unwrap();
    b
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The reference workspace: six chapters (nn depends on tensor by path) and a README with a
/// milestone row.
fn reference(dir: &Path) {
    let members: Vec<String> = CHAPTERS.iter().map(|c| format!("\"{c}\"")).collect();
    write(
        &dir.join("Cargo.toml"),
        &format!(
            "[workspace]\nresolver = \"2\"\nmembers = [{}]\n",
            members.join(", ")
        ),
    );
    write(
        &dir.join("README.md"),
        "| 1957 perceptron | `cargo run --release -p milestones --bin perceptron-1957` | blobs: 100% test accuracy, 0.0 s |\n",
    );
    for c in CHAPTERS {
        let deps = if c == "nn" {
            "tensor = { path = \"../tensor\" }\n"
        } else {
            ""
        };
        write(
            &dir.join(c).join("Cargo.toml"),
            &format!("[package]\nname = \"{c}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n{deps}"),
        );
        write(&dir.join(c).join("src/lib.rs"), &LIB.replace("CRATE", c));
        write(&dir.join(c).join("tests/it.rs"), &IT.replace("CRATE", c));
        write(&dir.join(c).join("README.md"), README);
    }
}

/// A reference and its student edition under `base(tag)`: (reference, edition, target dir).
fn edition(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    let b = base(tag);
    let (r, e) = (b.join("reference"), b.join("edition"));
    reference(&r);
    make_student_edition(&r, &e, false).unwrap();
    (r, e, b.join("target"))
}

/// Copies a chapter's sources from the reference (the bodies written).
fn solve(reference: &Path, edition: &Path, chapter: &str) {
    let rel = Path::new(chapter).join("src/lib.rs");
    std::fs::copy(reference.join(&rel), edition.join(&rel)).unwrap();
}

/// Runs `course ARGS` on `ws` (dev profile, its own target dir): (success, stdout + stderr).
fn course(ws: &Path, target: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_course"))
        .arg("--workspace")
        .arg(ws)
        .arg("--debug")
        .args(args)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("$ course {}\n{text}", args.join(" "));
    (out.status.success(), text)
}

/// `complete` refuses a chapter whose bodies hold their placeholders, accepts it once the bodies
/// are restored from the reference (recording time, counts with the doc test, and the bodies'
/// hash), and `status` flags the chapter once a body changes after that.
#[test]
fn complete_refuses_then_accepts_and_status_flags_changes() {
    let (r, e, t) = edition("complete");
    let (ok, text) = course(&e, &t, &["complete", "tensor"]);
    assert!(
        !ok && text.contains("still hold their placeholder"),
        "{text}"
    );
    assert!(text.contains("tensor/src/lib.rs:"), "{text}");
    assert!(!e.join(".course/progress.json").exists());

    solve(&r, &e, "tensor");
    let (ok, text) = course(&e, &t, &["complete", "tensor"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("4 tests pass (3 unit and integration, 1 doc)"),
        "{text}"
    );
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(e.join(".course/progress.json")).unwrap())
            .unwrap();
    let rec = &v["completions"]["tensor"];
    assert_eq!(rec["passed"], 4);
    assert_eq!(rec["doc_tests"], 1);
    assert_eq!(rec["bodies_hash"].as_str().unwrap().len(), 16);
    assert!(rec["completed_at"].as_str().unwrap().ends_with('Z'));

    let (_, text) = course(&e, &t, &["status", "--fail-fast"]);
    assert!(text.contains("tensor    completed"), "{text}");
    assert!(!text.contains("CHANGED"), "{text}");
    let lib = e.join("tensor/src/lib.rs");
    let src = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, src.replace("x + x", "2 * x")).unwrap();
    let (_, text) = course(&e, &t, &["status", "--fail-fast"]);
    assert!(text.contains("CHANGED since"), "{text}");
}

/// `reset` puts the placeholders back without touching code outside the fences, `--restore`
/// gives back the student's exact bytes, and both refuse outside a student edition.
#[test]
fn reset_then_restore_gives_back_the_exact_bytes() {
    let (r, e, t) = edition("reset");
    let lib = e.join("nn/src/lib.rs");
    let placeholder_text = std::fs::read(&lib).unwrap();
    // The student's version: bodies written their own way, a helper and CRLF-free edits outside.
    let mine = std::fs::read_to_string(r.join("nn/src/lib.rs"))
        .unwrap()
        .replace("x + x", "x * 2 // mine")
        .replace("//! A chapter", "//! My notes.\n//! A chapter");
    std::fs::write(&lib, &mine).unwrap();

    let (ok, text) = course(&e, &t, &["reset", "nn"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("Reset 2 fenced bodies in 1 file(s)"),
        "{text}"
    );
    let reset = std::fs::read_to_string(&lib).unwrap();
    assert!(
        reset.starts_with("//! My notes.\n"),
        "code outside the fences changed:\n{reset}"
    );
    assert_eq!(
        reset.replacen("//! My notes.\n", "", 1).as_bytes(),
        &placeholder_text[..],
        "the reset file differs from the edition's outside the notes"
    );
    assert_eq!(
        std::fs::read_to_string(e.join(".course/backup/nn/src/lib.rs")).unwrap(),
        mine
    );
    // Resetting again changes nothing and keeps the backup.
    let (ok, text) = course(&e, &t, &["reset", "nn"]);
    assert!(ok && text.contains("Nothing to reset"), "{text}");

    let (ok, text) = course(&e, &t, &["reset", "--restore"]);
    assert!(ok, "{text}");
    assert_eq!(std::fs::read(&lib).unwrap(), mine.as_bytes());
    assert!(!e.join(".course/backup").exists());

    let before = std::fs::read(r.join("nn/src/lib.rs")).unwrap();
    let (ok, text) = course(&r, &t, &["reset", "nn"]);
    assert!(!ok && text.contains("only in a student edition"), "{text}");
    assert_eq!(std::fs::read(r.join("nn/src/lib.rs")).unwrap(), before);
}

/// Grade totals match a hand count: tensor written (3 tests, one weighted 5 in the manifest),
/// nn half written (only `doubles` passes), the rest unwritten: 7 + 1 = 8 of 22.
#[test]
fn grade_totals_match_a_hand_count() {
    let (r, e, t) = edition("grade");
    solve(&r, &e, "tensor");
    let lib = e.join("nn/src/lib.rs");
    let src = std::fs::read_to_string(&lib).unwrap();
    let double_written = src.replacen(
        &format!(
            "{}!(\"nn: add x to itself\")",
            milestones::course::fence::PLACEHOLDER
        ),
        "x + x",
        1,
    );
    assert_ne!(double_written, src);
    std::fs::write(&lib, double_written).unwrap();
    let manifest = e.join(".course/grading.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let tensor = m["chapters"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["chapter"] == "tensor")
        .unwrap();
    assert_eq!(tensor["tests"].as_array().unwrap().len(), 3);
    tensor["tests"][0]["weight"] = 5.into();
    std::fs::write(&manifest, serde_json::to_string_pretty(&m).unwrap()).unwrap();

    let sheet = e.join("grade.json");
    let (ok, text) = course(&e, &t, &["grade", "--json", sheet.to_str().unwrap()]);
    assert!(!ok, "a partial grade must not exit 0:\n{text}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&sheet).unwrap()).unwrap();
    assert_eq!(
        (v["total"].as_u64(), v["max"].as_u64()),
        (Some(8), Some(22)),
        "{text}"
    );
    let points: Vec<u64> = v["chapters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["points"].as_u64().unwrap())
        .collect();
    assert_eq!(points, [7, 0, 1, 0, 0, 0]);
    let nn = &v["chapters"][2]["tests"];
    let status = |name: &str| {
        nn.as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status("doubles"), "pass");
    assert_eq!(status("squares"), "fail");
    assert_eq!(status("double_then_square"), "fail");
    assert!(
        text.lines()
            .any(|l| l.starts_with("total") && l.ends_with(" 8/22")),
        "{text}"
    );
}

/// An integration test file left out of the build (`autotests = false`) is never a silent pass:
/// its graded test counts as missing and `complete` refuses, naming the file.
#[test]
fn skipped_integration_tests_are_missing_not_passed() {
    let (r, e, t) = edition("skipped");
    solve(&r, &e, "tensor");
    let manifest = e.join("tensor/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace(
            "edition = \"2021\"",
            "edition = \"2021\"\nautotests = false",
        ),
    )
    .unwrap();
    let (ok, out) = course(&e, &t, &["complete", "tensor"]);
    assert!(!ok, "{out}");
    assert!(out.contains("tensor/tests/it.rs"), "{out}");
    assert!(out.contains("double_then_square (test:it)"), "{out}");
    let sheet = e.join("grade.json");
    course(&e, &t, &["grade", "--json", sheet.to_str().unwrap()]);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&sheet).unwrap()).unwrap();
    assert_eq!(v["chapters"][0]["points"], 2);
    let missing = v["chapters"][0]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "double_then_square")
        .unwrap();
    assert_eq!(missing["status"], "missing");
}

/// A chapter graded from outside the workspace (a path dependency on the reference copy) is
/// refused by `grade`, `complete` and `milestone info` before any test runs.
#[test]
fn grading_refuses_code_from_outside_the_workspace() {
    let (r, e, t) = edition("foreign");
    let manifest = e.join("nn/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let reference_tensor = r.join("tensor").canonicalize().unwrap();
    std::fs::write(
        &manifest,
        text.replace(
            "path = \"../tensor\"",
            &format!("path = \"{}\"", reference_tensor.display()),
        ),
    )
    .unwrap();
    for args in [
        &["grade"][..],
        &["complete", "nn"][..],
        &["milestone", "info", "perceptron-1957"][..],
    ] {
        let (ok, out) = course(&e, &t, args);
        assert!(!ok, "{args:?}: {out}");
        assert!(
            out.contains("outside the graded workspace") && out.contains("`tensor`"),
            "{args:?}: {out}"
        );
    }
}

/// `milestone info` shows the lock from a test run made now: unlocked when its four chapters
/// pass, locked naming optim once optim's bodies are reset, even with a stale record in
/// `.course/progress.json` claiming optim complete. The README's figures are shown.
#[test]
fn milestone_lock_follows_the_chapters_test_result() {
    let (r, e, t) = edition("milestone");
    for c in ["tensor", "autograd", "nn", "optim"] {
        solve(&r, &e, c);
    }
    let (ok, text) = course(&e, &t, &["milestone", "info", "perceptron-1957"]);
    assert!(ok, "{text}");
    assert!(text.contains("state:   unlocked"), "{text}");
    assert!(text.contains("blobs: 100% test accuracy"), "{text}");
    assert!(text.contains("data:    generated blobs"), "{text}");

    let (ok, text) = course(&e, &t, &["complete", "optim"]);
    assert!(ok, "{text}");
    let (ok, text) = course(&e, &t, &["reset", "optim"]);
    assert!(ok, "{text}");
    let (ok, text) = course(&e, &t, &["milestone", "info", "perceptron-1957"]);
    assert!(!ok, "{text}");
    assert!(text.contains("state:   locked (needs: optim)"), "{text}");
    assert!(text.contains("optim     does not pass"), "{text}");

    let (_, text) = course(&e, &t, &["milestone", "timeline"]);
    assert!(text.contains("1957 "), "{text}");
    assert!(text.contains("perceptron-1957   locked"), "{text}");
    let (ok, text) = course(&e, &t, &["milestone", "list"]);
    assert!(ok && text.contains("mlperf-2018"), "{text}");
}

/// `check` follows the README's exercise order: exercise 1 (`square`) before the alphabetically
/// first failing test (`doubles`), with the test's doc comment.
#[test]
fn check_follows_the_exercise_order() {
    let (_, e, t) = edition("check");
    let (ok, text) = course(&e, &t, &["check", "tensor"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("First unfinished exercise (README order): 1. `lib.rs::square`"),
        "{text}"
    );
    assert!(
        text.contains("Its first failing test: tests::squares"),
        "{text}"
    );
    assert!(text.contains("Squaring three gives nine."), "{text}");
}

/// `grade --collect` grades two workspaces, one passing and one that does not build, each in
/// its own target directory, into one CSV; the broken one does not stop the other.
#[test]
fn collect_grades_two_workspaces() {
    let b = base("collect");
    let r = b.join("reference");
    reference(&r);
    let class = b.join("class");
    for s in ["alice", "bob"] {
        make_student_edition(&r, &class.join(s), false).unwrap();
    }
    for c in CHAPTERS {
        solve(&r, &class.join("alice"), c);
    }
    // Bob wrote autograd; his tensor does not compile (nor nn, which uses it).
    solve(&r, &class.join("bob"), "autograd");
    write(
        &class.join("bob/tensor/src/lib.rs"),
        "pub fn double(x: i32) -> i32 { x + }\n",
    );
    let csv = b.join("grades.csv");
    let (ok, text) = course(
        &r,
        &b.join("target"),
        &[
            "grade",
            "--collect",
            class.to_str().unwrap(),
            "--out",
            csv.to_str().unwrap(),
            "--time-limit",
            "300",
        ],
    );
    assert!(ok, "{text}");
    let csv = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "student,status,tensor,autograd,nn,optim,data,models,total,max"
    );
    assert_eq!(lines[1], "alice,graded,3,3,3,3,3,3,18,18", "{csv}");
    assert_eq!(lines[2], "bob,graded,0,3,0,0,0,0,3,18", "{csv}");
    assert!(class.join("alice/target").is_dir() && class.join("bob/target").is_dir());
}
