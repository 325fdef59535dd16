//! Student editions: manifests that allow unused code, chapter sources, a small workspace, and
//! (ignored, run by CI) the edition of the real workspace.

use crate::helpers::{call, run, walk_rs, workspace_root};
use milestones::course::edition::{allow_unused_lints, chapter_of, make_student_edition};
use milestones::course::libtest;
use milestones::course::CHAPTERS;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Only `.rs` files under a library crate's `src/` are chapter sources.
/// The edition's chapter manifests allow the `unused` lints (unfinished bodies would otherwise
/// bury real errors under warnings), once, and keep a manifest's own `[lints]` table.
#[test]
fn edition_manifests_allow_unused() {
    let manifest = "[package]\nname = \"tensor\"\n\n[dependencies]\nrayon.workspace = true\n";
    let quiet = allow_unused_lints(manifest);
    assert!(quiet.starts_with(manifest.trim_end()));
    assert!(
        quiet.ends_with("[lints.rust]\nunused = \"allow\"\n"),
        "{quiet}"
    );
    let own = "[package]\nname = \"nn\"\n[lints]\nworkspace = true\n";
    assert_eq!(allow_unused_lints(own), own);
}

#[test]
fn chapter_sources() {
    assert_eq!(
        chapter_of(Path::new("tensor/src/ops/add.rs")),
        Some("tensor")
    );
    assert_eq!(chapter_of(Path::new("models/src/lib.rs")), Some("models"));
    assert_eq!(chapter_of(Path::new("tensor/tests/add.rs")), None);
    assert_eq!(chapter_of(Path::new("milestones/src/lib.rs")), None);
    assert_eq!(chapter_of(Path::new("nn/README.md")), None);
}

/// Writing an edition refuses a non-empty directory and rejects bad fences before writing.
#[test]
fn edition_of_a_small_workspace() {
    let dir = std::env::temp_dir().join(format!("course-mini-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ws = dir.join("ws");
    let write = |rel: &str, text: &str| {
        let p = ws.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("Cargo.toml", "[workspace]\nmembers = []\n");
    write("target/junk.rs", "// BEGIN SOLUTION\n");
    for c in CHAPTERS {
        write(
            &format!("{c}/src/lib.rs"),
            "pub fn f() -> u8 {\n    // HINT: one\n    // BEGIN SOLUTION\n    1\n    // END SOLUTION\n}\n",
        );
        write(&format!("{c}/tests/t.rs"), "// BEGIN SOLUTION\n"); // not a chapter source
    }
    let out = dir.join("out");
    let report = make_student_edition(&ws, &out, false).unwrap();
    assert_eq!(report.total_fences(), CHAPTERS.len());
    assert!(!out.join("target").exists());
    let lib = std::fs::read_to_string(out.join("nn/src/lib.rs")).unwrap();
    assert!(
        lib.contains(&format!(
            "    // BEGIN SOLUTION\n    {}\"nn: one\")\n    // END SOLUTION\n}}",
            call()
        )),
        "{lib}"
    );
    assert!(out.join(".course/edition.json").is_file());
    assert!(out.join(".course/grading.json").is_file());
    let t = std::fs::read_to_string(out.join("nn/tests/t.rs")).unwrap();
    assert_eq!(t, "// BEGIN SOLUTION\n");
    assert!(make_student_edition(&ws, &out, false)
        .unwrap_err()
        .to_string()
        .contains("not empty"));

    write("optim/src/bad.rs", "fn g() {\n    // BEGIN SOLUTION\n}\n");
    let out2 = dir.join("out2");
    let e = make_student_edition(&ws, &out2, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("optim/src/bad.rs:2:"), "{e}");
    assert!(!out2.join("Cargo.toml").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// End to end on the real workspace: the student edition has fences in every chapter, builds,
/// its first chapter's tests fail with the hints, and `course status` names it as the next step.
///
/// The edition and its build live in `target/student-edition/` at fixed paths, so dependencies and
/// fingerprints are reused across runs and the directory does not grow. The build has its own
/// target directory: a nested cargo on the outer test run's directory would wait for its lock.
/// Tests run in the dev profile: on 2 cores it builds tensor's tests in about half the time of
/// `--release`, and failing at a placeholder is instant either way.
#[test]
#[ignore = "builds a student edition of the workspace (minutes on a cold target dir); run by .ci/run"]
fn student_edition_builds_and_fails_with_hints() {
    let root = workspace_root();
    let base = root.join("target").join("student-edition");
    let out = base.join("workspace");
    let target = base.join("target");
    if out.exists() {
        std::fs::remove_dir_all(&out).unwrap();
    }

    let t = Instant::now();
    let report = make_student_edition(&root, &out, false).unwrap();
    eprintln!(
        "edition: {} files, {} fences in {:.2} s",
        report.files,
        report.total_fences(),
        t.elapsed().as_secs_f64()
    );
    for (c, n) in &report.fences {
        assert!(*n > 0, "chapter {c} has no fences");
    }
    let placeholders: usize = walk_rs(&out.join("tensor/src"))
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .filter(|l| l.trim().starts_with(&call()))
                .count()
        })
        .sum();
    assert_eq!(placeholders, report.fences[0].1, "tensor placeholders");

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let (ok, text) = run(
        "cargo check --workspace --all-targets (edition)",
        Command::new(&cargo)
            .args(["check", "--workspace", "--all-targets"])
            .current_dir(&out)
            .env("CARGO_TARGET_DIR", &target),
    );
    assert!(ok, "the student edition does not build:\n{text}");

    let (ok, text) = run(
        "cargo test -p tensor --tests (edition)",
        Command::new(&cargo)
            .args(["test", "-p", "tensor", "--tests", "--no-fail-fast"])
            .current_dir(&out)
            .env("CARGO_TARGET_DIR", &target),
    );
    assert!(!ok, "tensor's tests pass on the student edition");
    let tensor = libtest::parse(&text);
    assert!(
        tensor.failed() > 0 && tensor.build_error.is_none(),
        "{text}"
    );
    assert!(
        text.contains("not yet implemented: tensor: "),
        "no placeholder hint in the failures:\n{text}"
    );

    // Same cargo arguments as above, so this only reruns the tests.
    let (ok, text) = run(
        "course status --debug --fail-fast (edition)",
        Command::new(env!("CARGO_BIN_EXE_course"))
            .args(["status", "--debug", "--fail-fast", "--workspace"])
            .arg(&out)
            .env("CARGO_TARGET_DIR", &target),
    );
    assert!(
        !ok,
        "status reports success on the student edition:\n{text}"
    );
    assert!(
        text.contains("Next step: chapter `tensor`"),
        "status does not name tensor as the next step:\n{text}"
    );
    let row = text.lines().find(|l| l.starts_with("tensor ")).unwrap();
    assert!(
        row.contains(&format!("/{}", tensor.total())) && row.contains("failing"),
        "{row}"
    );
    std::fs::remove_dir_all(&out).unwrap();
}
