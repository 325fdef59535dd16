//! Course tooling: fence rewriting, libtest parsing and test lookup on small examples, and (ignored,
//! run by CI) the student edition of the real workspace end to end.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use milestones::course::edition::{allow_unused_lints, chapter_of, make_student_edition};
use milestones::course::fence::{
    body, escape_hint, find_fences, holds_placeholder, rewrite_source, FenceErrorKind,
    DEFAULT_HINT, PLACEHOLDER,
};
use milestones::course::libtest::{self, Outcome, Target};
use milestones::course::runner::{find_test_fn, rerun_command, TestOptions};
use milestones::course::{unlocked_by, CHAPTERS, MILESTONES};

/// `<placeholder>!(` built at run time (the literal is not written in shipped sources).
fn call() -> String {
    format!("{PLACEHOLDER}!(")
}

const SAMPLE: &str = "\
/// Adds one.
pub fn add_one(x: f32) -> f32 {
    // HINT: return x plus one
    // BEGIN SOLUTION
    x + 1.0
    // END SOLUTION
}

impl Thing {
    fn inner(&self) -> usize {
        // BEGIN SOLUTION
        let n = self.0;
        n * 2
        // END SOLUTION
    }
}
";

/// A fence's body becomes one placeholder line at the fence's indentation, naming the chapter and
/// the hint; the fence lines and the hint comment stay (so the body can be found, hashed and reset
/// later), everything else is unchanged, and rewriting again changes nothing.
#[test]
fn rewrite_replaces_fences_with_hinted_placeholders() {
    let r = rewrite_source("tensor", "tensor/src/x.rs", SAMPLE).unwrap();
    assert_eq!(r.fences.len(), 2);
    assert_eq!((r.fences[0].begin, r.fences[0].end), (4, 6));
    assert_eq!(r.fences[0].hint.as_deref(), Some("return x plus one"));
    assert_eq!(r.fences[1].hint, None);
    assert!(r.fences.iter().all(|f| f.whole_body));
    let expected = format!(
        "\
/// Adds one.
pub fn add_one(x: f32) -> f32 {{
    // HINT: return x plus one
    // BEGIN SOLUTION
    {c}\"tensor: return x plus one\")
    // END SOLUTION
}}

impl Thing {{
    fn inner(&self) -> usize {{
        // BEGIN SOLUTION
        {c}\"tensor: {DEFAULT_HINT}\")
        // END SOLUTION
    }}
}}
",
        c = call()
    );
    assert_eq!(r.text, expected);
    let again = rewrite_source("tensor", "tensor/src/x.rs", &r.text).unwrap();
    assert_eq!(again.text, r.text);
    assert!(holds_placeholder(body(&r.text, &again.fences[0]), "tensor"));
    assert!(!holds_placeholder(body(SAMPLE, &r.fences[0]), "tensor"));
    assert_eq!(
        body(SAMPLE, &r.fences[1]),
        "        let n = self.0;\n        n * 2\n"
    );
}

/// Several HINT lines (and continuation comment lines) join with spaces; ordinary comments above
/// the first HINT are not part of it.
#[test]
fn multi_line_hints_join() {
    let src = "\
fn f() -> u8 {
    // a note that is not a hint
    // HINT: first part,
    //   continued here;
    // HINT: second part
    // BEGIN SOLUTION
    1
    // END SOLUTION
}";
    let r = rewrite_source("nn", "nn/src/f.rs", src).unwrap();
    assert_eq!(
        r.fences[0].hint.as_deref(),
        Some("first part, continued here; second part")
    );
    assert!(r.text.contains(&format!(
        "    {}\"nn: first part, continued here; second part\")",
        call()
    )));
    assert!(r.text.contains("// a note that is not a hint"));
}

/// Quotes and backslashes are escaped for the string literal, braces for the format string.
#[test]
fn hints_are_escaped() {
    assert_eq!(
        escape_hint(r#"say "hi" \ {x} then }"#),
        r#"say \"hi\" \\ {{x}} then }}"#
    );
    let src = "fn f() {\n    // HINT: use \"a\\b\" and {n}\n    // BEGIN SOLUTION\n    ()\n    // END SOLUTION\n}\n";
    let r = rewrite_source("data", "data/src/f.rs", src).unwrap();
    assert!(r.text.contains(&format!(
        r#"    {}"data: use \"a\\b\" and {{{{n}}}}")"#,
        call()
    )));
}

/// A fence at the end of a body that starts with other code is allowed (the code stays) and
/// flagged as not the whole body.
#[test]
fn tail_fences_are_flagged_not_rejected() {
    let src = "fn f(x: u8) -> u8 {\n    check(x);\n    // BEGIN SOLUTION\n    x\n    // END SOLUTION\n}\n";
    let fences = find_fences("a.rs", src).unwrap();
    assert!(!fences[0].whole_body);
}

/// CRLF line endings survive the rewrite.
#[test]
fn crlf_is_kept() {
    let src = "fn f() {\r\n    // BEGIN SOLUTION\r\n    ()\r\n    // END SOLUTION\r\n}\r\n";
    let r = rewrite_source("nn", "x.rs", src).unwrap();
    assert_eq!(
        r.text,
        format!(
            "fn f() {{\r\n    // BEGIN SOLUTION\r\n    {}\"nn: {DEFAULT_HINT}\")\r\n    // END SOLUTION\r\n}}\r\n",
            call()
        )
    );
}

/// Unbalanced, nested and mid-body fences are errors naming the file and the line.
#[test]
fn bad_fences_name_file_and_line() {
    let unclosed = "fn f() {\n    // BEGIN SOLUTION\n    1\n}\n";
    let e = find_fences("tensor/src/u.rs", unclosed).unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].line, &e[0].kind), (2, &FenceErrorKind::Unclosed));
    assert!(
        e[0].to_string().starts_with("tensor/src/u.rs:2:"),
        "{}",
        e[0]
    );

    let stray = "fn f() {\n    1\n    // END SOLUTION\n}\n";
    let e = find_fences("s.rs", stray).unwrap_err();
    assert_eq!(
        (e[0].line, &e[0].kind),
        (3, &FenceErrorKind::EndWithoutBegin)
    );
    assert!(e[0].to_string().contains("s.rs:3:"));

    let nested =
        "fn f() {\n    // BEGIN SOLUTION\n    // BEGIN SOLUTION\n    1\n    // END SOLUTION\n}\n";
    let e = find_fences("n.rs", nested).unwrap_err();
    assert_eq!(
        (e[0].line, &e[0].kind),
        (3, &FenceErrorKind::Nested { open: 2 })
    );
    assert!(e[0].to_string().contains("line 2"));

    let mid =
        "fn f() -> u8 {\n    // BEGIN SOLUTION\n    let x = 1;\n    // END SOLUTION\n    x\n}\n";
    let e = rewrite_source("nn", "m.rs", mid).unwrap_err();
    assert_eq!((e[0].line, &e[0].kind), (4, &FenceErrorKind::NotBlockEnd));
    assert!(e[0].to_string().contains("m.rs:4:"));
}

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

/// Every milestone is unlocked by exactly one chapter, the last it needs.
#[test]
fn milestone_mapping() {
    let total: usize = CHAPTERS.iter().map(|c| unlocked_by(c).len()).sum();
    assert_eq!(total, MILESTONES.len());
    let names = |c| unlocked_by(c).iter().map(|m| m.name).collect::<Vec<_>>();
    assert_eq!(names("optim"), ["perceptron-1957", "xor-1969"]);
    assert_eq!(names("tensor"), Vec::<&str>::new());
    assert!(names("models").contains(&"transformer-2017"));
    assert!(names("models").contains(&"mlperf-2018"));
}

/// Captured `cargo test` output (stdout and stderr merged) of a chapter with a failing unit test,
/// a passing integration test file and an ignored test.
const SAMPLE_OUTPUT: &str = "\
   Compiling tensor v0.1.0 (/w/tensor)
    Finished `release` profile [optimized] target(s) in 3.2s
     Running unittests src/lib.rs (target/release/deps/tensor-1a2b)

running 3 tests
test broadcast::tests::adds_rows ... FAILED
test shape::tests::reshape_keeps_data ... ok
test matmul::tests::big ... ignored, needs data

failures:

---- broadcast::tests::adds_rows stdout ----

thread 'broadcast::tests::adds_rows' (4242) panicked at tensor/src/broadcast.rs:15:5:
not yet implemented: tensor: walk the shapes from the right
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace


failures:
    broadcast::tests::adds_rows

test result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s

     Running tests/ops.rs (target/release/deps/ops-3c4d)

running 2 tests
test add_matches_naive ... ok
test relu_zeroes_negatives ... FAILED

failures:

---- relu_zeroes_negatives stdout ----

thread 'relu_zeroes_negatives' panicked at tensor/tests/ops.rs:9:5:
assertion `left == right` failed
  left: 1.0
 right: 0.0

failures:
    relu_zeroes_negatives

test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

error: 2 targets failed:
    `-p tensor --lib`
    `-p tensor --test ops`
";

/// The parser counts outcomes per test, ties each to its target, and extracts panic messages.
#[test]
fn libtest_output_is_parsed() {
    let run = libtest::parse(SAMPLE_OUTPUT);
    assert_eq!(run.binaries, 2);
    assert_eq!((run.passed(), run.failed(), run.total()), (2, 2, 4));
    assert_eq!(run.count(Outcome::Ignored), 1);
    assert_eq!(run.build_error, None);
    assert!(!run.all_passed());
    let failed = run.failed_cases();
    assert_eq!(failed[0].name, "broadcast::tests::adds_rows");
    assert_eq!(failed[0].target, Target::Lib);
    assert_eq!(failed[1].target, Target::Test("ops".into()));
    let f = run.failure(failed[0]).unwrap();
    assert_eq!(
        f.message.as_deref(),
        Some("not yet implemented: tensor: walk the shapes from the right")
    );
    assert_eq!(f.location.as_deref(), Some("tensor/src/broadcast.rs:15:5"));
    let f = run.failure(failed[1]).unwrap();
    assert_eq!(
        f.message.as_deref(),
        Some("assertion `left == right` failed\n  left: 1.0\n right: 0.0")
    );
    let opts = TestOptions::default();
    assert_eq!(
        rerun_command("tensor", &failed[1].target, &failed[1].name, opts),
        "cargo test -p tensor --release --test ops -- relu_zeroes_negatives --exact"
    );
}

/// A compile error is reported as a build error, not as zero tests passing.
#[test]
fn build_errors_are_detected() {
    let out = "\
   Compiling nn v0.1.0 (/w/nn)
error[E0308]: mismatched types
  --> nn/src/linear.rs:40:9
   |
40 |         1
   |         ^ expected `Tensor`, found integer

error: could not compile `nn` (lib) due to 1 previous error
";
    let run = libtest::parse(out);
    let e = run.build_error.clone().unwrap();
    assert!(e.starts_with("error[E0308]: mismatched types") && e.contains("linear.rs:40:9"));
    assert_eq!(run.total(), 0);
    let ok = libtest::parse(
        "     Running unittests src/lib.rs (x)\ntest a ... ok\ntest result: ok. 1 passed;\n",
    );
    assert!(ok.all_passed());
}

/// A test's doc comment is found above its attributes.
#[test]
fn test_doc_comments_are_found() {
    let src = "\
/// Not this one.
fn adds_rows_helper() {}

/// Adding a row vector broadcasts it
/// to every row.
#[test]
#[should_panic]
fn adds_rows() {
    assert!(true);
}
";
    let (line, doc) = find_test_fn(src, "adds_rows").unwrap();
    assert_eq!(line, 8);
    assert_eq!(doc, "Adding a row vector broadcasts it\nto every row.");
    assert_eq!(find_test_fn(src, "adds_rows_helper"), None); // not a test
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

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs a command, returning (success, stdout + stderr) and printing how long it took.
fn run(what: &str, cmd: &mut Command) -> (bool, String) {
    let t = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    eprintln!("{what}: {:.1} s", t.elapsed().as_secs_f64());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
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

fn walk_rs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_rs(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
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

/// Graded tests are the `#[test]` functions that are not ignored; grading counts weights of the
/// passing ones, and a graded test that did not run is missing (or failed, if the build broke).
#[test]
fn grading_counts_weights_and_missing_tests() {
    use milestones::course::grading::{grade_chapter, graded_fns, GradedTest, TestStatus};
    let src = "#[test]\nfn a() {}\n/// doc\n#[test]\n#[ignore = \"data\"]\nfn b() {}\n#[test]\n#[should_panic]\nfn c() {}\nfn d() {}\n";
    assert_eq!(graded_fns(src), ["a", "c"]);
    let t = |name: &str, weight| GradedTest {
        target: "lib".into(),
        name: name.into(),
        weight,
    };
    let tests = [t("a", 2), t("c", 3), t("gone", 4)];
    let run = libtest::parse(
        "     Running unittests src/lib.rs (x)\ntest m::tests::a ... ok\ntest m::tests::c ... FAILED\ntest result: FAILED. 1 passed;\n",
    );
    let g = grade_chapter("nn", &tests, &run);
    assert_eq!((g.points(), g.max()), (2, 9));
    let status: Vec<TestStatus> = g.tests.iter().map(|(_, s)| *s).collect();
    assert_eq!(
        status,
        [TestStatus::Passed, TestStatus::Failed, TestStatus::Missing]
    );
}

/// A milestone's lock comes only from the chapter results given (measured now); a chapter not
/// measured counts as not passing.
#[test]
fn milestone_locks_follow_results() {
    use milestones::course::guide::{timeline, Lock};
    use std::collections::BTreeMap;
    let m = milestones::course::milestone("xor-1969").unwrap();
    let mut passing: BTreeMap<String, bool> =
        CORE_PASSING.iter().map(|c| (c.to_string(), true)).collect();
    assert!(Lock::of(m, &passing).unlocked());
    passing.insert("optim".into(), false);
    let lock = Lock::of(m, &passing);
    assert_eq!(lock.label(), "locked (needs: optim)");
    passing.remove("nn");
    assert_eq!(Lock::of(m, &passing).label(), "locked (needs: nn, optim)");
    let locks: BTreeMap<&str, Lock> = [("xor-1969", lock)].into_iter().collect();
    let tl = timeline(&locks, 62);
    assert!(tl.starts_with("1957 o"), "{tl}");
    assert!(tl.contains("1969  xor-1969          locked"), "{tl}");
}

const CORE_PASSING: [&str; 4] = ["tensor", "autograd", "nn", "optim"];

/// Timestamps are UTC civil time; the bodies' hash ignores code outside the fences.
#[test]
fn timestamps_and_body_hashes() {
    use milestones::course::state::{bodies_hash, utc_timestamp, Body};
    assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
    assert_eq!(utc_timestamp(1_796_601_600), "2026-12-07T00:00:00Z");
    assert_eq!(utc_timestamp(951_782_400 + 3661), "2000-02-29T01:01:01Z");
    let src = "fn f() {\n    // BEGIN SOLUTION\n    1\n    // END SOLUTION\n}\n";
    let bodies = |s: &str| -> Vec<Body> {
        find_fences("a.rs", s)
            .unwrap()
            .into_iter()
            .map(|f| Body {
                file: "a.rs".into(),
                text: body(s, &f).to_string(),
                fence: f,
            })
            .collect()
    };
    let h = bodies_hash(&bodies(src));
    assert_eq!(h, bodies_hash(&bodies(&format!("// note\n{src}"))));
    assert_ne!(h, bodies_hash(&bodies(&src.replace("    1\n", "    2\n"))));
}
