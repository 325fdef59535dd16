//! The chapters as a course: every graded test says what it checks, every README has the five
//! sections, chapter numbers agree, exercises read in README order.

use crate::helpers::workspace_root;
use milestones::course::grading::undocumented_tests;
use milestones::course::CHAPTERS;
use std::path::{Path, PathBuf};

/// Every graded test of every chapter has a `///` doc comment saying what it checks: `course
/// check` prints it to the student whose test fails, so a new test without one fails here.
#[test]
fn every_graded_test_says_what_it_checks() {
    let missing = undocumented_tests(&workspace_root());
    assert!(
        missing.is_empty(),
        "{} graded test(s) without a `///` doc comment saying what they check:\n  {}",
        missing.len(),
        missing
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    // The guard itself: a test without a doc comment is found, one with a comment is not.
    let dir = std::env::temp_dir().join(format!("course-doc-guard-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("nn/tests")).unwrap();
    std::fs::write(
        dir.join("nn/tests/layers.rs"),
        "/// Adds.\n#[test]\nfn documented() {}\n\n#[test]\n// a plain comment is not a doc\nfn bare() {}\n",
    )
    .unwrap();
    let found = undocumented_tests(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].to_string(), "nn/tests/layers.rs:7 bare");
}

/// Every chapter's README is structured the same way (COURSE.md, "A chapter"): the five
/// sections, in order, as its first `## ` headings.
#[test]
fn chapter_readmes_have_the_five_sections() {
    const SECTIONS: [&str; 5] = [
        "## Learning objectives",
        "## The idea",
        "## API",
        "## Exercises",
        "## Systems questions",
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for chapter in CHAPTERS {
        let path = root.join(chapter).join("README.md");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let headings: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("## "))
            .take(SECTIONS.len())
            .collect();
        assert_eq!(
            headings,
            SECTIONS,
            "{}: the first sections must be {SECTIONS:?}",
            path.display()
        );
        assert!(
            text.contains(&format!("cargo test -p {chapter} --release")),
            "{}: exercises must say how to run their grading tests",
            path.display()
        );
    }
}

/// Every chapter carries one number, its place in `CHAPTERS`, everywhere it is named: COURSE.md's
/// table, the crate README's title, the `lib.rs` header and the Cargo.toml description.
#[test]
fn chapter_numbers_agree_everywhere() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |path: PathBuf| {
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let course = read(root.join("COURSE.md"));
    for (i, name) in CHAPTERS.iter().enumerate() {
        let n = i + 1;
        let row = format!("| {n} | [`{name}`]({name}/README.md) |");
        assert!(course.contains(&row), "COURSE.md has no row `{row}`");
        let readme = read(root.join(name).join("README.md"));
        let title = format!("# Chapter {n} — `{name}`:");
        assert!(
            readme.lines().next().unwrap_or("").starts_with(&title),
            "{name}/README.md must start with `{title}`"
        );
        let lib = read(root.join(name).join("src/lib.rs"));
        let header = lib.lines().next().unwrap_or("");
        assert!(
            header.starts_with(&format!("//! # {name}:"))
                && header.ends_with(&format!("(chapter {n})")),
            "{name}/src/lib.rs header `{header}` must end with `(chapter {n})`"
        );
        let toml = read(root.join(name).join("Cargo.toml"));
        let description = toml
            .lines()
            .find(|l| l.starts_with("description"))
            .unwrap_or("");
        assert!(
            description.ends_with(&format!("(chapter {n})\"")),
            "{name}/Cargo.toml description `{description}` must end with `(chapter {n})`"
        );
    }
}

/// The exercises of a README come in their numbered order with the test names they mention.
#[test]
fn exercises_are_read_in_readme_order() {
    use milestones::course::exercises::parse_exercises;
    let readme = std::fs::read_to_string(workspace_root().join("tensor/README.md")).unwrap();
    let ex = parse_exercises(&readme);
    assert!(ex.len() >= 5, "{ex:?}");
    assert_eq!(ex[0].number, 1);
    assert_eq!(ex[0].tests, ["broadcasting_cases"]);
    assert!(ex[1].tests.contains(&"elementwise_values".to_string()));
    assert!(ex.windows(2).all(|w| w[0].number < w[1].number));
}
